#![no_main]
//! `_smtp._tls` records, alone and as an RRset: never panic; valid records round-trip.

use libfuzzer_sys::fuzz_target;
use mta_sts_tlsrpt::TlsRptRecord;

fuzz_target!(|data: &[u8]| {
    if let Some(record) = TlsRptRecord::lint(data).value {
        let again = TlsRptRecord::parse(record.to_text().as_bytes()).expect("to_text must parse");
        assert_eq!(again, record);
    }
    let set: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let _ = TlsRptRecord::lint_rrset(&set);
});
