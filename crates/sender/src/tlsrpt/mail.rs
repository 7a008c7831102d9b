//! The report mail of RFC 8460 §5.3: `multipart/report; report-type="tlsrpt"` with a short
//! human-readable part and the gzipped report as `application/tlsrpt+gzip`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mta_sts_store::OutgoingReport;
use mta_sts_tlsrpt::report::Timestamp;

use super::daily::{Reporter, report_file_name};

/// Writes the report mail from `from` to `to` (bare addresses), sent at `now` (UTC seconds).
///
/// The headers are those RFC 8460 §5.3 asks for: `TLS-Report-Domain`, `TLS-Report-Submitter`,
/// the Subject `Report Domain: … Submitter: … Report-ID: <…>`, plus `TLS-Required: No`
/// (RFC 8689), so that delivering a report about TLS failures never fails on TLS, and
/// `Auto-Submitted: auto-generated` (RFC 3834), so that nobody answers it.
pub fn report_mail(
    reporter: &Reporter,
    report: &OutgoingReport,
    gzip: &[u8],
    from: &str,
    to: &[String],
    now: i64,
) -> Vec<u8> {
    let domain = header_text(&report.scope.domain);
    let submitter = header_text(&reporter.submitter);
    let report_id = header_text(&report.report_id);
    let boundary = format!("tlsrpt-{:016x}", fnv1a(report.report_id.as_bytes()));
    let file_name = header_text(&report_file_name(reporter, report)).replace('"', "");
    let mut mail = String::with_capacity(gzip.len() * 4 / 3 + 1024);
    let mut header = |name: &str, value: &str| {
        mail.push_str(name);
        mail.push_str(": ");
        mail.push_str(value);
        mail.push_str("\r\n");
    };
    header("From", &header_text(from));
    header(
        "To",
        &to.iter()
            .map(|address| header_text(address))
            .collect::<Vec<_>>()
            .join(", "),
    );
    header("Date", &rfc5322_date(now));
    header(
        "Subject",
        &format!("Report Domain: {domain} Submitter: {submitter} Report-ID: <{report_id}>"),
    );
    header("Message-ID", &format!("<{report_id}>"));
    header("MIME-Version", "1.0");
    header("TLS-Report-Domain", &domain);
    header("TLS-Report-Submitter", &submitter);
    header("TLS-Required", "No");
    header("Auto-Submitted", "auto-generated");
    header(
        "Content-Type",
        &format!("multipart/report; report-type=\"tlsrpt\"; boundary=\"{boundary}\""),
    );
    mail.push_str("\r\n");
    mail.push_str("This is a multipart message in MIME format.\r\n\r\n");
    mail.push_str(&format!("--{boundary}\r\n"));
    mail.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
    mail.push_str(&format!(
        "This is an aggregate TLS report (RFC 8460) from {submitter} for {domain}, \
         covering {}.\r\n\r\n",
        report.scope.day
    ));
    mail.push_str(&format!("--{boundary}\r\n"));
    mail.push_str("Content-Type: application/tlsrpt+gzip\r\n");
    mail.push_str("Content-Transfer-Encoding: base64\r\n");
    mail.push_str(&format!(
        "Content-Disposition: attachment; filename=\"{file_name}\"\r\n\r\n"
    ));
    let encoded = STANDARD.encode(gzip);
    for line in encoded.as_bytes().chunks(76) {
        mail.push_str(std::str::from_utf8(line).unwrap_or_default());
        mail.push_str("\r\n");
    }
    mail.push_str(&format!("--{boundary}--\r\n"));
    mail.into_bytes()
}

/// Text safe inside a header: no line breaks or other control characters.
pub fn header_text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A boundary that depends on the report only, so the same report writes the same mail.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `10 Jan 2024 00:05:00 +0000` (RFC 5322 §3.3; the day of the week is optional).
pub fn rfc5322_date(unix_seconds: i64) -> String {
    let text = Timestamp::from_unix_seconds(unix_seconds)
        .or_else(|| Timestamp::from_unix_seconds(0))
        .map(|timestamp| timestamp.to_string())
        .unwrap_or_default();
    // `YYYY-MM-DDTHH:MM:SSZ`
    let part = |range: std::ops::Range<usize>| text.get(range).unwrap_or("00");
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = part(5..7)
        .parse::<usize>()
        .ok()
        .and_then(|month| MONTHS.get(month.wrapping_sub(1)))
        .unwrap_or(&"Jan");
    format!(
        "{} {month} {} {} +0000",
        part(8..10),
        part(0..4),
        part(11..19)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_is_rfc5322() {
        assert_eq!(rfc5322_date(1_704_845_100), "10 Jan 2024 00:05:00 +0000");
    }

    #[test]
    fn header_text_cannot_break_a_header() {
        assert_eq!(header_text("a\r\nBcc: x"), "a  Bcc: x");
    }
}
