//! The stored reports turned into answers: per-policy rows ([`Store::policy_rows`]) and the
//! counting rules of [`summarize`] and [`readiness`].
//!
//! Counting: a report can carry an `sts` and a `tlsa` entry for the same domain and the same
//! sessions (Microsoft does). Per report and policy domain one entry is *counted*, the one with
//! the most sessions (the first on a tie); the others are kept and exported, marked not counted.
//! Failure details are summed as reported: when they add up to more than the entry's failure
//! total (failure types overlap, and Mail.ru's do), that is flagged, never "fixed".
//!
//! [`Store::policy_rows`]: crate::Store::policy_rows

use std::collections::{BTreeMap, BTreeSet};

use sqlx::AnyConnection;
use sqlx::AssertSqlSafe;

use crate::error::StoreError;
use crate::model::ReportKey;
use crate::sql::{count, get, normalize_domain};

/// Which policy entries [`Store::policy_rows`](crate::Store::policy_rows) returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnalysisFilter {
    /// Only entries for this policy domain (case-insensitive, trailing dot ignored).
    pub domain: Option<String>,
    /// Only entries for one of these policy domains (as `domain`); `None` for any. An empty
    /// list matches nothing.
    pub domains: Option<Vec<String>>,
    /// Only reports whose period ends after this time (UTC seconds).
    pub since: Option<i64>,
    /// Only reports whose period starts before this time (UTC seconds).
    pub until: Option<i64>,
}

/// One policy entry of a stored report, with its report's identity and its failure details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRow {
    /// The report's key in the store.
    pub report: ReportKey,
    /// `organization-name`.
    pub organization_name: String,
    /// `report-id`.
    pub report_id: String,
    /// `date-range.start-datetime`, UTC seconds.
    pub date_start: i64,
    /// `date-range.end-datetime`, UTC seconds.
    pub date_end: i64,
    /// `policy-type`, as sent.
    pub policy_type: String,
    /// `policy-domain`, as sent.
    pub policy_domain: String,
    /// `total-successful-session-count`.
    pub successful: u64,
    /// `total-failure-session-count`.
    pub failed: u64,
    /// Whether this entry's sessions are counted (see the module docs).
    pub counted: bool,
    /// `failure-details`, in report order.
    pub details: Vec<DetailRow>,
}

/// One `failure-details` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailRow {
    /// `result-type`.
    pub result_type: String,
    /// `sending-mta-ip`.
    pub sending_mta_ip: Option<String>,
    /// `receiving-mx-hostname`.
    pub receiving_mx_hostname: Option<String>,
    /// `receiving-ip`.
    pub receiving_ip: Option<String>,
    /// `failed-session-count`.
    pub failed_session_count: u64,
    /// `failure-reason-code`.
    pub failure_reason_code: Option<String>,
}

impl PolicyRow {
    /// Whether the failure details add up to more than the failure total.
    pub fn details_exceed_total(&self) -> bool {
        self.details
            .iter()
            .map(|d| d.failed_session_count)
            .fold(0u64, u64::saturating_add)
            > self.failed
    }
}

/// From this many domains in one read with a start date on, the date index leads the read.
const MANY_DOMAINS: usize = 8;

pub(crate) async fn policy_rows(
    conn: &mut AnyConnection,
    filter: &AnalysisFilter,
) -> Result<Vec<PolicyRow>, StoreError> {
    use std::fmt::Write as _;
    // Built from constant pieces only; values are bound.
    let mut sql = String::from(
        "SELECT r.id, r.organization_name, r.report_id, r.date_start, r.date_end, \
         p.id AS policy_id, p.policy_type, p.policy_domain, p.successful_sessions, \
         p.failed_sessions, f.result_type, f.sending_mta_ip, f.receiving_mx_hostname, \
         f.receiving_ip, f.failed_session_count, f.failure_reason_code \
         FROM reports r JOIN report_policies p ON p.report = r.id \
         LEFT JOIN failure_details f ON f.policy = p.id WHERE r.counted = 1",
    );
    // `counted`: of several bodies with one identity (a conflict), exactly one counts.
    let mut placeholder = 0;
    let domain = filter.domain.as_deref().map(normalize_domain);
    if domain.is_some() {
        placeholder += 1;
        let _ = write!(
            sql,
            " AND rtrim(lower(p.policy_domain), '.') = ${placeholder}"
        );
    }
    let domains: Option<Vec<String>> = filter
        .domains
        .as_ref()
        .map(|list| list.iter().map(|d| normalize_domain(d)).collect());
    match domains.as_deref() {
        None => {}
        Some([]) => sql.push_str(" AND 1 = 0"),
        Some(list) => {
            // Many domains over a period (the overview): the period's reports are far fewer
            // than those domains' whole history, but SQLite's planner (no statistics for an
            // IN list) would walk the domain index through every year of every domain (5 s
            // at 200 domains x 365 days instead of 0.3 s). `|| ''` keeps the domain index out
            // (on both backends) so the date index leads; one or a few domains keep it.
            let unindexed = list.len() >= MANY_DOMAINS && filter.since.is_some();
            sql.push_str(if unindexed {
                " AND rtrim(lower(p.policy_domain || ''), '.') IN ("
            } else {
                " AND rtrim(lower(p.policy_domain), '.') IN ("
            });
            for index in 0..list.len() {
                placeholder += 1;
                let comma = if index == 0 { "" } else { ", " };
                let _ = write!(sql, "{comma}${placeholder}");
            }
            sql.push(')');
        }
    }
    if filter.since.is_some() {
        placeholder += 1;
        let _ = write!(sql, " AND r.date_end > ${placeholder}");
    }
    if filter.until.is_some() {
        placeholder += 1;
        let _ = write!(sql, " AND r.date_start < ${placeholder}");
    }
    sql.push_str(" ORDER BY r.date_start, r.id, p.id, f.id");
    let mut query = sqlx::query(AssertSqlSafe(sql));
    if let Some(domain) = domain {
        query = query.bind(domain);
    }
    for domain in domains.unwrap_or_default() {
        query = query.bind(domain);
    }
    if let Some(since) = filter.since {
        query = query.bind(since);
    }
    if let Some(until) = filter.until {
        query = query.bind(until);
    }
    let rows = query
        .fetch_all(conn)
        .await
        .map_err(crate::error::database("read policies for analysis"))?;
    let mut out: Vec<PolicyRow> = Vec::new();
    let mut last_policy = None;
    for row in &rows {
        let policy_id: i64 = get(row, "policy_id")?;
        if last_policy != Some(policy_id) {
            last_policy = Some(policy_id);
            out.push(PolicyRow {
                report: ReportKey(get(row, "id")?),
                organization_name: get(row, "organization_name")?,
                report_id: get(row, "report_id")?,
                date_start: get(row, "date_start")?,
                date_end: get(row, "date_end")?,
                policy_type: get(row, "policy_type")?,
                policy_domain: get(row, "policy_domain")?,
                successful: count(get(row, "successful_sessions")?),
                failed: count(get(row, "failed_sessions")?),
                counted: false,
                details: Vec::new(),
            });
        }
        // A policy without failure details comes back as one row of NULL detail columns.
        let Some(result_type) = get::<Option<String>>(row, "result_type")? else {
            continue;
        };
        if let Some(policy) = out.last_mut() {
            policy.details.push(DetailRow {
                result_type,
                sending_mta_ip: get(row, "sending_mta_ip")?,
                receiving_mx_hostname: get(row, "receiving_mx_hostname")?,
                receiving_ip: get(row, "receiving_ip")?,
                failed_session_count: count(get(row, "failed_session_count")?),
                failure_reason_code: get(row, "failure_reason_code")?,
            });
        }
    }
    mark_counted(&mut out);
    Ok(out)
}

/// Marks, per report and policy domain, the entry whose sessions are counted.
fn mark_counted(rows: &mut [PolicyRow]) {
    let mut best: BTreeMap<(ReportKey, String), (usize, u64)> = BTreeMap::new();
    for (index, row) in rows.iter().enumerate() {
        let sessions = row.successful.saturating_add(row.failed);
        let key = (row.report, normalize_domain(&row.policy_domain));
        best.entry(key)
            .and_modify(|(at, most)| {
                if sessions > *most {
                    *at = index;
                    *most = sessions;
                }
            })
            .or_insert((index, sessions));
    }
    for (index, _) in best.into_values() {
        if let Some(row) = rows.get_mut(index) {
            row.counted = true;
        }
    }
}

/// What [`summarize`] groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// Policy domain.
    Domain,
    /// UTC day the report period starts.
    Day,
    /// Reporting organization.
    Org,
    /// Failure result type (failures only: reports break down failures, not successes).
    Result,
    /// Receiving MX host name (failures only).
    Mx,
    /// Sending MTA address (failures only).
    SendingIp,
    /// Receiving address (failures only).
    ReceivingIp,
}

impl GroupBy {
    /// Whether the groups come from failure details, which carry no successful sessions.
    pub fn failures_only(self) -> bool {
        matches!(
            self,
            Self::Result | Self::Mx | Self::SendingIp | Self::ReceivingIp
        )
    }
}

/// One group of [`summarize`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryRow {
    /// The group's value (`(none)` when a detail does not say).
    pub key: String,
    /// Reports counted in the group.
    pub reports: u64,
    /// Successful sessions; `None` when grouping by a failure detail field.
    pub successful: Option<u64>,
    /// Failed sessions: the counted entries' failure totals, or for a failure detail field the
    /// details' counts as reported.
    pub failed: u64,
    /// Failed sessions per result type, as the details report them.
    pub failure_types: BTreeMap<String, u64>,
    /// Counted entries whose failure details add up to more than their failure total.
    pub details_exceed_total: u64,
}

impl SummaryRow {
    /// Sessions in all (successful and failed), when known.
    pub fn sessions(&self) -> Option<u64> {
        self.successful.map(|ok| ok.saturating_add(self.failed))
    }

    /// Failed sessions over all sessions, when known and not zero.
    pub fn failure_rate(&self) -> Option<f64> {
        self.sessions()
            .filter(|&n| n > 0)
            .map(|n| self.failed as f64 / n as f64)
    }
}

const NONE: &str = "(none)";

/// Groups the counted entries of `rows` by `by`, in key order (days oldest first).
pub fn summarize(rows: &[PolicyRow], by: GroupBy) -> Vec<SummaryRow> {
    let mut groups: BTreeMap<String, (SummaryRow, BTreeSet<ReportKey>)> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.counted) {
        if by.failures_only() {
            for detail in &row.details {
                let key = match by {
                    GroupBy::Result => Some(detail.result_type.clone()),
                    GroupBy::Mx => detail.receiving_mx_hostname.clone(),
                    GroupBy::SendingIp => detail.sending_mta_ip.clone(),
                    _ => detail.receiving_ip.clone(),
                }
                .unwrap_or_else(|| NONE.to_owned());
                let (group, reports) = groups.entry(key.clone()).or_default();
                group.key = key;
                reports.insert(row.report);
                group.failed = group.failed.saturating_add(detail.failed_session_count);
                add_type(group, detail);
            }
            continue;
        }
        let key = match by {
            GroupBy::Domain => Some(normalize_domain(&row.policy_domain))
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| NONE.to_owned()),
            GroupBy::Day => day(row.date_start),
            _ => row.organization_name.clone(),
        };
        let (group, reports) = groups.entry(key.clone()).or_default();
        group.key = key;
        reports.insert(row.report);
        group.successful = Some(group.successful.unwrap_or(0).saturating_add(row.successful));
        group.failed = group.failed.saturating_add(row.failed);
        for detail in &row.details {
            add_type(group, detail);
        }
        if row.details_exceed_total() {
            group.details_exceed_total += 1;
        }
    }
    groups
        .into_values()
        .map(|(mut group, reports)| {
            group.reports = reports.len() as u64;
            group
        })
        .collect()
}

fn add_type(group: &mut SummaryRow, detail: &DetailRow) {
    let sum = group
        .failure_types
        .entry(detail.result_type.clone())
        .or_default();
    *sum = sum.saturating_add(detail.failed_session_count);
}

/// `YYYY-MM-DD` of a UTC time.
pub fn day(unix_seconds: i64) -> String {
    mta_sts_tlsrpt::report::Timestamp::from_unix_seconds(unix_seconds)
        .map(|t| t.to_string().chars().take(10).collect())
        .unwrap_or_else(|| unix_seconds.to_string())
}

/// Result types that mean a sender could not deliver securely to the MX itself: under
/// `enforce` a compliant sender refuses that MX (RFC 8461 §5).
pub const MX_FAILURE_TYPES: [&str; 5] = [
    "starttls-not-supported",
    "certificate-host-mismatch",
    "certificate-expired",
    "certificate-not-trusted",
    "validation-failure",
];

/// Result types that mean the policy itself could not be used.
pub const POLICY_FAILURE_TYPES: [&str; 3] = [
    "sts-policy-fetch-error",
    "sts-policy-invalid",
    "sts-webpki-invalid",
];

/// The least data [`readiness`] wants: days covered and distinct reporters.
pub const READY_MIN_DAYS: usize = 14;
/// See [`READY_MIN_DAYS`].
pub const READY_MIN_REPORTERS: usize = 2;
/// A reporter whose last report ends this many days before the newest report has stopped.
pub const STOPPED_AFTER_DAYS: i64 = 3;

/// May a domain go from `testing` to `enforce`? What the stored reports say.
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    /// The domain, normalized.
    pub domain: String,
    /// UTC days covered by at least one report.
    pub days: usize,
    /// First and last day covered.
    pub first_day: Option<String>,
    /// See `first_day`.
    pub last_day: Option<String>,
    /// Reporting organizations seen, with their report counts.
    pub reporters: BTreeMap<String, u64>,
    /// Reporters whose last report ends [`STOPPED_AFTER_DAYS`] or more before the newest one,
    /// with the day of their last report.
    pub stopped: BTreeMap<String, String>,
    /// The totals over counted entries.
    pub total: SummaryRow,
    /// Failures per receiving MX (from `sts` entries' details).
    pub by_mx: Vec<SummaryRow>,
    /// Failures per result type.
    pub by_result: Vec<SummaryRow>,
    /// MX hosts a compliant sender would refuse under `enforce`: failures of
    /// [`MX_FAILURE_TYPES`] under an `sts` policy, most failed sessions first.
    pub would_refuse: Vec<(String, u64, String)>,
    /// Failed sessions of [`POLICY_FAILURE_TYPES`].
    pub policy_failures: u64,
    /// The verdict.
    pub verdict: Verdict,
}

/// The answer of [`readiness`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Enough data, and no MX or policy failures: `enforce` would refuse no mail.
    Ready,
    /// Something must be fixed first; the first thing to fix.
    NotYet {
        /// What to fix first, in one sentence.
        fix: String,
    },
    /// Too few days or reporters to tell.
    NotEnoughData {
        /// Days covered.
        days: usize,
        /// Reporters seen.
        reporters: usize,
    },
}

/// The end of each reporting organization's last counted report (UTC seconds): how long
/// a reporter has been silent.
pub fn last_report_end(rows: &[PolicyRow]) -> BTreeMap<String, i64> {
    let mut last_seen: BTreeMap<String, i64> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.counted) {
        let last = last_seen
            .entry(row.organization_name.clone())
            .or_insert(i64::MIN);
        *last = (*last).max(row.date_end);
    }
    last_seen
}

/// Says whether `domain` may go to `enforce`, from its stored entries `rows` (already filtered
/// to the domain).
pub fn readiness(domain: &str, rows: &[PolicyRow]) -> Readiness {
    let counted: Vec<&PolicyRow> = rows.iter().filter(|r| r.counted).collect();
    let mut days = BTreeSet::new();
    let mut reporters: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen_reports = BTreeSet::new();
    for row in &counted {
        // A daily report ends at 23:59:59 or at the next day's 00:00:00: count the days it
        // starts in, up to the one before its end second.
        let mut t = row.date_start;
        let end = row.date_end.max(row.date_start);
        while t < end && days.len() < 10_000 {
            days.insert(day(t));
            t = t.saturating_add(86_400);
        }
        days.insert(day(row.date_start));
        if seen_reports.insert(row.report) {
            *reporters.entry(row.organization_name.clone()).or_default() += 1;
        }
    }
    let last_seen = last_report_end(rows);
    let newest = last_seen.values().copied().max().unwrap_or(0);
    let stopped = last_seen
        .iter()
        .filter(|&(_, &end)| newest.saturating_sub(end) >= STOPPED_AFTER_DAYS * 86_400)
        .map(|(org, &end)| (org.clone(), day(end)))
        .collect();
    let total = summarize(rows, GroupBy::Domain)
        .into_iter()
        .next()
        .unwrap_or_default();
    let by_mx = summarize(rows, GroupBy::Mx);
    let by_result = summarize(rows, GroupBy::Result);
    let mut refuse: BTreeMap<String, (u64, BTreeMap<String, u64>)> = BTreeMap::new();
    let mut policy_failures = 0u64;
    for row in &counted {
        for detail in &row.details {
            if POLICY_FAILURE_TYPES.contains(&detail.result_type.as_str()) {
                policy_failures = policy_failures.saturating_add(detail.failed_session_count);
            }
            if row.policy_type == "sts" && MX_FAILURE_TYPES.contains(&detail.result_type.as_str()) {
                let mx = detail
                    .receiving_mx_hostname
                    .clone()
                    .or_else(|| detail.receiving_ip.clone())
                    .unwrap_or_else(|| NONE.to_owned());
                let (sum, types) = refuse.entry(mx).or_default();
                *sum = sum.saturating_add(detail.failed_session_count);
                *types.entry(detail.result_type.clone()).or_default() +=
                    detail.failed_session_count;
            }
        }
    }
    let mut would_refuse: Vec<(String, u64, String)> = refuse
        .into_iter()
        .map(|(mx, (sum, types))| {
            let top = types
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .map(|(t, _)| t)
                .unwrap_or_default();
            (mx, sum, top)
        })
        .collect();
    would_refuse.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let verdict = if days.len() < READY_MIN_DAYS || reporters.len() < READY_MIN_REPORTERS {
        Verdict::NotEnoughData {
            days: days.len(),
            reporters: reporters.len(),
        }
    } else if let Some((mx, sessions, result)) = would_refuse.first() {
        Verdict::NotYet {
            fix: format!(
                "{mx}: {sessions} failed sessions ({result}); senders would refuse it under enforce"
            ),
        }
    } else if policy_failures > 0 {
        Verdict::NotYet {
            fix: format!(
                "the policy: {policy_failures} sessions could not fetch or validate \
                 https://mta-sts.{}/.well-known/mta-sts.txt",
                normalize_domain(domain)
            ),
        }
    } else {
        Verdict::Ready
    };
    Readiness {
        domain: normalize_domain(domain),
        days: days.len(),
        first_day: days.first().cloned(),
        last_day: days.last().cloned(),
        reporters,
        stopped,
        total,
        by_mx,
        by_result,
        would_refuse,
        policy_failures,
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(report: i64, policy_type: &str, ok: u64, failed: u64) -> PolicyRow {
        PolicyRow {
            report: ReportKey(report),
            organization_name: "Org".to_owned(),
            report_id: format!("r{report}"),
            date_start: 1_704_758_400,
            date_end: 1_704_844_799,
            policy_type: policy_type.to_owned(),
            policy_domain: "example.com".to_owned(),
            successful: ok,
            failed,
            counted: false,
            details: Vec::new(),
        }
    }

    fn detail(result: &str, mx: &str, n: u64) -> DetailRow {
        DetailRow {
            result_type: result.to_owned(),
            sending_mta_ip: None,
            receiving_mx_hostname: Some(mx.to_owned()),
            receiving_ip: None,
            failed_session_count: n,
            failure_reason_code: None,
        }
    }

    #[test]
    fn sts_and_tlsa_entries_for_the_same_sessions_are_counted_once() {
        let mut rows = vec![policy(1, "sts", 2, 0), policy(1, "tlsa", 2, 0)];
        mark_counted(&mut rows);
        assert_eq!(
            rows.iter().map(|r| r.counted).collect::<Vec<_>>(),
            [true, false]
        );
        let summary = summarize(&rows, GroupBy::Domain);
        assert_eq!(summary[0].successful, Some(2));
        assert_eq!(summary[0].reports, 1);
    }

    #[test]
    fn details_above_the_failure_total_are_flagged_not_fixed() {
        let mut row = policy(1, "sts", 0, 1);
        row.details = vec![
            detail("sts-policy-fetch-error", "mx", 1),
            detail("sts-policy-fetch-error", "mx", 1),
        ];
        let mut rows = vec![row];
        mark_counted(&mut rows);
        let summary = summarize(&rows, GroupBy::Domain);
        assert_eq!(summary[0].failed, 1);
        assert_eq!(summary[0].failure_types["sts-policy-fetch-error"], 2);
        assert_eq!(summary[0].details_exceed_total, 1);
    }

    #[test]
    fn too_little_data_is_not_enough_data() {
        let mut rows = vec![policy(1, "sts", 10, 0)];
        mark_counted(&mut rows);
        assert_eq!(
            readiness("example.com", &rows).verdict,
            Verdict::NotEnoughData {
                days: 1,
                reporters: 1
            }
        );
    }
}
