//! TLS-RPT for a sending MTA (RFC 8460): read the MTA's per-delivery TLS results (libtlsrpt
//! datagrams), aggregate them per UTC day, build the daily reports and deliver them.
//!
//! - [`Datagram::parse`]: one libtlsrpt datagram → [`Datagram`] or a typed [`DatagramError`].

mod datagram;

pub use datagram::{
    Datagram, DatagramError, DatagramPolicy, MAX_DATAGRAM_SIZE, MAX_ENTRIES, policy_type_of_code,
    result_type_of_code,
};
