//! ACME end to end against Debian's `pebble`: the server obtains a certificate for
//! `mta-sts.example.com` by TLS-ALPN-01 on its own HTTPS listener, serves the policy with it,
//! and after a restart serves the saved certificate without asking the CA again.
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

fn start_pebble(dir: &Path, ca: &TestCa, tls_port: u16, dns: SocketAddr) -> (Pebble, u16, u16) {
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
        "httpPort": free_port(localhost),
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
    let server = Server::new(config, Arc::new(MemorySink::new())).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run(
                Listeners {
                    https: vec![listener],
                    http: Vec::new(),
                },
                async move {
                    let _ = stopped.await;
                },
            )
            .await
            .unwrap();
    });
    (stop, task)
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
    let (pebble, port, management) = start_pebble(dir.path(), &ca, addr.port(), dns.addr());

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
