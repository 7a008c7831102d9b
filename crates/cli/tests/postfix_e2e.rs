//! Real Postfix end to end (issue 12): Debian's Postfix asks `mta-sts resolver` through
//! `smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix` and delivers to lab MX hosts.
//! Mail to an `enforce` domain whose MX certificate is valid is delivered over verified TLS;
//! to an `enforce` domain whose MX certificate has the wrong name it is deferred; to a
//! `testing` domain (same wrong certificate) and to a domain without MTA-STS it is delivered.
//!
//! It needs a network namespace of its own (DNS on 127.0.0.1:53, policy hosts on
//! 127.0.0.2:443, MX hosts on port 25, the resolver on 127.0.0.1:8461, and a resolv.conf that
//! points at the lab), so it is ignored in `cargo test`: `bash scripts/postfix-test.sh` makes the
//! namespace and runs it (`scripts/test.sh` does, as a step of its own).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mta_sts_testnet::{
    DnsServer, HttpBehaviour, HttpsHandle, HttpsServer, Site, SmtpBehaviour, SmtpHandle,
    SmtpServer, TestCa, Zone,
};
use tokio::net::{TcpListener, UdpSocket};

const NETNS_VARIABLE: &str = "MTA_STS_POSTFIX_NETNS";
const WEB: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// One recipient domain of the lab.
struct Case {
    label: &'static str,
    /// The policy's mode, or `None` for a domain without MTA-STS.
    mode: Option<&'static str>,
    /// Whether the MX certificate names the MX host.
    good_certificate: bool,
    /// The MX host's address.
    mx_ip: Ipv4Addr,
    /// What Postfix must do with the mail.
    expected: &'static str,
}

const CASES: &[Case] = &[
    Case {
        label: "good",
        mode: Some("enforce"),
        good_certificate: true,
        mx_ip: Ipv4Addr::new(127, 0, 0, 11),
        expected: "sent",
    },
    Case {
        label: "badcert",
        mode: Some("enforce"),
        good_certificate: false,
        mx_ip: Ipv4Addr::new(127, 0, 0, 12),
        expected: "deferred",
    },
    Case {
        label: "testing",
        mode: Some("testing"),
        good_certificate: false,
        mx_ip: Ipv4Addr::new(127, 0, 0, 13),
        expected: "sent",
    },
    Case {
        label: "plain",
        mode: None,
        good_certificate: false,
        mx_ip: Ipv4Addr::new(127, 0, 0, 14),
        expected: "sent",
    },
];

fn domain(case: &Case) -> String {
    format!("{}.lab.example", case.label)
}

fn mx_host(case: &Case) -> String {
    format!("mx.{}", domain(case))
}

/// Kills a child process on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Postfix instance with its own config and queue directories under `dir`, stopped on drop.
struct Postfix {
    config: PathBuf,
    log: PathBuf,
}

impl Postfix {
    fn start(dir: &Path, ca_file: &Path) -> Self {
        let config = dir.join("etc");
        let queue = dir.join("spool");
        let data = dir.join("lib");
        for d in [&config, &queue, &data] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::copy("/etc/postfix/master.cf", config.join("master.cf")).unwrap();
        std::fs::write(config.join("main.cf"), "").unwrap();
        let log = dir.join("maillog");
        let settings = [
            format!("queue_directory={}", queue.display()),
            format!("data_directory={}", data.display()),
            format!("maillog_file_prefixes={}", dir.display()),
            format!("maillog_file={}", log.display()),
            "daemon_directory=/usr/lib/postfix/sbin".into(),
            "command_directory=/usr/sbin".into(),
            "meta_directory=/etc/postfix".into(),
            "shlib_directory=no".into(),
            "compatibility_level=3.6".into(),
            "mail_owner=postfix".into(),
            "setgid_group=postdrop".into(),
            "myhostname=sender.lab.example".into(),
            "mydestination=".into(),
            "alias_maps=".into(),
            "alias_database=".into(),
            "inet_interfaces=127.0.0.1".into(),
            "inet_protocols=ipv4".into(),
            // The machine under test: the resolver decides, Postfix enforces.
            "smtp_tls_policy_maps=socketmap:inet:127.0.0.1:8461:postfix".into(),
            "smtp_tls_security_level=may".into(),
            format!("smtp_tls_CAfile={}", ca_file.display()),
            "smtp_tls_loglevel=1".into(),
            // Deferred mail stays deferred for the length of the test.
            "minimal_backoff_time=300s".into(),
        ];
        postconf(&config, &["-e"], &settings);
        // No syslog here: Postfix logs through its own postlogd into maillog_file.
        postconf(
            &config,
            &["-M"],
            &["postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd".into()],
        );
        postconf(&config, &["-F"], &["*/*/chroot = n".into()]);
        // Nothing listens for mail: this Postfix only sends.
        postconf(&config, &["-M#"], &["smtp/inet".into()]);
        let chown = Command::new("chown")
            .arg("postfix")
            .arg(&data)
            .status()
            .unwrap();
        assert!(chown.success());
        let postfix = Self { config, log };
        let start = Command::new("postfix")
            .arg("-c")
            .arg(&postfix.config)
            .arg("start")
            .output()
            .unwrap();
        assert!(
            start.status.success(),
            "postfix start: {}{}",
            String::from_utf8_lossy(&start.stderr),
            postfix.log()
        );
        postfix
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Queues a message to `rcpt` through Postfix's sendmail.
    fn send(&self, rcpt: &str) {
        let mut child = Command::new("sendmail")
            .arg("-C")
            .arg(&self.config)
            .args(["-f", "sender@sender.lab.example", rcpt])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let message = format!(
            "From: sender@sender.lab.example\nTo: {rcpt}\nSubject: MTA-STS test\n\nHello {rcpt}\n"
        );
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), message.as_bytes()).unwrap();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success(), "sendmail to {rcpt}");
    }

    /// The delivery status Postfix logged for `rcpt` (`sent`, `deferred`, `bounced`), with its
    /// log line.
    fn status(&self, rcpt: &str) -> Option<(String, String)> {
        let needle = format!("to=<{rcpt}>");
        self.log()
            .lines()
            .filter(|line| line.contains(&needle))
            .find_map(|line| {
                let status = line.split("status=").nth(1)?;
                let word = status.split_whitespace().next()?;
                Some((word.to_owned(), line.to_owned()))
            })
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .output();
    }
}

fn postconf(config: &Path, flags: &[&str], values: &[String]) {
    let out = Command::new("postconf")
        .arg("-c")
        .arg(config)
        .args(flags)
        .args(values)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "postconf {flags:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lab: DNS, policy hosts and MX hosts (one per case, in order) on the namespace's
/// loopback; serving until the handles are dropped (DNS: until the test ends).
async fn start_lab(ca: &TestCa) -> (HttpsHandle, Vec<SmtpHandle>) {
    let mut zones = Vec::new();
    let mut sites = Vec::new();
    let mut mx = Vec::new();
    for case in CASES {
        let domain = domain(case);
        let mut zone = Zone::new(&domain)
            .mx(10, &mx_host(case))
            .address("mx", IpAddr::V4(case.mx_ip));
        if let Some(mode) = case.mode {
            zone = zone
                .txt("_mta-sts", &["v=STSv1; id=20261202"])
                .address("mta-sts", IpAddr::V4(WEB));
            let policy = format!(
                "version: STSv1\nmode: {mode}\nmx: {}\nmax_age: 86400\n",
                mx_host(case)
            );
            sites.push(Site::new(
                &format!("mta-sts.{domain}"),
                HttpBehaviour::policy(&policy),
            ));
        }
        zones.push(zone);
        let name = if case.good_certificate {
            mx_host(case)
        } else {
            "wrong-name.lab.example".to_owned()
        };
        let identity = ca.issue(&[&name]).unwrap();
        let listener = TcpListener::bind(SocketAddr::from((case.mx_ip, 25)))
            .await
            .expect("bind port 25 (run inside the network namespace: scripts/postfix-test.sh)");
        mx.push(
            SmtpServer::new(&mx_host(case), SmtpBehaviour::starttls(identity))
                .start_on(listener)
                .unwrap(),
        );
    }
    let https = TcpListener::bind(SocketAddr::from((WEB, 443)))
        .await
        .unwrap();
    let web = HttpsServer::new(ca, sites)
        .unwrap()
        .start_on(https)
        .unwrap();
    let udp = UdpSocket::bind("127.0.0.1:53").await.unwrap();
    let tcp = TcpListener::bind("127.0.0.1:53").await.unwrap();
    tokio::spawn(DnsServer::new(zones).run(udp, tcp, std::future::pending()));
    (web, mx)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a network namespace and Postfix: bash scripts/postfix-test.sh runs it"]
async fn postfix_defers_mail_to_an_enforce_domain_with_a_bad_certificate() {
    assert!(
        std::env::var_os(NETNS_VARIABLE).is_some(),
        "{NETNS_VARIABLE} is not set: run bash scripts/postfix-test.sh (it makes the network \
         namespace this test binds port 25, 53 and 443 in)"
    );
    let dir = std::env::temp_dir().join(format!("mta-sts-postfix-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Postfix's processes run as the postfix user: they must reach the CA file.
    let mut permissions = std::fs::metadata(&dir).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&dir, permissions).unwrap();
    let ca = TestCa::new("Postfix e2e CA");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.root_pem()).unwrap();
    let (_web, mx) = start_lab(&ca).await;

    // Issue 12's command line, with the system resolver: the namespace's resolv.conf.
    let resolver_log = dir.join("resolver.log");
    let resolver = Killed(
        Command::new(env!("CARGO_BIN_EXE_mta-sts"))
            .args(["resolver", "--listen", "127.0.0.1:8461", "--ca-file"])
            .arg(&ca_file)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .stderr(std::fs::File::create(&resolver_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect("127.0.0.1:8461").is_err() {
        assert!(Instant::now() < deadline, "the resolver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let postfix = tokio::task::spawn_blocking({
        let (dir, ca_file) = (dir.clone(), ca_file.clone());
        move || Postfix::start(&dir, &ca_file)
    })
    .await
    .unwrap();
    let recipients: Vec<String> = CASES
        .iter()
        .map(|case| format!("user@{}", domain(case)))
        .collect();
    for rcpt in &recipients {
        postfix.send(rcpt);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let statuses = loop {
        let statuses: Vec<_> = recipients.iter().map(|r| postfix.status(r)).collect();
        if statuses.iter().all(Option::is_some) {
            break statuses;
        }
        assert!(
            Instant::now() < deadline,
            "Postfix did not try every recipient:\n{}\nresolver:\n{}",
            postfix.log(),
            std::fs::read_to_string(&resolver_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let context = || {
        format!(
            "maillog:\n{}\nresolver log:\n{}",
            postfix.log(),
            std::fs::read_to_string(&resolver_log).unwrap_or_default()
        )
    };
    for ((case, status), server) in CASES.iter().zip(&statuses).zip(&mx) {
        let (status, line) = status.as_ref().unwrap();
        eprintln!("{}: {line}", case.label);
        assert_eq!(
            status,
            case.expected,
            "{}: {line}\n{}",
            case.label,
            context()
        );
        let delivered: usize = server.sessions().iter().map(|s| s.messages.len()).sum();
        assert_eq!(
            delivered,
            usize::from(case.expected == "sent"),
            "{}: messages at its MX\n{}",
            case.label,
            context()
        );
    }
    let log = postfix.log();
    // The enforce domain was delivered over verified TLS, with SNI for the MX host name
    // (servername=hostname); the bad one deferred for its certificate.
    assert!(
        log.contains("Verified TLS connection established to mx.good.lab.example"),
        "{}",
        context()
    );
    let good_sni: Vec<_> = mx[0].sessions().iter().map(|s| s.sni.clone()).collect();
    assert!(
        good_sni.contains(&Some("mx.good.lab.example".to_owned())),
        "{good_sni:?}"
    );
    let (_, badcert_line) = statuses[1].as_ref().unwrap();
    assert!(
        badcert_line.contains("dsn=4.7.5") && badcert_line.contains("certificate not verified"),
        "deferred for its certificate: {badcert_line}"
    );
    drop(postfix);
    drop(resolver);
    let _ = std::fs::remove_dir_all(&dir);
}
