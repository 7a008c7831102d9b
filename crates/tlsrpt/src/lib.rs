//! RFC 8460 (SMTP TLS Reporting) model: the `_smtp._tls` TXT record and TLS reports.
//!
//! Everything here works on bytes already in memory: no sockets, no database. Readers never
//! panic on what a sender or a DNS server hands them, and size what they read by named caps.
//!
//! - [`TlsRptRecord`] (in `record.rs`): the `_smtp._tls` TXT record, one record
//!   ([`TlsRptRecord::parse`], [`TlsRptRecord::lint`] with [`Diagnostic`]s) or the whole RRset a
//!   sender sees ([`TlsRptRecord::lint_rrset`]); [`ReportUri`] is one `rua` destination
//!   (`mailto:` or `https:`), [`UriProblem`] why one cannot be used.
//! - [`report`]: the report reader. [`report::decode`] takes a body as it arrives (gzip or JSON,
//!   whatever the label says; decompression capped), [`Report::from_json`] reads the JSON
//!   leniently, as real senders write it, and lists what it tolerated in
//!   [`ReadReport::warnings`]; [`Report::to_json`] writes strict RFC 8460 JSON;
//!   [`ReportIdentity`] is what makes two deliveries the same report;
//!   [`report::ReportBuilder`] adds up a UTC day ([`report::UtcDay`]) of sessions into the
//!   report a sender sends.
//! - [`mail`]: report mail (RFC 8460 §5.3) as senders really send it: [`mail::read_mail`] finds
//!   the report in the MIME message, [`mail::decode_mail`] reads it too, [`mail::decode_body`]
//!   reads whatever body the store keeps (mail, zip, gzip or JSON).
//!
//! ```
//! use mta_sts_tlsrpt::{ReportUri, TlsRptRecord, report};
//!
//! let record = TlsRptRecord::parse(b"v=TLSRPTv1; rua=mailto:tlsrpt@example.com").unwrap();
//! assert_eq!(record.rua, [ReportUri::Mailto("mailto:tlsrpt@example.com".into())]);
//!
//! let body = br#"{"organization-name": "Example Inc.", "report-id": "r1",
//!   "date-range": {"start-datetime": "2024-01-09T00:00:00Z", "end-datetime": "2024-01-09T23:59:59Z"},
//!   "contact-info": "tls@example.net", "policies": []}"#;
//! let read = report::decode(body, report::DEFAULT_MAX_DECOMPRESSED)?;
//! assert_eq!(read.report.identity().report_id, "r1");
//! assert!(read.warnings.is_empty());
//! # Ok::<(), report::ReportError>(())
//! ```
//!
//! [`Diagnostic`]: mta_sts_policy::Diagnostic
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used, clippy::indexing_slicing)]

pub mod mail;
mod record;
pub mod report;

pub use record::{ReportUri, TLSRPT_RECORD, TlsRptRecord, UriProblem};
pub use report::{
    PolicyType, ReadReport, Report, ReportError, ReportIdentity, ReportWarning, ReportWarningKind,
    ResultType,
};
