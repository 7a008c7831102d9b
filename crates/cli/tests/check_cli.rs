//! `mta-sts check` and `mta-sts suggest` as a user runs them, against the loopback lab.

mod support;

use support::run_beside_lab as run;

use mta_sts_testnet::{
    DnsHandle, HttpBehaviour, HttpsHandle, Lab, SilentDnsServer, Site, SiteTls, SmtpBehaviour,
    SmtpHandle, Zone,
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

/// A lab with one healthy domain and one of each broken kind, all in one DNS server, so one
/// `check` run covers them.
struct World {
    lab: Lab,
    dns: DnsHandle,
    _web: HttpsHandle,
    _mx: Vec<SmtpHandle>,
    ca_file: std::path::PathBuf,
}

/// Healthy, broken in most ways at once, CNAME'd multi-string record, non-UTF-8 record,
/// plain HTTP on the HTTPS port, not existing.
const WORLD: [&str; 6] = [
    "good.example",
    "broken.example",
    "cname.example",
    "bytes.example",
    "plain.example",
    "gone.example",
];

async fn world() -> World {
    let lab = Lab::new();
    let policy = |d: &str, mode: &str| {
        format!("version: STSv1\nmode: {mode}\nmx: mx1.{d}\nmax_age: 1209600\n")
    };
    let web = lab
        .https([
            Site::policy("mta-sts.good.example", &policy("good.example", "enforce")),
            Site::policy("mta-sts.broken.example", &policy("broken.example", "testing")),
            Site::policy("mta-sts.cname.example", &policy("cname.example", "enforce")),
            Site::new(
                "mta-sts.bytes.example",
                HttpBehaviour::Ok {
                    content_type: "text/plain".into(),
                    body: b"version: STSv1\nmode: testing\nmx: mx1.bytes.example\nmax_age: 86400\n# \xff\xfe\n".to_vec(),
                },
            ),
            Site::policy("mta-sts.plain.example", &policy("plain.example", "enforce"))
                .tls(SiteTls::RefuseWithPlaintext),
        ])
        .await
        .unwrap();
    let mut mx = Vec::new();
    let mut zones = Vec::new();
    for d in [
        "good.example",
        "broken.example",
        "cname.example",
        "bytes.example",
        "plain.example",
    ] {
        let host = format!("mx1.{d}");
        let behaviour = match d {
            "broken.example" => SmtpBehaviour::starttls(lab.ca().issue_expired(&[&host]).unwrap()),
            "plain.example" => SmtpBehaviour::NoStartTls,
            _ => SmtpBehaviour::starttls(lab.ca().issue(&[&host]).unwrap()),
        };
        let server = lab.smtp(&host, behaviour).await.unwrap();
        let mut zone = Zone::new(d)
            .address("mta-sts", web.ip())
            .mx(10, &host)
            .address("mx1", server.ip());
        zone = match d {
            "broken.example" => zone
                .txt("_mta-sts", &["v=STSv1; id=has-dash"])
                .txt("_smtp._tls", &["v=TLSRPTv1; rua=ftp://x"])
                .mx(20, "mx2.broken.example")
                .address("mx2", mta_sts_testnet::next_loopback_ip().into()),
            "cname.example" => zone
                .cname("_mta-sts", "sts.provider.cname.example")
                .txt("sts.provider", &["v=STSv1; ", "id=2024", "cname"])
                .txt(
                    "_smtp._tls",
                    &["v=TLSRPTv1; ", "rua=mailto:tlsrpt@cname.example"],
                ),
            "bytes.example" => zone.txt_bytes("_mta-sts", &[b"v=STSv1; id=1; x=\xff"]).txt(
                "_smtp._tls",
                &["v=TLSRPTv1; rua=mailto:tlsrpt@bytes.example"],
            ),
            _ => zone.txt("_mta-sts", &["v=STSv1; id=1"]).txt(
                "_smtp._tls",
                &[&format!("v=TLSRPTv1; rua=mailto:tlsrpt@{d}")],
            ),
        };
        zones.push(zone);
        mx.push(server);
    }
    zones.push(Zone::new("gone.example").nxdomain("@"));
    let dns = lab.dns(zones).await.unwrap();
    let ca_file = std::env::temp_dir().join(format!(
        "mta-sts-cli-world-ca-{}-{}.pem",
        std::process::id(),
        dns.addr().ip()
    ));
    std::fs::write(&ca_file, lab.ca().root_pem()).unwrap();
    World {
        lab,
        dns,
        _web: web,
        _mx: mx,
        ca_file,
    }
}

impl World {
    fn check(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec!["check".into()];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args.extend([
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
        ]);
        args
    }
}

fn schema() -> jsonschema::Validator {
    let text = include_str!("../../../schema/check.schema.json");
    let schema: serde_json::Value = serde_json::from_str(text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn assert_valid(validator: &jsonschema::Validator, value: &serde_json::Value) {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn check_json_of_good_and_broken_domains_matches_the_schema() {
    let w = world().await;
    let mut args = vec!["--json"];
    args.extend(WORLD);
    let out = run(w.check(&args)).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid(&schema(), &v);
    // In input order, one per domain.
    let domains: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["domain"].as_str().unwrap())
        .collect();
    assert_eq!(domains, WORLD);
    // Records are text; the parsed record sits beside the raw one.
    assert_eq!(
        v[0]["evidence"]["sts_txt"]["ok"]["records"][0],
        "v=STSv1; id=1"
    );
    assert_eq!(v[0]["evidence"]["sts_txt"]["ok"]["parsed"]["id"], "1");
    assert_eq!(v[0]["sender"]["status"], "protected");
    assert_eq!(
        v[2]["evidence"]["sts_txt"]["ok"]["parsed"]["id"],
        "2024cname"
    );
    assert_eq!(
        v[2]["evidence"]["sts_txt"]["ok"]["cname_chain"][0],
        "sts.provider.cname.example"
    );
    assert_eq!(
        v[3]["evidence"]["sts_txt"]["ok"]["records"][0],
        "v=STSv1; id=1; x=\\xff"
    );
    assert_eq!(v[3]["evidence"]["sts_txt"]["ok"]["escaped"], true);
    assert_eq!(v[3]["evidence"]["policy"]["ok"]["body_escaped"], true);
    let codes = |i: usize| -> Vec<String> {
        v[i]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_owned())
            .collect()
    };
    for code in [
        "sts-record-invalid-id",
        "smtp-cert-expired",
        "smtp-connect-failed",
        "mode-testing",
    ] {
        assert!(
            codes(1).iter().any(|c| c == code),
            "{code} not in {:?}",
            codes(1)
        );
    }
    assert!(
        codes(4).iter().any(|c| c == "policy-host-tls"),
        "{:?}",
        codes(4)
    );
    assert_eq!(codes(5), ["domain-not-found"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_json_of_an_unreachable_resolver_matches_the_schema() {
    let closed = mta_sts_testnet::refused_addr().await.unwrap();
    let args = vec![
        "check".to_owned(),
        "--json".to_owned(),
        "example.com".to_owned(),
        "--resolver".to_owned(),
        closed.to_string(),
        "--timeout".to_owned(),
        "1".to_owned(),
    ];
    let out = run(args).await;
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid(&schema(), &v);
    assert_eq!(v[0]["sender"]["status"], "unknown");
    assert_eq!(v[0]["findings"][0]["code"], "resolver-unreachable");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_schema_rejects_what_the_output_never_is() {
    let w = world().await;
    let out = run(w.check(&["--json", "good.example"])).await;
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let validator = schema();
    assert!(validator.is_valid(&v));
    // The old shape: a TXT record as an array of byte numbers.
    v[0]["evidence"]["sts_txt"]["ok"]["records"][0] = serde_json::json!([118, 61]);
    assert!(!validator.is_valid(&v));
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["evidence"]["checked_at"] = serde_json::json!(1_700_000_000);
    assert!(!validator.is_valid(&v));
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["evidence"]["surprise"] = serde_json::json!(true);
    assert!(!validator.is_valid(&v));
}

#[tokio::test(flavor = "multi_thread")]
async fn human_output_shows_the_evidence_of_each_area() {
    let w = world().await;
    let out = run(w.check(&["good.example", "cname.example"])).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for expected in [
        "record:  \"v=STSv1; id=1\"",
        "id:      1",
        "url:     https://mta-sts.good.example/.well-known/mta-sts.txt",
        "fetched: HTTP 200, text/plain, ",
        "certificate issued by CN=Testnet CA",
        "mode:    enforce",
        "max_age: 1209600 (14 days)",
        "mx:      mx1.good.example",
        "10 mx1.good.example  covered by mx1.good.example",
        "STARTTLS yes, TLSv1.3, ",
        "SAN mx1.good.example (matches mx1.good.example), issuer CN=Testnet CA",
        "days left)",
        "rua:     mailto:tlsrpt@good.example",
        "CNAME:   → sts.provider.cname.example",
        "id:      2024cname",
    ] {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }
    assert!(!text.contains("      ok\n"), "{text}");

    let quiet = run(w.check(&["--quiet", "good.example"])).await;
    let quiet = String::from_utf8_lossy(&quiet.stdout);
    assert!(quiet.contains("      ok\n"), "{quiet}");
    assert!(!quiet.contains("record:"), "{quiet}");
}

#[tokio::test(flavor = "multi_thread")]
async fn human_output_of_broken_domains_names_port_plaintext_and_missing_domain() {
    let w = world().await;
    let out = run(w.check(&["broken.example", "plain.example", "gone.example"])).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let port = w.lab.smtp_port().unwrap();
    assert!(
        text.contains(&format!("connection to port {port} refused")),
        "{text}"
    );
    assert!(text.contains("expired"), "{text}");
    assert!(text.contains("plain text, not TLS"), "{text}");
    assert!(!text.contains("InvalidContentType\n"), "{text}");
    assert!(text.contains("STARTTLS no"), "{text}");
    let gone = &text[text.find("gone.example").unwrap()..];
    assert!(gone.contains("error[domain-not-found]"), "{gone}");
    assert!(
        !gone.contains("implicit-mx") && !gone.contains("sts-record-missing"),
        "{gone}"
    );
    // Progress goes to a terminal only: nothing on a pipe.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_area_without_a_record_says_not_checked() {
    let d = domain(ENFORCE, false).await;
    // Without records, the policy is still served, so the area has a finding; a domain with
    // neither record nor policy host shows "not checked".
    let lab = Lab::new();
    let dns = lab
        .dns([Zone::new("example.com").mx(10, "mx1.example.com")])
        .await
        .unwrap();
    drop(d);
    let args = vec![
        "check".to_owned(),
        "example.com".to_owned(),
        "--no-smtp".to_owned(),
        "--resolver".to_owned(),
        dns.addr().to_string(),
        "--timeout".to_owned(),
        "2".to_owned(),
    ];
    let text = String::from_utf8_lossy(&run(args).await.stdout).into_owned();
    let policy = &text[text.find("Policy").unwrap()..];
    assert!(
        policy.contains("not checked: no usable _mta-sts record"),
        "{text}"
    );
    assert!(!text.contains("Policy\n      ok"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn resolver_without_a_port_means_port_53() {
    // A fresh loopback address serves no DNS, so the check cannot complete, but the flag is
    // accepted and the finding names port 53.
    let ip = mta_sts_testnet::next_loopback_ip();
    let args = vec![
        "check".to_owned(),
        "example.com".to_owned(),
        "--resolver".to_owned(),
        ip.to_string(),
        "--timeout".to_owned(),
        "1".to_owned(),
    ];
    let out = run(args).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("{ip}:53 does not answer")), "{text}");
    assert_eq!(
        text.matches("does not answer").count(),
        1,
        "said once: {text}"
    );
    assert!(!text.contains("name servers"), "{text}");
    assert!(!text.contains("mail is deferred"), "{text}");
}
