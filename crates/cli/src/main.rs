//! The `mta-sts` command: MTA-STS (RFC 8461) and SMTP TLS Reporting (RFC 8460).
//!
//! `main` parses the arguments and calls [`run`]; exit codes are decided here and only here:
//! 0 when the subject is valid (warnings allowed), 1 when it is not, 2 for usage or I/O errors.
//!
//! This crate parses, loads, calls a library crate and renders; the work is done in the
//! libraries. Where each command lives:
//!
//! - `args.rs`: every subcommand and flag with its help text ([`args::Cli`]), in one place.
//! - [`run`] below: one match arm per subcommand, calling its module.
//! - `check.rs`: `check` (the live check, `mta_sts_check::gather` then `analyze`);
//!   `suggest_cmd.rs`: `suggest`; `scan_cmd.rs`: `scan` and `scan summarize` (many domains
//!   through the same `Checker`, `mta_sts_check::Summary`).
//! - `lint.rs`: `lint policy|sts-record|tlsrpt-record`.
//! - `policy_cmd.rs`: `policy new` and `policy match`.
//! - `dns.rs`: `dns records`.
//! - `serve.rs`: `serve` (the store wired into `mta_sts_server` as its report sink) and
//!   `reports list|show`; `ingest_cmd.rs`: `reports ingest` (files, stdin as an MDA, Maildir,
//!   mbox), with `dkim_verify.rs` checking report mail's DKIM signatures.
//! - `reports_cmd.rs`: `reports summary|export|readiness|rebuild`; `quarantine_cmd.rs`:
//!   `reports quarantine list|show`.
//! - `resolver_cmd.rs`: `resolver` and `resolver purge`, the Postfix socketmap policy server
//!   (`mta_sts_sender`) and its cache; `query_cmd.rs`: `query`, what it answers and why;
//!   `tlsrpt_cmd.rs`: `tlsrpt collect|send|status`, the sending side of TLS-RPT.
//! - `docs_cmd.rs`: `completions` and `man`, generated from the clap definitions.
//! - `input.rs`: files, standard input, TXT records in zone-file form; `render.rs`: the text
//!   output (diagnostics with pointers, tables, colour, escaping of text from the network).
//!
//! Each command prints a readable report for people and, with `--json`, JSON for programs,
//! through [`out!`] and [`outln!`] (a closed standard output is not a panic). For example,
//! `lint tlsrpt-record` goes `main` → [`run`] → `lint::tlsrpt_record` →
//! `mta_sts_tlsrpt::TlsRptRecord::lint` → `render`:
//!
//! ```text
//! $ mta-sts lint tlsrpt-record 'v=TLSRPTv1; rua=mailto:tlsrpt@example.com'
//! _smtp._tls: valid record (no problems)
//! ```

/// `print!` that returns an error instead of panicking when standard output is closed (a
/// pager or `head` that stopped reading); `main` then exits quietly.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*)?
    }};
}

/// `println!` that returns an error instead of panicking; see [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?
    }};
}

mod alerts;
mod args;
mod check;
mod dashboard_data;
mod dkim_verify;
mod dns;
mod docs_cmd;
mod imap_source;
mod ingest_cmd;
mod input;
mod lint;
mod passwd_cmd;
mod policy_cmd;
mod quarantine_cmd;
mod query_cmd;
mod render;
mod reports_cmd;
mod resolver_cmd;
mod scan_cmd;
mod scan_resume;
mod serve;
mod serve_checks;
mod suggest_cmd;
mod tlsrpt_cmd;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command, DnsCommand, LintCommand, PolicyCommand, ReportsCommand};

/// What a command found: decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Valid, covered, published: exit 0.
    Ok,
    /// The subject has problems: exit 1.
    Problems,
    /// The check could not be completed: exit 2.
    Incomplete,
    /// A status of its own, such as 75 (EX_TEMPFAIL) for an MTA: see the command's help.
    Exit(u8),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
        Ok(Outcome::Incomplete) => ExitCode::from(2),
        Ok(Outcome::Exit(code)) => ExitCode::from(code),
        // The reader went away (`| head`): what it wanted, it got.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            // Errors quote arguments and file contents: escaped, as all output (line by line:
            // some errors list several problems).
            let text = format!("{error:#}");
            let lines: Vec<_> = text.lines().map(render::clean).collect();
            eprintln!("mta-sts: error: {}", lines.join("\n"));
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The async runtime for commands that use the network or the store.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Logs of the long-running commands, as text.
fn init_logging() {
    init_logging_as(args::LogFormat::Text);
}

/// Logs of the long-running commands: standard error, `MTA_STS_LOG` filter (default `info`),
/// colour only on a terminal (a file or the journal gets plain text) and without NO_COLOR, or
/// one JSON object per line.
fn init_logging_as(format: args::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MTA_STS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        args::LogFormat::Text => log.init(),
        args::LogFormat::Json => log.json().flatten_event(true).init(),
    }
}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let style = render::Style::detect(cli.color);
    match cli.command {
        Command::Check(a) => check::check(&a, style),
        Command::Scan(a) => scan_cmd::run(&a, style),
        Command::Suggest(a) => suggest_cmd::suggest(&a, style),
        Command::Serve(a) => serve::serve(&a),
        Command::Reports(ReportsCommand::List(a)) => serve::list(&a, style),
        Command::Reports(ReportsCommand::Show(a)) => serve::show(&a, style),
        Command::Reports(ReportsCommand::Ingest(a)) => ingest_cmd::ingest(&a),
        Command::Reports(ReportsCommand::Summary(a)) => reports_cmd::summary(&a, style),
        Command::Reports(ReportsCommand::Export(a)) => reports_cmd::export(&a),
        Command::Reports(ReportsCommand::Readiness(a)) => reports_cmd::readiness(&a, style),
        Command::Reports(ReportsCommand::Quarantine(a)) => quarantine_cmd::run(&a, style),
        Command::Reports(ReportsCommand::Rebuild(a)) => reports_cmd::rebuild(&a),
        Command::Lint(LintCommand::Policy(a)) => lint::policy(&a, style),
        Command::Lint(LintCommand::StsRecord(a)) => lint::sts_record(&a, style),
        Command::Lint(LintCommand::TlsrptRecord(a)) => lint::tlsrpt_record(&a, style),
        Command::Policy(PolicyCommand::New(a)) => policy_cmd::new(&a, style),
        Command::Policy(PolicyCommand::Match(a)) => policy_cmd::matches(&a, style),
        Command::Dns(DnsCommand::Records(a)) => dns::records(&a, style),
        Command::Completions(a) => docs_cmd::completions(&a),
        Command::Man(a) => docs_cmd::man(&a),
        Command::Resolver(a) => resolver_cmd::resolver(&a),
        Command::Query(a) => query_cmd::query(&a, style),
        Command::Passwd(a) => passwd_cmd::passwd(&a),
        Command::Tlsrpt(c) => tlsrpt_cmd::run(&c, style),
    }
}
