//! RFC 8460 (SMTP TLS Reporting) model: the `_smtp._tls` TXT record and TLS reports.
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
