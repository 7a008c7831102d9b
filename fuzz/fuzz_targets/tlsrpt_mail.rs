#![no_main]
//! Report mails (MIME, base64/quoted-printable, gzip, zip): never panic; a report found in a
//! mail writes and reads back to the same report.
//!
//! mail-parser 0.11 panics on some malformed MIME (a `debug_assert!` on a part it cannot
//! place, compiled in here as cargo fuzz builds with debug assertions). The mail reader turns
//! such a panic into [`ReportError::NotReportMail`]; libFuzzer's panic hook would abort before
//! the reader could, so panics raised inside mail-parser's own source unwind to the reader
//! instead. A panic anywhere else (our code) still aborts and is a crash.

use libfuzzer_sys::fuzz_target;
use mta_sts_tlsrpt::mail::{decode_body, decode_mail};
use mta_sts_tlsrpt::report::Report;

fn let_mail_parser_panics_unwind() {
    let abort = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_mail_parser = info
            .location()
            .is_some_and(|at| at.file().contains("/mail-parser-0.11."));
        if !in_mail_parser {
            abort(info);
        }
    }));
}

fuzz_target!(init: let_mail_parser_panics_unwind(), |data: &[u8]| {
    if let Ok((_, read)) = decode_mail(data, 1 << 20) {
        let json = read.report.to_json();
        let again = Report::from_json(json.as_bytes()).expect("strict output must read back");
        assert_eq!(again.report, read.report);
    }
    // The same bytes as a file body: zip, gzip or JSON.
    let _ = decode_body("application/octet-stream", data, 1 << 20);
});
