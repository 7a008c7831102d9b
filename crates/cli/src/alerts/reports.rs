//! Alerts derived from the stored reports, from the same counts the dashboard shows
//! ([`DashboardData::domains_stats`]): per domain, a failure result type not seen in the
//! `new_failure_days` before; a failure rate above `failure_rate_percent` with at least
//! `min_sessions` sessions; a reporter silent for [`SILENT_DAYS`] days or more (as the domain
//! page lists them). "Recent" is yesterday and today (UTC): a daily report covers a whole day
//! and arrives the day after. Each alert is cleared once its condition is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use mta_sts_server::{AlertsConfig, DashboardData, DomainStats, SILENT_DAYS, silent_reporters};
use mta_sts_store::analysis::day;

use super::{AlertEvent, AlertKind, Alerts};

const DAY: i64 = 86_400;
/// How long after reports arrive the rules run, so that a burst of reports is counted once.
const DEBOUNCE: Duration = Duration::from_secs(3);

/// The thresholds of the report rules (`[alerts]`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rules {
    pub(crate) failure_rate_percent: f64,
    pub(crate) min_sessions: u64,
    pub(crate) new_failure_days: u32,
}

impl Rules {
    pub(crate) fn from_config(config: &AlertsConfig) -> Rules {
        Rules {
            failure_rate_percent: config.failure_rate_percent,
            min_sessions: config.min_sessions,
            new_failure_days: config.new_failure_days,
        }
    }
}

/// The conditions one domain's counts show: the alerts that should be open.
pub(crate) fn conditions(
    domain: &str,
    stats: &DomainStats,
    rules: &Rules,
    now: i64,
) -> Vec<AlertEvent> {
    let recent_days = [day(now.saturating_sub(DAY)), day(now)];
    let mut failure_types: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen_before: BTreeSet<&str> = BTreeSet::new();
    let (mut successful, mut failed) = (0_u64, 0_u64);
    for tally in &stats.daily {
        if recent_days.contains(&tally.key) {
            successful = successful.saturating_add(tally.successful.unwrap_or(0));
            failed = failed.saturating_add(tally.failed);
            for (result_type, count) in &tally.failure_types {
                *failure_types.entry(result_type.clone()).or_default() += count;
            }
        } else if tally.key < recent_days[0] {
            seen_before.extend(tally.failure_types.keys().map(String::as_str));
        }
    }
    let mut events = Vec::new();
    let event = |kind, key: &str, summary: String, detail: String| AlertEvent {
        domain: domain.to_owned(),
        kind,
        key: key.to_owned(),
        summary,
        detail,
    };
    for (result_type, count) in &failure_types {
        if *count > 0 && !seen_before.contains(result_type.as_str()) {
            events.push(event(
                AlertKind::NewFailureType,
                result_type,
                format!("new failure type {result_type} in reports"),
                format!(
                    "Reports since {} count {count} failed sessions of type {result_type}, \
                     not seen in the {} days before. See the domain page's failures by result \
                     type and by MX host.",
                    recent_days[0], rules.new_failure_days
                ),
            ));
        }
    }
    let sessions = successful.saturating_add(failed);
    if sessions >= rules.min_sessions {
        let percent = failed as f64 * 100.0 / sessions as f64;
        if percent > rules.failure_rate_percent {
            events.push(event(
                AlertKind::FailureRateHigh,
                "",
                format!("{percent:.1} % of sessions failed"),
                format!(
                    "{failed} of {sessions} sessions reported since {} failed, above the \
                     {} % threshold. See the domain page for the result types and MX hosts.",
                    recent_days[0], rules.failure_rate_percent
                ),
            ));
        }
    }
    for (reporter, last) in silent_reporters(stats, now) {
        let days = now.saturating_sub(last) / DAY;
        events.push(event(
            AlertKind::ReporterSilent,
            &reporter,
            format!("reporter {reporter} silent for {days} days"),
            format!(
                "{reporter} sent reports for the domain, the last one ending {}, and none in \
                 the {days} days since (silent after {SILENT_DAYS}). Check that the \
                 _smtp._tls record still names this intake.",
                day(last)
            ),
        ));
    }
    events
}

/// The kinds the report rules decide: only these are cleared by them.
const REPORT_KINDS: [AlertKind; 3] = [
    AlertKind::NewFailureType,
    AlertKind::FailureRateHigh,
    AlertKind::ReporterSilent,
];

/// Evaluates the rules for `domains` at `now`: raises what holds, clears what no longer does.
pub(crate) async fn evaluate(
    alerts: &Alerts,
    data: &dyn DashboardData,
    domains: &[String],
    rules: &Rules,
) -> anyhow::Result<()> {
    let now = alerts.now();
    let since = now.saturating_sub(DAY * (i64::from(rules.new_failure_days) + 2));
    let stats = data
        .domains_stats(domains, since, now)
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let open = alerts.open_alerts(Some(domains.to_vec())).await?;
    for (domain, stats) in domains.iter().zip(&stats) {
        let events = conditions(domain, stats, rules, now);
        for stale in open.iter().filter(|alert| {
            alert.domain == *domain
                && REPORT_KINDS.iter().any(|kind| kind.as_str() == alert.kind)
                && !events
                    .iter()
                    .any(|event| event.kind.as_str() == alert.kind && event.key == alert.key)
        }) {
            if let Some(kind) = AlertKind::from_name(&stale.kind) {
                alerts.clear(domain, kind, &stale.key).await?;
            }
        }
        for event in events {
            alerts.raise(event).await?;
        }
    }
    Ok(())
}

/// Runs the rules every `interval`, and [`DEBOUNCE`] after reports arrive
/// ([`Alerts::reports_arrived`]). Errors are logged, never fatal.
pub(crate) fn spawn(
    alerts: Alerts,
    data: Arc<dyn DashboardData>,
    domains: Vec<String>,
    rules: Rules,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(error) = evaluate(&alerts, data.as_ref(), &domains, &rules).await {
                tracing::warn!(
                    "report alerts: {}",
                    crate::render::clean(&format!("{error:#}"))
                );
            }
            tokio::select! {
                () = alerts.inner.reports_arrived.notified() => {
                    tokio::time::sleep(DEBOUNCE).await;
                }
                () = tokio::time::sleep(interval) => {}
            }
        }
    })
}
