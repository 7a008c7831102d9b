//! The HTTPS side of `mta-sts serve`: hosts MTA-STS policies (RFC 8461 §3.3) and receives
//! TLS reports by HTTPS POST (RFC 8460 §5.4).
//!
//! - [`Config`]: `mta-sts.toml` ([`Config::load`]) or the quick form ([`Config::from_quick`]);
//!   every domain's policy is linted at load, and [`Config::dns_records`] gives the TXT records
//!   that match the bodies served.
//! - [`app`]: the axum [`Router`](axum::Router) over an [`AppState`]: `GET`/`HEAD`
//!   `/.well-known/mta-sts.txt` by `Host`, and `POST` of reports at `intake.path`, with body,
//!   time and concurrency limits.
//! - [`ReportSink`]: where reports go; the store implements it, [`MemorySink`] keeps them in
//!   memory.
//! - The dashboard ([`DashboardData`], [`DashboardConfig`]): HTML pages, the JSON API under
//!   `/api/v1/` and `/metrics`, behind a login, read from the store the binary wires in.
//! - [`Server`] and [`serve`]: listeners (HTTPS with certificates chosen by SNI, from PEM files
//!   or ACME TLS-ALPN-01; plain HTTP behind a proxy), reload, graceful shutdown.
//!
//! ```
//! use std::sync::Arc;
//! use mta_sts_server::{AppState, Config, MemorySink, app};
//!
//! let config = Config::from_toml(r#"
//!     [tls]
//!     mode = "none"
//!     [[domain]]
//!     name = "example.com"
//!     mode = "testing"
//!     mx = ["mx1.example.com"]
//! "#, std::path::Path::new("."))?;
//! let records = config.dns_records();
//! assert!(records[0].sts.value.starts_with("v=STSv1; id="));
//! let router = app(AppState::new(&config, Arc::new(MemorySink::new())));
//! # let _ = router;
//! # Ok::<(), mta_sts_server::ConfigError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod acme;
mod alerts_config;
mod app;
mod config;
mod dashboard;
mod intake;
mod screen;
mod server;
mod tls;

pub use acme::AcmeError;
pub use alerts_config::{AlertSmtp, AlertsConfig};
pub use app::{AppState, POLICY_PATH, PeerAddr, app};
pub use config::{
    Accept, AcmeChallenge, AcmeConfig, CertFiles, CertMismatch, Checks, Config, ConfigError,
    DEFAULT_ACME_REQUEST_TIMEOUT, DEFAULT_CHECK_CONCURRENCY, DEFAULT_CHECK_INTERVAL,
    DEFAULT_CHECK_RETENTION, DEFAULT_CHECK_SPREAD, DEFAULT_HEADER_TIMEOUT, DEFAULT_INTAKE_MEMORY,
    DEFAULT_INTAKE_PATH, DEFAULT_INTAKE_TIMEOUT, DEFAULT_MAX_AGE, DEFAULT_MAX_BODY,
    DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_IP,
    DEFAULT_MAX_DECOMPRESSED, DnsRecords, Domain, Intake, LETS_ENCRYPT_DIRECTORY, Limits, Listen,
    Mailbox, PolicyProblem, QuickTls, Storage, Tls, TxtRecord,
};
pub use dashboard::{
    AlertDeliveryRow, AlertRow, ApiToken, CertRow, CheckFinding, CheckRow, DEFAULT_SESSION_HOURS,
    DashboardConfig, DashboardData, DataError, DomainStats, DriftRow, FailureRow, LOGIN_WINDOW,
    MAX_FAILED_LOGINS, PolicyCount, PolicyDetail, QuarantineItem, Readiness, ReportDetail,
    ReportQuery, ReportRow, Reprocess, SESSION_COOKIE, SILENT_DAYS, StoreTotals, Tally, User,
    hash_password, new_api_token, silent_reporters,
};
pub use intake::{
    IncomingReport, IngestOutcome, MemoryReports, MemorySink, ReportSink, SinkError, classify,
};
pub use server::{Listeners, Server, ServerError, serve, serve_with_dashboard, shutdown_signal};
pub use tls::{TlsError, load_cert_files};
