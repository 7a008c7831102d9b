//! `mta-sts tlsrpt collect|send|status`: the sending side of TLS reporting (RFC 8460).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use mta_sts_sender::tlsrpt::{
    Clock, CollectorOptions, DeliveryOptions, RECOMMENDED_DATAGRAM_QUEUE, ReportSigner, Reporter,
    SystemClock, bind_socket, build_day, collect_lines, collect_socket, datagram_queue_limit,
    deliver_due, gzip, receive_buffer_size, report_file_name,
};
use mta_sts_store::{DeliveryState, Store};
use mta_sts_tlsrpt::ReportUri;
use mta_sts_tlsrpt::report::UtcDay;

use crate::Outcome;
use crate::args::StoreArgs;
use crate::render::{Style, clean};

/// `mta-sts tlsrpt …`.
#[derive(Debug, Subcommand)]
pub enum TlsrptCommand {
    /// Collect the MTA's TLS results (libtlsrpt datagrams, as Postfix ≥ 3.10 sends with
    /// `smtp_tlsrpt_enable = yes`) into the store, per UTC day; after each day, build and
    /// deliver the day's reports (with a random delay of up to --spread).
    ///
    /// Runs until SIGTERM or Ctrl-C (with --stdin: until the end of the input). Exit status:
    /// 0 on a clean stop, 2 when the socket or the store fails.
    Collect(CollectArgs),
    /// Build the reports of one UTC day and deliver them (mailto: through --smtp-relay, https:
    /// by POST), or write them into --out DIR instead.
    ///
    /// Exit status: 0 when every report was delivered (or written), 1 when a delivery failed
    /// or waits for a retry, 2 for usage, store or I/O errors.
    Send(SendArgs),
    /// Show the reports built and where each delivery stands: pending, sent, failed or
    /// suppressed, with the last error.
    ///
    /// Exit status: 0 when no delivery failed, 1 when one did, 2 for store errors.
    Status(StatusArgs),
}

/// Who sends the reports and how they travel.
#[derive(Debug, Args)]
pub struct ReporterArgs {
    /// organization-name written in every report.
    #[arg(long, value_name = "NAME", default_value = "mta-sts")]
    pub org: String,
    /// contact-info written in every report; its domain is the submitter domain.
    #[arg(long, value_name = "ADDR", default_value = "postmaster@localhost")]
    pub contact: String,
    /// The envelope sender and From: of report mails [default: the --contact address].
    #[arg(long, value_name = "ADDR")]
    pub mail_from: Option<String>,
    /// Send report mails through this SMTP relay (STARTTLS required).
    #[arg(long, value_name = "HOST:PORT")]
    pub smtp_relay: Option<String>,
    /// Trust the certificates in this PEM file too (for the relay and https: receivers).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Never send to this destination: a rua URI, or a domain (and everything below it).
    /// Repeatable.
    #[arg(long, value_name = "URI|DOMAIN")]
    pub suppress: Vec<String>,
    /// The largest gzipped report sent to one destination, in bytes; larger ones are
    /// suppressed for it.
    #[arg(long, value_name = "BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_size: usize,
    /// Connect to ADDR for https: destinations at HOST instead of looking HOST up (as curl's
    /// --resolve). Repeatable.
    #[arg(long, value_name = "HOST:ADDR")]
    pub resolve: Vec<String>,
    /// Limit in seconds for each connection, handshake and reply.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
    /// DKIM-sign report mails with this private key (PEM: RSA or Ed25519), as RFC 8460 §3
    /// asks; publish its public key at SELECTOR._domainkey.DOMAIN.
    #[arg(long, value_name = "PEM", requires = "dkim_selector")]
    pub dkim_key: Option<PathBuf>,
    /// The DKIM selector (s=) of --dkim-key.
    #[arg(long, value_name = "SELECTOR", requires = "dkim_key")]
    pub dkim_selector: Option<String>,
    /// The DKIM signing domain (d=) [default: the domain of --mail-from].
    #[arg(long, value_name = "DOMAIN", requires = "dkim_key")]
    pub dkim_domain: Option<String>,
}

/// `tlsrpt collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// The unix datagram socket to receive on (Postfix's smtp_tlsrpt_socket_name).
    #[arg(long, value_name = "PATH", required_unless_present = "stdin")]
    pub socket: Option<PathBuf>,
    /// Read one datagram (the same JSON) per line of standard input instead, until its end.
    #[arg(long, conflicts_with = "socket")]
    pub stdin: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Commit what was collected this often, in milliseconds: the most a crash can lose.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub flush_ms: u64,
    /// The socket receive buffer to ask for, in bytes (capped by net.core.rmem_max). On Linux
    /// the queue of a unix datagram socket is bounded by net.unix.max_dgram_qlen instead.
    #[arg(long, value_name = "BYTES", default_value_t = 32 * 1024 * 1024)]
    pub receive_buffer: usize,
    /// Do not build and deliver reports after each UTC day (run `tlsrpt send` instead).
    #[arg(long)]
    pub no_send: bool,
    /// Spread the daily delivery over this many seconds after midnight UTC, at random.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub spread: u64,
    #[command(flatten)]
    pub reporter: ReporterArgs,
    /// File every datagram under this time (UTC seconds) instead of the clock's: for tests.
    #[arg(long, value_name = "UNIX_SECONDS", hide = true)]
    pub now: Option<i64>,
}

/// `tlsrpt send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The UTC day whose reports to build and send [default: yesterday].
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub day: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Write each report (.json.gz) and its mail (.eml) into DIR instead of delivering.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub reporter: ReporterArgs,
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `tlsrpt status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only this UTC day.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub day: Option<String>,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tlsrpt …`.
pub fn run(command: &TlsrptCommand, style: Style) -> anyhow::Result<Outcome> {
    match command {
        TlsrptCommand::Collect(args) => collect(args),
        TlsrptCommand::Send(args) => send(args),
        TlsrptCommand::Status(args) => status(args, style),
    }
}

fn parse_day(text: &str) -> anyhow::Result<UtcDay> {
    UtcDay::parse(text).with_context(|| {
        format!(
            "--day {:?} is not a date of the form YYYY-MM-DD",
            clean(text)
        )
    })
}

fn now() -> i64 {
    SystemClock.now_unix_seconds()
}

fn delivery_options(args: &ReporterArgs) -> anyhow::Result<DeliveryOptions> {
    let reporter = Reporter::new(args.org.as_str(), args.contact.as_str());
    let mut options = DeliveryOptions::new(reporter);
    if let Some(from) = &args.mail_from {
        options.mail_from = from.clone();
    }
    if let Some(relay) = &args.smtp_relay {
        let (host, port) = relay
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
            .with_context(|| format!("--smtp-relay {:?} is not HOST:PORT", clean(relay)))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        options.smtp_relay = Some((host.to_owned(), port));
    }
    if let Some(path) = &args.ca_file {
        options.extra_roots = read_ca_file(path)?.extra_roots;
    }
    for entry in &args.resolve {
        let (host, addr) = entry
            .split_once(':')
            .and_then(|(host, addr)| Some((host, addr.parse::<IpAddr>().ok()?)))
            .with_context(|| format!("--resolve {:?} is not HOST:ADDR", clean(entry)))?;
        options.resolve.push((host.to_ascii_lowercase(), addr));
    }
    options.suppressed = args.suppress.clone();
    options.max_mail_size = args.max_size;
    options.max_https_size = args.max_size;
    options.timeout = Duration::from_secs(args.timeout.max(1));
    if let (Some(path), Some(selector)) = (&args.dkim_key, &args.dkim_selector) {
        let shown = || clean(&path.display().to_string()).into_owned();
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", shown()))?;
        let domain = match &args.dkim_domain {
            Some(domain) => domain.clone(),
            None => options
                .mail_from
                .rsplit_once('@')
                .map(|(_, domain)| domain.to_owned())
                .unwrap_or_default(),
        };
        let signer = ReportSigner::from_pem(&pem, &domain, selector)
            .with_context(|| format!("--dkim-key {}", shown()))?;
        options.dkim = Some(Arc::new(signer));
    }
    Ok(options)
}

/// The certificates of the PEM file at `path`.
fn read_ca_file(path: &Path) -> anyhow::Result<mta_sts_net::NetConfig> {
    let mut config = mta_sts_net::NetConfig::default();
    if config.add_ca_file(path)? == 0 {
        bail!(
            "--ca-file {} holds no certificate",
            clean(&path.display().to_string())
        );
    }
    Ok(config)
}

async fn open_store(args: &StoreArgs) -> anyhow::Result<Store> {
    let location = crate::serve::location(args, None)?;
    Store::open(&location)
        .await
        .with_context(|| format!("cannot open the store at {location}"))
}

/// A clock stopped at one instant, for `collect --now`.
struct FixedClock(i64);

impl Clock for FixedClock {
    fn now_unix_seconds(&self) -> i64 {
        self.0
    }
}

fn collect(args: &CollectArgs) -> anyhow::Result<Outcome> {
    let options = CollectorOptions {
        flush_interval: Duration::from_millis(args.flush_ms.max(1)),
        receive_buffer: args.receive_buffer,
        ..CollectorOptions::default()
    };
    let delivery = delivery_options(&args.reporter)?;
    let clock: Arc<dyn Clock> = match args.now {
        Some(now) => Arc::new(FixedClock(now)),
        None => Arc::new(SystemClock),
    };
    crate::runtime()?.block_on(async {
        let store = Arc::new(open_store(&args.store).await?);
        let stop = Arc::new(AtomicBool::new(false));
        let signals = tokio::spawn(stop_on_signal(Arc::clone(&stop)));
        let daily = (!args.no_send && !args.stdin).then(|| {
            tokio::spawn(daily_delivery(
                Arc::clone(&store),
                delivery.clone(),
                args.spread,
            ))
        });
        let stats = if args.stdin {
            let input = Box::new(std::io::BufReader::new(std::io::stdin()));
            collect_lines(&store, input, &options, clock, stop).await?
        } else {
            let path = args.socket.clone().unwrap_or_default();
            let socket = bind_socket(&path, options.receive_buffer)?;
            let granted = receive_buffer_size(&socket).unwrap_or(0);
            let queue = datagram_queue_limit();
            let shown_queue = queue.map_or_else(|| "unknown".to_owned(), |q| q.to_string());
            eprintln!(
                "mta-sts tlsrpt collect: listening on {} (queue net.unix.max_dgram_qlen = \
                 {shown_queue} datagrams, receive buffer {granted} bytes)",
                clean(&path.display().to_string())
            );
            if let Some(queue) = queue.filter(|&q| q < RECOMMENDED_DATAGRAM_QUEUE) {
                eprintln!(
                    "mta-sts tlsrpt collect: warning: the kernel queues only {} datagrams for \
                     this socket: a non-blocking sender (libtlsrpt, as Postfix uses it) loses \
                     what a burst brings beyond that; set net.unix.max_dgram_qlen = \
                     {RECOMMENDED_DATAGRAM_QUEUE} (dist/sysctl.d/60-mta-sts-tlsrpt.conf) and \
                     restart the collector",
                    queue + 1
                );
            }
            let result = collect_socket(&store, socket, &options, clock, stop).await;
            let _ = std::fs::remove_file(&path);
            result?
        };
        signals.abort();
        if let Some(daily) = daily {
            daily.abort();
        }
        eprintln!(
            "mta-sts tlsrpt collect: {} datagrams ({} invalid) in {} commits",
            stats.datagrams, stats.invalid, stats.intervals
        );
        if let Ok(store) = Arc::try_unwrap(store) {
            store.close().await;
        }
        anyhow::Ok(Outcome::Ok)
    })
}

async fn stop_on_signal(stop: Arc<AtomicBool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        return;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    stop.store(true, Ordering::Relaxed);
}

/// After each UTC midnight plus a random part of `spread`: build yesterday's reports and
/// deliver; every five minutes between: deliver what is due for a retry.
async fn daily_delivery(store: Arc<Store>, options: DeliveryOptions, spread: u64) {
    let mut built_for: Option<UtcDay> = None;
    let offset = i64::try_from(random_below(spread.max(1))).unwrap_or(0);
    loop {
        let now = now();
        let yesterday = UtcDay::containing(now).previous();
        let due_at = yesterday.next().start_unix_seconds() + offset;
        if built_for != Some(yesterday) && now >= due_at {
            match build_day(&store, yesterday, &options.reporter, now).await {
                Ok(_) => built_for = Some(yesterday),
                Err(error) => eprintln!("mta-sts tlsrpt collect: cannot build reports: {error}"),
            }
        }
        if let Err(error) = deliver_due(&store, &options, now).await {
            eprintln!("mta-sts tlsrpt collect: cannot deliver reports: {error}");
        }
        tokio::time::sleep(Duration::from_secs(300)).await;
    }
}

fn random_below(bound: u64) -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(now()) % bound
}

fn send(args: &SendArgs) -> anyhow::Result<Outcome> {
    let day = match &args.day {
        Some(text) => parse_day(text)?,
        None => UtcDay::containing(now()).previous(),
    };
    let options = delivery_options(&args.reporter)?;
    crate::runtime()?.block_on(async {
        let store = open_store(&args.store).await?;
        let now = now();
        let reports = build_day(&store, day, &options.reporter, now).await?;
        let outcome = if let Some(dir) = &args.out {
            write_out(dir, &options, &reports, now)?;
            if args.json {
                let json: Vec<_> = reports
                    .iter()
                    .map(|report| {
                        serde_json::json!({
                            "domain": report.scope.domain,
                            "report_id": report.report_id,
                            "file": dir.join(report_file_name(&options.reporter, report)),
                        })
                    })
                    .collect();
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "day": day.to_string(),
                        "reports": json,
                    }))?
                );
            } else {
                outln!(
                    "{} report(s) for {day} written into {}",
                    reports.len(),
                    clean(&dir.display().to_string())
                );
            }
            Outcome::Ok
        } else {
            let run = deliver_due(&store, &options, now).await?;
            let pending = store
                .deliveries(Some(day), None)
                .await?
                .iter()
                .filter(|d| matches!(d.state, DeliveryState::Pending | DeliveryState::Failed))
                .count();
            if args.json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "day": day.to_string(),
                        "reports": reports.len(),
                        "sent": run.sent,
                        "retrying": run.retrying,
                        "failed": run.failed,
                        "suppressed": run.suppressed,
                    }))?
                );
            } else {
                outln!(
                    "{} report(s) for {day}: {} delivered, {} to retry, {} failed, {} suppressed",
                    reports.len(),
                    run.sent,
                    run.retrying,
                    run.failed,
                    run.suppressed
                );
            }
            if pending > 0 {
                Outcome::Problems
            } else {
                Outcome::Ok
            }
        };
        store.close().await;
        anyhow::Ok(outcome)
    })
}

/// `send --out DIR`: each report gzipped under its RFC 8460 file name, and its mail to the
/// report's mailto: destinations beside it as `.eml`.
fn write_out(
    dir: &Path,
    options: &DeliveryOptions,
    reports: &[mta_sts_store::OutgoingReport],
    now: i64,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}", clean(&dir.display().to_string())))?;
    for report in reports {
        // Names come from the network (the policy domain): keep them inside DIR.
        let name = report_file_name(&options.reporter, report).replace(['/', '\\'], "_");
        let compressed = gzip(&report.json);
        let path = dir.join(&name);
        std::fs::write(&path, &compressed)
            .with_context(|| format!("cannot write {}", clean(&path.display().to_string())))?;
        let recipients: Vec<String> =
            mta_sts_tlsrpt::TlsRptRecord::parse(report.scope.tlsrpt_record.as_bytes())
                .map(|record| {
                    record
                        .rua
                        .iter()
                        .filter_map(|uri| match uri {
                            ReportUri::Mailto(uri) => mta_sts_sender::tlsrpt::mailto_address(uri),
                            ReportUri::Https(_) => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
        if !recipients.is_empty() {
            let mail = options.report_mail(report, &compressed, &recipients, now)?;
            let path = dir.join(format!("{}.eml", name.trim_end_matches(".json.gz")));
            std::fs::write(&path, mail)
                .with_context(|| format!("cannot write {}", clean(&path.display().to_string())))?;
        }
    }
    Ok(())
}

fn status(args: &StatusArgs, style: Style) -> anyhow::Result<Outcome> {
    let day = args.day.as_deref().map(parse_day).transpose()?;
    let (deliveries, totals) = crate::runtime()?.block_on(async {
        let store = open_store(&args.store).await?;
        let deliveries = store.deliveries(day, None).await?;
        let totals = store.collector_totals().await?;
        store.close().await;
        anyhow::Ok((deliveries, totals))
    })?;
    let failed = deliveries
        .iter()
        .any(|delivery| delivery.state == DeliveryState::Failed);
    if args.json {
        let json: Vec<_> = deliveries
            .iter()
            .map(|d| {
                serde_json::json!({
                    "day": d.scope.day.to_string(),
                    "domain": d.scope.domain,
                    "report_id": d.report_id,
                    "destination": d.destination,
                    "status": d.state.as_str(),
                    "attempts": d.attempts,
                    "next_attempt_at": (d.state == DeliveryState::Pending)
                        .then(|| mta_sts_net::utc(d.next_attempt_at)),
                    "last_attempt_at": d.last_attempt_at.map(mta_sts_net::utc),
                    "last_error": d.last_error,
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "collected": {
                    "datagrams": totals.datagrams,
                    "invalid": totals.invalid,
                    "commits": totals.intervals,
                },
                "deliveries": json,
            }))?
        );
    } else {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "collected: {} datagrams, {} invalid",
            totals.datagrams, totals.invalid
        );
        if deliveries.is_empty() {
            let _ = writeln!(out, "no reports built yet");
        } else {
            let _ = writeln!(
                out,
                "{}",
                style.bold(&format!(
                    "{:<10}  {:<28} {:<40} {:<10} {:>8}  LAST ERROR",
                    "DAY", "DOMAIN", "DESTINATION", "STATUS", "ATTEMPTS"
                ))
            );
            for d in &deliveries {
                let first = |s: &str, n: usize| clean(s).chars().take(n).collect::<String>();
                let state = format!("{:<10}", d.state.as_str());
                let state = match d.state {
                    DeliveryState::Sent => style.good(&state),
                    DeliveryState::Failed => style.bad(&state),
                    DeliveryState::Pending | DeliveryState::Suppressed => style.warn(&state),
                };
                let _ = writeln!(
                    out,
                    "{:<10}  {:<28} {:<40} {state} {:>8}  {}",
                    d.scope.day.to_string(),
                    first(&d.scope.domain, 28),
                    first(&d.destination, 40),
                    d.attempts,
                    d.last_error.as_deref().map(clean).unwrap_or_default()
                );
            }
        }
        out!("{out}");
    }
    Ok(if failed {
        Outcome::Problems
    } else {
        Outcome::Ok
    })
}
