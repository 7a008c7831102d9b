//! Many domains in one run ([`Checker::check_all`]) judge each domain exactly as checking it
//! alone does: a bounded run loses no DNS answer and mixes up no report, on a loopback lab of
//! 1,000 domains of several kinds, healthy and broken.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mta_sts_check::{CheckOptions, Checker, RUN_DNS_CACHE_SIZE, Report, SenderVerdict};
use mta_sts_net::{Net, NetConfig};
use mta_sts_testnet::{HttpBehaviour, Lab, Site, SmtpBehaviour, Zone};

const DOMAINS: usize = 1000;
const PROVIDER: &str = "provider.example";

/// The kinds of domain in the lab, one after the other: each gives a different verdict or
/// different findings, so a report given to the wrong domain, or a lost DNS answer, shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Records, an enforced policy and an MX with a good certificate.
    Healthy,
    /// A testing policy over an MX whose certificate expired.
    TestingExpiredMx,
    /// No `_mta-sts` record.
    NoRecord,
    /// A record, but the policy host answers 404.
    PolicyNotFound,
    /// An enforced policy over an MX without STARTTLS.
    EnforceWithoutStartTls,
    /// The `_mta-sts` lookup fails (SERVFAIL).
    RecordServFail,
    /// The domain does not exist.
    NxDomain,
}

const KINDS: [Kind; 7] = [
    Kind::Healthy,
    Kind::TestingExpiredMx,
    Kind::NoRecord,
    Kind::PolicyNotFound,
    Kind::EnforceWithoutStartTls,
    Kind::RecordServFail,
    Kind::NxDomain,
];

fn kind_of(i: usize) -> Kind {
    KINDS[i % KINDS.len()]
}

fn domain_name(i: usize) -> String {
    format!("d{i:04}.example")
}

/// What a report is judged by: both verdicts and the codes of the findings.
fn judgement(report: &Report) -> (String, String, Vec<String>) {
    let mut codes: Vec<String> = report.findings.iter().map(|f| f.code.clone()).collect();
    codes.sort();
    (
        format!("{:?}", report.sender),
        format!("{:?}", report.hygiene),
        codes,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_1000_domains_judges_each_as_checking_it_alone() {
    let lab = Lab::new();
    let mx = |name: &str| format!("{name}.{PROVIDER}");
    let good = lab
        .smtp(
            &mx("mx-good"),
            SmtpBehaviour::starttls(lab.ca().issue(&[&mx("mx-good")]).unwrap()),
        )
        .await
        .unwrap();
    let expired = lab
        .smtp(
            &mx("mx-expired"),
            SmtpBehaviour::starttls(lab.ca().issue_expired(&[&mx("mx-expired")]).unwrap()),
        )
        .await
        .unwrap();
    let plain = lab
        .smtp(&mx("mx-plain"), SmtpBehaviour::NoStartTls)
        .await
        .unwrap();

    // One HTTPS server for every policy host, on the lab's HTTPS port.
    let sites = (0..DOMAINS).map(|i| {
        let (d, kind) = (domain_name(i), kind_of(i));
        let host = format!("mta-sts.{d}");
        let mode = if kind == Kind::TestingExpiredMx {
            "testing"
        } else {
            "enforce"
        };
        let policy = format!("version: STSv1\nmode: {mode}\nmx: *.{PROVIDER}\nmax_age: 86400\n");
        match kind {
            Kind::PolicyNotFound => Site::new(&host, HttpBehaviour::Status(404)),
            _ => Site::policy(&host, &policy),
        }
    });
    let web = lab.https(sites).await.unwrap();

    let mut zones = vec![
        Zone::new(PROVIDER)
            .address("mx-good", good.ip())
            .address("mx-expired", expired.ip())
            .address("mx-plain", plain.ip()),
    ];
    for i in 0..DOMAINS {
        let (d, kind) = (domain_name(i), kind_of(i));
        let mx_host = match kind {
            Kind::TestingExpiredMx => mx("mx-expired"),
            Kind::EnforceWithoutStartTls => mx("mx-plain"),
            _ => mx("mx-good"),
        };
        let zone = Zone::new(&d)
            .mx(10, &mx_host)
            .address("mta-sts", web.ip())
            .txt("_smtp._tls", &[&format!("v=TLSRPTv1; rua=mailto:tls@{d}")]);
        zones.push(match kind {
            Kind::NoRecord => zone,
            Kind::RecordServFail => zone.servfail("_mta-sts"),
            Kind::NxDomain => Zone::new(&d).nxdomain("@"),
            _ => zone.txt("_mta-sts", &["v=STSv1; ", &format!("id={i}")]),
        });
    }
    let dns = lab.dns(zones).await.unwrap();

    let config = |dns_cache_size| NetConfig {
        resolver: Some(dns.addr()),
        extra_roots: vec![lab.ca().root_der().clone()],
        https_port: lab.https_port().unwrap(),
        smtp_port: lab.smtp_port().unwrap(),
        timeout: Duration::from_secs(10),
        fetch_timeout: Duration::from_secs(10),
        dns_cache_size,
        ..NetConfig::default()
    };
    let names: Vec<String> = (0..DOMAINS).map(domain_name).collect();

    // One run, as `check D1 … D1000` makes it: one network with one DNS cache, the default
    // concurrency.
    let started = Instant::now();
    let checker = Checker::new(
        Net::new(config(RUN_DNS_CACHE_SIZE)).unwrap(),
        CheckOptions::default(),
    );
    let together: Vec<Report> = checker.check_all(&names, |_| {}).collect().await;
    eprintln!(
        "{DOMAINS} domains in one run: {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Each alone: its own network (no shared cache), one after the other.
    let started = Instant::now();
    let mut alone = Vec::with_capacity(DOMAINS);
    for name in &names {
        let checker = Checker::new(Net::new(config(0)).unwrap(), CheckOptions::default());
        alone.push(checker.check(name).await);
    }
    eprintln!(
        "{DOMAINS} domains one by one: {:.1} s",
        started.elapsed().as_secs_f64()
    );

    assert_eq!(together.len(), DOMAINS);
    let mut verdicts_per_kind: BTreeMap<Kind, Vec<String>> = BTreeMap::new();
    for (i, (run, single)) in together.iter().zip(&alone).enumerate() {
        assert_eq!(run.domain, names[i], "report {i} is out of order");
        assert_eq!(
            judgement(run),
            judgement(single),
            "{}: the run and the check alone disagree",
            names[i]
        );
        let verdict = run.sender.summary();
        let seen = verdicts_per_kind.entry(kind_of(i)).or_default();
        if !seen.contains(&verdict) {
            seen.push(verdict);
        }
    }
    // Each kind is judged one way, and the kinds are told apart: the comparison above could
    // fail.
    for (kind, verdicts) in &verdicts_per_kind {
        assert_eq!(
            verdicts.len(),
            1,
            "{kind:?} judged several ways: {verdicts:?}"
        );
    }
    let healthy = together
        .iter()
        .find(|r| r.domain == domain_name(0))
        .unwrap();
    assert_eq!(
        healthy.sender,
        SenderVerdict::Protected,
        "{:?}",
        judgement(healthy)
    );
    let distinct: std::collections::BTreeSet<_> = together.iter().map(judgement).collect();
    assert!(
        distinct.len() >= KINDS.len(),
        "only {} distinct judgements over {} kinds: {distinct:?}",
        distinct.len(),
        KINDS.len()
    );
}
