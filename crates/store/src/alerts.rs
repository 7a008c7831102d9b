//! Drift alerts: one row per (domain, kind, key), open or cleared, with the state of its
//! notification on each channel. De-duplication and the cool-down are decided here, inside the
//! write that raises the alert, so that they hold across restarts and between the tasks (and
//! the `serve` instances sharing a PostgreSQL store) that raise alerts.

use std::collections::HashMap;

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::Store;
use crate::collected::{DeliveryState, DeliveryUpdate};
use crate::error::{self, StoreError};
use crate::sql::{count, get, normalize_domain, saturating_i64, text};
use crate::writer::Write;

/// An alert raised at `at`: the condition holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    /// The domain it is about.
    pub domain: String,
    /// Its kind's stable name (`failure_rate_high`, ...).
    pub kind: String,
    /// Its identity within the kind (an MX host, a result type, a reporter; may be empty).
    pub key: String,
    /// One line for a list or a mail subject.
    pub summary: String,
    /// What was seen and what to do.
    pub detail: String,
    /// When, UTC seconds.
    pub at: i64,
    /// Seconds after a notification during which the same alert is not notified again, even
    /// when it cleared and opened again meanwhile.
    pub cool_down: i64,
    /// The channels to notify on (`webhook`, `email`) when a notification is due.
    pub channels: Vec<String>,
}

/// What raising an alert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertRaised {
    /// It was not open: it is now, and a notification was queued on every channel.
    Notify,
    /// It was not open: it is now, but it was notified within the cool-down, so nothing is
    /// sent (or there is no channel).
    CoolingDown,
    /// It was open already: its summary, detail and last-seen time are updated, nothing is sent.
    AlreadyOpen,
}

/// An alert as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAlert {
    /// The domain it is about.
    pub domain: String,
    /// Its kind's stable name.
    pub kind: String,
    /// Its identity within the kind.
    pub key: String,
    /// Whether the condition holds (it has not been cleared since it last opened).
    pub open: bool,
    /// One line.
    pub summary: String,
    /// What was seen and what to do.
    pub detail: String,
    /// When it was first raised, ever.
    pub first_seen: i64,
    /// When its current (or last) open period began.
    pub opened_at: i64,
    /// When it was last raised.
    pub last_seen: i64,
    /// When it was last cleared, if it was.
    pub cleared_at: Option<i64>,
    /// When a notification was last queued, if ever.
    pub notified_at: Option<i64>,
    /// Its notification on each channel, by channel name.
    pub deliveries: Vec<AlertDelivery>,
}

/// Where an alert's last notification stands on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertDelivery {
    /// `webhook` or `email`.
    pub channel: String,
    /// Pending (retried at `next_attempt_at`), sent or failed.
    pub state: DeliveryState,
    /// When the notification was queued.
    pub queued_at: i64,
    /// Attempts made.
    pub attempts: u64,
    /// When to try next, while pending.
    pub next_attempt_at: i64,
    /// When it was last tried.
    pub last_attempt_at: Option<i64>,
    /// What went wrong the last time, if anything.
    pub last_error: Option<String>,
}

/// Which alerts [`Store::alerts`] lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertFilter {
    /// Only these domains (`None`: every domain).
    pub domains: Option<Vec<String>>,
    /// Only open alerts.
    pub open_only: bool,
    /// Only alerts with a notification pending and due at this time (for the sender).
    pub due_by: Option<i64>,
}

impl Store {
    /// Raises an alert: opens it (queueing a notification on each of its channels unless one
    /// was queued within its cool-down), or, when it is open already, updates its text and
    /// last-seen time. Returns once committed.
    ///
    /// # Errors
    ///
    /// When the database refuses the write.
    pub async fn raise_alert(&self, alert: NewAlert) -> Result<AlertRaised, StoreError> {
        self.writer.submit(RaiseAlert(alert)).await
    }

    /// Clears an open alert at `at` (UTC seconds): the condition is gone. Returns whether it
    /// was open.
    ///
    /// # Errors
    ///
    /// When the database refuses the write.
    pub async fn clear_alert(
        &self,
        domain: &str,
        kind: &str,
        key: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        self.writer
            .submit(ClearAlert {
                domain: text(&normalize_domain(domain)),
                kind: text(kind),
                key: text(key),
                at,
            })
            .await
    }

    /// Records the outcome of an attempt to notify `channel` of an alert.
    ///
    /// # Errors
    ///
    /// When the database refuses the write.
    pub async fn record_alert_delivery(
        &self,
        alert: (&str, &str, &str),
        channel: &str,
        update: DeliveryUpdate,
    ) -> Result<(), StoreError> {
        let (domain, kind, key) = alert;
        self.writer
            .submit(RecordAlertDelivery {
                domain: text(&normalize_domain(domain)),
                kind: text(kind),
                key: text(key),
                channel: text(channel),
                update,
            })
            .await
    }

    /// The alerts `filter` selects, by domain, kind and key; each with its deliveries (with
    /// [`AlertFilter::due_by`], only the due ones).
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn alerts(&self, filter: &AlertFilter) -> Result<Vec<StoredAlert>, StoreError> {
        let mut conn = self.reader().await?;
        let rows = sqlx::query(
            "SELECT domain, kind, alert_key, is_open, summary, detail, first_seen, opened_at, \
             last_seen, cleared_at, notified_at FROM alerts \
             WHERE ($1 = 0 OR is_open = 1) ORDER BY domain, kind, alert_key",
        )
        .bind(i64::from(filter.open_only))
        .fetch_all(&mut *conn)
        .await
        .map_err(error::database("read alerts"))?;
        let deliveries = sqlx::query(
            "SELECT domain, kind, alert_key, channel, status, queued_at, attempts, \
             next_attempt_at, last_attempt_at, last_error FROM alert_deliveries \
             WHERE ($1 < 0 OR (status = 'pending' AND next_attempt_at <= $1)) \
             ORDER BY domain, kind, alert_key, channel",
        )
        .bind(filter.due_by.unwrap_or(-1))
        .fetch_all(&mut *conn)
        .await
        .map_err(error::database("read alert deliveries"))?;
        let mut by_alert: HashMap<(String, String, String), Vec<AlertDelivery>> = HashMap::new();
        for row in &deliveries {
            by_alert
                .entry(identity(row)?)
                .or_default()
                .push(delivery(row)?);
        }
        let wanted = |domain: &str| {
            filter
                .domains
                .as_ref()
                .is_none_or(|domains| domains.iter().any(|d| d == domain))
        };
        let mut alerts = Vec::new();
        for row in &rows {
            let id = identity(row)?;
            let mine = by_alert.remove(&id).unwrap_or_default();
            if !wanted(&id.0) || (filter.due_by.is_some() && mine.is_empty()) {
                continue;
            }
            let (domain, kind, key) = id;
            alerts.push(StoredAlert {
                domain,
                kind,
                key,
                open: get::<i64>(row, "is_open")? != 0,
                summary: get(row, "summary")?,
                detail: get(row, "detail")?,
                first_seen: get(row, "first_seen")?,
                opened_at: get(row, "opened_at")?,
                last_seen: get(row, "last_seen")?,
                cleared_at: get(row, "cleared_at")?,
                notified_at: get(row, "notified_at")?,
                deliveries: mine,
            });
        }
        Ok(alerts)
    }
}

fn identity(row: &AnyRow) -> Result<(String, String, String), StoreError> {
    Ok((
        get(row, "domain")?,
        get(row, "kind")?,
        get(row, "alert_key")?,
    ))
}

fn delivery(row: &AnyRow) -> Result<AlertDelivery, StoreError> {
    let status: String = get(row, "status")?;
    Ok(AlertDelivery {
        channel: get(row, "channel")?,
        state: DeliveryState::parse(&status, "alert_deliveries.status")?,
        queued_at: get(row, "queued_at")?,
        attempts: count(get(row, "attempts")?),
        next_attempt_at: get(row, "next_attempt_at")?,
        last_attempt_at: get(row, "last_attempt_at")?,
        last_error: get(row, "last_error")?,
    })
}

struct RaiseAlert(NewAlert);

impl Write for RaiseAlert {
    type Output = AlertRaised;

    async fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> sqlx::Result<AlertRaised> {
        let a = &self.0;
        let (domain, kind, key) = (
            text(&normalize_domain(&a.domain)),
            text(&a.kind),
            text(&a.key),
        );
        let existing: Option<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT is_open, notified_at FROM alerts \
             WHERE domain = $1 AND kind = $2 AND alert_key = $3",
        )
        .bind(domain.as_str())
        .bind(kind.as_str())
        .bind(key.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some((1, _)) = existing {
            sqlx::query(
                "UPDATE alerts SET summary = $4, detail = $5, last_seen = $6 \
                 WHERE domain = $1 AND kind = $2 AND alert_key = $3",
            )
            .bind(domain.as_str())
            .bind(kind.as_str())
            .bind(key.as_str())
            .bind(text(&a.summary))
            .bind(text(&a.detail))
            .bind(a.at)
            .execute(&mut *conn)
            .await?;
            return Ok(AlertRaised::AlreadyOpen);
        }
        let notified_at = existing.and_then(|(_, notified_at)| notified_at);
        let notify = !a.channels.is_empty()
            && notified_at.is_none_or(|then| a.at.saturating_sub(then) >= a.cool_down);
        sqlx::query(
            "INSERT INTO alerts (domain, kind, alert_key, is_open, summary, detail, first_seen, \
             opened_at, last_seen, cleared_at, notified_at) \
             VALUES ($1, $2, $3, 1, $4, $5, $6, $6, $6, NULL, $7) \
             ON CONFLICT (domain, kind, alert_key) DO UPDATE SET is_open = 1, \
             summary = excluded.summary, detail = excluded.detail, opened_at = excluded.opened_at, \
             last_seen = excluded.last_seen, notified_at = excluded.notified_at",
        )
        .bind(domain.as_str())
        .bind(kind.as_str())
        .bind(key.as_str())
        .bind(text(&a.summary))
        .bind(text(&a.detail))
        .bind(a.at)
        .bind(if notify { Some(a.at) } else { notified_at })
        .execute(&mut *conn)
        .await?;
        if !notify {
            return Ok(AlertRaised::CoolingDown);
        }
        for channel in &a.channels {
            sqlx::query(
                "INSERT INTO alert_deliveries (domain, kind, alert_key, channel, status, \
                 queued_at, attempts, next_attempt_at, last_attempt_at, last_error) \
                 VALUES ($1, $2, $3, $4, 'pending', $5, 0, $5, NULL, NULL) \
                 ON CONFLICT (domain, kind, alert_key, channel) DO UPDATE SET \
                 status = 'pending', queued_at = excluded.queued_at, attempts = 0, \
                 next_attempt_at = excluded.next_attempt_at, last_attempt_at = NULL, \
                 last_error = NULL",
            )
            .bind(domain.as_str())
            .bind(kind.as_str())
            .bind(key.as_str())
            .bind(text(channel))
            .bind(a.at)
            .execute(&mut *conn)
            .await?;
        }
        Ok(AlertRaised::Notify)
    }

    fn operation(&self) -> &'static str {
        "raise an alert"
    }
}

struct ClearAlert {
    domain: String,
    kind: String,
    key: String,
    at: i64,
}

impl Write for ClearAlert {
    type Output = bool;

    async fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE alerts SET is_open = 0, cleared_at = $4 \
             WHERE domain = $1 AND kind = $2 AND alert_key = $3 AND is_open = 1",
        )
        .bind(self.domain.as_str())
        .bind(self.kind.as_str())
        .bind(self.key.as_str())
        .bind(self.at)
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    fn operation(&self) -> &'static str {
        "clear an alert"
    }
}

struct RecordAlertDelivery {
    domain: String,
    kind: String,
    key: String,
    channel: String,
    update: DeliveryUpdate,
}

impl Write for RecordAlertDelivery {
    type Output = ();

    async fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> sqlx::Result<()> {
        let u = &self.update;
        sqlx::query(
            "UPDATE alert_deliveries SET status = $5, attempts = $6, next_attempt_at = $7, \
             last_attempt_at = $8, last_error = $9 \
             WHERE domain = $1 AND kind = $2 AND alert_key = $3 AND channel = $4",
        )
        .bind(self.domain.as_str())
        .bind(self.kind.as_str())
        .bind(self.key.as_str())
        .bind(self.channel.as_str())
        .bind(u.state.as_str())
        .bind(saturating_i64(u.attempts))
        .bind(u.next_attempt_at)
        .bind(u.attempted_at)
        .bind(u.error.as_deref().map(text))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    fn operation(&self) -> &'static str {
        "record an alert delivery"
    }
}

#[cfg(test)]
mod tests {
    /// Nothing in the tables needs a type of its backend: the two migrations are one text.
    #[test]
    fn both_backends_have_the_same_alerts_schema() {
        assert_eq!(
            include_str!("../migrations/sqlite/0110_alerts.sql"),
            include_str!("../migrations/postgres/0110_alerts.sql")
        );
    }
}
