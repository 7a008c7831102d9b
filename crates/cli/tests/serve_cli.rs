//! `mta-sts serve` as a process: it hosts a policy that `mta-sts check` then finds valid, takes
//! TLS reports by HTTPS POST into the store that `mta-sts reports` reads, and loses no
//! acknowledged report when killed with SIGKILL.

mod support;

use support::report_json;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mta_sts_testnet::{Lab, TestCa, Zone, next_loopback_ip};

const POLICY: &str =
    "version: STSv1\r\nmode: testing\r\nmx: mx1.example.com\r\nmax_age: 604800\r\n";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mta-sts"))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mta-sts-serve-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_pem(path: &Path, label: &str, ders: &[&[u8]]) {
    let text: String = ders
        .iter()
        .map(|der| pem::encode(&pem::Pem::new(label, der.to_vec())))
        .collect();
    std::fs::write(path, text).unwrap();
}

/// A running `mta-sts serve`, killed on drop.
struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Files for one server: policy, certificate for mta-sts.example.com from `ca`, data dir.
struct Setup {
    dir: PathBuf,
    ca_pem: PathBuf,
    ip: IpAddr,
    port: u16,
}

fn setup(name: &str, ca: &TestCa) -> Setup {
    let dir = temp_dir(name);
    std::fs::write(dir.join("policy.txt"), POLICY).unwrap();
    let identity = ca.issue(&["mta-sts.example.com"]).unwrap();
    let chain: Vec<&[u8]> = identity.chain().iter().map(|c| c.as_ref()).collect();
    write_pem(&dir.join("cert.pem"), "CERTIFICATE", &chain);
    write_pem(
        &dir.join("key.pem"),
        "PRIVATE KEY",
        &[identity.private_key().secret_der()],
    );
    let ca_pem = dir.join("ca.pem");
    std::fs::write(&ca_pem, ca.root_pem()).unwrap();
    let ip = IpAddr::V4(next_loopback_ip());
    let port = std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Setup {
        dir,
        ca_pem,
        ip,
        port,
    }
}

fn start(s: &Setup) -> Serve {
    start_with(s, &[], Stdio::null())
}

/// `start` with more flags, and standard error (the log) going to `log`.
fn start_with(s: &Setup, extra: &[&str], log: impl Into<Stdio>) -> Serve {
    let addr = SocketAddr::new(s.ip, s.port);
    let child = bin()
        .args([
            "serve",
            "--listen",
            &addr.to_string(),
            "--domain",
            "example.com",
        ])
        .arg("--policy")
        .arg(s.dir.join("policy.txt"))
        .arg("--cert")
        .arg(s.dir.join("cert.pem"))
        .arg("--key")
        .arg(s.dir.join("key.pem"))
        .arg("--data-dir")
        .arg(s.dir.join("data"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    support::wait_for_listener(addr);
    Serve { child, addr }
}

fn curl(s: &Setup, args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "10", "--resolve"])
        .arg(format!("mta-sts.example.com:{}:{}", s.port, s.ip))
        .arg("--cacert")
        .arg(&s.ca_pem)
        .args(args)
        .output()
        .expect("curl is installed")
}

/// POSTs a report with curl; the HTTP status, or 0 when no answer came.
fn post(s: &Setup, body: &str) -> u16 {
    let out = curl(
        s,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Content-Type: application/tlsrpt+json",
            "--data-binary",
            body,
            &format!("https://mta-sts.example.com:{}/tlsrpt", s.port),
        ],
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn reports_json(s: &Setup) -> serde_json::Value {
    let out = bin()
        .args([
            "reports",
            "list",
            "--json",
            "--limit",
            "100000",
            "--data-dir",
        ])
        .arg(s.dir.join("data"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn served_policy_is_fetched_by_curl_and_found_valid_by_check() {
    let lab = Lab::new();
    let s = setup("check", lab.ca());
    let server = start(&s);
    let out = curl(
        &s,
        &[
            "-i",
            &format!(
                "https://mta-sts.example.com:{}/.well-known/mta-sts.txt",
                s.port
            ),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{text}"
    );
    assert!(text.ends_with(POLICY), "{text}");

    let dns = lab
        .dns([Zone::new("example.com")
            .txt("_mta-sts", &["v=STSv1; id=1"])
            .txt(
                "_smtp._tls",
                &["v=TLSRPTv1; rua=https://mta-sts.example.com/tlsrpt"],
            )
            .address("mta-sts", s.ip)
            .mx(10, "mx1.example.com")
            .address("mx1", s.ip)])
        .await
        .unwrap();
    let args: Vec<String> = vec![
        "check".into(),
        "--json".into(),
        "--no-smtp".into(),
        "example.com".into(),
        "--resolver".into(),
        dns.addr().to_string(),
        "--ca-file".into(),
        s.ca_pem.display().to_string(),
        "--https-port".into(),
        server.addr.port().to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || bin().args(&args).output().unwrap())
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v[0]["evidence"]["policy"]["ok"].is_object(), "{v:#}");
    assert_eq!(v[0]["policy"]["mode"], "testing");
    assert_eq!(v[0]["sender"]["status"], "testing");
    let codes: Vec<&str> = v[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["mode-testing", "smtp-skipped"]);
}

#[test]
fn reports_posted_over_https_are_stored_and_listed() {
    let ca = TestCa::new("serve-intake");
    let s = setup("intake", &ca);
    let _server = start(&s);
    assert_eq!(post(&s, &report_json(7)), 201);
    assert_eq!(
        post(&s, &report_json(7)),
        200,
        "a duplicate is acknowledged, not stored twice"
    );
    assert_eq!(post(&s, "{not json"), 400);

    let v = reports_json(&s);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(v[0]["organization_name"], "Example Sender");
    assert_eq!(v[0]["policies"][0]["successful"], 7);
    assert_eq!(v[0]["policies"][0]["failed"], 1);

    let id = v[0]["id"].to_string();
    let out = bin()
        .args(["reports", "show", &id, "--data-dir"])
        .arg(s.dir.join("data"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("sts policy for example.com: 7 successful, 1 failed sessions"),
        "{text}"
    );
    assert!(
        text.contains("certificate-expired: 192.0.2.1 -> mx1.example.com"),
        "{text}"
    );
}

/// While clients post concurrently, the server is killed with SIGKILL and restarted: every
/// report that got a 2xx is in the store, and none twice.
#[test]
fn no_acknowledged_report_is_lost_on_sigkill() {
    let ca = TestCa::new("serve-durability");
    let s = Arc::new(setup("durability", &ca));
    let mut server = start(&s);
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (s, stop, next) = (Arc::clone(&s), Arc::clone(&stop), Arc::clone(&next));
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    let status = post(&s, &report_json(id));
                    if (200..300).contains(&status) {
                        acked.push(id);
                    }
                }
                acked
            })
        })
        .collect();
    // Let some reports through, then kill the server in the middle of the traffic.
    let deadline = Instant::now() + Duration::from_secs(60);
    while next.load(Ordering::Relaxed) < 40 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(server);
    let restarted = start(&s);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let mut acked: Vec<usize> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    acked.sort_unstable();
    assert!(
        acked.len() >= 20,
        "only {} reports acknowledged",
        acked.len()
    );

    let v = reports_json(&s);
    let mut stored: Vec<usize> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["report_id"]
                .as_str()
                .unwrap()
                .trim_start_matches("r-")
                .parse()
                .unwrap()
        })
        .collect();
    stored.sort_unstable();
    let unique = stored.len();
    stored.dedup();
    assert_eq!(unique, stored.len(), "a report is stored twice");
    let missing: Vec<_> = acked
        .iter()
        .filter(|id| stored.binary_search(id).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
    drop(restarted);
    let _ = std::io::stderr().flush();
}

/// `kill -HUP` reloads the config file: the next fetch serves the changed policy.
#[test]
fn sighup_reloads_the_config_file() {
    let ca = TestCa::new("serve-reload");
    let s = setup("reload", &ca);
    let addr = SocketAddr::new(s.ip, s.port);
    let config = s.dir.join("mta-sts.toml");
    let write_config = |mx: &str| {
        let text = format!(
            "[listen]\nhttps = [\"{addr}\"]\n[tls]\nmode = \"files\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\n[storage]\ndata_dir = \"data\"\n[[domain]]\nname = \"example.com\"\nmode = \"testing\"\nmx = [\"{mx}\"]\n"
        );
        std::fs::write(&config, text).unwrap();
    };
    write_config("mx1.example.com");
    let child = bin()
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Serve { child, addr };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "mta-sts serve did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!(
        "https://mta-sts.example.com:{}/.well-known/mta-sts.txt",
        s.port
    );
    let fetch = || String::from_utf8_lossy(&curl(&s, &[&url]).stdout).into_owned();
    assert!(fetch().contains("mx: mx1.example.com\r\n"));

    write_config("mx2.example.com");
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = fetch();
        if body.contains("mx: mx2.example.com\r\n") {
            break;
        }
        assert!(Instant::now() < deadline, "policy not reloaded: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops `serve` with SIGTERM, as systemd does, and waits for it to exit.
fn terminate(mut serve: Serve) {
    let pid = serve.child.id().to_string();
    assert!(bin_kill(&["-TERM", &pid]));
    let deadline = Instant::now() + Duration::from_secs(30);
    while serve.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn bin_kill(args: &[&str]) -> bool {
    Command::new("kill").args(args).status().unwrap().success()
}

#[test]
fn the_log_in_a_file_is_plain_text_with_one_line_per_event() {
    let ca = TestCa::new("serve-log-text");
    let s = setup("log-text", &ca);
    let log_path = s.dir.join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let serve = start_with(&s, &[], log);
    assert_eq!(post(&s, &report_json(1)), 201);
    assert_eq!(post(&s, &report_json(1)), 200);
    assert_eq!(post(&s, "not a report"), 400);
    terminate(serve);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!log.contains('\u{1b}'), "ANSI colour in a file: {log}");
    let addr = SocketAddr::new(s.ip, s.port);
    assert!(
        log.contains(&format!("listening on https://{addr} for 1 domains")),
        "{log}"
    );
    assert!(
        log.contains("serving https://mta-sts.example.com/.well-known/mta-sts.txt; publish _mta-sts.example.com. TXT \"v=STSv1; id="),
        "{log}"
    );
    let line = |what: &str| {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(what)).collect();
        assert_eq!(lines.len(), 1, "{what} once: {log}");
        lines[0].to_owned()
    };
    let stored = line("report stored");
    // curl connects from 127.0.0.1, whatever address the server listens on.
    assert!(stored.contains("peer=127.0.0.1:"), "{stored}");
    assert!(!stored.contains("Some("), "{stored}");
    assert!(stored.contains("size="), "{stored}");
    line("report already stored (duplicate)");
    let rejected = line("report quarantined");
    assert!(rejected.contains("peer=127.0.0.1:"), "{rejected}");
    line("shutting down");
    line("stopped");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let ca = TestCa::new("serve-log-json");
    let s = setup("log-json", &ca);
    let log_path = s.dir.join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let serve = start_with(&s, &["--log-format", "json"], log);
    assert_eq!(post(&s, &report_json(2)), 201);
    terminate(serve);
    let log = std::fs::read_to_string(&log_path).unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let stored = events
        .iter()
        .find(|e| e["message"] == "report stored")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(stored["level"], "INFO");
    assert!(
        stored["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{stored}"
    );
    assert!(events.iter().any(|e| e["message"] == "stopped"), "{log}");
}

#[test]
fn a_certificate_without_the_policy_host_is_refused_or_warned_about() {
    let ca = TestCa::new("serve-mismatch");
    let s = setup("mismatch", &ca);
    let other = ca.issue(&["www.example.org", "example.org"]).unwrap();
    let chain: Vec<&[u8]> = other.chain().iter().map(|c| c.as_ref()).collect();
    write_pem(&s.dir.join("cert.pem"), "CERTIFICATE", &chain);
    write_pem(
        &s.dir.join("key.pem"),
        "PRIVATE KEY",
        &[other.private_key().secret_der()],
    );
    let out = bin()
        .args([
            "serve",
            "--listen",
            &SocketAddr::new(s.ip, s.port).to_string(),
        ])
        .args(["--domain", "example.com", "--policy"])
        .arg(s.dir.join("policy.txt"))
        .arg("--cert")
        .arg(s.dir.join("cert.pem"))
        .arg("--key")
        .arg(s.dir.join("key.pem"))
        .arg("--data-dir")
        .arg(s.dir.join("data"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("does not name mta-sts.example.com (it names: www.example.org, example.org)"),
        "{err}"
    );
    assert!(err.contains("--allow-mismatched-certs"), "{err}");

    let log_path = s.dir.join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let serve = start_with(&s, &["--allow-mismatched-certs"], log);
    terminate(serve);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("WARN") && log.contains("serving anyway (--allow-mismatched-certs)"),
        "{log}"
    );
}

#[test]
fn a_database_url_other_than_postgres_is_refused_with_what_is_supported() {
    let out = bin()
        .args([
            "reports",
            "list",
            "--database",
            "mysql://user@localhost/tlsrpt",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--database mysql://user@localhost/tlsrpt: only postgres:// (or postgresql://) URLs are supported"),
        "{err}"
    );
    assert!(!Path::new("mysql:").exists());
}
