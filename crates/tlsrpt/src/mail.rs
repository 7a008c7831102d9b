//! Report mail (RFC 8460 §5.3) as real senders send it: MIME extraction, no network.
//!
//! [`read_mail`] finds the report in a message: the `application/tlsrpt+gzip` or `+json` part
//! of a `multipart/report; report-type=tlsrpt`, or what senders send instead (a bare report
//! body, `application/gzip`, `application/octet-stream` or `application/zip` with a
//! `.json.gz`/`.zip` name, a forwarded message with the report inside). The MIME work is
//! `mail-parser`'s; every decompression step is capped. [`decode_mail`] then reads the report
//! and adds a warning where the mail's headers (`TLS-Report-Domain`, the Subject's
//! `Report-ID`) disagree with the JSON, which wins. [`decode_body`] reads any body the store
//! keeps: a mail, a zip, gzip or JSON.
//!
//! ```
//! use mta_sts_tlsrpt::mail::decode_mail;
//!
//! let mail = b"From: tlsrpt@mail.example\r\n\
//! TLS-Report-Domain: example.com\r\n\
//! Subject: Report Domain: example.com Submitter: mail.example Report-ID: <r1@mail.example>\r\n\
//! Content-Type: application/tlsrpt+json\r\n\r\n\
//! {\"organization-name\": \"Example\", \"report-id\": \"r1@mail.example\",\
//!  \"date-range\": {\"start-datetime\": \"2024-01-09T00:00:00Z\",\
//!                 \"end-datetime\": \"2024-01-09T23:59:59Z\"},\
//!  \"contact-info\": \"tls@mail.example\", \"policies\": []}";
//! let (mail, read) = decode_mail(mail, 1 << 20)?;
//! assert_eq!(mail.report_domain.as_deref(), Some("example.com"));
//! assert_eq!(mail.subject_report_id.as_deref(), Some("r1@mail.example"));
//! assert_eq!(read.report.report_id, "r1@mail.example");
//! # Ok::<(), mta_sts_tlsrpt::ReportError>(())
//! ```

use std::borrow::Cow;
use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use crate::report::decode::read_capped;
use crate::report::{
    ReadReport, Report, ReportError, ReportWarning, ReportWarningKind, decompress,
};

/// The largest message [`read_mail`] parses. Report mails are a few kilobytes; a message past
/// this is not a report from a well-behaved sender.
pub const MAX_MAIL_SIZE: usize = 32 * 1024 * 1024;

/// How deep forwarded messages (`message/rfc822` inside `message/rfc822`) are followed.
const MAX_NESTING: usize = 4;

/// The most entries of a zip archive looked at: a report archive holds one file.
const MAX_ZIP_ENTRIES: usize = 16;

/// Every zip archive starts with a local file header (PKWARE APPNOTE §4.3.7).
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// What a report mail says about itself, and the report body found in it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportMail {
    /// The `TLS-Report-Domain` header (RFC 8460 §5.3), trimmed.
    pub report_domain: Option<String>,
    /// The `TLS-Report-Submitter` header, trimmed.
    pub submitter: Option<String>,
    /// The `Report-ID` in the Subject, without its angle brackets.
    pub subject_report_id: Option<String>,
    /// The `Message-ID`, without angle brackets.
    pub message_id: Option<String>,
    /// The `From` address.
    pub from: Option<String>,
    /// The report: the part's declared type and file name, and its JSON once decompressed.
    pub attachment: ReportAttachment,
    /// How many other parts also looked like reports (left unread: RFC 8460 §5.3 puts one
    /// report in a mail).
    pub other_candidates: usize,
}

/// The report part of a mail.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportAttachment {
    /// Its `Content-Type`, lowercased, without parameters.
    pub content_type: String,
    /// Its file name, when it has one.
    pub filename: Option<String>,
    /// The report JSON, decompressed (gzip or zip) within the size limit.
    pub json: Vec<u8>,
}

/// Finds the report in a mail and decompresses it (each step capped at `max_len` bytes).
///
/// # Errors
///
/// [`ReportError::NotReportMail`] when the bytes are not a MIME message or hold no report
/// part (the reason lists the parts seen); [`ReportError::Gzip`], [`ReportError::Zip`] or
/// [`ReportError::TooLarge`] when the report part does not decompress within the limit. A
/// message the MIME parser fails on (it panics on some malformed structures) is
/// [`ReportError::NotReportMail`] too, never a panic.
pub fn read_mail(bytes: &[u8], max_len: usize) -> Result<ReportMail, ReportError> {
    if bytes.len() > MAX_MAIL_SIZE {
        return Err(ReportError::TooLarge {
            limit: MAX_MAIL_SIZE,
        });
    }
    // mail-parser 0.11 asserts its own invariants on some malformed MIME (a `debug_assert!`
    // on a part it cannot place): a panic there is this mail's problem, not the run's.
    catch_unwind(AssertUnwindSafe(|| read_parsed(bytes, max_len))).unwrap_or_else(|_| {
        Err(not_report(
            "its MIME structure could not be parsed (the MIME parser failed on it)",
        ))
    })
}

fn read_parsed(bytes: &[u8], max_len: usize) -> Result<ReportMail, ReportError> {
    let message = MessageParser::default()
        .parse(bytes)
        .filter(|message| !message.headers().is_empty())
        .ok_or_else(|| not_report("it is not a MIME message (no header fields)"))?;
    let mut candidates = Vec::new();
    let mut seen = Vec::new();
    collect_candidates(&message, 0, &mut candidates, &mut seen);
    candidates.sort_by_key(|candidate| candidate.rank);
    let mut candidates = candidates.into_iter();
    let Some(best) = candidates.next() else {
        let parts = if seen.is_empty() {
            "no parts".to_owned()
        } else {
            seen.join(", ")
        };
        return Err(not_report(&format!(
            "no part is a TLS report (parts: {parts})"
        )));
    };
    let json = body_json(&best.bytes, max_len)?.into_owned();
    Ok(ReportMail {
        report_domain: header_text(&message, "TLS-Report-Domain"),
        submitter: header_text(&message, "TLS-Report-Submitter"),
        subject_report_id: message.subject().and_then(subject_report_id),
        message_id: message.message_id().map(str::to_owned),
        from: message
            .from()
            .and_then(|from| from.first())
            .and_then(|address| address.address())
            .map(str::to_owned),
        attachment: ReportAttachment {
            content_type: best.content_type,
            filename: best.filename,
            json,
        },
        other_candidates: candidates.len(),
    })
}

/// Reads the report in a mail: [`read_mail`], then [`Report::from_json`], plus a warning for
/// each header that disagrees with the JSON (the JSON wins) and for other report parts.
///
/// # Errors
///
/// Those of [`read_mail`] and [`Report::from_json`].
pub fn decode_mail(bytes: &[u8], max_len: usize) -> Result<(ReportMail, ReadReport), ReportError> {
    let mail = read_mail(bytes, max_len)?;
    let mut read = Report::from_json(&mail.attachment.json)?;
    let report = &read.report;
    let mut warnings = Vec::new();
    if let Some(domain) = &mail.report_domain
        && !report.policies.is_empty()
        && !report
            .policies
            .iter()
            .any(|p| same_domain(&p.policy.policy_domain, domain))
    {
        warnings.push(ReportWarning {
            path: "mail:TLS-Report-Domain".to_owned(),
            kind: ReportWarningKind::MailHeaderMismatch {
                header: "TLS-Report-Domain",
                value: crate::report::excerpt(domain),
                report: crate::report::excerpt(
                    &report
                        .policies
                        .first()
                        .map_or(String::new(), |p| p.policy.policy_domain.clone()),
                ),
            },
        });
    }
    if let Some(id) = &mail.subject_report_id
        && id != &report.report_id
        && id != report.report_id.trim_matches(['<', '>'])
    {
        warnings.push(ReportWarning {
            path: "mail:Subject".to_owned(),
            kind: ReportWarningKind::MailHeaderMismatch {
                header: "Report-ID",
                value: crate::report::excerpt(id),
                report: crate::report::excerpt(&report.report_id),
            },
        });
    }
    if mail.other_candidates > 0 {
        warnings.push(ReportWarning {
            path: "mail".to_owned(),
            kind: ReportWarningKind::OtherReportParts {
                count: mail.other_candidates,
            },
        });
    }
    read.warnings.extend(warnings);
    Ok((mail, read))
}

/// Reads any report body as the store keeps it: a mail when `content_type` is
/// `message/rfc822`, else by its bytes: a zip archive, gzip, or JSON.
///
/// # Errors
///
/// Those of [`decode_mail`], [`decompress`] and [`Report::from_json`].
pub fn decode_body(
    content_type: &str,
    body: &[u8],
    max_len: usize,
) -> Result<ReadReport, ReportError> {
    if is_mail_type(content_type) {
        return decode_mail(body, max_len).map(|(_, read)| read);
    }
    Report::from_json(&body_json(body, max_len)?)
}

/// Whether a content type names a mail message (`message/rfc822`, any case, any parameters).
pub fn is_mail_type(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("message/rfc822"))
}

/// The JSON of a body: unzipped when it is a zip archive, gunzipped when gzip, else itself.
///
/// # Errors
///
/// [`ReportError::Zip`], [`ReportError::Gzip`], [`ReportError::TooLarge`].
pub fn body_json(body: &[u8], max_len: usize) -> Result<Cow<'_, [u8]>, ReportError> {
    if body.starts_with(ZIP_MAGIC) {
        let inner = unzip(body, max_len)?;
        // A zip holding a .json.gz: one more capped step.
        return Ok(Cow::Owned(decompress(&inner, max_len)?.into_owned()));
    }
    decompress(body, max_len)
}

/// The first file of a zip archive that looks like a report (a `.json` or `.gz` name, else
/// the first file), read up to `max_len` bytes whatever the archive declares.
fn unzip(body: &[u8], max_len: usize) -> Result<Vec<u8>, ReportError> {
    let zip_error = |error: zip::result::ZipError| ReportError::Zip {
        reason: error.to_string(),
    };
    let mut archive = zip::ZipArchive::new(Cursor::new(body)).map_err(zip_error)?;
    let entries = archive.len().min(MAX_ZIP_ENTRIES);
    let mut chosen = None;
    for index in 0..entries {
        let entry = archive.by_index_raw(index).map_err(zip_error)?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().map_err(zip_error)?.to_ascii_lowercase();
        if name.ends_with(".json") || name.ends_with(".gz") {
            chosen = Some(index);
            break;
        }
        chosen.get_or_insert(index);
    }
    let index = chosen.ok_or_else(|| ReportError::Zip {
        reason: "the archive holds no file".to_owned(),
    })?;
    let entry = archive.by_index(index).map_err(zip_error)?;
    read_capped(entry, max_len, |reason| ReportError::Zip { reason })
}

/// A part that may hold the report; lower rank is likelier.
struct Candidate {
    rank: u8,
    content_type: String,
    filename: Option<String>,
    bytes: Vec<u8>,
}

fn collect_candidates(
    message: &Message<'_>,
    depth: usize,
    candidates: &mut Vec<Candidate>,
    seen: &mut Vec<String>,
) {
    for part in &message.parts {
        let content_type = part.content_type().map_or_else(
            || "text/plain".to_owned(),
            |ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
                None => ct.ctype().to_ascii_lowercase(),
            },
        );
        let bytes: &[u8] = match &part.body {
            PartType::Multipart(_) => continue,
            PartType::Message(inner) => {
                if depth < MAX_NESTING {
                    collect_candidates(inner, depth + 1, candidates, seen);
                }
                continue;
            }
            PartType::Text(text) | PartType::Html(text) => text.as_bytes(),
            PartType::Binary(bytes) | PartType::InlineBinary(bytes) => bytes,
        };
        let filename = part.attachment_name().map(str::to_owned);
        if seen.len() < 8 {
            seen.push(match &filename {
                Some(name) => format!("{content_type} {:?}", crate::report::excerpt(name)),
                None => content_type.clone(),
            });
        }
        if let Some(rank) = rank(&content_type, filename.as_deref(), bytes) {
            candidates.push(Candidate {
                rank,
                content_type,
                filename,
                bytes: bytes.to_vec(),
            });
        }
    }
}

/// How likely a part is the report, from its type, name and first bytes; `None` when not.
fn rank(content_type: &str, filename: Option<&str>, bytes: &[u8]) -> Option<u8> {
    let name = filename.map(str::to_ascii_lowercase).unwrap_or_default();
    let report_name = [".json", ".json.gz", ".gz", ".zip", ".json.zip"]
        .iter()
        .any(|ext| name.ends_with(ext));
    let sniffed = bytes.starts_with(b"\x1f\x8b")
        || bytes.starts_with(ZIP_MAGIC)
        || looks_like_report_json(bytes);
    match content_type {
        "application/tlsrpt+gzip" | "application/tlsrpt+json" | "application/tlsrpt" => Some(0),
        "application/gzip"
        | "application/x-gzip"
        | "application/zip"
        | "application/x-zip-compressed"
        | "application/json"
        | "application/octet-stream"
            if report_name || sniffed =>
        {
            Some(1)
        }
        _ if report_name && sniffed => Some(2),
        // A report pasted as the text of a mail.
        "text/plain" if looks_like_report_json(bytes) => Some(3),
        _ => None,
    }
}

fn looks_like_report_json(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let head = bytes.get(start..).unwrap_or_default();
    head.starts_with(b"{")
        && head
            .get(..head.len().min(4096))
            .is_some_and(|h| h.windows(17).any(|w| w == b"organization-name"))
}

fn header_text(message: &Message<'_>, name: &str) -> Option<String> {
    message
        .header_raw(name)
        .map(|value| value.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|value| !value.is_empty())
}

/// The `Report-ID` of a Subject such as `Report Domain: example.net Submitter: mail.example
/// Report-ID: <735ff.e317@mail.example>` (RFC 8460 §5.3), without angle brackets.
fn subject_report_id(subject: &str) -> Option<String> {
    let lower = subject.to_ascii_lowercase();
    let at = lower.find("report-id:")?;
    let rest = subject.get(at + "report-id:".len()..)?.trim();
    let id = rest.split_whitespace().next()?.trim_matches(['<', '>']);
    (!id.is_empty()).then(|| id.to_owned())
}

fn same_domain(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

fn not_report(reason: &str) -> ReportError {
    ReportError::NotReportMail {
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_report_id_is_read_with_or_without_brackets() {
        assert_eq!(
            subject_report_id("Report Domain: a.example Submitter: b Report-ID: <x@b>").as_deref(),
            Some("x@b")
        );
        assert_eq!(
            subject_report_id("Report Domain: a Submitter: b Report-ID: 133198585438131172")
                .as_deref(),
            Some("133198585438131172")
        );
        assert_eq!(subject_report_id("Report Domain: a"), None);
        assert_eq!(subject_report_id("Report-ID: <>"), None);
    }

    #[test]
    fn bytes_that_are_not_mail_are_refused_with_a_reason() {
        let error = read_mail(b"\x00\x01\x02", 1 << 20).unwrap_err();
        assert!(
            matches!(error, ReportError::NotReportMail { .. }),
            "{error}"
        );
    }
}
