#![no_main]
//! Results files of `scan` (read by `scan summarize` and `scan --resume`), one line at a time:
//! never panic, and whatever is read counts into a summary whose shares stay between 0 and 1.

use libfuzzer_sys::fuzz_target;
use mta_sts_check::{ScanLine, Summary};

fuzz_target!(|data: &[u8]| {
    let mut summary = Summary::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(read) = ScanLine::from_json(line) {
            summary.add(&read);
        }
    }
    let report = summary.report(10);
    for share in [report.misconfigured, report.would_lose_mail, report.mta_sts_published] {
        assert!((0.0..=1.0).contains(&share.share), "{share:?}");
    }
});
