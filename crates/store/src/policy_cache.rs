//! The resolver's MTA-STS policy cache: per domain, the last lookup's outcome and the last valid
//! policy, so that a restart keeps what RFC 8461 §5.1 says must be kept, and several resolvers
//! on one PostgreSQL share one cache.
//!
//! An entry is written after each lookup ([`Store::save_policy_entry`]); a newer entry never
//! loses to an older one written late (another resolver's, say). [`Store::purge_policies`]
//! deletes entries and records the purge, so that running resolvers, which read
//! [`Store::policy_purges_after`] now and then, drop the same entries from memory.

use sqlx::AnyConnection;

use crate::error::{self, StoreError};
use crate::sql::{get, text};
use crate::writer::Write;
use crate::{Store, unix_now};

/// What the store keeps of one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEntry {
    /// The domain (lowercase A-labels).
    pub domain: String,
    /// When DNS (and HTTPS) was last asked, UTC seconds.
    pub checked_at: i64,
    /// What that lookup found, as the resolver names it (`valid`, `no_record`, ...).
    pub outcome: String,
    /// The outcome's detail (an error message), if any.
    pub outcome_detail: Option<String>,
    /// The last valid policy, while it may still be used.
    pub policy: Option<StoredPolicy>,
}

/// A valid policy as fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    /// The `id` of the `_mta-sts` TXT record it was fetched under.
    pub id: String,
    /// The policy text as served.
    pub body: String,
    /// When it was fetched, UTC seconds.
    pub fetched_at: i64,
    /// When it was last confirmed (fetched, or its id seen unchanged), UTC seconds.
    pub confirmed_at: i64,
    /// When it expires (`max_age` after `confirmed_at`), UTC seconds.
    pub expires_at: i64,
}

/// One recorded purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyPurge {
    /// Increasing with every purge.
    pub id: i64,
    /// The domain purged, or `None` for all of them.
    pub domain: Option<String>,
}

impl Store {
    /// Stores `entry`, replacing the domain's entry unless that one was checked later; returns
    /// once committed.
    ///
    /// # Errors
    ///
    /// When the database refuses the write.
    pub async fn save_policy_entry(&self, entry: PolicyEntry) -> Result<(), StoreError> {
        self.writer.submit(SaveEntry(entry)).await
    }

    /// The entry of `domain`, if one is stored.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn policy_entry(&self, domain: &str) -> Result<Option<PolicyEntry>, StoreError> {
        let mut conn = self.reader().await?;
        let row = sqlx::query(
            "SELECT domain, checked_at, outcome, outcome_detail, policy_id, policy_body, \
             fetched_at, confirmed_at, expires_at FROM policy_cache WHERE domain = $1",
        )
        .bind(domain)
        .fetch_optional(&mut *conn)
        .await
        .map_err(error::database("read the policy cache"))?;
        row.as_ref().map(entry).transpose()
    }

    /// Every stored entry, by domain.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn policy_entries(&self) -> Result<Vec<PolicyEntry>, StoreError> {
        let mut conn = self.reader().await?;
        let rows = sqlx::query(
            "SELECT domain, checked_at, outcome, outcome_detail, policy_id, policy_body, \
             fetched_at, confirmed_at, expires_at FROM policy_cache ORDER BY domain",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(error::database("read the policy cache"))?;
        rows.iter().map(entry).collect()
    }

    /// Deletes the entry of `domain` (every entry when `None`), records the purge for running
    /// resolvers, and returns how many entries were deleted.
    ///
    /// # Errors
    ///
    /// When the database refuses the write; nothing was deleted.
    pub async fn purge_policies(&self, domain: Option<&str>) -> Result<u64, StoreError> {
        self.writer
            .submit(Purge {
                domain: domain.map(str::to_owned),
                now: unix_now(),
            })
            .await
    }

    /// Deletes the entries that hold no policy still valid at `before` (UTC seconds) and were
    /// last checked before it: they say nothing a new lookup would not. Returns how many.
    ///
    /// # Errors
    ///
    /// When the database refuses the write.
    pub async fn prune_policy_entries(&self, before: i64) -> Result<u64, StoreError> {
        self.writer.submit(Prune { before }).await
    }

    /// The purges recorded after the one with id `after` (0 for all), oldest first.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn policy_purges_after(&self, after: i64) -> Result<Vec<PolicyPurge>, StoreError> {
        let mut conn = self.reader().await?;
        let rows =
            sqlx::query("SELECT id, domain FROM policy_cache_purges WHERE id > $1 ORDER BY id")
                .bind(after)
                .fetch_all(&mut *conn)
                .await
                .map_err(error::database("read the policy purges"))?;
        rows.iter()
            .map(|row| {
                Ok(PolicyPurge {
                    id: get(row, "id")?,
                    domain: get(row, "domain")?,
                })
            })
            .collect()
    }

    /// The id of the last recorded purge (0 when there is none).
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn last_policy_purge(&self) -> Result<i64, StoreError> {
        let mut conn = self.reader().await?;
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM policy_cache_purges")
            .fetch_one(&mut *conn)
            .await
            .map_err(error::database("read the policy purges"))?;
        Ok(last.unwrap_or(0))
    }
}

fn entry(row: &sqlx::any::AnyRow) -> Result<PolicyEntry, StoreError> {
    let id: Option<String> = get(row, "policy_id")?;
    let policy = match id {
        None => None,
        Some(id) => {
            let required = |column: &'static str| -> Result<i64, StoreError> {
                get::<Option<i64>>(row, column)?.ok_or(StoreError::Corrupt {
                    what: column,
                    reason: "missing for a stored policy".into(),
                })
            };
            Some(StoredPolicy {
                id,
                body: get::<Option<String>>(row, "policy_body")?.unwrap_or_default(),
                fetched_at: required("fetched_at")?,
                confirmed_at: required("confirmed_at")?,
                expires_at: required("expires_at")?,
            })
        }
    };
    Ok(PolicyEntry {
        domain: get(row, "domain")?,
        checked_at: get(row, "checked_at")?,
        outcome: get(row, "outcome")?,
        outcome_detail: get(row, "outcome_detail")?,
        policy,
    })
}

struct SaveEntry(PolicyEntry);

impl Write for SaveEntry {
    type Output = ();

    async fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> sqlx::Result<()> {
        let entry = &self.0;
        let policy = entry.policy.as_ref();
        sqlx::query(
            "INSERT INTO policy_cache (domain, checked_at, outcome, outcome_detail, policy_id, \
             policy_body, fetched_at, confirmed_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (domain) DO UPDATE SET checked_at = excluded.checked_at, \
             outcome = excluded.outcome, outcome_detail = excluded.outcome_detail, \
             policy_id = excluded.policy_id, policy_body = excluded.policy_body, \
             fetched_at = excluded.fetched_at, confirmed_at = excluded.confirmed_at, \
             expires_at = excluded.expires_at \
             WHERE policy_cache.checked_at <= excluded.checked_at",
        )
        .bind(text(&entry.domain))
        .bind(entry.checked_at)
        .bind(text(&entry.outcome))
        .bind(entry.outcome_detail.as_deref().map(text))
        .bind(policy.map(|p| text(&p.id)))
        .bind(policy.map(|p| text(&p.body)))
        .bind(policy.map(|p| p.fetched_at))
        .bind(policy.map(|p| p.confirmed_at))
        .bind(policy.map(|p| p.expires_at))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    fn operation(&self) -> &'static str {
        "save a cached policy"
    }
}

struct Purge {
    domain: Option<String>,
    now: i64,
}

impl Write for Purge {
    type Output = u64;

    async fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> sqlx::Result<u64> {
        let deleted = sqlx::query("DELETE FROM policy_cache WHERE $1 = '' OR domain = $1")
            .bind(self.domain.as_deref().map(text).unwrap_or_default())
            .execute(&mut *conn)
            .await?
            .rows_affected();
        sqlx::query("INSERT INTO policy_cache_purges (domain, purged_at) VALUES ($1, $2)")
            .bind(self.domain.as_deref().map(text))
            .bind(self.now)
            .execute(&mut *conn)
            .await?;
        Ok(deleted)
    }

    fn operation(&self) -> &'static str {
        "purge cached policies"
    }
}

struct Prune {
    before: i64,
}

impl Write for Prune {
    type Output = u64;

    async fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> sqlx::Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM policy_cache WHERE (policy_id IS NULL OR expires_at <= $1) \
             AND checked_at < $1",
        )
        .bind(self.before)
        .execute(&mut *conn)
        .await?
        .rows_affected())
    }

    fn operation(&self) -> &'static str {
        "prune the policy cache"
    }
}
