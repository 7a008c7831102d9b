//! The collector end to end in one process: datagrams over a real unix datagram socket (and
//! lines), the day boundary crossed by an injected clock, counts read back from a real SQLite
//! store, and the day's reports built from them.

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use mta_sts_sender::tlsrpt::{
    Clock, CollectorOptions, Reporter, bind_socket, build_day, collect_lines, collect_socket,
};
use mta_sts_store::{Location, Store};
use mta_sts_tlsrpt::report::{Report, UtcDay};

/// A clock the test moves.
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_unix_seconds(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/datagrams/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

const DAY_ONE: &str = "2024-01-09";

fn day(text: &str) -> UtcDay {
    UtcDay::parse(text).unwrap()
}

fn options() -> CollectorOptions {
    CollectorOptions {
        flush_interval: Duration::from_millis(20),
        ..CollectorOptions::default()
    }
}

/// Session counts per (domain, policy type) as the store has them for `day`.
async fn totals(store: &Store, day: UtcDay) -> BTreeMap<(String, String), (u64, u64)> {
    let mut totals = BTreeMap::new();
    for report in store.collected_reports(day).await.unwrap() {
        for policy in report.policies {
            let entry = totals
                .entry((
                    report.scope.domain.clone(),
                    policy.policy.policy_type.as_str().to_owned(),
                ))
                .or_insert((0, 0));
            entry.0 += policy.successful;
            entry.1 += policy.failed;
        }
    }
    totals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_on_either_side_of_midnight_are_filed_under_their_day() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(&Location::DataDirectory(dir.path().join("data")))
            .await
            .unwrap(),
    );
    let midnight = day(DAY_ONE).next().start_unix_seconds();
    let clock = Arc::new(TestClock(AtomicI64::new(midnight - 1)));
    let path = dir.path().join("tlsrpt.sock");
    let socket = bind_socket(&path, 1 << 20).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let (store, clock, stop) = (Arc::clone(&store), Arc::clone(&clock), Arc::clone(&stop));
        tokio::spawn(async move { collect_socket(&store, socket, &options(), clock, stop).await })
    };
    let sender = UnixDatagram::unbound().unwrap();
    let send = |name: &str, times: usize| {
        let bytes = fixture(name);
        for _ in 0..times {
            sender.send_to(&bytes, &path).unwrap();
        }
    };
    send("sts-success", 7);
    send("sts-certificate-host-mismatch", 2);
    send("sts-and-tlsa", 3);
    sender.send_to(b"{\"not\": \"a datagram\"}", &path).unwrap();
    // Wait until the receiver has read everything sent before midnight.
    wait_for_datagrams(&store, 13).await;
    clock.0.store(midnight, Ordering::SeqCst);
    send("sts-success", 4);
    send("no-policy-found", 5);
    wait_for_datagrams(&store, 22).await;
    stop.store(true, Ordering::SeqCst);
    let stats = collector.await.unwrap().unwrap();
    assert_eq!((stats.datagrams, stats.invalid), (22, 1));

    let first = totals(&store, day(DAY_ONE)).await;
    let expected: BTreeMap<_, _> = [
        (("both.example".into(), "sts".into()), (3, 0)),
        (("both.example".into(), "tlsa".into()), (0, 3)),
        (("example.com".into(), "sts".into()), (7, 2)),
    ]
    .into();
    assert_eq!(first, expected);
    let second = totals(&store, day(DAY_ONE).next()).await;
    let expected: BTreeMap<_, _> = [
        (("example.com".into(), "sts".into()), (4, 0)),
        (("plain.example".into(), "no-policy-found".into()), (5, 0)),
    ]
    .into();
    assert_eq!(second, expected);
    let invalid = store.invalid_datagrams(10).await.unwrap();
    assert_eq!(invalid.len(), 1);
    assert_eq!(invalid[0].bytes, b"{\"not\": \"a datagram\"}");
    assert!(
        invalid[0].reason.contains("missing field"),
        "{}",
        invalid[0].reason
    );
}

async fn wait_for_datagrams(store: &Store, datagrams: u64) {
    for _ in 0..500 {
        if store.collector_totals().await.unwrap().datagrams >= datagrams {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the collector did not commit {datagrams} datagrams");
}

/// A deterministic pseudo-random sequence (a 64-bit LCG), so the set is the same every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

/// Datagrams over many domains, policies and failure codes: the daily totals computed here
/// from what was generated must come out of the store and the built reports exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_datagrams_add_up_exactly_in_store_and_reports() {
    let codes = [201, 202, 203, 204, 205, 301, 302, 303, 304, 305, 306];
    let mut random = Lcg(8460);
    let mut lines = String::new();
    let mut expected: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    let mut expected_failures: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..3000 {
        let domain = format!("d{}.example", random.next(40));
        let (type_code, type_name) =
            [(1, "tlsa"), (2, "sts"), (9, "no-policy-found")][random.next(3) as usize];
        let failed = random.next(4) == 0;
        let failures: Vec<String> = if failed {
            (0..=random.next(2))
                .map(|_| {
                    let code = codes[random.next(codes.len() as u64) as usize];
                    let ip = random.next(3);
                    *expected_failures
                        .entry(format!("{domain} {code} {ip}"))
                        .or_default() += 1;
                    format!(r#"{{"c":{code},"r":"198.51.100.{ip}","s":"192.0.2.1"}}"#)
                })
                .collect()
        } else {
            Vec::new()
        };
        let entry = expected
            .entry((domain.clone(), type_name.to_owned()))
            .or_default();
        if failed {
            entry.1 += 1;
        } else {
            entry.0 += 1;
        }
        lines.push_str(&format!(
            r#"{{"dpv":"1","d":"{domain}","pr":"v=TLSRPTv1; rua=mailto:tls@{domain}","policies":[{{"policy-type":{type_code},"policy-domain":"{domain}","f":{},"t":{},"failure-details":[{}]}}]}}"#,
            u8::from(failed),
            failures.len(),
            failures.join(",")
        ));
        lines.push('\n');
        if random.next(50) == 0 {
            lines.push_str("garbage line\n\n");
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Location::DataDirectory(dir.path().join("data")))
        .await
        .unwrap();
    let noon = day(DAY_ONE).start_unix_seconds() + 12 * 3600;
    let clock = Arc::new(TestClock(AtomicI64::new(noon)));
    let stats = collect_lines(
        &store,
        Box::new(std::io::Cursor::new(lines.into_bytes())),
        &options(),
        clock,
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap();
    assert_eq!(stats.datagrams - stats.invalid, 3000);
    assert_eq!(totals(&store, day(DAY_ONE)).await, expected);

    let reporter = Reporter::new("Example Sender", "tlsrpt@sender.example");
    let reports = build_day(&store, day(DAY_ONE), &reporter, noon)
        .await
        .unwrap();
    let mut from_reports: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    let mut failures_from_reports: BTreeMap<String, u64> = BTreeMap::new();
    let mut report_ids = std::collections::BTreeSet::new();
    for outgoing in &reports {
        let read = Report::from_json(&outgoing.json).unwrap();
        assert!(read.warnings.is_empty(), "{:?}", read.warnings);
        let report = read.report;
        assert_eq!(report.date_range, day(DAY_ONE).date_range());
        assert_eq!(
            report.contact_info.as_deref(),
            Some("tlsrpt@sender.example")
        );
        assert!(
            report_ids.insert(report.report_id.clone()),
            "report-id unique"
        );
        for policy in &report.policies {
            let entry = from_reports
                .entry((
                    outgoing.scope.domain.clone(),
                    policy.policy.policy_type.to_string(),
                ))
                .or_default();
            entry.0 += policy.summary.total_successful_session_count;
            entry.1 += policy.summary.total_failure_session_count;
            for detail in &policy.failure_details {
                let code = match detail.result_type.as_str() {
                    "starttls-not-supported" => 201,
                    "certificate-host-mismatch" => 202,
                    "certificate-not-trusted" => 203,
                    "certificate-expired" => 204,
                    "validation-failure" => 205,
                    "sts-policy-fetch-error" => 301,
                    "sts-policy-invalid" => 302,
                    "sts-webpki-invalid" => 303,
                    "tlsa-invalid" => 304,
                    "dnssec-invalid" => 305,
                    "dane-required" => 306,
                    other => panic!("unexpected result type {other}"),
                };
                let ip = detail
                    .receiving_ip
                    .as_deref()
                    .unwrap()
                    .rsplit('.')
                    .next()
                    .unwrap();
                *failures_from_reports
                    .entry(format!("{} {code} {ip}", outgoing.scope.domain))
                    .or_default() += detail.failed_session_count;
            }
        }
    }
    assert_eq!(from_reports, expected);
    assert_eq!(failures_from_reports, expected_failures);
    assert_eq!(reports.len(), 40, "one report per domain and record");
    store.close().await;
}
