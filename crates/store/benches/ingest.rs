//! Durable ingest throughput: N distinct reports from 64 concurrent tasks through
//! `Store::ingest`, each acknowledged only after its group commit. Prints reports/s, the
//! acknowledgement latency (p50/p99/max) and the average group size, with group commit and
//! without it (`max_batch = 1`: one commit per report).
//!
//! `cargo bench -p mta-sts-store` runs against SQLite in a temporary directory (on the disk
//! holding `TMPDIR`); with `MTA_STS_TEST_POSTGRES_URL` set (`PG_TEST_COMMAND='cargo bench -p
//! mta-sts-store' scripts/pg-test.sh`) against that PostgreSQL as well. `BENCH_REPORTS`
//! (default 20000) and `BENCH_TASKS` (default 64) change the load.
//!
//! `cargo test --benches` runs it without `--bench`: a quick run of 200 reports that only checks
//! each is acknowledged as stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mta_sts_store::{Ingested, Location, Source, Store, StoreOptions};

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let reports = env_number("BENCH_REPORTS", if quick { 200 } else { 20_000 });
    let tasks = env_number("BENCH_TASKS", 64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let bodies = Arc::new(bodies(reports));
        let dir = tempfile::tempdir().expect("temporary directory");
        for (label, max_batch, count) in [
            ("group commit", StoreOptions::default().max_batch, reports),
            // One fsync per report is slow: a tenth of the reports shows the rate.
            ("commit per report", 1, reports / 10),
        ] {
            let location = Location::DataDirectory(dir.path().join(format!("batch-{max_batch}")));
            run(
                &format!("sqlite, {label}"),
                &location,
                max_batch,
                &bodies,
                count,
                tasks,
            )
            .await;
        }
        if let Ok(url) = std::env::var("MTA_STS_TEST_POSTGRES_URL") {
            let location = Location::Postgres(url);
            let max_batch = StoreOptions::default().max_batch;
            run(
                "postgres, group commit",
                &location,
                max_batch,
                &bodies,
                reports,
                tasks,
            )
            .await;
        }
    });
}

async fn run(
    label: &str,
    location: &Location,
    max_batch: usize,
    bodies: &Arc<Vec<Vec<u8>>>,
    count: usize,
    tasks: usize,
) {
    let options = StoreOptions {
        max_batch,
        ..StoreOptions::default()
    };
    let store = Arc::new(
        Store::open_with(location, options)
            .await
            .expect("store opens"),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..tasks {
        let (store, bodies, next) = (Arc::clone(&store), Arc::clone(bodies), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(index).filter(|_| index < count) else {
                    return latencies;
                };
                let sent = Instant::now();
                let outcome = store
                    .ingest(Source::Https, "application/tlsrpt+json", body)
                    .await
                    .expect("ingest");
                assert!(matches!(outcome, Ingested::Stored { .. }), "{outcome:?}");
                latencies.push(sent.elapsed());
            }
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let stats = store.writer_stats();
    println!(
        "{label:<28} {count:>6} reports, {tasks} tasks: {:>7.0} reports/s, \
         ack latency p50 {:>6.1} ms, p99 {:>6.1} ms, max {:>6.1} ms; \
         {} commits, {:.1} reports/commit",
        count as f64 / elapsed.as_secs_f64(),
        millis(percentile(&latencies, 50)),
        millis(percentile(&latencies, 99)),
        millis(latencies.last().copied().unwrap_or_default()),
        stats.commits,
        stats.writes as f64 / stats.commits.max(1) as f64,
    );
    Arc::into_inner(store)
        .expect("last reference")
        .close()
        .await;
}

/// `count` distinct reports shaped like real ones (the fixtures, round-robin), each with its
/// own report-id; unique per run, so a PostgreSQL database can be reused.
fn bodies(count: usize) -> Vec<Vec<u8>> {
    let fixtures = [
        "google-sts-enforce.json",
        "google-sts-testing-failures.json",
        "microsoft-sts-tlsa.json",
        "rfc8460-appendix-b.json",
        "mailru-fetch-errors.json",
    ];
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tlsrpt/tests/fixtures/reports");
    let templates: Vec<serde_json::Value> = fixtures
        .iter()
        .map(|name| {
            let bytes = std::fs::read(dir.join(name)).expect("fixture");
            serde_json::from_slice(&bytes).expect("fixture is JSON")
        })
        .collect();
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    (0..count)
        .map(|n| {
            let mut report = templates[n % templates.len()].clone();
            report["report-id"] = serde_json::Value::from(format!("bench-{run}-{n}"));
            report.to_string().into_bytes()
        })
        .collect()
}

fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() - 1) * percent / 100]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}
