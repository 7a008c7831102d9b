#![no_main]
//! TLS reports, gzip or JSON: never panic; what the lenient reader accepts, the strict writer
//! writes and the reader reads back to the same report.

use libfuzzer_sys::fuzz_target;
use mta_sts_tlsrpt::report::{Report, decode};

fuzz_target!(|data: &[u8]| {
    if let Ok(read) = decode(data, 1 << 20) {
        let json = read.report.to_json();
        let again = Report::from_json(json.as_bytes()).expect("strict output must read back");
        assert_eq!(again.report, read.report);
    }
});
