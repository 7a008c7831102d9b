//! The STARTTLS probe: an SMTP session up to TLS and back out, never sending mail.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use crate::Net;
use crate::cert::{TlsInfo, handshake_failure};
use crate::dns::DnsResult;
use crate::fetch::serialize_millis;
use crate::tcp::{ConnectFailure, connect};

/// Longest reply line read: RFC 5321 §4.5.3.1.5 allows 512 octets; real servers stay below.
const LINE_LIMIT: usize = 4096;
/// Most lines in one reply; an EHLO reply has a dozen.
const REPLY_LINE_LIMIT: usize = 128;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 4096;

/// Choices for [`Net::probe_mx_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeOptions {
    /// After the probe with SNI, probe again without SNI (a second session) and record it in
    /// [`MxProbe::without_sni`]: shows which certificate old or SNI-less senders get.
    pub without_sni: bool,
}

impl ProbeOptions {
    /// Also probe without SNI.
    pub fn with_without_sni(mut self, without_sni: bool) -> Self {
        self.without_sni = without_sni;
        self
    }
}

/// One SMTP reply: its code and the text of each line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SmtpReply {
    /// The three-digit reply code.
    pub code: u16,
    /// The text after the code on each line.
    pub lines: Vec<String>,
}

impl SmtpReply {
    /// The lines joined with spaces.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }
}

/// A step of the probe's SMTP session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpStep {
    /// Waiting for the 220 greeting.
    Banner,
    /// The first EHLO.
    Ehlo,
    /// The STARTTLS command.
    StartTls,
    /// The TLS handshake.
    Handshake,
    /// EHLO inside TLS.
    EhloAfterTls,
}

impl fmt::Display for SmtpStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Banner => "waiting for the greeting",
            Self::Ehlo => "EHLO",
            Self::StartTls => "STARTTLS",
            Self::Handshake => "the TLS handshake",
            Self::EhloAfterTls => "EHLO after STARTTLS",
        })
    }
}

/// How far the probe got, and why it stopped there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProbeOutcome {
    /// STARTTLS and the TLS handshake succeeded, and the server answered EHLO inside TLS.
    /// Whether the certificate is acceptable is in [`MxProbe::tls`].
    Ok,
    /// No TCP connection.
    ConnectFailed {
        /// Refused, timed out, ...
        reason: ConnectFailure,
    },
    /// Connected, but no greeting arrived in time.
    BannerTimeout,
    /// The greeting was not 220 (421 busy, 554 no service).
    BannerRejected {
        /// The reply code.
        code: u16,
        /// The reply text.
        text: String,
    },
    /// EHLO was refused.
    EhloRejected {
        /// The reply code.
        code: u16,
        /// The reply text.
        text: String,
    },
    /// The EHLO reply does not offer STARTTLS.
    NoStartTls,
    /// STARTTLS was offered but the command was refused.
    StartTlsRejected {
        /// The reply code.
        code: u16,
        /// The reply text.
        text: String,
    },
    /// The TLS handshake after STARTTLS failed.
    HandshakeFailed {
        /// Why.
        reason: String,
        /// The server speaks only TLS 1.0/1.1, which RFC 8461 senders (TLS 1.2+) refuse.
        legacy_tls_only: bool,
    },
    /// The server did not answer in time.
    Timeout {
        /// When.
        step: SmtpStep,
    },
    /// The server closed the connection.
    ConnectionClosed {
        /// When.
        step: SmtpStep,
    },
    /// The server sent something that is not an SMTP reply, or the connection broke.
    ProtocolError {
        /// When.
        step: SmtpStep,
        /// What was wrong.
        detail: String,
    },
}

impl fmt::Display for ProbeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("STARTTLS works"),
            Self::ConnectFailed { reason } => write!(f, "cannot connect: {reason}"),
            Self::BannerTimeout => f.write_str("connected, but no SMTP greeting arrived in time"),
            Self::BannerRejected { code, text } => {
                write!(f, "the server refuses sessions: {code} {text}")
            }
            Self::EhloRejected { code, text } => write!(f, "EHLO refused: {code} {text}"),
            Self::NoStartTls => f.write_str("STARTTLS is not offered"),
            Self::StartTlsRejected { code, text } => {
                write!(f, "STARTTLS offered but refused: {code} {text}")
            }
            Self::HandshakeFailed { reason, .. } => {
                write!(f, "TLS handshake after STARTTLS failed: {reason}")
            }
            Self::Timeout { step } => write!(f, "no answer in time during {step}"),
            Self::ConnectionClosed { step } => {
                write!(f, "the server closed the connection during {step}")
            }
            Self::ProtocolError { step, detail } => {
                write!(f, "protocol error during {step}: {detail}")
            }
        }
    }
}

/// What one SMTP session with one address of an MX host showed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MxProbe {
    /// The MX host name (the name certificates must match), lowercase, without trailing dot.
    pub host: String,
    /// The address probed.
    pub addr: SocketAddr,
    /// How far the session got.
    pub outcome: ProbeOutcome,
    /// The greeting, if one arrived.
    pub banner: Option<SmtpReply>,
    /// The reply to the first EHLO.
    pub ehlo: Option<SmtpReply>,
    /// Whether the EHLO reply offered STARTTLS (`None` if EHLO was never answered).
    pub starttls_offered: Option<bool>,
    /// The TLS session, if the handshake completed: version, cipher suite, certificates and
    /// the sender's verdict on them.
    pub tls: Option<TlsInfo>,
    /// The reply to EHLO inside TLS.
    pub ehlo_after_tls: Option<SmtpReply>,
    /// Whether SNI was sent in the handshake.
    pub sni: bool,
    /// The second session without SNI, when [`ProbeOptions::without_sni`] asked for it and
    /// the first one reached the handshake.
    pub without_sni: Option<Box<MxProbe>>,
    /// How long the session took.
    #[serde(serialize_with = "serialize_millis", rename = "elapsed_ms")]
    pub elapsed: Duration,
}

impl MxProbe {
    /// Whether an MTA-STS sender can deliver here: STARTTLS works and the certificate is valid
    /// for the MX host (RFC 8461 §4.2).
    pub fn is_valid_for_mta_sts(&self) -> bool {
        self.outcome == ProbeOutcome::Ok
            && self
                .tls
                .as_ref()
                .is_some_and(|tls| tls.verification.is_valid())
    }

    fn new(host: &str, addr: SocketAddr, sni: bool) -> Self {
        Self {
            host: host.to_owned(),
            addr,
            outcome: ProbeOutcome::Ok,
            banner: None,
            ehlo: None,
            starttls_offered: None,
            tls: None,
            ehlo_after_tls: None,
            sni,
            without_sni: None,
            elapsed: Duration::ZERO,
        }
    }
}

impl Net {
    /// Probes `mx_host` at `addr` (port [`crate::NetConfig::smtp_port`]): greeting, EHLO,
    /// STARTTLS, TLS handshake with SNI `mx_host`, EHLO, QUIT. Never sends MAIL FROM.
    ///
    /// Never fails: every outcome, down to a refused connection, is in the returned probe.
    pub async fn probe_mx(&self, mx_host: &str, addr: IpAddr) -> MxProbe {
        self.probe_mx_with(mx_host, addr, ProbeOptions::default())
            .await
    }

    /// [`Net::probe_mx`] with options.
    pub async fn probe_mx_with(
        &self,
        mx_host: &str,
        addr: IpAddr,
        options: ProbeOptions,
    ) -> MxProbe {
        let host = mta_sts_policy::normalize_host(mx_host)
            .unwrap_or_else(|_| mx_host.trim().to_ascii_lowercase());
        let addr = SocketAddr::new(addr, self.config().smtp_port);
        let mut probe = self.probe_session(&host, addr, true).await;
        let reached_handshake = matches!(
            probe.outcome,
            ProbeOutcome::HandshakeFailed { .. }
                | ProbeOutcome::Timeout {
                    step: SmtpStep::Handshake
                }
        ) || probe.tls.is_some();
        if options.without_sni && reached_handshake {
            probe.without_sni = Some(Box::new(self.probe_session(&host, addr, false).await));
        }
        probe
    }

    /// Resolves `mx_host` and probes every address (A and AAAA) at once: senders may use any,
    /// so each must work. Results are in address order.
    pub async fn probe_mx_host(
        &self,
        mx_host: &str,
        options: ProbeOptions,
    ) -> DnsResult<Vec<MxProbe>> {
        let addresses = self.resolver().addresses(mx_host).await?;
        let probes = addresses
            .into_iter()
            .map(|ip| self.probe_mx_with(mx_host, ip, options));
        Ok(futures_util::future::join_all(probes).await)
    }

    async fn probe_session(&self, host: &str, addr: SocketAddr, sni: bool) -> MxProbe {
        // Held for the whole session; the wait for it is not part of the session's time.
        let _slot = self.destination_slot(addr.ip()).await;
        let started = Instant::now();
        let mut probe = MxProbe::new(host, addr, sni);
        probe.outcome = match self.run_session(&mut probe, host, addr, sni).await {
            Ok(()) => ProbeOutcome::Ok,
            Err(outcome) => outcome,
        };
        probe.elapsed = started.elapsed();
        probe
    }

    /// The session; returns the outcome that ended it early as the error.
    async fn run_session(
        &self,
        probe: &mut MxProbe,
        host: &str,
        addr: SocketAddr,
        sni: bool,
    ) -> Result<(), ProbeOutcome> {
        let timeout = self.config().timeout;
        let tcp = connect(addr, timeout)
            .await
            .map_err(|reason| ProbeOutcome::ConnectFailed { reason })?;
        let mut session = Session::new(tcp, timeout);

        let banner = session.read_reply().await.map_err(|error| match error {
            ReplyError::Timeout => ProbeOutcome::BannerTimeout,
            error => error.outcome(SmtpStep::Banner),
        })?;
        probe.banner = Some(banner.clone());
        if banner.code != 220 {
            session.quit().await;
            return Err(ProbeOutcome::BannerRejected {
                code: banner.code,
                text: banner.text(),
            });
        }

        let ehlo_command = format!("EHLO {}", self.config().ehlo_name);
        let ehlo = session
            .command(&ehlo_command)
            .await
            .map_err(|error| error.outcome(SmtpStep::Ehlo))?;
        probe.ehlo = Some(ehlo.clone());
        if ehlo.code != 250 {
            session.quit().await;
            return Err(ProbeOutcome::EhloRejected {
                code: ehlo.code,
                text: ehlo.text(),
            });
        }
        let offered = offers_starttls(&ehlo);
        probe.starttls_offered = Some(offered);
        if !offered {
            session.quit().await;
            return Err(ProbeOutcome::NoStartTls);
        }

        let reply = session
            .command("STARTTLS")
            .await
            .map_err(|error| error.outcome(SmtpStep::StartTls))?;
        if reply.code != 220 {
            session.quit().await;
            return Err(ProbeOutcome::StartTlsRejected {
                code: reply.code,
                text: reply.text(),
            });
        }
        // Anything the server sent after its 220 is dropped unread: accepting it as if it came
        // through TLS is the STARTTLS injection flaw (CVE-2011-1575 and kin).
        let tcp = session.into_stream();

        let server_name = match ServerName::try_from(host.to_owned()) {
            Ok(name) => name,
            Err(error) if sni => {
                return Err(ProbeOutcome::HandshakeFailed {
                    reason: format!("{host:?} cannot be sent as SNI: {error}"),
                    legacy_tls_only: false,
                });
            }
            // Without SNI the name is only a label for the connection.
            Err(_) => ServerName::IpAddress(addr.ip().into()),
        };
        let connector = TlsConnector::from(self.smtp_tls(sni));
        let tls = match tokio::time::timeout(timeout, connector.connect(server_name, tcp)).await {
            Err(_) => {
                return Err(ProbeOutcome::Timeout {
                    step: SmtpStep::Handshake,
                });
            }
            Ok(Err(error)) => {
                let (reason, legacy_tls_only) = handshake_failure(&error);
                return Err(ProbeOutcome::HandshakeFailed {
                    reason,
                    legacy_tls_only,
                });
            }
            Ok(Ok(tls)) => tls,
        };
        probe.tls = Some(TlsInfo::from_connection(
            tls.get_ref().1,
            self.roots(),
            host,
        ));

        let mut session = Session::new(tls, timeout);
        let ehlo = session
            .command(&ehlo_command)
            .await
            .map_err(|error| error.outcome(SmtpStep::EhloAfterTls))?;
        probe.ehlo_after_tls = Some(ehlo.clone());
        session.quit().await;
        if ehlo.code != 250 {
            return Err(ProbeOutcome::EhloRejected {
                code: ehlo.code,
                text: ehlo.text(),
            });
        }
        Ok(())
    }
}

/// Whether an EHLO reply lists the STARTTLS extension (keywords are case-insensitive).
fn offers_starttls(ehlo: &SmtpReply) -> bool {
    ehlo.lines.iter().skip(1).any(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|keyword| keyword.eq_ignore_ascii_case("STARTTLS"))
    })
}

/// Why no reply could be read.
#[derive(Debug)]
pub(crate) enum ReplyError {
    Timeout,
    Closed,
    Garbled(String),
    Io(io::Error),
}

impl ReplyError {
    fn outcome(self, step: SmtpStep) -> ProbeOutcome {
        match self {
            Self::Timeout => ProbeOutcome::Timeout { step },
            Self::Closed => ProbeOutcome::ConnectionClosed { step },
            Self::Garbled(detail) => ProbeOutcome::ProtocolError { step, detail },
            Self::Io(error) => ProbeOutcome::ProtocolError {
                step,
                detail: error.to_string(),
            },
        }
    }
}

/// An SMTP client connection: commands out, replies in, each within the timeout.
pub(crate) struct Session<S> {
    stream: S,
    /// Bytes received and not yet consumed.
    buffer: Vec<u8>,
    timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(crate) fn new(stream: S, timeout: Duration) -> Self {
        Self {
            stream,
            buffer: Vec::new(),
            timeout,
        }
    }

    fn into_stream(self) -> S {
        self.stream
    }

    async fn command(&mut self, line: &str) -> Result<SmtpReply, ReplyError> {
        let write = async {
            self.stream
                .write_all(format!("{line}\r\n").as_bytes())
                .await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.timeout, write).await {
            Err(_) => return Err(ReplyError::Timeout),
            Ok(Err(error)) if is_closed(&error) => return Err(ReplyError::Closed),
            Ok(Err(error)) => return Err(ReplyError::Io(error)),
            Ok(Ok(())) => {}
        }
        self.read_reply().await
    }

    /// Says goodbye as RFC 5321 asks, without caring whether the server listens.
    async fn quit(&mut self) {
        let _ = self.command("QUIT").await;
        let _ = tokio::time::timeout(self.timeout, self.stream.shutdown()).await;
    }

    /// One reply, all of its lines, within the timeout.
    async fn read_reply(&mut self) -> Result<SmtpReply, ReplyError> {
        tokio::time::timeout(self.timeout, self.read_reply_unbounded())
            .await
            .unwrap_or(Err(ReplyError::Timeout))
    }

    pub(crate) async fn read_reply_unbounded(&mut self) -> Result<SmtpReply, ReplyError> {
        let mut code = None;
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await?;
            let text = String::from_utf8_lossy(&line);
            let (line_code, last, rest) = parse_reply_line(&text)
                .ok_or_else(|| ReplyError::Garbled(format!("not an SMTP reply: {text:?}")))?;
            if *code.get_or_insert(line_code) != line_code {
                return Err(ReplyError::Garbled(format!(
                    "reply code changed within a reply: {text:?}"
                )));
            }
            lines.push(rest.to_owned());
            if last {
                return Ok(SmtpReply {
                    code: line_code,
                    lines,
                });
            }
            if lines.len() >= REPLY_LINE_LIMIT {
                return Err(ReplyError::Garbled(format!(
                    "reply longer than {REPLY_LINE_LIMIT} lines"
                )));
            }
        }
    }

    async fn read_line(&mut self) -> Result<Vec<u8>, ReplyError> {
        let mut searched = 0;
        loop {
            if let Some(line) = crate::tcp::take_line(&mut self.buffer, searched) {
                return Ok(line);
            }
            searched = self.buffer.len();
            if searched > LINE_LIMIT {
                return Err(ReplyError::Garbled(format!(
                    "reply line longer than {LINE_LIMIT} bytes"
                )));
            }
            let mut chunk = [0u8; READ_CHUNK];
            let n = match self.stream.read(&mut chunk).await {
                Ok(n) => n,
                Err(error) if is_closed(&error) => 0,
                Err(error) => return Err(ReplyError::Io(error)),
            };
            if n == 0 {
                return Err(ReplyError::Closed);
            }
            self.buffer
                .extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    }
}

fn is_closed(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

/// Splits `250-text` / `250 text` / `250` into code, "last line", text.
fn parse_reply_line(line: &str) -> Option<(u16, bool, &str)> {
    let code_text = line.get(..3)?;
    if !code_text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code = code_text.parse().ok()?;
    match line.as_bytes().get(3) {
        None => Some((code, true, "")),
        Some(b' ') => Some((code, true, line.get(4..).unwrap_or_default())),
        Some(b'-') => Some((code, false, line.get(4..).unwrap_or_default())),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines_parse() {
        assert_eq!(
            parse_reply_line("250-PIPELINING"),
            Some((250, false, "PIPELINING"))
        );
        assert_eq!(parse_reply_line("250 OK"), Some((250, true, "OK")));
        assert_eq!(parse_reply_line("221"), Some((221, true, "")));
        assert_eq!(parse_reply_line("25"), None);
        assert_eq!(parse_reply_line("2x0 OK"), None);
        assert_eq!(parse_reply_line("250_OK"), None);
        assert_eq!(parse_reply_line("ü50 OK"), None);
    }

    #[test]
    fn starttls_keyword_is_found_case_insensitively_after_the_greeting_line() {
        let reply = |lines: &[&str]| SmtpReply {
            code: 250,
            lines: lines.iter().map(|l| (*l).to_owned()).collect(),
        };
        assert!(offers_starttls(&reply(&[
            "mx greets you",
            "PIPELINING",
            "starttls"
        ])));
        assert!(!offers_starttls(&reply(&[
            "STARTTLS is what we lack",
            "8BITMIME"
        ])));
        assert!(!offers_starttls(&reply(&["mx", "STARTTLSX"])));
    }
}
