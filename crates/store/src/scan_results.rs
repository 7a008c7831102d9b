//! The results of `mta-sts scan --database`: one row per domain checked, in one table many
//! scanners write to (machines splitting a list, scans on several days).

use sqlx::AnyConnection;

use crate::Store;
use crate::error::{self, StoreError};
use crate::sql::{count, get, saturating_i64, text};
use crate::writer::Write;

/// One domain's scan result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanResult {
    /// The domain checked.
    pub domain: String,
    /// When, UTC seconds.
    pub checked_at: i64,
    /// Who scanned (host name and shard).
    pub scanner: String,
    /// The sender verdict's status (`protected`, `mail-would-bounce`, ...).
    pub status: String,
    /// Findings at error level.
    pub errors: u64,
    /// Findings at warning level.
    pub warnings: u64,
    /// The report as JSON, as `check --json` gives it.
    pub report: String,
}

impl Store {
    /// Stores one scan result; returns once committed (results of many scanners commit
    /// together). The same result stored twice is kept once.
    ///
    /// # Errors
    ///
    /// When the database refuses the write.
    pub async fn save_scan_result(&self, result: ScanResult) -> Result<(), StoreError> {
        self.writer.submit(SaveScanResult(result)).await
    }

    /// The stored results of `domain`, oldest first.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn scan_results(&self, domain: &str) -> Result<Vec<ScanResult>, StoreError> {
        let mut conn = self.reader().await?;
        let rows = sqlx::query(
            "SELECT domain, checked_at, scanner, status, errors, warnings, report \
             FROM scan_results WHERE domain = $1 ORDER BY checked_at, scanner",
        )
        .bind(text(domain))
        .fetch_all(&mut *conn)
        .await
        .map_err(error::database("read scan results"))?;
        rows.iter()
            .map(|row| {
                Ok(ScanResult {
                    domain: get(row, "domain")?,
                    checked_at: get(row, "checked_at")?,
                    scanner: get(row, "scanner")?,
                    status: get(row, "status")?,
                    errors: count(get(row, "errors")?),
                    warnings: count(get(row, "warnings")?),
                    report: get(row, "report")?,
                })
            })
            .collect()
    }
}

struct SaveScanResult(ScanResult);

impl Write for SaveScanResult {
    type Output = ();

    async fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> sqlx::Result<()> {
        let r = &self.0;
        sqlx::query(
            "INSERT INTO scan_results (domain, checked_at, scanner, status, errors, warnings, \
             report) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (domain, checked_at, scanner) DO NOTHING",
        )
        .bind(text(&r.domain))
        .bind(r.checked_at)
        .bind(text(&r.scanner))
        .bind(text(&r.status))
        .bind(saturating_i64(r.errors))
        .bind(saturating_i64(r.warnings))
        .bind(text(&r.report))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    fn operation(&self) -> &'static str {
        "save a scan result"
    }
}

#[cfg(test)]
mod tests {
    /// Nothing in the table needs a type of its backend: the two migrations are one text.
    #[test]
    fn both_backends_have_the_same_scan_results_schema() {
        assert_eq!(
            include_str!("../migrations/sqlite/0080_scan_results.sql"),
            include_str!("../migrations/postgres/0080_scan_results.sql")
        );
    }
}
