//! The statistics of a scan: what [`Summary`] makes of many reports, read back from the
//! results file (one [`Report`](crate::Report) as JSON per line) as [`ScanLine`]s.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rank::{Ranking, TopCounter};

/// The part of one results line (a [`Report`](crate::Report) as `check --json` gives it)
/// that the summary needs; other fields are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct ScanLine {
    /// The domain checked.
    pub domain: String,
    /// The sender verdict.
    pub sender: LineVerdict,
    /// Set when the check could not be completed.
    #[serde(default)]
    pub incomplete: Option<String>,
    /// The findings.
    #[serde(default)]
    pub findings: Vec<LineFinding>,
    /// The policy in force, when a valid one was fetched.
    #[serde(default)]
    pub policy: Option<LinePolicy>,
    /// What was seen.
    pub evidence: LineEvidence,
}

/// [`crate::SenderVerdict`] as read back.
#[derive(Debug, Clone, Deserialize)]
pub struct LineVerdict {
    /// `protected`, `mail-would-bounce`, …
    pub status: String,
    /// The failing MX hosts (`degraded`, `mail-would-bounce`).
    #[serde(default)]
    pub failing_mx: Vec<String>,
    /// The MX hosts that would fail under `enforce` (`testing`).
    #[serde(default)]
    pub would_fail_under_enforce: Vec<String>,
}

/// A [`crate::Finding`] as read back.
#[derive(Debug, Clone, Deserialize)]
pub struct LineFinding {
    /// Its code.
    pub code: String,
    /// `error`, `warning` or `info`.
    pub severity: String,
    /// Its area (`sts-record`, `policy`, …).
    pub area: String,
}

/// The policy as read back.
#[derive(Debug, Clone, Deserialize)]
pub struct LinePolicy {
    /// `enforce`, `testing` or `none`.
    pub mode: String,
    /// `max_age`, in seconds.
    pub max_age: u64,
}

/// The evidence as read back.
#[derive(Debug, Clone, Deserialize)]
pub struct LineEvidence {
    /// The `_mta-sts` lookup.
    pub sts_txt: LineTxt,
    /// The `_smtp._tls` lookup.
    pub tlsrpt_txt: LineTxt,
    /// The MX hosts.
    #[serde(default)]
    pub mx_hosts: Vec<LineMxHost>,
}

/// A TXT lookup as read back: `{"ok": {...}}` or `{"error": ...}`.
#[derive(Debug, Clone, Deserialize)]
pub struct LineTxt {
    /// The answer, when there was one.
    #[serde(default)]
    pub ok: Option<LineTxtAnswer>,
}

/// A TXT answer as read back.
#[derive(Debug, Clone, Deserialize)]
pub struct LineTxtAnswer {
    /// The records at the name.
    #[serde(default)]
    pub records: Vec<String>,
    /// The record a sender uses, when one is valid.
    #[serde(default)]
    pub parsed: Option<serde::de::IgnoredAny>,
}

/// An MX host as read back.
#[derive(Debug, Clone, Deserialize)]
pub struct LineMxHost {
    /// Its name.
    pub host: String,
}

/// The longest results line read: a report with many MX hosts and certificates stays far
/// below; more is not a line `scan` wrote.
pub const MAX_SCAN_LINE: usize = 4 * 1024 * 1024;

impl ScanLine {
    /// Reads one results line (a report as JSON, as `scan --out` writes it), from a file that
    /// may hold anything: a line that is not a report, or longer than [`MAX_SCAN_LINE`], is
    /// an error saying what is wrong and where.
    pub fn from_json(line: &[u8]) -> Result<ScanLine, String> {
        if line.len() > MAX_SCAN_LINE {
            return Err(format!(
                "the line is {} bytes, more than the {MAX_SCAN_LINE} a report has",
                line.len()
            ));
        }
        serde_json::from_slice(line).map_err(|e| e.to_string())
    }
}

impl LineTxt {
    /// Some record is published at the name.
    fn published(&self) -> bool {
        self.ok.as_ref().is_some_and(|a| !a.records.is_empty())
    }

    /// A valid record is published.
    fn valid(&self) -> bool {
        self.ok.as_ref().is_some_and(|a| a.parsed.is_some())
    }
}

/// What a misconfiguration is about, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// The `_mta-sts` TXT record.
    StsRecord,
    /// Getting the policy: the policy host's DNS, TLS, certificate, HTTP.
    PolicyFetch,
    /// The policy file itself.
    PolicySyntax,
    /// The MX records and their coverage by the policy.
    MxCoverage,
    /// STARTTLS, TLS and certificates of the MX hosts.
    MxTls,
    /// The `_smtp._tls` TXT record.
    #[serde(rename = "tlsrpt-record")]
    TlsRptRecord,
}

impl Category {
    /// Every category, in summary order.
    pub const ALL: [Category; 6] = [
        Category::StsRecord,
        Category::PolicyFetch,
        Category::PolicySyntax,
        Category::MxCoverage,
        Category::MxTls,
        Category::TlsRptRecord,
    ];

    /// Its name in JSON and CSV.
    pub fn name(self) -> &'static str {
        match self {
            Category::StsRecord => "sts-record",
            Category::PolicyFetch => "policy-fetch",
            Category::PolicySyntax => "policy-syntax",
            Category::MxCoverage => "mx-coverage",
            Category::MxTls => "mx-tls",
            Category::TlsRptRecord => "tlsrpt-record",
        }
    }

    /// A heading for people.
    pub fn title(self) -> &'static str {
        match self {
            Category::StsRecord => "MTA-STS TXT record",
            Category::PolicyFetch => "policy fetch",
            Category::PolicySyntax => "policy syntax",
            Category::MxCoverage => "MX coverage",
            Category::MxTls => "MX STARTTLS/TLS/certificate",
            Category::TlsRptRecord => "TLS-RPT record",
        }
    }

    /// The category of a finding, by its area and code.
    pub fn of(area: &str, code: &str) -> Option<Category> {
        Some(match area {
            "sts-record" => Category::StsRecord,
            "policy" if is_fetch_code(code) => Category::PolicyFetch,
            "policy" => Category::PolicySyntax,
            "mx" => Category::MxCoverage,
            "smtp" => Category::MxTls,
            "tls-rpt" => Category::TlsRptRecord,
            _ => return None,
        })
    }
}

/// Codes of the policy area about getting the policy rather than what it says.
fn is_fetch_code(code: &str) -> bool {
    [
        "policy-host-",
        "policy-fetch-",
        "policy-http-",
        "policy-cert-",
    ]
    .iter()
    .any(|prefix| code.starts_with(prefix))
        || matches!(
            code,
            "policy-redirect" | "policy-content-type" | "policy-too-large"
        )
}

/// The `max_age` buckets of the summary: label and upper bound (exclusive), in seconds.
pub const MAX_AGE_BUCKETS: [(&str, u64); 5] = [
    ("under 1 day", 86_400),
    ("1 day to under 1 week", 604_800),
    ("1 week to under 4 weeks", 2_419_200),
    ("4 weeks to under 1 year", 31_557_600),
    ("1 year (the maximum)", u64::MAX),
];

/// A count and its share of a base.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Share {
    /// How many domains.
    pub domains: u64,
    /// `domains` divided by the base (0 when the base is 0).
    pub share: f64,
}

/// One bucket of the `max_age` distribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MaxAgeBucket {
    /// For people, e.g. "1 week to under 4 weeks".
    pub label: String,
    /// Policies in it have a `max_age` below this many seconds (`None`: no upper bound).
    pub below: Option<u64>,
    /// How many, and their share.
    #[serde(flatten)]
    pub count: Share,
}

/// Counts over many scan results; [`Summary::add`] one line at a time, then
/// [`Summary::report`]. Memory is bounded whatever the number of lines: the tables of MX
/// hosts and providers keep at most [`crate::RANK_TABLE_SIZE`] names each, and only the
/// known modes and verdicts are counted by name.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    domains: u64,
    incomplete: u64,
    sts_published: u64,
    sts_valid: u64,
    policy_valid: u64,
    tlsrpt_published: u64,
    tlsrpt_valid: u64,
    modes: BTreeMap<String, u64>,
    max_age: [u64; MAX_AGE_BUCKETS.len()],
    verdicts: BTreeMap<String, u64>,
    misconfigured: BTreeMap<Category, u64>,
    misconfigured_any: u64,
    mx_hosts: TopCounter,
    mx_providers: TopCounter,
}

/// The summary of a scan, for people (a table), programs (JSON) and spreadsheets (CSV).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryReport {
    /// Domains in the results.
    pub domains: u64,
    /// Domains whose check could not be completed (share of `domains`).
    pub incomplete: Share,
    /// Domains that publish an `_mta-sts` TXT record, valid or not (share of `domains`).
    pub mta_sts_published: Share,
    /// Domains with a valid `_mta-sts` record (share of `domains`).
    pub mta_sts_record_valid: Share,
    /// Domains with a valid `_mta-sts` record and a valid policy fetched (share of
    /// `domains`); "valid policies" below are these (a policy without a record is never
    /// fetched by senders).
    pub mta_sts_policy_valid: Share,
    /// Domains that publish an `_smtp._tls` TXT record (share of `domains`).
    pub tlsrpt_published: Share,
    /// Domains with a valid `_smtp._tls` record (share of `domains`).
    pub tlsrpt_valid: Share,
    /// Policy modes (shares of the domains with a valid policy).
    pub modes: BTreeMap<String, Share>,
    /// `max_age` distribution, [`MAX_AGE_BUCKETS`] in order (shares of the domains with a
    /// valid policy).
    pub max_age: Vec<MaxAgeBucket>,
    /// Sender verdicts by status (shares of `domains`).
    pub verdicts: BTreeMap<String, Share>,
    /// Domains that publish an `_mta-sts` record with an error-level finding, in any
    /// category (share of `mta_sts_published`).
    pub misconfigured: Share,
    /// The same by category (shares of `mta_sts_published`).
    pub misconfigured_by_category: BTreeMap<Category, Share>,
    /// Domains whose own `enforce` policy makes senders refuse every MX host: mail would
    /// bounce (share of the domains with a valid policy).
    pub would_lose_mail: Share,
    /// Domains under `enforce` where some MX hosts fail (share of the domains with a valid
    /// policy).
    pub degraded: Share,
    /// The MX hosts used by most domains.
    pub mx_hosts: Ranking,
    /// The MX providers (see [`mx_provider`]) used by most domains: every MX host of a
    /// provider's fleet counts for it.
    pub mx_providers: Ranking,
}

/// The policy modes the summary counts by name.
const MODES: [&str; 3] = ["enforce", "testing", "none"];

/// The sender verdicts ([`crate::SenderVerdict`]) the summary counts by name.
const VERDICTS: [&str; 8] = [
    "protected",
    "enforced-untested",
    "degraded",
    "mail-would-bounce",
    "mail-deferred",
    "testing",
    "not-protected",
    "unknown",
];

/// `value` if it is one of `names`, else `other`: a results file that holds anything adds
/// no names to the summary's tables.
fn known(value: &str, names: &[&str]) -> String {
    names
        .iter()
        .find(|n| **n == value)
        .copied()
        .unwrap_or("other")
        .to_owned()
}

/// The provider of an MX host, for [`SummaryReport::mx_providers`]: its registrable domain,
/// taken as the last two labels, or three under a country code's common second level
/// (`co.uk`, `com.au`, …): `aspmx.l.google.com` → `google.com`,
/// `mx1.example.co.uk` → `example.co.uk`. No public suffix list is bundled, so a private
/// suffix (a hosting company's customer subdomains) counts as one provider.
pub fn mx_provider(host: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = host.rsplit('.').collect();
    let country_second_level = matches!(labels.as_slice(), [tld, second, _, ..]
        if tld.len() == 2 && matches!(*second,
            "ac" | "co" | "com" | "edu" | "go" | "gob" | "gov" | "ltd" | "mil" | "ne" | "net"
                | "nom" | "or" | "org" | "plc" | "sch"));
    let keep = if country_second_level { 3 } else { 2 };
    let mut provider: Vec<&str> = labels.into_iter().take(keep).collect();
    provider.reverse();
    provider.join(".")
}

fn share(domains: u64, base: u64) -> Share {
    Share {
        domains,
        share: if base == 0 {
            0.0
        } else {
            domains as f64 / base as f64
        },
    }
}

impl Summary {
    /// An empty summary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one domain.
    pub fn add(&mut self, line: &ScanLine) {
        self.domains += 1;
        self.incomplete += u64::from(line.incomplete.is_some());
        let published = line.evidence.sts_txt.published();
        self.sts_published += u64::from(published);
        self.sts_valid += u64::from(line.evidence.sts_txt.valid());
        self.tlsrpt_published += u64::from(line.evidence.tlsrpt_txt.published());
        self.tlsrpt_valid += u64::from(line.evidence.tlsrpt_txt.valid());
        // A policy counts only behind a valid record: without one, senders never fetch it.
        if let Some(policy) = line
            .policy
            .as_ref()
            .filter(|_| line.evidence.sts_txt.valid())
        {
            self.policy_valid += 1;
            *self.modes.entry(known(&policy.mode, &MODES)).or_default() += 1;
            let bucket = MAX_AGE_BUCKETS
                .iter()
                .position(|(_, below)| policy.max_age < *below)
                .unwrap_or(MAX_AGE_BUCKETS.len() - 1);
            self.max_age[bucket] += 1;
        }
        *self
            .verdicts
            .entry(known(&line.sender.status, &VERDICTS))
            .or_default() += 1;
        if published {
            let mut categories: Vec<Category> = line
                .findings
                .iter()
                .filter(|f| f.severity == "error")
                .filter_map(|f| Category::of(&f.area, &f.code))
                .collect();
            categories.sort();
            categories.dedup();
            self.misconfigured_any += u64::from(!categories.is_empty());
            for category in categories {
                *self.misconfigured.entry(category).or_default() += 1;
            }
        }
        let failing = |host: &str| {
            line.sender
                .failing_mx
                .iter()
                .chain(&line.sender.would_fail_under_enforce)
                .any(|f| f.eq_ignore_ascii_case(host))
        };
        let mut hosts: Vec<(&str, bool)> = line
            .evidence
            .mx_hosts
            .iter()
            .map(|h| (h.host.as_str(), failing(&h.host)))
            .collect();
        hosts.sort_unstable();
        hosts.dedup_by(|a, b| a.0 == b.0);
        for (host, failing) in &hosts {
            self.mx_hosts.add(host, *failing);
        }
        // A domain counts once for a provider, failing if any of its MX hosts there fails.
        let mut providers: Vec<(String, bool)> = hosts
            .iter()
            .map(|(host, failing)| (mx_provider(host), *failing))
            .collect();
        providers.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        providers.dedup_by(|a, b| a.0 == b.0);
        for (provider, failing) in &providers {
            self.mx_providers.add(provider, *failing);
        }
    }

    /// Domains counted so far.
    pub fn domains(&self) -> u64 {
        self.domains
    }

    /// The summary, with the `top` MX hosts and providers used by most domains (ties by
    /// name).
    pub fn report(&self, top: usize) -> SummaryReport {
        let n = self.domains;
        let policies = self.policy_valid;
        let count = |map: &BTreeMap<String, u64>, key: &str| map.get(key).copied().unwrap_or(0);
        SummaryReport {
            domains: n,
            incomplete: share(self.incomplete, n),
            mta_sts_published: share(self.sts_published, n),
            mta_sts_record_valid: share(self.sts_valid, n),
            mta_sts_policy_valid: share(policies, n),
            tlsrpt_published: share(self.tlsrpt_published, n),
            tlsrpt_valid: share(self.tlsrpt_valid, n),
            modes: MODES
                .iter()
                .map(|mode| {
                    (
                        (*mode).to_owned(),
                        share(count(&self.modes, mode), policies),
                    )
                })
                .collect(),
            max_age: MAX_AGE_BUCKETS
                .iter()
                .zip(self.max_age)
                .map(|((label, below), c)| MaxAgeBucket {
                    label: (*label).to_owned(),
                    below: (*below != u64::MAX).then_some(*below),
                    count: share(c, policies),
                })
                .collect(),
            verdicts: self
                .verdicts
                .iter()
                .map(|(status, c)| (status.clone(), share(*c, n)))
                .collect(),
            misconfigured: share(self.misconfigured_any, self.sts_published),
            misconfigured_by_category: Category::ALL
                .iter()
                .map(|c| {
                    let domains = self.misconfigured.get(c).copied().unwrap_or(0);
                    (*c, share(domains, self.sts_published))
                })
                .collect(),
            would_lose_mail: share(count(&self.verdicts, "mail-would-bounce"), policies),
            degraded: share(count(&self.verdicts, "degraded"), policies),
            mx_hosts: self.mx_hosts.ranking(top),
            mx_providers: self.mx_providers.ranking(top),
        }
    }
}
