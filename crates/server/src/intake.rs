//! TLS-RPT HTTPS intake (RFC 8460 §5.4): report bodies POSTed by sending MTAs go to a
//! [`ReportSink`], which commits them before the sender gets its answer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use mta_sts_tlsrpt::ReportIdentity;
use mta_sts_tlsrpt::report::{ReadReport, ReportError};

/// A report body as it arrived, before anything is parsed.
#[derive(Debug, Clone)]
pub struct IncomingReport {
    /// The sender's address, when known (not in `oneshot` tests).
    pub peer: Option<SocketAddr>,
    /// The declared `Content-Type`, as sent. Only informative: senders mislabel gzip and JSON,
    /// so the bytes decide (gzip magic `1f 8b` means gzip).
    pub content_type: Option<String>,
    /// The body, exactly as received (still compressed when it was).
    pub body: Bytes,
    /// The largest report the sink may decompress, in bytes (`intake.max_decompressed`):
    /// beyond it, answer [`IngestOutcome::TooLarge`].
    pub max_decompressed: usize,
    /// What reading the body gave, when the intake has read it already (it reads every body
    /// to log and screen it), so the sink need not read it again; `None` when it is still to
    /// be read (a body built by hand, or one the reader failed on).
    pub read: Option<Result<ReadReport, ReportError>>,
}

/// What a sink did with a report. Each maps to one HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// New report, committed: `201 Created`.
    Stored,
    /// The same report (organization, report-id, date range) was already stored:
    /// `200 OK`, so a sender that retries after a lost answer sees success.
    Duplicate,
    /// Not a readable report; the bytes are kept in quarantine with the reason:
    /// `400 Bad Request` with the reason in the body.
    Quarantined {
        /// Why it could not be read, for the sender and the operator.
        reason: String,
    },
    /// Larger than [`IncomingReport::max_decompressed`] once decompressed (a gzip bomb, or a
    /// huge report): `413 Payload Too Large`.
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

/// The store could not take the report (database down, disk full): the sender gets
/// `503 Service Unavailable` and retries later.
#[derive(Debug, thiserror::Error)]
#[error("report sink failed: {message}")]
pub struct SinkError {
    /// What failed; logged, never shown to the sender.
    pub message: String,
}

impl SinkError {
    /// A sink error with a message for the log.
    pub fn new(message: impl Into<String>) -> Self {
        SinkError {
            message: message.into(),
        }
    }
}

/// Where intake puts reports: the durable store, or [`MemorySink`] in tests.
///
/// `ingest` must not return until the raw bytes are durable (or the outcome says why they were
/// not kept): the HTTP answer follows immediately. It must be idempotent on the report's
/// identity ([`ReportIdentity`]) and must never panic on input.
#[async_trait]
pub trait ReportSink: Send + Sync + 'static {
    /// Stores one report body.
    async fn ingest(&self, report: IncomingReport) -> Result<IngestOutcome, SinkError>;
}

/// Reads a body the way every sink should (what the intake read, else [`read_body`]).
/// `Ok` holds the identity to key the report on; `Err` the outcome for an unreadable or
/// oversized body.
pub fn classify(report: &IncomingReport) -> Result<ReportIdentity, IngestOutcome> {
    let read_here;
    let read = match &report.read {
        Some(read) => read,
        None => {
            read_here = read_body(report);
            &read_here
        }
    };
    match read {
        Ok(read) => Ok(read.report.identity()),
        Err(ReportError::TooLarge { limit }) => Err(IngestOutcome::TooLarge { limit: *limit }),
        Err(error) => Err(IngestOutcome::Quarantined {
            reason: error.to_string(),
        }),
    }
}

/// Reads `report`'s body as the store does: a report mail when labelled `message/rfc822`,
/// else zip, gzip (capped at [`IncomingReport::max_decompressed`]) or JSON by its bytes.
pub fn read_body(report: &IncomingReport) -> Result<ReadReport, ReportError> {
    mta_sts_tlsrpt::mail::decode_body(
        report.content_type.as_deref().unwrap_or(""),
        &report.body,
        report.max_decompressed,
    )
}

/// A sink that keeps reports in memory: for tests, and for running without storage.
#[derive(Debug, Default)]
pub struct MemorySink {
    inner: Mutex<MemoryReports>,
}

/// What a [`MemorySink`] holds.
#[derive(Debug, Default, Clone)]
pub struct MemoryReports {
    /// Stored reports by identity, with their raw bytes.
    pub stored: BTreeMap<ReportIdentity, Bytes>,
    /// Quarantined bodies with the reason.
    pub quarantined: Vec<(Bytes, String)>,
    /// Every content type seen, in arrival order.
    pub content_types: Vec<Option<String>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        MemorySink::default()
    }

    /// A copy of what the sink holds.
    pub fn snapshot(&self) -> MemoryReports {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryReports> {
        // A poisoned lock only means another test thread panicked; the data is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ReportSink for MemorySink {
    async fn ingest(&self, report: IncomingReport) -> Result<IngestOutcome, SinkError> {
        let classified = if report.read.is_some() {
            classify(&report)
        } else {
            // Reading a report can take milliseconds: not on the async workers.
            let report = report.clone();
            tokio::task::spawn_blocking(move || classify(&report))
                .await
                .map_err(|error| SinkError::new(format!("report reader failed: {error}")))?
        };
        let mut reports = self.lock();
        reports.content_types.push(report.content_type.clone());
        Ok(match classified {
            Ok(identity) => match reports.stored.entry(identity) {
                std::collections::btree_map::Entry::Occupied(_) => IngestOutcome::Duplicate,
                std::collections::btree_map::Entry::Vacant(entry) => {
                    entry.insert(report.body);
                    IngestOutcome::Stored
                }
            },
            Err(IngestOutcome::Quarantined { reason }) => {
                reports.quarantined.push((report.body, reason.clone()));
                IngestOutcome::Quarantined { reason }
            }
            Err(other) => other,
        })
    }
}
