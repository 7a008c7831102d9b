//! `serve`'s scheduled checks (`[checks]`): every configured domain checked by the checker of
//! `mta-sts check`, with the same network options, once shortly after start-up and then every
//! `interval`. The domains of a round start evenly over `spread`, at most `concurrency` at
//! once; each result is kept in the store's history with what drifted since the domain's run
//! before ([`mta_sts_store::drift`]). Checks run as tasks beside the server: they never hold up
//! policy hosting or the intake (they run on a thread of their own), and shutdown does not wait
//! for them.

use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use mta_sts_check::{CheckOptions, Checker, Report};
use mta_sts_policy::StsRecord;
use mta_sts_server::{Checks, Config};
use mta_sts_store::{
    CertExpiry, CheckRun, CheckState, Drift, DriftKind, Location, Store, StoreError, drift,
    policy_hash,
};

use crate::alerts::{AlertEvent, AlertKind, Alerts};
use crate::args::NetArgs;
use crate::render::clean;

/// The first round waits this long, so the server is listening when a domain's policy host
/// is this server.
pub(crate) const FIRST_ROUND_DELAY: Duration = Duration::from_secs(2);

/// The checks of one `serve`.
pub(crate) struct ScheduledChecks {
    store: Store,
    domains: Vec<String>,
    checks: Checks,
    /// `[checks]`' network keys as the flags of `check`, for the same network set-up.
    net: NetArgs,
    /// Drift is raised here as alerts, and cleared when it is gone.
    alerts: Alerts,
}

/// `[checks]`' network keys as `check`'s flags.
fn net_args(checks: &Checks) -> anyhow::Result<NetArgs> {
    let resolver = match &checks.resolver {
        Some(text) => Some(
            crate::check::parse_resolver(text)
                .map_err(|message| anyhow::anyhow!("checks.resolver: {message}"))?,
        ),
        None => None,
    };
    Ok(NetArgs {
        resolver,
        ca_file: checks.ca_file.clone(),
        https_port: checks.https_port,
        smtp_port: checks.smtp_port,
        timeout: checks.timeout,
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl ScheduledChecks {
    /// Starts the checks `config` asks for on a thread of their own, with a connection to the
    /// store at `location` of their own: the server's runtime never waits for a check, and
    /// nothing waits for the thread at shutdown. False when `[checks] enabled = false`.
    ///
    /// # Errors
    /// A network key that does not work (a resolver that is no address, an unreadable
    /// `ca_file`), said with its key.
    pub(crate) fn start(
        location: &Location,
        config: &Config,
        alerts: Alerts,
    ) -> anyhow::Result<bool> {
        if !config.checks.enabled {
            return Ok(false);
        }
        let net = net_args(&config.checks)?;
        // Refused at start-up rather than at the first round.
        crate::check::net(&net).context("[checks]")?;
        let domains: Vec<String> = config
            .domains()
            .iter()
            .map(|d| d.name().to_owned())
            .collect();
        let checks = config.checks.clone();
        let location = location.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the runtime of the scheduled checks")?;
        std::thread::Builder::new()
            .name("checks".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::time::sleep(FIRST_ROUND_DELAY).await;
                    let store = match Store::open(&location).await {
                        Ok(store) => store,
                        Err(error) => {
                            tracing::error!(
                                "scheduled checks off: cannot open the store at {location}: {}",
                                clean(&error.to_string())
                            );
                            return;
                        }
                    };
                    ScheduledChecks {
                        store,
                        domains,
                        checks,
                        net,
                        alerts,
                    }
                    .run()
                    .await;
                });
            })
            .context("cannot start the thread of the scheduled checks")?;
        Ok(true)
    }

    /// Runs rounds until the process ends.
    async fn run(self) {
        let mut next = tokio::time::Instant::now();
        loop {
            self.round().await;
            next = (next + self.checks.interval).max(tokio::time::Instant::now());
            tokio::time::sleep_until(next).await;
        }
    }

    /// Checks every domain once and keeps the results; then drops what is past retention.
    async fn round(&self) {
        let net = match crate::check::net(&self.net) {
            Ok(net) => net,
            Err(error) => {
                tracing::error!("scheduled checks: {}", clean(&format!("{error:#}")));
                return;
            }
        };
        let options = CheckOptions {
            no_smtp: self.checks.no_smtp,
            without_sni: self.checks.without_sni,
        };
        let spread = self.checks.spread.as_secs_f64();
        let per_second =
            (spread > 0.0 && self.domains.len() > 1).then(|| self.domains.len() as f64 / spread);
        // A checker per round: its probe cache holds this round's answers only.
        let checker = Checker::new(net, options).rate(per_second);
        let mut done = std::pin::pin!(
            futures_util::stream::iter(self.domains.clone())
                .map(|domain| {
                    // Clones share the round's probe cache and pace.
                    let checker = checker.clone();
                    async move {
                        let started = now();
                        (started, checker.check(&domain).await)
                    }
                })
                .buffer_unordered(self.checks.concurrency.max(1))
        );
        while let Some((started, report)) = done.next().await {
            match record(&self.store, &report, started, now()).await {
                Ok((before, run)) => {
                    alert(&self.alerts, &before, &run).await;
                    tracing::info!(
                        domain = %clean(&run.domain),
                        verdict = %clean(&run.verdict),
                        errors = run.errors,
                        warnings = run.warnings,
                        incomplete = run.incomplete.is_some(),
                        drift = run.drift.len(),
                        "scheduled check"
                    );
                    for d in &run.drift {
                        tracing::warn!(domain = %clean(&d.domain), kind = d.kind.as_str(), "drift: {}", clean(&d.summary));
                    }
                }
                Err(error) => tracing::error!(
                    domain = %clean(&report.domain),
                    "scheduled check not stored: {}",
                    clean(&error.to_string())
                ),
            }
        }
        let before = now()
            .saturating_sub(i64::try_from(self.checks.retention.as_secs()).unwrap_or(i64::MAX));
        if let Err(error) = self.store.purge_check_runs(before).await {
            tracing::warn!("old checks not purged: {}", clean(&error.to_string()));
        }
    }
}

/// What drift is judged on in `report`.
pub(crate) fn state(report: &Report) -> CheckState {
    let e = &report.evidence;
    let policy_id = e
        .sts_txt
        .as_ref()
        .ok()
        .and_then(|answer| StsRecord::lint_rrset(&answer.records).value)
        .map(|record| record.id);
    let mut certificates = Vec::new();
    let (policy_hash, policy_error) = match &e.policy {
        Ok(fetched) => {
            certificates.push(CertExpiry {
                host: format!("mta-sts.{}", e.domain),
                not_after: fetched.certificate.not_after,
            });
            (Some(policy_hash(&fetched.body)), None)
        }
        Err(error) => (None, Some(error.to_string())),
    };
    for host in &e.mx_hosts {
        let earliest = host
            .probes
            .iter()
            .flatten()
            .filter_map(|p| p.tls.as_ref()?.certificate.as_ref().map(|c| c.not_after))
            .min();
        if let Some(not_after) = earliest {
            certificates.push(CertExpiry {
                host: host.host.clone(),
                not_after,
            });
        }
    }
    let mx = e.mx.as_ref().ok().map(|_| {
        let mut hosts: Vec<String> = e.mx_hosts.iter().map(|h| h.host.clone()).collect();
        hosts.sort();
        hosts.dedup();
        hosts
    });
    CheckState {
        policy_id,
        policy_mode: report.policy.as_ref().map(|p| p.mode.as_str().to_owned()),
        policy_hash,
        policy_error,
        mx,
        certificates,
    }
}

/// Stores the check `report` (started and finished at those UTC seconds) with what drifted
/// since the domain's stored run before; the drift of the run before, and the stored run.
pub(crate) async fn record(
    store: &Store,
    report: &Report,
    started: i64,
    finished: i64,
) -> Result<(Vec<Drift>, CheckRun), StoreError> {
    let previous = store.check_runs(&report.domain, 0, 1).await?;
    let state = state(report);
    let drift = drift(
        &report.domain,
        previous.first(),
        &state,
        report.incomplete.is_some(),
        finished,
    );
    let run = CheckRun {
        id: 0,
        domain: report.domain.clone(),
        started_at: started,
        finished_at: finished,
        verdict: crate::check::verdict_status(report),
        summary: report.sender.summary(),
        incomplete: report.incomplete.clone(),
        errors: report.hygiene.errors as u64,
        warnings: report.hygiene.warnings as u64,
        state,
        drift,
    };
    let json = serde_json::to_string(report).unwrap_or_else(|_| "{}".to_owned());
    store.save_check_run(run.clone(), json).await?;
    let before = previous
        .into_iter()
        .next()
        .map(|p| p.drift)
        .unwrap_or_default();
    Ok((before, run))
}

fn alert_kind(kind: DriftKind) -> AlertKind {
    match kind {
        DriftKind::MxChangedPolicyNot => AlertKind::MxChangedPolicyNot,
        DriftKind::PolicyChangedIdNot => AlertKind::PolicyChangedIdNot,
        DriftKind::CertificateExpiring => AlertKind::CertificateExpiring,
        DriftKind::PolicyFetchFailing => AlertKind::PolicyFetchFailing,
    }
}

/// The drift of `before` that `now` no longer has: its condition is gone.
fn gone<'a>(before: &'a [Drift], now: &[Drift]) -> Vec<&'a Drift> {
    before
        .iter()
        .filter(|b| !now.iter().any(|n| n.kind == b.kind && n.key == b.key))
        .collect()
}

/// Raises an alert for each drift of `run` (the engine sends nothing for one already open)
/// and clears those of the run before that are gone.
async fn alert(alerts: &Alerts, before: &[Drift], run: &CheckRun) {
    for d in &run.drift {
        let event = AlertEvent {
            domain: d.domain.clone(),
            kind: alert_kind(d.kind),
            key: d.key.clone(),
            summary: d.summary.clone(),
            detail: d.detail.clone(),
        };
        if let Err(error) = alerts.raise(event).await {
            tracing::warn!("drift alert not raised: {}", clean(&format!("{error:#}")));
        }
    }
    for d in gone(before, &run.drift) {
        if let Err(error) = alerts.clear(&d.domain, alert_kind(d.kind), &d.key).await {
            tracing::warn!("drift alert not cleared: {}", clean(&format!("{error:#}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use mta_sts_store::{Drift, DriftKind};

    fn drift(kind: DriftKind, key: &str) -> Drift {
        Drift {
            domain: "example.com".to_owned(),
            kind,
            key: key.to_owned(),
            summary: String::new(),
            detail: String::new(),
        }
    }

    #[test]
    fn drift_that_is_gone_is_cleared_and_only_that() {
        let before = [
            drift(DriftKind::CertificateExpiring, "mx1.example.com"),
            drift(DriftKind::CertificateExpiring, "mx2.example.com"),
            drift(DriftKind::PolicyFetchFailing, "mta-sts.example.com"),
        ];
        let now = [
            drift(DriftKind::CertificateExpiring, "mx2.example.com"),
            drift(DriftKind::PolicyChangedIdNot, "1"),
        ];
        let gone: Vec<(DriftKind, &str)> = super::gone(&before, &now)
            .iter()
            .map(|d| (d.kind, d.key.as_str()))
            .collect();
        assert_eq!(
            gone,
            [
                (DriftKind::CertificateExpiring, "mx1.example.com"),
                (DriftKind::PolicyFetchFailing, "mta-sts.example.com"),
            ]
        );
    }

    #[test]
    fn every_drift_kind_is_an_alert_kind_of_the_same_name() {
        for kind in DriftKind::ALL {
            assert_eq!(
                super::alert_kind(kind).as_str(),
                kind.as_str().replace('-', "_")
            );
        }
    }

    #[test]
    fn drift_warns_about_certificates_when_check_does() {
        assert_eq!(
            mta_sts_store::EXPIRY_DRIFT,
            mta_sts_check::EXPIRY_WARNING,
            "a certificate the check warns about is drift, and only then"
        );
    }
}
