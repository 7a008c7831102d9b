#![no_main]
//! `_smtp._tls` records, alone and as an RRset: never panic; valid records round-trip; the
//! fast path for clean records reads exactly what the full reader reads.

use libfuzzer_sys::fuzz_target;
use mta_sts_tlsrpt::TlsRptRecord;

fuzz_target!(|data: &[u8]| {
    let lint = TlsRptRecord::lint(data);
    if let Some(record) = &lint.value {
        let again = TlsRptRecord::parse(record.to_text().as_bytes()).expect("to_text must parse");
        assert_eq!(&again, record);
        // A record read without findings may have taken the fast path; lint_rrset always runs
        // the full reader.
        if lint.diagnostics.is_empty() {
            assert_eq!(TlsRptRecord::lint_rrset(&[data]).value.as_ref(), Some(record));
        }
    }
    let set: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let _ = TlsRptRecord::lint_rrset(&set);
});
