//! The live check of a domain's MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) setup.
//!
//! [`gather`] looks at a domain the way a sender does (the `_mta-sts` record, the policy over
//! HTTPS, the MX records, STARTTLS and certificates on every MX address, the `_smtp._tls`
//! record); [`analyze`] turns that [`Evidence`] into [`Finding`]s and two verdicts: what a
//! compliant sender does ([`SenderVerdict`]) and strict RFC hygiene ([`Hygiene`]).
//! [`suggest`] derives the policy and records to publish from the live MX set. [`Checker`]
//! checks many domains in one run with bounded concurrency and one network (one DNS cache);
//! [`Summary`] counts a scan's results (adoption, modes, misconfigurations, top MX hosts and
//! providers) in bounded memory.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use mta_sts_check::{CheckOptions, analyze, gather};
//! use mta_sts_net::{Net, NetConfig};
//!
//! let net = Net::new(NetConfig::default())?;
//! let report = analyze(gather(&net, "example.com", CheckOptions::default()).await);
//! println!("{}", report.sender.summary());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod analyze;
mod evidence;
mod finding;
mod many;
mod rank;
mod scan;
mod shared;
mod suggest;

pub use analyze::{EXPIRY_WARNING, Hygiene, Report, SLOW_FETCH, SenderVerdict, analyze};
pub use evidence::{CheckOptions, Evidence, MAX_PROBES_PER_DOMAIN, MxHost, bytes_as_text, gather};
pub use finding::{Area, Finding};
pub use many::{
    Checker, DEFAULT_CONCURRENCY, DEFAULT_PER_DESTINATION, DEFAULT_SCAN_CONCURRENCY,
    RUN_DNS_CACHE_SIZE,
};
pub use rank::{RANK_TABLE_SIZE, Ranked, Ranking};
pub use scan::{
    Category, LineEvidence, LineFinding, LineMxHost, LinePolicy, LineTxt, LineTxtAnswer,
    LineVerdict, MAX_AGE_BUCKETS, MAX_SCAN_LINE, MaxAgeBucket, ScanLine, Share, Summary,
    SummaryReport, mx_provider,
};
pub use shared::{PROBE_CACHE_SIZE, PROBE_CACHE_TTL};
pub use suggest::{PolicyDiff, RuaSource, SuggestRequest, Suggestion, Warning, suggest};
