//! The store's behaviour, one suite for both backends: every case runs against SQLite, and
//! against PostgreSQL when `MTA_STS_TEST_POSTGRES_URL` names a server where the test may create
//! databases (`scripts/pg-test.sh` starts one). A PostgreSQL case without that variable says
//! SKIPPED on the terminal; with `MTA_STS_REQUIRE_POSTGRES=1` it fails instead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use mta_sts_store::{
    IngestOutcome, Ingested, Location, Origin, QuarantineCode, RawId, ReportFilter, ReportKey,
    Source, Store, StoreOptions,
};
use mta_sts_tlsrpt::report::{DEFAULT_MAX_DECOMPRESSED, ReadReport, Timestamp, decode};
use sqlx::{Connection, Executor, PgConnection};

#[macro_use]
mod backends;

use backends::{Backend, run};

on_both_backends!(
    raw_body_is_stored_before_it_is_parsed,
    duplicate_delivery_changes_nothing,
    same_report_in_other_bytes_is_a_duplicate,
    unreadable_body_is_quarantined_with_its_bytes_and_reason,
    body_over_the_size_limit_is_quarantined_as_too_large,
    explicit_quarantine_keeps_the_first_reason,
    quarantine_needs_a_stored_body,
    overlong_identity_is_quarantined,
    large_body_is_read_and_stored,
    concurrent_ingest_stores_every_acknowledged_report_once,
    data_survives_close_and_reopen,
    data_survives_drop_and_reopen,
    migrations_applied_again_change_nothing,
    get_returns_every_fixture_as_read,
    list_returns_every_report_with_its_policy_counts,
    list_filters_by_domain_since_and_limit,
    list_filters_by_domain_set_reporter_period_failures_and_page,
    a_body_in_quarantine_is_reprocessed_alone,
    policy_rows_of_a_domain_set_are_those_of_each_domain,
    unknown_keys_are_none,
    nul_characters_are_stored_replaced,
    invalid_utf8_inside_a_json_string_is_quarantined_with_its_bytes,
    huge_numbers_are_stored_saturated_or_quarantined,
    a_refused_report_is_kept_in_quarantine_and_its_batch_commits,
    a_different_body_with_a_stored_identity_is_kept_as_a_conflict,
    dkim_verified_mail_beats_an_unsigned_body,
    both_backends_have_the_same_columns,
    reports_committed_together_read_back_as_read,
);

// ---------------------------------------------------------------------------------------------
// Fixtures.

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tlsrpt/tests/fixtures/reports")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Every report fixture: file name and bytes.
fn all_fixtures() -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir())
        .expect("fixture directory")
        .map(|entry| entry.expect("fixture entry").file_name())
        .map(|name| name.into_string().expect("UTF-8 fixture name"))
        .filter(|name| name.ends_with(".json") || name.ends_with(".json.gz"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let bytes = fixture(&name);
            (name, bytes)
        })
        .collect()
}

fn read(bytes: &[u8]) -> ReadReport {
    decode(bytes, DEFAULT_MAX_DECOMPRESSED).expect("fixture reads")
}

/// The Google fixture with another report-id: a different report of the same shape.
fn google_report(report_id: &str) -> Vec<u8> {
    let mut json: serde_json::Value =
        serde_json::from_slice(&fixture("google-sts-enforce.json")).expect("fixture is JSON");
    json["report-id"] = serde_json::Value::from(report_id);
    json.to_string().into_bytes()
}

async fn open(location: &Location) -> Store {
    Store::open(location).await.expect("store opens")
}

async fn all_reports(store: &Store) -> Vec<mta_sts_store::ReportSummary> {
    store
        .list_reports(&ReportFilter {
            limit: 100_000,
            ..ReportFilter::default()
        })
        .await
        .expect("list reports")
}

fn stored_key(outcome: &Ingested) -> ReportKey {
    match outcome {
        Ingested::Stored { report, .. } => *report,
        other => panic!("expected Stored, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Cases.

async fn raw_body_is_stored_before_it_is_parsed(location: Location) {
    let store = open(&location).await;
    let bytes = fixture("rfc8460-appendix-b.json");
    let raw = store
        .ingest_raw(Source::Mail, "application/tlsrpt+json", &bytes)
        .await
        .expect("raw stored");

    let stored = store
        .raw(raw)
        .await
        .expect("read raw")
        .expect("raw is there");
    assert_eq!(stored.bytes, bytes);
    assert_eq!(stored.source, "mail");
    assert_eq!(stored.content_type, "application/tlsrpt+json");
    assert_eq!(stored.sha256.len(), 64);
    assert!(all_reports(&store).await.is_empty(), "nothing parsed yet");
    assert!(
        store
            .list_quarantine()
            .await
            .expect("quarantine")
            .is_empty()
    );

    let outcome = store
        .ingest_parsed(raw, &read(&bytes))
        .await
        .expect("parsed stored");
    let IngestOutcome::Stored(key) = outcome else {
        panic!("expected Stored, got {outcome:?}");
    };
    let report = store.get_report(key).await.expect("get").expect("report");
    assert_eq!(report.raw, raw);
    assert_eq!(all_reports(&store).await.len(), 1);
    store.close().await;
}

async fn duplicate_delivery_changes_nothing(location: Location) {
    let store = open(&location).await;
    let bytes = fixture("microsoft-sts-tlsa.json");
    let first = store
        .ingest(Source::Https, "application/tlsrpt+json", &bytes)
        .await
        .expect("first delivery");
    let key = stored_key(&first);
    let second = store
        .ingest(Source::Https, "application/tlsrpt+json", &bytes)
        .await
        .expect("second delivery");
    assert_eq!(
        second,
        Ingested::Duplicate {
            raw: first.raw(),
            report: key
        }
    );
    let third = store
        .ingest_parsed(first.raw(), &read(&bytes))
        .await
        .expect("parsed again");
    assert_eq!(third, IngestOutcome::Duplicate(key));

    let reports = all_reports(&store).await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].policies.len(), 2);
    store.close().await;
}

async fn same_report_in_other_bytes_is_a_duplicate(location: Location) {
    let store = open(&location).await;
    let json = store
        .ingest(
            Source::Https,
            "application/tlsrpt+json",
            &fixture("google-sts-enforce.json"),
        )
        .await
        .expect("JSON delivery");
    let gzip = store
        .ingest(
            Source::Https,
            "application/tlsrpt+gzip",
            &fixture("google-sts-enforce.json.gz"),
        )
        .await
        .expect("gzip delivery");
    let Ingested::Duplicate { raw, report } = gzip else {
        panic!("expected Duplicate, got {gzip:?}");
    };
    assert_eq!(report, stored_key(&json));
    assert_ne!(raw, json.raw(), "each body is kept");
    assert_eq!(all_reports(&store).await.len(), 1);
    store.close().await;
}

async fn unreadable_body_is_quarantined_with_its_bytes_and_reason(location: Location) {
    let store = open(&location).await;
    let body = b"{\"organization-name\": \"Example\", \"report-id\": \"x\"}";
    let outcome = store
        .ingest(Source::File, "application/json", body)
        .await
        .expect("ingest");
    let Ingested::Quarantined { raw, reason } = outcome else {
        panic!("expected Quarantined, got {outcome:?}");
    };
    assert!(reason.contains("date-range"), "{reason}");

    let quarantine = store.list_quarantine().await.expect("quarantine");
    assert_eq!(quarantine.len(), 1);
    assert_eq!(quarantine[0].raw, raw);
    assert_eq!(quarantine[0].reason, reason);
    assert_eq!(quarantine[0].source, "file");
    assert_eq!(quarantine[0].size, body.len() as u64);
    let stored = store.raw(raw).await.expect("read raw").expect("raw kept");
    assert_eq!(stored.bytes, body);
    assert!(all_reports(&store).await.is_empty());

    let not_json = store
        .ingest(
            Source::Https,
            "application/tlsrpt+gzip",
            b"\x1f\x8bnot gzip",
        )
        .await
        .expect("ingest");
    assert!(
        matches!(not_json, Ingested::Quarantined { .. }),
        "{not_json:?}"
    );
    assert_eq!(store.list_quarantine().await.expect("quarantine").len(), 2);
    // One entry by its raw body, and the first few: what `reports quarantine show|list` read.
    let entry = store
        .quarantined(raw)
        .await
        .expect("read quarantine")
        .expect("in quarantine");
    assert_eq!(entry, quarantine[0]);
    let first = store.list_quarantine_up_to(1).await.expect("quarantine");
    assert_eq!(first, quarantine);
    let stored_raw = store
        .ingest_raw(Source::File, "application/json", b"{}")
        .await
        .expect("raw");
    assert_eq!(store.quarantined(stored_raw).await.expect("read"), None);
    store.close().await;
}

async fn body_over_the_size_limit_is_quarantined_as_too_large(location: Location) {
    let options = StoreOptions {
        max_report_size: 100,
        ..StoreOptions::default()
    };
    let store = Store::open_with(&location, options).await.expect("open");
    let outcome = store
        .ingest(
            Source::Https,
            "application/tlsrpt+gzip",
            &fixture("google-sts-enforce.json.gz"),
        )
        .await
        .expect("ingest");
    let Ingested::TooLarge { raw, limit } = outcome else {
        panic!("expected TooLarge, got {outcome:?}");
    };
    assert_eq!(limit, 100);
    let quarantine = store.list_quarantine().await.expect("quarantine");
    assert_eq!(quarantine.len(), 1);
    assert_eq!(quarantine[0].raw, raw);
    assert!(quarantine[0].reason.contains("larger than 100 bytes"));
    store.close().await;
}

async fn explicit_quarantine_keeps_the_first_reason(location: Location) {
    let store = open(&location).await;
    let raw = store
        .ingest_raw(
            Source::Mail,
            "message/rfc822",
            b"Subject: no report here\r\n\r\n",
        )
        .await
        .expect("raw");
    store
        .quarantine(raw, "no TLS report attachment")
        .await
        .expect("quarantine");
    store
        .quarantine(raw, "a second reason")
        .await
        .expect("quarantine again");
    let quarantine = store.list_quarantine().await.expect("quarantine");
    assert_eq!(quarantine.len(), 1);
    assert_eq!(quarantine[0].reason, "no TLS report attachment");
    assert_eq!(quarantine[0].content_type, "message/rfc822");
    store.close().await;
}

async fn quarantine_needs_a_stored_body(location: Location) {
    let store = open(&location).await;
    let error = store
        .quarantine(RawId(4242), "no such body")
        .await
        .expect_err("quarantine of an unknown body fails");
    assert!(
        matches!(error, mta_sts_store::StoreError::Database { .. }),
        "{error}"
    );
    // The writer goes on after a failed write.
    let raw = store
        .ingest_raw(Source::File, "application/json", b"{}")
        .await
        .expect("raw after a failure");
    assert!(store.raw(raw).await.expect("read").is_some());
    store.close().await;
}

async fn overlong_identity_is_quarantined(location: Location) {
    let store = open(&location).await;
    let long_id = "r".repeat(mta_sts_store::MAX_INDEXED_LEN + 1);
    let outcome = store
        .ingest(
            Source::Https,
            "application/tlsrpt+json",
            &google_report(&long_id),
        )
        .await
        .expect("ingest");
    let Ingested::Quarantined { reason, .. } = outcome else {
        panic!("expected Quarantined, got {outcome:?}");
    };
    assert!(reason.contains("report-id"), "{reason}");
    assert!(all_reports(&store).await.is_empty());
    store.close().await;
}

async fn large_body_is_read_and_stored(location: Location) {
    const DETAILS: usize = 2000;
    let mut json: serde_json::Value =
        serde_json::from_slice(&fixture("google-sts-enforce.json")).expect("fixture is JSON");
    let details: Vec<serde_json::Value> = (0..DETAILS)
        .map(|n| {
            serde_json::json!({
                "result-type": "certificate-expired",
                "sending-mta-ip": format!("192.0.2.{}", n % 250),
                "receiving-mx-hostname": format!("mx{n}.example.org"),
                "failed-session-count": 1,
            })
        })
        .collect();
    json["policies"][0]["failure-details"] = serde_json::Value::from(details);
    let body = json.to_string().into_bytes();
    assert!(
        body.len() > 64 * 1024,
        "large enough to be read off the async workers"
    );

    let store = open(&location).await;
    let outcome = store
        .ingest(Source::Https, "application/tlsrpt+json", &body)
        .await
        .expect("ingest");
    let report = store
        .get_report(stored_key(&outcome))
        .await
        .expect("get")
        .expect("report");
    assert_eq!(report.report.policies[0].failure_details.len(), DETAILS);
    assert_eq!(report.report, read(&body).report);
    store.close().await;
}

async fn concurrent_ingest_stores_every_acknowledged_report_once(location: Location) {
    const TASKS: usize = 64;
    const REPORTS_PER_TASK: usize = 8;
    let store = Arc::new(open(&location).await);
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0..REPORTS_PER_TASK {
                // Every report is sent by two tasks, as a retrying sender would.
                let report_id = format!("concurrent-{}-{n}", task / 2);
                let outcome = store
                    .ingest(
                        Source::Https,
                        "application/tlsrpt+json",
                        &google_report(&report_id),
                    )
                    .await
                    .expect("ingest");
                acknowledged.push((report_id, outcome));
            }
            acknowledged
        }));
    }
    let mut keys: BTreeMap<String, BTreeSet<ReportKey>> = BTreeMap::new();
    let mut stored = 0;
    for task in tasks {
        for (report_id, outcome) in task.await.expect("task") {
            let key = match outcome {
                Ingested::Stored { report, .. } => {
                    stored += 1;
                    report
                }
                Ingested::Duplicate { report, .. } => report,
                other => panic!("unexpected {other:?}"),
            };
            keys.entry(report_id).or_default().insert(key);
        }
    }
    assert_eq!(keys.len(), TASKS / 2 * REPORTS_PER_TASK);
    assert_eq!(stored, keys.len(), "each report stored once");
    assert!(
        keys.values().all(|keys| keys.len() == 1),
        "one key per report"
    );

    let listed = all_reports(&store).await;
    assert_eq!(listed.len(), keys.len());
    let listed_ids: BTreeSet<_> = listed.iter().map(|r| r.report_id.clone()).collect();
    assert_eq!(listed_ids, keys.keys().cloned().collect());
    let stats = store.writer_stats();
    assert_eq!(stats.writes, (TASKS * REPORTS_PER_TASK) as u64);
    assert!(stats.commits <= stats.writes);
    Arc::into_inner(store)
        .expect("last reference")
        .close()
        .await;
}

async fn data_survives_close_and_reopen(location: Location) {
    let store = open(&location).await;
    let outcome = store
        .ingest(
            Source::Https,
            "application/tlsrpt+json",
            &fixture("mailru-fetch-errors.json"),
        )
        .await
        .expect("ingest");
    store.close().await;

    let store = open(&location).await;
    let report = store
        .get_report(stored_key(&outcome))
        .await
        .expect("get")
        .expect("report survives");
    assert_eq!(report.report.organization_name, "Mail.ru");
    let raw = store
        .raw(outcome.raw())
        .await
        .expect("raw")
        .expect("raw survives");
    assert_eq!(raw.bytes, fixture("mailru-fetch-errors.json"));
    store.close().await;
}

async fn data_survives_drop_and_reopen(location: Location) {
    let store = open(&location).await;
    let outcome = store
        .ingest(
            Source::Https,
            "application/tlsrpt+json",
            &fixture("no-contact.json"),
        )
        .await
        .expect("ingest");
    drop(store);

    let store = open(&location).await;
    assert!(
        store
            .get_report(stored_key(&outcome))
            .await
            .expect("get")
            .is_some()
    );
    store.close().await;
}

async fn migrations_applied_again_change_nothing(location: Location) {
    let store = open(&location).await;
    let outcome = store
        .ingest(
            Source::Https,
            "application/tlsrpt+json",
            &fixture("dane-tlsa-records.json"),
        )
        .await
        .expect("ingest");
    store.close().await;
    for _ in 0..2 {
        let store = open(&location).await;
        assert_eq!(all_reports(&store).await.len(), 1);
        store.close().await;
    }
    // Two stores opening at once both find the schema up to date.
    let (first, second) = tokio::join!(Store::open(&location), Store::open(&location));
    let (first, second) = (first.expect("first"), second.expect("second"));
    assert!(
        first
            .get_report(stored_key(&outcome))
            .await
            .expect("get")
            .is_some()
    );
    first.close().await;
    second.close().await;
}

async fn get_returns_every_fixture_as_read(location: Location) {
    let store = open(&location).await;
    let mut seen = BTreeSet::new();
    for (name, bytes) in all_fixtures() {
        let expected = read(&bytes);
        let outcome = store
            .ingest(Source::File, "application/tlsrpt+json", &bytes)
            .await
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        let key = match outcome {
            Ingested::Stored { report, .. } => report,
            Ingested::Duplicate { report, .. } => {
                assert!(!seen.insert(report) || name.ends_with(".gz"), "{name}");
                continue;
            }
            other => panic!("{name}: {other:?}"),
        };
        seen.insert(key);
        let stored = store
            .get_report(key)
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("{name}: stored report not found"));
        assert_eq!(stored.key, key);
        assert_eq!(stored.raw, outcome_raw(&store, &bytes).await, "{name}");
        assert_same_report(&stored, &expected, &name);
    }
    store.close().await;
}

/// Reports that arrive together are committed together, in multi-row statements: each reads
/// back exactly as read (policies in order, each with its own failure details, warnings), a
/// body sent twice in one batch is stored once, and two bodies of one identity in one batch
/// are both kept, one counted.
async fn reports_committed_together_read_back_as_read(location: Location) {
    let store = Arc::new(open(&location).await);
    let mut bodies: Vec<(String, Vec<u8>)> = all_fixtures();
    bodies.extend(
        all_fixtures()
            .into_iter()
            .map(|(n, b)| (format!("{n} again"), b)),
    );
    let mut forged: serde_json::Value =
        serde_json::from_slice(&fixture("google-sts-enforce.json")).expect("fixture is JSON");
    forged["policies"][0]["summary"]["total-failure-session-count"] = 999.into();
    bodies.push(("forged google".to_owned(), forged.to_string().into_bytes()));
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|(name, bytes)| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let outcome = store
                    .ingest(Source::File, "application/tlsrpt+json", &bytes)
                    .await
                    .unwrap_or_else(|error| panic!("{name}: {error}"));
                (name, bytes, outcome)
            })
        })
        .collect();
    let mut keys: BTreeMap<ReportKey, Vec<u8>> = BTreeMap::new();
    let (mut conflicts, mut duplicates) = (0, 0);
    for task in tasks {
        let (name, bytes, outcome) = task.await.expect("task");
        match outcome {
            Ingested::Stored { report, .. } => {
                assert!(
                    keys.insert(report, bytes).is_none(),
                    "{name}: key given twice"
                );
            }
            Ingested::Conflict { report, .. } => {
                conflicts += 1;
                keys.insert(report, bytes);
            }
            Ingested::Duplicate { .. } => duplicates += 1,
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(conflicts, 1, "the forged body");
    assert!(
        duplicates >= all_fixtures().len(),
        "each fixture's second copy"
    );
    for (key, bytes) in &keys {
        let expected = read(bytes);
        let stored = store.get_report(*key).await.expect("get").expect("stored");
        assert_same_report(&stored, &expected, &format!("report {}", key.0));
    }
    let counted = all_reports(&store).await.len();
    assert_eq!(
        counted,
        keys.len() - 1,
        "one body of the conflicting identity counts"
    );
    let stats = store.writer_stats();
    assert!(
        stats.commits < stats.writes,
        "the reports were committed together: {stats:?}"
    );
    Arc::into_inner(store)
        .expect("last reference")
        .close()
        .await;
}

/// `stored` holds what reading gave: the report, and the reader's warnings as notes.
fn assert_same_report(stored: &mta_sts_store::StoredReport, expected: &ReadReport, name: &str) {
    assert_eq!(stored.report, expected.report, "{name}");
    let warnings: Vec<(String, String)> = stored
        .warnings
        .iter()
        .map(|w| (w.path.clone(), w.message.clone()))
        .collect();
    let expected_warnings: Vec<(String, String)> = expected
        .warnings
        .iter()
        .map(|w| (w.path.clone(), w.kind.to_string()))
        .collect();
    assert_eq!(warnings, expected_warnings, "{name}");
}

/// The raw key of bytes stored before: storing them again returns it.
async fn outcome_raw(store: &Store, bytes: &[u8]) -> RawId {
    store
        .ingest_raw(Source::File, "application/tlsrpt+json", bytes)
        .await
        .expect("raw")
}

async fn list_returns_every_report_with_its_policy_counts(location: Location) {
    let store = open(&location).await;
    let mut expected = BTreeMap::new();
    for (name, bytes) in all_fixtures() {
        let report = read(&bytes).report;
        store
            .ingest(Source::File, "application/tlsrpt+json", &bytes)
            .await
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        let policies: Vec<(String, String, u64, u64)> = report
            .policies
            .iter()
            .map(|p| {
                (
                    p.policy.policy_domain.clone(),
                    p.policy.policy_type.to_string(),
                    p.summary.total_successful_session_count,
                    p.summary.total_failure_session_count,
                )
            })
            .collect();
        expected.insert(
            (report.organization_name.clone(), report.report_id.clone()),
            (report, policies),
        );
    }
    let listed = all_reports(&store).await;
    assert_eq!(listed.len(), expected.len());
    for summary in &listed {
        let (report, policies) =
            &expected[&(summary.organization_name.clone(), summary.report_id.clone())];
        assert_eq!(summary.date_start, report.date_range.start);
        assert_eq!(summary.date_end, report.date_range.end);
        let listed_policies: Vec<(String, String, u64, u64)> = summary
            .policies
            .iter()
            .map(|p| {
                (
                    p.domain.clone(),
                    p.policy_type.clone(),
                    p.successful,
                    p.failed,
                )
            })
            .collect();
        assert_eq!(&listed_policies, policies, "{}", summary.report_id);
    }
    let starts: Vec<i64> = listed.iter().map(|r| r.date_start.unix_seconds()).collect();
    assert!(starts.windows(2).all(|w| w[0] >= w[1]), "newest first");
    store.close().await;
}

async fn list_filters_by_domain_since_and_limit(location: Location) {
    let store = open(&location).await;
    let mut reports = Vec::new();
    for (_, bytes) in all_fixtures() {
        store
            .ingest(Source::File, "application/tlsrpt+json", &bytes)
            .await
            .expect("ingest");
        reports.push(read(&bytes).report);
    }
    reports.sort_by_key(|r| (r.organization_name.clone(), r.report_id.clone()));
    reports.dedup_by_key(|r| (r.organization_name.clone(), r.report_id.clone()));

    let for_domain = |domain: &str| -> BTreeSet<String> {
        reports
            .iter()
            .filter(|r| r.policies.iter().any(|p| p.policy.policy_domain == domain))
            .map(|r| r.report_id.clone())
            .collect()
    };
    let expected = for_domain("example.org");
    assert!(!expected.is_empty());
    let listed = store
        .list_reports(&ReportFilter {
            domain: Some("Example.ORG.".to_owned()),
            ..ReportFilter::default()
        })
        .await
        .expect("list by domain");
    let listed: BTreeSet<String> = listed.into_iter().map(|r| r.report_id).collect();
    assert_eq!(listed, expected);

    let since = Timestamp::from_unix_seconds(1_704_067_200).expect("2024-01-01"); // 2024-01-01
    let expected: BTreeSet<String> = reports
        .iter()
        .filter(|r| r.date_range.end > since)
        .map(|r| r.report_id.clone())
        .collect();
    assert!(!expected.is_empty() && expected.len() < reports.len());
    let listed = store
        .list_reports(&ReportFilter {
            since: Some(since.clone()),
            ..ReportFilter::default()
        })
        .await
        .expect("list since");
    let listed: BTreeSet<String> = listed.into_iter().map(|r| r.report_id).collect();
    assert_eq!(listed, expected);

    let mut newest = reports.clone();
    newest.sort_by_key(|r| std::cmp::Reverse(r.date_range.start.unix_seconds()));
    let listed = store
        .list_reports(&ReportFilter {
            limit: 3,
            ..ReportFilter::default()
        })
        .await
        .expect("list three");
    assert_eq!(listed.len(), 3);
    assert_eq!(
        listed[0].date_start.unix_seconds(),
        newest[0].date_range.start.unix_seconds()
    );
    let none = store
        .list_reports(&ReportFilter {
            domain: Some("example.org".to_owned()),
            since: Some(Timestamp::from_unix_seconds(4_102_444_800).expect("2100")),
            limit: 10,
            include_uncounted: true,
            ..ReportFilter::default()
        })
        .await
        .expect("list both filters");
    assert!(none.is_empty());
    store.close().await;
}

async fn list_filters_by_domain_set_reporter_period_failures_and_page(location: Location) {
    let store = open(&location).await;
    let mut reports = Vec::new();
    for (_, bytes) in all_fixtures() {
        store
            .ingest(Source::File, "application/tlsrpt+json", &bytes)
            .await
            .expect("ingest");
        reports.push(read(&bytes).report);
    }
    reports.sort_by_key(|r| (r.organization_name.clone(), r.report_id.clone()));
    reports.dedup_by_key(|r| (r.organization_name.clone(), r.report_id.clone()));
    let reader = &store;
    let ids = move |filter: ReportFilter| async move {
        let listed = reader.list_reports(&filter).await.expect("list");
        listed
            .into_iter()
            .map(|r| r.report_id)
            .collect::<BTreeSet<String>>()
    };
    let expect = |keep: &dyn Fn(&mta_sts_tlsrpt::report::Report) -> bool| -> BTreeSet<String> {
        reports
            .iter()
            .filter(|r| keep(r))
            .map(|r| r.report_id.clone())
            .collect()
    };
    let domains = ["example.org".to_owned(), "Example.COM.".to_owned()];
    let in_set = |r: &mta_sts_tlsrpt::report::Report| {
        r.policies.iter().any(|p| {
            let d = p
                .policy
                .policy_domain
                .trim_end_matches('.')
                .to_ascii_lowercase();
            d == "example.org" || d == "example.com"
        })
    };
    let expected = expect(&in_set);
    assert!(!expected.is_empty() && expected.len() < reports.len());
    let got = ids(ReportFilter {
        domains: Some(domains.to_vec()),
        limit: 1000,
        ..ReportFilter::default()
    })
    .await;
    assert_eq!(got, expected, "any domain of the set");
    let got = ids(ReportFilter {
        domains: Some(Vec::new()),
        ..ReportFilter::default()
    })
    .await;
    assert!(got.is_empty(), "an empty set matches nothing");

    let org = reports[0].organization_name.clone();
    let got = ids(ReportFilter {
        organization: Some(org.clone()),
        limit: 1000,
        ..ReportFilter::default()
    })
    .await;
    assert_eq!(got, expect(&|r| r.organization_name == org), "by reporter");

    let failing = expect(&|r| {
        r.policies
            .iter()
            .any(|p| p.summary.total_failure_session_count > 0)
    });
    assert!(!failing.is_empty() && failing.len() < reports.len());
    let got = ids(ReportFilter {
        failures_only: true,
        limit: 1000,
        ..ReportFilter::default()
    })
    .await;
    assert_eq!(got, failing, "failures only");

    let until = Timestamp::from_unix_seconds(1_704_067_200).expect("2024-01-01");
    let got = ids(ReportFilter {
        until: Some(until.clone()),
        limit: 1000,
        ..ReportFilter::default()
    })
    .await;
    assert_eq!(got, expect(&|r| r.date_range.start < until), "until");

    // Pages of two, newest first, cover the whole list once.
    let all = store
        .list_reports(&ReportFilter {
            limit: 1000,
            ..ReportFilter::default()
        })
        .await
        .expect("all");
    let mut paged = Vec::new();
    for page in 0.. {
        let part = store
            .list_reports(&ReportFilter {
                offset: page * 2,
                limit: 2,
                ..ReportFilter::default()
            })
            .await
            .expect("page");
        if part.is_empty() {
            break;
        }
        paged.extend(part);
    }
    assert_eq!(paged, all);
    store.close().await;
}

async fn policy_rows_of_a_domain_set_are_those_of_each_domain(location: Location) {
    use mta_sts_store::analysis::AnalysisFilter;
    let store = open(&location).await;
    for (_, bytes) in all_fixtures() {
        store
            .ingest(Source::File, "application/tlsrpt+json", &bytes)
            .await
            .expect("ingest");
    }
    let rows = |filter: AnalysisFilter| {
        let store = &store;
        async move { store.policy_rows(&filter).await.expect("rows") }
    };
    let mut each = Vec::new();
    for domain in ["example.com", "example.org"] {
        each.extend(
            rows(AnalysisFilter {
                domain: Some(domain.to_owned()),
                ..AnalysisFilter::default()
            })
            .await,
        );
    }
    assert!(!each.is_empty());
    let mut both = rows(AnalysisFilter {
        domains: Some(vec!["Example.COM.".to_owned(), "example.org".to_owned()]),
        ..AnalysisFilter::default()
    })
    .await;
    let key = |r: &mta_sts_store::analysis::PolicyRow| {
        (r.report, r.policy_domain.clone(), r.policy_type.clone())
    };
    each.sort_by_key(key);
    both.sort_by_key(key);
    assert_eq!(both, each);
    // A list long enough (with a start date) that the read is led by the date index instead
    // of the domain index: the same rows.
    let mut many: Vec<String> = (0..10).map(|i| format!("other{i}.example")).collect();
    many.extend(["example.org.".to_owned(), "EXAMPLE.com".to_owned()]);
    let mut led_by_date = rows(AnalysisFilter {
        domains: Some(many),
        since: Some(0),
        ..AnalysisFilter::default()
    })
    .await;
    led_by_date.sort_by_key(key);
    assert_eq!(led_by_date, each);
    let none = rows(AnalysisFilter {
        domains: Some(Vec::new()),
        ..AnalysisFilter::default()
    })
    .await;
    assert!(none.is_empty());
    store.close().await;
}

async fn a_body_in_quarantine_is_reprocessed_alone(location: Location) {
    use mta_sts_store::Reprocessed;
    let store = open(&location).await;
    let broken = store
        .ingest(Source::Https, "application/tlsrpt+json", b"{\"not\": ")
        .await
        .expect("ingest broken");
    assert_eq!(
        store.reprocess(broken.raw()).await.expect("reprocess"),
        Reprocessed::StillUnreadable
    );
    assert!(
        store
            .quarantined(broken.raw())
            .await
            .expect("read")
            .is_some()
    );
    // A readable body that the reader once refused (as an older version would have).
    let good = google_report("once-refused");
    let raw = store
        .ingest_raw(Source::Https, "application/tlsrpt+json", &good)
        .await
        .expect("raw");
    let mut conn = raw_connection(&location).await;
    sqlx::query(
        "INSERT INTO quarantine (raw_id, reason, created_at, code) VALUES ($1, 'old reader', 0, 'unreadable')",
    )
    .bind(raw.0)
    .execute(&mut conn)
    .await
    .expect("quarantine by hand");
    assert_eq!(
        store.reprocess(raw).await.expect("reprocess"),
        Reprocessed::Released
    );
    assert!(store.quarantined(raw).await.expect("read").is_none());
    let listed = all_reports(&store).await;
    assert!(listed.iter().any(|r| r.report_id == "once-refused"));
    // Held on purpose: not read again.
    let held = store
        .ingest_raw(
            Source::Https,
            "application/tlsrpt+json",
            &google_report("held"),
        )
        .await
        .expect("raw");
    store.quarantine(held, "by hand").await.expect("quarantine");
    assert_eq!(
        store.reprocess(held).await.expect("reprocess"),
        Reprocessed::Held
    );
    assert_eq!(
        store.reprocess(RawId(999_999)).await.expect("reprocess"),
        Reprocessed::NotInQuarantine
    );
    store.close().await;
}

async fn unknown_keys_are_none(location: Location) {
    let store = open(&location).await;
    assert!(
        store
            .get_report(ReportKey(99))
            .await
            .expect("get")
            .is_none()
    );
    assert!(store.raw(RawId(99)).await.expect("raw").is_none());
    store.close().await;
}

/// PostgreSQL only: a server restart or an administrator can end the store's connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_writer_reconnects_after_its_connection_is_ended() {
    run(
        Backend::Postgres,
        "writer_reconnects",
        |location| async move {
            let store = open(&location).await;
            store
                .ingest(
                    Source::Https,
                    "application/tlsrpt+json",
                    &fixture("no-contact.json"),
                )
                .await
                .expect("ingest before");
            let Location::Postgres(url) = &location else {
                panic!("a PostgreSQL location");
            };
            let mut admin = PgConnection::connect(url).await.expect("admin connection");
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .await
                .expect("end the store's connections");
            let _ = admin.close().await;

            let outcome = store
                .ingest(
                    Source::Https,
                    "application/tlsrpt+json",
                    &fixture("dane-tlsa-records.json"),
                )
                .await
                .expect("ingest after the connection was ended");
            assert!(matches!(outcome, Ingested::Stored { .. }), "{outcome:?}");
            assert_eq!(store.writer_stats().reconnects, 1);
            assert_eq!(all_reports(&store).await.len(), 2);
            store.close().await;
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Odd bodies: every one is kept, on both backends.

/// The Google fixture with `edit` applied to its JSON.
fn edited_google_report(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut json: serde_json::Value =
        serde_json::from_slice(&fixture("google-sts-enforce.json")).expect("fixture is JSON");
    edit(&mut json);
    json.to_string().into_bytes()
}

/// A raw connection to the store's database, for what the store's API does not do.
async fn raw_connection(location: &Location) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    let url = match location {
        Location::Postgres(url) => url.clone(),
        Location::DataDirectory(dir) => format!(
            "sqlite://{}",
            dir.join(mta_sts_store::SQLITE_FILE_NAME).display()
        ),
    };
    sqlx::AnyConnection::connect(&url)
        .await
        .expect("raw connection")
}

async fn nul_characters_are_stored_replaced(location: Location) {
    let store = open(&location).await;
    let bytes = edited_google_report(|json| {
        json["organization-name"] = "Google\u{0}Inc.".into();
        json["policies"][0]["policy"]["policy-type"] = "sts\u{0}x".into();
        json["policies"][0]["policy"]["mx-host"] = serde_json::json!(["mx\u{0}"]);
    });
    assert!(
        bytes.windows(6).any(|w| w == b"\\u0000"),
        "the JSON holds \\u0000"
    );
    let outcome = store
        .ingest(Source::Https, "application/tlsrpt+json\u{0}", &bytes)
        .await
        .expect("a NUL never fails the write");
    let stored = store
        .get_report(stored_key(&outcome))
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(stored.report.organization_name, "Google\u{FFFD}Inc.");
    assert_eq!(
        stored.report.policies[0].policy.policy_type.as_str(),
        "sts\u{FFFD}x"
    );
    assert_eq!(stored.report.policies[0].policy.mx_host, ["mx\u{FFFD}"]);
    assert!(
        stored
            .warnings
            .iter()
            .any(|w| w.path == "organization-name"),
        "{:?}",
        stored.warnings
    );
    let raw = store.raw(outcome.raw()).await.expect("raw").expect("kept");
    assert_eq!(raw.bytes, bytes, "the raw bytes are kept exactly");
    assert_eq!(raw.content_type, "application/tlsrpt+json\u{FFFD}");
    store.close().await;
}

async fn invalid_utf8_inside_a_json_string_is_quarantined_with_its_bytes(location: Location) {
    let store = open(&location).await;
    let mut bytes = fixture("google-sts-enforce.json");
    let at = bytes
        .windows(6)
        .position(|w| w == b"Google")
        .expect("the organization name");
    bytes[at + 1] = 0xff;
    let outcome = store
        .ingest(Source::Https, "application/tlsrpt+json", &bytes)
        .await
        .expect("kept");
    let Ingested::Quarantined { raw, reason } = &outcome else {
        panic!("expected Quarantined, got {outcome:?}");
    };
    assert!(
        reason.contains("not JSON") && reason.contains("unicode"),
        "{reason}"
    );
    assert_eq!(
        store.raw(*raw).await.expect("raw").expect("kept").bytes,
        bytes
    );
    let quarantine = store.list_quarantine().await.expect("quarantine");
    assert_eq!(quarantine.len(), 1);
    assert_eq!(quarantine[0].code, QuarantineCode::Unreadable);
    store.close().await;
}

async fn huge_numbers_are_stored_saturated_or_quarantined(location: Location) {
    let store = open(&location).await;
    // Past u64: read as 0 with a warning.
    let past_u64 = edited_google_report(|json| {
        json["report-id"] = "past-u64".into();
    });
    let past_u64 = String::from_utf8(past_u64).expect("UTF-8").replacen(
        "\"total-successful-session-count\":",
        "\"total-successful-session-count\":123456789012345678901234567890,\"x\":",
        1,
    );
    // Past i64 but within u64: stored as i64::MAX.
    let past_i64 = edited_google_report(|json| {
        json["report-id"] = "past-i64".into();
        json["policies"][0]["summary"]["total-failure-session-count"] = u64::MAX.into();
    });
    // Past f64: not JSON that serde reads; quarantined.
    let past_f64 = String::from_utf8(edited_google_report(|json| {
        json["report-id"] = "past-f64".into();
    }))
    .expect("UTF-8")
    .replacen(
        "\"total-successful-session-count\":",
        "\"total-successful-session-count\":1e400,\"x\":",
        1,
    );
    let first = store
        .ingest(
            Source::Https,
            "application/tlsrpt+json",
            past_u64.as_bytes(),
        )
        .await
        .expect("past u64");
    let stored = store
        .get_report(stored_key(&first))
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(
        stored.report.policies[0]
            .summary
            .total_successful_session_count,
        0
    );
    let second = store
        .ingest(Source::Https, "application/tlsrpt+json", &past_i64)
        .await
        .expect("past i64");
    let stored = store
        .get_report(stored_key(&second))
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(
        stored.report.policies[0]
            .summary
            .total_failure_session_count,
        i64::MAX as u64
    );
    let third = store
        .ingest(
            Source::Https,
            "application/tlsrpt+json",
            past_f64.as_bytes(),
        )
        .await
        .expect("past f64");
    assert!(matches!(third, Ingested::Quarantined { .. }), "{third:?}");
    store.close().await;
}

async fn a_refused_report_is_kept_in_quarantine_and_its_batch_commits(location: Location) {
    let store = Arc::new(open(&location).await);
    // The database itself refuses one report's rows, as it would a value it cannot hold.
    let mut conn = raw_connection(&location).await;
    let trigger = match location {
        Location::Postgres(_) => vec![
            "CREATE FUNCTION refuse_report() RETURNS trigger AS $$ BEGIN \
             IF NEW.report_id = 'refuse-me' THEN RAISE EXCEPTION 'refused by the test'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse BEFORE INSERT ON reports FOR EACH ROW \
             EXECUTE FUNCTION refuse_report()",
        ],
        Location::DataDirectory(_) => vec![
            "CREATE TRIGGER refuse BEFORE INSERT ON reports WHEN NEW.report_id = 'refuse-me' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        ],
    };
    for statement in trigger {
        conn.execute(statement).await.expect("create trigger");
    }
    let _ = conn.close().await;

    let mut tasks = Vec::new();
    for index in 0..40 {
        let store = Arc::clone(&store);
        let report_id = if index == 17 {
            "refuse-me".to_owned()
        } else {
            format!("accepted-{index}")
        };
        tasks.push(tokio::spawn(async move {
            let outcome = store
                .ingest(
                    Source::Https,
                    "application/tlsrpt+json",
                    &google_report(&report_id),
                )
                .await;
            (report_id, outcome)
        }));
    }
    for task in tasks {
        let (report_id, outcome) = task.await.expect("task");
        let outcome = outcome.expect("every body is kept");
        if report_id == "refuse-me" {
            let Ingested::Quarantined { reason, .. } = &outcome else {
                panic!("expected Quarantined, got {outcome:?}");
            };
            assert!(reason.contains("refused by the test"), "{reason}");
        } else {
            stored_key(&outcome);
        }
    }
    assert_eq!(all_reports(&store).await.len(), 39);
    let quarantine = store.list_quarantine().await.expect("quarantine");
    assert_eq!(quarantine.len(), 1);
    assert_eq!(quarantine[0].code, QuarantineCode::Refused);
    let raw = store
        .raw(quarantine[0].raw)
        .await
        .expect("raw")
        .expect("kept");
    assert_eq!(raw.bytes, google_report("refuse-me"));
    Arc::into_inner(store)
        .expect("last reference")
        .close()
        .await;
}

async fn a_different_body_with_a_stored_identity_is_kept_as_a_conflict(location: Location) {
    let store = open(&location).await;
    let real = fixture("google-sts-enforce.json");
    let forged = edited_google_report(|json| {
        json["policies"][0]["summary"]["total-failure-session-count"] = 999.into();
    });
    let first = store
        .ingest(Source::Https, "application/tlsrpt+json", &real)
        .await
        .expect("real");
    let real_key = stored_key(&first);
    let second = store
        .ingest(Source::Https, "application/tlsrpt+json", &forged)
        .await
        .expect("forged");
    let Ingested::Conflict {
        report: forged_key,
        counted,
        ..
    } = second
    else {
        panic!("expected Conflict, got {second:?}");
    };
    assert!(!counted, "the first of two unsigned bodies counts");
    // The same forged body again is a plain duplicate of itself.
    let again = store
        .ingest(Source::Https, "application/tlsrpt+json", &forged)
        .await
        .expect("forged again");
    assert!(
        matches!(again, Ingested::Duplicate { report, .. } if report == forged_key),
        "{again:?}"
    );

    let counted_only = all_reports(&store).await;
    assert_eq!(counted_only.len(), 1, "sums never count both");
    assert_eq!(counted_only[0].key, real_key);
    assert!(counted_only[0].conflict && counted_only[0].counted);
    let everything = store
        .list_reports(&ReportFilter {
            include_uncounted: true,
            ..ReportFilter::default()
        })
        .await
        .expect("list all");
    assert_eq!(everything.len(), 2);
    assert!(everything.iter().all(|r| r.conflict));
    let analysed = store
        .policy_rows(&mta_sts_store::analysis::AnalysisFilter::default())
        .await
        .expect("analysis rows");
    assert!(!analysed.is_empty());
    assert!(
        analysed.iter().all(|row| row.report == real_key),
        "sums read the counted body only"
    );
    let forged_stored = store
        .get_report(forged_key)
        .await
        .expect("get")
        .expect("kept");
    assert!(!forged_stored.counted);
    assert_eq!(forged_stored.conflicting, [real_key]);
    assert_eq!(
        forged_stored.report.policies[0]
            .summary
            .total_failure_session_count,
        999
    );
    let real_stored = store
        .get_report(real_key)
        .await
        .expect("get")
        .expect("kept");
    assert!(real_stored.counted);
    assert_eq!(real_stored.conflicting, [forged_key]);
    assert_eq!(real_stored.content_sha256.len(), 64);
    store.close().await;
}

async fn dkim_verified_mail_beats_an_unsigned_body(location: Location) {
    let store = open(&location).await;
    let forged = edited_google_report(|json| {
        json["policies"][0]["summary"]["total-failure-session-count"] = 12_345.into();
    });
    let real = fixture("google-sts-enforce.json");
    let forged_key = stored_key(
        &store
            .ingest(Source::Https, "application/tlsrpt+json", &forged)
            .await
            .expect("forged first"),
    );
    let verified = Origin {
        source: Source::Mail,
        dkim_verified: true,
    };
    let outcome = store
        .ingest(verified, "application/tlsrpt+json", &real)
        .await
        .expect("signed mail");
    let Ingested::Conflict {
        report: real_key,
        counted: true,
        ..
    } = outcome
    else {
        panic!("expected a counted Conflict, got {outcome:?}");
    };
    let listed = all_reports(&store).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, real_key);
    // A later unsigned body does not take its place.
    let later = edited_google_report(|json| {
        json["policies"][0]["summary"]["total-failure-session-count"] = 5.into();
    });
    let later = store
        .ingest(Source::Https, "application/tlsrpt+json", &later)
        .await
        .expect("later unsigned");
    assert!(
        matches!(later, Ingested::Conflict { counted: false, .. }),
        "{later:?}"
    );
    assert_eq!(all_reports(&store).await[0].key, real_key);
    let forged_stored = store
        .get_report(forged_key)
        .await
        .expect("get")
        .expect("kept");
    assert!(!forged_stored.counted);
    assert_eq!(forged_stored.conflicting.len(), 2);
    store.close().await;
}

/// The two backends' migrations end in the same report tables and columns.
async fn both_backends_have_the_same_columns(location: Location) {
    let store = open(&location).await;
    let mut conn = raw_connection(&location).await;
    let query = match location {
        Location::Postgres(_) => {
            "SELECT table_name || '.' || column_name AS name FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx%' \
             ORDER BY table_name, ordinal_position"
        }
        Location::DataDirectory(_) => {
            "SELECT m.name || '.' || c.name AS name FROM sqlite_master m, \
             pragma_table_info(m.name) c WHERE m.type = 'table' \
             AND m.name NOT LIKE 'sqlite%' AND m.name NOT LIKE '\\_sqlx%' ESCAPE '\\' \
             ORDER BY m.name, c.cid"
        }
    };
    // The tables of received reports (other migrations add tables of their own).
    let report_tables = [
        "failure_details",
        "quarantine",
        "raw_reports",
        "report_policies",
        "report_warnings",
        "reports",
    ];
    let columns: Vec<String> = sqlx::query_scalar::<_, String>(query)
        .fetch_all(&mut conn)
        .await
        .expect("columns")
        .into_iter()
        .filter(|name| {
            name.split_once('.')
                .is_some_and(|(table, _)| report_tables.contains(&table))
        })
        .collect();
    let expected = [
        "failure_details.id",
        "failure_details.policy",
        "failure_details.result_type",
        "failure_details.sending_mta_ip",
        "failure_details.receiving_mx_hostname",
        "failure_details.receiving_mx_helo",
        "failure_details.receiving_ip",
        "failure_details.failed_session_count",
        "failure_details.additional_information",
        "failure_details.failure_reason_code",
        "quarantine.id",
        "quarantine.raw_id",
        "quarantine.reason",
        "quarantine.created_at",
        "quarantine.code",
        "raw_reports.id",
        "raw_reports.received_at",
        "raw_reports.source",
        "raw_reports.content_type",
        "raw_reports.bytes",
        "raw_reports.sha256",
        "raw_reports.size",
        "report_policies.id",
        "report_policies.report",
        "report_policies.policy_type",
        "report_policies.policy_domain",
        "report_policies.policy_string",
        "report_policies.mx_host",
        "report_policies.successful_sessions",
        "report_policies.failed_sessions",
        "report_policies.ordinal",
        "report_warnings.id",
        "report_warnings.report",
        "report_warnings.path",
        "report_warnings.message",
        "reports.id",
        "reports.raw_id",
        "reports.organization_name",
        "reports.report_id",
        "reports.date_start",
        "reports.date_end",
        "reports.contact_info",
        "reports.content_sha256",
        "reports.trust",
        "reports.conflict",
        "reports.counted",
    ];
    assert_eq!(columns, expected);
    let _ = conn.close().await;
    store.close().await;
}
