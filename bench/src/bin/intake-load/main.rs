//! `intake-load`: the end-to-end benchmark of the TLS-RPT HTTPS intake (issue 4). It posts
//! distinct gzip-compressed RFC 8460 reports from many concurrent keep-alive HTTPS clients to a
//! running `mta-sts serve` on a loopback address, and prints the acknowledged reports per second
//! and the latency of the acknowledgements. `bench/intake.sh` runs it against SQLite and
//! PostgreSQL.
//!
//! ```text
//! intake-load gen-cert DIR
//! intake-load run --connect 127.0.0.9:4433 --ca DIR/ca.pem --clients 64 --duration 20
//! ```

mod cert;
mod cpu;
mod load;
mod report;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use crate::load::{Outcome, Plan};

#[derive(Parser)]
#[command(about = "Load generator for the mta-sts TLS-RPT HTTPS intake")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write ca.pem, cert.pem and key.pem (for mta-sts.example.com) into DIR.
    GenCert {
        /// Where to write the files; created if missing.
        dir: PathBuf,
    },
    /// Post reports to a running server and print the throughput and latency.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The server's address; only loopback addresses are accepted.
    #[arg(long, value_name = "IP:PORT")]
    connect: SocketAddr,
    /// The CA certificate (PEM) to trust for the server's certificate.
    #[arg(long, value_name = "PEM")]
    ca: PathBuf,
    /// The name sent as SNI and Host, which the certificate must carry.
    #[arg(long, default_value = cert::SERVER_NAME)]
    server_name: String,
    /// The intake path.
    #[arg(long, default_value = "/tlsrpt")]
    path: String,
    /// Concurrent clients, each with its own keep-alive connection and one request at a time.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Stop once this many reports were posted in the measured window (or at --duration).
    #[arg(long)]
    count: Option<u64>,
    /// Seconds of load before the measured window, not counted.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Seconds after which a request without an answer counts as an error.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Threads for the load generator's runtime: 1 keeps it to one core of the machine.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The server's process id, to report its CPU time over the measured window.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// A name for the run in the output ("sqlite", "postgres").
    #[arg(long, default_value = "intake")]
    label: String,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("intake-load: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::GenCert { dir } => {
            cert::generate(&dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => load(args),
    }
}

fn load(args: RunArgs) -> anyhow::Result<ExitCode> {
    if !args.connect.ip().is_loopback() {
        bail!(
            "--connect {}: intake-load only loads servers on a loopback address",
            args.connect
        );
    }
    if args.clients == 0 || args.duration == 0 || args.threads == 0 {
        bail!("--clients, --duration and --threads must be at least 1");
    }
    let server_name = ServerName::try_from(args.server_name.clone())
        .with_context(|| format!("--server-name {}: not a DNS name", args.server_name))?;
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let plan = Arc::new(Plan {
        addr: args.connect,
        server_name,
        host: format!("{}:{}", args.server_name, args.connect.port()),
        path: args.path.clone(),
        clients: args.clients,
        warmup: Duration::from_secs(args.warmup),
        duration: Duration::from_secs(args.duration),
        count: args.count,
        timeout: Duration::from_secs(args.timeout),
        tls: client_config(&args.ca)?,
        run_id: format!("{run_id}-{}", std::process::id()),
        server_pid: args.server_pid,
    });
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(args.threads);
        builder
    }
    .enable_all()
    .build()
    .context("cannot start the async runtime")?;
    println!(
        "intake-load: {} clients posting gzip reports to https://{}{} at {}, {} s after {} s warm-up",
        args.clients, plan.host, plan.path, args.connect, args.duration, args.warmup
    );
    let outcome = runtime.block_on(load::run(Arc::clone(&plan)))?;
    print_outcome(&args, &outcome);
    Ok(if outcome.acked() > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Trusts the certificates in `ca` and nothing else; ring as the provider, as the server uses.
fn client_config(ca: &std::path::Path) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("cannot read --ca {}", ca.display()))?
    {
        roots
            .add(cert.with_context(|| format!("--ca {}: not a PEM certificate", ca.display()))?)
            .with_context(|| format!("--ca {}: unusable certificate", ca.display()))?;
    }
    if roots.is_empty() {
        bail!("--ca {}: no certificate in the file", ca.display());
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_outcome(args: &RunArgs, outcome: &Outcome) {
    let acked = outcome.acked();
    let seconds = outcome.measured.as_secs_f64();
    let per_second = if seconds > 0.0 {
        acked as f64 / seconds
    } else {
        0.0
    };
    let (p50, p99, max) = (
        millis(outcome.quantile(0.50)),
        millis(outcome.quantile(0.99)),
        millis(outcome.quantile(1.0)),
    );
    let non_2xx: u64 = outcome
        .statuses
        .iter()
        .filter(|(status, _)| !(200..300).contains(*status))
        .map(|(_, n)| n)
        .sum();
    let by_status: Vec<String> = outcome
        .statuses
        .iter()
        .map(|(status, n)| format!("{status}: {n}"))
        .collect();
    println!(
        "  connected:  {} clients in {:.0} ms",
        args.clients,
        millis(outcome.connect)
    );
    println!(
        "  answers:    {} in {seconds:.1} s ({})",
        outcome.statuses.values().sum::<u64>(),
        by_status.join(", ")
    );
    println!("  acked:      {acked} reports, {per_second:.0} reports/s");
    println!("  latency:    p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms (2xx answers)");
    if outcome.errors > 0 {
        println!(
            "  errors:     {} requests without an answer; last: {}",
            outcome.errors,
            outcome.last_error.as_deref().unwrap_or("?")
        );
    }
    let cpu_per_report = |cpu: Option<f64>| match cpu {
        Some(cpu) if acked > 0 => format!(
            "{:.2} cores, {:.0} µs/report",
            cpu / seconds,
            cpu * 1e6 / acked as f64
        ),
        _ => "unknown".to_owned(),
    };
    println!(
        "  cpu:        load generator {}",
        cpu_per_report(outcome.client_cpu)
    );
    if args.server_pid.is_some() {
        println!(
            "              server {}",
            cpu_per_report(outcome.server_cpu)
        );
    }
    // One line for scripts: key=value pairs.
    println!(
        "RESULT label={} clients={} acked={acked} created={} per_s={per_second:.0} p50_ms={p50:.1} p99_ms={p99:.1} max_ms={max:.1} non_2xx={non_2xx} errors={} server_cpu_us={}",
        args.label,
        args.clients,
        outcome.created,
        outcome.errors,
        outcome
            .server_cpu
            .filter(|_| acked > 0)
            .map_or("-".to_owned(), |cpu| format!(
                "{:.0}",
                cpu * 1e6 / acked as f64
            )),
    );
}
