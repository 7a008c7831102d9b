//! The history of `mta-sts serve`'s scheduled checks: one row per check of a configured domain,
//! with what drift is judged on ([`CheckState`]) and what drifted since the run before
//! ([`drift`], a pure function of the two runs).

use serde_json::{Value, json};
use sqlx::AnyConnection;

use crate::Store;
use crate::error::{self, StoreError};
use crate::sql::{count, get, saturating_i64, sha256_hex, text};
use crate::writer::Write;

/// A certificate expiring within this many seconds is drift (14 days; the same as the
/// checker's warning, `mta_sts_check::EXPIRY_WARNING`).
pub const EXPIRY_DRIFT: i64 = 14 * 86_400;

/// When a certificate expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertExpiry {
    /// The policy host (`mta-sts.<domain>`) or an MX host.
    pub host: String,
    /// Its `notAfter`, UTC seconds (the earliest over the host's addresses).
    pub not_after: i64,
}

/// What one check saw that drift is judged on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckState {
    /// The `id` of the `_mta-sts` TXT record, when one is valid.
    pub policy_id: Option<String>,
    /// The fetched policy's mode, when it is valid.
    pub policy_mode: Option<String>,
    /// [`policy_hash`] of the fetched policy body.
    pub policy_hash: Option<String>,
    /// Why the policy could not be fetched.
    pub policy_error: Option<String>,
    /// The MX host names, sorted; `None` when the lookup failed.
    pub mx: Option<Vec<String>>,
    /// The certificates of the policy host and of every MX host.
    pub certificates: Vec<CertExpiry>,
}

/// What kind of drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DriftKind {
    /// The MX hosts changed but the policy body did not.
    MxChangedPolicyNot,
    /// The policy body changed but the TXT record's `id` did not: senders keep the old policy.
    PolicyChangedIdNot,
    /// A certificate (policy host or MX) expires within [`EXPIRY_DRIFT`], or has expired.
    CertificateExpiring,
    /// The policy cannot be fetched.
    PolicyFetchFailing,
}

impl DriftKind {
    /// Every kind.
    pub const ALL: [DriftKind; 4] = [
        DriftKind::MxChangedPolicyNot,
        DriftKind::PolicyChangedIdNot,
        DriftKind::CertificateExpiring,
        DriftKind::PolicyFetchFailing,
    ];

    /// The stable kebab-case name (in the store and the API).
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::MxChangedPolicyNot => "mx-changed-policy-not",
            DriftKind::PolicyChangedIdNot => "policy-changed-id-not",
            DriftKind::CertificateExpiring => "certificate-expiring",
            DriftKind::PolicyFetchFailing => "policy-fetch-failing",
        }
    }

    /// The kind named `name` ([`DriftKind::as_str`]).
    pub fn parse(name: &str) -> Option<DriftKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One drift of a domain: `(kind, key)` identifies it across runs (the same certificate
/// expiring is one drift from run to run, until it is renewed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// The domain.
    pub domain: String,
    /// What kind.
    pub kind: DriftKind,
    /// What it is about: a host, a policy id, the MX set before a change.
    pub key: String,
    /// One line for people.
    pub summary: String,
    /// What was seen and what to do.
    pub detail: String,
}

/// One check of a domain, stored without its report JSON ([`Store::check_report`] reads that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRun {
    /// The store's key (given by the store: ignored by [`Store::save_check_run`]).
    pub id: i64,
    /// The domain checked.
    pub domain: String,
    /// When the check started and finished, UTC seconds.
    pub started_at: i64,
    /// See `started_at`.
    pub finished_at: i64,
    /// The sender verdict's status (`protected`, `testing`, ...).
    pub verdict: String,
    /// The sender verdict in a sentence.
    pub summary: String,
    /// Why the check could not be completed.
    pub incomplete: Option<String>,
    /// Findings at error level.
    pub errors: u64,
    /// Findings at warning level.
    pub warnings: u64,
    /// What drift is judged on.
    pub state: CheckState,
    /// What drifted since the run before ([`drift`]).
    pub drift: Vec<Drift>,
}

/// The hash of a policy body drift compares: SHA-256, lowercase hex.
pub fn policy_hash(body: &[u8]) -> String {
    sha256_hex(body)
}

fn day(unix: i64) -> String {
    mta_sts_tlsrpt::report::Timestamp::from_unix_seconds(unix)
        .map(|t| t.to_string().chars().take(10).collect())
        .unwrap_or_else(|| unix.to_string())
}

/// What drifted in `current` (a check of `domain` at `now`) since `previous`, the domain's run
/// before. Changes are judged between the two runs; a drift found before stays while its
/// condition holds (the MX set still differs from the set before the change and the policy is
/// still the same; the `id` is still the one the old body had). An incomplete check decides
/// nothing: the drift of the run before is kept as it was.
pub fn drift(
    domain: &str,
    previous: Option<&CheckRun>,
    current: &CheckState,
    incomplete: bool,
    now: i64,
) -> Vec<Drift> {
    if incomplete {
        return previous.map(|p| p.drift.clone()).unwrap_or_default();
    }
    let had = |kind: DriftKind| {
        previous.and_then(|p| {
            p.drift
                .iter()
                .find(|d| d.kind == kind && d.domain == domain)
        })
    };
    let new = |kind, key: String, summary: String, detail: String| Drift {
        domain: domain.to_owned(),
        kind,
        key,
        summary,
        detail,
    };
    let mut out = Vec::new();
    if let Some(prev) = previous {
        let was = &prev.state;
        let policy_same = current.policy_hash.is_some() && current.policy_hash == was.policy_hash;
        // The MX hosts changed and the policy did not.
        if let Some(mx) = &current.mx {
            match had(DriftKind::MxChangedPolicyNot) {
                // Open while the policy stays and the hosts are not back to the set before.
                Some(open) if policy_same => {
                    let before: Vec<String> = open
                        .key
                        .split(',')
                        .filter(|h| !h.is_empty())
                        .map(str::to_owned)
                        .collect();
                    if before != *mx {
                        out.push(open.clone());
                    }
                }
                Some(_) => {}
                None => {
                    if let Some(before) = &was.mx
                        && before != mx
                        && policy_same
                    {
                        let added: Vec<&str> = mx
                            .iter()
                            .filter(|h| !before.contains(h))
                            .map(String::as_str)
                            .collect();
                        let removed: Vec<&str> = before
                            .iter()
                            .filter(|h| !mx.contains(h))
                            .map(String::as_str)
                            .collect();
                        out.push(new(
                    DriftKind::MxChangedPolicyNot,
                    before.join(","),
                    format!(
                        "the MX hosts of {domain} changed ({} → {}) but the policy did not",
                        list(before),
                        list(mx)
                    ),
                    format!(
                        "added: {}; removed: {}. Senders deliver only to MX hosts the policy's mx \
                         patterns cover: update the policy if the new hosts are not covered, then \
                         publish a new id in _mta-sts.{domain}",
                        list_of(&added),
                        list_of(&removed)
                    ),
                ));
                    }
                }
            }
        }
        // The body changed and the id did not.
        if let (Some(id), Some(hash)) = (&current.policy_id, &current.policy_hash) {
            let still = had(DriftKind::PolicyChangedIdNot).filter(|d| d.key == *id);
            if let Some(open) = still {
                out.push(open.clone());
            } else if was.policy_id.as_ref() == Some(id)
                && was.policy_hash.as_ref().is_some_and(|h| h != hash)
            {
                out.push(new(
                    DriftKind::PolicyChangedIdNot,
                    id.clone(),
                    format!("the policy of {domain} changed but its id ({id}) did not"),
                    format!(
                        "senders that cached the policy keep the old one until it expires: \
                         publish a new id in _mta-sts.{domain} (e.g. `mta-sts dns records`)"
                    ),
                ));
            }
        }
    }
    if let Some(error) = &current.policy_error {
        out.push(new(
            DriftKind::PolicyFetchFailing,
            format!("mta-sts.{domain}"),
            format!("the policy of {domain} cannot be fetched"),
            format!(
                "https://mta-sts.{domain}/.well-known/mta-sts.txt: {error}. Senders keep a cached \
                 policy until its max_age runs out, then deliver without MTA-STS"
            ),
        ));
    }
    let mut certificates: Vec<&CertExpiry> = current
        .certificates
        .iter()
        .filter(|c| c.not_after.saturating_sub(now) < EXPIRY_DRIFT)
        .collect();
    certificates.sort_by(|a, b| a.host.cmp(&b.host));
    certificates.dedup_by(|a, b| a.host == b.host);
    for cert in certificates {
        let days = cert.not_after.saturating_sub(now).div_euclid(86_400);
        let when = if cert.not_after <= now {
            format!("expired on {}", day(cert.not_after))
        } else {
            format!("expires on {} (in {days} days)", day(cert.not_after))
        };
        out.push(new(
            DriftKind::CertificateExpiring,
            cert.host.clone(),
            format!("the certificate of {} {when}", cert.host),
            format!(
                "renew it: senders refuse an expired certificate{}",
                if cert.host.starts_with("mta-sts.") {
                    " and cannot fetch the policy"
                } else {
                    ", and under enforce do not deliver to this host"
                }
            ),
        ));
    }
    out
}

fn list(hosts: &[String]) -> String {
    if hosts.is_empty() {
        "none".to_owned()
    } else {
        hosts.join(", ")
    }
}

fn list_of(hosts: &[&str]) -> String {
    if hosts.is_empty() {
        "none".to_owned()
    } else {
        hosts.join(", ")
    }
}

fn certificates_json(certificates: &[CertExpiry]) -> String {
    Value::from(
        certificates
            .iter()
            .map(|c| json!({ "host": c.host, "not_after": c.not_after }))
            .collect::<Vec<_>>(),
    )
    .to_string()
}

fn drift_json(drift: &[Drift]) -> String {
    Value::from(
        drift
            .iter()
            .map(|d| json!({ "kind": d.kind.as_str(), "key": d.key, "summary": d.summary, "detail": d.detail }))
            .collect::<Vec<_>>(),
    )
    .to_string()
}

fn corrupt(what: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what,
        reason: reason.into(),
    }
}

fn json_array(text: &str, what: &'static str) -> Result<Vec<Value>, StoreError> {
    match serde_json::from_str(text) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(_) => Err(corrupt(what, "not a JSON array")),
        Err(error) => Err(corrupt(what, error.to_string())),
    }
}

fn field<'v>(item: &'v Value, name: &str) -> &'v str {
    item.get(name).and_then(Value::as_str).unwrap_or_default()
}

const COLUMNS: &str = "id, domain, started_at, finished_at, verdict, summary, incomplete, errors, \
                       warnings, policy_id, policy_mode, policy_hash, policy_error, mx, \
                       certificates, drift";

fn check_run(row: &sqlx::any::AnyRow) -> Result<CheckRun, StoreError> {
    let domain: String = get(row, "domain")?;
    let mx = match get::<Option<String>>(row, "mx")? {
        Some(text) => Some(crate::sql::strings(&text, "mx")?),
        None => None,
    };
    let certificates = json_array(&get::<String>(row, "certificates")?, "certificates")?
        .iter()
        .map(|c| CertExpiry {
            host: field(c, "host").to_owned(),
            not_after: c.get("not_after").and_then(Value::as_i64).unwrap_or(0),
        })
        .collect();
    let drift = json_array(&get::<String>(row, "drift")?, "drift")?
        .iter()
        .map(|d| {
            Ok(Drift {
                domain: domain.clone(),
                kind: DriftKind::parse(field(d, "kind"))
                    .ok_or_else(|| corrupt("drift", format!("kind {:?}", field(d, "kind"))))?,
                key: field(d, "key").to_owned(),
                summary: field(d, "summary").to_owned(),
                detail: field(d, "detail").to_owned(),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(CheckRun {
        id: get(row, "id")?,
        started_at: get(row, "started_at")?,
        finished_at: get(row, "finished_at")?,
        verdict: get(row, "verdict")?,
        summary: get(row, "summary")?,
        incomplete: get(row, "incomplete")?,
        errors: count(get(row, "errors")?),
        warnings: count(get(row, "warnings")?),
        state: CheckState {
            policy_id: get(row, "policy_id")?,
            policy_mode: get(row, "policy_mode")?,
            policy_hash: get(row, "policy_hash")?,
            policy_error: get(row, "policy_error")?,
            mx,
            certificates,
        },
        drift,
        domain,
    })
}

impl Store {
    /// Stores one check with its report (as `check --json` gives it); returns once committed. The same run (domain and start) stored twice
    /// is kept once.
    ///
    /// # Errors
    ///
    /// When the database refuses the write.
    pub async fn save_check_run(&self, run: CheckRun, report: String) -> Result<(), StoreError> {
        self.writer.submit(SaveCheckRun { run, report }).await
    }

    /// The checks of `domain`, newest first: `limit` of them after skipping `offset`.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn check_runs(
        &self,
        domain: &str,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<CheckRun>, StoreError> {
        let mut conn = self.reader().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM check_runs WHERE domain = $1 \
             ORDER BY started_at DESC, id DESC LIMIT $2 OFFSET $3"
        )))
        .bind(text(domain))
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(&mut *conn)
        .await
        .map_err(error::database("read check runs"))?;
        rows.iter().map(check_run).collect()
    }

    /// The latest check of every domain that has one, by domain.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn latest_check_runs(&self) -> Result<Vec<CheckRun>, StoreError> {
        let mut conn = self.reader().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM check_runs WHERE id IN \
             (SELECT MAX(id) FROM check_runs GROUP BY domain) ORDER BY domain"
        )))
        .fetch_all(&mut *conn)
        .await
        .map_err(error::database("read the latest check runs"))?;
        rows.iter().map(check_run).collect()
    }

    /// The report JSON of the check `id` of `domain`.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn check_report(&self, domain: &str, id: i64) -> Result<Option<String>, StoreError> {
        let mut conn = self.reader().await?;
        sqlx::query_scalar("SELECT report FROM check_runs WHERE id = $1 AND domain = $2")
            .bind(id)
            .bind(text(domain))
            .fetch_optional(&mut *conn)
            .await
            .map_err(error::database("read a check report"))
    }

    /// Deletes the checks that started before `before` (UTC seconds), except each domain's
    /// latest; returns how many were deleted.
    ///
    /// # Errors
    ///
    /// When the database refuses the write.
    pub async fn purge_check_runs(&self, before: i64) -> Result<u64, StoreError> {
        self.writer.submit(PurgeCheckRuns(before)).await
    }
}

struct SaveCheckRun {
    run: CheckRun,
    report: String,
}

impl Write for SaveCheckRun {
    type Output = ();

    async fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> sqlx::Result<()> {
        let r = &self.run;
        let s = &r.state;
        let opt = |v: &Option<String>| v.as_deref().map(text);
        sqlx::query(
            "INSERT INTO check_runs (domain, started_at, finished_at, verdict, summary, \
             incomplete, errors, warnings, policy_id, policy_mode, policy_hash, policy_error, mx, \
             certificates, drift, report) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (domain, started_at) DO NOTHING",
        )
        .bind(text(&r.domain))
        .bind(r.started_at)
        .bind(r.finished_at)
        .bind(text(&r.verdict))
        .bind(text(&r.summary))
        .bind(opt(&r.incomplete))
        .bind(saturating_i64(r.errors))
        .bind(saturating_i64(r.warnings))
        .bind(opt(&s.policy_id))
        .bind(opt(&s.policy_mode))
        .bind(opt(&s.policy_hash))
        .bind(opt(&s.policy_error))
        .bind(
            s.mx.as_deref()
                .map(|mx| text(&crate::sql::json_strings(mx))),
        )
        .bind(text(&certificates_json(&s.certificates)))
        .bind(text(&drift_json(&r.drift)))
        .bind(text(&self.report))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    fn operation(&self) -> &'static str {
        "save a check run"
    }
}

struct PurgeCheckRuns(i64);

impl Write for PurgeCheckRuns {
    type Output = u64;

    async fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> sqlx::Result<u64> {
        let done = sqlx::query(
            "DELETE FROM check_runs WHERE started_at < $1 \
             AND id NOT IN (SELECT MAX(id) FROM check_runs GROUP BY domain)",
        )
        .bind(self.0)
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected())
    }

    fn operation(&self) -> &'static str {
        "purge old check runs"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000;

    fn state(id: &str, body: &str, mx: &[&str]) -> CheckState {
        CheckState {
            policy_id: Some(id.to_owned()),
            policy_mode: Some("testing".to_owned()),
            policy_hash: Some(policy_hash(body.as_bytes())),
            policy_error: None,
            mx: Some(mx.iter().map(|h| (*h).to_owned()).collect()),
            certificates: vec![CertExpiry {
                host: "mta-sts.example.com".to_owned(),
                not_after: NOW + 60 * 86_400,
            }],
        }
    }

    /// `state` stored as a run, with the drift found when it was checked after `before`.
    fn run(state: CheckState, before: Option<&CheckRun>) -> CheckRun {
        let drift = drift("example.com", before, &state, false, NOW);
        CheckRun {
            id: 1,
            domain: "example.com".to_owned(),
            started_at: NOW,
            finished_at: NOW,
            verdict: "testing".to_owned(),
            summary: String::new(),
            incomplete: None,
            errors: 0,
            warnings: 0,
            state,
            drift,
        }
    }

    fn kinds(drift: &[Drift]) -> Vec<(DriftKind, &str)> {
        drift.iter().map(|d| (d.kind, d.key.as_str())).collect()
    }

    #[test]
    fn both_backends_have_the_same_check_runs_schema_but_the_id() {
        let strip = |sql: &str| {
            sql.lines()
                .filter(|l| !l.trim_start().starts_with("id "))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(
            strip(include_str!("../migrations/sqlite/0100_check_runs.sql")),
            strip(include_str!("../migrations/postgres/0100_check_runs.sql"))
        );
    }

    #[test]
    fn a_first_clean_run_has_no_drift() {
        assert!(drift("example.com", None, &state("1", "p", &["mx1"]), false, NOW).is_empty());
    }

    #[test]
    fn mx_changed_but_policy_not_is_drift_until_the_policy_changes() {
        let first = run(state("1", "p", &["mx1", "mx2"]), None);
        let second = run(state("1", "p", &["mx1", "mx3"]), Some(&first));
        assert_eq!(
            kinds(&second.drift),
            [(DriftKind::MxChangedPolicyNot, "mx1,mx2")]
        );
        assert!(second.drift[0].summary.contains("mx1, mx2 → mx1, mx3"));
        assert!(second.drift[0].detail.contains("added: mx3; removed: mx2"));
        // Still the same: still drift (one drift, same key).
        let third = run(state("1", "p", &["mx1", "mx3"]), Some(&second));
        assert_eq!(kinds(&third.drift), kinds(&second.drift));
        // The policy is updated (and its id bumped): gone.
        let fourth = run(state("2", "p2", &["mx1", "mx3"]), Some(&third));
        assert!(fourth.drift.is_empty(), "{:?}", fourth.drift);
    }

    #[test]
    fn mx_set_changed_back_ends_the_drift() {
        let first = run(state("1", "p", &["mx1"]), None);
        let second = run(state("1", "p", &["mx2"]), Some(&first));
        assert_eq!(second.drift.len(), 1);
        let third = run(state("1", "p", &["mx1"]), Some(&second));
        assert!(third.drift.is_empty(), "{:?}", third.drift);
    }

    #[test]
    fn mx_changed_with_the_policy_is_no_drift() {
        let first = run(state("1", "p", &["mx1"]), None);
        let second = run(state("2", "p2", &["mx2"]), Some(&first));
        assert!(second.drift.is_empty(), "{:?}", second.drift);
    }

    #[test]
    fn policy_changed_but_id_not_is_drift_until_the_id_changes() {
        let first = run(state("1", "p", &["mx1"]), None);
        let second = run(state("1", "p2", &["mx1"]), Some(&first));
        assert_eq!(kinds(&second.drift), [(DriftKind::PolicyChangedIdNot, "1")]);
        let third = run(state("1", "p2", &["mx1"]), Some(&second));
        assert_eq!(kinds(&third.drift), [(DriftKind::PolicyChangedIdNot, "1")]);
        let fourth = run(state("2", "p2", &["mx1"]), Some(&third));
        assert!(fourth.drift.is_empty(), "{:?}", fourth.drift);
    }

    #[test]
    fn a_certificate_expiring_within_14_days_is_drift_per_host() {
        let mut s = state("1", "p", &["mx1"]);
        s.certificates = vec![
            CertExpiry {
                host: "mta-sts.example.com".to_owned(),
                not_after: NOW + EXPIRY_DRIFT - 1,
            },
            CertExpiry {
                host: "mx1".to_owned(),
                not_after: NOW + EXPIRY_DRIFT,
            },
            CertExpiry {
                host: "mx2".to_owned(),
                not_after: NOW - 86_400,
            },
        ];
        let found = drift("example.com", None, &s, false, NOW);
        assert_eq!(
            kinds(&found),
            [
                (DriftKind::CertificateExpiring, "mta-sts.example.com"),
                (DriftKind::CertificateExpiring, "mx2"),
            ]
        );
        assert!(
            found[0].summary.contains("in 13 days"),
            "{}",
            found[0].summary
        );
        assert!(
            found[1].summary.contains("expired on"),
            "{}",
            found[1].summary
        );
    }

    #[test]
    fn a_failing_policy_fetch_is_drift() {
        let mut s = state("1", "p", &["mx1"]);
        s.policy_hash = None;
        s.policy_error = Some("connection refused".to_owned());
        let found = drift("example.com", None, &s, false, NOW);
        assert_eq!(
            kinds(&found),
            [(DriftKind::PolicyFetchFailing, "mta-sts.example.com")]
        );
        assert!(found[0].detail.contains("connection refused"));
    }

    #[test]
    fn an_incomplete_check_keeps_the_drift_before() {
        let first = run(state("1", "p", &["mx1"]), None);
        let second = run(state("1", "p2", &["mx1"]), Some(&first));
        let lost = CheckState::default();
        assert_eq!(
            drift("example.com", Some(&second), &lost, true, NOW),
            second.drift
        );
        assert!(drift("example.com", None, &lost, true, NOW).is_empty());
    }

    #[test]
    fn kinds_read_back_by_name() {
        for kind in DriftKind::ALL {
            assert_eq!(DriftKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(DriftKind::parse("other"), None);
    }
}
