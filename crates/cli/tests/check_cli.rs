//! `mta-sts check` and `mta-sts suggest` as a user runs them, against the loopback lab.

mod support;

use support::{lab_ca_file, lab_flags, run_beside_lab as run};

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
    let ca_file = lab_ca_file(&lab);
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
        lab_flags(&self.lab, &self.dns, &self.ca_file)
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
    let ca_file = lab_ca_file(&lab);
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
        args.extend(lab_flags(&self.lab, &self.dns, &self.ca_file));
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

/// Issue 9's held-out lab: a multi-string TXT record, a CNAME'd `_mta-sts` record and a policy
/// host that drips its answer, in one `check --timeout 15` run. The id, the CNAME target and a
/// timeout finding are shown, and the run ends within the 40 s the issue allows.
#[tokio::test(flavor = "multi_thread")]
async fn held_out_lab_shows_id_cname_and_timeout_within_40_s() {
    let lab = Lab::new();
    let policy = |d: &str| format!("version: STSv1\nmode: enforce\nmx: mx.{d}\nmax_age: 86400\n");
    // About 150 bytes (head and body) at one byte per 200 ms: some 30 s, twice the timeout.
    let web = lab
        .https([
            Site::policy("mta-sts.multi.example", &policy("multi.example")),
            Site::policy("mta-sts.alias.example", &policy("alias.example")),
            Site::new(
                "mta-sts.slow.example",
                HttpBehaviour::SlowDrip {
                    body: policy("slow.example").into_bytes(),
                    interval: std::time::Duration::from_millis(200),
                },
            ),
        ])
        .await
        .unwrap();
    let mut zones = Vec::new();
    let mut mx = Vec::new();
    for d in ["multi.example", "alias.example", "slow.example"] {
        let host = format!("mx.{d}");
        let server = good_mx(&lab, &host).await;
        let zone = Zone::new(d)
            .address("mta-sts", web.ip())
            .mx(10, &host)
            .address("mx", server.ip())
            .txt("_smtp._tls", &[&format!("v=TLSRPTv1; rua=mailto:tls@{d}")]);
        zones.push(match d {
            "multi.example" => zone.txt("_mta-sts", &["v=STSv1;", " id=", "multi", "2024"]),
            "alias.example" => zone.cname("_mta-sts", "_mta-sts.records.hoster.example"),
            _ => zone.txt("_mta-sts", &["v=STSv1; id=slow1"]),
        });
        mx.push(server);
    }
    zones.push(Zone::new("hoster.example").txt("_mta-sts.records", &["v=STSv1; id=aliased7"]));
    let dns = lab.dns(zones).await.unwrap();
    let ca_file = lab_ca_file(&lab);
    let args: Vec<String> = [
        "check",
        "multi.example",
        "alias.example",
        "slow.example",
        "--timeout",
        "15",
        "--resolver",
        &dns.addr().to_string(),
        "--ca-file",
        &ca_file.display().to_string(),
        "--https-port",
        &lab.https_port().unwrap().to_string(),
        "--smtp-port",
        &lab.smtp_port().unwrap().to_string(),
    ]
    .map(str::to_owned)
    .to_vec();

    let started = std::time::Instant::now();
    let out = run(args).await;
    let elapsed = started.elapsed();
    eprintln!("held-out lab, --timeout 15: {:.1} s", elapsed.as_secs_f64());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        elapsed < std::time::Duration::from_secs(40),
        "{elapsed:?}\n{text}"
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    // Each report starts with a line holding only its domain.
    let section = |d: &str| {
        let mut lines = text.lines().skip_while(|l| *l != d);
        let mut block = lines
            .next()
            .unwrap_or_else(|| panic!("{d} not in\n{text}"))
            .to_owned();
        for line in lines.take_while(|l| !l.ends_with(".example") || l.starts_with(' ')) {
            block.push('\n');
            block.push_str(line);
        }
        block
    };
    let multi = section("multi.example");
    assert!(multi.contains("id:      multi2024"), "{multi}");
    assert!(multi.contains("\"v=STSv1; id=multi2024\""), "{multi}");
    let alias = section("alias.example");
    assert!(
        alias.contains("CNAME:   → _mta-sts.records.hoster.example"),
        "{alias}"
    );
    assert!(alias.contains("id:      aliased7"), "{alias}");
    let slow = section("slow.example");
    assert!(slow.contains("[policy-fetch-timeout]"), "{slow}");
    assert!(slow.contains("15000 ms"), "{slow}");
}

/// A lab MX host named `host` with STARTTLS and a good certificate for it.
async fn good_mx(lab: &Lab, host: &str) -> SmtpHandle {
    lab.smtp(
        host,
        SmtpBehaviour::starttls(lab.ca().issue(&[host]).unwrap()),
    )
    .await
    .unwrap()
}

/// A zone for `domain` with its `_mta-sts` record (`id`) and a TLS-RPT record.
fn zone_with_records(domain: &str, id: &str) -> Zone {
    Zone::new(domain)
        .txt("_mta-sts", &[&format!("v=STSv1; id={id}")])
        .txt(
            "_smtp._tls",
            &[&format!("v=TLSRPTv1; rua=mailto:tls@{domain}")],
        )
}

/// Runs `check DOMAIN FLAGS` twice: the human output and the `--json` report (which must
/// match the schema).
async fn check_both(domain: &str, flags: &[String]) -> (String, serde_json::Value) {
    let mut args = vec!["check".to_owned(), domain.to_owned()];
    args.extend_from_slice(flags);
    let human = run(args.clone()).await;
    args.push("--json".into());
    let json = run(args).await;
    let v: serde_json::Value = serde_json::from_slice(&json.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json.stdout)));
    // IPv6 addresses, timeouts and refusals are in the schema too.
    assert_valid(&schema(), &v);
    (String::from_utf8_lossy(&human.stdout).into_owned(), v)
}

/// The probes of MX host `host` in a `--json` report, as (address, outcome kind, reason kind).
fn probes_of(v: &serde_json::Value, host: &str) -> Vec<(String, String, String)> {
    let hosts = v[0]["evidence"]["mx_hosts"].as_array().unwrap();
    let h = hosts
        .iter()
        .find(|h| h["host"] == host)
        .unwrap_or_else(|| panic!("no {host} in {v:#}"));
    h["probes"]["ok"]
        .as_array()
        .unwrap_or_else(|| panic!("no probes of {host}: {h:#}"))
        .iter()
        .map(|p| {
            let text = |x: &serde_json::Value| x.as_str().unwrap_or_default().to_owned();
            (
                text(&p["addr"]),
                text(&p["outcome"]["kind"]),
                text(&p["outcome"]["reason"]["kind"]),
            )
        })
        .collect()
}

/// An address as the human output shows it: `[IP]:PORT`, IPv4 too.
fn shown(addr: std::net::SocketAddr) -> String {
    format!("[{}]:{}", addr.ip(), addr.port())
}

/// Issue 8: the lab on IPv6. DNS, the policy host and one MX listen on `::1` only; one MX has
/// only an AAAA record, another an AAAA that works and an A that is refused. Each address is
/// probed and shown with its own result, in the human output and in JSON.
#[tokio::test(flavor = "multi_thread")]
async fn check_over_ipv6_shows_each_address_of_ipv6_only_and_dual_stack_mx() {
    let lab = Lab::new();
    let web = lab
        .https_v6([Site::policy(
            "mta-sts.v6.example",
            "version: STSv1\nmode: enforce\nmx: *.v6.example\nmax_age: 86400\n",
        )])
        .await
        .unwrap();
    let names = ["only6.v6.example", "dual.v6.example"];
    let mx = lab
        .smtp_v6(
            "only6.v6.example",
            SmtpBehaviour::starttls(lab.ca().issue(&names).unwrap()),
        )
        .await
        .unwrap();
    let refused_v4 = lab.refused_smtp_addr().await.unwrap();
    let dns = lab
        .dns_v6([zone_with_records("v6.example", "six")
            .address("mta-sts", web.ip())
            .mx(10, "only6.v6.example")
            .address("only6", mx.ip())
            .mx(20, "dual.v6.example")
            .address("dual", mx.ip())
            .address("dual", refused_v4.ip())])
        .await
        .unwrap();
    assert!(dns.addr().is_ipv6() && web.ip().is_ipv6() && mx.ip().is_ipv6());
    let ca_file = lab_ca_file(&lab);
    let (text, v) = check_both("v6.example", &lab_flags(&lab, &dns, &ca_file)).await;

    let port = lab.smtp_port().unwrap();
    let v6 = format!("[::1]:{port}");
    assert_eq!(
        probes_of(&v, "only6.v6.example"),
        [(v6.clone(), "ok".into(), String::new())],
        "{v:#}"
    );
    assert_eq!(
        probes_of(&v, "dual.v6.example"),
        [
            (
                refused_v4.to_string(),
                "connect_failed".into(),
                "refused".into()
            ),
            (v6.clone(), "ok".into(), String::new()),
        ],
        "{v:#}"
    );
    // The policy came over IPv6 too. One refused address does not make senders refuse the
    // host: they try the next address.
    assert_eq!(v[0]["policy"]["mode"], "enforce", "{v:#}");
    assert_eq!(v[0]["sender"]["status"], "degraded", "{v:#}");
    assert_eq!(v[0]["sender"]["failing_mx"][0], "dual.v6.example", "{v:#}");
    assert!(
        text.contains(&format!("only6.v6.example {v6}  STARTTLS yes, TLSv1.3")),
        "{text}"
    );
    assert!(
        text.contains(&format!("dual.v6.example {v6}  STARTTLS yes, TLSv1.3")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "dual.v6.example {}  STARTTLS ?: cannot connect: connection refused",
            shown(refused_v4)
        )),
        "{text}"
    );
    assert!(text.contains("[smtp-connect-failed]"), "{text}");
}

/// The reverse of the dual-stack case: the A record works and the AAAA (`::1`, where nothing
/// listens) is refused.
#[tokio::test(flavor = "multi_thread")]
async fn check_shows_a_refused_aaaa_beside_a_working_a() {
    let lab = Lab::new();
    let web = lab
        .https([Site::policy(
            "mta-sts.v4.example",
            "version: STSv1\nmode: enforce\nmx: mx.v4.example\nmax_age: 86400\n",
        )])
        .await
        .unwrap();
    let mx = good_mx(&lab, "mx.v4.example").await;
    let refused_v6 = lab.refused_smtp_addr_v6().await.unwrap();
    let dns = lab
        .dns([zone_with_records("v4.example", "four")
            .address("mta-sts", web.ip())
            .mx(10, "mx.v4.example")
            .address("mx", mx.ip())
            .address("mx", refused_v6.ip())])
        .await
        .unwrap();
    let ca_file = lab_ca_file(&lab);
    let (text, v) = check_both("v4.example", &lab_flags(&lab, &dns, &ca_file)).await;
    assert_eq!(
        probes_of(&v, "mx.v4.example"),
        [
            (mx.addr().to_string(), "ok".into(), String::new()),
            (
                refused_v6.to_string(),
                "connect_failed".into(),
                "refused".into()
            ),
        ],
        "{v:#}"
    );
    assert_eq!(v[0]["sender"]["status"], "degraded", "{v:#}");
    assert!(
        text.contains(&format!(
            "mx.v4.example {}  STARTTLS yes, TLSv1.3",
            shown(mx.addr())
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "mx.v4.example {refused_v6}  STARTTLS ?: cannot connect: connection refused"
        )),
        "{text}"
    );
}

/// The name of [`an_address_that_drops_syns_is_a_timeout_not_a_refusal`]'s namespace, unique
/// to this process.
fn silent_namespace() -> String {
    format!("mtasts-chk-{}", std::process::id())
}

/// The address inside the namespace that drops SYNs (never handed out by the lab's allocator,
/// which skips 127.0.x.x).
const SILENT_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 66, 1);

/// Issue 8: a host that drops SYNs (a firewall, a host gone) is a connect timeout, reported
/// apart from a refusal, within `--timeout`. Runs itself again inside a network namespace of
/// its own where an nftables rule drops SYNs to one address; fails, not skips, when the
/// namespace cannot be made (CI runs as root).
#[test]
fn an_address_that_drops_syns_is_a_timeout_not_a_refusal() {
    if mta_sts_testnet::NetNamespace::inside().is_some() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(silent_mx_inside_the_namespace());
        return;
    }
    let namespace = mta_sts_testnet::NetNamespace::create(&silent_namespace())
        .unwrap_or_else(|e| panic!("{e}"));
    namespace.drop_syns_to(SILENT_IP.into()).unwrap();
    let out = namespace
        .run_test("an_address_that_drops_syns_is_a_timeout_not_a_refusal")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "inside the namespace:\n{text}\n{errors}"
    );
    // The inner run really ran the test (a filter that matched nothing would pass too).
    assert!(text.contains("1 passed"), "{text}");
    assert!(errors.contains("silent MX checked in"), "{errors}");
}

async fn silent_mx_inside_the_namespace() {
    let lab = Lab::new();
    let web = lab
        .https([Site::policy(
            "mta-sts.quiet.example",
            "version: STSv1\nmode: enforce\nmx: *.quiet.example\nmax_age: 86400\n",
        )])
        .await
        .unwrap();
    let good = good_mx(&lab, "good.quiet.example").await;
    let refused = lab.refused_smtp_addr().await.unwrap();
    let dns = lab
        .dns([zone_with_records("quiet.example", "q1")
            .address("mta-sts", web.ip())
            .mx(10, "good.quiet.example")
            .address("good", good.ip())
            .mx(20, "silent.quiet.example")
            .address("silent", SILENT_IP.into())
            .mx(30, "refused.quiet.example")
            .address("refused", refused.ip())])
        .await
        .unwrap();
    let ca_file = lab_ca_file(&lab);
    let started = std::time::Instant::now();
    let (text, v) = check_both("quiet.example", &lab_flags(&lab, &dns, &ca_file)).await;
    let elapsed = started.elapsed();
    eprintln!(
        "silent MX checked in {:.1} s (twice)",
        elapsed.as_secs_f64()
    );
    // Two runs, each bounded by --timeout 3 on the connect; generous for a loaded machine.
    assert!(elapsed < std::time::Duration::from_secs(30), "{elapsed:?}");
    let port = lab.smtp_port().unwrap();
    assert_eq!(
        probes_of(&v, "silent.quiet.example"),
        [(
            format!("{SILENT_IP}:{port}"),
            "connect_failed".into(),
            "timeout".into()
        )],
        "{v:#}"
    );
    assert_eq!(
        probes_of(&v, "refused.quiet.example"),
        [(
            refused.to_string(),
            "connect_failed".into(),
            "refused".into()
        )],
        "{v:#}"
    );
    assert_eq!(probes_of(&v, "good.quiet.example")[0].1, "ok", "{v:#}");
    let codes: Vec<&str> = v[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert!(codes.contains(&"smtp-connect-timeout"), "{codes:?}");
    assert!(codes.contains(&"smtp-connect-failed"), "{codes:?}");
    assert!(text.contains("[smtp-connect-timeout]"), "{text}");
    assert!(text.contains("connection timed out"), "{text}");
    assert!(text.contains("refused"), "{text}");
}
