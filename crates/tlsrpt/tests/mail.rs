//! The report mail reader against every public sample (`fixtures/public`, copied verbatim from
//! real senders' and other projects' test data) and the project's own mails for each way a
//! report arrives (`fixtures/mail`, written by `fixtures/mail/make.py`).

use mta_sts_tlsrpt::mail::{decode_body, decode_mail, read_mail};
use mta_sts_tlsrpt::report::{DEFAULT_MAX_DECOMPRESSED, ReportWarningKind};
use mta_sts_tlsrpt::{ReadReport, ReportError};

fn fixture(dir: &str, name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{dir}/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn mail(dir: &str, name: &str) -> (mta_sts_tlsrpt::mail::ReportMail, ReadReport) {
    decode_mail(&fixture(dir, name), DEFAULT_MAX_DECOMPRESSED)
        .unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// (successful, failed) summed over the report's policies.
fn totals(read: &ReadReport) -> (u64, u64) {
    read.report.policies.iter().fold((0, 0), |(ok, failed), p| {
        (
            ok + p.summary.total_successful_session_count,
            failed + p.summary.total_failure_session_count,
        )
    })
}

fn mail_warnings(read: &ReadReport) -> Vec<(&str, ReportWarningKind)> {
    read.warnings
        .iter()
        .filter(|w| w.path.starts_with("mail"))
        .map(|w| (w.path.as_str(), w.kind.clone()))
        .collect()
}

/// (file, organization-name, report-id, first policy-domain, successful, failed,
/// TLS-Report-Domain, Subject Report-ID)
type Expected = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    u64,
    u64,
    &'static str,
    Option<&'static str>,
);

const PUBLIC_MAILS: [Expected; 6] = [
    (
        "parsedmarc__google.com_smtp_tls_report.eml",
        "Google Inc.",
        "2024-09-03T00:00:00Z_cardinalhealth.ca",
        "cardinalhealth.ca",
        48,
        0,
        "cardinalhealth.ca",
        Some("2024.09.03T00.00.00Z+cardinalhealth.ca@google.com"),
    ),
    (
        "mail-auth__rpt01.eml",
        "Company-X",
        "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
        "company-y.example",
        5326,
        303,
        "example.net",
        Some("735ff.e317+bf22029@example.net"),
    ),
    (
        "mail-auth__rpt02.eml",
        "Google Inc.",
        "2020-01-01T00:00:00Z_example.com",
        "example.com",
        23,
        1,
        "example.net",
        Some("735ff.e317+bf22029@example.net"),
    ),
    (
        "mox__google-example.eml",
        "Google Inc.",
        "2022-09-15T00:00:00Z_test.xmox.nl",
        "test.xmox.nl",
        3,
        0,
        "test.xmox.nl",
        Some("2022.09.15T00.00.00Z+test.xmox.nl@google.com"),
    ),
    (
        "mox__microsoft.eml",
        "Microsoft Corporation",
        "133198585438131172+test.xmox.nl",
        "test.xmox.nl",
        2,
        0,
        "test.xmox.nl",
        Some("133198585438131172+test.xmox.nl"),
    ),
    (
        "email-report-processor__google-srs-forwarded.eml",
        "Google Inc.",
        "2023-02-02T00:00:00Z_blogreen.org",
        "blogreen.org",
        1,
        0,
        "blogreen.org",
        Some("2023.02.02T00.00.00Z+blogreen.org@google.com"),
    ),
];

#[test]
fn every_public_sample_mail_is_read() {
    for (name, org, report_id, domain, ok, failed, header_domain, subject_id) in PUBLIC_MAILS {
        let (mail, read) = mail("public", name);
        assert_eq!(read.report.organization_name, org, "{name}");
        assert_eq!(read.report.report_id, report_id, "{name}");
        assert_eq!(
            read.report.policies[0].policy.policy_domain, domain,
            "{name}"
        );
        assert_eq!(totals(&read), (ok, failed), "{name}");
        assert_eq!(mail.report_domain.as_deref(), Some(header_domain), "{name}");
        assert_eq!(mail.subject_report_id.as_deref(), subject_id, "{name}");
    }
}

#[test]
fn the_rfc_example_mail_disagrees_with_its_json_and_says_so() {
    // RFC 8460's example headers name example.net and another Report-ID than the JSON's.
    let (_, read) = mail("public", "mail-auth__rpt01.eml");
    let headers: Vec<_> = mail_warnings(&read)
        .into_iter()
        .map(|(path, kind)| match kind {
            ReportWarningKind::MailHeaderMismatch { header, .. } => (path, header),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        headers,
        [
            ("mail:TLS-Report-Domain", "TLS-Report-Domain"),
            ("mail:Subject", "Report-ID")
        ]
    );
    // Google's Subject carries another form of the report-id than its JSON (dots for dashes
    // and colons, `+domain@google.com`): one warning, and the JSON's value is kept.
    let (_, google) = mail("public", "parsedmarc__google.com_smtp_tls_report.eml");
    assert_eq!(mail_warnings(&google).len(), 1);
}

#[test]
fn every_public_sample_json_is_read_as_a_body() {
    let expected: [(&str, &str, u64, u64); 12] = [
        ("dmarc-report-viewer__google.json", "Google Inc.", 1, 0),
        (
            "dmarc-report-viewer__microsoft.json",
            "Microsoft Corporation",
            4,
            0,
        ),
        ("dmarc-report-viewer__no-contact.json", "server.com", 1, 0),
        ("dmarc-report-viewer__no-policy.json", "Google Inc.", 1, 0),
        (
            "dmarc-report-viewer__no_ip_and_mx.json",
            "Microsoft Corporation",
            0,
            3,
        ),
        (
            "email-report-processor__google-2022.json",
            "Google Inc.",
            2,
            0,
        ),
        ("mail-auth__rpt01.json", "Company-X", 5326, 303),
        ("mail-auth__rpt02.json", "Google Inc.", 23, 1),
        // Malformed (no policy-domain, an unknown policy-type): read with warnings.
        ("mail-auth__rpt03.json", "Google Inc.", 2, 0),
        ("parsedmarc__mail.ru.json", "Mail.ru", 0, 1),
        ("parsedmarc__rfc8460.json", "Company-X", 5326, 303),
        ("parsedmarc__smtp_tls.json", "Example Inc.", 0, 3),
    ];
    for (name, org, ok, failed) in expected {
        let read = decode_body(
            "application/json",
            &fixture("public", name),
            DEFAULT_MAX_DECOMPRESSED,
        )
        .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(read.report.organization_name, org, "{name}");
        assert_eq!(totals(&read), (ok, failed), "{name}");
    }
}

#[test]
fn a_public_mail_reads_the_same_as_its_json() {
    let (_, from_mail) = mail("public", "mail-auth__rpt01.eml");
    let from_json = decode_body(
        "application/json",
        &fixture("public", "mail-auth__rpt01.json"),
        DEFAULT_MAX_DECOMPRESSED,
    )
    .unwrap();
    assert_eq!(from_mail.report, from_json.report);
}

#[test]
fn multipart_report_with_tlsrpt_gzip_is_read() {
    let (mail, read) = mail("mail", "multipart-report-gzip.eml");
    assert_eq!(mail.attachment.content_type, "application/tlsrpt+gzip");
    assert_eq!(
        mail.attachment.filename.as_deref(),
        Some("google.example!example.net!1704758400!1704844799.json.gz")
    );
    assert_eq!(mail.submitter.as_deref(), Some("google.example"));
    assert_eq!(mail.from.as_deref(), Some("tlsrpt@google.example"));
    assert_eq!(
        mail.message_id.as_deref(),
        Some("2024-01-09T00:00:00Z_example.net.msg@google.example")
    );
    assert_eq!(read.report.report_id, "2024-01-09T00:00:00Z_example.net");
    assert_eq!(totals(&read), (0, 3));
    // The Subject's Report-ID has angle brackets the JSON lacks: not a mismatch.
    assert_eq!(mail_warnings(&read), []);
}

#[test]
fn bare_tlsrpt_gzip_body_is_read() {
    let (mail, read) = mail("mail", "bare-tlsrpt-gzip.eml");
    assert_eq!(mail.attachment.content_type, "application/tlsrpt+gzip");
    assert_eq!(totals(&read), (0, 3));
}

#[test]
fn bare_tlsrpt_json_body_in_quoted_printable_is_read() {
    let (mail, read) = mail("mail", "bare-tlsrpt-json-qp.eml");
    assert_eq!(mail.attachment.content_type, "application/tlsrpt+json");
    assert_eq!(read.report.organization_name, "Microsoft Corporation");
    assert_eq!(read.report.policies.len(), 2);
    assert_eq!(mail_warnings(&read), []);
}

#[test]
fn octet_stream_with_a_json_gz_name_after_an_html_part_is_read() {
    let (mail, read) = mail("mail", "html-then-octet-stream.eml");
    assert_eq!(mail.attachment.content_type, "application/octet-stream");
    assert_eq!(mail.attachment.filename.as_deref(), Some("report.json.gz"));
    assert_eq!(totals(&read), (0, 3));
}

#[test]
fn application_gzip_is_read() {
    let (mail, read) = mail("mail", "application-gzip.eml");
    assert_eq!(mail.attachment.content_type, "application/gzip");
    assert_eq!(read.report.organization_name, "Mail.ru");
    assert_eq!(mail.subject_report_id, None);
}

#[test]
fn application_zip_is_read() {
    let (mail, read) = mail("mail", "application-zip.eml");
    assert_eq!(mail.attachment.content_type, "application/zip");
    assert_eq!(read.report.organization_name, "Microsoft Corporation");
}

#[test]
fn a_report_forwarded_as_an_attachment_is_read() {
    let (_, forwarded) = mail("mail", "forwarded-as-attachment.eml");
    let (_, original) = mail("mail", "multipart-report-gzip.eml");
    assert_eq!(forwarded.report, original.report);
}

#[test]
fn headers_that_disagree_with_the_json_are_warnings_and_the_json_wins() {
    let (mail, read) = mail("mail", "header-mismatch.eml");
    assert_eq!(mail.report_domain.as_deref(), Some("other.example"));
    assert_eq!(read.report.policies[0].policy.policy_domain, "example.net");
    assert_eq!(read.report.report_id, "2024-01-09T00:00:00Z_example.net");
    assert_eq!(
        mail_warnings(&read),
        [
            (
                "mail:TLS-Report-Domain",
                ReportWarningKind::MailHeaderMismatch {
                    header: "TLS-Report-Domain",
                    value: "other.example".to_owned(),
                    report: "example.net".to_owned(),
                }
            ),
            (
                "mail:Subject",
                ReportWarningKind::MailHeaderMismatch {
                    header: "Report-ID",
                    value: "not-the-report-id".to_owned(),
                    report: "2024-01-09T00:00:00Z_example.net".to_owned(),
                }
            ),
        ]
    );
}

#[test]
fn a_mail_that_is_not_a_report_is_refused_with_its_parts_named() {
    let error = read_mail(
        &fixture("mail", "not-a-report.eml"),
        DEFAULT_MAX_DECOMPRESSED,
    )
    .unwrap_err();
    assert_eq!(
        error,
        ReportError::NotReportMail {
            reason: "no part is a TLS report (parts: text/plain)".to_owned()
        }
    );
    assert_eq!(
        error.to_string(),
        "mail is not a TLS report: no part is a TLS report (parts: text/plain)"
    );
}

#[test]
fn a_broken_gzip_part_is_refused_as_gzip() {
    let error = read_mail(
        &fixture("mail", "broken-gzip.eml"),
        DEFAULT_MAX_DECOMPRESSED,
    )
    .unwrap_err();
    assert!(matches!(error, ReportError::Gzip { .. }), "{error}");
}

#[test]
fn a_gzip_bomb_stops_at_the_limit() {
    let error = read_mail(&fixture("mail", "gzip-bomb.eml"), 1 << 20).unwrap_err();
    assert_eq!(error, ReportError::TooLarge { limit: 1 << 20 });
}

#[test]
fn a_zip_bomb_stops_at_the_limit() {
    let error = read_mail(&fixture("mail", "zip-bomb.eml"), 1 << 20).unwrap_err();
    assert_eq!(error, ReportError::TooLarge { limit: 1 << 20 });
}

#[test]
fn a_body_is_read_as_mail_only_when_its_type_says_so() {
    let bytes = fixture("mail", "bare-tlsrpt-gzip.eml");
    assert!(decode_body("message/rfc822", &bytes, DEFAULT_MAX_DECOMPRESSED).is_ok());
    assert!(matches!(
        decode_body("application/tlsrpt+gzip", &bytes, DEFAULT_MAX_DECOMPRESSED),
        Err(ReportError::NotJson { .. })
    ));
}

#[test]
fn a_zip_file_body_is_read() {
    let read = decode_body(
        "application/zip",
        &fixture("mail", "microsoft.zip"),
        DEFAULT_MAX_DECOMPRESSED,
    )
    .unwrap();
    let (_, from_mail) = mail("mail", "application-zip.eml");
    assert_eq!(read.report, from_mail.report);
}

/// Regression (fuzz target `tlsrpt_mail`): mail-parser 0.11.9 panics on this mangled forwarded
/// mail in builds with debug assertions (`debug_assert!` "Invalid part ID" in
/// `parsers/message.rs`). The reader turns that into a refusal with a reason; without debug
/// assertions mail-parser recovers what it can instead, and the reader goes on. Never a panic.
#[test]
fn a_mail_the_mime_parser_panics_on_is_refused_with_a_reason() {
    let bytes = fixture("mail-regressions", "mail-parser-invalid-part-id.eml");
    let outcome = read_mail(&bytes, DEFAULT_MAX_DECOMPRESSED);
    if cfg!(debug_assertions) {
        let Err(ReportError::NotReportMail { reason }) = &outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(
            reason,
            "its MIME structure could not be parsed (the MIME parser failed on it)"
        );
    }
    // The same body as the store reads it.
    let _ = decode_body("message/rfc822", &bytes, DEFAULT_MAX_DECOMPRESSED);
}
