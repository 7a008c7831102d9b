//! Every SQL statement the store runs, and the migrations. The same text runs on SQLite and
//! PostgreSQL: `$n` placeholders (both accept them), `ON CONFLICT … DO NOTHING`, `RETURNING`,
//! and only `BIGINT`-sized integers, text and bytes cross the driver (what `sqlx::Any` carries).

use std::borrow::Cow;
use std::fmt::Write as _;

use mta_sts_tlsrpt::report::{
    AppliedPolicy, DateRange, FailureDetail, PolicyResult, PolicyType, ReadReport, Report,
    ResultType, SessionSummary, Timestamp,
};
use sha2::{Digest, Sha256};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyConnection, AssertSqlSafe, Row, SqlSafeStr};

use crate::error::StoreError;
use crate::model::{
    IngestOutcome, PolicySummary, QuarantineCode, QuarantineEntry, RawId, RawReport, ReportFilter,
    ReportKey, ReportSummary, Source, StoredReport, StoredWarning,
};

/// The longest `organization-name`, `report-id` or `policy-domain` the store indexes, in bytes.
/// Real ones are under 100 bytes; a B-tree entry in PostgreSQL cannot exceed about 2.7 kB, so a
/// longer value would fail the insert instead of being quarantined.
pub const MAX_INDEXED_LEN: usize = 1024;

/// Which database the statements run on; only the migrations differ (column types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// The migrations of `backend`, embedded in the binary. Each backend has its own file per
/// version because DDL types differ (`BLOB`/`BYTEA`, identity columns); a unit test checks that
/// the two files describe the same schema.
pub(crate) fn migrator(backend: Backend) -> Migrator {
    let migrations: &[(i64, &str, &'static str)] = match backend {
        Backend::Sqlite => &[
            (
                1,
                "reports",
                include_str!("../migrations/sqlite/0001_reports.sql"),
            ),
            (
                2,
                "distinct bodies",
                include_str!("../migrations/sqlite/0002_distinct_bodies.sql"),
            ),
            (
                3,
                "policy ordinal",
                include_str!("../migrations/sqlite/0003_policy_ordinal.sql"),
            ),
            (
                20,
                "dkim",
                include_str!("../migrations/sqlite/0020_dkim.sql"),
            ),
            (
                40,
                "policy cache",
                include_str!("../migrations/sqlite/0040_policy_cache.sql"),
            ),
            (
                60,
                "collected",
                include_str!("../migrations/sqlite/0060_collected.sql"),
            ),
            (
                80,
                "scan results",
                include_str!("../migrations/sqlite/0080_scan_results.sql"),
            ),
            (
                100,
                "check runs",
                include_str!("../migrations/sqlite/0100_check_runs.sql"),
            ),
            (
                110,
                "alerts",
                include_str!("../migrations/sqlite/0110_alerts.sql"),
            ),
        ],
        Backend::Postgres => &[
            (
                1,
                "reports",
                include_str!("../migrations/postgres/0001_reports.sql"),
            ),
            (
                2,
                "distinct bodies",
                include_str!("../migrations/postgres/0002_distinct_bodies.sql"),
            ),
            (
                3,
                "policy ordinal",
                include_str!("../migrations/postgres/0003_policy_ordinal.sql"),
            ),
            (
                20,
                "dkim",
                include_str!("../migrations/postgres/0020_dkim.sql"),
            ),
            (
                40,
                "policy cache",
                include_str!("../migrations/postgres/0040_policy_cache.sql"),
            ),
            (
                60,
                "collected",
                include_str!("../migrations/postgres/0060_collected.sql"),
            ),
            (
                80,
                "scan results",
                include_str!("../migrations/postgres/0080_scan_results.sql"),
            ),
            (
                100,
                "check runs",
                include_str!("../migrations/postgres/0100_check_runs.sql"),
            ),
            (
                110,
                "alerts",
                include_str!("../migrations/postgres/0110_alerts.sql"),
            ),
        ],
    };
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// A raw body about to be stored.
#[derive(Debug)]
pub(crate) struct NewRaw {
    pub(crate) received_at: i64,
    pub(crate) source: Source,
    pub(crate) content_type: String,
    pub(crate) sha256: String,
    pub(crate) bytes: Vec<u8>,
}

/// Stores a raw body, or finds the same bytes stored before.
pub(crate) async fn insert_raw(conn: &mut AnyConnection, raw: &NewRaw) -> sqlx::Result<RawId> {
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO raw_reports (received_at, source, content_type, bytes, sha256, size) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sha256) DO NOTHING RETURNING id",
    )
    .bind(raw.received_at)
    .bind(raw.source.as_str())
    .bind(text(&raw.content_type))
    .bind(raw.bytes.as_slice())
    .bind(raw.sha256.as_str())
    .bind(saturating_i64(raw.bytes.len() as u64))
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = inserted {
        return Ok(RawId(id));
    }
    let id = sqlx::query_scalar("SELECT id FROM raw_reports WHERE sha256 = $1")
        .bind(raw.sha256.as_str())
        .fetch_one(&mut *conn)
        .await?;
    Ok(RawId(id))
}

/// Text as the database can hold it: PostgreSQL refuses NUL in `TEXT` (and fails the whole
/// statement), so NUL becomes U+FFFD. The report reader has already replaced NUL in reports,
/// with a warning; this covers everything else (content types, reasons, warnings' values).
pub(crate) fn text(value: &str) -> String {
    value.replace('\0', "\u{FFFD}")
}

/// SHA-256 of `bytes`, lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Puts a raw body in quarantine; a body already there keeps its first reason.
pub(crate) async fn insert_quarantine(
    conn: &mut AnyConnection,
    raw: RawId,
    code: &QuarantineCode,
    reason: &str,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO quarantine (raw_id, code, reason, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (raw_id) DO NOTHING",
    )
    .bind(raw.0)
    .bind(code.as_str())
    .bind(text(reason))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Why a read report cannot be stored as rows, if it cannot.
pub(crate) fn unindexable(report: &Report) -> Option<String> {
    let fields = [
        ("organization-name", &report.organization_name),
        ("report-id", &report.report_id),
    ];
    let domains = report
        .policies
        .iter()
        .map(|policy| ("policy-domain", &policy.policy.policy_domain));
    fields
        .into_iter()
        .chain(domains)
        .find(|(_, value)| value.len() > MAX_INDEXED_LEN)
        .map(|(field, value)| {
            format!(
                "TLS report field \"{field}\" is {} bytes long; the store keeps at most \
                 {MAX_INDEXED_LEN}",
                value.len()
            )
        })
}

/// Stores a read report's rows for the raw body `raw`, unless the same report (identity and
/// content) is stored already. A different body with a stored identity is stored too, and the
/// identity's bodies flagged as a conflict; the most trusted body counts (the first stored of
/// equally trusted ones). A report whose indexed fields are too long goes to quarantine.
pub(crate) async fn insert_parsed(
    conn: &mut AnyConnection,
    raw: RawId,
    read: &ReadReport,
    trust: i64,
    now: i64,
) -> sqlx::Result<IngestOutcome> {
    let report = &read.report;
    if let Some(reason) = unindexable(report) {
        insert_quarantine(conn, raw, &QuarantineCode::Unindexable, &reason, now).await?;
        return Ok(IngestOutcome::Quarantined { reason });
    }
    let content = sha256_hex(report.to_json().as_bytes());
    // The common case in one statement: a new identity. Both unique indexes (identity + content,
    // and the one counted body per identity) turn anything else into no row.
    if let Some(key) = insert_report(conn, raw, report, &content, trust, false, true).await? {
        insert_children(conn, key, read).await?;
        return Ok(IngestOutcome::Stored(ReportKey(key)));
    }
    let identity = report.identity();
    let rows = sqlx::query(
        "SELECT id, content_sha256, trust, counted FROM reports \
         WHERE organization_name = $1 AND report_id = $2 AND date_start = $3 \
         AND date_end = $4 ORDER BY id",
    )
    .bind(text(&identity.organization_name))
    .bind(text(&identity.report_id))
    .bind(identity.start_unix_seconds)
    .bind(identity.end_unix_seconds)
    .fetch_all(&mut *conn)
    .await?;
    let mut counted_body: Option<(i64, i64)> = None;
    for row in &rows {
        let id: i64 = row.try_get("id")?;
        let stored_content: String = row.try_get("content_sha256")?;
        if stored_content == content {
            return Ok(IngestOutcome::Duplicate(ReportKey(id)));
        }
        if stored_content.is_empty() {
            // Stored before content hashes were kept: the identity was the whole key
            // then, so it is this report; it gets its hash now.
            sqlx::query("UPDATE reports SET content_sha256 = $1 WHERE id = $2")
                .bind(content.as_str())
                .bind(id)
                .execute(&mut *conn)
                .await?;
            return Ok(IngestOutcome::Duplicate(ReportKey(id)));
        }
        if row.try_get::<i64, _>("counted")? == 1 {
            counted_body = Some((id, row.try_get("trust")?));
        }
    }
    let counted = counted_body.is_none_or(|(_, counted_trust)| trust > counted_trust);
    if let (true, Some((id, _))) = (counted, counted_body) {
        sqlx::query("UPDATE reports SET counted = 0 WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(
        "UPDATE reports SET conflict = 1 WHERE organization_name = $1 \
         AND report_id = $2 AND date_start = $3 AND date_end = $4",
    )
    .bind(text(&identity.organization_name))
    .bind(text(&identity.report_id))
    .bind(identity.start_unix_seconds)
    .bind(identity.end_unix_seconds)
    .execute(&mut *conn)
    .await?;
    let key = insert_report(conn, raw, report, &content, trust, true, counted)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    insert_children(conn, key, read).await?;
    Ok(IngestOutcome::Conflict {
        report: ReportKey(key),
        counted,
    })
}

/// Inserts a `reports` row; `None` when a unique index refused it.
async fn insert_report(
    conn: &mut AnyConnection,
    raw: RawId,
    report: &Report,
    content: &str,
    trust: i64,
    conflict: bool,
    counted: bool,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "INSERT INTO reports (raw_id, organization_name, report_id, date_start, date_end, \
         contact_info, content_sha256, trust, conflict, counted) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(raw.0)
    .bind(text(&report.organization_name))
    .bind(text(&report.report_id))
    .bind(report.date_range.start.unix_seconds())
    .bind(report.date_range.end.unix_seconds())
    .bind(report.contact_info.as_deref().map(text))
    .bind(content)
    .bind(trust)
    .bind(i64::from(conflict))
    .bind(i64::from(counted))
    .fetch_optional(&mut *conn)
    .await
}

/// The policies, failure details and warnings of a report stored under `report`.
async fn insert_children(
    conn: &mut AnyConnection,
    report: i64,
    read: &ReadReport,
) -> sqlx::Result<()> {
    for (ordinal, policy) in read.report.policies.iter().enumerate() {
        insert_policy(conn, report, ordinal, policy).await?;
    }
    for warning in &read.warnings {
        sqlx::query("INSERT INTO report_warnings (report, path, message) VALUES ($1, $2, $3)")
            .bind(report)
            .bind(text(&warning.path))
            .bind(text(&warning.kind.to_string()))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn insert_policy(
    conn: &mut AnyConnection,
    report: i64,
    ordinal: usize,
    result: &PolicyResult,
) -> sqlx::Result<()> {
    let policy = &result.policy;
    let policy_id: i64 = sqlx::query_scalar(
        "INSERT INTO report_policies (report, policy_type, policy_domain, policy_string, \
         mx_host, successful_sessions, failed_sessions, ordinal) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(report)
    .bind(text(policy.policy_type.as_str()))
    .bind(text(&policy.policy_domain))
    .bind(json_strings(&policy.policy_string))
    .bind(json_strings(&policy.mx_host))
    .bind(saturating_i64(
        result.summary.total_successful_session_count,
    ))
    .bind(saturating_i64(result.summary.total_failure_session_count))
    .bind(saturating_i64(ordinal as u64))
    .fetch_one(&mut *conn)
    .await?;
    for detail in &result.failure_details {
        sqlx::query(
            "INSERT INTO failure_details (policy, result_type, sending_mta_ip, \
             receiving_mx_hostname, receiving_mx_helo, receiving_ip, failed_session_count, \
             additional_information, failure_reason_code) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(policy_id)
        .bind(text(detail.result_type.as_str()))
        .bind(detail.sending_mta_ip.as_deref().map(text))
        .bind(detail.receiving_mx_hostname.as_deref().map(text))
        .bind(detail.receiving_mx_helo.as_deref().map(text))
        .bind(detail.receiving_ip.as_deref().map(text))
        .bind(saturating_i64(detail.failed_session_count))
        .bind(detail.additional_information.as_deref().map(text))
        .bind(detail.failure_reason_code.as_deref().map(text))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A raw body by key.
pub(crate) async fn raw(
    conn: &mut AnyConnection,
    id: RawId,
) -> Result<Option<RawReport>, StoreError> {
    let row = sqlx::query(
        "SELECT id, received_at, source, content_type, bytes, sha256 FROM raw_reports \
         WHERE id = $1",
    )
    .bind(id.0)
    .fetch_optional(conn)
    .await
    .map_err(crate::error::database("read raw report"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(RawReport {
        id: RawId(get(&row, "id")?),
        received_at: timestamp(get(&row, "received_at")?, "raw_reports.received_at")?,
        source: get(&row, "source")?,
        content_type: get(&row, "content_type")?,
        bytes: get(&row, "bytes")?,
        sha256: get(&row, "sha256")?,
    }))
}

const QUARANTINE_COLUMNS: &str = "SELECT q.raw_id, q.code, q.reason, q.created_at, r.source, r.content_type, r.size \
     FROM quarantine q JOIN raw_reports r ON r.id = q.raw_id";

/// Bodies in quarantine, oldest first; at most `limit` of them when given.
pub(crate) async fn list_quarantine(
    conn: &mut AnyConnection,
    limit: Option<u32>,
) -> Result<Vec<QuarantineEntry>, StoreError> {
    let statement = match limit {
        Some(limit) => format!("{QUARANTINE_COLUMNS} ORDER BY q.id LIMIT {limit}"),
        None => format!("{QUARANTINE_COLUMNS} ORDER BY q.id"),
    };
    let rows = sqlx::query(AssertSqlSafe(statement))
        .fetch_all(conn)
        .await
        .map_err(crate::error::database("list quarantine"))?;
    rows.iter().map(quarantine_entry).collect()
}

/// The quarantine entry of the raw body `raw`, if it is in quarantine.
pub(crate) async fn quarantined(
    conn: &mut AnyConnection,
    raw: RawId,
) -> Result<Option<QuarantineEntry>, StoreError> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "{QUARANTINE_COLUMNS} WHERE q.raw_id = $1"
    )))
    .bind(raw.0)
    .fetch_optional(conn)
    .await
    .map_err(crate::error::database("read quarantine"))?;
    row.as_ref().map(quarantine_entry).transpose()
}

fn quarantine_entry(row: &sqlx::any::AnyRow) -> Result<QuarantineEntry, StoreError> {
    Ok(QuarantineEntry {
        raw: RawId(get(row, "raw_id")?),
        code: QuarantineCode::from_name(&get::<String>(row, "code")?),
        reason: get(row, "reason")?,
        created_at: timestamp(get(row, "created_at")?, "quarantine.created_at")?,
        source: get(row, "source")?,
        content_type: get(row, "content_type")?,
        size: count(get(row, "size")?),
    })
}

/// Reports matching `filter`, newest period first, each with its policies.
pub(crate) async fn list_reports(
    conn: &mut AnyConnection,
    filter: &ReportFilter,
) -> Result<Vec<ReportSummary>, StoreError> {
    // The filter decides which conditions (and placeholders) the statement has; the text is
    // built from constant pieces only, and values are bound.
    let mut sql = String::from(
        "SELECT r.id, r.organization_name, r.report_id, r.date_start, r.date_end, \
         r.conflict, r.counted, \
         p.policy_domain, p.policy_type, p.successful_sessions, p.failed_sessions \
         FROM (SELECT id, organization_name, report_id, date_start, date_end, conflict, \
         counted FROM reports WHERE 1 = 1",
    );
    if !filter.include_uncounted {
        sql.push_str(" AND counted = 1");
    }
    let mut placeholder = 0;
    let domain = filter.domain.as_deref().map(normalize_domain);
    if domain.is_some() {
        placeholder += 1;
        let _ = write!(
            sql,
            " AND id IN (SELECT report FROM report_policies \
             WHERE rtrim(lower(policy_domain), '.') = ${placeholder})"
        );
    }
    let domains: Option<Vec<String>> = filter
        .domains
        .as_ref()
        .map(|domains| domains.iter().map(|d| normalize_domain(d)).collect());
    match domains.as_deref() {
        None => {}
        Some([]) => sql.push_str(" AND 1 = 0"),
        Some(list) => {
            sql.push_str(
                " AND id IN (SELECT report FROM report_policies \
                 WHERE rtrim(lower(policy_domain), '.') IN (",
            );
            for index in 0..list.len() {
                placeholder += 1;
                let comma = if index == 0 { "" } else { ", " };
                let _ = write!(sql, "{comma}${placeholder}");
            }
            sql.push_str("))");
        }
    }
    if filter.organization.is_some() {
        placeholder += 1;
        let _ = write!(sql, " AND organization_name = ${placeholder}");
    }
    if filter.since.is_some() {
        placeholder += 1;
        let _ = write!(sql, " AND date_end > ${placeholder}");
    }
    if filter.until.is_some() {
        placeholder += 1;
        let _ = write!(sql, " AND date_start < ${placeholder}");
    }
    if filter.failures_only {
        sql.push_str(" AND id IN (SELECT report FROM report_policies WHERE failed_sessions > 0)");
    }
    placeholder += 1;
    let limit = placeholder;
    placeholder += 1;
    let _ = write!(
        sql,
        " ORDER BY date_start DESC, id DESC LIMIT ${limit} OFFSET ${placeholder}) r \
         LEFT JOIN report_policies p ON p.report = r.id \
         ORDER BY r.date_start DESC, r.id DESC, p.id"
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    if let Some(domain) = domain {
        query = query.bind(domain);
    }
    for domain in domains.unwrap_or_default() {
        query = query.bind(domain);
    }
    if let Some(organization) = &filter.organization {
        query = query.bind(organization.clone());
    }
    if let Some(since) = &filter.since {
        query = query.bind(since.unix_seconds());
    }
    if let Some(until) = &filter.until {
        query = query.bind(until.unix_seconds());
    }
    let rows = query
        .bind(i64::from(filter.limit))
        .bind(i64::from(filter.offset))
        .fetch_all(conn)
        .await
        .map_err(crate::error::database("list reports"))?;

    let mut summaries: Vec<ReportSummary> = Vec::new();
    for row in &rows {
        let key = ReportKey(get(row, "id")?);
        if summaries.last().is_none_or(|last| last.key != key) {
            summaries.push(ReportSummary {
                key,
                organization_name: get(row, "organization_name")?,
                report_id: get(row, "report_id")?,
                date_start: timestamp(get(row, "date_start")?, "reports.date_start")?,
                date_end: timestamp(get(row, "date_end")?, "reports.date_end")?,
                conflict: get::<i64>(row, "conflict")? != 0,
                counted: get::<i64>(row, "counted")? != 0,
                policies: Vec::new(),
            });
        }
        // A report without policies comes back as one row of NULL policy columns.
        let Some(domain) = get::<Option<String>>(row, "policy_domain")? else {
            continue;
        };
        if let Some(summary) = summaries.last_mut() {
            summary.policies.push(PolicySummary {
                domain,
                policy_type: get(row, "policy_type")?,
                successful: count(get(row, "successful_sessions")?),
                failed: count(get(row, "failed_sessions")?),
            });
        }
    }
    Ok(summaries)
}

/// One report in full. Runs its reads in one transaction so they see one state.
pub(crate) async fn get_report(
    conn: &mut AnyConnection,
    key: ReportKey,
) -> Result<Option<StoredReport>, StoreError> {
    let row = sqlx::query(
        "SELECT id, raw_id, organization_name, report_id, date_start, date_end, contact_info, \
         content_sha256, counted FROM reports WHERE id = $1",
    )
    .bind(key.0)
    .fetch_optional(&mut *conn)
    .await
    .map_err(crate::error::database("read report"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let policy_rows = sqlx::query(
        "SELECT id, policy_type, policy_domain, policy_string, mx_host, successful_sessions, \
         failed_sessions FROM report_policies WHERE report = $1 ORDER BY ordinal, id",
    )
    .bind(key.0)
    .fetch_all(&mut *conn)
    .await
    .map_err(crate::error::database("read report policies"))?;
    let detail_rows = sqlx::query(
        "SELECT policy, result_type, sending_mta_ip, receiving_mx_hostname, receiving_mx_helo, \
         receiving_ip, failed_session_count, additional_information, failure_reason_code \
         FROM failure_details \
         WHERE policy IN (SELECT id FROM report_policies WHERE report = $1) ORDER BY id",
    )
    .bind(key.0)
    .fetch_all(&mut *conn)
    .await
    .map_err(crate::error::database("read failure details"))?;
    let warning_rows =
        sqlx::query("SELECT path, message FROM report_warnings WHERE report = $1 ORDER BY id")
            .bind(key.0)
            .fetch_all(&mut *conn)
            .await
            .map_err(crate::error::database("read report warnings"))?;

    let conflicting = sqlx::query_scalar(
        "SELECT o.id FROM reports r JOIN reports o ON o.organization_name = r.organization_name \
         AND o.report_id = r.report_id AND o.date_start = r.date_start \
         AND o.date_end = r.date_end AND o.id <> r.id WHERE r.id = $1 ORDER BY o.id",
    )
    .bind(key.0)
    .fetch_all(&mut *conn)
    .await
    .map_err(crate::error::database("read conflicting reports"))?
    .into_iter()
    .map(ReportKey)
    .collect();

    let mut policies = Vec::with_capacity(policy_rows.len());
    for row in &policy_rows {
        let policy_id: i64 = get(row, "id")?;
        let mut failure_details = Vec::new();
        for detail in &detail_rows {
            if get::<i64>(detail, "policy")? == policy_id {
                failure_details.push(FailureDetail {
                    result_type: ResultType::from_name(&get::<String>(detail, "result_type")?),
                    sending_mta_ip: get(detail, "sending_mta_ip")?,
                    receiving_mx_hostname: get(detail, "receiving_mx_hostname")?,
                    receiving_mx_helo: get(detail, "receiving_mx_helo")?,
                    receiving_ip: get(detail, "receiving_ip")?,
                    failed_session_count: count(get(detail, "failed_session_count")?),
                    additional_information: get(detail, "additional_information")?,
                    failure_reason_code: get(detail, "failure_reason_code")?,
                });
            }
        }
        policies.push(PolicyResult {
            policy: AppliedPolicy {
                policy_type: PolicyType::from_name(&get::<String>(row, "policy_type")?),
                policy_string: strings(&get::<String>(row, "policy_string")?, "policy_string")?,
                policy_domain: get(row, "policy_domain")?,
                mx_host: strings(&get::<String>(row, "mx_host")?, "mx_host")?,
            },
            summary: SessionSummary {
                total_successful_session_count: count(get(row, "successful_sessions")?),
                total_failure_session_count: count(get(row, "failed_sessions")?),
            },
            failure_details,
        });
    }
    let warnings = warning_rows
        .iter()
        .map(|row| {
            Ok(StoredWarning {
                path: get(row, "path")?,
                message: get(row, "message")?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Some(StoredReport {
        key,
        raw: RawId(get(&row, "raw_id")?),
        report: Report {
            organization_name: get(&row, "organization_name")?,
            date_range: DateRange {
                start: timestamp(get(&row, "date_start")?, "reports.date_start")?,
                end: timestamp(get(&row, "date_end")?, "reports.date_end")?,
            },
            contact_info: get(&row, "contact_info")?,
            report_id: get(&row, "report_id")?,
            policies,
        },
        warnings,
        content_sha256: get(&row, "content_sha256")?,
        counted: get::<i64>(&row, "counted")? != 0,
        conflicting,
    }))
}

/// A column of `row`, or [`StoreError::Corrupt`] when it has another type.
pub(crate) fn get<T>(row: &sqlx::any::AnyRow, column: &'static str) -> Result<T, StoreError>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(column).map_err(|error| StoreError::Corrupt {
        what: column,
        reason: error.to_string(),
    })
}

fn timestamp(unix_seconds: i64, what: &'static str) -> Result<Timestamp, StoreError> {
    Timestamp::from_unix_seconds(unix_seconds).ok_or_else(|| StoreError::Corrupt {
        what,
        reason: format!("{unix_seconds} is not a time between the years 0000 and 9999"),
    })
}

pub(crate) fn strings(json: &str, what: &'static str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json).map_err(|error| StoreError::Corrupt {
        what,
        reason: error.to_string(),
    })
}

pub(crate) fn json_strings(values: &[String]) -> String {
    serde_json::Value::from(values).to_string()
}

/// Counts are stored as `BIGINT`: a count past `i64::MAX` (only a hostile report sends one) is
/// stored as `i64::MAX`, so sums stay positive.
pub(crate) fn saturating_i64(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

pub(crate) fn count(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or(0)
}

/// Policy domains compare lowercased and without a trailing dot.
pub(crate) fn normalize_domain(domain: &str) -> String {
    domain.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PostgreSQL migration is the SQLite one with PostgreSQL's types: same tables, same
    /// columns, same indexes.
    #[test]
    fn both_backends_have_the_same_schema() {
        let sqlite = include_str!("../migrations/sqlite/0001_reports.sql")
            .replace(
                "INTEGER PRIMARY KEY AUTOINCREMENT",
                "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            )
            .replace(" INTEGER NOT NULL", " BIGINT NOT NULL")
            .replace("BLOB", "BYTEA")
            .replace("../postgres/", "../sqlite/");
        assert_eq!(
            sqlite,
            include_str!("../migrations/postgres/0001_reports.sql")
        );
    }

    /// The same for the policy cache (migration 40), where integers may be NULL.
    #[test]
    fn both_backends_have_the_same_policy_cache_schema() {
        let sqlite = include_str!("../migrations/sqlite/0040_policy_cache.sql")
            .replace(
                "INTEGER PRIMARY KEY AUTOINCREMENT",
                "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            )
            .replace(" INTEGER", " BIGINT")
            .replace("../postgres/", "../sqlite/");
        assert_eq!(
            sqlite,
            include_str!("../migrations/postgres/0040_policy_cache.sql")
        );
    }

    /// A database written before migration 2 keeps every row, and its tables still refer to
    /// each other (SQLite rebuilds them).
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn sqlite_rows_survive_the_distinct_bodies_migration() {
        use sqlx::{Connection, Executor};
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("store.db").display()
        );
        let mut conn = AnyConnection::connect(&url).await.expect("connect");
        let full = migrator(Backend::Sqlite);
        let mut first = migrator(Backend::Sqlite);
        first.migrations = Cow::Owned(full.migrations[..1].to_vec());
        first.run(&mut conn).await.expect("migration 1");
        conn.execute(
            "INSERT INTO raw_reports VALUES (1, 0, 'https', 'application/tlsrpt+json', x'00', 'h', 1);
             INSERT INTO reports VALUES (1, 1, 'Org', 'r1', 0, 86399, NULL);
             INSERT INTO report_policies VALUES (1, 1, 'sts', 'example.com', '[]', '[]', 5, 1);
             INSERT INTO failure_details VALUES (1, 1, 'starttls-not-supported', NULL, NULL, NULL,
                 NULL, 1, NULL, NULL);
             INSERT INTO report_warnings VALUES (1, 1, 'contact-info', 'missing');
             INSERT INTO raw_reports VALUES (2, 0, 'https', 'text/plain', x'01', 'i', 1);
             INSERT INTO quarantine VALUES (1, 2, 'not JSON', 0);",
        )
        .await
        .expect("rows of version 1");
        full.run(&mut conn).await.expect("migration 2");
        let counts: (i64, i64, i64, i64, String) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM reports WHERE counted = 1 AND content_sha256 = ''),
                    (SELECT count(*) FROM report_policies), (SELECT count(*) FROM failure_details),
                    (SELECT count(*) FROM report_warnings), (SELECT code FROM quarantine)",
        )
        .fetch_one(&mut conn)
        .await
        .expect("counts");
        assert_eq!(counts, (1, 1, 1, 1, "unreadable".to_owned()));
        // The references point at the rebuilt tables: deleting the raw body cascades.
        conn.execute("DELETE FROM raw_reports WHERE id = 1")
            .await
            .expect("delete");
        let left: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM reports) + (SELECT count(*) FROM report_policies)
                  + (SELECT count(*) FROM failure_details) + (SELECT count(*) FROM report_warnings)",
        )
        .fetch_one(&mut conn)
        .await
        .expect("count");
        assert_eq!(left, 0);
        let schema: Vec<String> =
            sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")
                .fetch_all(&mut conn)
                .await
                .expect("schema");
        assert!(schema.iter().all(|sql| !sql.contains("_new")), "{schema:?}");
    }

    #[test]
    fn counts_past_i64_saturate() {
        assert_eq!(saturating_i64(u64::MAX), i64::MAX);
        assert_eq!(count(saturating_i64(12)), 12);
    }

    #[test]
    fn domains_compare_lowercased_without_trailing_dot() {
        assert_eq!(normalize_domain("Example.COM."), "example.com");
    }
}
