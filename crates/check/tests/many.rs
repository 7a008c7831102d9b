//! Many domains in one run ([`Checker::check_all`]) judge each domain exactly as checking it
//! alone does: a bounded run loses no DNS answer and mixes up no report, on a loopback lab of
//! 1,000 domains of several kinds, healthy and broken.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mta_sts_check::{CheckOptions, Checker, RUN_DNS_CACHE_SIZE, Report, SenderVerdict};
use mta_sts_net::{Net, NetConfig};
use mta_sts_testnet::{DomainKind as Kind, ManyDomains};

const DOMAINS: usize = 1000;

fn kind_of(i: usize) -> Kind {
    ManyDomains::kind(i)
}

fn domain_name(i: usize) -> String {
    ManyDomains::domain(i)
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
    let many = ManyDomains::start(DOMAINS, 3).await.unwrap();
    let lab = many.lab();
    let config = |dns_cache_size| NetConfig {
        resolver: Some(many.dns().addr()),
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
        // The same words but for the fleet's name.
        let verdict = run.sender.summary().replace(&many.mx_host(i), "MX");
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
        distinct.len() >= Kind::ALL.len(),
        "only {} distinct judgements over {} kinds: {distinct:?}",
        distinct.len(),
        Kind::ALL.len()
    );
    // Each kind has the verdict the lab says it must.
    for (i, report) in together.iter().enumerate() {
        let status = serde_json::to_value(&report.sender).unwrap()["status"].clone();
        assert_eq!(status, kind_of(i).status(true), "{}", names[i]);
    }
}
