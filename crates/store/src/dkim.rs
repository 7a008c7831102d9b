//! The DKIM check of report mail (RFC 8460 §3): one row per raw body checked, and the hold
//! for mail that is not signed when a signature is required.
//!
//! The check itself needs DNS and lives with the caller; the store keeps its result next to the
//! raw bytes, so a report can always say how its mail was authenticated. A verified mail also
//! counts as the more trusted origin ([`Origin::dkim_verified`](crate::Origin)), so its body wins
//! a conflict over an unsigned one.

use std::fmt;

use sqlx::{AnyConnection, Row};

use crate::error;
use crate::model::{Ingested, QuarantineCode, RawId, Source};
use crate::sql::{self, NewRaw};
use crate::writer::Write;
use crate::{Store, StoreError, new_raw, unix_now};

/// What the DKIM check of a mail found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DkimResult {
    /// A signature verified.
    Pass,
    /// The mail is signed, but no signature verified (bad signature, no key, DNS failure).
    Fail,
    /// The mail carries no DKIM signature.
    None,
}

impl DkimResult {
    /// The name stored in `raw_dkim.result`: `pass`, `fail` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::None => "none",
        }
    }

    /// The result stored as `name`; anything unknown reads as a failure.
    pub fn from_name(name: &str) -> Self {
        match name {
            "pass" => Self::Pass,
            "none" => Self::None,
            _ => Self::Fail,
        }
    }
}

impl fmt::Display for DkimResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The DKIM check of one mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimCheck {
    /// Pass, fail or none.
    pub result: DkimResult,
    /// The signing domain (`d=`) of the signature that passed, else of the first signature.
    pub domain: Option<String>,
    /// Why the signatures failed, as the verifier said.
    pub reason: Option<String>,
}

impl DkimCheck {
    /// Whether a signature verified.
    pub fn passed(&self) -> bool {
        self.result == DkimResult::Pass
    }
}

impl Store {
    /// Records the DKIM check of the raw body `raw` (a mail), replacing an earlier one.
    ///
    /// # Errors
    ///
    /// When the database refuses the write (for example, `raw` does not exist).
    pub async fn record_dkim(&self, raw: RawId, check: &DkimCheck) -> Result<(), StoreError> {
        self.writer
            .submit(RecordDkim {
                raw,
                check: check.clone(),
                now: unix_now(),
            })
            .await
    }

    /// Reads and stores a report mail as [`Store::ingest`] does, with its DKIM check, in the
    /// same transaction: the raw bytes, the check and the parsed report (or quarantine entry)
    /// commit together, so a crash never leaves a checked mail without its check. A mail whose
    /// check passed is the more trusted origin ([`Origin::dkim_verified`](crate::Origin)).
    ///
    /// # Errors
    ///
    /// When the database refuses the write; nothing was stored.
    pub async fn ingest_checked(
        &self,
        source: Source,
        content_type: &str,
        bytes: &[u8],
        check: &DkimCheck,
    ) -> Result<Ingested, StoreError> {
        let origin = crate::Origin {
            source,
            dkim_verified: check.passed(),
        };
        self.ingest_with(origin, content_type, bytes, Some(check.clone()))
            .await
    }

    /// The DKIM check recorded for the raw body `raw`, if it was checked.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn dkim(&self, raw: RawId) -> Result<Option<DkimCheck>, StoreError> {
        let mut conn = self
            .readers
            .acquire()
            .await
            .map_err(error::database("connect for reading"))?;
        let row = sqlx::query("SELECT result, domain, reason FROM raw_dkim WHERE raw_id = $1")
            .bind(raw.0)
            .fetch_optional(&mut *conn)
            .await
            .map_err(error::database("read the DKIM check"))?;
        row.map(|row| {
            Ok(DkimCheck {
                result: DkimResult::from_name(&row.try_get::<String, _>(0)?),
                domain: row.try_get(1)?,
                reason: row.try_get(2)?,
            })
        })
        .transpose()
        .map_err(error::database("read the DKIM check"))
    }

    /// Keeps a mail whose DKIM check did not pass, when a signature is required: the raw
    /// bytes, the check and a quarantine entry ([`QuarantineCode::DkimRequired`]) with the
    /// reason, in one transaction. Nothing is parsed into reports; `reports rebuild` leaves it
    /// in quarantine.
    ///
    /// # Errors
    ///
    /// When the database refuses the write; nothing was stored.
    pub async fn hold_unauthenticated(
        &self,
        source: Source,
        content_type: &str,
        bytes: &[u8],
        check: &DkimCheck,
    ) -> Result<Ingested, StoreError> {
        let reason = match (check.result, &check.reason) {
            (DkimResult::None, _) => "DKIM is required and the mail is not signed".to_owned(),
            (_, Some(why)) => format!("DKIM is required and no signature verified: {why}"),
            (_, None) => "DKIM is required and no signature verified".to_owned(),
        };
        self.writer
            .submit(HoldUnauthenticated {
                raw: new_raw(source, content_type, bytes),
                check: check.clone(),
                reason,
            })
            .await
    }
}

struct RecordDkim {
    raw: RawId,
    check: DkimCheck,
    now: i64,
}

pub(crate) async fn upsert_dkim(
    conn: &mut AnyConnection,
    raw: RawId,
    check: &DkimCheck,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO raw_dkim (raw_id, result, domain, reason, checked_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (raw_id) DO UPDATE SET \
         result = excluded.result, domain = excluded.domain, reason = excluded.reason, \
         checked_at = excluded.checked_at",
    )
    .bind(raw.0)
    .bind(check.result.as_str())
    .bind(check.domain.as_deref().map(sql::text))
    .bind(check.reason.as_deref().map(sql::text))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

impl Write for RecordDkim {
    type Output = ();

    async fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> sqlx::Result<()> {
        upsert_dkim(conn, self.raw, &self.check, self.now).await
    }

    fn operation(&self) -> &'static str {
        "record the DKIM check"
    }
}

struct HoldUnauthenticated {
    raw: NewRaw,
    check: DkimCheck,
    reason: String,
}

impl Write for HoldUnauthenticated {
    type Output = Ingested;

    async fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> sqlx::Result<Ingested> {
        let now = self.raw.received_at;
        let raw = sql::insert_raw(conn, &self.raw).await?;
        upsert_dkim(conn, raw, &self.check, now).await?;
        sql::insert_quarantine(conn, raw, &QuarantineCode::DkimRequired, &self.reason, now).await?;
        Ok(Ingested::Quarantined {
            raw,
            reason: self.reason.clone(),
        })
    }

    fn operation(&self) -> &'static str {
        "hold an unauthenticated mail"
    }
}
