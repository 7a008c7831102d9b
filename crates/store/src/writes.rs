//! The writes the writer task applies: each a small value holding what it stores.

use std::future::Future;

use mta_sts_tlsrpt::report::{ReadReport, ReportError};
use sqlx::AnyConnection;

use crate::dkim::DkimCheck;
use crate::model::{IngestOutcome, Ingested, QuarantineCode, RawId};
use crate::sql::{self, NewRaw};
use crate::writer::Write;

/// Stores a raw body ([`Store::ingest_raw`](crate::Store::ingest_raw)).
pub(crate) struct StoreRaw(pub(crate) NewRaw);

impl Write for StoreRaw {
    type Output = RawId;

    fn apply<'c>(
        &'c self,
        conn: &'c mut AnyConnection,
    ) -> impl Future<Output = sqlx::Result<RawId>> + Send + 'c {
        sql::insert_raw(conn, &self.0)
    }

    fn operation(&self) -> &'static str {
        "store raw report"
    }
}

/// Stores a read report ([`Store::ingest_parsed`](crate::Store::ingest_parsed)).
pub(crate) struct StoreParsed {
    pub(crate) raw: RawId,
    pub(crate) trust: i64,
    pub(crate) report: ReadReport,
    pub(crate) now: i64,
}

impl Write for StoreParsed {
    type Output = IngestOutcome;

    fn apply<'c>(
        &'c self,
        conn: &'c mut AnyConnection,
    ) -> impl Future<Output = sqlx::Result<IngestOutcome>> + Send + 'c {
        sql::insert_parsed(conn, self.raw, &self.report, self.trust, self.now)
    }

    fn operation(&self) -> &'static str {
        "store parsed report"
    }
}

/// Puts a raw body in quarantine ([`Store::quarantine`](crate::Store::quarantine)).
pub(crate) struct Quarantine {
    pub(crate) raw: RawId,
    pub(crate) reason: String,
    pub(crate) now: i64,
}

impl Write for Quarantine {
    type Output = ();

    fn apply<'c>(
        &'c self,
        conn: &'c mut AnyConnection,
    ) -> impl Future<Output = sqlx::Result<()>> + Send + 'c {
        sql::insert_quarantine(
            conn,
            self.raw,
            &QuarantineCode::Manual,
            &self.reason,
            self.now,
        )
    }

    fn operation(&self) -> &'static str {
        "quarantine report"
    }
}

/// What reading a body gave, decided before the write is queued.
pub(crate) enum Verdict {
    Read(ReadReport),
    Unreadable(ReportError),
    /// The reader panicked: a bug, but the body is still kept.
    ReaderFailed,
}

/// A body and what reading it gave, stored in one transaction: the raw row first, then the
/// parsed rows or the quarantine row ([`Store::ingest`](crate::Store::ingest)).
pub(crate) struct StoreIngest {
    pub(crate) raw: NewRaw,
    pub(crate) trust: i64,
    pub(crate) verdict: Verdict,
    /// Set when the database refused the parsed rows (alone, on a working connection): the raw
    /// body is then kept in quarantine with this reason, so no report is ever lost to a value
    /// the database cannot hold.
    pub(crate) refused: Option<String>,
    /// SHA-256 of the read report as the strict writer writes it (what tells two bodies of one
    /// identity apart), computed with the reading rather than on the writer task; `None` when
    /// the body is not a storable report.
    pub(crate) content_sha256: Option<String>,
    /// The DKIM check of a mail, written with the raw row (replacing an earlier check of the
    /// same bytes).
    pub(crate) dkim: Option<DkimCheck>,
}

impl StoreIngest {
    /// Reads `raw` (decompressed up to `max_len`) and prepares its write.
    pub(crate) fn new(raw: NewRaw, trust: i64, max_len: usize) -> Self {
        let verdict = crate::read_body(&raw.content_type, &raw.bytes, max_len);
        Self::read(raw, trust, verdict)
    }

    /// Prepares the write of `raw`, which reading gave `verdict`.
    pub(crate) fn read(raw: NewRaw, trust: i64, verdict: Verdict) -> Self {
        let content_sha256 = match &verdict {
            Verdict::Read(read) if sql::unindexable(&read.report).is_none() => {
                Some(sql::sha256_hex(read.report.to_json().as_bytes()))
            }
            _ => None,
        };
        StoreIngest {
            raw,
            trust,
            verdict,
            refused: None,
            content_sha256,
            dkim: None,
        }
    }
}

impl Write for StoreIngest {
    type Output = Ingested;

    fn batchable(&self) -> Option<&StoreIngest> {
        (self.refused.is_none() && self.content_sha256.is_some()).then_some(self)
    }

    fn batched_output(&self, ingested: Ingested) -> Option<Ingested> {
        Some(ingested)
    }

    async fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> sqlx::Result<Ingested> {
        let now = self.raw.received_at;
        let raw = sql::insert_raw(conn, &self.raw).await?;
        if let Some(check) = &self.dkim {
            crate::dkim::upsert_dkim(conn, raw, check, now).await?;
        }
        let (code, reason) = match (&self.refused, &self.verdict) {
            (Some(reason), _) => (QuarantineCode::Refused, reason.clone()),
            (None, Verdict::Read(report)) => {
                let outcome = sql::insert_parsed(conn, raw, report, self.trust, now).await?;
                return Ok(match outcome {
                    IngestOutcome::Stored(report) => Ingested::Stored { raw, report },
                    IngestOutcome::Duplicate(report) => Ingested::Duplicate { raw, report },
                    IngestOutcome::Conflict { report, counted } => Ingested::Conflict {
                        raw,
                        report,
                        counted,
                    },
                    IngestOutcome::Quarantined { reason } => Ingested::Quarantined { raw, reason },
                });
            }
            (
                None,
                Verdict::Unreadable(
                    error @ (ReportError::TooLarge { .. } | ReportError::TooComplex { .. }),
                ),
            ) => (QuarantineCode::TooLarge, error.to_string()),
            (None, Verdict::Unreadable(error)) => (QuarantineCode::Unreadable, error.to_string()),
            (None, Verdict::ReaderFailed) => (
                QuarantineCode::ReaderFailed,
                "the report reader failed on this body (a bug in mta-sts); the body is kept"
                    .to_owned(),
            ),
        };
        sql::insert_quarantine(conn, raw, &code, &reason, now).await?;
        Ok(match (&self.refused, &self.verdict) {
            (None, Verdict::Unreadable(ReportError::TooLarge { limit })) => {
                Ingested::TooLarge { raw, limit: *limit }
            }
            _ => Ingested::Quarantined { raw, reason },
        })
    }

    fn refused(&mut self, error: &sqlx::Error) -> bool {
        if self.refused.is_some() || !matches!(self.verdict, Verdict::Read(_)) {
            return false;
        }
        self.refused = Some(format!(
            "the database refused the parsed report ({error}); the body is kept"
        ));
        true
    }

    fn operation(&self) -> &'static str {
        "ingest report"
    }
}
