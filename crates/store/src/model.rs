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

/// Who sent a report body, as far as the store can tell: where it came from and whether the
/// sender was authenticated. Decides which of two different bodies with one identity counts
/// (see [`ReportSummary::counted`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Origin {
    /// Where the body came from.
    pub source: Source,
    /// The report mail carried a valid DKIM signature of the reporting domain.
    pub dkim_verified: bool,
}

impl Origin {
    /// How far the origin is trusted: DKIM-verified mail (1) over anything unsigned (0).
    pub(crate) fn trust(self) -> i64 {
        i64::from(self.dkim_verified)
    }
}

impl From<Source> for Origin {
    /// An unauthenticated origin: HTTPS, a file, or mail without a verified signature.
    fn from(source: Source) -> Self {
        Origin {
            source,
            dkim_verified: false,
        }
    }
}

/// Why a body is in quarantine, as a stable code (stored beside the reason's text).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuarantineCode {
    /// The body is not a readable report (not gzip, not JSON, no identity).
    Unreadable,
    /// The body decompresses to more than the size limit.
    TooLarge,
    /// The report has a field too long to index (see [`MAX_INDEXED_LEN`](crate::MAX_INDEXED_LEN)).
    Unindexable,
    /// The report reader failed (a bug in mta-sts).
    ReaderFailed,
    /// The database refused the parsed rows; the raw body is kept.
    Refused,
    /// Put there by [`Store::quarantine`](crate::Store::quarantine).
    Manual,
    /// A mail without a passing DKIM signature, held because DKIM was required
    /// ([`Store::hold_unauthenticated`](crate::Store::hold_unauthenticated)).
    DkimRequired,
    /// A code written by another version of mta-sts, as stored.
    Other(String),
}

impl QuarantineCode {
    /// The name stored in `quarantine.code`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Unreadable => "unreadable",
            Self::TooLarge => "too-large",
            Self::Unindexable => "unindexable",
            Self::ReaderFailed => "reader-failed",
            Self::Refused => "refused",
            Self::Manual => "manual",
            Self::DkimRequired => "dkim-required",
            Self::Other(name) => name,
        }
    }

    /// The code stored as `name`.
    pub fn from_name(name: &str) -> Self {
        match name {
            "unreadable" => Self::Unreadable,
            "too-large" => Self::TooLarge,
            "unindexable" => Self::Unindexable,
            "reader-failed" => Self::ReaderFailed,
            "refused" => Self::Refused,
            "manual" => Self::Manual,
            "dkim-required" => Self::DkimRequired,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for QuarantineCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`Store::ingest_parsed`](crate::Store::ingest_parsed) did with a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// The report is new and was stored under this key.
    Stored(ReportKey),
    /// A report with the same identity (organization, report-id, date range) was already
    /// stored, under this key, with the same content; nothing changed.
    Duplicate(ReportKey),
    /// A report with the same identity but different content was stored before: this one is
    /// kept too, under this key, and both are flagged as a conflict.
    Conflict {
        /// The new body's key.
        report: ReportKey,
        /// Whether the new body is the one that counts now (see [`ReportSummary::counted`]).
        counted: bool,
    },
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
    /// The report was read, and a different report with the same identity had been stored
    /// before: it is kept as well, and both are flagged as a conflict.
    Conflict {
        /// The raw body.
        raw: RawId,
        /// The new report.
        report: ReportKey,
        /// Whether the new report is the one that counts now.
        counted: bool,
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
            | Self::Conflict { raw, .. }
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
    /// Only reports with a policy for one of these domains (case-insensitive, trailing dot
    /// ignored); `None` for any domain. An empty list matches no report.
    pub domains: Option<Vec<String>>,
    /// Only reports from this reporting organization (exactly as sent).
    pub organization: Option<String>,
    /// Only reports whose period ends after this time.
    pub since: Option<Timestamp>,
    /// Only reports whose period starts before this time.
    pub until: Option<Timestamp>,
    /// Only reports with at least one failed session.
    pub failures_only: bool,
    /// Skip this many reports (newest period first) before the `limit`: for paging.
    pub offset: u32,
    /// At most this many reports, newest period first.
    pub limit: u32,
    /// Also the bodies that do not count (see [`ReportSummary::counted`]); by default only
    /// the counted one of each identity is listed, so sums never count a report twice.
    pub include_uncounted: bool,
}

impl Default for ReportFilter {
    fn default() -> Self {
        Self {
            domain: None,
            domains: None,
            organization: None,
            since: None,
            until: None,
            failures_only: false,
            offset: 0,
            limit: 100,
            include_uncounted: false,
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
    /// Another body with the same identity (organization, report-id, date range) but different
    /// content is stored too: one of them may be forged.
    pub conflict: bool,
    /// This is the body that counts for its identity. Of conflicting bodies, the most trusted
    /// one counts (DKIM-verified mail over HTTPS, files and unsigned mail), and of equally
    /// trusted ones the first stored; never more than one.
    pub counted: bool,
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
    /// SHA-256 (hex) of the report as [`Report::to_json`] writes it; empty for reports stored
    /// by an older version that have not been delivered again since.
    pub content_sha256: String,
    /// This is the body that counts for its identity (see [`ReportSummary::counted`]).
    pub counted: bool,
    /// The other bodies stored with the same identity, oldest first: a conflict when not empty.
    pub conflicting: Vec<ReportKey>,
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
    /// Why it is in quarantine, as a code.
    pub code: QuarantineCode,
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
