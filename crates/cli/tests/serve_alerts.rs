//! `mta-sts serve` with `[alerts]`: reports with failures posted to the intake raise
//! report-derived alerts, delivered once per alert to a local webhook receiver and through a
//! local SMTP relay (STARTTLS), and not again when more such reports arrive.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mta_sts_testnet::{Lab, SmtpBehaviour, SmtpServer, WebhookHandle, next_loopback_ip};
use serde_json::Value;
use support::{bin, start_listening, temp_dir, write_cert_files};

/// A report for example.com covering yesterday (UTC): 90 successful sessions, 10 failed with
/// `certificate-expired`.
fn report(id: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let yesterday =
        mta_sts_tlsrpt::report::Timestamp::from_unix_seconds(i64::try_from(now).unwrap() - 86_400)
            .unwrap()
            .to_string();
    let day = &yesterday[..10];
    format!(
        r#"{{"organization-name":"Example Sender","date-range":{{"start-datetime":"{day}T00:00:00Z","end-datetime":"{day}T23:59:59Z"}},"contact-info":"tlsrpt@sender.example","report-id":"{id}","policies":[{{"policy":{{"policy-type":"sts","policy-string":["version: STSv1","mode: testing","mx: mx1.example.com","max_age: 604800"],"policy-domain":"example.com","mx-host":["mx1.example.com"]}},"summary":{{"total-successful-session-count":90,"total-failure-session-count":10}},"failure-details":[{{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.1","receiving-mx-hostname":"mx1.example.com","failed-session-count":10}}]}}]}}"#
    )
}

fn post(addr: SocketAddr, ca: &std::path::Path, body: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--resolve"])
        .arg(format!("mta-sts.example.com:{}:{}", addr.port(), addr.ip()))
        .arg("--cacert")
        .arg(ca)
        .args([
            "-H",
            "Content-Type: application/tlsrpt+json",
            "--data-binary",
        ])
        .arg(body)
        .args(["-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!(
            "https://mta-sts.example.com:{}/tlsrpt",
            addr.port()
        ))
        .output()
        .expect("curl is installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_with_failures_are_one_webhook_post_and_one_mail_per_alert() {
    let lab = Lab::new();
    let dir = temp_dir("alerts");
    write_cert_files(&dir, &lab.ca().issue(&["mta-sts.example.com"]).unwrap());
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, lab.ca().root_pem()).unwrap();
    let ip = IpAddr::V4(next_loopback_ip());
    let port = std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::new(ip, port);
    let webhook = WebhookHandle::start(lab.ca(), 200).await.unwrap();
    let relay_ip = next_loopback_ip().to_string();
    let listener = tokio::net::TcpListener::bind((relay_ip.as_str(), 0))
        .await
        .unwrap();
    let relay_port = listener.local_addr().unwrap().port();
    let identity = lab.ca().issue(&[relay_ip.as_str()]).unwrap();
    let relay = SmtpServer::new("relay.test", SmtpBehaviour::starttls(identity))
        .start_on(listener)
        .unwrap();
    std::fs::write(
        dir.join("mta-sts.toml"),
        format!(
            r#"[listen]
https = ["{addr}"]
[tls]
mode = "files"
cert = "cert.pem"
key = "key.pem"
[storage]
data_dir = "data"
[checks]
enabled = false
[alerts]
webhook = "{webhook}"
ca_file = ["ca.pem"]
[alerts.smtp]
host = "{relay_ip}"
port = {relay_port}
from = "mta-sts@example.com"
to = ["postmaster@example.com"]
[[domain]]
name = "example.com"
mode = "testing"
mx = ["mx1.example.com"]
"#,
            webhook = webhook.url()
        ),
    )
    .unwrap();
    let config = dir.join("mta-sts.toml");
    let _server = tokio::task::spawn_blocking(move || {
        start_listening(
            bin()
                .arg("serve")
                .arg("--config")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            addr,
        )
    })
    .await
    .unwrap();

    assert_eq!(post(addr, &ca, &report("r-1")), "201");
    let posts = || -> Vec<Value> {
        webhook
            .received()
            .iter()
            .map(|post| serde_json::from_slice(&post.body).unwrap())
            .collect()
    };
    let mails = || -> Vec<String> {
        relay
            .sessions()
            .iter()
            .flat_map(|s| s.messages.clone())
            .map(|m| String::from_utf8_lossy(&m.data).into_owned())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while posts().len() < 2 || mails().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "alerts not delivered: {:?}",
            posts()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // More reports of the same failures: evaluated again, still open, nothing sent.
    assert_eq!(post(addr, &ca, &report("r-2")), "201");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut kinds: Vec<(String, String)> = posts()
        .iter()
        .map(|p| {
            assert_eq!(p["domain"], "example.com");
            (
                p["kind"].as_str().unwrap().to_owned(),
                p["key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("failure_rate_high".to_owned(), String::new()),
            (
                "new_failure_type".to_owned(),
                "certificate-expired".to_owned()
            ),
        ]
    );
    let mails = mails();
    assert_eq!(mails.len(), 2, "{mails:#?}");
    assert!(
        mails
            .iter()
            .any(|m| m.contains("Subject: [mta-sts] example.com: 10.0 % of sessions failed")),
        "{mails:#?}"
    );
}
