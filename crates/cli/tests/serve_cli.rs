//! `mta-sts serve` as a process: it hosts a policy that `mta-sts check` then finds valid, takes
//! TLS reports by HTTPS POST into the store that `mta-sts reports` reads, and loses no
//! acknowledged report when killed with SIGKILL.

mod support;

use support::{
    Server as Serve, bin, report_about, report_json, start_listening, temp_dir, write_cert_files,
};

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mta_sts_testnet::{Lab, TestCa, Zone, next_loopback_ip};

const POLICY: &str =
    "version: STSv1\r\nmode: testing\r\nmx: mx1.example.com\r\nmax_age: 604800\r\n";

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
    write_cert_files(&dir, &ca.issue(&["mta-sts.example.com"]).unwrap());
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

/// `mta-sts serve` in the quick form for the setup's files, without a store.
fn serve_command(s: &Setup) -> Command {
    let mut command = bin();
    command
        .args(["serve", "--listen"])
        .arg(SocketAddr::new(s.ip, s.port).to_string())
        .args(["--domain", "example.com", "--policy"])
        .arg(s.dir.join("policy.txt"))
        .arg("--cert")
        .arg(s.dir.join("cert.pem"))
        .arg("--key")
        .arg(s.dir.join("key.pem"));
    command
}

/// `start` with more flags, and standard error (the log) going to `log`.
fn start_with(s: &Setup, extra: &[&str], log: impl Into<Stdio>) -> Serve {
    start_listening(
        serve_command(s)
            .arg("--data-dir")
            .arg(s.dir.join("data"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log),
        SocketAddr::new(s.ip, s.port),
    )
}

/// Writes `mta-sts.toml` in the setup's directory: its certificate files and data directory,
/// `[intake]` settings `intake`, and example.com in testing with the MX pattern `mx`.
fn write_config(s: &Setup, mx: &str, intake: &str) -> PathBuf {
    let addr = SocketAddr::new(s.ip, s.port);
    let config = s.dir.join("mta-sts.toml");
    std::fs::write(
        &config,
        format!(
            "[listen]\nhttps = [\"{addr}\"]\n[tls]\nmode = \"files\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\n[checks]\nenabled = false\n[storage]\ndata_dir = \"data\"\n[intake]\n{intake}\n[[domain]]\nname = \"example.com\"\nmode = \"testing\"\nmx = [\"{mx}\"]\n"
        ),
    )
    .unwrap();
    config
}

/// Starts `mta-sts serve --config CONFIG`, its log going to `serve.log` in the setup's
/// directory.
fn start_config(s: &Setup, config: &Path) -> (Serve, PathBuf) {
    let log_path = s.dir.join("serve.log");
    let serve = start_listening(
        bin()
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stderr(std::fs::File::create(&log_path).unwrap()),
        SocketAddr::new(s.ip, s.port),
    );
    (serve, log_path)
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

/// `kill -HUP` reloads the config file: the next fetch serves the changed policy, and the log
/// and `dns records --config` name the same new `_mta-sts` id.
#[test]
fn sighup_reloads_the_config_file() {
    let ca = TestCa::new("serve-reload");
    let s = setup("reload", &ca);
    let config = write_config(&s, "mx1.example.com", "");
    let policy_id = || {
        let out = bin()
            .args(["dns", "records", "--format", "json", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["policy_id"].as_str().unwrap().to_owned()
    };
    let first_id = policy_id();
    let (server, log_path) = start_config(&s, &config);
    let url = format!(
        "https://mta-sts.example.com:{}/.well-known/mta-sts.txt",
        s.port
    );
    let fetch = || String::from_utf8_lossy(&curl(&s, &[&url]).stdout).into_owned();
    assert!(fetch().contains("mx: mx1.example.com\r\n"));

    write_config(&s, "mx2.example.com", "");
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
    let new_id = policy_id();
    assert_ne!(first_id, new_id, "a changed policy has a new id");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains(&format!("id={first_id}\"")),
        "the start-up names the first id: {log}"
    );
    assert!(
        log.contains(&format!(
            "policy of example.com changed: publish _mta-sts.example.com. TXT \"v=STSv1; id={new_id}\""
        )),
        "{log}"
    );
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
    assert_eq!(
        post(&s, &report_about(3, "example.org")),
        403,
        "a report about a domain not served here is refused"
    );
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
    assert!(
        stored.contains(r#"reporter="Example Sender" report_id="r-1""#),
        "{stored}"
    );
    assert!(stored.contains("status=201"), "{stored}");
    let duplicate = line("report already stored (duplicate)");
    assert!(duplicate.contains(r#"report_id="r-1""#), "{duplicate}");
    let rejected = line("report quarantined (400)");
    assert!(rejected.contains("peer=127.0.0.1:"), "{rejected}");
    assert!(rejected.contains("WARN"), "{rejected}");
    let refused = line(
        "report refused (403, 1 since start): reports about example.org are not accepted here",
    );
    assert!(refused.contains(r#"report_id="r-3""#), "{refused}");
    line("shutting down");
    assert!(line("stopped").contains("refused_reports=1"), "{log}");
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
    write_cert_files(
        &s.dir,
        &ca.issue(&["www.example.org", "example.org"]).unwrap(),
    );
    let out = serve_command(&s)
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

#[test]
fn every_413_and_503_is_logged_with_the_peer() {
    let ca = TestCa::new("serve-log-limits");
    let s = setup("log-limits", &ca);
    let config = write_config(&s, "mx1.example.com", "max_body = 2000\nmax_concurrent = 1");
    let (serve, log_path) = start_config(&s, &config);
    assert_eq!(post(&s, &" ".repeat(3000)), 413);
    // An upload that never ends holds the only report slot, so another report is shed with
    // 503. Which of the two the server takes first is a race: when the slow one is the one
    // shed, it is started again.
    let slow_upload = || {
        let mut child = Command::new("curl")
            .args(["-sS", "--max-time", "20", "--resolve"])
            .arg(format!("mta-sts.example.com:{}:{}", s.port, s.ip))
            .arg("--cacert")
            .arg(&s.ca_pem)
            .args(["-T", "-", "-X", "POST", "-H", "Expect:"])
            .arg(format!("https://mta-sts.example.com:{}/tlsrpt", s.port))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut upload = child.stdin.take().unwrap();
        upload.write_all(b"{\"organization-name\":").unwrap();
        upload.flush().unwrap();
        (child, upload)
    };
    let mut slow = slow_upload();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if slow.0.try_wait().unwrap().is_some() {
            slow = slow_upload();
            continue;
        }
        let status = post(&s, &report_json(1));
        if status == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "never 503: last {status}");
    }
    let (mut slow, upload) = slow;
    let _ = slow.kill();
    let _ = slow.wait();
    drop(upload);
    terminate(serve);
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines = |what: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains(what))
            .map(str::to_owned)
            .collect()
    };
    let too_large = lines("report refused (413)");
    assert_eq!(too_large.len(), 1, "{log}");
    assert!(too_large[0].contains("peer=127.0.0.1:"), "{log}");
    assert!(too_large[0].contains("size=3000"), "{log}");
    let shed = lines("report refused (503)");
    assert!(!shed.is_empty(), "{log}");
    assert!(
        shed.iter()
            .all(|l| l.contains("peer=127.0.0.1:") && l.contains("status=503")),
        "{log}"
    );
}

#[test]
fn an_unreachable_postgres_is_named_once_with_what_to_check() {
    let ca = TestCa::new("serve-no-postgres");
    let s = setup("no-postgres", &ca);
    // Nothing listens on a port just bound and released.
    let port = std::net::TcpListener::bind((s.ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://mta-sts@{}:{port}/tlsrpt", s.ip);
    let out = serve_command(&s)
        .args(["--database", &url])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "one line, not a retry storm: {err}");
    assert_eq!(err.matches(&url).count(), 1, "{err}");
    assert_eq!(err.matches("Connection refused").count(), 1, "{err}");
    assert!(err.contains("is PostgreSQL running there"), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}
