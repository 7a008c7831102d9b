//! Command-line arguments: every subcommand and flag, with its help text, in one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// MTA-STS (RFC 8461) and SMTP TLS Reporting (RFC 8460): write, lint and publish a domain's
/// policy and DNS records.
///
/// Exit status: 0 when the subject is valid (warnings allowed), 1 when it has errors (or, for
/// `policy match`, a host is not covered), 2 for usage or I/O errors.
#[derive(Debug, Parser)]
#[command(name = "mta-sts", version, propagate_version = true)]
pub struct Cli {
    /// When to colour human output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

/// When to use colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour when writing to a terminal and NO_COLOR is unset.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check domains live, as a sender sees them: the _mta-sts record, the policy over HTTPS,
    /// the MX records, STARTTLS and certificates on every MX address, the _smtp._tls record.
    ///
    /// Exit status: 0 when nothing is at error or warning level, 1 otherwise (a domain without
    /// MTA-STS, in testing, or without TLS-RPT has at least a warning), 2 when the check could
    /// not be done (e.g. the resolver does not answer).
    Check(CheckArgs),
    /// Check many domains from a file or standard input (`--domains FILE|-`), one JSON line
    /// per domain as it finishes (the object `check --json` gives); `scan summarize
    /// RESULTS` counts a results file.
    ///
    /// Exit status: 0 when every input line was checked, 1 when some lines are not domain
    /// names (named on standard error and skipped), 2 for usage or I/O errors.
    Scan(crate::scan_cmd::ScanArgs),
    /// Suggest the policy and DNS records to publish for a domain, from its live MX hosts, with
    /// the rollout order and the change from what is published now.
    ///
    /// Exit status: 0 with a suggestion (warnings, e.g. a step backwards you asked for, are
    /// shown), 1 when there is nothing safe to suggest (no MX records, no such domain), 2 when
    /// the domain could not be looked at.
    Suggest(SuggestArgs),
    /// Host MTA-STS policies over HTTPS and receive TLS reports by HTTPS POST into the store.
    ///
    /// With a config file (`--config mta-sts.toml`, see examples/mta-sts.toml), or the quick
    /// form: `--listen ADDR --domain D --policy FILE [--domain D2 --policy FILE2 ...]` with
    /// `--cert PEM --key PEM`, `--acme-email ADDR` or `--plain-http`. SIGHUP reloads the
    /// config; SIGTERM or Ctrl-C stops after open requests finish.
    Serve(ServeArgs),
    /// Read the TLS reports in the store.
    #[command(subcommand)]
    Reports(ReportsCommand),
    /// Check a policy file or a TXT record against RFC 8461 / RFC 8460.
    #[command(subcommand)]
    Lint(LintCommand),
    /// Write a policy, or see which policy pattern covers an MX host.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print the DNS records to publish.
    #[command(subcommand)]
    Dns(DnsCommand),
    /// Send TLS reports as a sending MTA: collect the MTA's TLS results (libtlsrpt
    /// datagrams), build the daily RFC 8460 reports, deliver them, show their status.
    #[command(subcommand)]
    Tlsrpt(crate::tlsrpt_cmd::TlsrptCommand),
    /// Print a shell completion script: `mta-sts completions bash > /etc/bash_completion.d/mta-sts`.
    Completions(CompletionsArgs),
    /// Print the manual page (roff), or write one page per command into a directory.
    Man(ManArgs),
    /// Run the Postfix socketmap policy server (smtp_tls_policy_maps) that makes outgoing
    /// mail honour other domains' MTA-STS policies; a drop-in for postfix-mta-sts-resolver.
    ///
    /// Quick form: `--listen ADDR|unix:PATH --data-dir DIR [--ca-file PEM] [--resolver
    /// IP:PORT] [--https-port N]`; full form: `--config FILE` (TOML, see the README). The
    /// policy cache persists in the store (--data-dir or --database). SIGTERM or Ctrl-C stops
    /// after open connections finish their requests. `resolver purge DOMAIN|--all` drops
    /// cached policies.
    Resolver(crate::resolver_cmd::ResolverArgs),
    /// Say what `mta-sts resolver` answers Postfix for a domain, and why: the reply line, the
    /// cache state, the policy with its id, fetch time and expiry. Reads the resolver's cache
    /// (--data-dir or --database) and looks the domain up where the resolver would; writes
    /// nothing.
    ///
    /// Exit status: 0 with an answer, 2 for usage, store or network set-up errors.
    Query(crate::query_cmd::QueryArgs),
    /// Print an argon2 hash of a dashboard password, for `password_hash` of a
    /// `[[dashboard.user]]` in mta-sts.toml (the password is read from standard input, asked
    /// twice without echo on a terminal); with `--token`, a new API bearer token and the
    /// SHA-256 to put in a `[[dashboard.token]]`.
    ///
    /// Exit status: 0 with a hash, 2 when no password was given or the two differ.
    Passwd(PasswdArgs),
}

#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// Make a new API bearer token instead of hashing a password.
    #[arg(long)]
    pub token: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write mta-sts.1 and a page per subcommand (mta-sts-check.1, ...) into DIR instead.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Where reports are stored.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Keep the store (SQLite) in this directory [default: $STATE_DIRECTORY under systemd,
    /// /var/lib/mta-sts as root, else $XDG_DATA_HOME/mta-sts or ~/.local/share/mta-sts].
    #[arg(long, value_name = "DIR", conflicts_with = "database")]
    pub data_dir: Option<PathBuf>,
    /// Use this PostgreSQL database instead (postgres://user@host/db).
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The config file (mta-sts.toml).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["listen", "domain", "policy", "plain_http", "cert", "acme_email"])]
    pub config: Option<PathBuf>,
    /// Listen on this address (repeatable) [default: 0.0.0.0:443, or 127.0.0.1:8080 with
    /// --plain-http].
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<std::net::SocketAddr>,
    /// A policy domain (repeatable; each takes the --policy at the same position).
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Vec<String>,
    /// The policy file of the --domain at the same position.
    #[arg(long, value_name = "FILE")]
    pub policy: Vec<PathBuf>,
    /// Serve plain HTTP, behind a reverse proxy that terminates TLS.
    #[arg(long, conflicts_with_all = ["cert", "acme_email"])]
    pub plain_http: bool,
    /// Certificate chain (PEM) valid for every mta-sts.<domain>.
    #[arg(
        long,
        value_name = "PEM",
        requires = "key",
        conflicts_with = "acme_email"
    )]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Obtain and renew certificates from Let's Encrypt, with this contact address.
    #[arg(long, value_name = "ADDR")]
    pub acme_email: Option<String>,
    /// Serve even when a certificate does not name mta-sts.<domain> of a configured domain
    /// (a warning is logged); without it, such a certificate is refused at start-up.
    #[arg(long)]
    pub allow_mismatched_certs: bool,
    /// Log format on standard error: text (colour only on a terminal) or one JSON object per
    /// line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// How `serve` logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Lines for people (and the journal).
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum ReportsCommand {
    /// List stored reports, newest first: reporter, report-id, period, and per policy its
    /// domain, type and session counts.
    List(ReportsListArgs),
    /// Show one stored report with its failure details.
    Show(ReportsShowArgs),
    /// Take TLS reports from files, directories, a mail on standard input (as an MDA),
    /// Maildir or mbox into the store.
    ///
    /// Exit status: 0 when every body was kept (stored, duplicate, or quarantined with its
    /// reason), 1 when a file or folder could not be read, 2 for usage errors, 75 (EX_TEMPFAIL)
    /// when the store cannot be reached or refuses a write, so that an MTA retries.
    Ingest(ReportsIngestArgs),
    /// Sessions, successes, failures and failure types of the stored reports, grouped.
    ///
    /// Per report and domain, sessions reported under both an `sts` and a `tlsa` policy are
    /// counted once; failure details that add up to more than the failure total are shown as
    /// reported, and flagged.
    Summary(ReportsSummaryArgs),
    /// Every stored policy entry × failure detail as CSV, JSON or JSON lines.
    Export(ReportsExportArgs),
    /// May DOMAIN go from `testing` to `enforce`? A verdict from the stored reports.
    ///
    /// Exit status: 0 when ready, 1 when not yet or when there is not enough data, 2 on errors.
    Readiness(ReportsReadinessArgs),
    /// The bodies kept in quarantine (not readable as reports, too large, refused by the
    /// database) and why: `reports quarantine [list]` or `reports quarantine show ID`.
    ///
    /// Exit status: 0 when listed or shown, 2 when ID is not in quarantine or the store cannot
    /// be read.
    Quarantine(ReportsQuarantineArgs),
    /// Derive every stored report again from its raw bytes (after an upgrade with a reader
    /// fix), and read again what the reader refused: reports that now read leave the
    /// quarantine. Report keys of re-derived reports change.
    Rebuild(ReportsRebuildArgs),
}

/// `reports quarantine`: list (the default) or show one.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReportsQuarantineArgs {
    #[command(subcommand)]
    pub action: Option<QuarantineAction>,
    #[command(flatten)]
    pub list: QuarantineListArgs,
}

#[derive(Debug, Subcommand)]
pub enum QuarantineAction {
    /// List the bodies in quarantine, oldest first: ID, when, code, source, size and reason.
    List(QuarantineListArgs),
    /// Show one body in quarantine: why, where it came from, and its text.
    Show(QuarantineShowArgs),
}

#[derive(Debug, Args)]
pub struct QuarantineListArgs {
    /// At most this many entries (0: all).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct QuarantineShowArgs {
    /// The body's ID, as `reports quarantine list` shows it.
    pub id: i64,
    /// Print JSON, with the body as text when it is UTF-8.
    #[arg(long, conflicts_with = "raw")]
    pub json: bool,
    /// Write the body's bytes exactly as received to standard output (not to a terminal), to
    /// keep or to ingest again.
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct ReportsRebuildArgs {
    /// Print the counts as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// The period of the reports read.
#[derive(Debug, Args)]
pub struct TimeArgs {
    /// Only reports ending after this: 30d (days ago), 2024-01-31 or 2024-01-31T12:00:00Z.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only reports starting before this (same forms as --since).
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
}

/// What `reports summary` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryBy {
    /// Policy domain.
    Domain,
    /// UTC day the report period starts.
    Day,
    /// Reporting organization.
    Org,
    /// Failure result type (failure details only).
    Result,
    /// Receiving MX host (failure details only).
    Mx,
    /// Sending MTA address (failure details only).
    SendingIp,
    /// Receiving address (failure details only).
    ReceivingIp,
}

impl SummaryBy {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Domain => "domain",
            Self::Day => "day",
            Self::Org => "org",
            Self::Result => "result",
            Self::Mx => "mx",
            Self::SendingIp => "sending-ip",
            Self::ReceivingIp => "receiving-ip",
        }
    }
}

#[derive(Debug, Args)]
pub struct ReportsSummaryArgs {
    /// Only this policy domain.
    #[arg(long)]
    pub domain: Option<String>,
    #[command(flatten)]
    pub time: TimeArgs,
    /// Group by.
    #[arg(long, value_enum, default_value_t = SummaryBy::Domain)]
    pub by: SummaryBy,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Output format of `reports export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ReportsExportArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    pub format: ExportFormat,
    /// The same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Only this policy domain.
    #[arg(long)]
    pub domain: Option<String>,
    #[command(flatten)]
    pub time: TimeArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct ReportsReadinessArgs {
    /// The policy domain.
    pub domain: String,
    /// Reports from this period [default: --since 30d].
    #[command(flatten)]
    pub time: TimeArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Also check the domain live, as `mta-sts check` does (DNS, policy, each MX over SMTP),
    /// and let what it finds count in the verdict.
    #[arg(long)]
    pub live: bool,
    /// With --live: do not connect to port 25.
    #[arg(long, requires = "live")]
    pub no_smtp: bool,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct ReportsIngestArgs {
    /// What to read: FILE or DIR (.json, .json.gz, .gz, .zip, .eml; directories recursively),
    /// `-` (one mail on standard input), maildir:PATH, mbox:PATH,
    /// imaps://USER@HOST[:PORT]/FOLDER (TLS) or imap://... (STARTTLS).
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<std::ffi::OsString>,
    /// Keep watching the IMAP folders (IMAP IDLE) and ingest mail as it arrives, until
    /// interrupted (SIGINT, SIGTERM).
    #[arg(long)]
    pub watch: bool,
    /// The IMAP folder that stored and duplicate messages are moved to.
    #[arg(long, value_name = "FOLDER", default_value = IMAP_PROCESSED)]
    pub imap_processed: String,
    /// The IMAP folder that messages refused as reports are moved to.
    #[arg(long, value_name = "FOLDER", default_value = IMAP_QUARANTINE)]
    pub imap_quarantine: String,
    /// Read the IMAP password from this file [default: $MTA_STS_IMAP_PASSWORD, or the URL's].
    #[arg(long, value_name = "FILE")]
    pub imap_password_file: Option<PathBuf>,
    /// Trust the roots in this PEM file for IMAP servers, besides the public ones
    /// (repeatable).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Vec<PathBuf>,
    /// Print the counts as JSON.
    #[arg(long)]
    pub json: bool,
    /// Keep mail without a passing DKIM signature in quarantine instead of the reports.
    #[arg(long, conflicts_with = "no_dkim")]
    pub require_dkim: bool,
    /// Do not check DKIM signatures (no DNS lookups).
    #[arg(long)]
    pub no_dkim: bool,
    /// Look DKIM keys up with this DNS server (IP:PORT) instead of the system resolver.
    #[arg(long, value_name = "IP:PORT")]
    pub resolver: Option<std::net::SocketAddr>,
    /// Timeout of each DKIM key lookup, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub dns_timeout: f64,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// The IMAP folder ingested messages are moved to, unless told otherwise.
pub const IMAP_PROCESSED: &str = "TLSRPT-Processed";
/// The IMAP folder refused messages are moved to, unless told otherwise.
pub const IMAP_QUARANTINE: &str = "TLSRPT-Quarantine";

#[derive(Debug, Args)]
pub struct ReportsListArgs {
    /// Only reports with a policy for this domain.
    #[arg(long)]
    pub domain: Option<String>,
    /// At most this many reports.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct ReportsShowArgs {
    /// The report's ID, as `reports list` shows it.
    pub id: i64,
    /// Print JSON: the stored report's metadata, and the report in RFC 8460 form.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Network settings for private and lab setups.
#[derive(Debug, Args)]
pub struct NetArgs {
    /// Use this DNS server (IP or IP:PORT; port 53 when none is given) instead of the
    /// system resolver.
    #[arg(long, value_name = "IP[:PORT]", value_parser = crate::check::parse_resolver)]
    pub resolver: Option<std::net::SocketAddr>,
    /// Trust the roots in this PEM file in addition to the public ones (repeatable).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Vec<PathBuf>,
    /// Connect to this port instead of 443 for policy hosts.
    #[arg(long, value_name = "N", default_value_t = 443)]
    pub https_port: u16,
    /// Connect to this port instead of 25 for MX hosts.
    #[arg(long, value_name = "N", default_value_t = 25)]
    pub smtp_port: u16,
    /// Timeout of each network step and of the whole policy fetch, in seconds [default: 10
    /// per step, 60 for the policy fetch].
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The domains to check (the part after @ in addresses).
    #[arg(required = true, value_name = "DOMAIN")]
    pub domains: Vec<String>,
    /// Print a JSON array, one report per domain (schema in the README).
    #[arg(long)]
    pub json: bool,
    /// Do not connect to port 25 (many networks block outbound SMTP).
    #[arg(long)]
    pub no_smtp: bool,
    /// Also try each MX address without SNI, as some senders connect.
    #[arg(long)]
    pub without_sni: bool,
    /// Only verdicts and problems, without what was seen.
    #[arg(long, short)]
    pub quiet: bool,
    /// Check at most N domains at once.
    #[arg(long, value_name = "N", default_value_t = mta_sts_check::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    #[command(flatten)]
    pub net: NetArgs,
}

#[derive(Debug, Args)]
pub struct SuggestArgs {
    /// The domain.
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
    /// The mode of the suggested policy [default: enforce for a domain that enforces now,
    /// else testing]. Asking for less than the domain has now is warned about.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Where TLS reports go (repeatable): added to the published _smtp._tls destinations,
    /// which are kept [default when none are published: mailto:tlsrpt@DOMAIN].
    #[arg(long, value_name = "URI")]
    pub rua: Vec<String>,
    /// Print the suggestion as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub net: NetArgs,
}

#[derive(Debug, Subcommand)]
pub enum LintCommand {
    /// Lint a policy file (mta-sts.txt); `-` reads standard input.
    Policy(LintPolicyArgs),
    /// Lint an `_mta-sts` TXT record. Several records are checked as one RRset, as a sender
    /// sees them. A record may be given in zone-file form: "v=STSv1; " "id=1".
    StsRecord(LintRecordArgs),
    /// Lint an `_smtp._tls` TXT record. Several records are checked as one RRset. A record may
    /// be given in zone-file form: "v=TLSRPTv1; " "rua=mailto:a@example.com".
    TlsrptRecord(LintRecordArgs),
}

#[derive(Debug, Args)]
pub struct LintPolicyArgs {
    /// The policy file, or `-` for standard input.
    pub file: PathBuf,
    /// Print {"valid", "diagnostics", "parsed"} as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LintRecordArgs {
    /// The record text (quote it in the shell), a zone-file line as `dns records` prints it,
    /// or `-` to read one record per line from standard input.
    #[arg(required = true, value_name = "TEXT")]
    pub records: Vec<std::ffi::OsString>,
    /// Print {"valid", "diagnostics", "parsed"} as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Write a policy in canonical form (to standard output, or to a file with -o).
    New(PolicyNewArgs),
    /// For each MX host, show the policy pattern that covers it, as a sender matches it.
    Match(PolicyMatchArgs),
}

/// A policy mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Senders refuse MX hosts that fail validation.
    Enforce,
    /// Senders deliver anyway and report failures (start here).
    Testing,
    /// Senders treat the domain as having no policy (to withdraw MTA-STS).
    None,
}

impl From<ModeArg> for mta_sts_policy::Mode {
    fn from(arg: ModeArg) -> Self {
        match arg {
            ModeArg::Enforce => Self::Enforce,
            ModeArg::Testing => Self::Testing,
            ModeArg::None => Self::None,
        }
    }
}

#[derive(Debug, Args)]
pub struct PolicyNewArgs {
    /// Policy mode.
    #[arg(long, value_enum)]
    pub mode: ModeArg,
    /// An MX host name or `*.domain` pattern; repeat or list several (required unless
    /// --mode none).
    #[arg(long, num_args = 1.., value_name = "HOST")]
    pub mx: Vec<String>,
    /// How long senders cache the policy, in seconds [default: 604800 (1 week) for testing,
    /// 1209600 (2 weeks) for enforce, 86400 for none].
    #[arg(long, value_name = "SECONDS")]
    pub max_age: Option<String>,
    /// Write the policy to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PolicyMatchArgs {
    /// The policy file, or `-` for standard input.
    pub file: PathBuf,
    /// MX host names, as in the MX records.
    #[arg(required = true, value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// Print the `_mta-sts` and `_smtp._tls` TXT records for a domain and its policy.
    ///
    /// The policy id is derived from the policy file: the same file always gives the same id,
    /// and any change gives a new one.
    Records(DnsRecordsArgs),
}

/// Output format of `dns records`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecordFormat {
    /// Zone-file lines.
    Zone,
    /// JSON.
    Json,
}

#[derive(Debug, Args)]
pub struct DnsRecordsArgs {
    /// The policy domain (the part after @ in addresses), e.g. example.com.
    #[arg(long, required_unless_present = "config", requires = "policy")]
    pub domain: Option<String>,
    /// The policy file you publish at https://mta-sts.DOMAIN/.well-known/mta-sts.txt.
    #[arg(long, value_name = "FILE", requires = "domain")]
    pub policy: Option<PathBuf>,
    /// Print the records of every domain of this `mta-sts serve` config file instead.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["domain", "policy", "rua"])]
    pub config: Option<PathBuf>,
    /// Where TLS reports go: mailto:ADDRESS or https://HOST/PATH; repeat for several
    /// [default: mailto:tlsrpt@DOMAIN].
    #[arg(long, value_name = "URI")]
    pub rua: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = RecordFormat::Zone)]
    pub format: RecordFormat,
    /// TTL of the records, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn arguments_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn mx_takes_several_values() {
        let cli = Cli::try_parse_from([
            "mta-sts",
            "policy",
            "new",
            "--mode",
            "testing",
            "--mx",
            "a.example",
            "b.example",
        ])
        .unwrap();
        let Command::Policy(PolicyCommand::New(args)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(args.mx, ["a.example", "b.example"]);
    }
}
