#![no_main]
//! SMTP replies as an MX host sends them: never panic; every reply read has a 3-digit code and
//! at least one line.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (replies, _garbage) = mta_sts_net::fuzzing::smtp_replies(data);
    for reply in replies {
        assert!((0..1000).contains(&reply.code));
        assert!(!reply.lines.is_empty());
    }
});
