//! `resolver-load`: the benchmark of `mta-sts resolver` against postfix-mta-sts-resolver
//! (issue 12). `lab` serves a testnet lab of policy domains (DNS on port 53, HTTPS on 443, for
//! a network namespace); `diff` sends a table of request keys to two resolvers and prints the
//! replies that differ; `run` loads one resolver with cached lookups over many connections,
//! pipelined or not, and prints queries/s and latency percentiles.
//!
//! ```text
//! resolver-load lab --dir DIR --domains 200
//! resolver-load diff --a 127.0.0.1:8461 --b 127.0.0.1:8462 --keys DIR/keys.txt
//! resolver-load run --connect 127.0.0.1:8461 --keys DIR/bench-keys.txt --connections 64 --depth 1
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use mta_sts_testnet::{DnsServer, HttpBehaviour, HttpsServer, Site, TestCa, Zone};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

#[derive(Parser)]
#[command(about = "Load generator and reply differ for Postfix socketmap MTA-STS resolvers")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the lab until killed: DNS on 127.0.0.1:53, policies on 127.0.0.2:443; writes
    /// DIR/ca.pem, DIR/keys.txt (the reply table's keys), DIR/bench-keys.txt, DIR/ready.
    Lab {
        #[arg(long)]
        dir: PathBuf,
        /// Enforce domains for the load run.
        #[arg(long, default_value_t = 200)]
        domains: usize,
    },
    /// Ask two resolvers every key in KEYS (one request payload a line) and print the
    /// differences; exit 1 when there are any.
    Diff {
        #[arg(long)]
        a: SocketAddr,
        #[arg(long)]
        b: SocketAddr,
        #[arg(long)]
        keys: PathBuf,
    },
    /// Load one resolver and print one line: queries/s, p50 and p99 in microseconds.
    Run {
        #[arg(long)]
        connect: SocketAddr,
        #[arg(long)]
        keys: PathBuf,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Requests in flight per connection (1: one at a time, as Postfix asks).
        #[arg(long, default_value_t = 1)]
        depth: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Offer this many queries/s over all connections (open loop), instead of sending
        /// each request as soon as the last reply is in (closed loop).
        #[arg(long)]
        rate: Option<f64>,
        /// Worker threads of the generator.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Command::Run {
        connect,
        keys,
        connections,
        depth,
        seconds,
        rate,
        threads,
    } = args.command
    {
        let load = Load {
            addr: connect,
            connections: connections.max(1),
            depth: depth.max(1),
            seconds,
            rate,
        };
        return run(&load, &keys, threads.max(1));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match args.command {
            Command::Lab { dir, domains } => lab(dir, domains).await,
            Command::Diff { a, b, keys } => diff(a, b, keys).await,
            Command::Run { .. } => Ok(()),
        }
    })
}

const ORIGIN: &str = "lab.example";

/// One lab domain: its label under `lab.example`, the TXT strings (if any) and the policy.
struct Case {
    label: &'static str,
    txt: Option<&'static str>,
    policy: Option<&'static str>,
}

/// The domains of the reply table, each a case where resolvers may differ.
const CASES: &[Case] = &[
    Case {
        label: "enforce",
        txt: Some("v=STSv1; id=e1"),
        policy: Some(
            "version: STSv1\nmode: enforce\nmx: mx1.enforce.lab.example\nmx: mx2.enforce.lab.example\nmax_age: 86400\n",
        ),
    },
    Case {
        label: "wildcard",
        txt: Some("v=STSv1; id=w1"),
        policy: Some("version: STSv1\nmode: enforce\nmx: *.wildcard.lab.example\nmax_age: 86400\n"),
    },
    Case {
        label: "testing",
        txt: Some("v=STSv1; id=t1"),
        policy: Some("version: STSv1\nmode: testing\nmx: mx.testing.lab.example\nmax_age: 86400\n"),
    },
    Case {
        label: "none",
        txt: Some("v=STSv1; id=n1"),
        policy: Some("version: STSv1\nmode: none\nmax_age: 86400\n"),
    },
    Case {
        label: "crlf",
        txt: Some("v=STSv1; id=c1"),
        policy: Some(
            "version: STSv1\r\nmode: enforce\r\nmx: mx.crlf.lab.example\r\nmax_age: 86400\r\n",
        ),
    },
    Case {
        label: "duplicate-mx",
        txt: Some("v=STSv1; id=d1"),
        policy: Some(
            "version: STSv1\nmode: enforce\nmx: mx.lab.example\nmx: mx.lab.example\nmax_age: 86400\n",
        ),
    },
    Case {
        label: "upper-mx",
        txt: Some("v=STSv1; id=u1"),
        policy: Some(
            "version: STSv1\nmode: enforce\nmx: MX.Upper-MX.lab.example\nmax_age: 86400\n",
        ),
    },
    Case {
        label: "bad-id",
        txt: Some("v=STSv1; id=not-valid!"),
        policy: Some("version: STSv1\nmode: enforce\nmx: mx.bad-id.lab.example\nmax_age: 86400\n"),
    },
    Case {
        label: "plus-max-age",
        txt: Some("v=STSv1; id=p1"),
        policy: Some(
            "version: STSv1\nmode: enforce\nmx: mx.plus-max-age.lab.example\nmax_age: +604800\n",
        ),
    },
    Case {
        label: "no-mx",
        txt: Some("v=STSv1; id=m1"),
        policy: Some("version: STSv1\nmode: enforce\nmax_age: 86400\n"),
    },
    Case {
        label: "bad-mode",
        txt: Some("v=STSv1; id=b1"),
        policy: Some(
            "version: STSv1\nmode: Enforce\nmx: mx.bad-mode.lab.example\nmax_age: 86400\n",
        ),
    },
    Case {
        label: "two-records",
        txt: None,
        policy: Some(
            "version: STSv1\nmode: enforce\nmx: mx.two-records.lab.example\nmax_age: 86400\n",
        ),
    },
    Case {
        label: "no-policy-host",
        txt: Some("v=STSv1; id=h1"),
        policy: None,
    },
    Case {
        label: "plain",
        txt: None,
        policy: None,
    },
];

async fn lab(dir: PathBuf, domains: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(&dir)?;
    let ca = TestCa::new("Resolver bench CA");
    std::fs::write(dir.join("ca.pem"), ca.root_pem())?;
    let web_ip: std::net::IpAddr = "127.0.0.2".parse()?;
    let mut zone = Zone::new(ORIGIN);
    let mut sites = Vec::new();
    let mut keys = Vec::new();
    for case in CASES {
        let domain = format!("{}.{ORIGIN}", case.label);
        if let Some(txt) = case.txt {
            zone = zone.txt(&format!("_mta-sts.{}", case.label), &[txt]);
        }
        if case.label == "two-records" {
            zone = zone
                .txt("_mta-sts.two-records", &["v=STSv1; id=a1"])
                .txt("_mta-sts.two-records", &["v=STSv1; id=a2"]);
        }
        if let Some(policy) = case.policy {
            zone = zone.address(&format!("mta-sts.{}", case.label), web_ip);
            sites.push(Site::new(
                &format!("mta-sts.{domain}"),
                HttpBehaviour::policy(policy),
            ));
        }
        for form in [
            domain.clone(),
            format!("[{domain}]"),
            format!("[{domain}]:25"),
            format!("{domain}:587"),
            format!("{domain}."),
            domain.to_ascii_uppercase(),
            format!(".{domain}"),
        ] {
            keys.push(format!("postfix {form}"));
        }
    }
    for key in [
        "[192.0.2.1]",
        "[ipv6:2001:db8::1]",
        "192.0.2.1",
        "127.1",
        "nonexistent.lab.example",
        "exa mple.com",
    ] {
        keys.push(format!("postfix {key}"));
    }
    let mut bench_keys = Vec::new();
    for i in 0..domains {
        let label = format!("d{i}");
        zone = zone
            .txt(
                &format!("_mta-sts.{label}"),
                &[&format!("v=STSv1; id=b{i}")],
            )
            .address(&format!("mta-sts.{label}"), web_ip);
        let domain = format!("{label}.{ORIGIN}");
        let policy = format!(
            "version: STSv1\nmode: enforce\nmx: mx1.{domain}\nmx: *.mx.{domain}\nmax_age: 604800\n"
        );
        sites.push(Site::new(
            &format!("mta-sts.{domain}"),
            HttpBehaviour::policy(&policy),
        ));
        bench_keys.push(format!("postfix {domain}"));
    }
    std::fs::write(dir.join("keys.txt"), keys.join("\n") + "\n")?;
    std::fs::write(dir.join("bench-keys.txt"), bench_keys.join("\n") + "\n")?;
    let udp = UdpSocket::bind("127.0.0.1:53")
        .await
        .context("bind DNS on 127.0.0.1:53 (run inside a network namespace)")?;
    let tcp = TcpListener::bind("127.0.0.1:53").await?;
    let https = TcpListener::bind("127.0.0.2:443")
        .await
        .context("bind 127.0.0.2:443")?;
    let _web = HttpsServer::new(&ca, sites)?.start_on(https)?;
    let dns = tokio::spawn(DnsServer::new([zone]).run(udp, tcp, std::future::pending()));
    std::fs::write(dir.join("ready"), "")?;
    dns.await?;
    Ok(())
}

fn read_keys(path: &PathBuf) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

fn netstring(payload: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{}:", payload.len()).as_bytes());
    out.extend_from_slice(payload.as_bytes());
    out.push(b',');
}

async fn read_reply(stream: &mut BufReader<TcpStream>) -> anyhow::Result<String> {
    let mut length = 0usize;
    loop {
        let byte = stream.read_u8().await?;
        match byte {
            b'0'..=b'9' => length = length * 10 + usize::from(byte - b'0'),
            b':' => break,
            _ => bail!("bad netstring length byte {byte:#x}"),
        }
    }
    let mut payload = vec![0; length + 1];
    stream.read_exact(&mut payload).await?;
    if payload.pop() != Some(b',') {
        bail!("netstring without ','");
    }
    Ok(String::from_utf8_lossy(&payload).into_owned())
}

async fn ask(addr: SocketAddr, key: &str) -> String {
    let attempt = async {
        let mut stream = BufReader::new(TcpStream::connect(addr).await?);
        let mut request = Vec::new();
        netstring(key, &mut request);
        stream.get_mut().write_all(&request).await?;
        read_reply(&mut stream).await
    };
    match tokio::time::timeout(Duration::from_secs(20), attempt).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(error)) => format!("<error: {error}>"),
        Err(_) => "<no reply in 20 s>".to_owned(),
    }
}

async fn diff(a: SocketAddr, b: SocketAddr, keys: PathBuf) -> anyhow::Result<()> {
    let keys = read_keys(&keys)?;
    let mut differences = 0;
    let mut reordered = 0;
    for key in &keys {
        let (reply_a, reply_b) = tokio::join!(ask(a, key), ask(b, key));
        if reply_a == reply_b {
            println!("  same  {key:?} -> {reply_a:?}");
            continue;
        }
        differences += 1;
        let tag = if match_sorted(&reply_a) == match_sorted(&reply_b) {
            reordered += 1;
            "ORDER"
        } else {
            "DIFF "
        };
        println!("  {tag} {key:?}\n          ours: {reply_a:?}\n          peer: {reply_b:?}");
    }
    println!(
        "{differences} of {} replies differ; {reordered} of them (ORDER) only in the order of the \
         match= patterns (the peer's is a Python set's, different from run to run; ours is the \
         policy's)",
        keys.len()
    );
    if differences > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// `reply` with the patterns of its `match=` field sorted: two replies that differ only in
/// the order of their patterns are equal after this.
fn match_sorted(reply: &str) -> Vec<String> {
    reply
        .split(' ')
        .map(|field| match field.strip_prefix("match=") {
            Some(list) => {
                let mut patterns: Vec<&str> = list.split(':').collect();
                patterns.sort_unstable();
                format!("match={}", patterns.join(":"))
            }
            None => field.to_owned(),
        })
        .collect()
}

/// Frames every key as a request once, so the load loop only copies bytes.
fn framed_requests(keys: &[String]) -> Vec<Vec<u8>> {
    keys.iter()
        .map(|key| {
            let mut out = Vec::new();
            netstring(key, &mut out);
            out
        })
        .collect()
}

/// One load connection: the socket and the replies read but not yet taken.
struct LoadConnection {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    out: Vec<u8>,
}

impl LoadConnection {
    async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            start: 0,
            out: Vec::new(),
        })
    }

    /// Sends the next `depth` requests at once (from `requests`, cycling from `next`), waits
    /// for their replies, and records the time that took for each.
    async fn batch(
        &mut self,
        requests: &[Vec<u8>],
        next: &mut usize,
        depth: usize,
        latencies: &mut Latencies,
    ) -> anyhow::Result<()> {
        self.out.clear();
        for _ in 0..depth {
            self.out
                .extend_from_slice(&requests[*next % requests.len()]);
            *next += 1;
        }
        let sent = Instant::now();
        self.stream.write_all(&self.out).await?;
        self.replies(depth).await?;
        let latency = micros(sent);
        latencies.extend(std::iter::repeat_n(latency, depth));
        Ok(())
    }

    /// Waits for `count` replies, each checked to be a cached secure answer. Replies are cut
    /// out of what one read brings, so the generator costs a read per batch, not per byte.
    async fn replies(&mut self, mut count: usize) -> anyhow::Result<()> {
        while count > 0 {
            match next_reply(self.buf.get(self.start..).unwrap_or_default())? {
                Some(consumed) => {
                    self.start += consumed;
                    count -= 1;
                }
                None => {
                    self.buf.drain(..self.start);
                    self.start = 0;
                    if self.stream.read_buf(&mut self.buf).await? == 0 {
                        bail!("the resolver closed the connection");
                    }
                }
            }
        }
        Ok(())
    }
}

/// The length of the netstring reply at the start of `buf`, when it is complete; an error
/// when it is not a cached `OK secure` reply.
fn next_reply(buf: &[u8]) -> anyhow::Result<Option<usize>> {
    let Some(colon) = buf.iter().position(|&b| b == b':') else {
        return Ok(None);
    };
    let digits = &buf[..colon];
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        bail!("bad netstring length {:?}", String::from_utf8_lossy(digits));
    }
    let length: usize = std::str::from_utf8(digits)?.parse()?;
    let Some(rest) = buf.get(colon + 1..colon + 2 + length) else {
        return Ok(None);
    };
    let (payload, comma) = rest.split_at(length);
    if comma != b"," {
        bail!("netstring without ','");
    }
    if !payload.starts_with(b"OK secure") {
        bail!(
            "uncached or wrong reply {:?}",
            String::from_utf8_lossy(payload)
        );
    }
    Ok(Some(colon + 2 + length))
}

/// What one connection measured: the latency of every reply, in microseconds.
type Latencies = Vec<u32>;

fn micros(since: Instant) -> u32 {
    u32::try_from(since.elapsed().as_micros()).unwrap_or(u32::MAX)
}

/// Connection number `c` of `load`, closed or open loop.
async fn load_connection(
    load: Load,
    requests: std::sync::Arc<Vec<Vec<u8>>>,
    c: usize,
    deadline: Instant,
) -> anyhow::Result<Latencies> {
    match load.rate {
        Some(rate) => {
            let per_connection = rate / load.connections as f64;
            open_loop(
                load.addr,
                &requests,
                c * 7,
                load.depth,
                per_connection,
                deadline,
            )
            .await
        }
        None => closed_loop(load.addr, &requests, c * 7, load.depth, deadline).await,
    }
}

/// Closed loop: a batch of `depth` requests, then the next as soon as its replies are in.
async fn closed_loop(
    addr: SocketAddr,
    requests: &[Vec<u8>],
    first: usize,
    depth: usize,
    deadline: Instant,
) -> anyhow::Result<Latencies> {
    let mut connection = LoadConnection::open(addr).await?;
    let mut latencies = Vec::new();
    let mut next = first;
    while Instant::now() < deadline {
        connection
            .batch(requests, &mut next, depth, &mut latencies)
            .await?;
    }
    Ok(latencies)
}

/// Open loop: requests offered at `rate` per second on this connection, whatever the replies
/// take, a batch of `depth` at a time (one request at a time for depth 1, as Postfix asks).
/// The timer ticks every millisecond; each tick sends what became due since the last, so the
/// offered rate holds exactly and a slow server shows as a backlog (a lower achieved rate),
/// not as fewer requests asked. Latency is from each batch's write to its last reply.
async fn open_loop(
    addr: SocketAddr,
    requests: &[Vec<u8>],
    first: usize,
    depth: usize,
    rate: f64,
    deadline: Instant,
) -> anyhow::Result<Latencies> {
    let mut connection = LoadConnection::open(addr).await?;
    let mut latencies = Vec::new();
    let mut next = first;
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let started = Instant::now();
    let mut asked = 0.0_f64;
    loop {
        ticks.tick().await;
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let due = (now - started).as_secs_f64() * rate;
        while asked + depth as f64 <= due {
            connection
                .batch(requests, &mut next, depth, &mut latencies)
                .await?;
            asked += depth as f64;
            if Instant::now() >= deadline {
                break;
            }
        }
    }
    Ok(latencies)
}

/// What `run` asks of the resolver.
#[derive(Clone, Copy)]
struct Load {
    addr: SocketAddr,
    connections: usize,
    depth: usize,
    seconds: f64,
    rate: Option<f64>,
}

/// Runs the load on `threads` threads, each a single-threaded runtime with every
/// `threads`-th connection: a connection's reply wakes no other thread of the generator.
fn run(load: &Load, keys: &PathBuf, threads: usize) -> anyhow::Result<()> {
    let requests = std::sync::Arc::new(framed_requests(&read_keys(keys)?));
    if requests.is_empty() {
        bail!("no keys");
    }
    let deadline = Instant::now() + Duration::from_secs_f64(load.seconds);
    let started = Instant::now();
    let mut all = std::thread::scope(|scope| {
        let shards: Vec<_> = (0..threads)
            .map(|thread| {
                let (requests, load) = (std::sync::Arc::clone(&requests), *load);
                scope.spawn(move || -> anyhow::Result<Latencies> {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime.block_on(async {
                        let mut tasks = tokio::task::JoinSet::new();
                        for c in (thread..load.connections).step_by(threads) {
                            let requests = std::sync::Arc::clone(&requests);
                            tasks.spawn(load_connection(load, requests, c, deadline));
                        }
                        let mut all = Vec::new();
                        while let Some(done) = tasks.join_next().await {
                            all.extend(done??);
                        }
                        Ok(all)
                    })
                })
            })
            .collect();
        let mut all = Vec::new();
        for shard in shards {
            match shard.join() {
                Ok(latencies) => all.extend(latencies?),
                Err(_) => bail!("a load thread panicked"),
            }
        }
        Ok(all)
    })?;
    let (seconds, rate, connections, depth) =
        (load.seconds, load.rate, load.connections, load.depth);
    let elapsed = started.elapsed().as_secs_f64().max(seconds);
    all.sort_unstable();
    let pick = |q: f64| {
        all.get(((all.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    let offered = rate.map_or_else(String::new, |rate| format!(" offered_per_s={rate:.0}"));
    println!(
        "queries_per_s={:.0} p50_us={} p99_us={} max_us={} queries={} connections={connections} \
         depth={depth}{offered}",
        all.len() as f64 / elapsed,
        pick(0.50),
        pick(0.99),
        all.last().copied().unwrap_or(0),
        all.len()
    );
    Ok(())
}
