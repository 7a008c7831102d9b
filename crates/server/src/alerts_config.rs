//! `[alerts]` of `mta-sts.toml`: where drift alerts are delivered (a webhook, mail through an
//! SMTP relay), how long an alert stays quiet after a notification, and the thresholds of the
//! alerts derived from reports. Carried through for the binary, which runs the alert engine.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;

/// The default cool-down: a notified alert is not notified again for a day.
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(24 * 3600);
/// The default failure rate over the last day above which `failure_rate_high` opens, percent.
pub const DEFAULT_FAILURE_RATE_PERCENT: f64 = 5.0;
/// The default least number of sessions in the last day for a failure rate to count.
pub const DEFAULT_MIN_SESSIONS: u64 = 20;
/// The default number of days before today in which a failure type must not have been seen for
/// `new_failure_type` to open.
pub const DEFAULT_NEW_FAILURE_DAYS: u32 = 30;
/// The default time between two evaluations of the report-derived alerts.
pub const DEFAULT_EVALUATE_INTERVAL: Duration = Duration::from_secs(3600);
/// The default limit for a webhook request or an SMTP dialogue.
pub const DEFAULT_ALERT_TIMEOUT: Duration = Duration::from_secs(10);

/// `[alerts]`: delivery channels and thresholds. Without the section, alerts are still kept and
/// shown on the dashboard, and delivered nowhere.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    /// `webhook`: an `https:` URL that gets a JSON POST per notification.
    pub webhook: Option<String>,
    /// `webhook_token_file`: a file holding a token sent as `Authorization: Bearer TOKEN`.
    pub webhook_token_file: Option<PathBuf>,
    /// `[alerts.smtp]`: mail through a relay.
    pub smtp: Option<AlertSmtp>,
    /// `ca_file`: certificates trusted besides the public roots, for the webhook and the relay.
    pub ca_file: Vec<PathBuf>,
    /// `timeout_seconds`: limit for a webhook request or an SMTP dialogue.
    pub timeout: Duration,
    /// `cool_down_hours`: after a notification, the same alert is not notified again for this
    /// long, even when it clears and opens again.
    pub cool_down: Duration,
    /// `dashboard_url`: the dashboard's public address, for links in notifications.
    pub dashboard_url: Option<String>,
    /// `failure_rate_percent`: the share of failed sessions over the last day that opens
    /// `failure_rate_high`.
    pub failure_rate_percent: f64,
    /// `min_sessions`: the least sessions in the last day for the failure rate to count.
    pub min_sessions: u64,
    /// `new_failure_days`: a failure type not seen in this many days before today is new.
    pub new_failure_days: u32,
    /// `evaluate_minutes`: time between two evaluations of the report-derived alerts (they are
    /// also evaluated shortly after reports arrive).
    pub evaluate_interval: Duration,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            webhook: None,
            webhook_token_file: None,
            smtp: None,
            ca_file: Vec::new(),
            timeout: DEFAULT_ALERT_TIMEOUT,
            cool_down: DEFAULT_COOL_DOWN,
            dashboard_url: None,
            failure_rate_percent: DEFAULT_FAILURE_RATE_PERCENT,
            min_sessions: DEFAULT_MIN_SESSIONS,
            new_failure_days: DEFAULT_NEW_FAILURE_DAYS,
            evaluate_interval: DEFAULT_EVALUATE_INTERVAL,
        }
    }
}

/// `[alerts.smtp]`: the relay alert mail goes through, and who gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSmtp {
    /// `host`: the relay, also the name its certificate must carry.
    pub host: String,
    /// `port` (default 587).
    pub port: u16,
    /// `starttls` (default true): STARTTLS required with a verified certificate. `false` sends
    /// in the clear, for a relay on the same machine, and then no password is sent.
    pub starttls: bool,
    /// `username` for SMTP AUTH.
    pub username: Option<String>,
    /// `password_file`: the file holding the password of `username`.
    pub password_file: Option<PathBuf>,
    /// `from`: the sender address.
    pub from: String,
    /// `to`: the recipients.
    pub to: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlerts {
    webhook: Option<String>,
    webhook_token_file: Option<PathBuf>,
    smtp: Option<RawAlertSmtp>,
    #[serde(default)]
    ca_file: Vec<PathBuf>,
    timeout_seconds: Option<u64>,
    cool_down_hours: Option<u64>,
    dashboard_url: Option<String>,
    failure_rate_percent: Option<f64>,
    min_sessions: Option<u64>,
    new_failure_days: Option<u32>,
    evaluate_minutes: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertSmtp {
    host: String,
    port: Option<u16>,
    starttls: Option<bool>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    from: String,
    to: Vec<String>,
}

/// Checks `[alerts]`; relative paths go through `resolve`.
pub(crate) fn check_alerts(
    raw: RawAlerts,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<AlertsConfig, ConfigError> {
    let field = |name: &str, message: String| ConfigError::Field {
        field: format!("alerts.{name}"),
        message,
    };
    let defaults = AlertsConfig::default();
    if let Some(url) = &raw.webhook
        && !url.starts_with("https://")
    {
        return Err(field(
            "webhook",
            format!("{url:?}: must be an https:// URL"),
        ));
    }
    if raw.webhook_token_file.is_some() && raw.webhook.is_none() {
        return Err(field(
            "webhook_token_file",
            "given without alerts.webhook".into(),
        ));
    }
    let smtp = raw
        .smtp
        .map(|smtp| {
            if smtp.to.is_empty() {
                return Err(field("smtp.to", "needs at least one recipient".into()));
            }
            for address in std::iter::once(&smtp.from).chain(&smtp.to) {
                if !address.contains('@') || address.chars().any(char::is_whitespace) {
                    return Err(field("smtp", format!("{address:?} is not a mail address")));
                }
            }
            let starttls = smtp.starttls.unwrap_or(true);
            if smtp.username.is_some() != smtp.password_file.is_some() {
                return Err(field(
                    "smtp.username",
                    "username and password_file go together".into(),
                ));
            }
            if !starttls && smtp.username.is_some() {
                return Err(field(
                    "smtp.starttls",
                    "false with a username would send the password in the clear".into(),
                ));
            }
            Ok(AlertSmtp {
                host: smtp.host,
                port: smtp.port.unwrap_or(587),
                starttls,
                username: smtp.username,
                password_file: smtp.password_file.map(resolve),
                from: smtp.from,
                to: smtp.to,
            })
        })
        .transpose()?;
    let rate = raw
        .failure_rate_percent
        .unwrap_or(defaults.failure_rate_percent);
    if !(rate > 0.0 && rate <= 100.0) {
        return Err(field(
            "failure_rate_percent",
            format!("{rate}: must be above 0 and at most 100"),
        ));
    }
    let positive = |name: &str, value: Option<u64>, default: Duration, unit: u64| match value {
        None => Ok(default),
        Some(0) => Err(field(name, "must be at least 1".into())),
        Some(value) => Ok(Duration::from_secs(value.saturating_mul(unit))),
    };
    Ok(AlertsConfig {
        webhook: raw.webhook,
        webhook_token_file: raw.webhook_token_file.map(resolve),
        smtp,
        ca_file: raw.ca_file.into_iter().map(resolve).collect(),
        timeout: positive("timeout_seconds", raw.timeout_seconds, defaults.timeout, 1)?,
        cool_down: raw.cool_down_hours.map_or(defaults.cool_down, |hours| {
            Duration::from_secs(hours.saturating_mul(3600))
        }),
        dashboard_url: raw
            .dashboard_url
            .map(|url| url.trim_end_matches('/').to_owned()),
        failure_rate_percent: rate,
        min_sessions: raw.min_sessions.unwrap_or(defaults.min_sessions).max(1),
        new_failure_days: raw
            .new_failure_days
            .unwrap_or(defaults.new_failure_days)
            .max(1),
        evaluate_interval: positive(
            "evaluate_minutes",
            raw.evaluate_minutes,
            defaults.evaluate_interval,
            60,
        )?,
    })
}
