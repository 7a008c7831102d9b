//! What reading a report can refuse ([`ReportError`]) and what it tolerates
//! ([`ReportWarning`]).

use std::fmt;

/// The longest piece of sender text echoed in a warning or an error; the rest is cut, so a
/// hostile 10 MB string never ends up in a log line.
const MAX_ECHOED_CHARS: usize = 64;

/// Why a report could not be read at all. Everything short of these is read with warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReportError {
    /// The bytes are not JSON (or not I-JSON: a number beyond the range of a double, invalid
    /// UTF-8, nesting deeper than 128 levels).
    NotJson {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What the JSON parser found, with its position.
        reason: String,
    },
    /// The JSON document is not an object.
    NotAnObject {
        /// The JSON type found instead, such as `an array`.
        found: &'static str,
    },
    /// A field the report's identity needs is absent or `null`.
    MissingField {
        /// JSON path of the field, such as `date-range.end-datetime`.
        path: &'static str,
    },
    /// A field the report's identity needs is an empty string.
    EmptyField {
        /// JSON path of the field.
        path: &'static str,
    },
    /// A field the report's identity needs has the wrong JSON type.
    WrongType {
        /// JSON path of the field.
        path: &'static str,
        /// The JSON type RFC 8460 asks for.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A `date-range` value is not an RFC 3339 date-time (with or without zone).
    InvalidDate {
        /// JSON path of the field.
        path: &'static str,
        /// The value sent (cut after 64 characters).
        value: String,
    },
    /// The body started with the gzip magic bytes but is not valid gzip.
    Gzip {
        /// What the decompressor found.
        reason: String,
    },
    /// The JSON document (after decompression) is larger than the limit given to
    /// [`decode`](super::decode): an HTTP intake answers 413.
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The JSON has so many values that reading it would take more than `limit` bytes of
    /// memory (see [`MAX_TREE_BYTES`](super::MAX_TREE_BYTES)); real reports are far smaller. An
    /// HTTP intake answers 413.
    TooComplex {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body is a zip archive that cannot be read.
    Zip {
        /// What the archive reader found.
        reason: String,
    },
    /// The body was given as a mail, but no TLS report could be found in it.
    NotReportMail {
        /// What was found instead (the parts of the message).
        reason: String,
    },
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotJson { reason, .. } => write!(f, "TLS report is not JSON: {reason}"),
            Self::NotAnObject { found } => {
                write!(f, "TLS report is {found}, not a JSON object")
            }
            Self::MissingField { path } => write!(
                f,
                "TLS report has no \"{path}\"; a report needs organization-name, report-id and \
                 date-range to be told apart from others"
            ),
            Self::EmptyField { path } => write!(
                f,
                "TLS report has an empty \"{path}\"; a report needs organization-name, \
                 report-id and date-range to be told apart from others"
            ),
            Self::WrongType {
                path,
                expected,
                found,
            } => write!(
                f,
                "TLS report field \"{path}\" is {found}; RFC 8460 §4.4 wants {expected}"
            ),
            Self::InvalidDate { path, value } => write!(
                f,
                "TLS report field \"{path}\" is {value:?}, not an RFC 3339 date-time such as \
                 \"2024-01-09T00:00:00Z\""
            ),
            Self::Gzip { reason } => {
                write!(
                    f,
                    "TLS report starts as gzip but cannot be decompressed: {reason}"
                )
            }
            Self::TooLarge { limit } => {
                write!(
                    f,
                    "TLS report is larger than {limit} bytes once decompressed"
                )
            }
            Self::TooComplex { limit } => write!(
                f,
                "TLS report has too many JSON values: reading it would take more than {} MiB",
                limit / (1024 * 1024)
            ),
            Self::Zip { reason } => {
                write!(
                    f,
                    "TLS report is a zip archive that cannot be read: {reason}"
                )
            }
            Self::NotReportMail { reason } => {
                write!(f, "mail is not a TLS report: {reason}")
            }
        }
    }
}

impl std::error::Error for ReportError {}

/// A deviation from RFC 8460 that [`Report::from_json`](super::Report::from_json) tolerated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportWarning {
    /// JSON path of the value concerned, such as `policies[1].summary.total-failure-session-count`;
    /// `$` for the document as a whole.
    pub path: String,
    /// What was tolerated, and how it was read.
    pub kind: ReportWarningKind,
}

impl fmt::Display for ReportWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.kind)
    }
}

/// The catalogue of tolerated deviations. Each says what the reader did instead of failing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReportWarningKind {
    /// The document started with a UTF-8 byte order mark, which JSON forbids; it was skipped.
    ByteOrderMark,
    /// A field RFC 8460 asks for is absent or `null`: `contact-info` was read as none,
    /// `policies` as empty, a count as 0.
    MissingField,
    /// A value had the wrong JSON type and was ignored (a count was read as 0, a string field as
    /// none, an array element was dropped).
    WrongType {
        /// The JSON type RFC 8460 asks for.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A count was a string of digits such as `"12"`; it was read as the number.
    CountAsString,
    /// A count was negative, fractional, too large for 64 bits, or a string that is not a
    /// number; it was read as 0.
    InvalidCount {
        /// The value sent (cut after 64 characters).
        value: String,
    },
    /// `mx-host` was one string instead of an array of strings; it was read as one pattern.
    MxHostAsString,
    /// `policy-string` was one string instead of an array of strings; it was read as one entry.
    PolicyStringAsString,
    /// A `policy-string` entry was itself a JSON array of strings (Microsoft's TLSA records);
    /// its strings were read as the entries.
    PolicyStringJsonInString,
    /// A TLSA `policy-string` entry held several records separated by `;` (as RFC 8460 §4's
    /// overview words it); it was read as one entry per record.
    TlsaRecordsSemicolonSeparated,
    /// A date-time had no zone offset; it was read as UTC.
    DateWithoutZone,
    /// `end-datetime` is before `start-datetime`; both were kept as sent.
    DateRangeReversed,
    /// A string held NUL characters (`\u0000`), which mean nothing in a report and which
    /// databases refuse in text; each was replaced with U+FFFD.
    NulCharacter,
    /// `policy-type` is not one of RFC 8460's; it was kept as sent.
    UnknownPolicyType {
        /// The value sent.
        value: String,
    },
    /// `result-type` is not in the registry this crate knows; it was kept as sent.
    UnknownResultType {
        /// The value sent.
        value: String,
    },
    /// A `policies` entry could not be read and was left out; the rest of the report was read.
    PolicySkipped {
        /// What was wrong at the warning's path.
        reason: SkipReason,
    },
    /// A `failure-details` entry could not be read and was left out; the rest of its policy was
    /// read.
    FailureDetailSkipped {
        /// What was wrong at the warning's path.
        reason: SkipReason,
    },
    /// More than [`MAX_WARNINGS`](super::MAX_WARNINGS) warnings: the rest were counted, not kept.
    TooManyWarnings {
        /// How many warnings were left out.
        omitted: usize,
    },
    /// A header of the report mail disagrees with the report's JSON; the JSON was kept.
    MailHeaderMismatch {
        /// The header: `TLS-Report-Domain` or `Report-ID` (of the Subject).
        header: &'static str,
        /// The header's value (cut after 64 characters).
        value: String,
        /// The report's value (cut after 64 characters).
        report: String,
    },
    /// The mail had more parts that looked like reports; only the likeliest was read.
    OtherReportParts {
        /// How many parts were left unread.
        count: usize,
    },
}

/// Why an entry was left out, about the value at the warning's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The entry is not a JSON object.
    NotAnObject,
    /// A field the entry cannot be used without is absent or `null`.
    MissingField,
    /// A field the entry cannot be used without is an empty string.
    EmptyField,
    /// A field the entry cannot be used without has the wrong JSON type.
    WrongType {
        /// The JSON type RFC 8460 asks for.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnObject => f.write_str("not a JSON object"),
            Self::MissingField => f.write_str("missing"),
            Self::EmptyField => f.write_str("empty"),
            Self::WrongType { expected, found } => write!(f, "{found} instead of {expected}"),
        }
    }
}

impl fmt::Display for ReportWarningKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ByteOrderMark => f.write_str("byte order mark before the JSON; skipped"),
            Self::MissingField => f.write_str("missing; read as empty or 0"),
            Self::WrongType { expected, found } => {
                write!(f, "{found} instead of {expected}; ignored")
            }
            Self::CountAsString => f.write_str("count given as a string; read as a number"),
            Self::InvalidCount { value } => {
                write!(
                    f,
                    "{value:?} is not a count (a non-negative integer); read as 0"
                )
            }
            Self::MxHostAsString => {
                f.write_str("a string instead of an array of strings; read as one pattern")
            }
            Self::PolicyStringAsString => {
                f.write_str("a string instead of an array of strings; read as one entry")
            }
            Self::PolicyStringJsonInString => {
                f.write_str("a JSON array inside a string; read as its entries")
            }
            Self::TlsaRecordsSemicolonSeparated => {
                f.write_str("TLSA records separated by ';'; read as one entry each")
            }
            Self::DateWithoutZone => f.write_str("date-time without zone; read as UTC"),
            Self::DateRangeReversed => {
                f.write_str("end-datetime is before start-datetime; kept as sent")
            }
            Self::NulCharacter => f.write_str("NUL characters replaced with U+FFFD"),
            Self::UnknownPolicyType { value } => {
                write!(f, "unknown policy-type {value:?}; kept as sent")
            }
            Self::UnknownResultType { value } => {
                write!(f, "unknown result-type {value:?}; kept as sent")
            }
            Self::PolicySkipped { reason } => write!(f, "{reason}; policy left out"),
            Self::FailureDetailSkipped { reason } => {
                write!(f, "{reason}; failure detail left out")
            }
            Self::TooManyWarnings { omitted } => {
                write!(f, "{omitted} more warnings left out")
            }
            Self::MailHeaderMismatch {
                header,
                value,
                report,
            } => write!(
                f,
                "the mail's {header} is {value:?} but the report says {report:?}; the report's value is kept"
            ),
            Self::OtherReportParts { count } => write!(
                f,
                "{count} more parts of the mail looked like reports and were not read"
            ),
        }
    }
}

/// `text`, cut after [`MAX_ECHOED_CHARS`] characters (marked with `…`).
pub(crate) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(MAX_ECHOED_CHARS) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or_default()),
        None => text.to_owned(),
    }
}
