//! `mta-sts.toml`: what `mta-sts serve` listens on, how it gets certificates, where reports go,
//! and the policy of every domain it hosts.
//!
//! Every domain's policy goes through [`Policy::lint`] when the configuration is loaded, so a
//! configuration that would publish an invalid policy never starts (nor replaces a running one
//! on reload).

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mta_sts_policy::{Diagnostic, MxPattern, Policy, StsRecord, normalize_host, policy_id};
use mta_sts_tlsrpt::{ReportUri, TlsRptRecord};
use serde::Deserialize;

/// Default intake path (RFC 8460 §5.4 leaves the path to the receiver).
pub const DEFAULT_INTAKE_PATH: &str = "/tlsrpt";
/// Default cap on a report body as received (compressed): real daily reports are kilobytes.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// Default cap on a report once decompressed.
pub const DEFAULT_MAX_DECOMPRESSED: usize = mta_sts_tlsrpt::report::DEFAULT_MAX_DECOMPRESSED;
/// Default time a report request may take, body upload and storage included.
pub const DEFAULT_INTAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of report requests handled at once; more are answered 503.
pub const DEFAULT_MAX_CONCURRENT: usize = 256;
/// Default `max_age` of a generated policy: one week, which suits `testing` and is safe for
/// `enforce`.
pub const DEFAULT_MAX_AGE: u32 = 604_800;
/// Let's Encrypt's production directory, the default ACME directory.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// A loaded, checked configuration: every domain has a valid policy body ready to serve.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from; [`Server::reload`](crate::Server::reload) reads it again.
    pub source: Option<PathBuf>,
    /// Addresses to listen on.
    pub listen: Listen,
    /// How HTTPS listeners get their certificates.
    pub tls: Tls,
    /// Where reports are stored; carried through for the caller, which opens the store.
    pub storage: Storage,
    /// Limits of the TLS-RPT HTTPS intake.
    pub intake: Intake,
    /// Connection and memory limits that keep the server up under hostile clients.
    pub limits: Limits,
    /// Who may see the dashboard, the API and the metrics (`[dashboard]`).
    pub dashboard: crate::dashboard::DashboardConfig,
    /// `[[mailbox]]`: mail folders watched for report mail; carried through for the caller,
    /// which reads them into the store beside the HTTPS intake.
    pub mailboxes: Vec<Mailbox>,
    /// `[checks]`: the scheduled checks of every domain; carried through for the caller,
    /// which runs them with the checker of `mta-sts check` and keeps the history in the store.
    pub checks: Checks,
    /// `[alerts]`: where drift alerts go and their thresholds; carried through for the caller,
    /// which runs the alert engine.
    pub alerts: crate::alerts_config::AlertsConfig,
    domains: Vec<Domain>,
}

/// `[checks]`: how `serve` checks its domains as senders see them. The network keys mirror the
/// flags of `mta-sts check`.
#[derive(Debug, Clone, PartialEq)]
pub struct Checks {
    /// Checks run (`enabled = false` turns them off).
    pub enabled: bool,
    /// Time from one round of checks to the next (`interval`, default 6 h).
    pub interval: Duration,
    /// The domains of a round start evenly over this long (`spread`, default 5 min), not all
    /// at once.
    pub spread: Duration,
    /// Domains checked at once (`concurrency`).
    pub concurrency: usize,
    /// How long checks are kept (`retention`, default 90 days); each domain's latest stays.
    pub retention: Duration,
    /// `resolver`: the DNS server (`IP` or `IP:PORT`), as `check --resolver`.
    pub resolver: Option<String>,
    /// `ca_file`: extra trust roots, as `check --ca-file`.
    pub ca_file: Vec<PathBuf>,
    /// `https_port`, as `check --https-port`.
    pub https_port: u16,
    /// `smtp_port`, as `check --smtp-port`.
    pub smtp_port: u16,
    /// `timeout` in seconds, as `check --timeout`.
    pub timeout: Option<f64>,
    /// `no_smtp`, as `check --no-smtp`.
    pub no_smtp: bool,
    /// `without_sni`, as `check --without-sni`.
    pub without_sni: bool,
}

/// Default `[checks] interval`.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// Default `[checks] spread`.
pub const DEFAULT_CHECK_SPREAD: Duration = Duration::from_secs(300);
/// Default `[checks] concurrency`.
pub const DEFAULT_CHECK_CONCURRENCY: usize = 4;
/// Default `[checks] retention`.
pub const DEFAULT_CHECK_RETENTION: Duration = Duration::from_secs(90 * 86_400);

impl Default for Checks {
    fn default() -> Self {
        Checks {
            enabled: true,
            interval: DEFAULT_CHECK_INTERVAL,
            spread: DEFAULT_CHECK_SPREAD,
            concurrency: DEFAULT_CHECK_CONCURRENCY,
            retention: DEFAULT_CHECK_RETENTION,
            resolver: None,
            ca_file: Vec::new(),
            https_port: 443,
            smtp_port: 25,
            timeout: None,
            no_smtp: false,
            without_sni: false,
        }
    }
}

/// `[[mailbox]]`: an IMAP folder (`imaps://`, `imap://` with STARTTLS) or a Maildir that
/// `serve` watches for report mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// `imaps://USER@HOST[:PORT]/FOLDER`, `imap://...` or `maildir:PATH` (relative to the
    /// config file).
    pub url: String,
    /// The file with the IMAP password.
    pub password_file: Option<PathBuf>,
    /// The IMAP folder ingested messages go to (`None`: the default).
    pub processed: Option<String>,
    /// The IMAP folder refused messages go to (`None`: the default).
    pub quarantine: Option<String>,
    /// Extra trust roots for the IMAP server.
    pub ca_file: Vec<PathBuf>,
    /// Mail without a passing DKIM signature goes to quarantine.
    pub require_dkim: bool,
    /// How often a Maildir is looked at (IMAP waits with IDLE).
    pub poll: std::time::Duration,
}

/// `[listen]`: socket addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// HTTPS listeners (policy hosting and intake, with TLS).
    pub https: Vec<SocketAddr>,
    /// Plain HTTP listeners (behind a reverse proxy that terminates TLS).
    pub http: Vec<SocketAddr>,
}

/// `[tls]`: where certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// PEM files, per domain (`cert`/`key` in `[[domain]]`) or shared (`[tls] cert`/`key`).
    Files,
    /// Certificates obtained and renewed from an ACME CA.
    Acme(AcmeConfig),
    /// No TLS: only plain HTTP listeners, behind a proxy that terminates TLS.
    None,
}

/// `[tls.acme]`: the ACME account and CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    /// Contact address given to the CA (expiry warnings go there).
    pub email: String,
    /// The CA's directory URL.
    pub directory: String,
    /// Extra root certificate (PEM) trusted for the directory's HTTPS: for test CAs (pebble).
    pub directory_ca: Option<PathBuf>,
    /// Where the account key and certificates are kept; defaults to `acme/` in
    /// `storage.data_dir`.
    pub state_dir: Option<PathBuf>,
    /// How the CA validates that a host is served here.
    pub challenge: AcmeChallenge,
    /// The longest one request to the CA may take (`request_timeout`, in seconds).
    pub request_timeout: Duration,
}

/// Default time limit of one request to the ACME CA.
pub const DEFAULT_ACME_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `tls.acme.challenge`: how the CA checks that a host is ours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// `tls-alpn-01` (RFC 8737), on the HTTPS listeners themselves: port 443 must reach them.
    #[default]
    TlsAlpn01,
    /// `http-01` (RFC 8555 §8.3): `/.well-known/acme-challenge/` on the plain HTTP listeners,
    /// on port 80 or behind a proxy that forwards it.
    Http01,
}

impl std::fmt::Display for AcmeChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AcmeChallenge::TlsAlpn01 => "tls-alpn-01",
            AcmeChallenge::Http01 => "http-01",
        })
    }
}

/// `[storage]`: not used by the server itself, carried through for the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Storage {
    /// Data directory (SQLite and ACME state).
    pub data_dir: Option<PathBuf>,
    /// Database URL (`postgres://...`), instead of SQLite in the data directory.
    pub database: Option<String>,
}

/// `[intake]`: the TLS-RPT HTTPS intake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intake {
    /// Path reports are POSTed to.
    pub path: String,
    /// Largest accepted body as received, in bytes (larger: 413).
    pub max_body: usize,
    /// Largest accepted report once decompressed, in bytes (larger: 413).
    pub max_decompressed: usize,
    /// Longest a report request may take: a slower upload gets 408, a store that has not
    /// answered by then 503 with `Retry-After`.
    pub timeout: Duration,
    /// Report requests handled at once (more: 503).
    pub max_concurrent: usize,
    /// Which reports are taken (`intake.accept`).
    pub accept: Accept,
}

/// `intake.accept`: which reports the intake takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Accept {
    /// Only reports whose every `policy-domain` is a configured domain (`"configured"`, the
    /// default), so strangers cannot fill the store with reports about other domains; others
    /// are answered 403 with the reason, logged and counted, and not stored.
    #[default]
    Configured,
    /// Every readable report (`"any"`): for a collector that takes reports for domains it does
    /// not host policies for.
    Any,
}

impl Default for Intake {
    fn default() -> Self {
        Intake {
            path: DEFAULT_INTAKE_PATH.to_owned(),
            max_body: DEFAULT_MAX_BODY,
            max_decompressed: DEFAULT_MAX_DECOMPRESSED,
            timeout: DEFAULT_INTAKE_TIMEOUT,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            accept: Accept::default(),
        }
    }
}

/// One hosted policy domain, checked.
#[derive(Debug, Clone)]
pub struct Domain {
    name: String,
    body: Vec<u8>,
    policy: Policy,
    rua: Vec<ReportUri>,
    cert: Option<CertFiles>,
    warnings: Vec<Diagnostic>,
}

impl Domain {
    /// The policy domain, normalized (lowercase A-labels, no trailing dot).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy host: `mta-sts.<domain>`.
    pub fn policy_host(&self) -> String {
        format!("mta-sts.{}", self.name)
    }

    /// The exact bytes served at `/.well-known/mta-sts.txt`.
    pub fn policy_body(&self) -> &[u8] {
        &self.body
    }

    /// The policy, parsed.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Where reports for this domain go (the `rua` of `_smtp._tls`).
    pub fn rua(&self) -> &[ReportUri] {
        &self.rua
    }

    /// Certificate files for this domain, in `tls.mode = "files"`.
    pub fn cert_files(&self) -> Option<&CertFiles> {
        self.cert.as_ref()
    }

    /// Lint warnings of the policy (valid, but worth a look).
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }
}

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A configured domain whose certificate does not name its policy host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertMismatch {
    /// The policy host the certificate should name, `mta-sts.<domain>`.
    pub host: String,
    /// The certificate file.
    pub cert: PathBuf,
    /// The DNS names the certificate has (subject alternative names, else the common name).
    pub names: Vec<String>,
}

/// The DNS names of the first (leaf) certificate of a PEM file; `None` when there is none to
/// read.
fn certificate_names(path: &Path) -> Option<Vec<String>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let leaf = CertificateDer::pem_file_iter(path).ok()?.next()?.ok()?;
    leaf_names(leaf.as_ref())
}

/// The names of the DER certificate `leaf` when they do not cover `host` (empty when it cannot
/// be read); `None` when they do. For certificates that are not files (ACME's).
pub(crate) fn names_missing(leaf: &[u8], host: &str) -> Option<Vec<String>> {
    let names = leaf_names(leaf).unwrap_or_default();
    (!names.iter().any(|name| name_covers(name, host))).then_some(names)
}

/// The DNS names of a DER certificate: its subject alternative names, else its common name.
fn leaf_names(der: &[u8]) -> Option<Vec<String>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let sans: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(name) => Some((*name).to_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if !sans.is_empty() {
        return Some(sans);
    }
    Some(
        cert.subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
            .collect(),
    )
}

/// Whether a certificate name covers `host`: the same name, or a wildcard `*.` for exactly
/// its first label, case-insensitively.
fn name_covers(name: &str, host: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    match name.strip_prefix("*.") {
        Some(parent) => host.split_once('.').is_some_and(|(_, rest)| rest == parent),
        None => name == host,
    }
}

/// The two TXT records a hosted domain publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecords {
    /// The policy domain.
    pub domain: String,
    /// The policy id: derived from the exact body served, so it changes exactly when it does.
    pub policy_id: String,
    /// Where the policy is served.
    pub policy_url: String,
    /// `_mta-sts.<domain>.` TXT.
    pub sts: TxtRecord,
    /// `_smtp._tls.<domain>.` TXT.
    pub tlsrpt: TxtRecord,
}

/// One TXT record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxtRecord {
    /// Owner name, fully qualified with the trailing dot.
    pub name: String,
    /// The value as senders read it (character-strings concatenated).
    pub value: String,
}

/// TLS of the quick form (`mta-sts serve --listen ADDR --domain D --policy FILE ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuickTls {
    /// `--plain-http`: the listen addresses serve plain HTTP.
    PlainHttp,
    /// `--cert PEM --key PEM`: one certificate for every domain.
    Files(CertFiles),
    /// `--acme-email ADDR`: Let's Encrypt (production), state in `storage.data_dir`.
    Acme {
        /// Contact address.
        email: String,
    },
}

/// Why a configuration was refused. Each says where (file, domain, field) and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file (config or policy file) could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown or mistyped fields.
    #[error("{}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// A field outside `[[domain]]` is wrong.
    #[error("{field}: {message}")]
    Field {
        /// Dotted field name, such as `tls.acme`.
        field: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A field of a `[[domain]]` block is wrong.
    #[error("domain {domain}: {field}: {message}")]
    Domain {
        /// The domain as written (or `#N` when the name itself is missing).
        domain: String,
        /// The field.
        field: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// The domain's policy would be invalid: nothing is served until it is fixed.
    #[error(
        "domain {domain}: the policy would be invalid:{}",
        PolicyProblems(problems)
    )]
    InvalidPolicy {
        /// The domain.
        domain: String,
        /// Each error, with where it comes from.
        problems: Vec<PolicyProblem>,
    },
}

/// One error in a domain's policy, with the config field or file position it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    /// `mode`, `mx[2]`, `max_age`, or `FILE line L column C`.
    pub location: String,
    /// The linter's diagnostic: code, message, hint.
    pub diagnostic: Diagnostic,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.diagnostic;
        write!(
            f,
            "{}: {} [{}, {}]",
            self.location, d.message, d.code, d.rfc
        )?;
        if let Some(hint) = &d.hint {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}

struct PolicyProblems<'a>(&'a [PolicyProblem]);

impl fmt::Display for PolicyProblems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

// --- the file as written -------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    listen: RawListen,
    #[serde(default)]
    tls: RawTls,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    intake: RawIntake,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    dashboard: crate::dashboard::RawDashboard,
    #[serde(default)]
    mailbox: Vec<RawMailbox>,
    #[serde(default)]
    checks: RawChecks,
    #[serde(default)]
    alerts: crate::alerts_config::RawAlerts,
    #[serde(default)]
    domain: Vec<RawDomain>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMailbox {
    url: Option<String>,
    password_file: Option<PathBuf>,
    processed: Option<String>,
    quarantine: Option<String>,
    #[serde(default)]
    ca_file: Vec<PathBuf>,
    #[serde(default)]
    require_dkim: bool,
    poll_seconds: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawChecks {
    enabled: Option<bool>,
    interval: Option<String>,
    spread: Option<String>,
    concurrency: Option<usize>,
    retention: Option<String>,
    resolver: Option<String>,
    #[serde(default)]
    ca_file: Vec<PathBuf>,
    https_port: Option<u16>,
    smtp_port: Option<u16>,
    timeout: Option<f64>,
    #[serde(default)]
    no_smtp: bool,
    #[serde(default)]
    without_sni: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawListen {
    https: Option<Vec<SocketAddr>>,
    http: Option<Vec<SocketAddr>>,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawTlsMode {
    #[default]
    Files,
    Acme,
    None,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    #[serde(default)]
    mode: RawTlsMode,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    acme: Option<RawAcme>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAcme {
    email: String,
    directory: Option<String>,
    directory_ca: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    challenge: Option<String>,
    request_timeout: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    data_dir: Option<PathBuf>,
    database: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIntake {
    path: Option<String>,
    max_body: Option<usize>,
    max_decompressed: Option<usize>,
    timeout_seconds: Option<u64>,
    max_concurrent: Option<usize>,
    accept: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    name: Option<String>,
    mode: Option<String>,
    #[serde(default)]
    mx: Vec<String>,
    max_age: Option<u64>,
    policy_file: Option<PathBuf>,
    #[serde(default)]
    rua: Vec<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

impl Config {
    /// Reads and checks a config file. Relative paths in it are relative to its directory.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, domain and field at fault.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = Config::from_toml(&text, base).map_err(|error| match error {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// Checks a configuration given as TOML text; relative paths are relative to `base`.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn from_toml(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|error| ConfigError::Syntax {
            path: PathBuf::from("<config>"),
            message: error.to_string().trim_end().to_owned(),
        })?;
        Config::from_raw(raw, base)
    }

    /// The quick form of `mta-sts serve`: `listen` addresses (HTTPS, or plain HTTP with
    /// [`QuickTls::PlainHttp`]) and `(domain, policy file)` pairs served as the files' exact
    /// bytes. Intake and storage take their defaults; set the public fields to change them.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn from_quick(
        listen: Vec<SocketAddr>,
        domains: Vec<(String, PathBuf)>,
        tls: QuickTls,
    ) -> Result<Config, ConfigError> {
        let mut raw = RawConfig::default();
        match tls {
            QuickTls::PlainHttp => {
                raw.tls.mode = RawTlsMode::None;
                raw.listen.http = Some(listen);
            }
            QuickTls::Files(files) => {
                raw.tls.cert = Some(files.cert);
                raw.tls.key = Some(files.key);
                raw.listen.https = Some(listen);
            }
            QuickTls::Acme { email } => {
                raw.tls.mode = RawTlsMode::Acme;
                raw.tls.acme = Some(RawAcme {
                    email,
                    directory: None,
                    directory_ca: None,
                    state_dir: None,
                    challenge: None,
                    request_timeout: None,
                });
                raw.listen.https = Some(listen);
            }
        }
        raw.domain = domains
            .into_iter()
            .map(|(name, policy_file)| RawDomain {
                name: Some(name),
                policy_file: Some(policy_file),
                ..RawDomain::default()
            })
            .collect();
        Config::from_raw(raw, Path::new("."))
    }

    /// The hosted domains, in config order.
    pub fn domains(&self) -> &[Domain] {
        &self.domains
    }

    /// The `_mta-sts` and `_smtp._tls` TXT records of every hosted domain, in config order.
    pub fn dns_records(&self) -> Vec<DnsRecords> {
        self.domains
            .iter()
            .map(|domain| {
                let id = policy_id(&domain.body);
                let sts = StsRecord {
                    id: id.clone(),
                    extensions: Vec::new(),
                };
                let tlsrpt = TlsRptRecord {
                    rua: domain.rua.clone(),
                    extensions: Vec::new(),
                };
                DnsRecords {
                    domain: domain.name.clone(),
                    policy_url: format!("https://{}/.well-known/mta-sts.txt", domain.policy_host()),
                    policy_id: id,
                    sts: TxtRecord {
                        name: format!("_mta-sts.{}.", domain.name),
                        value: sts.to_text(),
                    },
                    tlsrpt: TxtRecord {
                        name: format!("_smtp._tls.{}.", domain.name),
                        value: tlsrpt.to_text(),
                    },
                }
            })
            .collect()
    }

    /// The domains whose certificate file (`tls.mode = "files"`) does not name their policy
    /// host `mta-sts.<domain>`, which senders check (RFC 8461 §3.3). A file that cannot be
    /// read is left to the certificate loader, which names it.
    pub fn certificate_mismatches(&self) -> Vec<CertMismatch> {
        let mut mismatches = Vec::new();
        for domain in &self.domains {
            let Some(files) = domain.cert_files() else {
                continue;
            };
            let Some(names) = certificate_names(&files.cert) else {
                continue;
            };
            let host = domain.policy_host();
            if !names.iter().any(|name| name_covers(name, &host)) {
                mismatches.push(CertMismatch {
                    host,
                    cert: files.cert.clone(),
                    names,
                });
            }
        }
        mismatches
    }

    fn from_raw(raw: RawConfig, base: &Path) -> Result<Config, ConfigError> {
        let resolve = |path: PathBuf| {
            if path.is_relative() {
                base.join(path)
            } else {
                path
            }
        };
        let field = |field: &str, message: String| ConfigError::Field {
            field: field.to_owned(),
            message,
        };

        let tls = match raw.tls.mode {
            RawTlsMode::Files => {
                if raw.tls.acme.is_some() {
                    return Err(field(
                        "tls.acme",
                        "given, but tls.mode is \"files\"; set mode = \"acme\" to use it".into(),
                    ));
                }
                Tls::Files
            }
            RawTlsMode::None => Tls::None,
            RawTlsMode::Acme => {
                let Some(acme) = raw.tls.acme else {
                    return Err(field(
                        "tls.acme",
                        "missing: tls.mode = \"acme\" needs a [tls.acme] table with at least email"
                            .into(),
                    ));
                };
                if !acme.email.contains('@') {
                    return Err(field(
                        "tls.acme.email",
                        format!("{:?} is not an email address", acme.email),
                    ));
                }
                let challenge = match acme.challenge.as_deref() {
                    None | Some("tls-alpn-01") => AcmeChallenge::TlsAlpn01,
                    Some("http-01") => AcmeChallenge::Http01,
                    Some(other) => {
                        return Err(field(
                            "tls.acme.challenge",
                            format!("{other:?}: must be \"tls-alpn-01\" or \"http-01\""),
                        ));
                    }
                };
                let request_timeout = match acme.request_timeout {
                    None => DEFAULT_ACME_REQUEST_TIMEOUT,
                    Some(0) => {
                        return Err(field(
                            "tls.acme.request_timeout",
                            "must be greater than 0 (seconds)".into(),
                        ));
                    }
                    Some(seconds) => Duration::from_secs(seconds),
                };
                Tls::Acme(AcmeConfig {
                    email: acme.email,
                    directory: acme
                        .directory
                        .unwrap_or_else(|| LETS_ENCRYPT_DIRECTORY.to_owned()),
                    directory_ca: acme.directory_ca.map(resolve),
                    state_dir: acme.state_dir.map(resolve),
                    challenge,
                    request_timeout,
                })
            }
        };
        if tls != Tls::Files && (raw.tls.cert.is_some() || raw.tls.key.is_some()) {
            return Err(field(
                "tls.cert",
                "certificate files are only used with tls.mode = \"files\"".into(),
            ));
        }
        let shared_cert = match (raw.tls.cert, raw.tls.key) {
            (Some(cert), Some(key)) => Some(CertFiles {
                cert: resolve(cert),
                key: resolve(key),
            }),
            (None, None) => None,
            _ => {
                return Err(field(
                    "tls.cert",
                    "give both cert and key, or neither".into(),
                ));
            }
        };

        let listen = match tls {
            Tls::None => {
                if raw.listen.https.as_ref().is_some_and(|a| !a.is_empty()) {
                    return Err(field(
                        "listen.https",
                        "HTTPS listeners need TLS: set tls.mode to \"files\" or \"acme\", or \
                         list these addresses under listen.http"
                            .into(),
                    ));
                }
                Listen {
                    https: Vec::new(),
                    http: raw
                        .listen
                        .http
                        .unwrap_or_else(|| vec![SocketAddr::from(([127, 0, 0, 1], 8080))]),
                }
            }
            _ => Listen {
                https: raw
                    .listen
                    .https
                    .unwrap_or_else(|| vec![SocketAddr::from(([0, 0, 0, 0], 443))]),
                http: raw.listen.http.unwrap_or_else(|| match &tls {
                    // The CA asks for http-01 answers on port 80.
                    Tls::Acme(acme) if acme.challenge == AcmeChallenge::Http01 => {
                        vec![SocketAddr::from(([0, 0, 0, 0], 80))]
                    }
                    _ => Vec::new(),
                }),
            },
        };
        if let Tls::Acme(acme) = &tls
            && acme.challenge == AcmeChallenge::Http01
            && listen.http.is_empty()
        {
            return Err(field(
                "listen.http",
                "empty, but tls.acme.challenge = \"http-01\" is answered on the plain HTTP \
                 listeners: list one (port 80, or the address a proxy forwards to)"
                    .into(),
            ));
        }
        if listen.https.is_empty() && listen.http.is_empty() {
            return Err(field("listen", "no address to listen on".into()));
        }

        let defaults = Intake::default();
        let intake = Intake {
            path: raw.intake.path.unwrap_or(defaults.path),
            max_body: raw.intake.max_body.unwrap_or(defaults.max_body),
            max_decompressed: raw
                .intake
                .max_decompressed
                .unwrap_or(defaults.max_decompressed),
            timeout: raw
                .intake
                .timeout_seconds
                .map_or(defaults.timeout, Duration::from_secs),
            max_concurrent: raw.intake.max_concurrent.unwrap_or(defaults.max_concurrent),
            accept: match raw.intake.accept.as_deref() {
                None => defaults.accept,
                Some("configured") => Accept::Configured,
                Some("any") => Accept::Any,
                Some(other) => {
                    return Err(field(
                        "intake.accept",
                        format!("{other:?}: must be \"configured\" or \"any\""),
                    ));
                }
            },
        };
        if let Err(problem) = check_intake_path(&intake.path) {
            return Err(field(
                "intake.path",
                format!("{:?}: {problem}", intake.path),
            ));
        }
        for (name, value) in [
            ("intake.max_body", intake.max_body),
            ("intake.max_decompressed", intake.max_decompressed),
            ("intake.max_concurrent", intake.max_concurrent),
        ] {
            if value == 0 {
                return Err(field(name, "must be greater than 0".into()));
            }
        }
        if intake.timeout.is_zero() {
            return Err(field(
                "intake.timeout_seconds",
                "must be greater than 0".into(),
            ));
        }

        if raw.domain.is_empty() {
            return Err(field(
                "domain",
                "no [[domain]] block: nothing to serve".into(),
            ));
        }
        let mut seen = HashSet::new();
        let mut domains = Vec::with_capacity(raw.domain.len());
        for (index, raw_domain) in raw.domain.into_iter().enumerate() {
            let domain = check_domain(raw_domain, index, &tls, &shared_cert, &intake, &resolve)?;
            if !seen.insert(domain.name.clone()) {
                return Err(ConfigError::Domain {
                    domain: domain.name,
                    field: "name",
                    message: "listed twice".into(),
                });
            }
            domains.push(domain);
        }

        let names: Vec<String> = domains.iter().map(|d| d.name.clone()).collect();
        let dashboard = crate::dashboard::check_config(raw.dashboard, &names, &intake.path)?;
        Ok(Config {
            source: None,
            listen,
            tls,
            dashboard,
            storage: Storage {
                data_dir: raw.storage.data_dir.map(resolve),
                database: raw.storage.database,
            },
            intake,
            limits: limits(raw.limits)?,
            mailboxes: mailboxes(raw.mailbox, &resolve)?,
            checks: checks(raw.checks, &resolve)?,
            alerts: crate::alerts_config::check_alerts(raw.alerts, &resolve)?,
            domains,
        })
    }
}

fn mailboxes(
    raw: Vec<RawMailbox>,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<Vec<Mailbox>, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(index, raw)| {
            let field = |name: &str, message: String| ConfigError::Field {
                field: format!("mailbox[{index}].{name}"),
                message,
            };
            let url = raw.url.ok_or_else(|| {
                field(
                    "url",
                    "missing: imaps://USER@HOST/FOLDER, imap://... or maildir:PATH".into(),
                )
            })?;
            let url = if let Some(path) = url.strip_prefix("maildir:") {
                format!("maildir:{}", resolve(PathBuf::from(path)).display())
            } else if url.starts_with("imaps://") || url.starts_with("imap://") {
                url
            } else {
                return Err(field(
                    "url",
                    format!("`{url}` is not imaps://, imap:// or maildir:PATH"),
                ));
            };
            let poll_seconds = raw.poll_seconds.unwrap_or(60);
            if poll_seconds == 0 {
                return Err(field("poll_seconds", "must be at least 1".into()));
            }
            Ok(Mailbox {
                url,
                password_file: raw.password_file.map(resolve),
                processed: raw.processed,
                quarantine: raw.quarantine,
                ca_file: raw.ca_file.into_iter().map(resolve).collect(),
                require_dkim: raw.require_dkim,
                poll: std::time::Duration::from_secs(poll_seconds),
            })
        })
        .collect()
}

/// `6h`, `30m`, `90d`, `45s`: a whole number and a unit.
fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if seconds > 0 && !number.starts_with('+') => n
            .checked_mul(seconds)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{text:?} is too long")),
        _ => Err(format!(
            "{text:?} is not a duration: write a number and s, m, h or d (\"6h\", \"90d\")"
        )),
    }
}

fn checks(raw: RawChecks, resolve: &dyn Fn(PathBuf) -> PathBuf) -> Result<Checks, ConfigError> {
    let field = |name: &str, message: String| ConfigError::Field {
        field: format!("checks.{name}"),
        message,
    };
    let defaults = Checks::default();
    let time = |name: &str, value: Option<String>, default: Duration| match value {
        None => Ok(default),
        Some(text) => duration(&text).map_err(|message| field(name, message)),
    };
    let checks = Checks {
        enabled: raw.enabled.unwrap_or(defaults.enabled),
        interval: time("interval", raw.interval, defaults.interval)?,
        spread: time("spread", raw.spread, defaults.spread)?,
        concurrency: raw.concurrency.unwrap_or(defaults.concurrency),
        retention: time("retention", raw.retention, defaults.retention)?,
        resolver: raw.resolver,
        ca_file: raw.ca_file.into_iter().map(resolve).collect(),
        https_port: raw.https_port.unwrap_or(defaults.https_port),
        smtp_port: raw.smtp_port.unwrap_or(defaults.smtp_port),
        timeout: raw.timeout,
        no_smtp: raw.no_smtp,
        without_sni: raw.without_sni,
    };
    if checks.interval < Duration::from_secs(1) {
        return Err(field("interval", "must be at least 1s".into()));
    }
    if checks.spread > checks.interval {
        return Err(field(
            "spread",
            "must not be longer than checks.interval (a round would not end before the next)"
                .into(),
        ));
    }
    if checks.concurrency == 0 {
        return Err(field("concurrency", "must be at least 1".into()));
    }
    if checks.retention < checks.interval {
        return Err(field(
            "retention",
            "must be at least checks.interval, or no history is kept".into(),
        ));
    }
    if let Some(timeout) = checks.timeout
        && !(timeout.is_finite() && timeout > 0.0)
    {
        return Err(field(
            "timeout",
            format!("must be a positive number of seconds, not {timeout}"),
        ));
    }
    Ok(checks)
}

/// Says where a policy diagnostic comes from: a config field or a file position.
type Locator = Box<dyn Fn(&Diagnostic) -> String>;

fn check_domain(
    raw: RawDomain,
    index: usize,
    tls: &Tls,
    shared_cert: &Option<CertFiles>,
    intake: &Intake,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<Domain, ConfigError> {
    let Some(written) = raw.name else {
        return Err(ConfigError::Domain {
            domain: format!("#{}", index + 1),
            field: "name",
            message: "missing".into(),
        });
    };
    let error = |field: &'static str, message: String| ConfigError::Domain {
        domain: written.clone(),
        field,
        message,
    };
    let name = normalize_host(&written).map_err(|message| error("name", message))?;
    let plain_name = matches!(MxPattern::parse(&name), Ok((p, _)) if !p.is_wildcard());
    if !plain_name || !name.contains('.') {
        return Err(error(
            "name",
            "not a domain name; write the mail domain, such as example.com".into(),
        ));
    }
    if name.starts_with("mta-sts.") {
        return Err(error(
            "name",
            "write the mail domain (example.com), not its policy host (mta-sts.example.com)".into(),
        ));
    }

    let inline = raw.mode.is_some() || !raw.mx.is_empty() || raw.max_age.is_some();
    let (body, problems_at): (Vec<u8>, Locator) = match (raw.policy_file, inline) {
        (Some(_), true) => {
            return Err(error(
                "policy_file",
                "given together with mode/mx/max_age: use one or the other".into(),
            ));
        }
        (Some(file), false) => {
            let file = resolve(file);
            let body = std::fs::read(&file).map_err(|source| ConfigError::Read {
                path: file.clone(),
                source,
            })?;
            let shown = file.display().to_string();
            (
                body,
                Box::new(move |d: &Diagnostic| {
                    format!("{shown} line {} column {}", d.line, d.column)
                }),
            )
        }
        (None, false) => {
            return Err(error(
                "mode",
                "missing: give mode, mx and max_age, or policy_file".into(),
            ));
        }
        (None, true) => {
            let Some(mode) = raw.mode else {
                return Err(error(
                    "mode",
                    "missing: one of \"testing\", \"enforce\", \"none\"".into(),
                ));
            };
            let max_age = raw.max_age.unwrap_or(u64::from(DEFAULT_MAX_AGE));
            let mx_count = raw.mx.len();
            for (field, value) in
                std::iter::once(("mode", &mode)).chain(raw.mx.iter().map(|mx| ("mx", mx)))
            {
                if value.contains(['\r', '\n']) {
                    return Err(error(field, format!("{value:?} contains a line break")));
                }
            }
            let mut text = format!("version: STSv1\r\nmode: {mode}\r\n");
            for mx in &raw.mx {
                text.push_str(&format!("mx: {mx}\r\n"));
            }
            text.push_str(&format!("max_age: {max_age}\r\n"));
            (
                text.into_bytes(),
                Box::new(move |d: &Diagnostic| {
                    // Line 1 is version, 2 mode, then one line per mx, then max_age.
                    let line = usize::try_from(d.line).unwrap_or(usize::MAX);
                    match line {
                        2 => "mode".to_owned(),
                        n if n >= 3 && n < 3 + mx_count => format!("mx[{}]", n - 3),
                        n if n == 3 + mx_count => "max_age".to_owned(),
                        _ => "policy".to_owned(),
                    }
                }),
            )
        }
    };
    let is_file = !inline;

    let lint = Policy::lint(&body);
    let problems: Vec<PolicyProblem> = lint
        .errors()
        .map(|diagnostic| PolicyProblem {
            location: problems_at(diagnostic),
            diagnostic: diagnostic.clone(),
        })
        .collect();
    let warnings: Vec<Diagnostic> = lint
        .diagnostics
        .iter()
        .filter(|d| !d.is_error())
        .cloned()
        .collect();
    let policy = match lint.into_policy() {
        Some(policy) if problems.is_empty() => policy,
        _ => {
            return Err(ConfigError::InvalidPolicy {
                domain: name,
                problems,
            });
        }
    };
    // A policy file is served byte for byte (its id is derived from those bytes); a policy
    // written as fields is served in canonical form.
    let body = if is_file {
        body
    } else {
        policy.to_text().into_bytes()
    };

    let rua = if raw.rua.is_empty() {
        let uri = format!("https://mta-sts.{name}{}", intake.path);
        vec![
            ReportUri::parse(&uri)
                .map_err(|p| error("rua", format!("default {uri}: {}", p.message)))?,
        ]
    } else {
        raw.rua
            .iter()
            .map(|uri| {
                ReportUri::parse(uri)
                    .map_err(|p| error("rua", format!("{uri}: {} ({})", p.message, p.hint)))
            })
            .collect::<Result<_, _>>()?
    };

    let cert = match (raw.cert, raw.key) {
        (Some(cert), Some(key)) if *tls == Tls::Files => Some(CertFiles {
            cert: resolve(cert),
            key: resolve(key),
        }),
        (None, None) if *tls == Tls::Files => match shared_cert {
            Some(files) => Some(files.clone()),
            None => {
                return Err(error(
                    "cert",
                    "missing: tls.mode = \"files\" needs cert and key for every domain (or a \
                     shared [tls] cert and key)"
                        .into(),
                ));
            }
        },
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(error(
                "cert",
                "certificate files are only used with tls.mode = \"files\"".into(),
            ));
        }
        _ => return Err(error("cert", "give both cert and key, or neither".into())),
    };

    Ok(Domain {
        name,
        body,
        policy,
        rua,
        cert,
        warnings,
    })
}

// --- [limits] ---------------------------------------------------------------------------------

/// Default cap on open connections, all clients together: a small VPS keeps 1024 file
/// descriptors per process by default, and an idle connection costs a few kilobytes.
pub const DEFAULT_MAX_CONNECTIONS: usize = 768;
/// Default cap on open connections from one IP address: a sending MTA needs a handful.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 32;
/// Default time a client has to send a request's headers, and the longest a keep-alive
/// connection stays open without a request.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default memory budget of the intake: bytes held by reports being read, all requests
/// together (bodies, decompressed JSON and the parsed tree, estimated before reading).
pub const DEFAULT_INTAKE_MEMORY: usize = 256 * 1024 * 1024;

/// `[limits]`: what all clients together, or one of them, may hold of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at once; past it new ones are closed at once.
    pub max_connections: usize,
    /// Open connections at once from one IP address; past it new ones are closed at once.
    pub max_connections_per_ip: usize,
    /// Time to send a request's headers (from the connection's start, or the end of the last
    /// answer on a keep-alive connection); past it the connection is closed. This is also the
    /// idle timeout of keep-alive connections.
    pub header_timeout: Duration,
    /// Bytes the intake may hold for reports being read, all requests together; past it
    /// reports are answered `503` with `Retry-After`.
    pub intake_memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            intake_memory: DEFAULT_INTAKE_MEMORY,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    header_timeout_seconds: Option<u64>,
    intake_memory: Option<usize>,
}

fn limits(raw: RawLimits) -> Result<Limits, ConfigError> {
    let defaults = Limits::default();
    let limits = Limits {
        max_connections: raw.max_connections.unwrap_or(defaults.max_connections),
        max_connections_per_ip: raw
            .max_connections_per_ip
            .unwrap_or(defaults.max_connections_per_ip),
        header_timeout: raw
            .header_timeout_seconds
            .map_or(defaults.header_timeout, Duration::from_secs),
        intake_memory: raw.intake_memory.unwrap_or(defaults.intake_memory),
    };
    for (name, value) in [
        ("limits.max_connections", limits.max_connections),
        (
            "limits.max_connections_per_ip",
            limits.max_connections_per_ip,
        ),
        ("limits.intake_memory", limits.intake_memory),
        (
            "limits.header_timeout_seconds",
            usize::from(!limits.header_timeout.is_zero()),
        ),
    ] {
        if value == 0 {
            return Err(ConfigError::Field {
                field: name.to_owned(),
                message: "must be greater than 0".into(),
            });
        }
    }
    Ok(limits)
}
/// Why `path` cannot be the intake's URL path, if it cannot: it must be an absolute path of
/// plain URL path characters (RFC 3986 `pchar` and `/`), matched literally. Route syntax
/// (`{name}`, `*`, a segment starting with `:`) would make the router panic or match more than
/// one path; a query or fragment never reaches the router; `,`, `;` and `!` would need
/// escapes in the TLSRPT record; `..`, `//` and percent-escapes are
/// refused because clients and proxies normalise them differently; and the policy path
/// belongs to policy hosting.
fn check_intake_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("must be an absolute path starting with /");
    }
    if path.contains(['?', '#']) {
        return Err("must be a path only, without a query (?) or fragment (#)");
    }
    if path.contains(['{', '}', '*']) || path.split('/').any(|s| s.starts_with(':')) {
        return Err("must be a literal path: no route syntax such as {name}, * or :name");
    }
    if path.contains('%') {
        return Err("must not contain percent-escapes: write the characters themselves");
    }
    if let Some(c) = path.chars().find(|&c| !is_path_char(c)) {
        return Err(if c.is_whitespace() || c.is_control() {
            "must not contain spaces or control characters"
        } else {
            "may contain only letters, digits, / and - . _ ~ $ & ' ( ) + = : @ (the path goes \
             in the TLSRPT record, where , ; and ! would need escapes)"
        });
    }
    if path.contains("//") || path.split('/').any(|s| s == "." || s == "..") {
        return Err("must not contain empty, . or .. segments");
    }
    let policy = crate::app::POLICY_PATH;
    let (path_lower, policy_dir) = (path.to_ascii_lowercase(), "/.well-known/mta-sts");
    if path_lower == policy || path_lower.starts_with(policy_dir) {
        return Err("must not be the policy path /.well-known/mta-sts.txt");
    }
    Ok(())
}

/// RFC 3986 `pchar` and `/`, without percent-escapes and without the three characters a
/// TLSRPT record's `rua` must escape (RFC 8460 §3: `,`, `;`, `!`).
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/-._~$&'()+=:@".contains(c)
}

#[cfg(test)]
mod tests {
    use super::name_covers;

    #[test]
    fn certificate_wildcard_covers_exactly_one_label() {
        assert!(name_covers("mta-sts.example.com", "mta-sts.example.com"));
        assert!(name_covers("MTA-STS.Example.com.", "mta-sts.example.com"));
        assert!(name_covers("*.example.com", "mta-sts.example.com"));
        assert!(!name_covers("*.com", "mta-sts.example.com"));
        assert!(!name_covers("example.com", "mta-sts.example.com"));
        assert!(!name_covers("*.mta-sts.example.com", "mta-sts.example.com"));
    }
}
