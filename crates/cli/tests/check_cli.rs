//! `mta-sts check` and `mta-sts suggest` as a user runs them, against the loopback lab.

mod support;

use support::run_beside_lab as run;

use mta_sts_testnet::{
    DnsHandle, HttpsHandle, Lab, SilentDnsServer, Site, SmtpBehaviour, SmtpHandle, Zone,
};

struct Domain {
    lab: Lab,
    dns: DnsHandle,
    _web: HttpsHandle,
    _mx: Vec<SmtpHandle>,
    ca_file: std::path::PathBuf,
}

async fn domain(policy: &str, with_records: bool) -> Domain {
    let lab = Lab::new();
    let web = lab
        .https([Site::policy("mta-sts.example.com", policy)])
        .await
        .unwrap();
    let mx1 = lab
        .smtp(
            "mx1.example.com",
            SmtpBehaviour::starttls(lab.ca().issue(&["mx1.example.com"]).unwrap()),
        )
        .await
        .unwrap();
    let mut zone = Zone::new("example.com")
        .address("mta-sts", web.ip())
        .mx(10, "mx1.example.com")
        .address("mx1", mx1.ip());
    if with_records {
        zone = zone
            .txt("_mta-sts", &["v=STSv1; id=1"])
            .txt("_smtp._tls", &["v=TLSRPTv1; rua=mailto:tlsrpt@example.com"]);
    }
    let dns = lab.dns([zone]).await.unwrap();
    let ca_file = std::env::temp_dir().join(format!(
        "mta-sts-cli-ca-{}-{}.pem",
        std::process::id(),
        dns.addr().ip()
    ));
    std::fs::write(&ca_file, lab.ca().root_pem()).unwrap();
    Domain {
        lab,
        dns,
        _web: web,
        _mx: vec![mx1],
        ca_file,
    }
}

impl Domain {
    fn args(&self) -> Vec<String> {
        vec![
            "--resolver".into(),
            self.dns.addr().to_string(),
            "--ca-file".into(),
            self.ca_file.display().to_string(),
            "--https-port".into(),
            self.lab.https_port().unwrap().to_string(),
            "--smtp-port".into(),
            self.lab.smtp_port().unwrap().to_string(),
            "--timeout".into(),
            "3".into(),
        ]
    }
}

const ENFORCE: &str = "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 1209600\n";

#[tokio::test(flavor = "multi_thread")]
async fn check_of_a_good_domain_exits_0() {
    let d = domain(ENFORCE, true).await;
    let mut args = vec!["check".to_owned(), "example.com".to_owned()];
    args.extend(d.args());
    let out = run(args).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("sender verdict: protected"), "{text}");
    assert!(text.contains("RFC hygiene:    clean"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_of_a_domain_without_records_exits_1_and_says_what_to_do() {
    let d = domain(ENFORCE, false).await;
    let mut args = vec!["check".to_owned(), "example.com".to_owned()];
    args.extend(d.args());
    let out = run(args).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("warning[sts-record-missing]"), "{text}");
    assert!(text.contains("fix:"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_json_is_an_array_of_reports() {
    let d = domain(ENFORCE, true).await;
    let mut args = vec![
        "check".to_owned(),
        "--json".to_owned(),
        "example.com".to_owned(),
    ];
    args.extend(d.args());
    let out = run(args).await;
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["domain"], "example.com");
    assert_eq!(v[0]["sender"]["status"], "protected");
    assert_eq!(v[0]["findings"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn check_with_a_silent_resolver_exits_2() {
    let silent = SilentDnsServer::start().await.unwrap();
    let args = vec![
        "check".to_owned(),
        "example.com".to_owned(),
        "--resolver".to_owned(),
        silent.addr().to_string(),
        "--timeout".to_owned(),
        "1".to_owned(),
    ];
    let out = run(args).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("check incomplete"), "{text}");
    assert!(
        !text.contains("ok\n"),
        "nothing is reported ok when nothing could be checked: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn suggest_prints_policy_records_diff_and_rollout() {
    let d = domain(
        "version: STSv1\nmode: testing\nmx: old.example.com\nmax_age: 604800\n",
        true,
    )
    .await;
    let mut args = vec![
        "suggest".to_owned(),
        "example.com".to_owned(),
        "--mode".to_owned(),
        "testing".to_owned(),
    ];
    args.extend(d.args());
    let out = run(args).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("    mx: mx1.example.com"), "{text}");
    assert!(
        text.contains("_mta-sts.example.com. 3600 IN TXT \"v=STSv1; id="),
        "{text}"
    );
    assert!(
        text.contains("+ mx: mx1.example.com") && text.contains("- mx: old.example.com"),
        "{text}"
    );
    assert!(
        // The published TLS-RPT record is kept; the changed policy goes before its id.
        text.contains("1. Publish the new policy first") && !text.contains("TLS-RPT record first"),
        "{text}"
    );
}
