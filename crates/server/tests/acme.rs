//! ACME end to end against Debian's `pebble`: the server obtains a certificate for
//! `mta-sts.example.com` by TLS-ALPN-01 on its own HTTPS listener, serves the policy with it,
//! and after a restart serves the saved certificate without asking the CA again; by HTTP-01 on
//! its plain HTTP listener; for one host while another's validation hangs. And against a CA
//! that accepts connections and never answers: every request is given up after the timeout.
//!
//! Needs `/usr/bin/pebble` (`apt-get install -y pebble`); fails, never skips, without it.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mta_sts_server::{Config, Listeners, MemorySink, Server};
use mta_sts_testnet::{DnsServer, TestCa, Zone, next_loopback_ip};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;

struct Pebble(Child);

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts pebble; it validates TLS-ALPN-01 on `tls_port` and HTTP-01 on `http_port` of the
/// address `dns` gives for the host.
fn start_pebble(
    dir: &Path,
    ca: &TestCa,
    tls_port: u16,
    http_port: u16,
    dns: SocketAddr,
) -> (Pebble, u16, u16) {
    if Command::new("pebble").arg("-h").output().is_err() {
        panic!(
            "the ACME test needs pebble, the ACME test server: \
             `apt-get install -y pebble` (Debian package, installs /usr/bin/pebble)"
        );
    }
    let localhost = IpAddr::from([127, 0, 0, 1]);
    let (port, management) = (free_port(localhost), free_port(localhost));
    let identity = ca.issue(&["localhost"]).unwrap();
    let chain: Vec<&[u8]> = identity.chain().iter().map(|c| c.as_ref()).collect();
    support::write_pem(&dir.join("pebble.pem"), "CERTIFICATE", &chain);
    let key = identity.private_key();
    support::write_pem(&dir.join("pebble.key"), "PRIVATE KEY", &[key.secret_der()]);
    let config = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{port}"),
        "managementListenAddress": format!("127.0.0.1:{management}"),
        "certificate": dir.join("pebble.pem"),
        "privateKey": dir.join("pebble.key"),
        "httpPort": http_port,
        "tlsPort": tls_port,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
    }});
    std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
    let child = Command::new("pebble")
        .arg("-config")
        .arg(dir.join("pebble.json"))
        .arg("-dnsserver")
        .arg(dns.to_string())
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pebble starts");
    let pebble = Pebble(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", management)).is_err() {
        assert!(Instant::now() < deadline, "pebble did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    (pebble, port, management)
}

/// Pebble's issuing root, from its management interface.
fn pebble_root(dir: &Path, management: u16) -> CertificateDer<'static> {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(dir.join("ca.pem"))
        .arg(format!("https://localhost:{management}/roots/0"))
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    CertificateDer::from_pem_slice(&out.stdout).expect("a PEM root")
}

/// Fetches the policy over HTTPS, trusting only `root`.
async fn fetch_policy(addr: SocketAddr, root: &CertificateDer<'static>) -> std::io::Result<String> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(mta_sts_testnet::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("mta-sts.example.com").unwrap(), tcp)
        .await?;
    tls.write_all(
        b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.com\r\nConnection: close\r\n\r\n",
    )
    .await?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await?;
    Ok(response)
}

fn run_server(
    config: Config,
    listener: TcpListener,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    run_server_on(
        config,
        Listeners {
            https: vec![listener],
            http: Vec::new(),
        },
    )
}

fn run_server_on(
    config: Config,
    listeners: Listeners,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let server = Server::new(config, Arc::new(MemorySink::new())).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run(listeners, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (stop, task)
}

/// The ACME configuration for pebble at `port`, with `extra` lines in `[tls.acme]`, for
/// `domains` (in that order).
fn acme_config(dir: &Path, port: u16, extra: &str, domains: &[&str]) -> Config {
    let mut text = format!(
        r#"
[tls]
mode = "acme"
[tls.acme]
email = "admin@example.com"
directory = "https://localhost:{port}/dir"
directory_ca = "ca.pem"
state_dir = "acme"
{extra}
"#
    );
    for domain in domains {
        text.push_str(&format!(
            "[[domain]]\nname = \"{domain}\"\nmode = \"testing\"\nmx = [\"mx1.{domain}\"]\n"
        ));
    }
    Config::from_toml(&text, dir).unwrap()
}

/// Fetches the policy until it is served with a certificate from pebble, for up to `patience`.
async fn policy_once_certified(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    patience: Duration,
) -> String {
    let deadline = Instant::now() + patience;
    loop {
        match fetch_policy(addr, root).await {
            Ok(response) => return response,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "no certificate from pebble after {patience:?}: {error}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The permission bits of `path`.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The next event of a [`stall`] listener, waited for up to 30 s.
async fn next_event(events: &mut tokio::sync::mpsc::UnboundedReceiver<bool>, what: &str) -> bool {
    tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within 30 s"))
        .expect("the listener runs")
}

/// A listener that accepts every connection and never answers: a CA or a host that hangs.
/// Says on `events` when it accepts a connection (`true`) and when a peer closes one (`false`).
fn stall(listener: TcpListener) -> tokio::sync::mpsc::UnboundedReceiver<bool> {
    let (events, received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let events = events.clone();
            let _ = events.send(true);
            tokio::spawn(async move {
                let mut sink = [0u8; 4096];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                let _ = events.send(false);
            });
        }
    });
    received
}

/// A certificate is ordered (in place of a saved one for other names), served, saved, and
/// served again after a restart without the CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_is_obtained_from_pebble_by_tls_alpn_01_and_reused_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Pebble HTTPS");
    std::fs::write(dir.path().join("ca.pem"), ca.root_pem()).unwrap();

    let ip = next_loopback_ip();
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dns = DnsServer::new([Zone::new("example.com").address("mta-sts", IpAddr::V4(ip))])
        .start()
        .await
        .unwrap();
    let (pebble, port, management) = start_pebble(
        dir.path(),
        &ca,
        addr.port(),
        free_port(IpAddr::from([127, 0, 0, 1])),
        dns.addr(),
    );

    let state_dir = dir.path().join("acme");
    // A saved certificate that does not name the host (copied from another server, say) is not
    // served: a new one is ordered, the only kind the client below (trusting pebble) accepts.
    std::fs::create_dir_all(&state_dir).unwrap();
    let stray = ca.issue(&["www.example.org"]).unwrap();
    let chain: Vec<&[u8]> = stray.chain().iter().map(|c| c.as_ref()).collect();
    support::write_pem(
        &state_dir.join("mta-sts.example.com.crt"),
        "CERTIFICATE",
        &chain,
    );
    support::write_pem(
        &state_dir.join("mta-sts.example.com.key"),
        "PRIVATE KEY",
        &[stray.private_key().secret_der()],
    );
    let config_text = format!(
        r#"
[tls]
mode = "acme"
[tls.acme]
email = "admin@example.com"
directory = "https://localhost:{port}/dir"
directory_ca = "ca.pem"
state_dir = "acme"
[[domain]]
name = "example.com"
mode = "testing"
mx = ["mx1.example.com"]
"#
    );
    let config = Config::from_toml(&config_text, dir.path()).unwrap();
    let (stop, task) = run_server(config.clone(), listener);

    let root = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || pebble_root(&dir, management)
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let response = loop {
        match fetch_policy(addr, &root).await {
            Ok(response) => break response,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "no certificate from pebble after 90 s: {error}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("mode: testing\r\n"), "{response}");
    assert!(state_dir.join("mta-sts.example.com.crt").exists());
    assert!(state_dir.join("account.json").exists());

    // Restart without the CA: the saved certificate is served.
    let _ = stop.send(());
    task.await.unwrap();
    drop(pebble);
    let listener = TcpListener::bind(addr).await.unwrap();
    let (stop, task) = run_server(config, listener);
    let deadline = Instant::now() + Duration::from_secs(10);
    let response = loop {
        match fetch_policy(addr, &root).await {
            Ok(response) => break response,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "saved certificate not served: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let _ = stop.send(());
    task.await.unwrap();
}

/// HTTP-01: the CA fetches the answer from the plain HTTP listener (port 80, or where a proxy
/// forwards it); the certificate is then served on HTTPS. The state directory the server makes
/// is owner-only, and so are the key and account files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_is_obtained_by_http_01_on_the_plain_http_listener() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Pebble HTTPS");
    std::fs::write(dir.path().join("ca.pem"), ca.root_pem()).unwrap();
    let ip = next_loopback_ip();
    let https = TcpListener::bind((ip, 0)).await.unwrap();
    let http = TcpListener::bind((ip, 0)).await.unwrap();
    let (addr, http_port) = (
        https.local_addr().unwrap(),
        http.local_addr().unwrap().port(),
    );
    let dns = DnsServer::new([Zone::new("example.com").address("mta-sts", IpAddr::V4(ip))])
        .start()
        .await
        .unwrap();
    // Nothing answers TLS-ALPN-01 on the port pebble would use for it: only HTTP-01 can pass.
    let unused = free_port(IpAddr::V4(ip));
    let (_pebble, port, management) = start_pebble(dir.path(), &ca, unused, http_port, dns.addr());
    let config = acme_config(
        dir.path(),
        port,
        r#"challenge = "http-01""#,
        &["example.com"],
    );
    let (stop, task) = run_server_on(
        config,
        Listeners {
            https: vec![https],
            http: vec![http],
        },
    );
    let root = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || pebble_root(&dir, management)
    })
    .await
    .unwrap();
    let response = policy_once_certified(addr, &root, Duration::from_secs(90)).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let state_dir = dir.path().join("acme");
    assert_eq!(mode(&state_dir), 0o700, "state directory");
    for file in [
        "mta-sts.example.com.key",
        "mta-sts.example.com.crt",
        "account.json",
    ] {
        assert_eq!(mode(&state_dir.join(file)), 0o600, "{file}");
    }
    let _ = stop.send(());
    task.await.unwrap();
}

/// Each host is ordered on its own: while pebble's validation of the first host hangs on a
/// listener that never answers, the second one gets its certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_validation_hangs_does_not_hold_up_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Pebble HTTPS");
    std::fs::write(dir.path().join("ca.pem"), ca.root_pem()).unwrap();
    let ip = next_loopback_ip();
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    // mta-sts.example.net points at an address where the TLS-ALPN-01 port never answers.
    let hung_ip = next_loopback_ip();
    let mut hung = stall(TcpListener::bind((hung_ip, addr.port())).await.unwrap());
    let dns = DnsServer::new([
        Zone::new("example.net").address("mta-sts", IpAddr::V4(hung_ip)),
        Zone::new("example.com").address("mta-sts", IpAddr::V4(ip)),
    ])
    .start()
    .await
    .unwrap();
    let localhost = IpAddr::from([127, 0, 0, 1]);
    let (_pebble, port, management) = start_pebble(
        dir.path(),
        &ca,
        addr.port(),
        free_port(localhost),
        dns.addr(),
    );
    // The hanging host first: handled in turn, it would hold up the other one.
    let config = acme_config(dir.path(), port, "", &["example.net", "example.com"]);
    let started = Instant::now();
    let (stop, task) = run_server(config, listener);
    let root = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || pebble_root(&dir, management)
    })
    .await
    .unwrap();
    let hung_at = tokio::time::timeout(Duration::from_secs(60), hung.recv())
        .await
        .expect("pebble validates mta-sts.example.net")
        .expect("the listener runs");
    assert!(hung_at, "the first event is a connection");
    let hung_since = started.elapsed();
    let response = policy_once_certified(addr, &root, Duration::from_secs(90)).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let served_after = started.elapsed();
    let state_dir = dir.path().join("acme");
    assert!(state_dir.join("mta-sts.example.com.crt").exists());
    assert!(
        !state_dir.join("mta-sts.example.net.crt").exists(),
        "no certificate for the host that never answers"
    );
    let mut still_hung = true;
    while let Ok(event) = hung.try_recv() {
        still_hung &= event;
    }
    eprintln!(
        "validation of mta-sts.example.net hanging since {hung_since:?}; \
         mta-sts.example.com served after {served_after:?} (validation still hanging: {still_hung})"
    );
    let _ = stop.send(());
    task.await.unwrap();
}

/// A CA that accepts the connection and never answers: the request is given up after
/// `request_timeout` (the connection closed), the failure is kept for the back-off, and the
/// server goes on serving meanwhile and stops when told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_never_answers_is_given_up_after_the_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let ca_listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let ca_port = ca_listener.local_addr().unwrap().port();
    let mut ca = stall(ca_listener);
    let config = Config::from_toml(
        &format!(
            r#"
[tls]
mode = "acme"
[tls.acme]
email = "admin@example.com"
directory = "https://127.0.0.1:{ca_port}/dir"
state_dir = "acme"
request_timeout = 1
[[domain]]
name = "example.com"
mode = "testing"
mx = ["mx1.example.com"]
"#
        ),
        dir.path(),
    )
    .unwrap();
    let ip = next_loopback_ip();
    let https = TcpListener::bind((ip, 0)).await.unwrap();
    let http = TcpListener::bind((ip, 0)).await.unwrap();
    let http_addr = http.local_addr().unwrap();
    let (stop, task) = run_server_on(
        config,
        Listeners {
            https: vec![https],
            http: vec![http],
        },
    );
    assert!(next_event(&mut ca, "a connection to the CA").await);
    let connected = Instant::now();
    assert!(
        !next_event(&mut ca, "the connection given up").await,
        "the connection is closed"
    );
    eprintln!(
        "the request to the silent CA was given up after {:?}",
        connected.elapsed()
    );
    // The failure is kept, so a restart does not order again at once.
    let failures = dir.path().join("acme/mta-sts.example.com.failures");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !failures.exists() {
        assert!(Instant::now() < deadline, "the failure is saved");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        std::fs::read_to_string(&failures).unwrap().lines().count(),
        1
    );
    assert_eq!(mode(&failures), 0o600);
    // Meanwhile the policy is served (on the plain HTTP listener here).
    let mut tcp = TcpStream::connect(http_addr).await.unwrap();
    tcp.write_all(
        b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.com\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the server stops although the CA hangs")
        .unwrap();
}
