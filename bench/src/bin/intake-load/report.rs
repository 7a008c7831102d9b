//! The reports the load generator posts: RFC 8460 JSON shaped like what Google and Microsoft
//! send (an STS and a TLSA policy, failure details), gzip-compressed as `application/tlsrpt+gzip`.

use std::io::Write as _;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

/// Reporters the generated reports rotate through, so the store sees several organizations.
const REPORTERS: [(&str, &str); 3] = [
    ("Google Inc.", "smtp-tls-reporting@google.com"),
    ("Microsoft Corporation", "tlsrpt-noreply@microsoft.com"),
    ("Example Mail AG", "tlsrpt@mail.example.net"),
];

/// The report-id of report `seq` of client `client` in run `run`: unique across clients and
/// runs, so every report is new to the store (a duplicate is answered 200 without a write,
/// which would flatter the figures).
pub fn report_id(run: &str, client: usize, seq: u64) -> String {
    format!("{run}-{client}-{seq}_example.com")
}

/// The JSON of report `seq` of client `client` in run `run`, about 1.5 KB.
pub fn report_json(run: &str, client: usize, seq: u64) -> String {
    let report_id = report_id(run, client, seq);
    let (organization, contact) = REPORTERS[client % REPORTERS.len()];
    let day = 1 + seq % 28;
    let successful = 1_000 + seq % 9_000;
    let (expired, mismatch) = (1 + seq % 7, 1 + seq % 3);
    let failed = expired + mismatch;
    let last_octet = 1 + client % 250;
    format!(
        r#"{{"organization-name":"{organization}","date-range":{{"start-datetime":"2026-02-{day:02}T00:00:00Z","end-datetime":"2026-02-{day:02}T23:59:59Z"}},"contact-info":"{contact}","report-id":"{report_id}","policies":[{{"policy":{{"policy-type":"sts","policy-string":["version: STSv1","mode: enforce","mx: mx1.example.com","mx: mx2.example.com","max_age: 604800"],"policy-domain":"example.com","mx-host":["mx1.example.com","mx2.example.com"]}},"summary":{{"total-successful-session-count":{successful},"total-failure-session-count":{failed}}},"failure-details":[{{"result-type":"certificate-expired","sending-mta-ip":"198.51.100.{last_octet}","receiving-mx-hostname":"mx1.example.com","receiving-ip":"192.0.2.10","failed-session-count":{expired}}},{{"result-type":"certificate-host-mismatch","sending-mta-ip":"2001:db8::{last_octet:x}","receiving-mx-hostname":"mx2.example.com","receiving-mx-helo":"mx2.example.com","receiving-ip":"192.0.2.11","failed-session-count":{mismatch},"additional-information":"https://tlsrpt.example.net/help/certificate-host-mismatch","failure-reason-code":"X509_V_ERR_HOSTNAME_MISMATCH"}}]}},{{"policy":{{"policy-type":"tlsa","policy-string":["3 1 1 6007EEE553E85D8DF007A845D19EC343283D4E416E9A33F9EF3040C8B7C285BC"],"policy-domain":"example.com","mx-host":["mx1.example.com"]}},"summary":{{"total-successful-session-count":{successful},"total-failure-session-count":0}}}}]}}"#
    )
}

/// [`report_json`], gzip-compressed at the default level, as senders do.
pub fn gzip_report(run: &str, client: usize, seq: u64) -> Bytes {
    let json = report_json(run, client, seq);
    let mut encoder = GzEncoder::new(Vec::with_capacity(1024), Compression::default());
    encoder
        .write_all(json.as_bytes())
        .expect("writing to a Vec cannot fail");
    Bytes::from(encoder.finish().expect("writing to a Vec cannot fail"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_is_read_without_warnings_by_the_project_reader() {
        let read = mta_sts_tlsrpt::report::decode(&gzip_report("run", 4, 17), 1 << 20).unwrap();
        assert!(read.warnings.is_empty(), "{:?}", read.warnings);
        assert_eq!(read.report.report_id, report_id("run", 4, 17));
        assert_eq!(read.report.policies.len(), 2);
        assert_eq!(read.report.policies[0].failure_details.len(), 2);
    }

    #[test]
    fn report_is_realistically_sized() {
        let json = report_json("1700000000-12345", 63, 123_456);
        assert!(
            (1_000..=2_000).contains(&json.len()),
            "{} bytes",
            json.len()
        );
    }

    #[test]
    fn every_client_and_sequence_number_gives_a_new_report_id() {
        assert_ne!(report_id("r", 1, 11), report_id("r", 11, 1));
        assert_ne!(report_id("r", 1, 1), report_id("s", 1, 1));
    }
}
