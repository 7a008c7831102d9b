//! `mta-sts serve`'s scheduled checks against a lab on loopback: the served domain is checked
//! as `mta-sts check` checks it (its own policy host is this server), the history is in the
//! API, the domain page and `/metrics`, a change of the MX records without a new policy is
//! drift, delivered as one alert, and a viewer limited to one domain sees only that domain's
//! checks.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mta_sts_testnet::{Lab, WebhookHandle, Zone, next_loopback_ip};
use serde_json::Value;
use support::{bin, start_listening, temp_dir, write_cert_files};

/// A new API token and the sha256 for the config, from `mta-sts passwd --token`.
fn token() -> (String, String) {
    let out = bin().args(["passwd", "--token"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("token:"))
        .expect("token line")
        .trim()
        .to_owned();
    let sha = text
        .lines()
        .find_map(|l| l.strip_prefix("sha256:"))
        .expect("sha256 line")
        .trim()
        .to_owned();
    (token, sha)
}

struct Site {
    addr: SocketAddr,
    ca: PathBuf,
}

impl Site {
    /// GET `path` with the bearer `token`: the status and the body.
    fn get(&self, path: &str, token: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--resolve"])
            .arg(format!(
                "mta-sts.example.com:{}:{}",
                self.addr.port(),
                self.addr.ip()
            ))
            .arg("--cacert")
            .arg(&self.ca)
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["-w", "\n%{http_code}"])
            .arg(format!(
                "https://mta-sts.example.com:{}{path}",
                self.addr.port()
            ))
            .output()
            .expect("curl is installed");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (status.trim().parse().unwrap_or(0), body.to_owned())
    }

    fn json(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.get(path, token);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The checks of `domain` once `done` holds for them, waiting for the scheduled rounds.
    fn wait_for_checks(
        &self,
        domain: &str,
        token: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let page = self.json(&format!("/api/v1/domains/{domain}/checks"), token);
            let checks = page["checks"].as_array().cloned().unwrap_or_default();
            if done(&checks) {
                return checks;
            }
            assert!(
                Instant::now() < deadline,
                "no such checks of {domain} in time: {page:#}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// A directory with a certificate for both policy hosts from the lab's CA (and the CA as
/// `ca.pem`), and a free loopback address for `serve`.
fn site(lab: &Lab, name: &str) -> (PathBuf, Site) {
    let dir = temp_dir(name);
    write_cert_files(
        &dir,
        &lab.ca()
            .issue(&["mta-sts.example.com", "mta-sts.example.org"])
            .unwrap(),
    );
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, lab.ca().root_pem()).unwrap();
    let ip = IpAddr::V4(next_loopback_ip());
    let port = std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::new(ip, port);
    (dir, Site { addr, ca })
}

/// `mta-sts serve --config DIR/mta-sts.toml`, once it listens on `addr`.
async fn serve(dir: &Path, addr: SocketAddr) -> support::Server {
    let config = dir.join("mta-sts.toml");
    tokio::task::spawn_blocking(move || {
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
    .unwrap()
}

fn zone(ip: IpAddr, mx: &str) -> Zone {
    Zone::new("example.com")
        .txt("_mta-sts", &["v=STSv1; id=20260101"])
        .txt(
            "_smtp._tls",
            &["v=TLSRPTv1; rua=https://mta-sts.example.com/tlsrpt"],
        )
        .address("mta-sts", ip)
        .mx(10, &format!("{mx}.example.com"))
        .address(mx, ip)
}

fn write_config(dir: &Path, addr: SocketAddr, dns: SocketAddr, sha: &str, org_sha: &str) {
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
interval = "1s"
spread = "0s"
resolver = "{dns}"
ca_file = ["ca.pem"]
https_port = {port}
no_smtp = true
timeout = 3
[[dashboard.token]]
name = "all"
sha256 = "{sha}"
[[dashboard.token]]
name = "org"
sha256 = "{org_sha}"
domains = ["example.org"]
[[domain]]
name = "example.com"
mode = "testing"
mx = ["mx1.example.com"]
[[domain]]
name = "example.org"
mode = "testing"
mx = ["mx1.example.org"]
"#,
            port = addr.port()
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_checks_keep_history_find_drift_and_are_shown() {
    let lab = Lab::new();
    let (dir, site) = site(&lab, "scheduled");
    let (ip, port, addr) = (site.addr.ip(), site.addr.port(), site.addr);
    let dns = lab.dns([zone(ip, "mx1")]).await.unwrap();
    let (all, sha) = token();
    let (org, org_sha) = token();
    write_config(&dir, addr, dns.addr(), &sha, &org_sha);
    let _server = serve(&dir, addr).await;

    // The first check is the one `mta-sts check` makes with the same options.
    let first = tokio::task::block_in_place(|| {
        site.wait_for_checks("example.com", &all, |c| !c.is_empty())
    });
    let oldest = first.last().unwrap();
    assert_eq!(oldest["verdict"], "testing", "{oldest:#}");
    assert_eq!(oldest["failed"], false);
    assert_eq!(oldest["policy"]["id"], "20260101");
    assert_eq!(oldest["policy"]["mode"], "testing");
    assert_eq!(oldest["mx"], serde_json::json!(["mx1.example.com"]));
    assert_eq!(oldest["certificates"][0]["host"], "mta-sts.example.com");
    assert_eq!(oldest["drift"], serde_json::json!([]));
    let args: Vec<String> = vec![
        "check".into(),
        "--json".into(),
        "--no-smtp".into(),
        "example.com".into(),
        "--resolver".into(),
        dns.addr().to_string(),
        "--ca-file".into(),
        site.ca.display().to_string(),
        "--https-port".into(),
        port.to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || bin().args(&args).output().unwrap())
        .await
        .unwrap();
    let checked: Value = serde_json::from_slice(&out.stdout).unwrap();
    let codes = |findings: &Value| -> Vec<String> {
        findings
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_owned())
            .collect()
    };
    let domain = tokio::task::block_in_place(|| site.json("/api/v1/domains/example.com", &all));
    let latest = &domain["latest_check"];
    assert_eq!(codes(&latest["findings"]), codes(&checked[0]["findings"]));
    assert_eq!(latest["verdict"], checked[0]["sender"]["status"]);

    // The MX records change, the policy does not: drift, once, with what changed.
    dns.set_zone(zone(ip, "mx2"));
    let checks = tokio::task::block_in_place(|| {
        site.wait_for_checks("example.com", &all, |c| {
            c.first().is_some_and(|c| c["mx"][0] == "mx2.example.com")
        })
    });
    let changed = checks
        .iter()
        .rev()
        .find(|c| c["mx"][0] == "mx2.example.com")
        .unwrap();
    let drift = changed["drift"].as_array().unwrap();
    assert_eq!(drift.len(), 1, "{changed:#}");
    assert_eq!(drift[0]["kind"], "mx-changed-policy-not");
    assert_eq!(drift[0]["key"], "mx1.example.com");
    let changes: Vec<&str> = changed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        changes.contains(&"MX mx1.example.com → mx2.example.com"),
        "{changes:?}"
    );

    let (status, page) = tokio::task::block_in_place(|| site.get("/domains/example.com", &all));
    assert_eq!(status, 200);
    assert!(page.contains(r#"data-table="check-history""#), "{page}");
    assert!(
        page.contains("changed (mx1.example.com → mx2.example.com) but the policy did not"),
        "{page}"
    );
    let (_, overview) = tokio::task::block_in_place(|| site.get("/", &all));
    assert!(
        overview.contains(r#"data-field="check-verdict">testing<"#),
        "{overview}"
    );

    let (_, metrics) = tokio::task::block_in_place(|| site.get("/metrics", &all));
    assert!(
        metrics.contains(r#"mta_sts_check_verdict{domain="example.com",verdict="testing"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"mta_sts_certificate_expiry_timestamp_seconds{domain="example.com",host="mta-sts.example.com"}"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"mta_sts_drift{domain="example.com",kind="mx-changed-policy-not",key="mx1.example.com"} 1"#
        ),
        "{metrics}"
    );

    // example.org is not in the lab's DNS: its checks are kept too, and only its viewer's.
    let theirs = tokio::task::block_in_place(|| {
        site.wait_for_checks("example.org", &org, |c| !c.is_empty())
    });
    assert_ne!(theirs[0]["verdict"], "protected");
    // Its policy cannot be fetched: kept as such, and drift unless the check was incomplete.
    let failing = &theirs[0];
    assert!(failing["policy"]["fetch_error"].is_string(), "{failing:#}");
    assert!(
        failing["failed"] == true || failing["drift"][0]["kind"] == "policy-fetch-failing",
        "{failing:#}"
    );
    let (status, _) =
        tokio::task::block_in_place(|| site.get("/api/v1/domains/example.com/checks", &org));
    assert_eq!(status, 404);
    let (_, metrics) = tokio::task::block_in_place(|| site.get("/metrics", &org));
    assert!(!metrics.contains("example.com"), "{metrics}");
    assert!(
        metrics.contains(r#"mta_sts_check_timestamp_seconds{domain="example.org"}"#),
        "{metrics}"
    );
}

/// A check that waits on a DNS server that never answers does not hold up shutdown: SIGTERM
/// ends `serve` while the check is still waiting for its minute.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_does_not_wait_for_a_check_under_way() {
    let lab = Lab::new();
    let (dir, site) = site(&lab, "shutdown");
    let addr = site.addr;
    let dns = lab
        .dns([
            Zone::new("example.com").silent("_mta-sts"),
            Zone::new("example.org").silent("_mta-sts"),
        ])
        .await
        .unwrap();
    let (_, sha) = token();
    write_config(&dir, addr, dns.addr(), &sha, &sha);
    let config = dir.join("mta-sts.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("timeout = 3", "timeout = 60");
    std::fs::write(&config, text).unwrap();
    let mut server = serve(&dir, addr).await;
    let asked = Instant::now() + Duration::from_secs(60);
    while !dns
        .queries()
        .iter()
        .any(|(name, _)| name.to_string().starts_with("_mta-sts."))
    {
        assert!(Instant::now() < asked, "no check asked the DNS server");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The server is serving (it takes signals from then on), and the check is under way.
    let (status, _) = tokio::task::block_in_place(|| site.get("/.well-known/mta-sts.txt", ""));
    assert_eq!(status, 200);
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Well before the check's minute is over.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve waited for the check under way"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
}

/// Drift found by a scheduled check is delivered as exactly one alert: the checks after it,
/// which still see the drift, send nothing more.
#[tokio::test(flavor = "multi_thread")]
async fn drift_from_a_scheduled_check_is_one_alert() {
    let lab = Lab::new();
    let (dir, site) = site(&lab, "alert");
    let ip = site.addr.ip();
    let dns = lab.dns([zone(ip, "mx1")]).await.unwrap();
    let webhook = WebhookHandle::start(lab.ca(), 200).await.unwrap();
    let (all, sha) = token();
    write_config(&dir, site.addr, dns.addr(), &sha, &sha);
    let config = dir.join("mta-sts.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "[alerts]\nwebhook = \"{}\"\nca_file = [\"ca.pem\"]\n",
        webhook.url()
    ));
    std::fs::write(&config, text).unwrap();
    let _server = serve(&dir, site.addr).await;
    tokio::task::block_in_place(|| site.wait_for_checks("example.com", &all, |c| !c.is_empty()));
    // Alerts about example.com (example.org is not in the lab's DNS: its policy fetch fails).
    let alerts = || -> Vec<Value> {
        webhook
            .received()
            .iter()
            .map(|post| serde_json::from_slice(&post.body).unwrap())
            .filter(|alert: &Value| alert["domain"] == "example.com")
            .collect()
    };
    assert!(alerts().is_empty(), "no drift yet, no alert");

    dns.set_zone(zone(ip, "mx2"));
    let drifted = |c: &Value| c["drift"].as_array().is_some_and(|d| !d.is_empty());
    // The drift, and three more checks that still see it.
    tokio::task::block_in_place(|| {
        site.wait_for_checks("example.com", &all, |c| {
            c.iter().filter(|c| drifted(c)).count() >= 4
        })
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while alerts().is_empty() {
        assert!(Instant::now() < deadline, "no alert was posted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alerts = alerts();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["kind"], "mx_changed_policy_not");
    assert_eq!(alerts[0]["key"], "mx1.example.com");
    assert!(
        alerts[0]["summary"]
            .as_str()
            .unwrap()
            .contains("mx1.example.com → mx2.example.com"),
        "{:#}",
        alerts[0]
    );
}
