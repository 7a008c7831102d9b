//! `check` end to end on the loopback lab: real DNS packets, TLS handshakes and SMTP dialogues.

use std::time::Duration;

use mta_sts_check::{CheckOptions, Report, SenderVerdict, analyze, gather, suggest};
use mta_sts_net::{Net, NetConfig};
use mta_sts_policy::{Mode, Severity};
use mta_sts_testnet::{
    DnsHandle, HttpBehaviour, HttpsHandle, Lab, LegacyTlsVersion, Site, SiteTls, SmtpBehaviour,
    SmtpHandle, Zone,
};

const D: &str = "example.com";
const ENFORCE: &str =
    "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: mx2.example.com\nmax_age: 1209600\n";
const TESTING: &str =
    "version: STSv1\nmode: testing\nmx: mx1.example.com\nmx: mx2.example.com\nmax_age: 604800\n";

/// An MX host: its first label and how its SMTP server behaves.
type MxSpec = (&'static str, Box<dyn FnOnce(&Lab) -> SmtpBehaviour>);

/// One domain in the lab: the servers stay up while this lives.
struct Domain {
    lab: Lab,
    _dns: DnsHandle,
    _web: HttpsHandle,
    _mx: Vec<SmtpHandle>,
    dns_addr: std::net::SocketAddr,
}

/// Builds `example.com` with the given policy site, MX servers and zone tweaks.
async fn domain(
    site: impl FnOnce(&Lab) -> Site,
    mx: Vec<MxSpec>,
    zone: impl FnOnce(Zone) -> Zone,
) -> Domain {
    let lab = Lab::new();
    let web = lab.https([site(&lab)]).await.unwrap();
    let mut z = Zone::new(D).address("mta-sts", web.ip());
    let mut handles = Vec::new();
    for (i, (name, behaviour)) in mx.into_iter().enumerate() {
        let host = format!("{name}.{D}");
        let handle = lab.smtp(&host, behaviour(&lab)).await.unwrap();
        z = z.mx(10 * (i as u16 + 1), &host).address(name, handle.ip());
        handles.push(handle);
    }
    let dns = lab.dns([zone(z)]).await.unwrap();
    Domain {
        dns_addr: dns.addr(),
        lab,
        _dns: dns,
        _web: web,
        _mx: handles,
    }
}

impl Domain {
    fn net(&self) -> Net {
        let config = NetConfig {
            resolver: Some(self.dns_addr),
            extra_roots: vec![self.lab.ca().root_der().clone()],
            https_port: self.lab.https_port().unwrap(),
            smtp_port: self.lab.smtp_port().unwrap_or(1),
            timeout: Duration::from_secs(2),
            fetch_timeout: Duration::from_secs(3),
            ..NetConfig::default()
        };
        Net::new(config).unwrap()
    }

    async fn check(&self) -> Report {
        analyze(gather(&self.net(), D, CheckOptions::default()).await)
    }
}

fn good(name: &'static str) -> MxSpec {
    (
        name,
        Box::new(move |lab: &Lab| {
            SmtpBehaviour::starttls(lab.ca().issue(&[&format!("{name}.{D}")]).unwrap())
        }),
    )
}

fn mx(name: &'static str, f: impl FnOnce(&Lab) -> SmtpBehaviour + 'static) -> MxSpec {
    (name, Box::new(f))
}

fn policy(body: &'static str) -> impl FnOnce(&Lab) -> Site {
    move |_| Site::policy("mta-sts.example.com", body)
}

fn records(z: Zone) -> Zone {
    z.txt("_mta-sts", &["v=STSv1; ", "id=20240101"])
        .txt("_smtp._tls", &["v=TLSRPTv1; rua=mailto:tlsrpt@example.com"])
}

fn codes(report: &Report) -> Vec<&str> {
    report.findings.iter().map(|f| f.code.as_str()).collect()
}

fn severity_of(report: &Report, code: &str) -> Severity {
    report
        .findings
        .iter()
        .find(|f| f.code == code)
        .unwrap_or_else(|| panic!("no {code} in {:?}", codes(report)))
        .severity
}

#[tokio::test]
async fn good_enforced_domain_is_protected_and_clean() {
    let d = domain(policy(ENFORCE), vec![good("mx1"), good("mx2")], records).await;
    let r = d.check().await;
    assert_eq!(r.sender, SenderVerdict::Protected, "{:?}", codes(&r));
    assert!(!r.has_problems(), "{:?}", r.findings);
    assert!(r.incomplete.is_none());
    assert_eq!(r.evidence.mx_hosts.len(), 2);
    assert!(
        r.evidence
            .mx_hosts
            .iter()
            .all(|h| h.probes.as_ref().unwrap().len() == 1)
    );
}

#[tokio::test]
async fn missing_records_are_warnings_and_not_protected() {
    let d = domain(policy(ENFORCE), vec![good("mx1"), good("mx2")], |z| z).await;
    let r = d.check().await;
    assert!(matches!(r.sender, SenderVerdict::NotProtected { .. }));
    assert_eq!(severity_of(&r, "sts-record-missing"), Severity::Warning);
    assert_eq!(severity_of(&r, "tlsrpt-record-missing"), Severity::Warning);
    assert_eq!(severity_of(&r, "policy-without-record"), Severity::Warning);
    assert!(r.has_problems());
}

#[tokio::test]
async fn two_sts_records_make_the_policy_unusable() {
    let d = domain(policy(ENFORCE), vec![good("mx1"), good("mx2")], |z| {
        z.txt("_mta-sts", &["v=STSv1; id=1"])
            .txt("_mta-sts", &["v=STSv1; id=2"])
    })
    .await;
    let r = d.check().await;
    assert_eq!(
        severity_of(&r, "sts-record-multiple-records"),
        Severity::Error
    );
    assert!(matches!(r.sender, SenderVerdict::NotProtected { .. }));
}

#[tokio::test]
async fn servfail_is_a_lookup_error_not_absence() {
    let d = domain(policy(ENFORCE), vec![good("mx1"), good("mx2")], |z| {
        z.servfail("_mta-sts")
            .txt("_smtp._tls", &["v=TLSRPTv1; rua=mailto:a@example.com"])
    })
    .await;
    let r = d.check().await;
    assert_eq!(severity_of(&r, "sts-record-lookup-failed"), Severity::Error);
    assert!(!codes(&r).contains(&"sts-record-missing"));
}

#[tokio::test]
async fn policy_fetch_failures_are_named() {
    for (site, code) in [
        (
            Site::new("mta-sts.example.com", HttpBehaviour::Status(404)),
            "policy-http-status",
        ),
        (
            Site::new(
                "mta-sts.example.com",
                HttpBehaviour::Redirect("https://example.net/".into()),
            ),
            "policy-redirect",
        ),
        (
            Site::new(
                "mta-sts.example.com",
                HttpBehaviour::Ok {
                    content_type: "text/html".into(),
                    body: ENFORCE.into(),
                },
            ),
            "policy-content-type",
        ),
        (
            Site::new("mta-sts.example.com", HttpBehaviour::OversizeChunked),
            "policy-too-large",
        ),
        (
            Site::policy("mta-sts.example.com", ENFORCE).tls(SiteTls::RefuseByClosing),
            "policy-host-tls",
        ),
    ] {
        let d = domain(move |_| site, vec![good("mx1"), good("mx2")], records).await;
        let r = d.check().await;
        assert_eq!(
            severity_of(&r, code),
            Severity::Error,
            "{code}: {:?}",
            codes(&r)
        );
        assert!(
            matches!(r.sender, SenderVerdict::NotProtected { .. }),
            "{code}"
        );
    }
}

#[tokio::test]
async fn policy_host_with_wrong_certificate_is_refused() {
    let d = domain(
        |lab| {
            Site::policy("mta-sts.example.com", ENFORCE)
                .certificate(lab.ca().issue(&["www.example.com"]).unwrap())
        },
        vec![good("mx1"), good("mx2")],
        records,
    )
    .await;
    let r = d.check().await;
    assert_eq!(severity_of(&r, "policy-host-certificate"), Severity::Error);
}

#[tokio::test]
async fn policy_host_certificate_expiring_soon_warns() {
    let d = domain(
        |lab| {
            let now = time::OffsetDateTime::now_utc();
            let cert = lab
                .ca()
                .issue_valid_between(
                    &["mta-sts.example.com"],
                    now - time::Duration::days(80),
                    now + time::Duration::days(5),
                )
                .unwrap();
            Site::policy("mta-sts.example.com", ENFORCE).certificate(cert)
        },
        vec![good("mx1"), good("mx2")],
        records,
    )
    .await;
    let r = d.check().await;
    assert_eq!(severity_of(&r, "policy-cert-expiring"), Severity::Warning);
    assert_eq!(r.sender, SenderVerdict::Protected);
}

#[tokio::test]
async fn invalid_policy_is_reported_with_the_linter_code() {
    let d = domain(
        policy("version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: +86400\n"),
        vec![good("mx1")],
        records,
    )
    .await;
    let r = d.check().await;
    assert_eq!(severity_of(&r, "policy-invalid-max-age"), Severity::Error);
    assert!(matches!(r.sender, SenderVerdict::NotProtected { .. }));
}

#[tokio::test]
async fn testing_mode_lists_mx_that_would_fail_under_enforce() {
    let d = domain(
        policy(TESTING),
        vec![
            good("mx1"),
            mx("mx2", |lab| {
                SmtpBehaviour::starttls(lab.ca().issue_expired(&["mx2.example.com"]).unwrap())
            }),
        ],
        records,
    )
    .await;
    let r = d.check().await;
    assert_eq!(
        r.sender,
        SenderVerdict::Testing {
            would_fail_under_enforce: vec!["mx2.example.com".into()]
        }
    );
    assert_eq!(severity_of(&r, "mode-testing"), Severity::Warning);
    assert_eq!(severity_of(&r, "smtp-cert-expired"), Severity::Warning);
}

#[tokio::test]
async fn enforce_with_an_uncovered_mx_is_degraded() {
    let d = domain(
        policy("version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 1209600\n"),
        vec![good("mx1"), good("mx2")],
        records,
    )
    .await;
    let r = d.check().await;
    assert_eq!(severity_of(&r, "mx-not-covered"), Severity::Error);
    assert_eq!(
        r.sender,
        SenderVerdict::Degraded {
            failing_mx: vec!["mx2.example.com".into()]
        }
    );
}

#[tokio::test]
async fn an_mx_host_with_one_refused_address_is_degraded_not_bounced() {
    // The only MX host has a working address and a refused one: senders try the next address,
    // so mail is delivered, and the refused address is still an error.
    let refused = std::cell::Cell::new(None);
    let d = domain(policy(ENFORCE), vec![good("mx1")], |z| {
        let addr = mta_sts_testnet::next_loopback_ip();
        refused.set(Some(addr));
        records(z).a("mx1", addr)
    })
    .await;
    let r = d.check().await;
    let probes = r.evidence.mx_hosts[0].probes.as_ref().unwrap();
    assert_eq!(probes.len(), 2, "{probes:?}");
    assert_eq!(severity_of(&r, "smtp-connect-failed"), Severity::Error);
    assert!(
        r.findings
            .iter()
            .any(|f| f.subject.contains(&refused.get().unwrap().to_string())),
        "{:?}",
        r.findings
    );
    assert_eq!(
        r.sender,
        SenderVerdict::Degraded {
            failing_mx: vec!["mx1.example.com".into()]
        }
    );
}

#[tokio::test]
async fn enforce_with_every_mx_failing_bounces_mail() {
    let d = domain(
        policy(ENFORCE),
        vec![
            mx("mx1", |_| SmtpBehaviour::NoStartTls),
            mx("mx2", |_| {
                SmtpBehaviour::LegacyTlsOnly(LegacyTlsVersion::Tls10)
            }),
        ],
        records,
    )
    .await;
    let r = d.check().await;
    assert_eq!(severity_of(&r, "smtp-no-starttls"), Severity::Error);
    assert_eq!(severity_of(&r, "smtp-tls-legacy-only"), Severity::Error);
    assert!(
        matches!(r.sender, SenderVerdict::MailWouldBounce { .. }),
        "{:?}",
        r.sender
    );
}

#[tokio::test]
async fn certificate_problems_on_mx_hosts_are_named() {
    let d = domain(
        policy(ENFORCE),
        vec![
            mx("mx1", |lab| {
                SmtpBehaviour::starttls(lab.ca().issue(&["other.example.com"]).unwrap())
            }),
            mx("mx2", |_| {
                SmtpBehaviour::starttls(mta_sts_testnet::self_signed(&["mx2.example.com"]).unwrap())
            }),
        ],
        records,
    )
    .await;
    let r = d.check().await;
    assert_eq!(severity_of(&r, "smtp-cert-name-mismatch"), Severity::Error);
    assert_eq!(severity_of(&r, "smtp-cert-self-signed"), Severity::Error);
}

#[tokio::test]
async fn smtp_session_failures_are_named() {
    let d = domain(
        policy(TESTING),
        vec![
            mx("mx1", |_| SmtpBehaviour::RejectingBanner(554)),
            mx("mx2", |_| SmtpBehaviour::StartTlsThenHandshakeFailure),
        ],
        records,
    )
    .await;
    let r = d.check().await;
    assert_eq!(severity_of(&r, "smtp-rejected"), Severity::Warning);
    assert_eq!(severity_of(&r, "smtp-handshake-failed"), Severity::Warning);
}

#[tokio::test]
async fn stale_policy_patterns_are_flagged() {
    let d = domain(
        policy("version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: old.example.com\nmax_age: 1209600\n"),
        vec![good("mx1")],
        records,
    )
    .await;
    let r = d.check().await;
    let stale = r
        .findings
        .iter()
        .find(|f| f.code == "policy-mx-unused")
        .unwrap();
    assert_eq!(stale.subject, "old.example.com");
    assert_eq!(r.sender, SenderVerdict::Protected);
}

#[tokio::test]
async fn null_mx_and_implicit_mx() {
    let d = domain(policy(ENFORCE), vec![], |z| records(z).null_mx()).await;
    let r = d.check().await;
    assert_eq!(severity_of(&r, "null-mx"), Severity::Info);
    assert!(r.evidence.mx_hosts.is_empty());

    assert!(
        matches!(r.sender, SenderVerdict::NotProtected { .. }),
        "{:?}",
        r.sender
    );

    let d = domain(policy(ENFORCE), vec![], records).await;
    let r = d.check().await;
    assert_eq!(severity_of(&r, "implicit-mx"), Severity::Warning);
    assert!(r.evidence.mx_hosts[0].implicit);
}

#[tokio::test]
async fn mx_lookup_failure_defers_mail_instead_of_passing() {
    let d = domain(policy(ENFORCE), vec![], |z| records(z).servfail("@")).await;
    let r = d.check().await;
    assert_eq!(severity_of(&r, "mx-lookup-failed"), Severity::Error);
    assert!(
        matches!(r.sender, SenderVerdict::MailDeferred { .. }),
        "{:?}",
        r.sender
    );
}

#[tokio::test]
async fn invalid_tlsrpt_record_is_an_error() {
    let d = domain(policy(ENFORCE), vec![good("mx1"), good("mx2")], |z| {
        z.txt("_mta-sts", &["v=STSv1; id=1"])
            .txt("_smtp._tls", &["v=TLSRPTv1; rua=mailto:a@example.com!10m"])
    })
    .await;
    let r = d.check().await;
    assert_eq!(
        severity_of(&r, "tlsrpt-record-rua-unencoded-char"),
        Severity::Error
    );
}

#[tokio::test]
async fn no_smtp_skips_port_25() {
    let d = domain(policy(ENFORCE), vec![good("mx1"), good("mx2")], records).await;
    let options = CheckOptions {
        no_smtp: true,
        without_sni: false,
    };
    let r = analyze(gather(&d.net(), D, options).await);
    assert_eq!(r.sender, SenderVerdict::EnforcedUntested);
    assert_eq!(severity_of(&r, "smtp-skipped"), Severity::Info);
    assert!(!r.has_problems());
}

#[tokio::test]
async fn silent_resolver_makes_the_check_incomplete() {
    let silent = mta_sts_testnet::SilentDnsServer::start().await.unwrap();
    let config = NetConfig {
        resolver: Some(silent.addr()),
        timeout: Duration::from_secs(1),
        ..NetConfig::default()
    };
    let r = analyze(gather(&Net::new(config).unwrap(), D, CheckOptions::default()).await);
    assert!(r.incomplete.is_some());
}

#[tokio::test]
async fn suggestion_covers_the_live_mx_set_and_diffs_the_published_policy() {
    let d = domain(
        policy("version: STSv1\nmode: testing\nmx: mx1.example.com\nmx: old.example.com\nmax_age: 604800\n"),
        vec![good("mx1"), good("mx2")],
        records,
    )
    .await;
    let r = d.check().await;
    let request = mta_sts_check::SuggestRequest {
        mode: Some(Mode::Enforce),
        rua: Vec::new(),
    };
    let s = suggest(&r, &request);
    assert_eq!(
        s.policy_text,
        "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: mx2.example.com\r\nmax_age: 1209600\r\n"
    );
    let diff = s.diff.unwrap();
    assert_eq!(diff.add_mx, ["mx2.example.com"]);
    assert_eq!(diff.remove_mx, ["old.example.com"]);
    assert_eq!(diff.mode, Some((Mode::Testing, Mode::Enforce)));
    // The published TLS-RPT record is kept: the rollout starts with the changed policy.
    assert!(
        s.steps[0].starts_with("Publish the new policy first"),
        "{:?}",
        s.steps
    );
}

#[tokio::test]
async fn json_report_has_verdicts_findings_and_evidence() {
    let d = domain(policy(TESTING), vec![good("mx1"), good("mx2")], records).await;
    let r = d.check().await;
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["sender"]["status"], "testing");
    assert_eq!(v["hygiene"]["warnings"], 1);
    assert_eq!(v["findings"][0]["code"], "mode-testing");
    assert_eq!(v["evidence"]["policy"]["ok"]["body"], TESTING);
    assert_eq!(v["evidence"]["policy"]["ok"]["body_escaped"], false);
    assert_eq!(
        v["evidence"]["sts_txt"]["ok"]["records"][0],
        "v=STSv1; id=20240101"
    );
    assert_eq!(v["evidence"]["sts_txt"]["ok"]["parsed"]["id"], "20240101");
    assert_eq!(
        v["evidence"]["tlsrpt_txt"]["ok"]["parsed"]["rua"][0]["uri"],
        "mailto:tlsrpt@example.com"
    );
    let rfc3339 = |value: &serde_json::Value| {
        let text = value.as_str().unwrap_or_default();
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{value} is not RFC 3339: {e}"))
    };
    rfc3339(&v["evidence"]["checked_at"]);
    rfc3339(&v["evidence"]["policy"]["ok"]["certificate"]["not_after"]);
    assert_eq!(
        v["evidence"]["mx_hosts"][0]["probes"]["ok"][0]["outcome"]["kind"],
        "ok"
    );
}

#[tokio::test]
async fn cname_and_multi_string_records_show_their_id_and_target() {
    let d = domain(policy(ENFORCE), vec![good("mx1"), good("mx2")], |z| {
        z.cname("_mta-sts", "sts.provider.example.com")
            .txt("sts.provider", &["v=STSv1; ", "id=", "2024cname"])
            .txt(
                "_smtp._tls",
                &["v=TLSRPTv1; ", "rua=mailto:tlsrpt@example.com"],
            )
    })
    .await;
    let r = d.check().await;
    assert_eq!(r.sender, SenderVerdict::Protected, "{:?}", codes(&r));
    let v = serde_json::to_value(&r).unwrap();
    let sts = &v["evidence"]["sts_txt"]["ok"];
    assert_eq!(sts["cname_chain"][0], "sts.provider.example.com");
    assert_eq!(sts["records"][0], "v=STSv1; id=2024cname");
    assert_eq!(sts["parsed"]["id"], "2024cname");
}

#[tokio::test]
async fn a_slow_policy_host_is_a_timeout_within_the_fetch_limit() {
    let d = domain(
        |_| {
            Site::new(
                "mta-sts.example.com",
                HttpBehaviour::SlowDrip {
                    body: ENFORCE.as_bytes().to_vec(),
                    interval: Duration::from_millis(200),
                },
            )
        },
        vec![good("mx1"), good("mx2")],
        records,
    )
    .await;
    let started = std::time::Instant::now();
    let r = d.check().await;
    // The lab's fetch limit is 3 s; the drip needs about 30 s.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let f = r
        .findings
        .iter()
        .find(|f| f.code == "policy-fetch-timeout")
        .unwrap();
    assert!(f.evidence.contains("3000 ms"), "{}", f.evidence);
}

#[tokio::test]
async fn a_policy_fetch_slower_than_senders_wait_is_a_finding_of_its_own() {
    // About 160 bytes, one per 70 ms: some 11 s, past SLOW_FETCH but within the fetch limit.
    let d = domain(
        |_| {
            Site::new(
                "mta-sts.example.com",
                HttpBehaviour::SlowDrip {
                    body: ENFORCE.as_bytes().to_vec(),
                    interval: Duration::from_millis(70),
                },
            )
        },
        vec![good("mx1"), good("mx2")],
        records,
    )
    .await;
    let mut net = d.net().config().clone();
    net.fetch_timeout = Duration::from_secs(40);
    let r = analyze(gather(&Net::new(net).unwrap(), D, CheckOptions::default()).await);
    let f = r.findings.iter().find(|f| f.code == "policy-fetch-slow");
    assert!(f.is_some(), "{:?}", codes(&r));
    assert!(
        f.unwrap()
            .message
            .contains("senders give up at 60 s or sooner")
    );
    assert!(r.policy.is_some());
}

#[tokio::test]
async fn an_unreachable_resolver_is_said_once_and_blames_no_zone() {
    // A closed UDP/TCP port: every query is refused by the kernel or times out.
    let closed = mta_sts_testnet::refused_addr().await.unwrap();
    let config = NetConfig {
        resolver: Some(closed),
        timeout: Duration::from_millis(500),
        ..NetConfig::default()
    };
    let r = analyze(gather(&Net::new(config).unwrap(), D, CheckOptions::default()).await);
    assert_eq!(codes(&r), ["resolver-unreachable"]);
    assert_eq!(r.findings[0].subject, closed.to_string());
    assert!(
        matches!(r.sender, SenderVerdict::Unknown { .. }),
        "{:?}",
        r.sender
    );
    assert!(r.incomplete.is_some());
    assert!(r.findings.iter().all(|f| !f.fix.contains("name servers")));
}

#[tokio::test]
async fn a_domain_that_does_not_exist_is_said_first_and_alone() {
    let d = domain(policy(ENFORCE), vec![], |z| z.nxdomain("@")).await;
    let r = d.check().await;
    assert_eq!(codes(&r), ["domain-not-found"]);
    assert!(r.evidence.mx_hosts.is_empty());
    assert!(matches!(r.sender, SenderVerdict::NotProtected { .. }));
}

#[tokio::test]
async fn findings_name_the_smtp_port_used() {
    let d = domain(policy(ENFORCE), vec![good("mx1")], |z| {
        records(z)
            .mx(20, "mx2.example.com")
            .address("mx2", mta_sts_testnet::next_loopback_ip().into())
    })
    .await;
    let port = d.lab.smtp_port().unwrap();
    let r = d.check().await;
    let f = r
        .findings
        .iter()
        .find(|f| f.subject.starts_with("mx2.example.com"))
        .unwrap_or_else(|| panic!("{:?}", codes(&r)));
    assert!(f.message.contains(&format!("port {port}")), "{}", f.message);
    assert!(!f.message.contains("port 25"), "{}", f.message);
}

#[tokio::test]
async fn the_policy_area_is_not_checked_without_a_record() {
    let d = domain(
        |_| Site::new("mta-sts.example.com", HttpBehaviour::Status(404)),
        vec![good("mx1")],
        |z| z,
    )
    .await;
    let r = d.check().await;
    assert!(
        r.findings
            .iter()
            .all(|f| f.area != mta_sts_check::Area::Policy)
    );
    let why = r.not_checked(mta_sts_check::Area::Policy).unwrap();
    assert!(why.contains("no usable _mta-sts record"), "{why}");
}
