//! `mta-sts tlsrpt` as processes, end to end: datagrams in → the day's reports → delivered to
//! our own `mta-sts serve` intake over HTTPS and to an SMTP sink with STARTTLS → read back
//! from the stores with identical counts. The day is injected (`collect --now`, `send --day`),
//! never waited for.

mod support;

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Stdio;

use mta_sts_store::{Location, ReportFilter, Source, Store};
use mta_sts_testnet::{Lab, SmtpBehaviour, SmtpServer, next_loopback_ip};
use mta_sts_tlsrpt::report::{DEFAULT_MAX_DECOMPRESSED, decode};
use support::{Server, bin, start_listening, temp_dir, write_cert_files};

const DAY: &str = "2026-11-01";
/// Noon on [`DAY`], UTC.
const NOON: i64 = 1_793_491_200 + 12 * 3600;

/// A running `mta-sts serve` for example.com and plain.example, storing into `dir/received`.
fn start_serve(dir: &Path, lab: &Lab, addr: SocketAddr) -> Server {
    std::fs::write(
        dir.join("policy.txt"),
        "version: STSv1\r\nmode: testing\r\nmx: mx1.example.com\r\nmax_age: 604800\r\n",
    )
    .unwrap();
    let identity = lab
        .ca()
        .issue(&["mta-sts.example.com", "mta-sts.plain.example"])
        .unwrap();
    write_cert_files(dir, &identity);
    start_listening(
        bin()
            .args([
                "serve",
                "--listen",
                &addr.to_string(),
                "--domain",
                "example.com",
            ])
            .arg("--policy")
            .arg(dir.join("policy.txt"))
            // The intake takes reports only about the domains it serves (intake.accept).
            .args(["--domain", "plain.example", "--policy"])
            .arg(dir.join("policy.txt"))
            .arg("--cert")
            .arg(dir.join("cert.pem"))
            .arg("--key")
            .arg(dir.join("key.pem"))
            .arg("--data-dir")
            .arg(dir.join("received"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        addr,
    )
}

/// Datagrams for two domains; returns them as lines and the expected (successful, failed)
/// per domain.
fn datagrams(record: &str) -> (String, [(&'static str, u64, u64); 2]) {
    let sts = r#"{"policy-type":2,"policy-string":["version: STSv1","mode: testing","mx: mx1.example.com","max_age: 604800"],"policy-domain":"example.com","mx-host":["mx1.example.com"]"#;
    let mut lines = String::new();
    for index in 0..120 {
        let failed = index % 10 == 0;
        let details = if failed {
            r#","failure-details":[{"c":204,"s":"192.0.2.1","r":"198.51.100.7","n":"mx1.example.com"}]"#
        } else {
            ""
        };
        lines.push_str(&format!(
            r#"{{"dpv":"1","d":"example.com","pr":"{record}","policies":[{sts},"f":{},"t":{}{details}}}]}}"#,
            u8::from(failed),
            u8::from(failed)
        ));
        lines.push('\n');
    }
    for _ in 0..30 {
        lines.push_str(&format!(
            r#"{{"dpv":"1","d":"plain.example","pr":"{}","policies":[{{"policy-type":9,"policy-domain":"plain.example","f":0,"t":0}}]}}"#,
            record.replace("mailto:tlsrpt@example.com", "mailto:tlsrpt@plain.example")
        ));
        lines.push('\n');
    }
    lines.push_str("this line is not a datagram\n");
    (lines, [("example.com", 108, 12), ("plain.example", 30, 0)])
}

fn collect(data: &Path, lines: &str) {
    let mut child = bin()
        .args([
            "tlsrpt",
            "collect",
            "--stdin",
            "--now",
            &NOON.to_string(),
            "--data-dir",
        ])
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("151 datagrams (1 invalid)"), "{stderr}");
}

async fn counts(store: &Store) -> Vec<(String, u64, u64)> {
    let mut counts = Vec::new();
    for report in store.list_reports(&ReportFilter::default()).await.unwrap() {
        for policy in report.policies {
            counts.push((policy.domain, policy.successful, policy.failed));
        }
    }
    counts.sort();
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_become_reports_delivered_over_https_and_smtp_with_identical_counts() {
    let lab = Lab::new();
    let dir = temp_dir("e2e");
    let ca_pem = dir.join("ca.pem");
    std::fs::write(&ca_pem, lab.ca().root_pem()).unwrap();

    let serve_ip = IpAddr::V4(next_loopback_ip());
    let serve_port = std::net::TcpListener::bind((serve_ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _serve = start_serve(&dir, &lab, SocketAddr::new(serve_ip, serve_port));

    let relay_ip = next_loopback_ip().to_string();
    let relay_identity = lab.ca().issue(&[relay_ip.as_str()]).unwrap();
    let listener = tokio::net::TcpListener::bind((relay_ip.as_str(), 0))
        .await
        .unwrap();
    let relay_port = listener.local_addr().unwrap().port();
    let relay = SmtpServer::new("relay.test", SmtpBehaviour::starttls(relay_identity))
        .start_on(listener)
        .unwrap();

    let record = format!(
        "v=TLSRPTv1; rua=mailto:tlsrpt@example.com,https://mta-sts.example.com:{serve_port}/tlsrpt"
    );
    let (lines, expected) = datagrams(&record);
    let data = dir.join("sender");
    collect(&data, &lines);

    let out = bin()
        .args([
            "tlsrpt",
            "send",
            "--day",
            DAY,
            "--json",
            "--org",
            "Example Sender",
        ])
        .args(["--contact", "tlsrpt@sender.example", "--smtp-relay"])
        .arg(format!("{relay_ip}:{relay_port}"))
        .arg("--ca-file")
        .arg(&ca_pem)
        .arg("--resolve")
        .arg(format!("mta-sts.example.com:{serve_ip}"))
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let status = |data: &Path| {
        let out = bin()
            .args(["tlsrpt", "status", "--json", "--data-dir"])
            .arg(data)
            .output()
            .unwrap();
        (
            out.status.code(),
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        )
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{:#}", status(&data).1);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["reports"], 2);
    assert_eq!(summary["sent"], 4, "{summary} {:#}", status(&data).1);

    let expected: Vec<_> = expected
        .iter()
        .map(|(domain, ok, failed)| ((*domain).to_owned(), *ok, *failed))
        .collect();
    // The HTTPS intake of `mta-sts serve` stored both reports.
    let received = Store::open(&Location::DataDirectory(dir.join("received")))
        .await
        .unwrap();
    assert_eq!(counts(&received).await, expected);
    received.close().await;
    // The SMTP sink got both mails; the store reads them as report mails.
    let mails: Vec<Vec<u8>> = relay
        .sessions()
        .into_iter()
        .flat_map(|session| session.messages)
        .map(|message| message.data)
        .collect();
    assert_eq!(mails.len(), 2);
    let from_mail = Store::open(&Location::DataDirectory(dir.join("mail")))
        .await
        .unwrap();
    for mail in &mails {
        from_mail
            .ingest(Source::Mail, "message/rfc822", mail)
            .await
            .unwrap();
    }
    assert_eq!(counts(&from_mail).await, expected);
    from_mail.close().await;

    let (code, status) = status(&data);
    assert_eq!(code, Some(0));
    assert_eq!(status["collected"]["datagrams"], 151);
    assert_eq!(status["collected"]["invalid"], 1);
    let deliveries = status["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 4);
    assert!(deliveries.iter().all(|d| d["status"] == "sent"), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn send_out_writes_gzip_reports_and_mails_instead_of_delivering() {
    let dir = temp_dir("out");
    let (lines, expected) = datagrams("v=TLSRPTv1; rua=mailto:tlsrpt@example.com");
    let data = dir.join("sender");
    collect(&data, &lines);
    let out_dir = dir.join("out");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    std::fs::write(dir.join("dkim.pem"), key.serialize_pem()).unwrap();
    let out = bin()
        .args([
            "tlsrpt",
            "send",
            "--day",
            DAY,
            "--contact",
            "tlsrpt@sender.example",
            "--dkim-selector",
            "tlsrpt",
            "--dkim-key",
        ])
        .arg(dir.join("dkim.pem"))
        .arg("--out")
        .arg(&out_dir)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}");
    let start = NOON - 12 * 3600;
    let report_name = names
        .iter()
        .find(|name| name.starts_with("sender.example!example.com!") && name.ends_with(".json.gz"))
        .unwrap();
    assert!(
        report_name.contains(&format!("!{start}!{}!", start + 86_399)),
        "{report_name}"
    );
    let report = decode(
        &std::fs::read(out_dir.join(report_name)).unwrap(),
        DEFAULT_MAX_DECOMPRESSED,
    )
    .unwrap()
    .report;
    let summary = report.policies[0].summary;
    assert_eq!(
        (
            summary.total_successful_session_count,
            summary.total_failure_session_count
        ),
        (expected[0].1, expected[0].2)
    );
    let mail_name = names.iter().find(|name| name.ends_with(".eml")).unwrap();
    let mail = std::fs::read_to_string(out_dir.join(mail_name)).unwrap();
    assert!(mail.starts_with("DKIM-Signature: "), "{mail}");
    assert!(
        mail.contains("a=ed25519-sha256") && mail.contains("d=sender.example"),
        "{mail}"
    );
    assert!(mail.contains("s=tlsrpt;"), "{mail}");
    // Nothing was delivered: both deliveries still wait.
    let out = bin()
        .args(["tlsrpt", "status", "--json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        status["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "pending")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn send_rejects_a_day_that_is_not_a_date() {
    let dir = temp_dir("bad-day");
    let out = bin()
        .args(["tlsrpt", "send", "--day", "2026-02-30", "--data-dir"])
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--day \"2026-02-30\" is not a date"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The scheduling of thread `tid` of process `pid`: (policy, real-time priority, nice), from
/// /proc (fields 40 and 41 of `stat`, and 19).
fn scheduling(pid: u32, tid: &str) -> Scheduling {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap();
    // The command name, in parentheses, may hold spaces: count fields after its end.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // Field 3 (the state) is fields[0].
    (
        fields[41 - 3].parse().unwrap(),
        fields[40 - 3].parse().unwrap(),
        fields[19 - 3].parse().unwrap(),
    )
}

/// (policy, real-time priority, nice) of a thread, as [`scheduling`] reads them.
type Scheduling = (u32, u32, i32);

/// `collect` on a socket: without `CAP_SYS_NICE` and with no limit raised (a unit without
/// `LimitRTPRIO=1`), the default priority, saying why; with the right to real-time priority
/// (root here: raising `RLIMIT_RTPRIO` itself would need `CAP_SYS_RESOURCE`), `SCHED_FIFO` 1
/// for the draining thread and for no other thread. Each says so in one line.
#[test]
fn collect_raises_the_draining_thread_alone_when_allowed() {
    use std::io::BufRead as _;
    let dir = temp_dir("drain-priority");
    let unprivileged = [
        "prlimit",
        "--rtprio=0:0",
        "--nice=0:0",
        "--",
        "setpriv",
        "--inh-caps=-sys_nice",
        "--bounding-set=-sys_nice",
    ];
    let cases: [(&[&str], &str, Scheduling); 2] = [
        (
            &unprivileged,
            "normal priority (real-time refused",
            (0, 0, 0),
        ),
        (&[], "real-time (SCHED_FIFO priority 1)", (1, 1, 0)),
    ];
    for (index, (wrapper, said, expected)) in cases.into_iter().enumerate() {
        let socket = dir.join(format!("tlsrpt-{index}.sock"));
        let mut command = std::process::Command::new(
            wrapper
                .first()
                .map_or(env!("CARGO_BIN_EXE_mta-sts"), |first| first),
        );
        if !wrapper.is_empty() {
            command
                .args(&wrapper[1..])
                .arg(env!("CARGO_BIN_EXE_mta-sts"));
        }
        let mut child = command
            .args(["tlsrpt", "collect", "--no-send", "--socket"])
            .arg(&socket)
            .arg("--data-dir")
            .arg(dir.join(format!("data-{index}")))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        while !line.contains("draining thread") {
            line.clear();
            assert_ne!(
                stderr.read_line(&mut line).unwrap(),
                0,
                "collect {wrapper:?} stopped before saying how it drains (setpriv must be able \
                 to drop CAP_SYS_NICE: run the test as root)"
            );
        }
        assert!(
            line.contains(&format!("runs at {said}")),
            "{wrapper:?} (the real-time case needs CAP_SYS_NICE: run the test as root): {line}"
        );
        let pid = child.id();
        let mut drains = 0;
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let tid = task.unwrap().file_name().into_string().unwrap();
            let name = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).unwrap();
            if name.trim_end() == "tlsrpt-drain" {
                drains += 1;
                assert_eq!(scheduling(pid, &tid), expected, "{wrapper:?}: {line}");
            } else {
                assert_eq!(
                    scheduling(pid, &tid),
                    (0, 0, 0),
                    "thread {name} {wrapper:?}"
                );
            }
        }
        assert_eq!(drains, 1);
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
