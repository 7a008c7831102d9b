//! The sending side of MTA-STS and TLS-RPT, for the operator of a sending MTA.
//!
//! Two jobs live here, each in its own module as it lands: the Postfix socketmap policy
//! server with its policy cache (`resolver`), and the TLS result collector with the daily
//! RFC 8460 report builder and delivery (`tlsrpt`). Neither imports `check` or `server`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod resolver;
pub mod tlsrpt;
