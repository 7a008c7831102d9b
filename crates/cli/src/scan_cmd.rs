//! `mta-sts scan`: many domains from a file or standard input, one JSON line per domain as
//! it finishes, through the same [`Checker`] as `check`; `scan summarize` counts a results
//! file.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use futures_util::StreamExt as _;
use mta_sts_check::{
    CheckOptions, Checker, MAX_SCAN_LINE, Ranking, ScanLine, Summary, SummaryReport,
};
use mta_sts_store::{ScanResult, Store};

use crate::Outcome;
use crate::args::NetArgs;
use crate::dns::policy_domain;
use crate::input::read_line;
use crate::render::{Style, clean};
use crate::scan_resume::{self, Finished, Input, Ledger};

/// Longest input line read as a domain name (a name has at most 253 characters; the rest
/// is room for spaces and a rank column).
const MAX_LINE: u64 = 1024;

/// How often `FILE.resume` is written during a scan with --out: a resumed scan remembers by
/// name only what was written since.
const MARK_EVERY: Duration = Duration::from_secs(1);

/// `scan` and `scan summarize`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ScanArgs {
    #[command(subcommand)]
    pub action: Option<ScanAction>,
    /// The domains, one a line (`-` for standard input). Blank lines and lines starting with
    /// `#` are skipped; of a line `RANK,DOMAIN` (a top list) the last field is taken.
    #[arg(long, value_name = "FILE|-", required = true)]
    pub domains: Option<PathBuf>,
    /// Check at most N domains at once (the open-file limit is raised to fit, or N lowered
    /// to fit it); --per-destination keeps what one provider sees small.
    #[arg(long, value_name = "N", default_value_t = mta_sts_check::DEFAULT_SCAN_CONCURRENCY)]
    pub concurrency: usize,
    /// Write the results here (one JSON line per domain) instead of standard output; the
    /// summary is then printed at the end. An existing non-empty file is refused unless
    /// --resume is given.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Do not connect to port 25 (many networks block outbound SMTP).
    #[arg(long)]
    pub no_smtp: bool,
    /// Continue an interrupted scan: the domains already in --out are not checked again, new
    /// results are appended. Which input lines are finished is kept in FILE.resume beside
    /// the results (written every second), so memory stays bounded however long the list.
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// Take only every N-th domain, starting with the K-th (1 ≤ K ≤ N), so N machines split
    /// one list.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Start at most N domains per second, all destinations together [default: no limit].
    #[arg(long, value_name = "N")]
    pub rate: Option<f64>,
    /// At most N sessions (SMTP probes, policy fetches) open at once to one IP address, so
    /// no one provider is hammered (0: no cap).
    #[arg(long, value_name = "N", default_value_t = mta_sts_check::DEFAULT_PER_DESTINATION)]
    pub per_destination: usize,
    /// Also store each result in this PostgreSQL database (postgres://user@host/db), in the
    /// table scan_results that many scanners write to.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    #[command(flatten)]
    pub net: NetArgs,
}

/// `scan summarize`.
#[derive(Debug, Subcommand)]
pub enum ScanAction {
    /// Count a results file: adoption of MTA-STS and TLS-RPT, modes, max_age, misconfigured
    /// domains by category, mail that would be lost, the MX providers and hosts used by most
    /// domains (in bounded memory: past 10,000 distinct names the counts are approximate, and
    /// the output says so).
    ///
    /// Exit status: 0, or 1 when some lines are not scan results (named on standard error
    /// and left out), 2 when the file cannot be read.
    Summarize(SummarizeArgs),
}

/// `scan summarize RESULTS`.
#[derive(Debug, Args)]
pub struct SummarizeArgs {
    /// The results file of `scan --out` (`-` for standard input).
    #[arg(value_name = "RESULTS")]
    pub results: PathBuf,
    /// Print one JSON object.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print `metric,key,domains,share` rows.
    #[arg(long)]
    pub csv: bool,
    /// Show the N MX providers and MX hosts used by most domains.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
}

/// `--shard K/N`, K counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    k: u64,
    n: u64,
}

impl Shard {
    /// Whether the `index`-th domain of the input (from 0) is in this shard.
    fn takes(self, index: u64) -> bool {
        index % self.n == self.k - 1
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

fn parse_shard(value: &str) -> Result<Shard, String> {
    let bad = || format!("{value:?} is not K/N with 1 ≤ K ≤ N (e.g. 1/4, 2/4, 3/4, 4/4)");
    let (k, n) = value.split_once('/').ok_or_else(bad)?;
    let k: u64 = k.trim().parse().map_err(|_| bad())?;
    let n: u64 = n.trim().parse().map_err(|_| bad())?;
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok(Shard { k, n })
}

/// `scan …`.
pub fn run(args: &ScanArgs, style: Style) -> anyhow::Result<Outcome> {
    match &args.action {
        Some(ScanAction::Summarize(a)) => summarize(a, style),
        None => scan(args, style),
    }
}

/// An input of lines: a file, or standard input for `-`.
fn open_input(path: &Path) -> anyhow::Result<Box<dyn BufRead + Send>> {
    if path == Path::new("-") {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(Box::new(BufReader::new(file)))
}

/// What the reader thread counts, for the progress line and the end.
#[derive(Default)]
struct Counts {
    /// Domains sent to be checked.
    queued: AtomicU64,
    /// Domains skipped as already in the results (`--resume`).
    resumed: AtomicU64,
    /// Lines that are not domain names.
    invalid: AtomicU64,
    /// The input has been read to its end.
    read_all: AtomicBool,
    /// Domains checked.
    done: AtomicU64,
    /// Domains whose check could not be completed.
    incomplete: AtomicU64,
}

/// Reads `input` line by line on its own thread, sending each domain of the shard that is
/// not `finished`, with its line number, into a channel of `capacity`: the file is never all
/// in memory. `ledger` (with --out) learns of every line.
fn spawn_reader(
    mut input: Box<dyn BufRead + Send>,
    name: String,
    shard: Option<Shard>,
    finished: Finished,
    ledger: Option<Arc<Ledger>>,
    capacity: usize,
    counts: Arc<Counts>,
) -> (
    tokio::sync::mpsc::Receiver<(u64, String)>,
    std::thread::JoinHandle<std::io::Result<()>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    let erase = if std::io::stderr().is_terminal() {
        "\r\x1b[2K"
    } else {
        ""
    };
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let (mut number, mut index) = (0u64, 0u64);
        let skipped = |number: u64, finished: bool| {
            if let Some(ledger) = &ledger {
                ledger.skipped(number, finished);
            }
        };
        let result = loop {
            let fits = match read_line(&mut *input, &mut buf, MAX_LINE) {
                Ok(Some(line)) => line.fits,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            number += 1;
            let text = String::from_utf8_lossy(&buf);
            let text = text.trim();
            if text.is_empty() || text.starts_with('#') {
                skipped(number, false);
                continue;
            }
            let this = index;
            index += 1;
            if shard.is_some_and(|s| !s.takes(this)) {
                skipped(number, false);
                continue;
            }
            let field = text.rsplit(',').next().unwrap_or_default().trim();
            let domain = if !fits {
                Err(format!("longer than {MAX_LINE} bytes"))
            } else if std::str::from_utf8(&buf).is_err() {
                Err("not UTF-8".to_owned())
            } else {
                policy_domain(field).map_err(|e| e.to_string())
            };
            match domain {
                Ok(domain) if finished.contains(number, Some(&domain)) => {
                    counts.resumed.fetch_add(1, Ordering::Relaxed);
                    // Lines below the old mark need no listing: the new mark is above them.
                    skipped(number, number >= finished.first_unmarked());
                }
                Ok(domain) => {
                    counts.queued.fetch_add(1, Ordering::Relaxed);
                    if let Some(ledger) = &ledger {
                        ledger.sent(number);
                    }
                    if tx.blocking_send((number, domain)).is_err() {
                        break Ok(()); // the scan stopped
                    }
                }
                Err(why) => {
                    skipped(number, false);
                    counts.invalid.fetch_add(1, Ordering::Relaxed);
                    // On a terminal the progress line is erased first.
                    eprintln!(
                        "{erase}mta-sts: {name} line {number}: skipped: {}",
                        clean(&why)
                    );
                }
            }
        };
        counts.read_all.store(true, Ordering::Relaxed);
        result
    });
    (rx, reader)
}

/// `scan --domains FILE …`.
fn scan(args: &ScanArgs, style: Style) -> anyhow::Result<Outcome> {
    let Some(domains) = &args.domains else {
        anyhow::bail!("--domains FILE|- is required");
    };
    if args.concurrency == 0 {
        anyhow::bail!("--concurrency must be at least 1");
    }
    let concurrency = fit_open_files(args.concurrency);
    let domains_name = domains.display().to_string();
    let input_id = Input {
        domains: &domains_name,
        shard: args.shard.map(|s| s.to_string()),
    };
    let (finished, mut results_bytes) = match &args.out {
        Some(out) if args.resume => scan_resume::finished(out, &input_id)?,
        Some(out) => {
            if std::fs::metadata(out).is_ok_and(|m| m.len() > 0) {
                anyhow::bail!(
                    "{} exists and is not empty: add --resume to continue that scan, or remove it",
                    out.display()
                );
            }
            // The mark of results since removed says nothing about this scan.
            let _ = std::fs::remove_file(scan_resume::mark_path(out));
            (Finished::default(), 0)
        }
        None => (Finished::default(), 0),
    };
    let input = open_input(domains)?;
    let mut output: Box<dyn Write> = match &args.out {
        Some(out) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(out)
                .with_context(|| format!("cannot write {}", out.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let mut config = crate::check::net_config(&args.net, true)?;
    config.per_destination = args.per_destination;
    let net = mta_sts_net::Net::new(config).context("cannot set up the network")?;
    let options = CheckOptions {
        no_smtp: args.no_smtp,
        without_sni: false,
    };
    if let Some(rate) = args.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        anyhow::bail!("--rate must be a positive number of domains per second, not {rate}");
    }
    let checker = Checker::new(net, options)
        .concurrency(concurrency)
        .rate(args.rate);
    let counts = Arc::new(Counts::default());
    let ledger = args.out.as_ref().map(|_| Arc::new(Ledger::default()));
    let progress = Progress::start(Arc::clone(&counts));
    let runtime = crate::runtime()?;
    let store = match &args.database {
        Some(url) => {
            let location = crate::serve::database(url, "--database")?;
            Some(Arc::new(
                runtime.block_on(Store::open(&location)).with_context(|| {
                    format!(
                        "cannot open the database {}",
                        clean(&mta_sts_store::redact_password(url))
                    )
                })?,
            ))
        }
        None => None,
    };
    let scanner = scanner_name(args.shard);
    let result: anyhow::Result<()> = runtime.block_on(async {
        let mut saves = tokio::task::JoinSet::new();
        let (rx, reader) = spawn_reader(
            input,
            domains_name.clone(),
            args.shard,
            finished,
            ledger.clone(),
            concurrency * 2,
            Arc::clone(&counts),
        );
        let queue = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let ticker = tokio::spawn(progress.clone().tick());
        let mut reports = std::pin::pin!(checker.check_each(queue));
        let mut line = String::new();
        let mut marked = Instant::now();
        let mark = |bytes: u64| match (&args.out, &ledger) {
            (Some(out), Some(ledger)) => ledger.write_mark(out, &input_id, bytes),
            _ => Ok(()),
        };
        while let Some((number, report)) = reports.next().await {
            line.clear();
            line.push_str(&serde_json::to_string(&report)?);
            line.push('\n');
            // One write per line, flushed: a killed scan leaves whole lines (but the last).
            output.write_all(line.as_bytes())?;
            output.flush()?;
            results_bytes += line.len() as u64;
            if let Some(ledger) = &ledger {
                ledger.written(number);
            }
            if marked.elapsed() >= MARK_EVERY {
                mark(results_bytes)?;
                marked = Instant::now();
            }
            counts.done.fetch_add(1, Ordering::Relaxed);
            if report.incomplete.is_some() {
                counts.incomplete.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(store) = &store {
                // Commits go in groups: many in flight, a bounded number.
                while saves.len() >= MAX_SAVES_IN_FLIGHT {
                    saved(saves.join_next().await)?;
                }
                let (store, result) = (Arc::clone(store), scan_result(&report, &line, &scanner));
                saves.spawn(async move { store.save_scan_result(result).await });
            }
        }
        while let Some(done) = saves.join_next().await {
            saved(Some(done))?;
        }
        ticker.abort();
        progress.clear();
        let read = tokio::task::spawn_blocking(move || reader.join())
            .await
            .context("the input reader stopped")?;
        match read {
            Ok(result) => result.with_context(|| format!("cannot read {}", domains.display()))?,
            Err(_) => anyhow::bail!("the input reader stopped"),
        }
        mark(results_bytes)
    });
    // Every write has been committed; closing waits for the writer to stop.
    if let Some(store) = store.and_then(|s| Arc::try_unwrap(s).ok()) {
        runtime.block_on(store.close());
    }
    result?;
    drop(output);
    let invalid = counts.invalid.load(Ordering::Relaxed);
    let resumed = counts.resumed.load(Ordering::Relaxed);
    let done = counts.done.load(Ordering::Relaxed);
    let mut end = format!("mta-sts: scanned {done} domain{}", plural(done));
    if resumed > 0 {
        let _ = write!(end, ", {resumed} already in the results (--resume)");
    }
    if invalid > 0 {
        let _ = write!(
            end,
            ", {invalid} line{} skipped as not domain names",
            plural(invalid)
        );
    }
    eprintln!("{end}");
    if let Some(out) = &args.out {
        let (summary, _) = read_results(out)?;
        outln!(
            "{}",
            summary_table(&summary.report(10), style, &out.display().to_string())
        );
    }
    Ok(if invalid > 0 {
        Outcome::Problems
    } else {
        Outcome::Ok
    })
}

/// Open files one domain in flight may hold at most: its DNS lookups, the policy fetch and
/// its SMTP probes.
const FILES_PER_DOMAIN: u64 = mta_sts_check::MAX_PROBES_PER_DOMAIN as u64 + 4;

/// Open files beside the domains': the input, the results, the mark, the runtime, a database
/// pool.
const FILES_BESIDE_DOMAINS: u64 = 64;

/// How many domains can be checked at once within the open-file limit: the soft limit is
/// raised toward the hard one as far as `concurrency` needs (1,024 is a common soft limit,
/// far below what 256 domains at once may need); when even the hard limit is short, fewer
/// domains are checked at once, as stderr says, rather than failing checks for want of a
/// socket.
fn fit_open_files(concurrency: usize) -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let needed = concurrency as u64 * FILES_PER_DOMAIN + FILES_BESIDE_DOMAINS;
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft >= needed {
        return concurrency;
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    let raised = needed.min(hard);
    let granted = match setrlimit(
        Resource::Nofile,
        rustix::process::Rlimit {
            current: Some(raised),
            maximum: limit.maximum,
        },
    ) {
        Ok(()) => raised,
        Err(_) => soft,
    };
    if granted >= needed {
        return concurrency;
    }
    let fits = (granted.saturating_sub(FILES_BESIDE_DOMAINS) / FILES_PER_DOMAIN).max(1) as usize;
    eprintln!(
        "mta-sts: at most {granted} open files (ulimit -n): checking {fits} domains at once instead of {concurrency}"
    );
    fits.min(concurrency)
}

/// Results stored at once (`--database`): enough to fill a group commit.
const MAX_SAVES_IN_FLIGHT: usize = 256;

/// Who scanned, for the rows of `--database`: the host name and the shard.
fn scanner_name(shard: Option<Shard>) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    match shard {
        Some(shard) => format!("{host} {shard}"),
        None => host,
    }
}

/// The row of `report`, whose JSON line is `line`.
fn scan_result(report: &mta_sts_check::Report, line: &str, scanner: &str) -> ScanResult {
    ScanResult {
        domain: report.domain.clone(),
        checked_at: report.evidence.checked_at,
        scanner: scanner.to_owned(),
        status: crate::check::verdict_status(report),
        errors: report.hygiene.errors as u64,
        warnings: report.hygiene.warnings as u64,
        report: line.trim_end().to_owned(),
    }
}

/// The outcome of one stored result: a database that refuses stops the scan (the results
/// file keeps what was checked, so `--resume` continues).
fn saved(
    done: Option<Result<Result<(), mta_sts_store::StoreError>, tokio::task::JoinError>>,
) -> anyhow::Result<()> {
    match done {
        Some(Ok(Err(e))) => Err(anyhow::Error::new(e).context("cannot store a scan result")),
        Some(Err(e)) => Err(anyhow::Error::new(e).context("storing a scan result failed")),
        _ => Ok(()),
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The progress line on a terminal's standard error: done, domains/s, ETA once the input is
/// read to its end, incomplete checks. Nothing when standard error is not a terminal.
#[derive(Clone)]
struct Progress {
    counts: Arc<Counts>,
    started: Instant,
    shown: Arc<AtomicBool>,
    terminal: bool,
}

impl Progress {
    fn start(counts: Arc<Counts>) -> Self {
        Self {
            counts,
            started: Instant::now(),
            shown: Arc::new(AtomicBool::new(false)),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    async fn tick(self) {
        if !self.terminal {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        loop {
            let c = &self.counts;
            let done = c.done.load(Ordering::Relaxed);
            let queued = c.queued.load(Ordering::Relaxed);
            let secs = self.started.elapsed().as_secs_f64();
            let rate = done as f64 / secs.max(0.001);
            let eta = if c.read_all.load(Ordering::Relaxed) && rate > 0.0 {
                format!("ETA {:.0} s", queued.saturating_sub(done) as f64 / rate)
            } else {
                "ETA when the input is read".to_owned()
            };
            let total = if c.read_all.load(Ordering::Relaxed) {
                format!("/{queued}")
            } else {
                String::new()
            };
            eprint!(
                "\r\x1b[2Kscanning: {done}{total} done, {rate:.1} domains/s, {eta}, {} incomplete",
                c.incomplete.load(Ordering::Relaxed)
            );
            self.shown.store(true, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn clear(&self) {
        if self.shown.swap(false, Ordering::Relaxed) {
            eprint!("\r\x1b[2K");
        }
    }
}

/// Counts a results file line by line; the second value is how many lines are not scan
/// results (each named on standard error).
fn read_results(path: &Path) -> anyhow::Result<(Summary, u64)> {
    let mut input = open_input(path)?;
    let mut summary = Summary::new();
    let (mut bad, mut number) = (0u64, 0u64);
    let mut line = Vec::new();
    while let Some(read) = read_line(&mut *input, &mut line, MAX_SCAN_LINE as u64)
        .with_context(|| format!("cannot read {}", path.display()))?
    {
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let result = if read.fits {
            ScanLine::from_json(&line)
        } else {
            Err(format!("longer than {MAX_SCAN_LINE} bytes"))
        };
        match result {
            Ok(result) => summary.add(&result),
            Err(e) => {
                bad += 1;
                eprintln!(
                    "mta-sts: {} line {number} is not a scan result, left out: {}",
                    path.display(),
                    clean(&e)
                );
            }
        }
    }
    Ok((summary, bad))
}

/// `scan summarize RESULTS`.
fn summarize(args: &SummarizeArgs, style: Style) -> anyhow::Result<Outcome> {
    let (summary, bad) = read_results(&args.results)?;
    let report = summary.report(args.top);
    match (args.json, args.csv) {
        (true, _) => outln!("{}", serde_json::to_string_pretty(&report)?),
        (_, true) => summary_csv(&report)?,
        _ => outln!(
            "{}",
            summary_table(&report, style, &args.results.display().to_string())
        ),
    }
    Ok(if bad > 0 {
        Outcome::Problems
    } else {
        Outcome::Ok
    })
}

fn percent(share: f64) -> String {
    format!("{:5.1} %", share * 100.0)
}

/// The summary for people.
fn summary_table(r: &SummaryReport, style: Style, source: &str) -> String {
    let mut out = String::new();
    let row = |out: &mut String, label: &str, s: &mta_sts_check::Share| {
        let _ = writeln!(out, "  {label:<40} {:>9}  {}", s.domains, percent(s.share));
    };
    let _ = writeln!(
        out,
        "{}",
        style.bold(&format!("{} domains in {}", r.domains, clean(source)))
    );
    row(&mut out, "check incomplete", &r.incomplete);
    let _ = writeln!(out, "\n{}", style.bold("Adoption (of all domains)"));
    row(&mut out, "MTA-STS record published", &r.mta_sts_published);
    row(&mut out, "MTA-STS record valid", &r.mta_sts_record_valid);
    row(&mut out, "MTA-STS policy valid", &r.mta_sts_policy_valid);
    row(&mut out, "TLS-RPT record published", &r.tlsrpt_published);
    row(&mut out, "TLS-RPT record valid", &r.tlsrpt_valid);
    let _ = writeln!(out, "\n{}", style.bold("Modes (of valid policies)"));
    for (mode, s) in &r.modes {
        row(&mut out, mode, s);
    }
    let _ = writeln!(out, "\n{}", style.bold("max_age (of valid policies)"));
    for bucket in &r.max_age {
        row(&mut out, &bucket.label, &bucket.count);
    }
    let _ = writeln!(out, "\n{}", style.bold("Sender verdicts (of all domains)"));
    for (status, s) in &r.verdicts {
        row(&mut out, status, s);
    }
    let _ = writeln!(
        out,
        "\n{}",
        style.bold("Misconfigured: an error (of domains with an MTA-STS record)")
    );
    row(&mut out, "any category", &r.misconfigured);
    for (category, s) in &r.misconfigured_by_category {
        row(&mut out, category.title(), s);
    }
    let _ = writeln!(out, "\n{}", style.bold("Mail at risk (of valid policies)"));
    row(
        &mut out,
        "would lose mail (enforce, every MX fails)",
        &r.would_lose_mail,
    );
    row(&mut out, "degraded (enforce, some MX fail)", &r.degraded);
    ranking_table(&mut out, style, "MX providers", "provider", &r.mx_providers);
    ranking_table(&mut out, style, "MX hosts", "host", &r.mx_hosts);
    out
}

/// The names of `ranking` used by most domains, with a heading that says how many there
/// were and, when they did not all fit the summary's table, that counts are approximate.
fn ranking_table(out: &mut String, style: Style, what: &str, column: &str, ranking: &Ranking) {
    let mut shown = String::new();
    if ranking.approximate {
        let _ = write!(
            shown,
            " (top {} of about {}; approximate: {} kept, about {} dropped, ± marks the error)",
            ranking.top.len(),
            ranking.distinct,
            mta_sts_check::RANK_TABLE_SIZE,
            ranking.dropped
        );
    } else if ranking.distinct as usize > ranking.top.len() {
        let _ = write!(
            shown,
            " (top {} of {}; --top N for more)",
            ranking.top.len(),
            ranking.distinct
        );
    }
    let _ = writeln!(
        out,
        "\n{}",
        style.bold(&format!("{what} by domains{shown}"))
    );
    let _ = writeln!(out, "  {column:<40} {:>9}  {:>9}", "domains", "failing");
    for ranked in &ranking.top {
        let error = if ranked.error > 0 {
            format!(" ±{}", ranked.error)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {:<40} {:>9}  {:>9}{error}",
            clean(&ranked.name),
            ranked.domains,
            ranked.failing
        );
    }
}

/// The summary as `metric,key,domains,share` rows.
fn summary_csv(r: &SummaryReport) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_writer(std::io::stdout());
    csv.write_record(["metric", "key", "domains", "share"])?;
    let mut row = |metric: &str, key: &str, s: &mta_sts_check::Share| {
        csv.write_record([
            metric,
            key,
            &s.domains.to_string(),
            &format!("{:.6}", s.share),
        ])
    };
    row(
        "domains",
        "",
        &mta_sts_check::Share {
            domains: r.domains,
            share: 1.0,
        },
    )?;
    row("incomplete", "", &r.incomplete)?;
    row("adoption", "mta-sts-published", &r.mta_sts_published)?;
    row("adoption", "mta-sts-record-valid", &r.mta_sts_record_valid)?;
    row("adoption", "mta-sts-policy-valid", &r.mta_sts_policy_valid)?;
    row("adoption", "tlsrpt-published", &r.tlsrpt_published)?;
    row("adoption", "tlsrpt-valid", &r.tlsrpt_valid)?;
    for (mode, s) in &r.modes {
        row("mode", mode, s)?;
    }
    for bucket in &r.max_age {
        row("max-age", &bucket.label, &bucket.count)?;
    }
    for (status, s) in &r.verdicts {
        row("verdict", status, s)?;
    }
    row("misconfigured", "any", &r.misconfigured)?;
    for (category, s) in &r.misconfigured_by_category {
        row("misconfigured", category.name(), s)?;
    }
    row("would-lose-mail", "", &r.would_lose_mail)?;
    row("degraded", "", &r.degraded)?;
    for (metric, ranking) in [
        ("top-mx-provider", &r.mx_providers),
        ("top-mx", &r.mx_hosts),
    ] {
        for ranked in &ranking.top {
            let share = if r.domains == 0 {
                0.0
            } else {
                ranked.domains as f64 / r.domains as f64
            };
            row(
                metric,
                &ranked.name,
                &mta_sts_check::Share {
                    domains: ranked.domains,
                    share,
                },
            )?;
        }
    }
    csv.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_input() {
        let shards: Vec<Shard> = (1..=3)
            .map(|k| parse_shard(&format!("{k}/3")).unwrap())
            .collect();
        for index in 0..30 {
            let takers = shards.iter().filter(|s| s.takes(index)).count();
            assert_eq!(takers, 1, "line {index}");
        }
        for bad in ["0/3", "4/3", "1/0", "3", "a/b", ""] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }
}
