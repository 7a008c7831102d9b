//! One `serve` under attack, over real sockets on 127.0.0.0/8: connections that send nothing,
//! clients that drip a header byte per second, and gzip bombs, all at once. Policy hosting keeps
//! answering, memory stays bounded, every report is accounted for, and it serves normally
//! afterwards. Figures are printed; the assertions are on answers and outcomes, not on timing.
//! Each client IP stays under the per-IP cap, so the caps' own test is separate.

mod support;

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use mta_sts_server::{Config, Listeners, MemorySink, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::time::timeout;

/// The policy `support::config` hosts for example.com.
const POLICY_HOST: &str = "mta-sts.example.com";
/// Long enough for any answer on a loaded 2-core machine; a test never waits longer.
const PATIENCE: Duration = Duration::from_secs(120);

struct Running {
    addr: SocketAddr,
    sink: Arc<MemorySink>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(config: Config) -> Running {
    let sink = Arc::new(MemorySink::new());
    let server = Server::new(config, sink.clone()).expect("server");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run(
                Listeners {
                    https: Vec::new(),
                    http: vec![listener],
                },
                async move {
                    let _ = stopped.await;
                },
            )
            .await
            .expect("server runs");
    });
    Running {
        addr,
        sink,
        stop,
        task,
    }
}

/// A connection from the loopback address `ip` (any of 127.0.0.0/8).
async fn connect_from(ip: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(ip), 0))?;
    socket.connect(to).await
}

/// Sends one request with `Connection: close` from `ip` and reads the whole answer: the status
/// and the body.
async fn request(ip: Ipv4Addr, to: SocketAddr, head: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let exchange = async {
        let mut stream = connect_from(ip, to).await?;
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        std::io::Result::Ok(answer)
    };
    let answer = timeout(PATIENCE, exchange)
        .await
        .expect("an answer in time")
        .expect("an answer");
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body_at = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |at| at + 4);
    (status, answer[body_at..].to_vec())
}

async fn get_policy(ip: Ipv4Addr, to: SocketAddr) -> (u16, Vec<u8>) {
    let head = format!(
        "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {POLICY_HOST}\r\nConnection: close\r\n\r\n"
    );
    request(ip, to, &head, b"").await
}

async fn post_report(ip: Ipv4Addr, to: SocketAddr, body: &[u8]) -> (u16, Vec<u8>) {
    let head = format!(
        "POST /tlsrpt HTTP/1.1\r\nHost: {POLICY_HOST}\r\nContent-Type: application/tlsrpt+gzip\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    request(ip, to, &head, body).await
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip to memory");
    encoder.finish().expect("gzip to memory")
}

/// Waits until the server closes `stream` (end of file or reset); false if it stays open
/// beyond [`PATIENCE`].
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let wait = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    timeout(PATIENCE, wait).await.is_ok()
}

/// This process's peak resident memory, from /proc.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM in kB");
    kib * 1024
}

/// A report gzipped as several members (a gzip reader reads them as one stream), so that the
/// 10 MiB middle is compressed once for every bomb.
fn bomb(head: &str, middle_gz: &[u8], tail: &str) -> Vec<u8> {
    let mut body = gzip(head.as_bytes());
    body.extend_from_slice(middle_gz);
    body.extend_from_slice(&gzip(tail.as_bytes()));
    body
}

const DATE_RANGE: &str = r#""date-range":{"start-datetime":"2024-01-09T00:00:00Z","end-datetime":"2024-01-09T23:59:59Z"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn policy_hosting_and_intake_survive_hostile_clients() {
    // 764 attacking connections: more than the default 768 cap leaves for everyone else.
    let running = start(support::config(
        "[intake]\ntimeout_seconds = 600\n\
         [limits]\nmax_connections = 2000\nheader_timeout_seconds = 3\n\
         intake_memory = 134217728\n",
    ))
    .await;
    let addr = running.addr;
    let ten_mib = 10 * 1024 * 1024;

    // 500 connections that send nothing: 20 from each of 25 addresses.
    let mut silent = Vec::new();
    for index in 0..500u32 {
        let ip = Ipv4Addr::new(127, 0, 10, 1 + (index / 20) as u8);
        silent.push(connect_from(ip, addr).await.expect("silent connection"));
    }
    let silent = tokio::spawn(async move {
        let mut closed = 0;
        for mut stream in silent {
            closed += usize::from(closed_by_server(&mut stream).await);
        }
        closed
    });

    // 200 clients that send a header byte per second: 20 from each of 10 addresses.
    let drips: Vec<_> = (0..200u32)
        .map(|index| {
            let ip = Ipv4Addr::new(127, 0, 11, 1 + (index / 20) as u8);
            tokio::spawn(async move {
                let mut stream = connect_from(ip, addr).await.expect("drip connection");
                let header = format!(
                    "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {POLICY_HOST}\r\nX-Slow: {}",
                    "a".repeat(200)
                );
                for byte in header.bytes() {
                    if stream.write_all(&[byte]).await.is_err() {
                        return true;
                    }
                    let mut buf = [0u8; 64];
                    // A second per byte, unless the server closes the connection meanwhile.
                    if let Ok(Ok(0) | Err(_)) =
                        timeout(Duration::from_secs(1), stream.read(&mut buf)).await
                    {
                        return true;
                    }
                }
                false
            })
        })
        .collect();

    // About a served domain: the intake takes no others (intake.accept).
    const NO_POLICY: &str = r#"{"policy":{"policy-type":"no-policy-found","policy-domain":"example.com"},"summary":{"total-successful-session-count":1,"total-failure-session-count":0}}"#;
    // 64 gzip bombs that decompress to 10 MiB: 32 valid reports padded with whitespace, which
    // must be stored, and 32 floods of small objects, which must be refused (400) unread.
    let spaces_gz = gzip(&vec![b' '; ten_mib - 4096]);
    let object = r#"{"a":0},"#;
    let objects_gz = gzip(object.repeat((ten_mib - 4096) / object.len()).as_bytes());
    let bombs: Vec<_> = (0..64u32)
        .map(|index| {
            let ip = Ipv4Addr::new(127, 0, 12, 1 + (index / 2) as u8);
            let body = if index % 2 == 0 {
                bomb(
                    &format!(
                        r#"{{"organization-name":"Bomb","report-id":"padded-{index}",{DATE_RANGE},"policies":[{NO_POLICY}]"#
                    ),
                    &spaces_gz,
                    "}",
                )
            } else {
                bomb(
                    &format!(
                        r#"{{"organization-name":"Bomb","report-id":"flood-{index}",{DATE_RANGE},"policies":["#
                    ),
                    &objects_gz,
                    "{}]}",
                )
            };
            tokio::spawn(async move {
                let mut busy = 0;
                loop {
                    let (status, _) = post_report(ip, addr, &body).await;
                    if status != 503 {
                        return (index, status, busy);
                    }
                    busy += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        })
        .collect();

    // Meanwhile, the policy is fetched every 200 ms.
    let started = Instant::now();
    let bombs_done = async {
        let mut outcomes = Vec::new();
        for bomb in bombs {
            outcomes.push(bomb.await.expect("bomb task"));
        }
        outcomes
    };
    tokio::pin!(bombs_done);
    let mut slowest = Duration::ZERO;
    let mut fetches = 0;
    let outcomes = loop {
        let asked = Instant::now();
        let (status, body) = get_policy(Ipv4Addr::new(127, 0, 13, 1), addr).await;
        slowest = slowest.max(asked.elapsed());
        fetches += 1;
        assert_eq!(status, 200, "policy GET #{fetches} during the attack");
        assert!(body.starts_with(b"version: STSv1"), "{body:?}");
        tokio::select! {
            outcomes = &mut bombs_done => break outcomes,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    };
    let attack = started.elapsed();

    let mut dripped_closed = 0;
    for drip in drips {
        dripped_closed += usize::from(drip.await.expect("drip task"));
    }
    let silent_closed = silent.await.expect("silent task");
    let rss = peak_rss_bytes();
    let busy: u32 = outcomes.iter().map(|(_, _, busy)| busy).sum();
    eprintln!(
        "hostile clients: {fetches} policy GETs during {attack:.1?}, slowest {slowest:.0?}; \
         {busy} bomb posts answered 503 (memory budget) and retried; silent connections \
         closed by the server: {silent_closed}/500; header drips closed: {dripped_closed}/200; \
         peak RSS {:.0} MiB",
        rss as f64 / (1024.0 * 1024.0)
    );

    for (index, status, _) in &outcomes {
        let expected = if index % 2 == 0 { 201 } else { 400 };
        assert_eq!(*status, expected, "bomb {index}");
    }
    let held = running.sink.snapshot();
    assert_eq!(held.stored.len(), 32, "every padded report is stored");
    assert_eq!(
        held.quarantined.len(),
        32,
        "every flood is kept in quarantine"
    );
    assert!(
        held.quarantined
            .iter()
            .all(|(_, reason)| reason.contains("too many JSON values")),
        "{:?}",
        held.quarantined.iter().map(|(_, r)| r).collect::<Vec<_>>()
    );
    assert_eq!(
        silent_closed, 500,
        "the header timeout closes silent connections"
    );
    assert_eq!(dripped_closed, 200, "the header timeout closes drips");
    assert!(rss < 512 * 1024 * 1024, "peak RSS {rss} bytes");

    // Afterwards: normal service.
    let (status, body) = get_policy(Ipv4Addr::new(127, 0, 13, 2), addr).await;
    assert_eq!(status, 200);
    assert!(body.starts_with(b"version: STSv1"));
    let (status, _) = post_report(Ipv4Addr::new(127, 0, 13, 2), addr, support::REPORT_GZ).await;
    assert_eq!(status, 201);
    assert_eq!(running.sink.snapshot().stored.len(), 33);

    let _ = running.stop.send(());
    running.task.await.expect("server stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_caps_are_closed_and_others_are_served() {
    let running = start(support::config(
        "[limits]\nmax_connections = 6\nmax_connections_per_ip = 3\nheader_timeout_seconds = 60\n",
    ))
    .await;
    let addr = running.addr;
    let greedy = Ipv4Addr::new(127, 0, 14, 1);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(greedy, addr).await.expect("connection"));
    }
    // A fourth from the same address is closed at once; the others stay open.
    let mut fourth = connect_from(greedy, addr)
        .await
        .expect("accepted, then closed");
    assert!(closed_by_server(&mut fourth).await);
    // Another address is served.
    let (status, _) = get_policy(Ipv4Addr::new(127, 0, 14, 2), addr).await;
    assert_eq!(status, 200);
    // Filling the global cap (3 held + 3 more) shuts everyone out until one closes.
    for last in 2..5 {
        held.push(
            connect_from(Ipv4Addr::new(127, 0, 14, last), addr)
                .await
                .expect("connection"),
        );
    }
    let mut seventh = connect_from(Ipv4Addr::new(127, 0, 14, 9), addr)
        .await
        .expect("accepted, then closed");
    assert!(closed_by_server(&mut seventh).await);
    drop(held.pop());
    drop(held.pop());
    // The server sees the close, then has room again.
    let mut answered = false;
    for _ in 0..100 {
        let exchange = async {
            let mut stream = connect_from(Ipv4Addr::new(127, 0, 14, 10), addr).await?;
            stream
                .write_all(
                    format!(
                        "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {POLICY_HOST}\r\n\
                         Connection: close\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .await?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await?;
            std::io::Result::Ok(answer)
        };
        if let Ok(Ok(answer)) = timeout(PATIENCE, exchange).await
            && answer.starts_with(b"HTTP/1.1 200")
        {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered, "a place is free again once connections close");
    for stream in &mut held {
        stream
            .write_all(b"G")
            .await
            .expect("held connections stay open");
    }
    let _ = running.stop.send(());
    running.task.await.expect("server stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let running = start(support::config("[limits]\nheader_timeout_seconds = 1\n")).await;
    let mut stream = connect_from(Ipv4Addr::new(127, 0, 15, 1), running.addr)
        .await
        .expect("connection");
    stream
        .write_all(
            format!("GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {POLICY_HOST}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("request");
    let mut answer = vec![0u8; 4096];
    let read = timeout(PATIENCE, stream.read(&mut answer))
        .await
        .expect("an answer in time")
        .expect("an answer");
    assert!(answer[..read].starts_with(b"HTTP/1.1 200"));
    // Kept alive after the answer, then closed once idle for the header timeout.
    let idle = Instant::now();
    assert!(closed_by_server(&mut stream).await);
    eprintln!(
        "idle keep-alive connection closed after {:.1?}",
        idle.elapsed()
    );
    let _ = running.stop.send(());
    running.task.await.expect("server stops");
}
