//! RFC 8461 (MTA-STS) model: the `_mta-sts` TXT record, the policy text and mx patterns.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used, clippy::indexing_slicing)]
