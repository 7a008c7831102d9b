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
    /// Check a policy file or a TXT record against RFC 8461 / RFC 8460.
    #[command(subcommand)]
    Lint(LintCommand),
    /// Write a policy, or see which policy pattern covers an MX host.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print the DNS records to publish.
    #[command(subcommand)]
    Dns(DnsCommand),
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
    /// The record text (quote it in the shell).
    #[arg(required = true, value_name = "TEXT")]
    pub records: Vec<String>,
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
    #[arg(long)]
    pub domain: String,
    /// The policy file you publish at https://mta-sts.DOMAIN/.well-known/mta-sts.txt.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
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
