//! `mta-sts reports ingest imaps://...` and `imap://...` against a real Dovecot (Debian's
//! `dovecot-imapd`), started here on loopback with a configuration of its own and a
//! certificate from the test CA: messages are stored and moved by their outcome, a rerun reads
//! nothing twice, STARTTLS works on the plain port, `--watch` takes mail as it arrives and
//! connects again after the server goes away, a server without `MOVE` gets copy + expunge, a
//! message larger than any report is quarantined unread, and a wrong password or an untrusted
//! certificate is a clear error.
//!
//! Dovecot runs as root (as in CI, where scripts/test.sh installs it). Without it (or not as
//! root) the tests say SKIPPED and pass, unless `MTA_STS_REQUIRE_DOVECOT` is set: then they
//! fail.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mta_sts_testnet::TestCa;
use support::{bin, json, report_json, stderr, temp_dir, write_cert_files, write_pem};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const DOVECOT: &str = "/usr/sbin/dovecot";
const USER: &str = "tester";
const PASSWORD: &str = "s3cret pass";

struct Dovecot {
    dir: PathBuf,
    imap: SocketAddr,
    imaps: SocketAddr,
    ca_file: PathBuf,
    ca: TestCa,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new(DOVECOT)
            .arg("-c")
            .arg(self.dir.join("dovecot.conf"))
            .arg("stop")
            .status();
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A Dovecot of this test's own, or `None` (SKIPPED) where it cannot run and is not required.
fn dovecot(name: &str) -> Option<Dovecot> {
    dovecot_with(name, "")
}

/// [`dovecot`] with `extra` appended to its configuration.
fn dovecot_with(name: &str, extra: &str) -> Option<Dovecot> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
    if !Path::new(DOVECOT).exists() || !root {
        assert!(
            std::env::var_os("MTA_STS_REQUIRE_DOVECOT").is_none(),
            "MTA_STS_REQUIRE_DOVECOT is set but {DOVECOT} is missing or this is not root \
             (scripts/test.sh installs dovecot-imapd)"
        );
        eprintln!("SKIPPED: needs {DOVECOT} (dovecot-imapd) and root");
        return None;
    }
    let dir = temp_dir(name);
    let ca = TestCa::new("IMAP test CA");
    write_cert_files(&dir, &ca.issue(&["localhost"]).unwrap());
    let ca_file = dir.join("ca.pem");
    write_pem(&ca_file, "CERTIFICATE", &[ca.root_der().as_ref()]);
    std::fs::write(
        dir.join("passwd"),
        format!("{USER}:{{PLAIN}}{PASSWORD}::::::\n"),
    )
    .unwrap();
    for sub in ["run", "state", "home"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    // The mail belongs to nobody (uid 0 may not own mail); the run and state dirs to root.
    let status = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(dir.join("home"))
        .status()
        .unwrap();
    assert!(status.success());
    let (imap, imaps) = (free_port(), free_port());
    let d = dir.display();
    let conf = format!(
        "protocols = imap\n\
         listen = 127.0.0.1\n\
         base_dir = {d}/run\n\
         state_dir = {d}/state\n\
         log_path = {d}/dovecot.log\n\
         ssl = yes\n\
         ssl_cert = <{d}/cert.pem\n\
         ssl_key = <{d}/key.pem\n\
         disable_plaintext_auth = yes\n\
         login_trusted_networks =\n\
         auth_mechanisms = plain\n\
         passdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
         userdb {{\n  driver = static\n  args = uid=65534 gid=65534 home={d}/home/%u\n}}\n\
         mail_location = maildir:~/Maildir\n\
         first_valid_uid = 1\n\
         first_valid_gid = 1\n\
         service imap-login {{\n  inet_listener imap {{\n    port = {}\n  }}\n  \
         inet_listener imaps {{\n    port = {}\n    ssl = yes\n  }}\n}}\n\
         service stats {{\n  unix_listener stats-reader {{\n    mode = 0600\n  }}\n  \
         unix_listener stats-writer {{\n    mode = 0600\n  }}\n}}\n{extra}",
        imap.port(),
        imaps.port()
    );
    std::fs::write(dir.join("dovecot.conf"), conf).unwrap();
    let dovecot = Dovecot {
        dir,
        imap,
        imaps,
        ca_file,
        ca,
    };
    dovecot.start();
    Some(dovecot)
}

type Session = async_imap::Session<TlsStream<TcpStream>>;

impl Dovecot {
    /// Starts the server (again) on its ports and waits until it listens.
    fn start(&self) {
        let status = Command::new(DOVECOT)
            .arg("-c")
            .arg(self.dir.join("dovecot.conf"))
            .status()
            .unwrap();
        assert!(
            status.success(),
            "dovecot did not start: {}",
            std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
        );
        support::wait_for_listener(self.imaps);
        support::wait_for_listener(self.imap);
    }

    /// Closes every connection of the test user from the server's side (`doveadm kick`: a
    /// stopping Dovecot leaves logged-in sessions running).
    fn kick(&self) {
        let out = Command::new("doveadm")
            .arg("-c")
            .arg(self.dir.join("dovecot.conf"))
            .args(["kick", USER])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "doveadm kick failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server and waits until its ports refuse connections.
    fn stop(&self) {
        let status = Command::new(DOVECOT)
            .arg("-c")
            .arg(self.dir.join("dovecot.conf"))
            .arg("stop")
            .status()
            .unwrap();
        assert!(status.success(), "dovecot did not stop");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect_timeout(&self.imaps, Duration::from_millis(200)).is_ok()
        {
            assert!(
                Instant::now() < deadline,
                "dovecot still listens after stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the server announces `capability` after login.
    async fn has_capability(&self, capability: &str) -> bool {
        let mut session = self.session().await;
        let has = session.capabilities().await.unwrap().has_str(capability);
        session.logout().await.unwrap();
        has
    }

    fn url(&self, folder: &str) -> String {
        format!("imaps://{USER}@localhost:{}/{folder}", self.imaps.port())
    }

    /// The test's own IMAP client (over TLS, checking the certificate).
    async fn session(&self) -> Session {
        let tcp = TcpStream::connect(self.imaps).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = TlsConnector::from(self.ca.client_config())
            .connect(name, tcp)
            .await
            .unwrap();
        let mut client = async_imap::Client::new(tls);
        client.read_response().await.unwrap().unwrap();
        client
            .login(USER, PASSWORD)
            .await
            .map_err(|(e, _)| e)
            .unwrap()
    }

    async fn append(&self, folder: &str, messages: &[Vec<u8>]) {
        let mut session = self.session().await;
        let _ = session.create(folder).await;
        for message in messages {
            session.append(folder, None, None, message).await.unwrap();
        }
        session.logout().await.unwrap();
    }

    /// How many messages `folder` holds (0 when it does not exist).
    async fn count(&self, folder: &str) -> u32 {
        let mut session = self.session().await;
        let count = match session.status(folder, "(MESSAGES)").await {
            Ok(mailbox) => mailbox.exists,
            Err(_) => 0,
        };
        session.logout().await.unwrap();
        count
    }

    /// The Subject lines of `folder`'s messages (seen flags untouched).
    async fn subjects(&self, folder: &str) -> Vec<String> {
        let mut session = self.session().await;
        session.examine(folder).await.unwrap();
        let mut subjects = Vec::new();
        {
            let fetches = session
                .fetch("1:*", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
                .await
                .unwrap();
            let mut fetches = std::pin::pin!(fetches);
            while let Some(fetch) = fetches.next().await {
                let fetch = fetch.unwrap();
                let header = String::from_utf8_lossy(fetch.header().unwrap_or_default());
                subjects.push(header.trim().trim_start_matches("Subject: ").to_owned());
            }
        }
        session.logout().await.unwrap();
        subjects.sort();
        subjects
    }
}

/// A report mail as a sender writes one: report `r-ID` as a `multipart/report` attachment.
fn report_mail(id: usize) -> Vec<u8> {
    format!(
        "From: tlsrpt@sender.example\r\n\
         To: tlsrpt@example.com\r\n\
         Subject: Report Domain: example.com Submitter: sender.example Report-ID: <r-{id}>\r\n\
         Message-ID: <r-{id}@sender.example>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=tlsrpt; boundary=\"b\"\r\n\
         \r\n\
         --b\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         This is a TLS report.\r\n\
         --b\r\n\
         Content-Type: application/tlsrpt+json\r\n\
         Content-Disposition: attachment; filename=\"sender.example!example.com!1!2!r-{id}.json\"\r\n\
         \r\n\
         {}\r\n\
         --b--\r\n",
        report_json(id)
    )
    .into_bytes()
}

fn not_a_report() -> Vec<u8> {
    b"From: someone@example.org\r\nTo: tlsrpt@example.com\r\nSubject: lunch?\r\n\r\nNoon?\r\n"
        .to_vec()
}

fn ingest(dovecot: &Dovecot, data: &Path, sources: &[String]) -> std::process::Output {
    bin()
        .args(["reports", "ingest", "--json", "--no-dkim", "--data-dir"])
        .arg(data)
        .arg("--ca-file")
        .arg(&dovecot.ca_file)
        .args(sources)
        .env("MTA_STS_IMAP_PASSWORD", PASSWORD)
        .output()
        .unwrap()
}

fn stored_reports(data: &Path) -> usize {
    let out = bin()
        .args(["reports", "list", "--json", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    json(&out).as_array().unwrap().len()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// `reports ingest --watch` of the server's INBOX into `data`, its output piped.
fn watch(dovecot: &Dovecot, data: &Path) -> std::process::Child {
    bin()
        .args([
            "reports",
            "ingest",
            "--json",
            "--no-dkim",
            "--watch",
            "--data-dir",
        ])
        .arg(data)
        .arg("--ca-file")
        .arg(&dovecot.ca_file)
        .arg(dovecot.url("INBOX"))
        .env("MTA_STS_IMAP_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the processed folder holds `count` messages, failing after `seconds`.
fn wait_for_processed(rt: &tokio::runtime::Runtime, dovecot: &Dovecot, count: u32, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while rt.block_on(dovecot.count("TLSRPT-Processed")) < count {
        assert!(
            Instant::now() < deadline,
            "--watch did not move {count} messages within {seconds} s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends SIGTERM to `child` and collects what it wrote.
fn terminate(child: std::process::Child) -> std::process::Output {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    child.wait_with_output().unwrap()
}

#[test]
fn messages_are_stored_moved_by_outcome_and_never_read_twice() {
    let Some(dovecot) = dovecot("moved") else {
        return;
    };
    let rt = runtime();
    let messages = vec![
        report_mail(1),
        report_mail(2),
        report_mail(3),
        report_mail(1),
        not_a_report(),
    ];
    rt.block_on(dovecot.append("INBOX", &messages));
    let data = temp_dir("moved-data");

    let out = ingest(&dovecot, &data, &[dovecot.url("INBOX")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let counts = json(&out);
    assert_eq!(counts["read"], 5, "{counts}");
    assert_eq!(counts["stored"], 3, "{counts}");
    assert_eq!(counts["duplicates"], 1, "{counts}");
    assert_eq!(counts["quarantined"], 1, "{counts}");
    assert_eq!(stored_reports(&data), 3);

    rt.block_on(async {
        assert_eq!(dovecot.count("INBOX").await, 0);
        assert_eq!(dovecot.count("TLSRPT-Processed").await, 4);
        assert_eq!(dovecot.subjects("TLSRPT-Quarantine").await, ["lunch?"]);
    });

    // A rerun finds nothing left to read; new mail is read, the moved mail is not.
    rt.block_on(dovecot.append("INBOX", &[report_mail(4)]));
    let out = ingest(&dovecot, &data, &[dovecot.url("INBOX")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let counts = json(&out);
    assert_eq!(
        (counts["read"].as_u64(), counts["stored"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(stored_reports(&data), 4);
}

#[test]
fn starttls_on_the_plain_port_and_folders_of_ones_choice() {
    let Some(dovecot) = dovecot("starttls") else {
        return;
    };
    let rt = runtime();
    rt.block_on(dovecot.append("Reports", &[report_mail(7), not_a_report()]));
    let data = temp_dir("starttls-data");
    let url = format!("imap://{USER}@localhost:{}/Reports", dovecot.imap.port());
    let out = ingest(
        &dovecot,
        &data,
        &[
            url,
            "--imap-processed".into(),
            "Done".into(),
            "--imap-quarantine".into(),
            "Refused".into(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["stored"], 1);
    rt.block_on(async {
        assert_eq!(dovecot.count("Reports").await, 0);
        assert_eq!(dovecot.count("Done").await, 1);
        assert_eq!(dovecot.count("Refused").await, 1);
    });
}

#[test]
fn watch_takes_mail_as_it_arrives_and_stops_on_sigterm() {
    let Some(dovecot) = dovecot("watch") else {
        return;
    };
    let rt = runtime();
    rt.block_on(dovecot.append("INBOX", &[report_mail(10)]));
    let data = temp_dir("watch-data");
    let child = watch(&dovecot, &data);
    let wait_for = |count: u32| wait_for_processed(&rt, &dovecot, count, 30);
    // What was there at the start, then two that arrive while it waits in IDLE.
    wait_for(1);
    rt.block_on(dovecot.append("INBOX", &[report_mail(11), report_mail(12)]));
    wait_for(3);

    let out = terminate(child);
    assert!(out.status.success(), "{}", stderr(&out));
    let counts = json(&out);
    assert_eq!(counts["stored"], 3, "{counts}");
    assert_eq!(stored_reports(&data), 3);
}

#[test]
fn a_wrong_password_or_an_untrusted_certificate_is_a_clear_error() {
    let Some(dovecot) = dovecot("errors") else {
        return;
    };
    let rt = runtime();
    rt.block_on(dovecot.append("INBOX", &[report_mail(20)]));
    let data = temp_dir("errors-data");

    let out = bin()
        .args(["reports", "ingest", "--no-dkim", "--data-dir"])
        .arg(&data)
        .arg("--ca-file")
        .arg(&dovecot.ca_file)
        .arg(dovecot.url("INBOX"))
        .env("MTA_STS_IMAP_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot log in as tester"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("wrong"),
        "the password is printed: {}",
        stderr(&out)
    );

    // Without --ca-file the test CA is not trusted: no password goes out.
    let out = bin()
        .args(["reports", "ingest", "--no-dkim", "--data-dir"])
        .arg(&data)
        .arg(dovecot.url("INBOX"))
        .env("MTA_STS_IMAP_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("TLS handshake"), "{}", stderr(&out));
    assert!(stderr(&out).contains("UnknownIssuer"), "{}", stderr(&out));

    // The message is where it was.
    assert_eq!(rt.block_on(dovecot.count("INBOX")), 1);
}

#[test]
fn serve_reads_its_mailboxes_beside_the_https_intake() {
    let Some(dovecot) = dovecot("serve") else {
        return;
    };
    let rt = runtime();
    rt.block_on(dovecot.append("INBOX", &[report_mail(30), report_mail(31)]));
    let dir = temp_dir("serve-config");
    std::fs::write(dir.join("imap-password"), format!("{PASSWORD}\n")).unwrap();
    // A Maildir with one new report mail, beside the IMAP folder.
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(dir.join("Maildir").join(sub)).unwrap();
    }
    std::fs::write(dir.join("Maildir/new/1.mail"), report_mail(32)).unwrap();
    let listen = free_port();
    std::fs::write(
        dir.join("mta-sts.toml"),
        format!(
            "[listen]\nhttp = [\"{listen}\"]\n[tls]\nmode = \"none\"\n[checks]\nenabled = false\n[storage]\n\
             data_dir = \"data\"\n\
             [[mailbox]]\nurl = \"{}\"\npassword_file = \"imap-password\"\nca_file = [\"{}\"]\n\
             [[mailbox]]\nurl = \"maildir:Maildir\"\npoll_seconds = 1\n\
             [[domain]]\nname = \"example.com\"\nmode = \"testing\"\nmx = [\"mx.example.com\"]\n",
            dovecot.url("INBOX"),
            dovecot.ca_file.display()
        ),
    )
    .unwrap();
    let _server = support::start_listening(
        bin()
            .args(["serve", "--config"])
            .arg(dir.join("mta-sts.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        listen,
    );
    let data = dir.join("data");
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored_reports(&data) < 3 {
        assert!(
            Instant::now() < deadline,
            "serve did not store the 3 mailed reports within 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    rt.block_on(async {
        assert_eq!(dovecot.count("INBOX").await, 0);
        assert_eq!(dovecot.count("TLSRPT-Processed").await, 2);
    });
    let seen: Vec<_> = std::fs::read_dir(dir.join("Maildir/cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(seen, ["1.mail:2,S"]);
}

/// Without `MOVE` (RFC 6851) messages are copied, flagged `\\Deleted` and expunged: the folder
/// ends up as empty as with `MOVE`.
#[test]
fn a_server_without_move_gets_copy_flag_and_expunge() {
    let Some(dovecot) = dovecot_with(
        "no-move",
        "protocol imap {\n  imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE \
         LITERAL+ UIDPLUS\n}\n",
    ) else {
        return;
    };
    let rt = runtime();
    // The server really announces no MOVE, so the copy path is the one taken.
    assert!(!rt.block_on(dovecot.has_capability("MOVE")));
    assert!(rt.block_on(dovecot.has_capability("IDLE")));
    rt.block_on(dovecot.append("INBOX", &[report_mail(40), report_mail(41), not_a_report()]));
    let data = temp_dir("no-move-data");
    let out = ingest(&dovecot, &data, &[dovecot.url("INBOX")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["stored"], 2, "{}", stderr(&out));
    rt.block_on(async {
        assert_eq!(dovecot.count("INBOX").await, 0);
        assert_eq!(dovecot.count("TLSRPT-Processed").await, 2);
        assert_eq!(dovecot.subjects("TLSRPT-Quarantine").await, ["lunch?"]);
    });
    // Nothing is read twice: the expunged messages are gone from the folder.
    let out = ingest(&dovecot, &data, &[dovecot.url("INBOX")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["read"], 0);
}

/// A message larger than any report is moved to the quarantine folder without being fetched;
/// the reports beside it are stored.
#[test]
fn an_oversized_message_is_quarantined_unread() {
    let Some(dovecot) = dovecot("oversized") else {
        return;
    };
    let rt = runtime();
    let mut huge = b"From: big@sender.example\r\nTo: tlsrpt@example.com\r\n\
        Subject: huge\r\n\r\n"
        .to_vec();
    let line = [b'x'; 998];
    while huge.len() <= mta_sts_tlsrpt::mail::MAX_MAIL_SIZE {
        huge.extend_from_slice(&line);
        huge.extend_from_slice(b"\r\n");
    }
    rt.block_on(dovecot.append("INBOX", &[report_mail(50), huge, report_mail(51)]));
    let data = temp_dir("oversized-data");
    let out = ingest(&dovecot, &data, &[dovecot.url("INBOX")]);
    // The run goes on past the refused message, and says which one it was and why.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("INBOX#2"), "{}", stderr(&out));
    assert!(stderr(&out).contains("larger than"), "{}", stderr(&out));
    assert_eq!(stored_reports(&data), 2);
    rt.block_on(async {
        assert_eq!(dovecot.count("INBOX").await, 0);
        assert_eq!(dovecot.count("TLSRPT-Processed").await, 2);
        assert_eq!(dovecot.subjects("TLSRPT-Quarantine").await, ["huge"]);
    });
}

/// `--watch` connects again when the server goes away, and takes the mail that arrived
/// meanwhile.
#[test]
fn watch_reconnects_after_the_server_restarts() {
    let Some(dovecot) = dovecot("reconnect") else {
        return;
    };
    let rt = runtime();
    rt.block_on(dovecot.append("INBOX", &[report_mail(60)]));
    let data = temp_dir("reconnect-data");
    let mut child = watch(&dovecot, &data);
    let wait_for = |count: u32| wait_for_processed(&rt, &dovecot, count, 60);
    wait_for(1);
    // The server drops the session and is gone for a while: the watcher's first tries fail.
    dovecot.kick();
    dovecot.stop();
    // Long enough for the watcher to see the break and try (and fail) at least once.
    std::thread::sleep(Duration::from_secs(2));
    assert!(child.try_wait().unwrap().is_none(), "--watch exited");
    dovecot.start();
    rt.block_on(dovecot.append("INBOX", &[report_mail(61)]));
    wait_for(2);

    let out = terminate(child);
    assert!(out.status.success(), "{:?} {}", out.status, stderr(&out));
    assert!(
        stderr(&out).contains("connecting again"),
        "{}",
        stderr(&out)
    );
    assert_eq!(json(&out)["stored"], 2);
    assert_eq!(stored_reports(&data), 2);
}
