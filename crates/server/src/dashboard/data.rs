//! What the dashboard reads, as the server sees it: the [`DashboardData`] trait the binary
//! implements over the store, and the rows it hands back. Which domains a request may see is
//! decided before any of these methods is called (see [`Scope`](super::Scope)); each method
//! is given the domains it may answer about.

use std::collections::BTreeMap;

use async_trait::async_trait;

/// Sessions of one group (a day, a result type, a reporter, an MX host, an address).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// The group's value (`(none)` when a report does not say).
    pub key: String,
    /// Reports counted in the group.
    pub reports: u64,
    /// Successful sessions; `None` for groups made from failure details, which carry none.
    pub successful: Option<u64>,
    /// Failed sessions.
    pub failed: u64,
    /// Failed sessions per result type.
    pub failure_types: BTreeMap<String, u64>,
}

impl Tally {
    /// Failed sessions over all sessions, when known and not zero.
    pub fn failure_rate(&self) -> Option<f64> {
        let sessions = self.successful?.saturating_add(self.failed);
        (sessions > 0).then(|| self.failed as f64 / sessions as f64)
    }
}

/// The answer of `mta-sts reports readiness` for a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Enough data and no MX or policy failures: `enforce` would refuse no mail.
    Ready,
    /// Something must be fixed first.
    NotYet {
        /// What to fix first, in one sentence.
        fix: String,
    },
    /// Too few days or reporters to tell.
    NotEnoughData {
        /// Days covered.
        days: usize,
        /// Reporters seen.
        reporters: usize,
        /// Days needed.
        min_days: usize,
        /// Reporters needed.
        min_reporters: usize,
    },
}

/// A domain's reports over a period, counted by the store's rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DomainStats {
    /// All counted sessions.
    pub total: Tally,
    /// Per UTC day (`YYYY-MM-DD`), oldest first; days without reports are absent.
    pub daily: Vec<Tally>,
    /// Failures per result type.
    pub by_result: Vec<Tally>,
    /// Sessions per reporting organization.
    pub by_reporter: Vec<Tally>,
    /// Failures per receiving MX host name.
    pub by_mx: Vec<Tally>,
    /// Failures per receiving address.
    pub by_receiving_ip: Vec<Tally>,
    /// Failures per sending MTA address.
    pub by_sending_ip: Vec<Tally>,
    /// The end of each reporter's last report in the period (UTC seconds).
    pub last_report: BTreeMap<String, i64>,
    /// The readiness verdict over the period.
    pub readiness: Option<Readiness>,
}

/// Which reports [`DashboardData::reports`] lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportQuery {
    /// Only reports with a policy for one of these domains (never empty: an empty scope is
    /// answered without asking).
    pub domains: Vec<String>,
    /// Only reports from this organization, exactly as sent.
    pub reporter: Option<String>,
    /// Only reports whose period ends after this time (UTC seconds).
    pub since: Option<i64>,
    /// Only reports whose period starts before this time (UTC seconds).
    pub until: Option<i64>,
    /// Only reports with failed sessions.
    pub failures_only: bool,
    /// Reports skipped (newest first), for paging.
    pub offset: u32,
    /// Reports returned at most.
    pub limit: u32,
}

/// One policy entry of a report in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyCount {
    /// `policy-domain`, as sent.
    pub domain: String,
    /// `policy-type`, as sent.
    pub policy_type: String,
    /// Successful sessions.
    pub successful: u64,
    /// Failed sessions.
    pub failed: u64,
}

/// One report in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    /// The store's key.
    pub id: i64,
    /// `organization-name`.
    pub reporter: String,
    /// `report-id`.
    pub report_id: String,
    /// Period start, RFC 3339.
    pub start: String,
    /// Period end, RFC 3339.
    pub end: String,
    /// The policies, in report order.
    pub policies: Vec<PolicyCount>,
}

/// One `failure-details` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRow {
    /// `result-type`.
    pub result_type: String,
    /// `sending-mta-ip`.
    pub sending_mta_ip: Option<String>,
    /// `receiving-mx-hostname`.
    pub receiving_mx_hostname: Option<String>,
    /// `receiving-ip`.
    pub receiving_ip: Option<String>,
    /// `failed-session-count`.
    pub failed_sessions: u64,
    /// `failure-reason-code` or `additional-information`.
    pub reason: Option<String>,
}

/// One policy entry of a report, in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDetail {
    /// The counts.
    pub counts: PolicyCount,
    /// `mx-host`.
    pub mx_hosts: Vec<String>,
    /// `policy-string`.
    pub policy_strings: Vec<String>,
    /// `failure-details`.
    pub failures: Vec<FailureRow>,
}

/// A report in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportDetail {
    /// The listing's fields (its policies are in `policies`).
    pub row: ReportRow,
    /// The raw body's key.
    pub raw_id: i64,
    /// `contact-info`.
    pub contact: Option<String>,
    /// Whether this body counts for its identity.
    pub counted: bool,
    /// Other bodies with the same identity.
    pub conflicting: Vec<i64>,
    /// The policies in full.
    pub policies: Vec<PolicyDetail>,
    /// What the reader tolerated: `(JSON path, message)`.
    pub warnings: Vec<(String, String)>,
    /// The report as JSON, pretty-printed.
    pub json: String,
}

/// A body in quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineItem {
    /// The raw body's key.
    pub id: i64,
    /// Stable code (`unreadable`, `too-large`, ...).
    pub code: String,
    /// Why it is there.
    pub reason: String,
    /// When it was put there, RFC 3339.
    pub quarantined_at: String,
    /// Where it came from (`https`, `mail`, `file`).
    pub source: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What re-processing a body in quarantine did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reprocess {
    /// It reads now and left the quarantine.
    Released,
    /// It still does not read.
    StillUnreadable,
    /// It is held on purpose (`manual`, `dkim-required`) and was not read again.
    Held,
    /// No such body in quarantine.
    NotFound,
}

/// Totals for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreTotals {
    /// Reports stored (counted bodies).
    pub reports: u64,
    /// Bodies in quarantine.
    pub quarantined: u64,
}

/// A certificate's expiry as a check saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRow {
    /// The policy host (`mta-sts.<domain>`) or an MX host.
    pub host: String,
    /// Its `notAfter`, UTC seconds.
    pub not_after: i64,
}

/// Something that drifted since the check before (`mta_sts_store::Drift`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftRow {
    /// `mx-changed-policy-not`, `policy-changed-id-not`, `certificate-expiring`,
    /// `policy-fetch-failing`.
    pub kind: String,
    /// What it is about (a host, a policy id, the MX set before a change).
    pub key: String,
    /// One line.
    pub summary: String,
    /// What was seen and what to do.
    pub detail: String,
}

/// One scheduled check of a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRow {
    /// The store's key.
    pub id: i64,
    /// When it started and finished, UTC seconds.
    pub started_at: i64,
    /// See `started_at`.
    pub finished_at: i64,
    /// The sender verdict's status (`protected`, `testing`, ...).
    pub verdict: String,
    /// The sender verdict in a sentence.
    pub summary: String,
    /// Why the check could not be completed: the check failed.
    pub incomplete: Option<String>,
    /// Findings at error level.
    pub errors: u64,
    /// Findings at warning level.
    pub warnings: u64,
    /// The `_mta-sts` record's id.
    pub policy_id: Option<String>,
    /// The fetched policy's mode.
    pub policy_mode: Option<String>,
    /// Why the policy fetch failed.
    pub policy_error: Option<String>,
    /// The MX hosts (`None`: the lookup failed).
    pub mx: Option<Vec<String>>,
    /// The policy host's and the MX hosts' certificates.
    pub certificates: Vec<CertRow>,
    /// What drifted since the check before.
    pub drift: Vec<DriftRow>,
}

/// A finding of a check, as `mta-sts check --json` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckFinding {
    /// Stable code.
    pub code: String,
    /// `error`, `warning` or `info`.
    pub severity: String,
    /// The part of the setup.
    pub area: String,
    /// What it is about.
    pub subject: String,
    /// What is wrong.
    pub message: String,
    /// What was seen.
    pub evidence: String,
    /// What to do.
    pub fix: String,
    /// The RFC section.
    pub rfc: String,
}

/// The store could not answer; logged, and the page says "try again".
#[derive(Debug, thiserror::Error)]
#[error("dashboard data: {message}")]
pub struct DataError {
    /// What failed.
    pub message: String,
}

impl DataError {
    /// An error with a message for the log.
    pub fn new(message: impl Into<String>) -> Self {
        DataError {
            message: message.into(),
        }
    }
}

/// An open drift alert (see `[alerts]`), as the pages and `/api/v1/alerts` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    /// The domain it is about.
    pub domain: String,
    /// Its kind's stable name (`failure_rate_high`, ...).
    pub kind: String,
    /// Its identity within the kind (an MX host, a result type, a reporter; may be empty).
    pub key: String,
    /// One line.
    pub summary: String,
    /// What was seen and what to do.
    pub detail: String,
    /// When it opened, UTC seconds.
    pub opened_at: i64,
    /// When it was last seen to hold.
    pub last_seen: i64,
    /// When a notification was last sent for it, if ever.
    pub notified_at: Option<i64>,
    /// Its last notification on each channel.
    pub deliveries: Vec<AlertDeliveryRow>,
}

/// Where an alert's notification stands on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertDeliveryRow {
    /// `webhook` or `email`.
    pub channel: String,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    /// Attempts made.
    pub attempts: u64,
    /// What went wrong the last time.
    pub last_error: Option<String>,
}

/// Where the dashboard, the API and `/metrics` read from: the store, wired in by the binary.
#[async_trait]
pub trait DashboardData: Send + Sync + 'static {
    /// The reports of `domain` whose period overlaps `[since, until)`, counted.
    async fn domain_stats(
        &self,
        domain: &str,
        since: i64,
        until: i64,
    ) -> Result<DomainStats, DataError>;

    /// [`DashboardData::domain_stats`] of each of `domains` (normalized names), in that
    /// order: the overview's cards, in one read where the store can.
    async fn domains_stats(
        &self,
        domains: &[String],
        since: i64,
        until: i64,
    ) -> Result<Vec<DomainStats>, DataError> {
        let mut all = Vec::with_capacity(domains.len());
        for domain in domains {
            all.push(self.domain_stats(domain, since, until).await?);
        }
        Ok(all)
    }

    /// The latest scheduled check of each of `domains`, in that order (`None`: not checked
    /// yet). The default: no checks are kept.
    async fn latest_checks(&self, domains: &[String]) -> Result<Vec<Option<CheckRow>>, DataError> {
        Ok(vec![None; domains.len()])
    }

    /// The scheduled checks of `domain`, newest first: `limit` after skipping `offset`.
    async fn checks(
        &self,
        domain: &str,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<CheckRow>, DataError> {
        let _ = (domain, offset, limit);
        Ok(Vec::new())
    }

    /// The findings of the check `id` of `domain`, as `mta-sts check` gives them.
    async fn check_findings(&self, domain: &str, id: i64) -> Result<Vec<CheckFinding>, DataError> {
        let _ = (domain, id);
        Ok(Vec::new())
    }

    /// The open drift alerts of `domains`, by domain, kind and key. The default: none kept.
    async fn alerts(&self, domains: &[String]) -> Result<Vec<AlertRow>, DataError> {
        let _ = domains;
        Ok(Vec::new())
    }

    /// Reports matching `query`, newest period first, with one more than `query.limit` when
    /// there are more (so a page knows whether a next one exists).
    async fn reports(&self, query: &ReportQuery) -> Result<Vec<ReportRow>, DataError>;

    /// The report stored under `id`.
    async fn report(&self, id: i64) -> Result<Option<ReportDetail>, DataError>;

    /// Bodies in quarantine, oldest first, at most `limit`.
    async fn quarantine(&self, limit: u32) -> Result<Vec<QuarantineItem>, DataError>;

    /// Reads a body in quarantine again.
    async fn reprocess(&self, id: i64) -> Result<Reprocess, DataError>;

    /// Totals for `/metrics`.
    async fn totals(&self) -> Result<StoreTotals, DataError>;
}
