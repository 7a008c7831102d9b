#![no_main]
//! HTTP/1.1 responses as a policy host sends them: never panic; a body read is never longer
//! than a sender reads (64 KiB).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((status, body)) = mta_sts_net::fuzzing::http_response(data) {
        assert!(status < 1000 && !(100..200).contains(&status));
        assert!(body.len() <= mta_sts_policy::MAX_POLICY_SIZE);
    }
});
