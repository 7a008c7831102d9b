//! The channels an alert is delivered on: a JSON POST to the webhook and a plain-text mail
//! through the SMTP relay, both through the sender crate's delivery code (the one that sends
//! TLS reports), so TLS, timeouts and error classes are the same.

use std::sync::Arc;

use anyhow::Context;
use mta_sts_sender::tlsrpt::{
    HttpsPost, SendError, SmtpRelay, header_text, https_post, relay_mail, rfc5322_date,
};
use mta_sts_server::AlertsConfig;
use mta_sts_store::StoredAlert;
use mta_sts_tlsrpt::report::Timestamp;
use rustls::ClientConfig;

/// The channel names stored with each delivery.
pub(crate) const WEBHOOK: &str = "webhook";
/// See [`WEBHOOK`].
pub(crate) const EMAIL: &str = "email";

const USER_AGENT: &str = concat!("mta-sts/", env!("CARGO_PKG_VERSION"), " (alerts)");

/// The configured channels, ready to send.
pub(crate) struct Channels {
    webhook: Option<Webhook>,
    email: Option<Email>,
    tls: Arc<ClientConfig>,
}

struct Webhook {
    url: String,
    /// `Authorization: Bearer ...`, when a token file is configured.
    headers: Vec<(String, String)>,
    timeout: std::time::Duration,
}

struct Email {
    relay: SmtpRelay,
    from: String,
    to: Vec<String>,
}

impl Channels {
    /// The channels `config` names; their secrets read from their files.
    pub(crate) fn from_config(config: &AlertsConfig) -> anyhow::Result<Channels> {
        let mut net = mta_sts_net::NetConfig::default();
        for path in &config.ca_file {
            net.add_ca_file(path)?;
        }
        let tls = mta_sts_net::verifying_client_config(&net.extra_roots, &[b"http/1.1"])?;
        let webhook = match &config.webhook {
            Some(url) => {
                let mut headers = Vec::new();
                if let Some(path) = &config.webhook_token_file {
                    let token =
                        crate::ingest_cmd::read_password(path).context("webhook_token_file")?;
                    headers.push(("authorization".to_owned(), format!("Bearer {token}")));
                }
                Some(Webhook {
                    url: url.clone(),
                    headers,
                    timeout: config.timeout,
                })
            }
            None => None,
        };
        let email = match &config.smtp {
            Some(smtp) => {
                let credentials = match (&smtp.username, &smtp.password_file) {
                    (Some(user), Some(path)) => Some((
                        user.clone(),
                        crate::ingest_cmd::read_password(path).context("smtp.password_file")?,
                    )),
                    _ => None,
                };
                Some(Email {
                    relay: SmtpRelay {
                        host: smtp.host.clone(),
                        port: smtp.port,
                        starttls: smtp.starttls,
                        credentials,
                        extra_roots: net.extra_roots.clone(),
                        timeout: config.timeout,
                    },
                    from: smtp.from.clone(),
                    to: smtp.to.clone(),
                })
            }
            None => None,
        };
        Ok(Channels {
            webhook,
            email,
            tls,
        })
    }

    /// The names of the configured channels, each of which gets every notification.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.webhook.is_some() {
            names.push(WEBHOOK.to_owned());
        }
        if self.email.is_some() {
            names.push(EMAIL.to_owned());
        }
        names
    }

    /// Sends `alert` on `channel`.
    pub(crate) async fn send(
        &self,
        channel: &str,
        alert: &StoredAlert,
        dashboard_url: Option<&str>,
        now: i64,
    ) -> Result<(), SendError> {
        match channel {
            WEBHOOK => {
                let Some(webhook) = &self.webhook else {
                    return Err(SendError::Permanent(
                        "alerts.webhook is no longer configured".into(),
                    ));
                };
                let body = payload(alert, dashboard_url).to_string();
                https_post(
                    &self.tls,
                    HttpsPost {
                        uri: &webhook.url,
                        content_type: "application/json",
                        user_agent: USER_AGENT,
                        headers: &webhook.headers,
                        body: body.as_bytes(),
                        timeout: webhook.timeout,
                        resolve: &[],
                    },
                )
                .await
            }
            EMAIL => {
                let Some(email) = &self.email else {
                    return Err(SendError::Permanent(
                        "alerts.smtp is no longer configured".into(),
                    ));
                };
                let message = mail(alert, &email.from, &email.to, dashboard_url, now);
                relay_mail(&email.relay, &email.from, &email.to, &message).await
            }
            other => Err(SendError::Permanent(format!(
                "unknown alert channel {other:?}"
            ))),
        }
    }
}

fn time(unix: i64) -> String {
    Timestamp::from_unix_seconds(unix).map_or_else(|| unix.to_string(), |t| t.to_string())
}

/// The domain's page on the dashboard.
fn domain_link(dashboard_url: Option<&str>, domain: &str) -> Option<String> {
    dashboard_url.map(|base| format!("{base}/domains/{domain}"))
}

/// The webhook's JSON: stable field names (README, "Alerts").
pub(crate) fn payload(alert: &StoredAlert, dashboard_url: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "domain": alert.domain,
        "kind": alert.kind,
        "key": alert.key,
        "summary": alert.summary,
        "detail": alert.detail,
        "open": alert.open,
        "opened_at": time(alert.opened_at),
        "dashboard_url": domain_link(dashboard_url, &alert.domain),
    })
}

/// The alert mail: plain text, `Auto-Submitted` so nobody answers it; text from the network
/// cannot break a header ([`header_text`]).
pub(crate) fn mail(
    alert: &StoredAlert,
    from: &str,
    to: &[String],
    dashboard_url: Option<&str>,
    now: i64,
) -> Vec<u8> {
    let subject = header_text(&format!("[mta-sts] {}: {}", alert.domain, alert.summary));
    let mut mail = String::new();
    for (name, value) in [
        ("From", header_text(from)),
        ("To", header_text(&to.join(", "))),
        ("Date", rfc5322_date(now)),
        ("Subject", encoded_word(&subject)),
        ("MIME-Version", "1.0".to_owned()),
        ("Content-Type", "text/plain; charset=utf-8".to_owned()),
        ("Content-Transfer-Encoding", "8bit".to_owned()),
        ("Auto-Submitted", "auto-generated".to_owned()),
    ] {
        mail.push_str(&format!("{name}: {value}\r\n"));
    }
    mail.push_str("\r\n");
    let mut body = format!(
        "{}\n\ndomain: {}\nkind: {}\nkey: {}\nsince: {}\n\n{}\n",
        alert.summary,
        alert.domain,
        alert.kind,
        alert.key,
        time(alert.opened_at),
        alert.detail
    );
    if let Some(link) = domain_link(dashboard_url, &alert.domain) {
        body.push_str(&format!("\n{link}\n"));
    }
    // Line ends as SMTP wants them (the relay client dot-stuffs).
    for line in body.lines() {
        mail.push_str(line);
        mail.push_str("\r\n");
    }
    mail.into_bytes()
}

/// `text` as a header value: as is when ASCII, else an RFC 2047 encoded word.
fn encoded_word(text: &str) -> String {
    use base64::Engine as _;
    if text.is_ascii() {
        text.to_owned()
    } else {
        format!(
            "=?utf-8?b?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }
}
