//! Durable storage of TLS reports: SQLite (WAL) in a data directory by default, PostgreSQL by
//! URL, with the same schema, migrations and behaviour.
//!
//! [`Store::open`] takes a [`Location`] and brings the schema up to date. Report bodies are
//! kept raw ([`Store::ingest_raw`]) before anything is parsed; parsed rows
//! ([`Store::ingest_parsed`]) are derived from them and are idempotent by report identity
//! (organization, report-id, date range); a body that cannot be read goes to quarantine with
//! its reason ([`Store::quarantine`]). [`Store::ingest`] does all of it for one body.
//!
//! Writes from any number of tasks are committed in groups by one writer task, so durability
//! costs one flush per batch rather than one per report; a write returns only once it is
//! committed. Reads ([`Store::list_reports`], [`Store::get_report`], [`Store::list_quarantine`],
//! [`Store::raw`]) use their own connections.
//!
//! The sending side keeps its rows here too: the resolver's MTA-STS policy cache
//! ([`Store::save_policy_entry`], [`Store::purge_policies`]) and the TLS results collected from
//! the MTA with the reports built from them ([`Store::commit_collected`]).
//!
//! ```
//! use mta_sts_store::{Ingested, Location, ReportFilter, Source, Store};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(&Location::DataDirectory(dir.path().to_owned())).await?;
//! let body = br#"{"organization-name": "Example Inc.", "report-id": "r1",
//!   "date-range": {"start-datetime": "2024-01-09T00:00:00Z", "end-datetime": "2024-01-09T23:59:59Z"},
//!   "contact-info": "tls@example.net", "policies": []}"#;
//! let outcome = store.ingest(Source::Https, "application/tlsrpt+json", body).await?;
//! assert!(matches!(outcome, Ingested::Stored { .. }));
//! let again = store.ingest(Source::Https, "application/tlsrpt+json", body).await?;
//! assert!(matches!(again, Ingested::Duplicate { .. }));
//! assert_eq!(store.list_reports(&ReportFilter::default()).await?.len(), 1);
//! store.close().await;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod alerts;
pub mod analysis;
mod bulk;
mod check_runs;
mod collected;
mod dkim;
mod error;
mod location;
mod model;
mod policy_cache;
mod rebuild;
mod scan_results;
mod sql;
mod writer;
mod writes;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mta_sts_tlsrpt::mail::decode_body;
use mta_sts_tlsrpt::report::{DEFAULT_MAX_DECOMPRESSED, ReadReport, ReportError};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool};
use sqlx::{Connection, Executor};
use tokio::task::JoinHandle;

pub use alerts::{AlertDelivery, AlertFilter, AlertRaised, NewAlert, StoredAlert};
pub use check_runs::{
    CertExpiry, CheckRun, CheckState, Drift, DriftKind, EXPIRY_DRIFT, drift, policy_hash,
};
pub use collected::{
    CollectedFailure, CollectedInterval, CollectedPolicy, CollectedReport, CollectedSessions,
    CollectorTotals, Delivery, DeliveryState, DeliveryUpdate, InvalidDatagram, NewOutgoingReport,
    OutgoingKey, OutgoingReport, ReportScope,
};
pub use dkim::{DkimCheck, DkimResult};
pub use error::StoreError;
pub use location::{Location, SQLITE_FILE_NAME, redact_password};
pub use model::{
    IngestOutcome, Ingested, Origin, PolicySummary, QuarantineCode, QuarantineEntry, RawId,
    RawReport, ReportFilter, ReportKey, ReportSummary, Source, StoredReport, StoredWarning,
};
pub use policy_cache::{PolicyEntry, PolicyPurge, StoredPolicy};
pub use rebuild::{RebuildStats, Reprocessed};
pub use scan_results::ScanResult;
pub use sql::MAX_INDEXED_LEN;
pub use writer::WriterStats;

use sql::{Backend, NewRaw};
use writer::{Connect, Writer};
use writes::{Quarantine, StoreIngest, StoreParsed, StoreRaw, Verdict};

/// The default [`StoreOptions::write_timeout`]: longer than SQLite waits for a lock held by
/// another process (5 s), shorter than the intake's request timeout.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a store runs; [`StoreOptions::default`] suits an intake on a small machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// The most writes committed in one transaction.
    pub max_batch: usize,
    /// Connections kept for reads.
    pub reader_connections: u32,
    /// The largest report JSON [`Store::ingest`] reads once decompressed, in bytes.
    pub max_report_size: usize,
    /// The longest a write transaction or an attempt to open the write connection may take.
    /// Past it the writes fail (the caller answers "try later") instead of waiting for a
    /// database that has stopped answering, and the writer opens a new connection.
    pub write_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_batch: 256,
            reader_connections: 4,
            max_report_size: DEFAULT_MAX_DECOMPRESSED,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
        }
    }
}

/// An open store. Share it between tasks by reference (or in an `Arc`): every method takes
/// `&self`, and concurrent writes are committed together.
#[derive(Debug)]
pub struct Store {
    location: Location,
    readers: AnyPool,
    writer: Writer,
    writer_task: JoinHandle<()>,
    max_report_size: usize,
}

impl Store {
    /// Opens (creating when missing) the store at `location` with default options, and applies
    /// any pending schema migrations.
    ///
    /// # Errors
    ///
    /// See [`Store::open_with`].
    pub async fn open(location: &Location) -> Result<Self, StoreError> {
        Self::open_with(location, StoreOptions::default()).await
    }

    /// Opens (creating when missing) the store at `location` and applies any pending schema
    /// migrations (embedded in the binary; applying them again changes nothing).
    ///
    /// A data directory is created when missing and holds the SQLite file in WAL mode with
    /// `synchronous=FULL`: every commit is flushed to disk before it returns, so a write that
    /// returned survives a power loss, not only a crash of this process (`NORMAL` would only
    /// guarantee the latter). Group commit is what makes that affordable.
    ///
    /// # Errors
    ///
    /// When the directory cannot be created, the database cannot be reached, or the schema
    /// cannot be migrated (for example, a newer version of this program wrote it).
    pub async fn open_with(location: &Location, options: StoreOptions) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = connection_url(location)?;
        let connect_error = |source| StoreError::Connect {
            database: location.to_string(),
            source,
        };
        let open_writer: Connect = {
            let url = url.clone();
            Arc::new(move || Box::pin(connect_writer(backend, url.clone())))
        };
        let mut write_conn = open_writer().await.map_err(connect_error)?;
        sql::migrator(backend)
            .run(&mut write_conn)
            .await
            .map_err(|source| StoreError::Migrate { source })?;

        let readers = AnyPoolOptions::new()
            .max_connections(options.reader_connections.max(1))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Reads never write: make a mistake fail instead of taking the write
                        // lock away from the writer.
                        conn.execute("PRAGMA query_only = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(connect_error)?;
        let (writer, writer_task) = Writer::start(
            write_conn,
            open_writer,
            options.max_batch,
            options.write_timeout,
        );
        Ok(Self {
            location: location.clone(),
            readers,
            writer,
            writer_task,
            max_report_size: options.max_report_size,
        })
    }

    /// Where the store lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// What the writer has committed since the store was opened: how well writes are grouped.
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// Stores a report body exactly as received, and returns once it is committed. The same
    /// bytes stored again return the first key (and keep the first source and time).
    ///
    /// # Errors
    ///
    /// When the database refuses the write; nothing was stored.
    pub async fn ingest_raw(
        &self,
        source: Source,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<RawId, StoreError> {
        self.writer
            .submit(StoreRaw(new_raw(source, content_type, bytes)))
            .await
    }

    /// Stores a report read from the raw body `raw`, and returns once it is committed.
    /// Idempotent: the same report (identity and content) stored before is left as it was, and
    /// its key returned as [`IngestOutcome::Duplicate`]; a different report with a stored
    /// identity (organization, report-id, date range) is kept too, as
    /// [`IngestOutcome::Conflict`]. The report counts as unauthenticated. A report
    /// whose organization-name, report-id or a policy-domain is longer than
    /// [`MAX_INDEXED_LEN`] bytes is put in quarantine instead.
    ///
    /// # Errors
    ///
    /// When the database refuses the write (for example, `raw` does not exist); nothing was
    /// stored.
    pub async fn ingest_parsed(
        &self,
        raw: RawId,
        report: &ReadReport,
    ) -> Result<IngestOutcome, StoreError> {
        self.writer
            .submit(StoreParsed {
                raw,
                trust: Origin::from(Source::File).trust(),
                report: report.clone(),
                now: unix_now(),
            })
            .await
    }

    /// Puts the raw body `raw` in quarantine with `reason`, and returns once it is committed.
    /// A body already in quarantine keeps its first reason.
    ///
    /// # Errors
    ///
    /// When the database refuses the write (for example, `raw` does not exist).
    pub async fn quarantine(&self, raw: RawId, reason: &str) -> Result<(), StoreError> {
        self.writer
            .submit(Quarantine {
                raw,
                reason: reason.to_owned(),
                now: unix_now(),
            })
            .await
    }

    /// Reads a report body (a whole report mail when `content_type` is `message/rfc822`; else
    /// zip, gzip or JSON by its bytes, whatever `content_type` says; decompressed up to
    /// [`StoreOptions::max_report_size`]) and stores it: the raw bytes, then the parsed report
    /// or, when it cannot be read, a quarantine entry with the reason. Returns once committed.
    ///
    /// Every distinct body is kept: the same report again is an [`Ingested::Duplicate`]; a
    /// different report with a stored identity is an [`Ingested::Conflict`], and of the
    /// identity's bodies the one from the most trusted `origin` counts (DKIM-verified mail over
    /// anything unsigned; the first stored of equally trusted ones). Should the database refuse
    /// the parsed rows (a value it cannot hold), the body is kept in quarantine instead, and
    /// the other reports committed with it are not affected.
    ///
    /// The body is read before the write is queued, and the raw row and its outcome are
    /// committed in one transaction, raw row first: the bytes are never stored without their
    /// outcome, nor an outcome without its bytes, and a report costs one place in a group
    /// commit. The reader is pure and returns an error for anything it cannot read; should it
    /// panic all the same, the body is still stored, in quarantine.
    ///
    /// # Errors
    ///
    /// When the database refuses the write; nothing was stored.
    pub async fn ingest(
        &self,
        origin: impl Into<Origin>,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<Ingested, StoreError> {
        self.ingest_with(origin.into(), content_type, bytes, None)
            .await
    }

    /// [`Store::ingest`], with the DKIM check of a mail written in the same transaction.
    async fn ingest_with(
        &self,
        origin: Origin,
        content_type: &str,
        bytes: &[u8],
        dkim: Option<DkimCheck>,
    ) -> Result<Ingested, StoreError> {
        let (source, trust) = (origin.source, origin.trust());
        let max_len = self.max_report_size;
        // The decompressed size decides, not the body's: a small gzip body can hold megabytes.
        // A small body is read here, decompressed up to the inline limit; one that turns out
        // larger is read again, in full, off the async workers. Reading once is what costs:
        // measuring first would decompress every body twice.
        let inline_len = max_len.min(INLINE_READ_LIMIT);
        let verdict = (bytes.len() <= INLINE_READ_LIMIT)
            .then(|| read_body(content_type, bytes, inline_len))
            .filter(|verdict| {
                inline_len == max_len
                    || !matches!(verdict, Verdict::Unreadable(ReportError::TooLarge { limit })
                        if *limit == inline_len)
            });
        let mut write = if let Some(verdict) = verdict {
            StoreIngest::read(new_raw(source, content_type, bytes), trust, verdict)
        } else {
            // Hashing and reading a large body takes milliseconds: not on the async workers,
            // where it would hold up every other request scheduled there.
            let (content_type, bytes) = (content_type.to_owned(), bytes.to_vec());
            tokio::task::spawn_blocking(move || {
                StoreIngest::new(new_raw(source, &content_type, &bytes), trust, max_len)
            })
            .await
            // Only a runtime shutting down cancels the task (`read_body` catches panics).
            .map_err(|_| StoreError::WriterStopped)?
        };
        write.dkim = dkim;
        self.writer.submit(write).await
    }

    /// [`Store::ingest`] of a body the caller has read already, as `ingest` would have (with
    /// [`decode_body`] and [`StoreOptions::max_report_size`]): `read` is what that gave, so
    /// the body is not read twice. The rest is as [`Store::ingest`].
    ///
    /// # Errors
    ///
    /// When the database refuses the write; nothing was stored.
    pub async fn ingest_read(
        &self,
        origin: impl Into<Origin>,
        content_type: &str,
        bytes: &[u8],
        read: Result<ReadReport, ReportError>,
    ) -> Result<Ingested, StoreError> {
        let origin = origin.into();
        let (source, trust) = (origin.source, origin.trust());
        let verdict = match read {
            Ok(read) => Verdict::Read(read),
            Err(error) => Verdict::Unreadable(error),
        };
        // Hashing what was read costs about what writing it out does.
        let small = bytes.len() <= INLINE_READ_LIMIT
            && match &verdict {
                Verdict::Read(read) => written_size(&read.report) <= INLINE_READ_LIMIT,
                _ => true,
            };
        let write = if small {
            StoreIngest::read(new_raw(source, content_type, bytes), trust, verdict)
        } else {
            let (content_type, bytes) = (content_type.to_owned(), bytes.to_vec());
            tokio::task::spawn_blocking(move || {
                StoreIngest::read(new_raw(source, &content_type, &bytes), trust, verdict)
            })
            .await
            .map_err(|_| StoreError::WriterStopped)?
        };
        self.writer.submit(write).await
    }

    /// Reports matching `filter`, newest period first, each with its policies' session counts.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn list_reports(
        &self,
        filter: &ReportFilter,
    ) -> Result<Vec<ReportSummary>, StoreError> {
        let mut conn = self.reader().await?;
        sql::list_reports(&mut conn, filter).await
    }

    /// The report stored under `key`, with its policies, failure details and warnings.
    ///
    /// # Errors
    ///
    /// When the database cannot be read, or holds a value this version cannot read back.
    pub async fn get_report(&self, key: ReportKey) -> Result<Option<StoredReport>, StoreError> {
        // One transaction, so the report and its child rows are read from one state.
        let mut transaction = self
            .readers
            .begin()
            .await
            .map_err(error::database("begin read"))?;
        let report = sql::get_report(&mut transaction, key).await?;
        transaction
            .commit()
            .await
            .map_err(error::database("end read"))?;
        Ok(report)
    }

    /// Every policy entry matching `filter`, oldest report first, with its failure details and
    /// whether its sessions are counted (see [`analysis`]).
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn policy_rows(
        &self,
        filter: &analysis::AnalysisFilter,
    ) -> Result<Vec<analysis::PolicyRow>, StoreError> {
        let mut conn = self.reader().await?;
        analysis::policy_rows(&mut conn, filter).await
    }

    /// Every body in quarantine, oldest first.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn list_quarantine(&self) -> Result<Vec<QuarantineEntry>, StoreError> {
        let mut conn = self.reader().await?;
        sql::list_quarantine(&mut conn, None).await
    }

    /// The first `limit` bodies in quarantine, oldest first.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn list_quarantine_up_to(
        &self,
        limit: u32,
    ) -> Result<Vec<QuarantineEntry>, StoreError> {
        let mut conn = self.reader().await?;
        sql::list_quarantine(&mut conn, Some(limit)).await
    }

    /// The quarantine entry of the raw body `raw`; `None` when that body is not in quarantine.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn quarantined(&self, raw: RawId) -> Result<Option<QuarantineEntry>, StoreError> {
        let mut conn = self.reader().await?;
        sql::quarantined(&mut conn, raw).await
    }

    /// How many reports count (one body per identity) and how many bodies are in quarantine.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn totals(&self) -> Result<(u64, u64), StoreError> {
        let mut conn = self.reader().await?;
        let reports: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reports WHERE counted = 1")
            .fetch_one(&mut *conn)
            .await
            .map_err(error::database("count reports"))?;
        let quarantined: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM quarantine")
            .fetch_one(&mut *conn)
            .await
            .map_err(error::database("count quarantine"))?;
        Ok((sql::count(reports), sql::count(quarantined)))
    }

    /// The raw body stored under `id`.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn raw(&self, id: RawId) -> Result<Option<RawReport>, StoreError> {
        let mut conn = self.reader().await?;
        sql::raw(&mut conn, id).await
    }

    /// Stops taking writes, waits for the queued ones to commit, and closes every connection.
    /// Dropping a store does the same in the background.
    pub async fn close(self) {
        let Self {
            readers,
            writer,
            writer_task,
            ..
        } = self;
        drop(writer);
        // The task ends once the queue is empty and closed; a panic in it has been reported.
        let _ = writer_task.await;
        readers.close().await;
    }

    async fn reader(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, StoreError> {
        self.readers
            .acquire()
            .await
            .map_err(error::database("connect for reading"))
    }
}

/// Opens the write connection. For SQLite: WAL lets readers read while the writer writes;
/// `synchronous=FULL` flushes the WAL at every commit, so a commit that returned survives a
/// power loss (with `NORMAL`, only a crash of this process). Both are set per connection (WAL
/// sticks to the file too).
async fn connect_writer(backend: Backend, url: String) -> sqlx::Result<AnyConnection> {
    let mut conn = AnyConnection::connect(&url).await?;
    if backend == Backend::Sqlite {
        // A page cache that holds what a large group commit changes, so that no page is
        // written out to the WAL before the commit and again at it; a fixed size, so memory
        // does not grow with the database.
        conn.execute(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = -16384;",
        )
        .await?;
    }
    Ok(conn)
}

/// The backend and `sqlx` URL of `location`; creates a data directory when missing.
fn connection_url(location: &Location) -> Result<(Backend, String), StoreError> {
    match location {
        Location::Postgres(url) => Ok((Backend::Postgres, url.clone())),
        Location::DataDirectory(dir) => {
            let invalid = |reason| StoreError::InvalidLocation {
                location: dir.display().to_string(),
                reason,
            };
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDirectory {
                path: dir.clone(),
                source,
            })?;
            let dir = std::path::absolute(dir)
                .map_err(|_| invalid("the path cannot be made absolute"))?;
            let file = dir.join(SQLITE_FILE_NAME);
            let path = file
                .to_str()
                .ok_or_else(|| invalid("the path is not valid UTF-8"))?;
            // sqlx percent-decodes the path and splits the URL at `?`.
            let path = path
                .replace('%', "%25")
                .replace('?', "%3F")
                .replace('#', "%23");
            Ok((Backend::Sqlite, format!("sqlite://{path}?mode=rwc")))
        }
    }
}

/// Bodies up to this size, decompressed, are hashed and read on the calling task; larger ones
/// on a blocking thread. Real daily reports are a few kilobytes.
const INLINE_READ_LIMIT: usize = 64 * 1024;

/// About how long `report` is as JSON: its text, and a few bytes for each item's punctuation.
fn written_size(report: &mta_sts_tlsrpt::Report) -> usize {
    let strings = |list: &[String]| list.iter().map(|s| s.len() + 4).sum::<usize>();
    let option = |text: &Option<String>| text.as_ref().map_or(0, String::len);
    let policies: usize = report
        .policies
        .iter()
        .map(|p| {
            let details: usize = p
                .failure_details
                .iter()
                .map(|d| {
                    64 + d.result_type.as_str().len()
                        + option(&d.sending_mta_ip)
                        + option(&d.receiving_mx_hostname)
                        + option(&d.receiving_mx_helo)
                        + option(&d.receiving_ip)
                        + option(&d.additional_information)
                        + option(&d.failure_reason_code)
                })
                .sum();
            128 + p.policy.policy_type.as_str().len()
                + p.policy.policy_domain.len()
                + strings(&p.policy.policy_string)
                + strings(&p.policy.mx_host)
                + details
        })
        .sum();
    128 + report.organization_name.len()
        + report.report_id.len()
        + option(&report.contact_info)
        + policies
}

/// Reads a body (a mail when `content_type` is `message/rfc822`, else zip, gzip or JSON by its
/// bytes), turning a panic of the reader into [`Verdict::ReaderFailed`] so that the body is
/// still stored.
pub(crate) fn read_body(content_type: &str, bytes: &[u8], max_len: usize) -> Verdict {
    match catch_unwind(AssertUnwindSafe(|| {
        decode_body(content_type, bytes, max_len)
    })) {
        Ok(Ok(read)) => Verdict::Read(read),
        Ok(Err(error)) => Verdict::Unreadable(error),
        Err(_) => Verdict::ReaderFailed,
    }
}

fn new_raw(source: Source, content_type: &str, bytes: &[u8]) -> NewRaw {
    NewRaw {
        received_at: unix_now(),
        source,
        content_type: content_type.to_owned(),
        sha256: sql::sha256_hex(bytes),
        bytes: bytes.to_vec(),
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}
