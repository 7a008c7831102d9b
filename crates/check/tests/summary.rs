//! The summary of a scan over many more distinct MX hosts than it keeps: memory stays within
//! the table, and the big providers still come out first with counts within their error.

use mta_sts_check::{RANK_TABLE_SIZE, Ranking, ScanLine, Summary, mx_provider};

/// One results line as `scan` writes it, cut to what the summary reads.
fn line(domain: &str, mx: &[&str], failing: &[&str]) -> ScanLine {
    let status = if failing.is_empty() {
        "protected"
    } else {
        "degraded"
    };
    let hosts: Vec<serde_json::Value> = mx
        .iter()
        .map(|h| serde_json::json!({ "host": h }))
        .collect();
    let json = serde_json::json!({
        "domain": domain,
        "sender": { "status": status, "failing_mx": failing },
        "evidence": { "sts_txt": {}, "tlsrpt_txt": {}, "mx_hosts": hosts },
    });
    ScanLine::from_json(json.to_string().as_bytes()).unwrap()
}

/// A provider used by many domains: its name, how many, how many of them see it failing.
struct Big {
    provider: &'static str,
    domains: u64,
    failing: u64,
}

const BIG: [Big; 5] = [
    Big {
        provider: "google.com",
        domains: 5_000,
        failing: 0,
    },
    Big {
        provider: "outlook.com",
        domains: 4_000,
        failing: 0,
    },
    Big {
        provider: "provider.co.uk",
        domains: 3_000,
        failing: 0,
    },
    Big {
        provider: "fleet.example",
        domains: 2_000,
        failing: 1_000,
    },
    // Seen only at the very end, long after the table filled up.
    Big {
        provider: "late.example",
        domains: 1_500,
        failing: 0,
    },
];

/// Self-hosted domains, each its own MX host and provider: three times the table.
const TAIL: usize = 3 * RANK_TABLE_SIZE;

fn big_line(which: usize, i: u64) -> ScanLine {
    let domain = format!("b{which}-{i}.example");
    match which {
        // Two MX hosts of one provider count once for it.
        0 => line(
            &domain,
            &["aspmx.l.google.com", "alt1.aspmx.l.google.com"],
            &[],
        ),
        // A host name of its own for every domain, as hosted Exchange does.
        1 => line(
            &domain,
            &[&format!("{domain}.mail.protection.outlook.com")],
            &[],
        ),
        2 => line(&domain, &["mx1.provider.co.uk"], &[]),
        3 if i.is_multiple_of(2) => line(&domain, &["mx.fleet.example"], &["mx.fleet.example"]),
        3 => line(&domain, &["mx.fleet.example"], &[]),
        _ => line(&domain, &["mx.late.example"], &[]),
    }
}

fn check_bounded(ranking: &Ranking, what: &str) {
    assert!(
        ranking.top.len() <= RANK_TABLE_SIZE,
        "{what}: {} kept",
        ranking.top.len()
    );
    assert!(ranking.approximate, "{what}");
    assert_eq!(
        ranking.dropped,
        ranking.distinct - ranking.top.len() as u64,
        "{what}"
    );
}

#[test]
fn a_summary_over_many_distinct_mx_hosts_stays_bounded_and_ranks_the_big_providers_right() {
    let mut summary = Summary::new();
    // The first four big providers spread over the tail, in a fixed shuffled order.
    let mut order: Vec<(usize, u64)> = Vec::new();
    for (which, big) in BIG.iter().enumerate().take(4) {
        order.extend((0..big.domains).map(|i| (which, i)));
    }
    order.extend((0..TAIL as u64).map(|i| (usize::MAX, i)));
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..order.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        order.swap(i, (state >> 33) as usize % (i + 1));
    }
    for (which, i) in order {
        let scanned = if which == usize::MAX {
            let domain = format!("self{i}.example");
            line(&domain, &[&format!("mx.{domain}")], &[])
        } else {
            big_line(which, i)
        };
        summary.add(&scanned);
    }
    for i in 0..BIG[4].domains {
        summary.add(&big_line(4, i));
    }
    let total = summary.domains();
    assert_eq!(
        total,
        BIG.iter().map(|b| b.domains).sum::<u64>() + TAIL as u64
    );

    let all = summary.report(usize::MAX);
    check_bounded(&all.mx_providers, "providers");
    check_bounded(&all.mx_hosts, "hosts");
    // Distinct providers: the tail and the five; the estimate is within a few percent.
    let distinct = (TAIL + BIG.len()) as f64;
    let estimate = all.mx_providers.distinct as f64;
    assert!(
        (estimate - distinct).abs() < 0.05 * distinct,
        "{estimate} distinct providers estimated, {distinct} seen"
    );

    let report = summary.report(BIG.len());
    let top = &report.mx_providers.top;
    let names: Vec<&str> = top.iter().map(|r| r.name.as_str()).collect();
    let expected: Vec<&str> = BIG.iter().map(|b| b.provider).collect();
    assert_eq!(names, expected);
    // Space-Saving's bound: no count is over by more than domains / table size.
    let bound = total / RANK_TABLE_SIZE as u64;
    for (ranked, big) in top.iter().zip(&BIG) {
        assert!(ranked.error <= bound, "{ranked:?}");
        assert!(
            ranked.domains - ranked.error <= big.domains && big.domains <= ranked.domains,
            "{ranked:?}: {} domains",
            big.domains
        );
        assert!(
            ranked.failing <= big.failing && big.failing <= ranked.failing + ranked.error,
            "{ranked:?}: {} failing",
            big.failing
        );
    }
    // Providers seen from the start are exact; the late one is over by what it replaced.
    assert_eq!(top[0].error, 0, "{:?}", top[0]);
    assert_eq!(top[3].failing, 1_000);
    // Among hosts, Google's two lead, though every Exchange domain has its own.
    let hosts: Vec<(&str, u64)> = report.mx_hosts.top[..2]
        .iter()
        .map(|r| (r.name.as_str(), r.domains))
        .collect();
    assert_eq!(
        hosts,
        [
            ("alt1.aspmx.l.google.com", 5_000),
            ("aspmx.l.google.com", 5_000)
        ]
    );
}

#[test]
fn an_mx_provider_is_the_registrable_domain_of_the_host() {
    for (host, provider) in [
        ("aspmx.l.google.com", "google.com"),
        ("ALT1.ASPMX.L.GOOGLE.COM.", "google.com"),
        ("example-com.mail.protection.outlook.com", "outlook.com"),
        ("mx1.example.co.uk", "example.co.uk"),
        ("mail.example.com.au", "example.com.au"),
        ("mx.yandex.ru", "yandex.ru"),
        ("mx-good.fleet0.example", "fleet0.example"),
        ("co.uk", "co.uk"),
        ("localhost", "localhost"),
    ] {
        assert_eq!(mx_provider(host), provider, "{host}");
    }
}

#[test]
fn unknown_modes_and_verdicts_add_no_names() {
    let mut summary = Summary::new();
    for i in 0..100 {
        let json = serde_json::json!({
            "domain": format!("d{i}.example"),
            "sender": { "status": format!("status-{i}") },
            "policy": { "mode": format!("mode-{i}"), "max_age": 86400 },
            "evidence": { "sts_txt": { "ok": { "records": ["v=STSv1; id=1"], "parsed": {} } },
                          "tlsrpt_txt": {} },
        });
        summary.add(&ScanLine::from_json(json.to_string().as_bytes()).unwrap());
    }
    let report = summary.report(10);
    assert_eq!(report.verdicts.len(), 1);
    assert_eq!(report.verdicts["other"].domains, 100);
    assert_eq!(report.modes.len(), 3);
    assert_eq!(report.mta_sts_policy_valid.domains, 100);
}
