//! The store as the dashboard's [`DashboardData`]: the same rows and the same counting
//! (`mta_sts_store::analysis`) as `mta-sts reports summary` and `reports readiness`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use mta_sts_server::{
    AlertRow, CertRow, CheckFinding, CheckRow, DashboardData, DataError, DomainStats, DriftRow,
    FailureRow, PolicyCount, PolicyDetail, QuarantineItem, Readiness, ReportDetail, ReportQuery,
    ReportRow, Reprocess, StoreTotals, Tally,
};
use mta_sts_store::analysis::{
    self, AnalysisFilter, GroupBy, READY_MIN_DAYS, READY_MIN_REPORTERS, SummaryRow, Verdict,
};
use mta_sts_store::{CheckRun, RawId, ReportFilter, ReportKey, Reprocessed, Store, StoreError};
use mta_sts_tlsrpt::report::Timestamp;

/// The store the intake writes to, read by the dashboard.
pub(crate) struct StoreDashboard(pub Arc<Store>);

fn failed(error: StoreError) -> DataError {
    DataError::new(error.to_string())
}

fn tally(row: SummaryRow) -> Tally {
    Tally {
        key: row.key,
        reports: row.reports,
        successful: row.successful,
        failed: row.failed,
        failure_types: row.failure_types,
    }
}

fn tallies(rows: Vec<SummaryRow>) -> Vec<Tally> {
    rows.into_iter().map(tally).collect()
}

fn time(unix: i64) -> Option<Timestamp> {
    Timestamp::from_unix_seconds(unix)
}

/// The counts of a domain's rows: what `reports summary --by ...` and `reports readiness`
/// say for the same period.
fn domain_stats(domain: &str, rows: &[analysis::PolicyRow]) -> DomainStats {
    let readiness = analysis::readiness(domain, rows);
    let verdict = match readiness.verdict {
        Verdict::Ready => Readiness::Ready,
        Verdict::NotYet { fix } => Readiness::NotYet { fix },
        Verdict::NotEnoughData { days, reporters } => Readiness::NotEnoughData {
            days,
            reporters,
            min_days: READY_MIN_DAYS,
            min_reporters: READY_MIN_REPORTERS,
        },
    };
    DomainStats {
        total: tally(readiness.total),
        daily: tallies(analysis::summarize(rows, GroupBy::Day)),
        by_result: tallies(readiness.by_result),
        by_reporter: tallies(analysis::summarize(rows, GroupBy::Org)),
        by_mx: tallies(readiness.by_mx),
        by_receiving_ip: tallies(analysis::summarize(rows, GroupBy::ReceivingIp)),
        by_sending_ip: tallies(analysis::summarize(rows, GroupBy::SendingIp)),
        last_report: analysis::last_report_end(rows),
        readiness: Some(verdict),
    }
}

#[async_trait]
impl DashboardData for StoreDashboard {
    async fn domain_stats(
        &self,
        domain: &str,
        since: i64,
        until: i64,
    ) -> Result<DomainStats, DataError> {
        let filter = AnalysisFilter {
            domain: Some(domain.to_owned()),
            since: Some(since),
            until: Some(until),
            ..AnalysisFilter::default()
        };
        let rows = self.0.policy_rows(&filter).await.map_err(failed)?;
        let domain = domain.to_owned();
        // Counting a year of reports takes milliseconds: not on the async workers.
        tokio::task::spawn_blocking(move || domain_stats(&domain, &rows))
            .await
            .map_err(|error| DataError::new(format!("counting failed: {error}")))
    }

    async fn domains_stats(
        &self,
        domains: &[String],
        since: i64,
        until: i64,
    ) -> Result<Vec<DomainStats>, DataError> {
        if domains.is_empty() {
            return Ok(Vec::new());
        }
        // One read for every domain, then each domain's rows counted on their own.
        let filter = AnalysisFilter {
            domains: Some(domains.to_vec()),
            since: Some(since),
            until: Some(until),
            ..AnalysisFilter::default()
        };
        let rows = self.0.policy_rows(&filter).await.map_err(failed)?;
        let domains = domains.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut by_domain: BTreeMap<String, Vec<analysis::PolicyRow>> = BTreeMap::new();
            for row in rows {
                let key = row.policy_domain.trim_end_matches('.').to_ascii_lowercase();
                by_domain.entry(key).or_default().push(row);
            }
            domains
                .iter()
                .map(|d| domain_stats(d, by_domain.get(d).map_or(&[][..], Vec::as_slice)))
                .collect()
        })
        .await
        .map_err(|error| DataError::new(format!("counting failed: {error}")))
    }

    async fn reports(&self, query: &ReportQuery) -> Result<Vec<ReportRow>, DataError> {
        let filter = ReportFilter {
            domains: Some(query.domains.clone()),
            organization: query.reporter.clone(),
            since: query.since.and_then(time),
            until: query.until.and_then(time),
            failures_only: query.failures_only,
            offset: query.offset,
            limit: query.limit.saturating_add(1),
            ..ReportFilter::default()
        };
        let reports = self.0.list_reports(&filter).await.map_err(failed)?;
        Ok(reports
            .into_iter()
            .map(|r| ReportRow {
                id: r.key.0,
                reporter: r.organization_name,
                report_id: r.report_id,
                start: r.date_start.to_string(),
                end: r.date_end.to_string(),
                policies: r
                    .policies
                    .into_iter()
                    .map(|p| PolicyCount {
                        domain: p.domain,
                        policy_type: p.policy_type,
                        successful: p.successful,
                        failed: p.failed,
                    })
                    .collect(),
            })
            .collect())
    }

    async fn report(&self, id: i64) -> Result<Option<ReportDetail>, DataError> {
        let Some(stored) = self.0.get_report(ReportKey(id)).await.map_err(failed)? else {
            return Ok(None);
        };
        // The body as it came when it is JSON (pretty-printed when it came on one line);
        // else (gzip, mail) the report as read.
        let raw = self.0.raw(stored.raw).await.map_err(failed)?;
        let r = &stored.report;
        let pretty = |text: &str| {
            serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
        };
        let json = raw
            .and_then(|raw| String::from_utf8(raw.bytes).ok())
            .filter(|text| text.trim_start().starts_with('{'))
            .and_then(|text| {
                if text.trim().contains('\n') {
                    Some(text)
                } else {
                    pretty(&text)
                }
            })
            .or_else(|| pretty(&r.to_json()))
            .unwrap_or_else(|| r.to_json());
        let policies: Vec<PolicyDetail> = r
            .policies
            .iter()
            .map(|p| PolicyDetail {
                counts: PolicyCount {
                    domain: p.policy.policy_domain.clone(),
                    policy_type: p.policy.policy_type.as_str().to_owned(),
                    successful: p.summary.total_successful_session_count,
                    failed: p.summary.total_failure_session_count,
                },
                mx_hosts: p.policy.mx_host.clone(),
                policy_strings: p.policy.policy_string.clone(),
                failures: p
                    .failure_details
                    .iter()
                    .map(|f| FailureRow {
                        result_type: f.result_type.as_str().to_owned(),
                        sending_mta_ip: f.sending_mta_ip.clone(),
                        receiving_mx_hostname: f.receiving_mx_hostname.clone(),
                        receiving_ip: f.receiving_ip.clone(),
                        failed_sessions: f.failed_session_count,
                        reason: f
                            .failure_reason_code
                            .clone()
                            .or_else(|| f.additional_information.clone()),
                    })
                    .collect(),
            })
            .collect();
        Ok(Some(ReportDetail {
            row: ReportRow {
                id: stored.key.0,
                reporter: r.organization_name.clone(),
                report_id: r.report_id.clone(),
                start: r.date_range.start.to_string(),
                end: r.date_range.end.to_string(),
                policies: policies.iter().map(|p| p.counts.clone()).collect(),
            },
            raw_id: stored.raw.0,
            contact: r.contact_info.clone(),
            counted: stored.counted,
            conflicting: stored.conflicting.iter().map(|k| k.0).collect(),
            policies,
            warnings: stored
                .warnings
                .iter()
                .map(|w| (w.path.clone(), w.message.clone()))
                .collect(),
            json,
        }))
    }

    async fn quarantine(&self, limit: u32) -> Result<Vec<QuarantineItem>, DataError> {
        let entries = self.0.list_quarantine_up_to(limit).await.map_err(failed)?;
        Ok(entries
            .into_iter()
            .map(|e| QuarantineItem {
                id: e.raw.0,
                code: e.code.as_str().to_owned(),
                reason: e.reason,
                quarantined_at: e.created_at.to_string(),
                source: e.source,
                size: e.size,
            })
            .collect())
    }

    async fn reprocess(&self, id: i64) -> Result<Reprocess, DataError> {
        Ok(match self.0.reprocess(RawId(id)).await.map_err(failed)? {
            Reprocessed::Released => Reprocess::Released,
            Reprocessed::StillUnreadable => Reprocess::StillUnreadable,
            Reprocessed::Held => Reprocess::Held,
            Reprocessed::NotInQuarantine => Reprocess::NotFound,
        })
    }

    async fn totals(&self) -> Result<StoreTotals, DataError> {
        let (reports, quarantined) = self.0.totals().await.map_err(failed)?;
        Ok(StoreTotals {
            reports,
            quarantined,
        })
    }

    async fn alerts(&self, domains: &[String]) -> Result<Vec<AlertRow>, DataError> {
        crate::alerts::alert_rows(&self.0, domains)
            .await
            .map_err(failed)
    }

    async fn latest_checks(&self, domains: &[String]) -> Result<Vec<Option<CheckRow>>, DataError> {
        let mut latest: BTreeMap<String, CheckRun> = self
            .0
            .latest_check_runs()
            .await
            .map_err(failed)?
            .into_iter()
            .map(|run| (run.domain.clone(), run))
            .collect();
        Ok(domains
            .iter()
            .map(|d| latest.remove(d).map(check_row))
            .collect())
    }

    async fn checks(
        &self,
        domain: &str,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<CheckRow>, DataError> {
        let runs = self
            .0
            .check_runs(domain, offset, limit)
            .await
            .map_err(failed)?;
        Ok(runs.into_iter().map(check_row).collect())
    }

    async fn check_findings(&self, domain: &str, id: i64) -> Result<Vec<CheckFinding>, DataError> {
        let Some(report) = self.0.check_report(domain, id).await.map_err(failed)? else {
            return Ok(Vec::new());
        };
        let report: serde_json::Value = serde_json::from_str(&report)
            .map_err(|error| DataError::new(format!("check {id} of {domain}: {error}")))?;
        let text = |f: &serde_json::Value, key: &str| {
            f.get(key)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Ok(report["findings"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|f| CheckFinding {
                code: text(f, "code"),
                severity: text(f, "severity"),
                area: text(f, "area"),
                subject: text(f, "subject"),
                message: text(f, "message"),
                evidence: text(f, "evidence"),
                fix: text(f, "fix"),
                rfc: text(f, "rfc"),
            })
            .collect())
    }
}

/// A stored check as the dashboard shows it.
fn check_row(run: CheckRun) -> CheckRow {
    CheckRow {
        id: run.id,
        started_at: run.started_at,
        finished_at: run.finished_at,
        verdict: run.verdict,
        summary: run.summary,
        incomplete: run.incomplete,
        errors: run.errors,
        warnings: run.warnings,
        policy_id: run.state.policy_id,
        policy_mode: run.state.policy_mode,
        policy_error: run.state.policy_error,
        mx: run.state.mx,
        certificates: run
            .state
            .certificates
            .into_iter()
            .map(|c| CertRow {
                host: c.host,
                not_after: c.not_after,
            })
            .collect(),
        drift: run
            .drift
            .into_iter()
            .map(|d| DriftRow {
                kind: d.kind.as_str().to_owned(),
                key: d.key,
                summary: d.summary,
                detail: d.detail,
            })
            .collect(),
    }
}
