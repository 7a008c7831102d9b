//! Real HTTPS on loopback: certificates chosen by SNI, fetched by a rustls client and by curl.

mod support;

use std::path::Path;
use std::sync::Arc;

use mta_sts_server::{Config, Listeners, MemorySink, Server};
use mta_sts_testnet::{Identity, TestCa};
use rustls::pki_types::ServerName;
use support::{REPORT, write_pem};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const POLICY: &str = "/.well-known/mta-sts.txt";

/// A running server for example.com and example.org, each with its own certificate.
struct Running {
    ca: TestCa,
    port: u16,
    server: Server,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    sink: Arc<MemorySink>,
    dir: tempfile::TempDir,
}

fn write_identity(dir: &Path, name: &str, identity: &Identity) {
    let chain: Vec<&[u8]> = identity.chain().iter().map(|c| c.as_ref()).collect();
    write_pem(&dir.join(format!("{name}.pem")), "CERTIFICATE", &chain);
    let key = identity.private_key();
    write_pem(
        &dir.join(format!("{name}.key")),
        "PRIVATE KEY",
        &[key.secret_der()],
    );
}

fn write_config(dir: &Path, com_mode: &str) {
    std::fs::write(
        dir.join("mta-sts.toml"),
        format!(
            r#"
[tls]
mode = "files"

[[domain]]
name = "example.com"
mode = "{com_mode}"
mx = ["mx1.example.com"]
cert = "com.pem"
key = "com.key"

[[domain]]
name = "example.org"
mode = "enforce"
mx = ["mx.example.org"]
cert = "org.pem"
key = "org.key"
"#
        ),
    )
    .unwrap();
}

async fn start() -> Running {
    let ca = TestCa::new("Server test");
    let dir = tempfile::tempdir().unwrap();
    write_identity(
        dir.path(),
        "com",
        &ca.issue(&["mta-sts.example.com"]).unwrap(),
    );
    write_identity(
        dir.path(),
        "org",
        &ca.issue(&["mta-sts.example.org"]).unwrap(),
    );
    write_config(dir.path(), "testing");
    let config = Config::load(dir.path().join("mta-sts.toml")).unwrap();
    let sink = Arc::new(MemorySink::new());
    let server = Server::new(config, sink.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(server.clone().run(
        Listeners {
            https: vec![listener],
            http: Vec::new(),
        },
        async move {
            let _ = stopped.await;
        },
    ));
    let task = tokio::spawn(async move { task.await.unwrap().unwrap() });
    Running {
        ca,
        port,
        server,
        stop: Some(stop),
        task,
        sink,
        dir,
    }
}

impl Running {
    async fn connect(&self, sni: &str) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await?;
        TlsConnector::from(self.ca.client_config())
            .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
            .await
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
    }
}

/// Sends one request and reads one response: status line, headers (lowercased), body.
async fn exchange(
    stream: &mut BufReader<TlsStream<TcpStream>>,
    request: &str,
) -> (String, Vec<(String, String)>, Vec<u8>) {
    stream
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .unwrap();
    let mut status = String::new();
    stream.read_line(&mut status).await.unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .map_or(0, |(_, value)| value.parse().unwrap());
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.unwrap();
    (status.trim_end().to_owned(), headers, body)
}

fn get_request(host: &str) -> String {
    format!("GET {POLICY} HTTP/1.1\r\nHost: {host}\r\n\r\n")
}

#[tokio::test]
async fn rustls_client_fetches_each_policy_with_its_certificate_by_sni() {
    let running = start().await;
    for (host, mode) in [
        ("mta-sts.example.com", "testing"),
        ("mta-sts.example.org", "enforce"),
    ] {
        let mut stream = BufReader::new(running.connect(host).await.unwrap());
        let (status, headers, body) = exchange(&mut stream, &get_request(host)).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(headers.contains(&("content-type".into(), "text/plain; charset=utf-8".into())));
        assert!(
            String::from_utf8(body)
                .unwrap()
                .contains(&format!("mode: {mode}\r\n"))
        );
    }
    running.stop().await;
}

#[tokio::test]
async fn unknown_sni_gets_no_certificate() {
    let running = start().await;
    // The handshake is refused with an alert: not a refused connection, not a timeout.
    let error = within(running.connect("mta-sts.example.net"))
        .await
        .expect_err("no certificate for an unknown name");
    let tls = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    assert!(
        matches!(tls, Some(rustls::Error::AlertReceived(_))),
        "expected a TLS alert from the server, got {error:?}"
    );
    // The same listener still serves a known name.
    within(running.connect("mta-sts.example.com"))
        .await
        .unwrap();
    running.stop().await;
}

/// `future`'s output, or a failed test if it takes longer than 10 s (instead of a hang).
async fn within<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(std::time::Duration::from_secs(10), future)
        .await
        .expect("timed out after 10 s")
}

#[tokio::test]
async fn reload_keeps_open_connections_and_serves_the_new_policy_on_them() {
    let running = start().await;
    let host = "mta-sts.example.com";
    let mut stream = BufReader::new(running.connect(host).await.unwrap());
    let (_, _, body) = exchange(&mut stream, &get_request(host)).await;
    assert!(String::from_utf8(body).unwrap().contains("mode: testing"));

    write_config(running.dir.path(), "enforce");
    running.server.reload().unwrap();
    let (status, _, body) = exchange(&mut stream, &get_request(host)).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(String::from_utf8(body).unwrap().contains("mode: enforce"));
    running.stop().await;
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let running = start().await;
    let mut idle = BufReader::new(running.connect("mta-sts.example.com").await.unwrap());
    within(exchange(&mut idle, &get_request("mta-sts.example.com"))).await;
    within(running.stop()).await;
    // Closed: the read ends (a hang here would be a connection left open).
    let mut rest = Vec::new();
    let read = within(idle.read_to_end(&mut rest)).await;
    assert!(
        read.is_err() || rest.is_empty(),
        "connection closed, got {read:?} {rest:?}"
    );
}

fn curl(args: &[&str]) -> std::process::Output {
    std::process::Command::new("curl")
        .args(args)
        .output()
        .expect("curl is installed (apt-get install -y curl)")
}

#[tokio::test]
async fn curl_fetches_the_policy_and_posts_a_gzip_report() {
    let running = start().await;
    let ca_file = running.dir.path().join("ca.pem");
    std::fs::write(&ca_file, running.ca.root_pem()).unwrap();
    let resolve = format!("mta-sts.example.com:{}:127.0.0.1", running.port);
    let base = format!("https://mta-sts.example.com:{}", running.port);
    let ca = ca_file.to_str().unwrap().to_owned();

    let url = format!("{base}{POLICY}");
    let ca_arg = ca.clone();
    let out = tokio::task::spawn_blocking(move || {
        curl(&[
            "-sS",
            "-i",
            "--resolve",
            &resolve,
            "--cacert",
            &ca_arg,
            &url,
        ])
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("content-type: text/plain; charset=utf-8"),
        "{text}"
    );
    assert!(text.ends_with("max_age: 604800\r\n"), "{text}");

    let report = running.dir.path().join("report.json.gz");
    std::fs::write(&report, support::gzip(REPORT)).unwrap();
    let resolve = format!("mta-sts.example.com:{}:127.0.0.1", running.port);
    let data = format!("@{}", report.display());
    let url = format!("{base}/tlsrpt");
    let out = tokio::task::spawn_blocking(move || {
        curl(&[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--resolve",
            &resolve,
            "--cacert",
            &ca,
            "-H",
            "Content-Type: application/tlsrpt+gzip",
            "--data-binary",
            &data,
            &url,
        ])
    })
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "201");
    let held = running.sink.snapshot();
    assert_eq!(held.stored.len(), 1);
    running.stop().await;
}
