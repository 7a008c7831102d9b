#![no_main]
//! Report mails (MIME, base64/quoted-printable, gzip, zip): never panic; a report found in a
//! mail writes and reads back to the same report.

use libfuzzer_sys::fuzz_target;
use mta_sts_tlsrpt::mail::{decode_body, decode_mail};
use mta_sts_tlsrpt::report::Report;

fuzz_target!(|data: &[u8]| {
    if let Ok((_, read)) = decode_mail(data, 1 << 20) {
        let json = read.report.to_json();
        let again = Report::from_json(json.as_bytes()).expect("strict output must read back");
        assert_eq!(again.report, read.report);
    }
    // The same bytes as a file body: zip, gzip or JSON.
    let _ = decode_body("application/octet-stream", data, 1 << 20);
});
