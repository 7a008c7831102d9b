//! TLS report (RFC 8460 §4): the model, a lenient reader and a strict writer.
//!
//! Real senders deviate from the RFC in known ways (`mx-host` as a string, TLSA records as JSON
//! inside a string, dates without a zone, counts as strings, `contact-info: null`, …).
//! [`Report::from_json`] accepts those and says what it tolerated in [`ReadReport::warnings`],
//! each with a JSON path. Only a report without its identity (`organization-name`, `report-id`,
//! `date-range`) or one that is not JSON is an error; a malformed policy is skipped with a warning.
//! [`Report::to_json`] always writes RFC 8460 JSON exactly. [`decode`] gunzips (with a size cap)
//! whatever the declared content type said, then reads.
//!
//! ```
//! use mta_sts_tlsrpt::report::{Report, ReportWarningKind};
//!
//! let json = br#"{"organization-name": "Example Inc.", "report-id": "r1",
//!   "date-range": {"start-datetime": "2024-01-09T00:00:00", "end-datetime": "2024-01-09T23:59:59Z"},
//!   "contact-info": "tls@example.net",
//!   "policies": [{"policy": {"policy-type": "sts", "policy-domain": "example.com",
//!                            "mx-host": "mx.example.com"},
//!                 "summary": {"total-successful-session-count": "12",
//!                             "total-failure-session-count": 0}}]}"#;
//! let read = Report::from_json(json)?;
//! assert_eq!(read.report.policies[0].summary.total_successful_session_count, 12);
//! assert_eq!(read.warnings.len(), 3);
//! assert_eq!(read.warnings[0].path, "date-range.start-datetime");
//! assert_eq!(read.warnings[0].kind, ReportWarningKind::DateWithoutZone);
//! # Ok::<(), mta_sts_tlsrpt::report::ReportError>(())
//! ```

mod build;
mod datetime;
pub(crate) mod decode;
mod error;
mod measure;
mod read;
mod shape;
mod write;

use std::fmt;

pub use build::{ReportBuilder, UtcDay};
pub use datetime::Timestamp;
pub use decode::{DEFAULT_MAX_DECOMPRESSED, decode, decompress};
pub use error::{ReportError, ReportWarning, ReportWarningKind, SkipReason};
pub use measure::{BodyCost, MAX_TREE_BYTES, measure, tree_bytes};
pub use read::MAX_WARNINGS;

pub(crate) use error::excerpt;

/// One aggregate TLS report (RFC 8460 §4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `organization-name`: who produced the report.
    pub organization_name: String,
    /// `date-range`: the period the report covers.
    pub date_range: DateRange,
    /// `contact-info`: how to reach the reporter; some send `null` or nothing.
    pub contact_info: Option<String>,
    /// `report-id`: the reporter's identifier for this report.
    pub report_id: String,
    /// `policies`: one entry per policy applied (a domain can have an STS and a TLSA entry for
    /// the same sessions).
    pub policies: Vec<PolicyResult>,
}

/// `date-range`: the start and end of the reporting period (RFC 8460 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateRange {
    /// `start-datetime`.
    pub start: Timestamp,
    /// `end-datetime`.
    pub end: Timestamp,
}

/// What makes a report the same report when it arrives twice: the store keys on it so that
/// ingesting a report again changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReportIdentity {
    /// `organization-name`, as sent.
    pub organization_name: String,
    /// `report-id`, as sent.
    pub report_id: String,
    /// `start-datetime` in seconds since the Unix epoch, UTC.
    pub start_unix_seconds: i64,
    /// `end-datetime` in seconds since the Unix epoch, UTC.
    pub end_unix_seconds: i64,
}

/// A report as read by [`Report::from_json`]: the report and what was tolerated to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadReport {
    /// The report.
    pub report: Report,
    /// Every deviation from RFC 8460 that was tolerated: the report's own fields first, then
    /// each policy in turn (at most [`MAX_WARNINGS`], then one
    /// [`ReportWarningKind::TooManyWarnings`]).
    pub warnings: Vec<ReportWarning>,
}

/// One entry of `policies`: a policy applied to sessions and what happened to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyResult {
    /// `policy`: the policy that was applied.
    pub policy: AppliedPolicy,
    /// `summary`: successful and failed session counts.
    pub summary: SessionSummary,
    /// `failure-details`: failures by result type; empty when there were none.
    pub failure_details: Vec<FailureDetail>,
}

/// `policy`: the policy the sender applied (RFC 8460 §4.4, §4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedPolicy {
    /// `policy-type`.
    pub policy_type: PolicyType,
    /// `policy-string`: the MTA-STS policy lines or the TLSA records; empty when not sent (for
    /// `no-policy-found`, or when the policy could not be fetched).
    pub policy_string: Vec<String>,
    /// `policy-domain`: the domain the policy is for.
    pub policy_domain: String,
    /// `mx-host`: the MX patterns of an STS policy; empty when not sent.
    pub mx_host: Vec<String>,
}

/// `summary`: session counts for one policy (RFC 8460 §4.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SessionSummary {
    /// `total-successful-session-count`.
    pub total_successful_session_count: u64,
    /// `total-failure-session-count`.
    pub total_failure_session_count: u64,
}

/// One entry of `failure-details` (RFC 8460 §4.4). Addresses and names are kept as sent:
/// reporters fill them inconsistently, and this is a record of what they said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureDetail {
    /// `result-type`.
    pub result_type: ResultType,
    /// `sending-mta-ip`.
    pub sending_mta_ip: Option<String>,
    /// `receiving-mx-hostname`.
    pub receiving_mx_hostname: Option<String>,
    /// `receiving-mx-helo`.
    pub receiving_mx_helo: Option<String>,
    /// `receiving-ip`.
    pub receiving_ip: Option<String>,
    /// `failed-session-count`. Failure types overlap (RFC 8460 §4), so these need not add up
    /// to the summary's failure count.
    pub failed_session_count: u64,
    /// `additional-information`: meant to be a URI, but kept as any string.
    pub additional_information: Option<String>,
    /// `failure-reason-code`: free text such as `X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED`.
    pub failure_reason_code: Option<String>,
}

/// `policy-type` (RFC 8460 §4.4). Open: a value this crate does not know is kept as
/// [`PolicyType::Other`] so it round-trips.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyType {
    /// `sts`: an MTA-STS policy (RFC 8461).
    Sts,
    /// `tlsa`: DANE TLSA records (RFC 7672).
    Tlsa,
    /// `no-policy-found`: neither applied.
    NoPolicyFound,
    /// Any other value, exactly as sent. Build values with [`PolicyType::from_name`] so that a
    /// known name never lands here.
    Other(String),
}

impl PolicyType {
    /// The type named `name` (case-sensitive, as RFC 8460 spells it).
    pub fn from_name(name: &str) -> Self {
        match name {
            "sts" => Self::Sts,
            "tlsa" => Self::Tlsa,
            "no-policy-found" => Self::NoPolicyFound,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The name written in a report.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Sts => "sts",
            Self::Tlsa => "tlsa",
            Self::NoPolicyFound => "no-policy-found",
            Self::Other(name) => name,
        }
    }
}

impl fmt::Display for PolicyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `result-type`: the registered STARTTLS validation result types (RFC 8460 §4.3, §6.6).
/// Open, because the registry grows: unknown values are kept as [`ResultType::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResultType {
    /// `starttls-not-supported`: the MX did not offer STARTTLS.
    StarttlsNotSupported,
    /// `certificate-host-mismatch`: the certificate does not name the MX host.
    CertificateHostMismatch,
    /// `certificate-expired`.
    CertificateExpired,
    /// `certificate-not-trusted`: unknown CA, broken chain, and similar.
    CertificateNotTrusted,
    /// `validation-failure`: any other negotiation failure.
    ValidationFailure,
    /// `tlsa-invalid`: no TLSA record of the RRset was valid.
    TlsaInvalid,
    /// `dnssec-invalid`: the resolver returned no valid records.
    DnssecInvalid,
    /// `dane-required`: DANE was required but no validated TLSA records existed.
    DaneRequired,
    /// `sts-policy-fetch-error`: the MTA-STS policy could not be fetched.
    StsPolicyFetchError,
    /// `sts-policy-invalid`: the MTA-STS policy did not validate.
    StsPolicyInvalid,
    /// `sts-webpki-invalid`: the policy host's certificate did not validate.
    StsWebpkiInvalid,
    /// Any other value, exactly as sent. Build values with [`ResultType::from_name`] so that a
    /// known name never lands here.
    Other(String),
}

impl ResultType {
    /// The type named `name` (case-sensitive, as the registry spells it).
    pub fn from_name(name: &str) -> Self {
        match name {
            "starttls-not-supported" => Self::StarttlsNotSupported,
            "certificate-host-mismatch" => Self::CertificateHostMismatch,
            "certificate-expired" => Self::CertificateExpired,
            "certificate-not-trusted" => Self::CertificateNotTrusted,
            "validation-failure" => Self::ValidationFailure,
            "tlsa-invalid" => Self::TlsaInvalid,
            "dnssec-invalid" => Self::DnssecInvalid,
            "dane-required" => Self::DaneRequired,
            "sts-policy-fetch-error" => Self::StsPolicyFetchError,
            "sts-policy-invalid" => Self::StsPolicyInvalid,
            "sts-webpki-invalid" => Self::StsWebpkiInvalid,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The name written in a report.
    pub fn as_str(&self) -> &str {
        match self {
            Self::StarttlsNotSupported => "starttls-not-supported",
            Self::CertificateHostMismatch => "certificate-host-mismatch",
            Self::CertificateExpired => "certificate-expired",
            Self::CertificateNotTrusted => "certificate-not-trusted",
            Self::ValidationFailure => "validation-failure",
            Self::TlsaInvalid => "tlsa-invalid",
            Self::DnssecInvalid => "dnssec-invalid",
            Self::DaneRequired => "dane-required",
            Self::StsPolicyFetchError => "sts-policy-fetch-error",
            Self::StsPolicyInvalid => "sts-policy-invalid",
            Self::StsWebpkiInvalid => "sts-webpki-invalid",
            Self::Other(name) => name,
        }
    }
}

impl fmt::Display for ResultType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Report {
    /// Reads a report from JSON bytes, tolerating what real senders send (see the module docs
    /// and [`ReportWarningKind`]). Never panics.
    ///
    /// # Errors
    ///
    /// When `bytes` is not JSON, is not a JSON object, or lacks a usable `organization-name`,
    /// `report-id` or `date-range`; the error names the field.
    pub fn from_json(bytes: &[u8]) -> Result<ReadReport, ReportError> {
        read::read_report(bytes)
    }

    /// Writes the report as strict RFC 8460 JSON: RFC field names, counts as numbers, dates as
    /// RFC 3339 in UTC with `Z`, `mx-host` as an array (left out when empty), absent optional
    /// fields left out.
    pub fn to_json(&self) -> String {
        write::write_report(self)
    }

    /// The report's identity: equal for the same report delivered twice.
    pub fn identity(&self) -> ReportIdentity {
        ReportIdentity {
            organization_name: self.organization_name.clone(),
            report_id: self.report_id.clone(),
            start_unix_seconds: self.date_range.start.unix_seconds(),
            end_unix_seconds: self.date_range.end.unix_seconds(),
        }
    }
}
