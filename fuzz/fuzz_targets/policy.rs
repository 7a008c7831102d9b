#![no_main]
//! Policy bodies: lint never panics; a valid policy's canonical form parses back to itself.

use libfuzzer_sys::fuzz_target;
use mta_sts_policy::Policy;

fuzz_target!(|data: &[u8]| {
    if let Some(policy) = Policy::lint(data).into_policy() {
        let text = policy.to_text();
        let again = Policy::parse(text.as_bytes()).expect("canonical form must parse");
        assert_eq!(again, policy);
        assert_eq!(again.to_text(), text);
    }
});
