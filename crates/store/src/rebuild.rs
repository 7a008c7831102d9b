//! `reports rebuild`: parsed rows derived again from the raw bytes kept, after a reader fix;
//! bodies that the reader refused read again, and released from quarantine when they now read.
//!
//! Only the reader's refusals are read again (`unreadable`, `too-large`, `unindexable`,
//! `reader-failed`, `refused`, and codes of other versions): a body put in quarantine on
//! purpose (`manual`, `dkim-required`) stays there whatever it holds. A re-derived body keeps
//! its trust (the larger of its rows' and a passing DKIM check's), so which body of an identity
//! counts does not change.

use mta_sts_tlsrpt::report::ReadReport;
use sqlx::AnyConnection;

use crate::model::{IngestOutcome, QuarantineCode, RawId};
use crate::writer::Write;
use crate::writes::Verdict;
use crate::{Store, StoreError, error, read_body, sql, unix_now};

/// What [`Store::rebuild`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildStats {
    /// Raw bodies whose parsed rows were derived again.
    pub rederived: u64,
    /// Bodies in quarantine that now read and left it.
    pub released: u64,
    /// Bodies that still do not read: they stay in quarantine, or keep their rows as they were.
    pub unreadable: u64,
    /// Bodies in quarantine on purpose (`manual`, `dkim-required`), not read again.
    pub held: u64,
}

impl Store {
    /// Derives every parsed report again from its raw bytes (after a reader fix), and reads
    /// again every body the reader refused: those that now read leave the quarantine. A body
    /// that no longer reads keeps its rows as they were. Report keys of re-derived reports
    /// change. `progress` is called after each body with the counts so far.
    ///
    /// # Errors
    ///
    /// When the database cannot be read or refuses a write; what was committed stays.
    pub async fn rebuild(
        &self,
        mut progress: impl FnMut(&RebuildStats),
    ) -> Result<RebuildStats, StoreError> {
        let (parsed, quarantined) = {
            let mut conn = self
                .readers
                .acquire()
                .await
                .map_err(error::database("connect for reading"))?;
            candidates(&mut conn)
                .await
                .map_err(error::database("list reports to rebuild"))?
        };
        let mut stats = RebuildStats::default();
        let mut work = Vec::with_capacity(parsed.len() + quarantined.len());
        work.extend(parsed.into_iter().map(|raw| (raw, false)));
        for (raw, code) in quarantined {
            if matches!(code, QuarantineCode::Manual | QuarantineCode::DkimRequired) {
                stats.held += 1;
            } else {
                work.push((raw, true));
            }
        }
        for (raw, was_quarantined) in work {
            match self.rebuild_one(raw, was_quarantined).await? {
                None => continue,
                Some(Rebuilt::Rederived) => stats.rederived += 1,
                Some(Rebuilt::Released) => stats.released += 1,
                Some(Rebuilt::Unchanged) => stats.unreadable += 1,
            }
            progress(&stats);
        }
        Ok(stats)
    }

    /// Reads one body in quarantine again (the dashboard's "re-process"), by the rules of
    /// [`Store::rebuild`]: it leaves the quarantine when it now reads; a body held there on
    /// purpose (`manual`, `dkim-required`) is not read again.
    ///
    /// # Errors
    ///
    /// When the database cannot be read or refuses the write.
    pub async fn reprocess(&self, raw: RawId) -> Result<Reprocessed, StoreError> {
        let Some(entry) = self.quarantined(raw).await? else {
            return Ok(Reprocessed::NotInQuarantine);
        };
        if matches!(
            entry.code,
            QuarantineCode::Manual | QuarantineCode::DkimRequired
        ) {
            return Ok(Reprocessed::Held);
        }
        Ok(match self.rebuild_one(raw, true).await? {
            Some(Rebuilt::Released | Rebuilt::Rederived) => Reprocessed::Released,
            Some(Rebuilt::Unchanged) | None => Reprocessed::StillUnreadable,
        })
    }

    /// Reads the raw body `raw` again and replaces its rows; `None` when the body is gone.
    async fn rebuild_one(
        &self,
        raw: RawId,
        was_quarantined: bool,
    ) -> Result<Option<Rebuilt>, StoreError> {
        let Some(body) = self.raw(raw).await? else {
            return Ok(None);
        };
        let max_len = self.max_report_size;
        let verdict = tokio::task::spawn_blocking(move || {
            read_body(&body.content_type, &body.bytes, max_len)
        })
        .await
        .map_err(|_| StoreError::WriterStopped)?;
        let Verdict::Read(report) = verdict else {
            return Ok(Some(Rebuilt::Unchanged));
        };
        self.writer
            .submit(Rederive {
                raw,
                report,
                now: unix_now(),
                was_quarantined,
            })
            .await
            .map(Some)
    }
}

/// What [`Store::reprocess`] did with a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reprocessed {
    /// It reads now: stored as a report, out of quarantine.
    Released,
    /// It still does not read (or cannot be stored); it stays in quarantine.
    StillUnreadable,
    /// It is in quarantine on purpose (`manual`, `dkim-required`) and was not read again.
    Held,
    /// No such body in quarantine.
    NotInQuarantine,
}

/// The outcome of one body.
enum Rebuilt {
    Rederived,
    Released,
    Unchanged,
}

/// Replaces a raw body's parsed rows with `report` read again, in one transaction; releases
/// the body from quarantine when it now stores.
struct Rederive {
    raw: RawId,
    report: ReadReport,
    now: i64,
    was_quarantined: bool,
}

impl Write for Rederive {
    type Output = Rebuilt;

    async fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> sqlx::Result<Rebuilt> {
        let raw = self.raw.0;
        let row_trust: Option<i64> =
            sqlx::query_scalar("SELECT MAX(trust) FROM reports WHERE raw_id = $1")
                .bind(raw)
                .fetch_one(&mut *conn)
                .await?;
        let dkim_pass: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM raw_dkim WHERE raw_id = $1 AND result = 'pass'",
        )
        .bind(raw)
        .fetch_one(&mut *conn)
        .await?;
        let trust = row_trust.unwrap_or(0).max(i64::from(dkim_pass > 0));
        // Children first: the schema's ON DELETE CASCADE is not enforced by every backend.
        for statement in [
            "DELETE FROM failure_details WHERE policy IN (SELECT p.id FROM report_policies p \
             JOIN reports r ON r.id = p.report WHERE r.raw_id = $1)",
            "DELETE FROM report_policies WHERE report IN \
             (SELECT id FROM reports WHERE raw_id = $1)",
            "DELETE FROM report_warnings WHERE report IN \
             (SELECT id FROM reports WHERE raw_id = $1)",
            "DELETE FROM reports WHERE raw_id = $1",
        ] {
            sqlx::query(statement).bind(raw).execute(&mut *conn).await?;
        }
        if self.was_quarantined {
            sqlx::query("DELETE FROM quarantine WHERE raw_id = $1")
                .bind(raw)
                .execute(&mut *conn)
                .await?;
        }
        Ok(
            match sql::insert_parsed(conn, self.raw, &self.report, trust, self.now).await? {
                // Put back in quarantine by insert_parsed (a field too long to index).
                IngestOutcome::Quarantined { .. } => Rebuilt::Unchanged,
                _ if self.was_quarantined => Rebuilt::Released,
                _ => Rebuilt::Rederived,
            },
        )
    }

    fn operation(&self) -> &'static str {
        "rebuild report"
    }
}

/// The raw bodies that have parsed rows, then those in quarantine with their codes.
async fn candidates(
    conn: &mut AnyConnection,
) -> sqlx::Result<(Vec<RawId>, Vec<(RawId, QuarantineCode)>)> {
    let parsed: Vec<i64> =
        sqlx::query_scalar("SELECT DISTINCT raw_id FROM reports ORDER BY raw_id")
            .fetch_all(&mut *conn)
            .await?;
    let quarantined: Vec<(i64, String)> =
        sqlx::query_as("SELECT raw_id, code FROM quarantine ORDER BY raw_id")
            .fetch_all(&mut *conn)
            .await?;
    Ok((
        parsed.into_iter().map(RawId).collect(),
        quarantined
            .into_iter()
            .map(|(raw, code)| (RawId(raw), QuarantineCode::from_name(&code)))
            .collect(),
    ))
}
