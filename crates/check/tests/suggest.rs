//! `suggest` on the loopback lab: never a step backwards from what a domain publishes without
//! saying so, and rollout text that matches the mode and the current state.

use std::time::Duration;

use mta_sts_check::{
    CheckOptions, Report, RuaSource, SuggestRequest, Suggestion, analyze, gather, suggest,
};
use mta_sts_net::{Net, NetConfig};
use mta_sts_policy::Mode;
use mta_sts_testnet::{DnsHandle, HttpsHandle, Lab, Site, Zone};
use mta_sts_tlsrpt::ReportUri;

const D: &str = "example.com";

/// `example.com` in the lab: a policy host serving `policy`, MX records for `mx` hosts, the
/// `_mta-sts` record and the given `_smtp._tls` record.
struct Domain {
    lab: Lab,
    dns: DnsHandle,
    _web: HttpsHandle,
}

async fn domain(policy: &str, mx: &[&str], tlsrpt: Option<&str>) -> Domain {
    domain_with(policy, mx, tlsrpt, |z| z).await
}

async fn domain_with(
    policy: &str,
    mx: &[&str],
    tlsrpt: Option<&str>,
    zone: impl FnOnce(Zone) -> Zone,
) -> Domain {
    let lab = Lab::new();
    let web = lab
        .https([Site::policy("mta-sts.example.com", policy)])
        .await
        .unwrap();
    let mut z = Zone::new(D)
        .address("mta-sts", web.ip())
        .txt("_mta-sts", &["v=STSv1; id=20240101"]);
    for (i, host) in mx.iter().enumerate() {
        z = z.mx(10 * (i as u16 + 1), host);
    }
    if let Some(record) = tlsrpt {
        z = z.txt("_smtp._tls", &[record]);
    }
    let dns = lab.dns([zone(z)]).await.unwrap();
    Domain {
        lab,
        dns,
        _web: web,
    }
}

impl Domain {
    async fn report(&self, name: &str) -> Report {
        let config = NetConfig {
            resolver: Some(self.dns.addr()),
            extra_roots: vec![self.lab.ca().root_der().clone()],
            https_port: self.lab.https_port().unwrap(),
            timeout: Duration::from_secs(2),
            fetch_timeout: Duration::from_secs(3),
            ..NetConfig::default()
        };
        let options = CheckOptions {
            no_smtp: true,
            without_sni: false,
        };
        analyze(gather(&Net::new(config).unwrap(), name, options).await)
    }

    async fn suggest(&self, mode: Option<Mode>, rua: &[&str]) -> Suggestion {
        let report = self.report(D).await;
        assert!(report.incomplete.is_none(), "{:?}", report.incomplete);
        let request = SuggestRequest {
            mode,
            rua: rua.iter().map(|u| ReportUri::parse(u).unwrap()).collect(),
        };
        suggest(&report, &request)
    }
}

const ENFORCE: &str = "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 1209600\n";
const TESTING: &str = "version: STSv1\nmode: testing\nmx: mx1.example.com\nmax_age: 604800\n";
const RUA: &str = "v=TLSRPTv1; rua=mailto:tlsrpt@example.com";

fn codes(s: &Suggestion) -> Vec<&str> {
    s.warnings.iter().map(|w| w.code).collect()
}

fn steps(s: &Suggestion) -> String {
    s.steps.join("\n")
}

#[tokio::test]
async fn an_enforcing_domain_stays_in_enforce_by_default() {
    let d = domain(ENFORCE, &["mx1.example.com", "mx2.example.com"], Some(RUA)).await;
    let s = d.suggest(None, &[]).await;
    assert_eq!(s.policy.mode, Mode::Enforce);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert_eq!(s.diff.as_ref().unwrap().add_mx, ["mx2.example.com"]);
    assert_eq!(s.diff.as_ref().unwrap().mode, None);
    let steps = steps(&s);
    assert!(steps.contains("Publish the new policy first"), "{steps}");
    assert!(steps.contains("Then the new id"), "{steps}");
    assert!(!steps.contains("testing"), "{steps}");
}

#[tokio::test]
async fn testing_asked_for_an_enforcing_domain_warns_that_it_lowers_protection() {
    let d = domain(ENFORCE, &["mx1.example.com"], Some(RUA)).await;
    let s = d.suggest(Some(Mode::Testing), &[]).await;
    assert_eq!(s.policy.mode, Mode::Testing);
    assert_eq!(codes(&s), ["lowers-protection"]);
    assert!(
        s.warnings[0].message.contains("this lowers protection"),
        "{:?}",
        s.warnings
    );
    assert!(s.is_usable());
    assert!(
        !steps(&s).contains("Stay in testing for about two weeks"),
        "{}",
        steps(&s)
    );
    // Withdrawing is a step backwards too.
    let s = d.suggest(Some(Mode::None), &[]).await;
    assert_eq!(codes(&s), ["lowers-protection"]);
    assert!(steps(&s).contains("RFC 8461 §8.3"), "{}", steps(&s));
}

#[tokio::test]
async fn a_wildcard_that_covers_the_live_mx_is_kept() {
    let policy = "version: STSv1\nmode: enforce\nmx: *.example.com\nmax_age: 1209600\n";
    let d = domain(policy, &["mx1.example.com", "mx2.example.com"], Some(RUA)).await;
    let s = d.suggest(None, &[]).await;
    let mx: Vec<String> = s.policy.mx.iter().map(ToString::to_string).collect();
    assert_eq!(mx, ["*.example.com"]);
    assert!(s.diff.as_ref().unwrap().is_empty(), "{:?}", s.diff);
    assert_eq!(
        s.notes,
        ["keeps mx: *.example.com: it still covers today's MX mx1.example.com, mx2.example.com"]
    );
    assert!(steps(&s).contains("already matches"), "{}", steps(&s));
}

#[tokio::test]
async fn a_pattern_that_covers_no_live_mx_is_replaced_by_exact_names() {
    let policy = "version: STSv1\nmode: testing\nmx: *.old.example.net\nmx: mx1.example.com\nmax_age: 604800\n";
    let d = domain(policy, &["mx1.example.com", "mail.example.org"], Some(RUA)).await;
    let s = d.suggest(None, &[]).await;
    let diff = s.diff.unwrap();
    assert_eq!(diff.remove_mx, ["*.old.example.net"]);
    assert_eq!(diff.add_mx, ["mail.example.org"]);
}

#[tokio::test]
async fn published_report_destinations_are_kept_and_given_ones_added() {
    let https = "v=TLSRPTv1; rua=https://reports.example.com/tlsrpt";
    let d = domain(TESTING, &["mx1.example.com"], Some(https)).await;
    let s = d.suggest(None, &[]).await;
    assert_eq!(s.rua_source, RuaSource::Published);
    assert_eq!(
        s.rua,
        [ReportUri::parse("https://reports.example.com/tlsrpt").unwrap()]
    );
    assert!(!steps(&s).contains("TLS-RPT"), "{}", steps(&s));

    let s = d.suggest(None, &["mailto:tls@example.com"]).await;
    assert_eq!(s.rua_source, RuaSource::PublishedAndGiven);
    let rua: Vec<&str> = s.rua.iter().map(ReportUri::as_str).collect();
    assert_eq!(
        rua,
        [
            "https://reports.example.com/tlsrpt",
            "mailto:tls@example.com"
        ]
    );
    assert!(
        steps(&s).contains("Update the TLS-RPT record"),
        "{}",
        steps(&s)
    );
}

#[tokio::test]
async fn without_a_published_record_the_default_destination_is_suggested() {
    let d = domain(TESTING, &["mx1.example.com"], None).await;
    let s = d.suggest(None, &[]).await;
    assert_eq!(s.rua_source, RuaSource::Default);
    assert_eq!(s.rua[0].as_str(), "mailto:tlsrpt@example.com");
    assert!(steps(&s).starts_with("Publish the TLS-RPT record first"));
}

#[tokio::test]
async fn a_domain_without_mx_records_gets_no_usable_suggestion() {
    let d = domain(TESTING, &[], Some(RUA)).await;
    let s = d.suggest(None, &[]).await;
    assert!(!s.is_usable());
    assert_eq!(codes(&s), ["no-mx"]);
    assert!(s.warnings[0].message.contains("has no MX records"));
}

#[tokio::test]
async fn a_domain_that_does_not_exist_gets_no_usable_suggestion() {
    let d = domain_with(TESTING, &["mx1.example.com"], Some(RUA), |z| {
        z.nxdomain("gone")
    })
    .await;
    let report = d.report("gone.example.com").await;
    let s = suggest(&report, &SuggestRequest::default());
    assert!(!s.is_usable());
    assert_eq!(codes(&s), ["domain-not-found"]);
    assert!(s.warnings[0].message.contains("does not exist (NXDOMAIN)"));
}

#[tokio::test]
async fn enforce_from_testing_does_not_say_stay_in_testing() {
    let d = domain(TESTING, &["mx1.example.com"], Some(RUA)).await;
    let s = d.suggest(Some(Mode::Enforce), &[]).await;
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert_eq!(
        s.diff.as_ref().unwrap().mode,
        Some((Mode::Testing, Mode::Enforce))
    );
    let steps = steps(&s);
    assert!(!steps.contains("Stay in testing"), "{steps}");
    assert!(steps.contains("Publish the new policy first"), "{steps}");
}

#[tokio::test]
async fn enforce_without_a_testing_period_is_warned_about() {
    let d = domain_with(TESTING, &["mx1.example.com"], None, |z| {
        z.nxdomain("mta-sts").nxdomain("_mta-sts")
    })
    .await;
    let s = d.suggest(Some(Mode::Enforce), &[]).await;
    assert_eq!(codes(&s), ["enforce-without-testing"]);
    assert!(s.diff.is_none());
    let steps = steps(&s);
    assert!(!steps.contains("Stay in testing"), "{steps}");
    assert!(steps.contains("from the first day"), "{steps}");

    let s = d.suggest(None, &[]).await;
    assert_eq!(s.policy.mode, Mode::Testing);
    assert!(
        s.steps
            .iter()
            .any(|s| s.starts_with("Stay in testing for about two weeks"))
    );
}

#[tokio::test]
async fn a_longer_published_max_age_is_kept() {
    let policy = "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 31557600\n";
    let d = domain(policy, &["mx1.example.com"], Some(RUA)).await;
    let s = d.suggest(None, &[]).await;
    assert_eq!(s.policy.max_age, 31557600);
    assert!(s.diff.unwrap().is_empty());
}
