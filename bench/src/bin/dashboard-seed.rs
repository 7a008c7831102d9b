//! `dashboard-seed`: fills a store with the dashboard benchmark's reports (bench/dashboard.sh):
//! DOMAINS policy domains `d0.example` … , each with PER_DAY reporters sending one daily
//! report for each of the last DAYS days (ending yesterday), one in five with failure details.
//! Reports go in through `Store::ingest`, as the intake stores them.
//!
//! ```text
//! dashboard-seed --data-dir DIR --domains 200 --days 365 --per-day 7
//! dashboard-seed --database postgres://... --domains 200 --days 365 --per-day 7
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::Parser;
use mta_sts_store::{Location, Source, Store};
use mta_sts_tlsrpt::report::Timestamp;

#[derive(Parser)]
#[command(about = "Seed a store with the dashboard benchmark's TLS reports")]
struct Args {
    /// SQLite store in this directory.
    #[arg(long, conflicts_with = "database")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL store at this URL.
    #[arg(long)]
    database: Option<String>,
    /// Policy domains (d0.example, d1.example, ...).
    #[arg(long, default_value_t = 200)]
    domains: usize,
    /// Days of reports, ending yesterday.
    #[arg(long, default_value_t = 365)]
    days: i64,
    /// Reporters per domain, each sending one report a day.
    #[arg(long, default_value_t = 7)]
    per_day: usize,
    /// Reports stored at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

const RESULTS: [&str; 4] = [
    "certificate-expired",
    "starttls-not-supported",
    "certificate-host-mismatch",
    "validation-failure",
];

/// Report number `n` of the run: its domain, day and reporter follow from it.
fn report(n: usize, args: &Args, yesterday: i64) -> Vec<u8> {
    let domain = n % args.domains;
    let reporter = (n / args.domains) % args.per_day;
    let day = (n / (args.domains * args.per_day)) as i64;
    let start = yesterday - day * 86_400;
    let date = |t: i64| {
        Timestamp::from_unix_seconds(t)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    let ok = 500 + (n * 7919) % 1000;
    let failures: Vec<String> = if n.is_multiple_of(5) {
        (0..1 + n % 3)
            .map(|k| {
                format!(
                    r#"{{"result-type":"{}","sending-mta-ip":"192.0.2.{}","receiving-mx-hostname":"mx{}.d{domain}.example","receiving-ip":"198.51.100.{}","failed-session-count":{}}}"#,
                    RESULTS[(n + k) % RESULTS.len()],
                    1 + (n + k) % 250,
                    k + 1,
                    1 + k,
                    1 + (n + k) % 9
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let failed: usize = failures
        .iter()
        .enumerate()
        .map(|(k, _)| 1 + (n + k) % 9)
        .sum();
    format!(
        r#"{{"organization-name":"Reporter {reporter}","date-range":{{"start-datetime":"{}","end-datetime":"{}"}},"contact-info":"tlsrpt@reporter{reporter}.example","report-id":"bench-{n}","policies":[{{"policy":{{"policy-type":"sts","policy-string":["version: STSv1","mode: testing","mx: mx1.d{domain}.example","max_age: 604800"],"policy-domain":"d{domain}.example","mx-host":["mx1.d{domain}.example"]}},"summary":{{"total-successful-session-count":{ok},"total-failure-session-count":{failed}}},"failure-details":[{}]}}]}}"#,
        date(start),
        date(start + 86_399),
        failures.join(",")
    )
    .into_bytes()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let location = match (&args.data_dir, &args.database) {
        (Some(dir), None) => Location::DataDirectory(dir.clone()),
        (None, Some(url)) => Location::parse(url),
        _ => bail!("give --data-dir DIR or --database URL"),
    };
    let store = Arc::new(Store::open(&location).await.context("open the store")?);
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let yesterday = now - now.rem_euclid(86_400) - 86_400;
    let total = args.domains * args.per_day * usize::try_from(args.days)?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..args.concurrency.max(1) {
        let (store, args) = (Arc::clone(&store), Arc::clone(&args));
        tasks.spawn(async move {
            let mut n = task;
            while n < total {
                let body = report(n, &args, yesterday);
                store
                    .ingest(Source::Https, "application/tlsrpt+json", &body)
                    .await
                    .with_context(|| format!("store report {n}"))?;
                if n.is_multiple_of(50_000) {
                    eprintln!("dashboard-seed: {n}/{total} reports");
                }
                n += args.concurrency.max(1);
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "seeded {total} reports ({} domains x {} days x {} reporters) in {seconds:.0} s ({:.0}/s)",
        args.domains,
        args.days,
        args.per_day,
        total as f64 / seconds
    );
    Arc::try_unwrap(store)
        .map_err(|_| anyhow::anyhow!("store still shared"))?
        .close()
        .await;
    Ok(())
}
