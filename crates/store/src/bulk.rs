//! The reports of one group commit stored in a few multi-row statements instead of about six
//! statements each: raw bodies, reports, policies, failure details and warnings, one statement
//! per table (more only past [`MAX_PARAMS`]). On PostgreSQL each statement is a round trip, so
//! this is what makes a batch cheap; on SQLite it saves the per-statement work.
//!
//! Only the common case goes this way: a readable report, new body, new identity. Anything
//! else (the same body again, a second body with a stored identity, an oversized field, an
//! unreadable body) is left to the write's own [`apply`](crate::writer::Write::apply) in the
//! same transaction, which handles it one statement at a time as before. Every statement here
//! is `ON CONFLICT DO NOTHING` where a unique index could refuse a row, so a row another write
//! (or an earlier, uncertain commit) stored is simply not inserted, and the write that wanted it
//! goes the slow way.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::model::{Ingested, RawId, ReportKey};
use crate::sql::{json_strings, saturating_i64, text};
use crate::writes::{StoreIngest, Verdict};

/// The most bind parameters in one statement: well under SQLite's 32,766 and PostgreSQL's
/// 65,535, whatever a hostile report holds.
const MAX_PARAMS: usize = 16_000;

/// A value bound to a placeholder.
enum Value<'a> {
    Int(i64),
    Text(String),
    MaybeText(Option<String>),
    Bytes(&'a [u8]),
}

/// Runs `INSERT INTO … (columns) VALUES (…), (…) tail` over `rows` (each `columns` values),
/// in as many statements as [`MAX_PARAMS`] asks, and returns what `tail`'s `RETURNING` gave.
async fn insert_rows(
    conn: &mut AnyConnection,
    head: &str,
    columns: usize,
    rows: Vec<Vec<Value<'_>>>,
    tail: &str,
) -> sqlx::Result<Vec<AnyRow>> {
    let per_statement = (MAX_PARAMS / columns).max(1);
    let mut returned = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Value<'_>>> = rows.by_ref().take(per_statement).collect();
        let mut sql = String::with_capacity(head.len() + tail.len() + chunk.len() * columns * 6);
        sql.push_str(head);
        sql.push_str(" VALUES ");
        let mut n = 0;
        for (i, _) in chunk.iter().enumerate() {
            sql.push_str(if i == 0 { "(" } else { ", (" });
            for c in 0..columns {
                n += 1;
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push('$');
                sql.push_str(&n.to_string());
            }
            sql.push(')');
        }
        sql.push(' ');
        sql.push_str(tail);
        // Not kept prepared: every batch size is another statement, and a cache of them
        // would hold megabytes of prepared statements for a bulk ingest.
        let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for value in chunk.into_iter().flatten() {
            query = match value {
                Value::Int(v) => query.bind(v),
                Value::Text(v) => query.bind(v),
                Value::MaybeText(v) => query.bind(v),
                Value::Bytes(v) => query.bind(v),
            };
        }
        returned.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(returned)
}

/// Stores what it can of `ingests` (all in the caller's transaction) and returns, for each,
/// its outcome, or `None` when the write must be applied on its own.
pub(crate) async fn insert_ingests(
    conn: &mut AnyConnection,
    ingests: &[&StoreIngest],
) -> sqlx::Result<Vec<Option<Ingested>>> {
    let mut outcomes: Vec<Option<Ingested>> = vec![None; ingests.len()];

    // Raw bodies, each distinct one once. The ones that were stored before (a retry, or the
    // same bytes twice in this batch) get no id here, and go the slow way.
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    let mut raw_rows = Vec::new();
    for (i, ingest) in ingests.iter().enumerate() {
        let raw = &ingest.raw;
        if first_of.insert(raw.sha256.as_str(), i).is_none() {
            raw_rows.push(vec![
                Value::Int(raw.received_at),
                Value::Text(raw.source.as_str().to_owned()),
                Value::Text(text(&raw.content_type)),
                Value::Bytes(&raw.bytes),
                Value::Text(raw.sha256.clone()),
                Value::Int(saturating_i64(raw.bytes.len() as u64)),
            ]);
        }
    }
    let inserted = insert_rows(
        conn,
        "INSERT INTO raw_reports (received_at, source, content_type, bytes, sha256, size)",
        6,
        raw_rows,
        "ON CONFLICT (sha256) DO NOTHING RETURNING id, sha256",
    )
    .await?;
    let mut raw_ids: Vec<Option<RawId>> = vec![None; ingests.len()];
    for row in &inserted {
        let sha: String = row.try_get("sha256")?;
        if let Some(&i) = first_of.get(sha.as_str()) {
            raw_ids[i] = Some(RawId(row.try_get("id")?));
        }
    }

    // The DKIM checks of the new bodies that are mails, with them.
    let dkim_rows: Vec<Vec<Value<'_>>> = ingests
        .iter()
        .zip(&raw_ids)
        .filter_map(|(ingest, raw)| {
            let (check, raw) = (ingest.dkim.as_ref()?, (*raw)?);
            Some(vec![
                Value::Int(raw.0),
                Value::Text(check.result.as_str().to_owned()),
                Value::MaybeText(check.domain.as_deref().map(text)),
                Value::MaybeText(check.reason.as_deref().map(text)),
                Value::Int(ingest.raw.received_at),
            ])
        })
        .collect();
    insert_rows(
        conn,
        "INSERT INTO raw_dkim (raw_id, result, domain, reason, checked_at)",
        5,
        dkim_rows,
        "",
    )
    .await?;

    // Reports of the new bodies. A row a unique index refuses (identity and content stored, or
    // another counted body of the identity) is not inserted: that write goes the slow way.
    let mut report_rows = Vec::new();
    let mut candidates = Vec::new();
    for (i, ingest) in ingests.iter().enumerate() {
        let (Some(raw), Verdict::Read(read), Some(content)) = (
            raw_ids[i],
            &ingest.verdict,
            ingest.content_sha256.as_deref(),
        ) else {
            continue;
        };
        let report = &read.report;
        report_rows.push(vec![
            Value::Int(raw.0),
            Value::Text(text(&report.organization_name)),
            Value::Text(text(&report.report_id)),
            Value::Int(report.date_range.start.unix_seconds()),
            Value::Int(report.date_range.end.unix_seconds()),
            Value::MaybeText(report.contact_info.as_deref().map(text)),
            Value::Text(content.to_owned()),
            Value::Int(ingest.trust),
            Value::Int(0),
            Value::Int(1),
        ]);
        candidates.push((raw, i));
    }
    if report_rows.is_empty() {
        return Ok(outcomes);
    }
    let inserted = insert_rows(
        conn,
        "INSERT INTO reports (raw_id, organization_name, report_id, date_start, date_end, \
         contact_info, content_sha256, trust, conflict, counted)",
        10,
        report_rows,
        "ON CONFLICT DO NOTHING RETURNING id, raw_id",
    )
    .await?;
    let by_raw: HashMap<i64, usize> = candidates.iter().map(|&(raw, i)| (raw.0, i)).collect();
    let mut stored: Vec<(i64, usize)> = Vec::with_capacity(inserted.len());
    for row in &inserted {
        let raw: i64 = row.try_get("raw_id")?;
        if let Some(&i) = by_raw.get(&raw) {
            stored.push((row.try_get("id")?, i));
        }
    }

    // Their policies, each with its place in its report, and their warnings.
    let mut policy_rows = Vec::new();
    let mut warning_rows = Vec::new();
    for &(report_key, i) in &stored {
        let Verdict::Read(read) = &ingests[i].verdict else {
            continue;
        };
        for (ordinal, result) in read.report.policies.iter().enumerate() {
            let policy = &result.policy;
            policy_rows.push(vec![
                Value::Int(report_key),
                Value::Text(text(policy.policy_type.as_str())),
                Value::Text(text(&policy.policy_domain)),
                Value::Text(json_strings(&policy.policy_string)),
                Value::Text(json_strings(&policy.mx_host)),
                Value::Int(saturating_i64(
                    result.summary.total_successful_session_count,
                )),
                Value::Int(saturating_i64(result.summary.total_failure_session_count)),
                Value::Int(saturating_i64(ordinal as u64)),
            ]);
        }
        for warning in &read.warnings {
            warning_rows.push(vec![
                Value::Int(report_key),
                Value::Text(text(&warning.path)),
                Value::Text(text(&warning.kind.to_string())),
            ]);
        }
    }
    let policies = insert_rows(
        conn,
        "INSERT INTO report_policies (report, policy_type, policy_domain, policy_string, \
         mx_host, successful_sessions, failed_sessions, ordinal)",
        8,
        policy_rows,
        "RETURNING id, report, ordinal",
    )
    .await?;
    let mut policy_ids: HashMap<(i64, i64), i64> = HashMap::with_capacity(policies.len());
    for row in &policies {
        policy_ids.insert(
            (row.try_get("report")?, row.try_get("ordinal")?),
            row.try_get("id")?,
        );
    }
    insert_rows(
        conn,
        "INSERT INTO report_warnings (report, path, message)",
        3,
        warning_rows,
        "",
    )
    .await?;

    let mut detail_rows = Vec::new();
    for &(report_key, i) in &stored {
        let Verdict::Read(read) = &ingests[i].verdict else {
            continue;
        };
        for (ordinal, result) in read.report.policies.iter().enumerate() {
            let key = (report_key, saturating_i64(ordinal as u64));
            let Some(&policy) = policy_ids.get(&key) else {
                return Err(sqlx::Error::RowNotFound);
            };
            for detail in &result.failure_details {
                detail_rows.push(vec![
                    Value::Int(policy),
                    Value::Text(text(detail.result_type.as_str())),
                    Value::MaybeText(detail.sending_mta_ip.as_deref().map(text)),
                    Value::MaybeText(detail.receiving_mx_hostname.as_deref().map(text)),
                    Value::MaybeText(detail.receiving_mx_helo.as_deref().map(text)),
                    Value::MaybeText(detail.receiving_ip.as_deref().map(text)),
                    Value::Int(saturating_i64(detail.failed_session_count)),
                    Value::MaybeText(detail.additional_information.as_deref().map(text)),
                    Value::MaybeText(detail.failure_reason_code.as_deref().map(text)),
                ]);
            }
        }
    }
    insert_rows(
        conn,
        "INSERT INTO failure_details (policy, result_type, sending_mta_ip, \
         receiving_mx_hostname, receiving_mx_helo, receiving_ip, failed_session_count, \
         additional_information, failure_reason_code)",
        9,
        detail_rows,
        "",
    )
    .await?;

    for (report_key, i) in stored {
        if let Some(raw) = raw_ids[i] {
            outcomes[i] = Some(Ingested::Stored {
                raw,
                report: ReportKey(report_key),
            });
        }
    }
    Ok(outcomes)
}
