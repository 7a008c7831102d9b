//! What the store hands out: keys, outcomes and the rows read back.

use std::fmt;

use mta_sts_tlsrpt::report::{Report, Timestamp};

/// The store's key for a raw report body ([`Store::ingest_raw`](crate::Store::ingest_raw)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawId(pub i64);

/// The store's key for a parsed report. Not the reporter's `report-id`, which is only unique
/// together with the organization and the date range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReportKey(pub i64);

impl fmt::Display for RawId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for ReportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a report body came from, as recorded with its raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// Posted to the HTTPS intake (RFC 8460 §5.4).
    Https,
    /// Extracted from a report mail (RFC 8460 §5.3).
    Mail,
    /// Read from a file.
    File,
}

impl Source {
    /// The name stored in `raw_reports.source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Https => "https",
            Self::Mail => "mail",
            Self::File => "file",
        }
    }
}

/// What [`Store::ingest_parsed`](crate::Store::ingest_parsed) did with a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// The report is new and was stored under this key.
    Stored(ReportKey),
    /// A report with the same identity (organization, report-id, date range) was already
    /// stored, under this key; nothing changed.
    Duplicate(ReportKey),
    /// The report was put in quarantine instead: it cannot be stored as parsed rows.
    Quarantined {
        /// Why.
        reason: String,
    },
}

/// What [`Store::ingest`](crate::Store::ingest) did with a report body. In every case the raw
/// bytes were committed first, under `raw`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// The report was read and stored.
    Stored {
        /// The raw body.
        raw: RawId,
        /// The parsed report.
        report: ReportKey,
    },
    /// The report was read and had been stored before; nothing changed.
    Duplicate {
        /// The raw body.
        raw: RawId,
        /// The report stored before.
        report: ReportKey,
    },
    /// The report could not be read; the body is kept in quarantine with the reason.
    Quarantined {
        /// The raw body.
        raw: RawId,
        /// Why it could not be read.
        reason: String,
    },
    /// The body decompresses to more than the size limit (an HTTP intake answers 413); it is
    /// kept in quarantine.
    TooLarge {
        /// The raw body.
        raw: RawId,
        /// The limit, in bytes.
        limit: usize,
    },
}

impl Ingested {
    /// The raw body's key, whatever the outcome.
    pub fn raw(&self) -> RawId {
        match self {
            Self::Stored { raw, .. }
            | Self::Duplicate { raw, .. }
            | Self::Quarantined { raw, .. }
            | Self::TooLarge { raw, .. } => *raw,
        }
    }
}

/// Which reports [`Store::list_reports`](crate::Store::list_reports) returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFilter {
    /// Only reports with a policy for this domain (case-insensitive, trailing dot ignored).
    pub domain: Option<String>,
    /// Only reports whose period ends after this time.
    pub since: Option<Timestamp>,
    /// At most this many reports, newest period first.
    pub limit: u32,
}

impl Default for ReportFilter {
    fn default() -> Self {
        Self {
            domain: None,
            since: None,
            limit: 100,
        }
    }
}

/// One report in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSummary {
    /// The store's key.
    pub key: ReportKey,
    /// `organization-name`.
    pub organization_name: String,
    /// `report-id`.
    pub report_id: String,
    /// `date-range.start-datetime`.
    pub date_start: Timestamp,
    /// `date-range.end-datetime`.
    pub date_end: Timestamp,
    /// One entry per policy, in report order.
    pub policies: Vec<PolicySummary>,
}

/// One policy of a report in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySummary {
    /// `policy-domain`, as sent.
    pub domain: String,
    /// `policy-type`, as sent (`sts`, `tlsa`, `no-policy-found`, or another value).
    pub policy_type: String,
    /// `total-successful-session-count`.
    pub successful: u64,
    /// `total-failure-session-count`.
    pub failed: u64,
}

/// A stored report in full, as [`Store::get_report`](crate::Store::get_report) returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    /// The store's key.
    pub key: ReportKey,
    /// The raw body it was read from.
    pub raw: RawId,
    /// The report, policies and failure details in report order. Dates are rebuilt from their
    /// UTC seconds, so [`Timestamp::original`] is the RFC 3339 form, not the text sent.
    pub report: Report,
    /// What the reader tolerated to read it.
    pub warnings: Vec<StoredWarning>,
}

/// A reader warning as stored: the JSON path and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWarning {
    /// JSON path, such as `policies[0].mx-host`.
    pub path: String,
    /// What was tolerated.
    pub message: String,
}

/// A body in quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineEntry {
    /// The raw body.
    pub raw: RawId,
    /// Why it is in quarantine.
    pub reason: String,
    /// When it was put there.
    pub created_at: Timestamp,
    /// Where the body came from (`https`, `mail`, `file`).
    pub source: String,
    /// Its declared content type.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A raw body as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawReport {
    /// Its key.
    pub id: RawId,
    /// When it was first received.
    pub received_at: Timestamp,
    /// Where it came from (`https`, `mail`, `file`).
    pub source: String,
    /// Its declared content type.
    pub content_type: String,
    /// The bytes, exactly as received.
    pub bytes: Vec<u8>,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
}
