//! The sending side's rows: TLS results collected from the MTA, aggregated per UTC day, and the
//! daily reports built from them with their delivery status per destination.
//!
//! The collector commits an interval at a time ([`Store::commit_collected`]): counts are added
//! to the day's rows in the same transaction that records the interval's id, so a commit
//! retried after an uncertain outcome adds nothing twice, and a crash loses only the interval
//! not yet committed.

use mta_sts_tlsrpt::report::{AppliedPolicy, FailureDetail, PolicyType, ResultType, UtcDay};
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use crate::error::{self, StoreError};
use crate::sql::{count, get, json_strings, saturating_i64, strings};
use crate::writer::Write;
use crate::{Store, unix_now};

/// One interval of the collector's work, committed at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectedInterval {
    /// Unique per interval (say, the collector's start time, process id and a sequence
    /// number): the same id committed twice counts once.
    pub id: String,
    /// Datagrams read in the interval, valid or not.
    pub datagrams: u64,
    /// Session counts to add.
    pub sessions: Vec<CollectedSessions>,
    /// Failure counts to add.
    pub failures: Vec<CollectedFailure>,
    /// Datagrams that could not be read in the interval.
    pub invalid: u64,
    /// Of those, the ones kept for inspection (a flood of garbage is counted, not all kept).
    pub kept_invalid: Vec<InvalidDatagram>,
}

/// Where collected results are filed: one report goes out per (day, domain, TLSRPT record).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReportScope {
    /// The UTC day the sessions happened on.
    pub day: UtcDay,
    /// The policy domain the report is about (the datagram's `d`).
    pub domain: String,
    /// The domain's TLSRPT record, which names where the report goes.
    pub tlsrpt_record: String,
}

/// Sessions under one applied policy, to add to a day's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedSessions {
    /// Which report they belong to.
    pub scope: ReportScope,
    /// The policy applied.
    pub policy: AppliedPolicy,
    /// Sessions that succeeded.
    pub successful: u64,
    /// Sessions that failed.
    pub failed: u64,
}

/// Failures of one kind under one applied policy; `detail.failed_session_count` is the count
/// to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedFailure {
    /// Which report they belong to.
    pub scope: ReportScope,
    /// The policy applied.
    pub policy: AppliedPolicy,
    /// The failure and its count.
    pub detail: FailureDetail,
}

/// A datagram that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDatagram {
    /// When it arrived, UTC seconds.
    pub received_at: i64,
    /// The bytes as received.
    pub bytes: Vec<u8>,
    /// Why it could not be read.
    pub reason: String,
}

/// What was collected for one report: every policy with its counts and failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedReport {
    /// Which report.
    pub scope: ReportScope,
    /// Each policy entry.
    pub policies: Vec<CollectedPolicy>,
}

/// One policy entry of a [`CollectedReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedPolicy {
    /// The policy.
    pub policy: AppliedPolicy,
    /// Sessions that succeeded.
    pub successful: u64,
    /// Sessions that failed.
    pub failed: u64,
    /// Failure details with their counts.
    pub failures: Vec<FailureDetail>,
}

/// The collector's totals since the store was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectorTotals {
    /// Intervals committed.
    pub intervals: u64,
    /// Datagrams read, valid or not.
    pub datagrams: u64,
    /// Datagrams that could not be read.
    pub invalid: u64,
}

/// A report built for delivery, to store with its destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutgoingReport {
    /// Which report.
    pub scope: ReportScope,
    /// Its `report-id`.
    pub report_id: String,
    /// The report JSON, as written.
    pub json: Vec<u8>,
    /// Where it goes: the `rua` URIs of the TLSRPT record, each as written there.
    pub destinations: Vec<String>,
}

/// The store's key for an outgoing report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutgoingKey(pub i64);

/// An outgoing report as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingReport {
    /// Its key.
    pub key: OutgoingKey,
    /// Which report.
    pub scope: ReportScope,
    /// Its `report-id`.
    pub report_id: String,
    /// The report JSON.
    pub json: Vec<u8>,
}

/// Where a report stands with one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliveryState {
    /// Not delivered yet; tried again at `next_attempt_at`.
    Pending,
    /// Delivered.
    Sent,
    /// Given up: retries ran out, or the destination refused it for good.
    Failed,
    /// Not sent on purpose (a suppressed destination, or one that cannot take the size).
    Suppressed,
}

impl DeliveryState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Suppressed => "suppressed",
        }
    }

    fn from_name(name: &str) -> Result<Self, StoreError> {
        Self::parse(name, "report_deliveries.status")
    }

    /// The state named `name`, read from the column `what`.
    pub(crate) fn parse(name: &str, what: &'static str) -> Result<Self, StoreError> {
        Ok(match name {
            "pending" => Self::Pending,
            "sent" => Self::Sent,
            "failed" => Self::Failed,
            "suppressed" => Self::Suppressed,
            other => {
                return Err(StoreError::Corrupt {
                    what,
                    reason: format!("unknown status {other:?}"),
                });
            }
        })
    }
}

/// One report and destination, as [`Store::deliveries`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The report.
    pub report: OutgoingKey,
    /// Which report.
    pub scope: ReportScope,
    /// Its `report-id`.
    pub report_id: String,
    /// The destination URI.
    pub destination: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u64,
    /// When it is tried next (for a pending delivery), UTC seconds.
    pub next_attempt_at: i64,
    /// When it was last tried, UTC seconds.
    pub last_attempt_at: Option<i64>,
    /// What went wrong the last time, if anything.
    pub last_error: Option<String>,
    /// When the report was built, UTC seconds: retries end a day after.
    pub created_at: i64,
}

/// The outcome of a delivery attempt, for [`Store::record_delivery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryUpdate {
    /// The new state.
    pub state: DeliveryState,
    /// Attempts made, this one included.
    pub attempts: u64,
    /// When to try next (for [`DeliveryState::Pending`]).
    pub next_attempt_at: i64,
    /// When this attempt was made.
    pub attempted_at: i64,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

impl Store {
    /// Adds an interval's counts and invalid datagrams, and returns once committed; `false`
    /// when an interval with the same id was committed before (nothing was added).
    ///
    /// # Errors
    ///
    /// When the database refuses the write; nothing of the interval was stored.
    pub async fn commit_collected(&self, interval: CollectedInterval) -> Result<bool, StoreError> {
        self.writer
            .submit(CommitInterval {
                interval,
                now: unix_now(),
            })
            .await
    }

    /// What was collected for `day`, one entry per (domain, TLSRPT record), ordered by domain.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn collected_reports(&self, day: UtcDay) -> Result<Vec<CollectedReport>, StoreError> {
        let mut conn = self.reader().await?;
        read_collected(&mut conn, day).await
    }

    /// Days with collected results, oldest first.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn collected_days(&self) -> Result<Vec<UtcDay>, StoreError> {
        let mut conn = self.reader().await?;
        let days: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT day FROM collected_policies ORDER BY day")
                .fetch_all(&mut *conn)
                .await
                .map_err(error::database("list collected days"))?;
        days.iter().map(|text| day(text)).collect()
    }

    /// The collector's totals over every committed interval.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn collector_totals(&self) -> Result<CollectorTotals, StoreError> {
        let mut conn = self.reader().await?;
        let row = sqlx::query(
            "SELECT COUNT(*) AS intervals, \
             CAST(COALESCE(SUM(datagrams), 0) AS BIGINT) AS datagrams, \
             CAST(COALESCE(SUM(invalid), 0) AS BIGINT) AS invalid FROM collected_intervals",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(error::database("read collector totals"))?;
        Ok(CollectorTotals {
            intervals: count(get(&row, "intervals")?),
            datagrams: count(get(&row, "datagrams")?),
            invalid: count(get(&row, "invalid")?),
        })
    }

    /// The invalid datagrams kept, oldest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn invalid_datagrams(&self, limit: u32) -> Result<Vec<InvalidDatagram>, StoreError> {
        let mut conn = self.reader().await?;
        let rows = sqlx::query(
            "SELECT received_at, bytes, reason FROM invalid_datagrams ORDER BY id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(error::database("list invalid datagrams"))?;
        rows.iter()
            .map(|row| {
                Ok(InvalidDatagram {
                    received_at: get(row, "received_at")?,
                    bytes: get(row, "bytes")?,
                    reason: get(row, "reason")?,
                })
            })
            .collect()
    }

    /// Stores a built report with one pending delivery per destination, due at `due_at`.
    /// Idempotent: a report for the same (day, domain, TLSRPT record) stored before is kept as
    /// it was, and its key returned.
    ///
    /// # Errors
    ///
    /// When the database refuses the write.
    pub async fn add_outgoing_report(
        &self,
        report: NewOutgoingReport,
        due_at: i64,
    ) -> Result<OutgoingKey, StoreError> {
        self.writer
            .submit(AddOutgoing {
                report,
                due_at,
                now: unix_now(),
            })
            .await
    }

    /// The outgoing reports of `day`, ordered by domain.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn outgoing_reports(&self, day: UtcDay) -> Result<Vec<OutgoingReport>, StoreError> {
        let mut conn = self.reader().await?;
        let rows = sqlx::query(
            "SELECT id, day, domain, tlsrpt_record, report_id, json FROM outgoing_reports \
             WHERE day = $1 ORDER BY domain, id",
        )
        .bind(day.to_string())
        .fetch_all(&mut *conn)
        .await
        .map_err(error::database("list outgoing reports"))?;
        rows.iter()
            .map(|row| {
                Ok(OutgoingReport {
                    key: OutgoingKey(get(row, "id")?),
                    scope: scope(row)?,
                    report_id: get(row, "report_id")?,
                    json: get(row, "json")?,
                })
            })
            .collect()
    }

    /// Deliveries, ordered by day, domain and destination: of `day` only when given, and only
    /// pending ones due by `due_by` when given.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn deliveries(
        &self,
        day: Option<UtcDay>,
        due_by: Option<i64>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut conn = self.reader().await?;
        let rows = sqlx::query(
            "SELECT d.report, r.day, r.domain, r.tlsrpt_record, r.report_id, d.destination, \
             d.status, d.attempts, d.next_attempt_at, d.last_attempt_at, d.last_error, r.created_at \
             FROM report_deliveries d JOIN outgoing_reports r ON r.id = d.report \
             WHERE ($1 = '' OR r.day = $1) \
             AND ($2 < 0 OR (d.status = 'pending' AND d.next_attempt_at <= $2)) \
             ORDER BY r.day, r.domain, r.id, d.destination",
        )
        .bind(day.map(|day| day.to_string()).unwrap_or_default())
        .bind(due_by.unwrap_or(-1))
        .fetch_all(&mut *conn)
        .await
        .map_err(error::database("list deliveries"))?;
        rows.iter()
            .map(|row| {
                let status: String = get(row, "status")?;
                Ok(Delivery {
                    report: OutgoingKey(get(row, "report")?),
                    scope: scope(row)?,
                    report_id: get(row, "report_id")?,
                    destination: get(row, "destination")?,
                    state: DeliveryState::from_name(&status)?,
                    attempts: count(get(row, "attempts")?),
                    next_attempt_at: get(row, "next_attempt_at")?,
                    last_attempt_at: get(row, "last_attempt_at")?,
                    last_error: get(row, "last_error")?,
                    created_at: get(row, "created_at")?,
                })
            })
            .collect()
    }

    /// Records the outcome of an attempt to deliver `report` to `destination`.
    ///
    /// # Errors
    ///
    /// When the database refuses the write.
    pub async fn record_delivery(
        &self,
        report: OutgoingKey,
        destination: &str,
        update: DeliveryUpdate,
    ) -> Result<(), StoreError> {
        self.writer
            .submit(RecordDelivery {
                report,
                destination: destination.to_owned(),
                update,
            })
            .await
    }
}

fn day(text: &str) -> Result<UtcDay, StoreError> {
    UtcDay::parse(text).ok_or_else(|| StoreError::Corrupt {
        what: "day",
        reason: format!("{text:?} is not a YYYY-MM-DD day"),
    })
}

fn scope(row: &sqlx::any::AnyRow) -> Result<ReportScope, StoreError> {
    let text: String = get(row, "day")?;
    Ok(ReportScope {
        day: day(&text)?,
        domain: get(row, "domain")?,
        tlsrpt_record: get(row, "tlsrpt_record")?,
    })
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        // Length-prefixed, so that no two lists of parts hash alike.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The key of a (domain, TLSRPT record, policy) entry.
fn policy_key(scope: &ReportScope, policy: &AppliedPolicy) -> String {
    sha256_hex(&[
        &scope.domain,
        &scope.tlsrpt_record,
        policy.policy_type.as_str(),
        &json_strings(&policy.policy_string),
        &policy.policy_domain,
        &json_strings(&policy.mx_host),
    ])
}

fn detail_key(detail: &FailureDetail) -> String {
    let optional = |value: &Option<String>| match value {
        Some(value) => format!("+{value}"),
        None => "-".to_owned(),
    };
    sha256_hex(&[
        detail.result_type.as_str(),
        &optional(&detail.sending_mta_ip),
        &optional(&detail.receiving_mx_hostname),
        &optional(&detail.receiving_mx_helo),
        &optional(&detail.receiving_ip),
        &optional(&detail.additional_information),
        &optional(&detail.failure_reason_code),
    ])
}

struct CommitInterval {
    interval: CollectedInterval,
    now: i64,
}

impl Write for CommitInterval {
    type Output = bool;

    async fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> sqlx::Result<bool> {
        let interval = &self.interval;
        let new: Option<String> = sqlx::query_scalar(
            "INSERT INTO collected_intervals (id, committed_at, datagrams, invalid) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING RETURNING id",
        )
        .bind(interval.id.as_str())
        .bind(self.now)
        .bind(saturating_i64(interval.datagrams))
        .bind(saturating_i64(interval.invalid))
        .fetch_optional(&mut *conn)
        .await?;
        if new.is_none() {
            return Ok(false);
        }
        for sessions in &interval.sessions {
            let scope = &sessions.scope;
            let policy = &sessions.policy;
            sqlx::query(
                "INSERT INTO collected_policies (day, policy_key, domain, tlsrpt_record, \
                 policy_type, policy_domain, policy_string, mx_host, successful, failed) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (day, policy_key) DO UPDATE SET \
                 successful = collected_policies.successful + excluded.successful, \
                 failed = collected_policies.failed + excluded.failed",
            )
            .bind(scope.day.to_string())
            .bind(policy_key(scope, policy))
            .bind(scope.domain.as_str())
            .bind(scope.tlsrpt_record.as_str())
            .bind(policy.policy_type.as_str())
            .bind(policy.policy_domain.as_str())
            .bind(json_strings(&policy.policy_string))
            .bind(json_strings(&policy.mx_host))
            .bind(saturating_i64(sessions.successful))
            .bind(saturating_i64(sessions.failed))
            .execute(&mut *conn)
            .await?;
        }
        for failure in &interval.failures {
            let detail = &failure.detail;
            sqlx::query(
                "INSERT INTO collected_failures (day, policy_key, detail_key, result_type, \
                 sending_mta_ip, receiving_mx_hostname, receiving_mx_helo, receiving_ip, \
                 additional_information, failure_reason_code, failed) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (day, policy_key, detail_key) DO UPDATE SET \
                 failed = collected_failures.failed + excluded.failed",
            )
            .bind(failure.scope.day.to_string())
            .bind(policy_key(&failure.scope, &failure.policy))
            .bind(detail_key(detail))
            .bind(detail.result_type.as_str())
            .bind(detail.sending_mta_ip.as_deref())
            .bind(detail.receiving_mx_hostname.as_deref())
            .bind(detail.receiving_mx_helo.as_deref())
            .bind(detail.receiving_ip.as_deref())
            .bind(detail.additional_information.as_deref())
            .bind(detail.failure_reason_code.as_deref())
            .bind(saturating_i64(detail.failed_session_count))
            .execute(&mut *conn)
            .await?;
        }
        for invalid in &interval.kept_invalid {
            sqlx::query(
                "INSERT INTO invalid_datagrams (received_at, bytes, reason) VALUES ($1, $2, $3)",
            )
            .bind(invalid.received_at)
            .bind(invalid.bytes.as_slice())
            .bind(invalid.reason.as_str())
            .execute(&mut *conn)
            .await?;
        }
        Ok(true)
    }

    fn operation(&self) -> &'static str {
        "commit collected TLS results"
    }
}

async fn read_collected(
    conn: &mut AnyConnection,
    day: UtcDay,
) -> Result<Vec<CollectedReport>, StoreError> {
    let day_text = day.to_string();
    let policies = sqlx::query(
        "SELECT policy_key, day, domain, tlsrpt_record, policy_type, policy_domain, \
         policy_string, mx_host, successful, failed FROM collected_policies WHERE day = $1 \
         ORDER BY domain, tlsrpt_record, policy_key",
    )
    .bind(day_text.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(error::database("read collected policies"))?;
    let failures = sqlx::query(
        "SELECT policy_key, result_type, sending_mta_ip, receiving_mx_hostname, \
         receiving_mx_helo, receiving_ip, additional_information, failure_reason_code, failed \
         FROM collected_failures WHERE day = $1 ORDER BY policy_key, detail_key",
    )
    .bind(day_text.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(error::database("read collected failures"))?;
    let mut details: std::collections::HashMap<String, Vec<FailureDetail>> =
        std::collections::HashMap::new();
    for row in &failures {
        let result_type: String = get(row, "result_type")?;
        details
            .entry(get(row, "policy_key")?)
            .or_default()
            .push(FailureDetail {
                result_type: ResultType::from_name(&result_type),
                sending_mta_ip: get(row, "sending_mta_ip")?,
                receiving_mx_hostname: get(row, "receiving_mx_hostname")?,
                receiving_mx_helo: get(row, "receiving_mx_helo")?,
                receiving_ip: get(row, "receiving_ip")?,
                failed_session_count: count(get(row, "failed")?),
                additional_information: get(row, "additional_information")?,
                failure_reason_code: get(row, "failure_reason_code")?,
            });
    }
    let mut reports: Vec<CollectedReport> = Vec::new();
    for row in &policies {
        let scope = scope(row)?;
        let key: String = get(row, "policy_key")?;
        let policy_type: String = get(row, "policy_type")?;
        let string_json: String = get(row, "policy_string")?;
        let mx_json: String = get(row, "mx_host")?;
        let policy = CollectedPolicy {
            policy: AppliedPolicy {
                policy_type: PolicyType::from_name(&policy_type),
                policy_string: strings(&string_json, "collected_policies.policy_string")?,
                policy_domain: get(row, "policy_domain")?,
                mx_host: strings(&mx_json, "collected_policies.mx_host")?,
            },
            successful: count(get(row, "successful")?),
            failed: count(get(row, "failed")?),
            failures: details.remove(&key).unwrap_or_default(),
        };
        match reports.last_mut() {
            Some(report) if report.scope == scope => report.policies.push(policy),
            _ => reports.push(CollectedReport {
                scope,
                policies: vec![policy],
            }),
        }
    }
    Ok(reports)
}

struct AddOutgoing {
    report: NewOutgoingReport,
    due_at: i64,
    now: i64,
}

impl Write for AddOutgoing {
    type Output = OutgoingKey;

    async fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> sqlx::Result<OutgoingKey> {
        let report = &self.report;
        let scope = &report.scope;
        let record_key = sha256_hex(&[&scope.tlsrpt_record]);
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO outgoing_reports (day, domain, record_key, tlsrpt_record, report_id, \
             json, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (day, domain, record_key) DO NOTHING RETURNING id",
        )
        .bind(scope.day.to_string())
        .bind(scope.domain.as_str())
        .bind(record_key.as_str())
        .bind(scope.tlsrpt_record.as_str())
        .bind(report.report_id.as_str())
        .bind(report.json.as_slice())
        .bind(self.now)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(id) = inserted else {
            let id = sqlx::query_scalar(
                "SELECT id FROM outgoing_reports WHERE day = $1 AND domain = $2 \
                 AND record_key = $3",
            )
            .bind(scope.day.to_string())
            .bind(scope.domain.as_str())
            .bind(record_key.as_str())
            .fetch_one(&mut *conn)
            .await?;
            return Ok(OutgoingKey(id));
        };
        for destination in &report.destinations {
            sqlx::query(
                "INSERT INTO report_deliveries (report, destination, status, attempts, \
                 next_attempt_at) VALUES ($1, $2, 'pending', 0, $3) \
                 ON CONFLICT (report, destination) DO NOTHING",
            )
            .bind(id)
            .bind(destination.as_str())
            .bind(self.due_at)
            .execute(&mut *conn)
            .await?;
        }
        Ok(OutgoingKey(id))
    }

    fn operation(&self) -> &'static str {
        "store outgoing report"
    }
}

struct RecordDelivery {
    report: OutgoingKey,
    destination: String,
    update: DeliveryUpdate,
}

impl Write for RecordDelivery {
    type Output = ();

    async fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> sqlx::Result<()> {
        let update = &self.update;
        sqlx::query(
            "UPDATE report_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, \
             last_attempt_at = $4, last_error = $5 WHERE report = $6 AND destination = $7",
        )
        .bind(update.state.as_str())
        .bind(saturating_i64(update.attempts))
        .bind(update.next_attempt_at)
        .bind(update.attempted_at)
        .bind(update.error.as_deref())
        .bind(self.report.0)
        .bind(self.destination.as_str())
        .execute(conn)
        .await?;
        Ok(())
    }

    fn operation(&self) -> &'static str {
        "record report delivery"
    }
}

#[cfg(test)]
mod tests {
    /// The PostgreSQL migration is the SQLite one with PostgreSQL's types.
    #[test]
    fn both_backends_have_the_same_collected_schema() {
        let sqlite = include_str!("../migrations/sqlite/0060_collected.sql")
            .replace(
                "INTEGER PRIMARY KEY AUTOINCREMENT",
                "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            )
            .replace(" INTEGER NOT NULL", " BIGINT NOT NULL")
            .replace(" INTEGER,\n", " BIGINT,\n")
            .replace("BLOB", "BYTEA")
            .replace("../postgres/", "../sqlite/");
        assert_eq!(
            sqlite,
            include_str!("../migrations/postgres/0060_collected.sql")
        );
    }
}
