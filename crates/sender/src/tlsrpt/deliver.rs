//! Delivery of the daily reports (RFC 8460 §5): `mailto:` through an SMTP relay with STARTTLS,
//! `https:` as a POST of `application/tlsrpt+gzip`; retried with back-off for 24 hours, with a
//! state per destination, a size limit and a suppression list.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::TokioIo;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use mta_sts_store::{Delivery, DeliveryState, DeliveryUpdate, OutgoingReport, Store, StoreError};
use mta_sts_tlsrpt::ReportUri;
use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

use super::daily::{Reporter, gzip};
use super::dkim::{DkimError, ReportSigner};
use super::mail::report_mail;

/// How long a report is retried after it was built (RFC 8460 §5.3 lets a sender give up; a day
/// is what receivers expect).
pub const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);

/// The largest HTTPS response head or body read: a receiver only says whether it took the
/// report.
const MAX_RESPONSE: usize = 64 * 1024;

/// How reports are delivered.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Who sends the reports.
    pub reporter: Reporter,
    /// The envelope sender and `From:` of report mails.
    pub mail_from: String,
    /// The SMTP relay report mails go through (`host`, `port`), with STARTTLS required;
    /// without one, `mailto:` destinations wait (their status says why).
    pub smtp_relay: Option<(String, u16)>,
    /// Certificates trusted besides the public roots (a private CA, or a test CA).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// The largest gzipped report mailed, in bytes; a larger one is suppressed for that
    /// destination (RFC 8460 §5.3 leaves size limits to the parties).
    pub max_mail_size: usize,
    /// The largest gzipped report posted, in bytes.
    pub max_https_size: usize,
    /// Destinations never sent to: a `rua` URI exactly, or a domain, which suppresses every
    /// destination at it or below it.
    pub suppressed: Vec<String>,
    /// Limit for each connection, handshake and reply.
    pub timeout: Duration,
    /// Addresses to connect to for `https:` hosts instead of looking them up (as curl's
    /// `--resolve`): a receiver's staging address, or a test server.
    pub resolve: Vec<(String, IpAddr)>,
    /// Signs report mails with DKIM (RFC 8460 §3: they SHOULD be signed); unsigned when
    /// `None`.
    pub dkim: Option<Arc<ReportSigner>>,
}

impl DeliveryOptions {
    /// Options with the defaults: no relay, public roots, 10 MB mails and posts, no suppression,
    /// 30-second timeouts.
    pub fn new(reporter: Reporter) -> Self {
        let mail_from = if reporter.contact_info.contains('@') {
            reporter
                .contact_info
                .trim_start_matches("mailto:")
                .to_owned()
        } else {
            format!("tlsrpt-noreply@{}", reporter.submitter)
        };
        Self {
            reporter,
            mail_from,
            smtp_relay: None,
            extra_roots: Vec::new(),
            max_mail_size: 10 * 1024 * 1024,
            max_https_size: 10 * 1024 * 1024,
            suppressed: Vec::new(),
            timeout: Duration::from_secs(30),
            resolve: Vec::new(),
            dkim: None,
        }
    }

    /// The report mail of `report` to `to`, sent at `now`: [`report_mail`] from
    /// [`DeliveryOptions::mail_from`], DKIM-signed when [`DeliveryOptions::dkim`] is set.
    ///
    /// # Errors
    ///
    /// When the mail cannot be signed.
    pub fn report_mail(
        &self,
        report: &OutgoingReport,
        gzip: &[u8],
        to: &[String],
        now: i64,
    ) -> Result<Vec<u8>, DkimError> {
        let mail = report_mail(&self.reporter, report, gzip, &self.mail_from, to, now);
        match &self.dkim {
            Some(signer) => signer.sign(&mail),
            None => Ok(mail),
        }
    }
}

/// What one delivery run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryRun {
    /// Deliveries that succeeded.
    pub sent: u64,
    /// Deliveries that failed and will be tried again.
    pub retrying: u64,
    /// Deliveries given up.
    pub failed: u64,
    /// Deliveries not made on purpose (suppressed or too large).
    pub suppressed: u64,
}

/// Why one attempt did not deliver.
enum Refusal {
    /// Worth trying again later.
    Temporary(String),
    /// Trying again would give the same answer.
    Permanent(String),
    /// Not sent on purpose.
    Suppressed(String),
}

/// Tries every delivery due at `now` once, and records each outcome.
///
/// # Errors
///
/// When the store cannot be read or written; deliveries made before are recorded.
pub async fn deliver_due(
    store: &Store,
    options: &DeliveryOptions,
    now: i64,
) -> Result<DeliveryRun, StoreError> {
    let due = store.deliveries(None, Some(now)).await?;
    let mut run = DeliveryRun::default();
    let mut reports: Vec<OutgoingReport> = Vec::new();
    // The TLS client of HTTPS deliveries: public roots plus the extra ones, ALPN `http/1.1`.
    let tls = mta_sts_net::verifying_client_config(&options.extra_roots, &[b"http/1.1"])
        .map_err(|error| format!("TLS set-up: {error}"));
    for delivery in due {
        if !reports.iter().any(|report| report.key == delivery.report) {
            reports = store.outgoing_reports(delivery.scope.day).await?;
        }
        let Some(report) = reports.iter().find(|report| report.key == delivery.report) else {
            continue;
        };
        let compressed = gzip(&report.json);
        let outcome = attempt(
            options,
            &tls,
            report,
            &delivery.destination,
            &compressed,
            now,
        )
        .await;
        let attempts = delivery.attempts + 1;
        let update = match outcome {
            Ok(()) => {
                run.sent += 1;
                DeliveryUpdate {
                    state: DeliveryState::Sent,
                    attempts,
                    next_attempt_at: now,
                    attempted_at: now,
                    error: None,
                }
            }
            Err(Refusal::Suppressed(reason)) => {
                run.suppressed += 1;
                DeliveryUpdate {
                    state: DeliveryState::Suppressed,
                    attempts: delivery.attempts,
                    next_attempt_at: now,
                    attempted_at: now,
                    error: Some(reason),
                }
            }
            Err(Refusal::Permanent(reason)) => {
                run.failed += 1;
                failed(attempts, now, reason)
            }
            Err(Refusal::Temporary(reason)) => {
                let next = now.saturating_add(backoff(attempts));
                if next > deadline(&delivery) {
                    run.failed += 1;
                    failed(
                        attempts,
                        now,
                        format!("{reason} (gave up after {attempts} attempts)"),
                    )
                } else {
                    run.retrying += 1;
                    DeliveryUpdate {
                        state: DeliveryState::Pending,
                        attempts,
                        next_attempt_at: next,
                        attempted_at: now,
                        error: Some(reason),
                    }
                }
            }
        };
        store
            .record_delivery(delivery.report, &delivery.destination, update)
            .await?;
    }
    Ok(run)
}

fn failed(attempts: u64, now: i64, reason: String) -> DeliveryUpdate {
    DeliveryUpdate {
        state: DeliveryState::Failed,
        attempts,
        next_attempt_at: now,
        attempted_at: now,
        error: Some(reason),
    }
}

/// Seconds to wait after the `attempts`-th failed attempt: 5 minutes, doubling, at most 4 hours.
pub fn backoff(attempts: u64) -> i64 {
    let doublings = u32::try_from(attempts.saturating_sub(1).min(6)).unwrap_or(6);
    (300_i64 << doublings).min(4 * 3600)
}

/// When a delivery is given up: [`RETRY_FOR`] after the report was built.
fn deadline(delivery: &Delivery) -> i64 {
    delivery
        .created_at
        .saturating_add(i64::try_from(RETRY_FOR.as_secs()).unwrap_or(i64::MAX))
}

/// Whether `destination` is on the suppression list.
pub fn is_suppressed(suppressed: &[String], destination: &str) -> bool {
    let host = destination_host(destination);
    suppressed.iter().any(|entry| {
        let entry = entry.trim_end_matches('.').to_ascii_lowercase();
        destination.eq_ignore_ascii_case(&entry)
            || host.as_deref().is_some_and(|host| {
                host == entry
                    || host
                        .strip_suffix(entry.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            })
    })
}

/// The domain a destination goes to: the mail domain of a `mailto:`, the host of an `https:`.
fn destination_host(destination: &str) -> Option<String> {
    let host = if let Some(address) = strip_scheme(destination, "mailto:") {
        address.split('?').next()?.rsplit_once('@')?.1
    } else {
        let rest = strip_scheme(destination, "https://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        match authority.strip_prefix('[') {
            Some(bracketed) => bracketed.split(']').next()?,
            None => authority.split(':').next()?,
        }
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

fn strip_scheme<'a>(uri: &'a str, scheme: &str) -> Option<&'a str> {
    let head = uri.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme)
        .then(|| uri.get(scheme.len()..))
        .flatten()
}

async fn attempt(
    options: &DeliveryOptions,
    tls: &Result<Arc<ClientConfig>, String>,
    report: &OutgoingReport,
    destination: &str,
    compressed: &[u8],
    now: i64,
) -> Result<(), Refusal> {
    if is_suppressed(&options.suppressed, destination) {
        return Err(Refusal::Suppressed("on the suppression list".into()));
    }
    let uri = ReportUri::parse(destination)
        .map_err(|problem| Refusal::Permanent(format!("unusable rua URI: {}", problem.message)))?;
    let limit = match uri {
        ReportUri::Mailto(_) => options.max_mail_size,
        ReportUri::Https(_) => options.max_https_size,
    };
    if compressed.len() > limit {
        return Err(Refusal::Suppressed(format!(
            "the gzipped report is {} bytes, over the {limit}-byte limit for this destination",
            compressed.len()
        )));
    }
    match uri {
        ReportUri::Mailto(uri) => send_mail(options, report, &uri, compressed, now).await,
        ReportUri::Https(uri) => match tls {
            Ok(tls) => Ok(https_post(
                tls,
                HttpsPost {
                    uri: &uri,
                    content_type: "application/tlsrpt+gzip",
                    user_agent: concat!(
                        "mta-sts/",
                        env!("CARGO_PKG_VERSION"),
                        " (TLS-RPT reporter)"
                    ),
                    headers: &[],
                    body: compressed,
                    timeout: options.timeout,
                    resolve: &options.resolve,
                },
            )
            .await?),
            Err(error) => Err(Refusal::Permanent(error.clone())),
        },
    }
}

/// The recipient of a `mailto:` URI (its query, if any, dropped; percent-escapes decoded).
pub fn mailto_address(uri: &str) -> Option<String> {
    let address = strip_scheme(uri, "mailto:")?.split('?').next()?;
    Some(percent_decode(address))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (byte, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                index += 3;
            }
            _ => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn send_mail(
    options: &DeliveryOptions,
    report: &OutgoingReport,
    uri: &str,
    compressed: &[u8],
    now: i64,
) -> Result<(), Refusal> {
    let Some((relay, port)) = &options.smtp_relay else {
        return Err(Refusal::Temporary(
            "no SMTP relay configured for mailto: destinations (--smtp-relay)".into(),
        ));
    };
    let recipient =
        mailto_address(uri).ok_or_else(|| Refusal::Permanent(format!("no address in {uri}")))?;
    let mail = options
        .report_mail(report, compressed, std::slice::from_ref(&recipient), now)
        .map_err(|error| Refusal::Temporary(error.to_string()))?;
    let relay = SmtpRelay {
        host: relay.clone(),
        port: *port,
        starttls: true,
        credentials: None,
        extra_roots: options.extra_roots.clone(),
        timeout: options.timeout,
    };
    Ok(relay_mail(&relay, &options.mail_from, &[recipient], &mail).await?)
}

/// Why a mail or a POST did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Worth trying again later (a timeout, a 4xx reply, HTTP 5xx).
    Temporary(String),
    /// Trying again would give the same answer (a bad address, a 5xx reply, HTTP 4xx).
    Permanent(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Temporary(message) | Self::Permanent(message) => f.write_str(message),
        }
    }
}

impl From<SendError> for Refusal {
    fn from(error: SendError) -> Self {
        match error {
            SendError::Temporary(message) => Refusal::Temporary(message),
            SendError::Permanent(message) => Refusal::Permanent(message),
        }
    }
}

/// An SMTP relay that mail goes through.
#[derive(Debug, Clone)]
pub struct SmtpRelay {
    /// Its host name (or address), also the name its certificate must carry.
    pub host: String,
    /// Its port (25, 587).
    pub port: u16,
    /// STARTTLS required (with a verified certificate); without it the mail goes in the clear,
    /// for a relay on the same machine only.
    pub starttls: bool,
    /// User name and password for SMTP AUTH, if the relay wants them.
    pub credentials: Option<(String, String)>,
    /// Certificates trusted besides the public roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Limit for the connection and each reply.
    pub timeout: Duration,
}

/// Sends `mail` (a whole message, headers included) from `from` to `to` through `relay`.
///
/// # Errors
///
/// [`SendError::Permanent`] for a bad address or a refusal the relay says is final,
/// [`SendError::Temporary`] for anything else.
pub async fn relay_mail(
    relay: &SmtpRelay,
    from: &str,
    to: &[String],
    mail: &[u8],
) -> Result<(), SendError> {
    let recipients = to
        .iter()
        .map(|recipient| {
            recipient.parse::<Address>().map_err(|error| {
                SendError::Permanent(format!("bad recipient {recipient:?}: {error}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let from: Address = from
        .parse()
        .map_err(|error| SendError::Permanent(format!("bad sender {from:?}: {error}")))?;
    let envelope = Envelope::new(Some(from), recipients)
        .map_err(|error| SendError::Permanent(error.to_string()))?;
    let tls = if relay.starttls {
        let mut tls = TlsParameters::builder(relay.host.clone());
        for root in &relay.extra_roots {
            tls = tls.add_root_certificate(Certificate::from_der(root.to_vec()).map_err(
                |error| SendError::Permanent(format!("unusable extra root certificate: {error}")),
            )?);
        }
        Tls::Required(
            tls.build_rustls()
                .map_err(|error| SendError::Permanent(format!("TLS set-up: {error}")))?,
        )
    } else {
        Tls::None
    };
    let mut transport =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(relay.host.as_str())
            .port(relay.port)
            .tls(tls)
            .timeout(Some(relay.timeout));
    if let Some((user, password)) = &relay.credentials {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    let (host, port) = (&relay.host, relay.port);
    match transport.build().send_raw(&envelope, mail).await {
        Ok(_) => Ok(()),
        Err(error) if error.is_permanent() => Err(SendError::Permanent(format!(
            "the relay {host}:{port} refused the mail: {error}"
        ))),
        Err(error) => Err(SendError::Temporary(format!(
            "mail via {host}:{port}: {error}"
        ))),
    }
}

/// An HTTPS POST: where, what, and how long to wait.
#[derive(Debug, Clone, Copy)]
pub struct HttpsPost<'a> {
    /// The `https:` URI.
    pub uri: &'a str,
    /// The `Content-Type` of the body.
    pub content_type: &'a str,
    /// The `User-Agent`.
    pub user_agent: &'a str,
    /// Further headers (`Authorization`, ...).
    pub headers: &'a [(String, String)],
    /// The body.
    pub body: &'a [u8],
    /// Limit for the connection, the handshake and the response.
    pub timeout: Duration,
    /// Addresses to connect to instead of looking host names up (as curl's `--resolve`).
    pub resolve: &'a [(String, IpAddr)],
}

/// POSTs `post.body` to `post.uri` over `tls`: any 2xx is success; 408, 429 and 5xx are worth
/// another try; any other status is a refusal.
///
/// # Errors
///
/// A [`SendError`] saying what failed (connect, handshake, status with an excerpt of the body).
pub async fn https_post(tls: &Arc<ClientConfig>, post: HttpsPost<'_>) -> Result<(), SendError> {
    let uri = post.uri;
    let parsed: hyper::Uri = uri
        .parse()
        .map_err(|error| SendError::Permanent(format!("bad URI {uri}: {error}")))?;
    if parsed.scheme_str() != Some("https") {
        return Err(SendError::Permanent(format!("{uri} is not an https: URI")));
    }
    let host = parsed
        .host()
        .ok_or_else(|| SendError::Permanent(format!("no host in {uri}")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed.port_u16().unwrap_or(443);
    let temporary = |what: &str, error: &dyn std::fmt::Display| {
        SendError::Temporary(format!("POST {uri}: {what}: {error}"))
    };
    let timeout = post.timeout;
    let pinned = post
        .resolve
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&host))
        .map(|(_, addr)| *addr);
    let connect = async {
        match pinned {
            Some(addr) => tokio::net::TcpStream::connect((addr, port)).await,
            None => tokio::net::TcpStream::connect((host.as_str(), port)).await,
        }
    };
    let tcp = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|error| temporary("connect", &error))?
        .map_err(|error| temporary("connect", &error))?;
    let name = ServerName::try_from(host.clone())
        .map_err(|error| SendError::Permanent(format!("bad host {host:?}: {error}")))?;
    let stream = tokio::time::timeout(
        timeout,
        TlsConnector::from(Arc::clone(tls)).connect(name, tcp),
    )
    .await
    .map_err(|error| temporary("TLS handshake", &error))?
    .map_err(|error| temporary("TLS handshake", &error))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| temporary("HTTP", &error))?;
    let connection = tokio::spawn(connection);
    let path = parsed
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .to_owned();
    let authority = parsed
        .authority()
        .map_or(host.clone(), |authority| authority.as_str().to_owned());
    let mut request = Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, post.content_type)
        .header(hyper::header::USER_AGENT, post.user_agent);
    for (name, value) in post.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(post.body)))
        .map_err(|error| SendError::Permanent(format!("request: {error}")))?;
    let response = tokio::time::timeout(timeout, sender.send_request(request))
        .await
        .map_err(|error| temporary("response", &error))?
        .map_err(|error| temporary("response", &error))?;
    let status = response.status();
    // The body says nothing we act on; read a little of it for the error message.
    let body = tokio::time::timeout(
        timeout,
        http_body_util::BodyExt::collect(http_body_util::Limited::new(
            response.into_body(),
            MAX_RESPONSE,
        )),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .map(|collected| collected.to_bytes())
    .unwrap_or_default();
    connection.abort();
    if status.is_success() {
        return Ok(());
    }
    let excerpt: String = String::from_utf8_lossy(&body)
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let message = format!("POST {uri}: HTTP {status}: {excerpt}");
    if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
        Err(SendError::Temporary(message))
    } else {
        Err(SendError::Permanent(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_five_minutes_up_to_four_hours() {
        let waits: Vec<_> = (1..=8).map(backoff).collect();
        assert_eq!(waits, [300, 600, 1200, 2400, 4800, 9600, 14400, 14400]);
    }

    #[test]
    fn suppression_matches_a_uri_or_a_domain_and_below() {
        let list = [
            "example.net".to_owned(),
            "https://r.example.org/x".to_owned(),
        ];
        assert!(is_suppressed(&list, "mailto:tls@example.net"));
        assert!(is_suppressed(&list, "mailto:tls@mx.Example.NET"));
        assert!(is_suppressed(&list, "https://r.example.org/x"));
        assert!(is_suppressed(&list, "https://reports.example.net:8443/v1"));
        assert!(!is_suppressed(&list, "https://r.example.org/y"));
        assert!(!is_suppressed(&list, "mailto:tls@badexample.net"));
    }

    #[test]
    fn mailto_address_drops_the_query_and_decodes() {
        assert_eq!(
            mailto_address("mailto:tls%2Breports@example.com?subject=x").as_deref(),
            Some("tls+reports@example.com")
        );
    }
}
