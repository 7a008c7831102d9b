#![no_main]
//! The socketmap reader: netstrings read one after another as the server does, each payload
//! parsed as a request; never panics, and a written netstring reads back whole.

use libfuzzer_sys::fuzz_target;
use mta_sts_sender::resolver::netstring::{MAX_REQUEST_LEN, read_frame, write_frame};
use mta_sts_sender::resolver::{Key, Request};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some(frame)) = read_frame(rest, MAX_REQUEST_LEN) {
        let payload = &rest[frame.payload.clone()];
        assert!(payload.len() <= MAX_REQUEST_LEN);
        if let Key::Domain(domain) = Request::parse(payload).key {
            assert!(!domain.is_empty() && !domain.starts_with('.') && !domain.ends_with('.'));
            assert_eq!(domain, domain.to_ascii_lowercase());
        }
        rest = &rest[frame.consumed..];
    }
    let mut written = Vec::new();
    write_frame(data, &mut written);
    let frame = read_frame(&written, usize::MAX).expect("a written netstring reads").expect("complete");
    assert_eq!(&written[frame.payload], data);
    assert_eq!(frame.consumed, written.len());
});
