//! RFC 8461 (MTA-STS) model: the `_mta-sts` TXT record, the policy file and its `mx` patterns.
//!
//! Everything here works on bytes already in memory: no sockets, no files. Parsers never panic
//! and report [`Diagnostic`]s (severity, stable code, line, column, RFC section, hint) rather
//! than a single error, so the same code serves senders (is this usable?) and linters (what
//! should be fixed?).
//!
//! - [`StsRecord`]: the `_mta-sts` TXT record, one record or a whole RRset.
//! - [`Policy`]: the policy file: [`Policy::lint`], [`Policy::to_text`] (canonical form),
//!   [`Policy::matching_mx`].
//! - [`MxPattern`]: one `mx` pattern and the sender's matching rule.
//! - [`policy_id`]: a policy id derived from the policy body.
//! - [`taglist`]: the `v=...; name=value` grammar shared with the `_smtp._tls` record.
//!
//! ```
//! use mta_sts_policy::{Policy, StsRecord};
//!
//! let record = StsRecord::parse(b"v=STSv1; id=20240101T000000").unwrap();
//! assert_eq!(record.id, "20240101T000000");
//!
//! let policy = Policy::parse(b"version: STSv1\nmode: enforce\nmx: *.example.net\nmax_age: 604800\n").unwrap();
//! assert!(policy.matching_mx("mx1.example.net.").is_some());
//! assert!(policy.matching_mx("a.b.example.net").is_none());
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used, clippy::indexing_slicing)]

mod diag;
mod id;
mod mx;
mod record;
pub mod taglist;
mod text;

pub use diag::{Diagnostic, DiagnosticList, Lint, MAX_DIAGNOSTICS, Severity};
pub use id::policy_id;
pub use mx::{MxPattern, MxProblem, normalize_host};
pub use record::{MAX_ID_LEN, STS_RECORD, StsRecord, is_valid_id};
pub use text::{
    MAX_MAX_AGE, MAX_POLICY_SIZE, MIN_SAFE_MAX_AGE, Mode, Policy, PolicyFields, PolicyLint,
    TESTING_MAX_AGE,
};
