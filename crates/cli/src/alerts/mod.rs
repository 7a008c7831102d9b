//! Drift alerts of `mta-sts serve`: raised by the scheduled checks and by the report rules
//! ([`reports`]), kept in the store (one row per domain, kind and key), delivered by webhook
//! and mail ([`deliver`]).
//!
//! [`Alerts::raise`] opens an alert or, when it is open already, only refreshes its text:
//! raising it again sends nothing. A notification is queued when an alert opens, unless the
//! same alert was notified within the cool-down (`[alerts] cool_down_hours`, 24 by default),
//! even if it cleared and opened again meanwhile. The store decides both in the write that
//! raises the alert, so they hold across restarts. Raising never waits for a delivery: a
//! background task ([`Alerts::spawn_delivery`]) sends what is due and retries failures with
//! back-off, so a webhook or relay that is down never holds up a check, the intake or a page.

mod deliver;
pub(crate) mod reports;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use mta_sts_sender::tlsrpt::{RETRY_FOR, SendError, backoff};
use mta_sts_server::{
    AlertDeliveryRow, AlertRow, AlertsConfig, IncomingReport, IngestOutcome, ReportSink, SinkError,
};
use mta_sts_store::{
    AlertFilter, AlertRaised, DeliveryState, DeliveryUpdate, NewAlert, Store, StoredAlert,
};
use tokio::sync::Notify;

use deliver::Channels;

/// How often the delivery task looks for retries that have come due, at the longest.
const DELIVERY_POLL: Duration = Duration::from_secs(60);

/// What an alert is about. The names ([`AlertKind::as_str`]) are stable: they are stored, and
/// they are the `kind` of the webhook's JSON and of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKind {
    /// The MX set changed, and the policy's `mx` patterns no longer match it.
    MxChangedPolicyNot,
    /// The policy body changed but the TXT record's `id` did not: senders keep the old policy.
    PolicyChangedIdNot,
    /// The `mta-sts.` host's or an MX host's certificate expires within 14 days.
    CertificateExpiring,
    /// The policy cannot be fetched.
    PolicyFetchFailing,
    /// Reports show a failure result type not seen in the days before.
    NewFailureType,
    /// Reports show a share of failed sessions above the threshold.
    FailureRateHigh,
    /// A reporter that sent reports for the domain has been silent for 7 days or more.
    ReporterSilent,
}

impl AlertKind {
    /// Every kind, in display order.
    pub const ALL: [AlertKind; 7] = [
        Self::MxChangedPolicyNot,
        Self::PolicyChangedIdNot,
        Self::CertificateExpiring,
        Self::PolicyFetchFailing,
        Self::NewFailureType,
        Self::FailureRateHigh,
        Self::ReporterSilent,
    ];

    /// The kind named `name` ([`AlertKind::as_str`]).
    pub fn from_name(name: &str) -> Option<AlertKind> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MxChangedPolicyNot => "mx_changed_policy_not",
            Self::PolicyChangedIdNot => "policy_changed_id_not",
            Self::CertificateExpiring => "certificate_expiring",
            Self::PolicyFetchFailing => "policy_fetch_failing",
            Self::NewFailureType => "new_failure_type",
            Self::FailureRateHigh => "failure_rate_high",
            Self::ReporterSilent => "reporter_silent",
        }
    }
}

impl serde::Serialize for AlertKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A condition seen now: an alert to open (or keep open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertEvent {
    /// The domain it is about.
    pub domain: String,
    /// What it is about.
    pub kind: AlertKind,
    /// Its identity within the kind (the MX host, the result type, the reporter; may be
    /// empty): alerts of one kind and domain with different keys are separate alerts.
    pub key: String,
    /// One line, for a list and a mail subject.
    pub summary: String,
    /// What was seen and what to do.
    pub detail: String,
}

/// The clock alerts are stamped with, UTC seconds; tests set their own.
pub(crate) type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

fn system_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// The alert engine; clone it freely (every clone is the same engine).
#[derive(Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    /// Seconds after a notification during which the same alert is not notified again.
    cool_down: i64,
    channels: Channels,
    dashboard_url: Option<String>,
    /// Wakes the delivery task when a notification is queued.
    queued: Notify,
    /// Wakes the report rules when reports arrive.
    reports_arrived: Notify,
    clock: Clock,
}

impl Alerts {
    /// The engine over `store`, delivering as `config` says.
    ///
    /// # Errors
    ///
    /// When a token, password or CA file named in `config` cannot be read.
    pub fn new(store: Arc<Store>, config: &AlertsConfig) -> anyhow::Result<Alerts> {
        Ok(Self::with_clock(
            store,
            config,
            Channels::from_config(config).context("[alerts]")?,
            Arc::new(system_clock),
        ))
    }

    fn with_clock(
        store: Arc<Store>,
        config: &AlertsConfig,
        channels: Channels,
        clock: Clock,
    ) -> Alerts {
        Alerts {
            inner: Arc::new(Inner {
                store,
                cool_down: i64::try_from(config.cool_down.as_secs()).unwrap_or(i64::MAX),
                channels,
                dashboard_url: config.dashboard_url.clone(),
                queued: Notify::new(),
                reports_arrived: Notify::new(),
                clock,
            }),
        }
    }

    /// Opens the alert `event` describes, or refreshes its text when it is open already; a
    /// notification is queued when it opens outside the cool-down. Returns once stored; the
    /// notification goes out from the delivery task.
    ///
    /// # Errors
    ///
    /// When the store cannot be written.
    pub async fn raise(&self, event: AlertEvent) -> anyhow::Result<()> {
        let inner = &self.inner;
        let raised = inner
            .store
            .raise_alert(NewAlert {
                domain: event.domain,
                kind: event.kind.as_str().to_owned(),
                key: event.key,
                summary: event.summary,
                detail: event.detail,
                at: (inner.clock)(),
                cool_down: inner.cool_down,
                channels: inner.channels.names(),
            })
            .await?;
        if raised == AlertRaised::Notify {
            inner.queued.notify_one();
        }
        Ok(())
    }

    /// Clears the alert (`domain`, `kind`, `key`) if it is open: its condition is gone.
    ///
    /// # Errors
    ///
    /// When the store cannot be written.
    pub async fn clear(&self, domain: &str, kind: AlertKind, key: &str) -> anyhow::Result<()> {
        let inner = &self.inner;
        inner
            .store
            .clear_alert(domain, kind.as_str(), key, (inner.clock)())
            .await?;
        Ok(())
    }

    /// Tells the report rules that reports arrived: they run again shortly.
    pub fn reports_arrived(&self) {
        self.inner.reports_arrived.notify_one();
    }

    /// The open alerts of `domains` (`None`: all), by domain, kind and key.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub async fn open_alerts(
        &self,
        domains: Option<Vec<String>>,
    ) -> anyhow::Result<Vec<StoredAlert>> {
        Ok(self
            .inner
            .store
            .alerts(&AlertFilter {
                domains,
                open_only: true,
                due_by: None,
            })
            .await?)
    }

    fn now(&self) -> i64 {
        (self.inner.clock)()
    }

    /// Sends every notification due now once, and records each outcome: sent; retried after
    /// [`backoff`] when the failure may pass; failed when it will not, or after [`RETRY_FOR`].
    /// Returns how many were sent.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or written.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        let inner = &self.inner;
        let now = self.now();
        let due = inner
            .store
            .alerts(&AlertFilter {
                due_by: Some(now),
                ..AlertFilter::default()
            })
            .await?;
        let mut sent = 0;
        for alert in &due {
            for delivery in &alert.deliveries {
                let outcome = inner
                    .channels
                    .send(
                        &delivery.channel,
                        alert,
                        inner.dashboard_url.as_deref(),
                        now,
                    )
                    .await;
                let attempts = delivery.attempts + 1;
                let give_up_at = delivery
                    .queued_at
                    .saturating_add(i64::try_from(RETRY_FOR.as_secs()).unwrap_or(i64::MAX));
                let (state, next, error) = match outcome {
                    Ok(()) => {
                        sent += 1;
                        (DeliveryState::Sent, now, None)
                    }
                    Err(SendError::Temporary(error))
                        if now.saturating_add(backoff(attempts)) <= give_up_at =>
                    {
                        (
                            DeliveryState::Pending,
                            now.saturating_add(backoff(attempts)),
                            Some(error),
                        )
                    }
                    Err(error) => (DeliveryState::Failed, now, Some(error.to_string())),
                };
                if let Some(error) = &error {
                    tracing::warn!(
                        domain = alert.domain,
                        kind = alert.kind,
                        channel = delivery.channel,
                        state = state.as_str(),
                        "alert not delivered: {}",
                        crate::render::clean(error)
                    );
                }
                inner
                    .store
                    .record_alert_delivery(
                        (&alert.domain, &alert.kind, &alert.key),
                        &delivery.channel,
                        DeliveryUpdate {
                            state,
                            attempts,
                            next_attempt_at: next,
                            attempted_at: now,
                            error,
                        },
                    )
                    .await?;
            }
        }
        Ok(sent)
    }

    /// Runs the delivery task: sends what is due when a notification is queued, and looks for
    /// retries that have come due at least every minute. Errors are logged, never fatal.
    pub fn spawn_delivery(&self) -> tokio::task::JoinHandle<()> {
        let alerts = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(error) = alerts.deliver_due().await {
                    tracing::warn!(
                        "alert delivery: {}",
                        crate::render::clean(&format!("{error:#}"))
                    );
                }
                tokio::select! {
                    () = alerts.inner.queued.notified() => {}
                    () = tokio::time::sleep(DELIVERY_POLL) => {}
                }
            }
        })
    }
}

/// The open alerts of `domains` as the dashboard shows them.
///
/// # Errors
///
/// When the store cannot be read.
pub(crate) async fn alert_rows(
    store: &Store,
    domains: &[String],
) -> Result<Vec<AlertRow>, mta_sts_store::StoreError> {
    let alerts = store
        .alerts(&AlertFilter {
            domains: Some(domains.to_vec()),
            open_only: true,
            due_by: None,
        })
        .await?;
    Ok(alerts
        .into_iter()
        .map(|alert| AlertRow {
            deliveries: alert
                .deliveries
                .into_iter()
                .map(|d| AlertDeliveryRow {
                    channel: d.channel,
                    state: d.state.as_str().to_owned(),
                    attempts: d.attempts,
                    last_error: d.last_error,
                })
                .collect(),
            domain: alert.domain,
            kind: alert.kind,
            key: alert.key,
            summary: alert.summary,
            detail: alert.detail,
            opened_at: alert.opened_at,
            last_seen: alert.last_seen,
            notified_at: alert.notified_at,
        })
        .collect())
}

/// A report sink that tells the report rules when reports were stored.
pub(crate) struct AlertingSink {
    /// Where reports go.
    pub(crate) sink: Arc<dyn ReportSink>,
    /// Told of each stored report.
    pub(crate) alerts: Alerts,
}

#[async_trait::async_trait]
impl ReportSink for AlertingSink {
    async fn ingest(&self, report: IncomingReport) -> Result<IngestOutcome, SinkError> {
        let outcome = self.sink.ingest(report).await?;
        if outcome == IngestOutcome::Stored {
            self.alerts.reports_arrived();
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests;
