#![no_main]
//! libtlsrpt datagrams: never panic; what reads builds a report that the strict writer writes
//! and the lenient reader reads back unchanged.

use libfuzzer_sys::fuzz_target;
use mta_sts_sender::tlsrpt::Datagram;
use mta_sts_tlsrpt::report::{Report, ReportBuilder, UtcDay};

fuzz_target!(|data: &[u8]| {
    let Ok(datagram) = Datagram::parse(data) else {
        return;
    };
    let mut builder = ReportBuilder::new("fuzz", "r", UtcDay::containing(0).date_range());
    for policy in &datagram.policies {
        builder.add_sessions(&policy.policy, u64::from(!policy.failed), u64::from(policy.failed));
        for failure in &policy.failures {
            builder.add_failure(&policy.policy, failure.clone());
        }
    }
    let report = builder.build();
    let read = Report::from_json(report.to_json().as_bytes()).expect("written report must read");
    assert_eq!(read.report, report);
});
