//! Running the `mta-sts` binary as a user does, for the CLI's integration tests.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use mta_sts_testnet::{DnsHandle, Identity, Lab};

/// `mta-sts`, to add arguments to.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mta-sts"))
}

/// Runs `mta-sts ARGS` with an empty standard input.
pub fn mta_sts(args: &[&str]) -> Output {
    with_stdin(args, b"")
}

/// Runs `mta-sts ARGS` with `input` on standard input.
pub fn with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mta-sts");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Write from another thread: the child may exit before reading everything.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// Standard output, which must be UTF-8.
pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Standard error, lossily.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Standard output as JSON.
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

/// A file with `body` in a directory of this test binary and process.
pub fn temp_file(name: &str, body: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mta-sts-{}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

/// Runs `mta-sts ARGS` off the async runtime, so a lab on this runtime keeps serving
/// meanwhile.
pub async fn run_beside_lab(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || bin().args(&args).output().unwrap())
        .await
        .unwrap()
}

/// Waits until something accepts connections on `addr` (a server just started); fails the
/// test after 30 s.
pub fn wait_for_listener(addr: std::net::SocketAddr) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "mta-sts serve did not listen on {addr}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A TLS report for example.com with report-id `r-ID` and ID successful sessions.
pub fn report_json(id: usize) -> String {
    report_about(id, "example.com")
}

/// [`report_json`] about `domain`'s policy.
pub fn report_about(id: usize, domain: &str) -> String {
    format!(
        r#"{{"organization-name":"Example Sender","date-range":{{"start-datetime":"2026-11-01T00:00:00Z","end-datetime":"2026-11-01T23:59:59Z"}},"contact-info":"tlsrpt@sender.example","report-id":"r-{id}","policies":[{{"policy":{{"policy-type":"sts","policy-string":["version: STSv1","mode: testing","mx: mx1.example.com","max_age: 604800"],"policy-domain":"{domain}","mx-host":["mx1.example.com"]}},"summary":{{"total-successful-session-count":{id},"total-failure-session-count":1}},"failure-details":[{{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.1","receiving-mx-hostname":"mx1.example.com","failed-session-count":1}}]}}]}}"#
    )
}

/// An empty directory for `name`, of this test binary and process.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mta-sts-{}-{}-{name}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes DER blocks as one PEM file.
pub fn write_pem(path: &Path, label: &str, ders: &[&[u8]]) {
    let text: String = ders
        .iter()
        .map(|der| pem::encode(&pem::Pem::new(label, der.to_vec())))
        .collect();
    std::fs::write(path, text).unwrap();
}

/// Writes `identity` as `cert.pem` (its chain) and `key.pem` in `dir`.
pub fn write_cert_files(dir: &Path, identity: &Identity) {
    let chain: Vec<&[u8]> = identity.chain().iter().map(|c| c.as_ref()).collect();
    write_pem(&dir.join("cert.pem"), "CERTIFICATE", &chain);
    write_pem(
        &dir.join("key.pem"),
        "PRIVATE KEY",
        &[identity.private_key().secret_der()],
    );
}

/// A running `mta-sts` server process, killed on drop.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `command` and waits until something listens on `addr`.
pub fn start_listening(command: &mut Command, addr: SocketAddr) -> Server {
    let child = command.spawn().unwrap();
    wait_for_listener(addr);
    Server { child, addr }
}

/// The lab's root certificate in a file of its own, for `--ca-file`.
pub fn lab_ca_file(lab: &Lab) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    temp_file(&format!("lab-ca-{n}.pem"), lab.ca().root_pem().as_bytes())
}

/// The flags that point `check` or `suggest` at `lab`, whose resolver is `dns`: `--resolver`,
/// `--ca-file`, `--https-port`, `--smtp-port` (when the lab runs SMTP servers) and
/// `--timeout 3`.
pub fn lab_flags(lab: &Lab, dns: &DnsHandle, ca_file: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--resolver".into(),
        dns.addr().to_string(),
        "--ca-file".into(),
        ca_file.display().to_string(),
        "--https-port".into(),
        lab.https_port().unwrap().to_string(),
    ];
    if let Some(port) = lab.smtp_port() {
        args.extend(["--smtp-port".into(), port.to_string()]);
    }
    args.extend(["--timeout".into(), "3".into()]);
    args
}
