//! SMTP servers that speak real SMTP (RFC 5321) and STARTTLS (RFC 3207), well or badly.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::StartHandshake;

use crate::addr::bind_tcp;
use crate::ca::Identity;
use crate::handle::{Gauge, InProgress, ServerHandle, accept_loop};
use crate::tls::read_client_hello;

/// Longest command or text line accepted: RFC 5321 §4.5.3.1.6 allows 1000 octets with CRLF.
const LINE_LIMIT: usize = 1000;
/// Largest message accepted by DATA; TLS reports are far smaller.
const MESSAGE_LIMIT: usize = 10 * 1024 * 1024;
/// How long the server waits for the client's next line or TLS record (RFC 5321 allows minutes;
/// tests want a quick end to abandoned sessions).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A fatal TLS 1.2 alert record: handshake_failure (40).
const HANDSHAKE_FAILURE_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 40];

/// The only TLS versions a legacy server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegacyTlsVersion {
    /// TLS 1.0 (wire version 3.1).
    Tls10,
    /// TLS 1.1 (wire version 3.2).
    Tls11,
}

/// The certificate an SMTP server presents after STARTTLS.
#[derive(Clone, Debug)]
pub enum ServerCertificate {
    /// The same certificate whatever the SNI.
    Single(Identity),
    /// The certificate for the SNI the client sent, or `default` when it sent none or another
    /// name (as a server hosting several MX names does).
    BySni {
        /// Certificates by lowercase host name.
        by_name: HashMap<String, Identity>,
        /// Presented when no name matches.
        default: Identity,
    },
}

impl ServerCertificate {
    fn select(&self, sni: Option<&str>) -> &Identity {
        match self {
            Self::Single(identity) => identity,
            Self::BySni { by_name, default } => sni
                .and_then(|name| by_name.get(&name.to_ascii_lowercase()))
                .unwrap_or(default),
        }
    }
}

/// How an SMTP server behaves.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SmtpBehaviour {
    /// Offers STARTTLS and completes the handshake with this certificate (a good, expired,
    /// wrong-name, self-signed or untrusted one: the client's verification decides).
    StartTls(ServerCertificate),
    /// EHLO does not list STARTTLS, and the STARTTLS command is answered 502.
    NoStartTls,
    /// Offers STARTTLS, answers it 220, then answers the ClientHello with a fatal
    /// handshake_failure alert.
    StartTlsThenHandshakeFailure,
    /// Offers STARTTLS but speaks only TLS 1.0 or 1.1.
    ///
    /// rustls cannot speak these versions, so the server emulates an old stack: it reads the
    /// ClientHello and answers with a ServerHello whose version is 3.1 (or 3.2) and cipher suite
    /// TLS_RSA_WITH_AES_128_CBC_SHA, as a server capped at that version does. A TLS 1.2+ client
    /// rejects it (rustls: `PeerIncompatible::ServerDoesNotSupportTls12Or13`) and sends a
    /// protocol_version alert; nothing after the ServerHello is ever sent.
    LegacyTlsOnly(LegacyTlsVersion),
    /// Sends this greeting code instead of 220: 421 closes at once (service not available);
    /// 554 then answers 503 to everything but QUIT (RFC 5321 §3.1).
    RejectingBanner(u16),
    /// Accepts the connection and never sends a banner.
    SilentBanner,
}

impl SmtpBehaviour {
    /// STARTTLS with a single certificate.
    pub fn starttls(identity: Identity) -> Self {
        Self::StartTls(ServerCertificate::Single(identity))
    }
}

/// A message received by DATA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The MAIL FROM argument, as sent.
    pub mail_from: String,
    /// The RCPT TO arguments, as sent.
    pub rcpt_to: Vec<String>,
    /// The message with dot-stuffing undone and the final `.` line removed.
    pub data: Vec<u8>,
}

/// What happened in one SMTP session, for tests that check what a client did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmtpSession {
    /// The SNI of the STARTTLS handshake (`None` if none was sent or TLS never started).
    pub sni: Option<String>,
    /// Whether a TLS handshake completed.
    pub tls_established: bool,
    /// Command verbs received, upper-cased (`EHLO`, `STARTTLS`, ...).
    pub commands: Vec<String>,
    /// Messages received.
    pub messages: Vec<ReceivedMessage>,
}

#[derive(Debug)]
struct SmtpState {
    hostname: String,
    behaviour: SmtpBehaviour,
    /// How long a session waits before the greeting (a busy server).
    greeting_delay: Duration,
    sessions: Mutex<Vec<SmtpSession>>,
    /// Sessions in progress, for tests of a client's per-destination cap.
    in_progress: Gauge,
}

impl SmtpState {
    /// Applies `change` to session `index` of the log, so tests see progress while a session is
    /// still open.
    fn record(&self, index: usize, change: impl FnOnce(&mut SmtpSession)) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(session) = sessions.get_mut(index) {
            change(session);
        }
    }

    fn new_session(&self) -> usize {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.push(SmtpSession::default());
        sessions.len() - 1
    }
}

/// An SMTP server on one address.
#[derive(Debug)]
pub struct SmtpServer {
    state: Arc<SmtpState>,
}

impl SmtpServer {
    /// A server calling itself `hostname` in its banner and EHLO reply, behaving as `behaviour`.
    pub fn new(hostname: &str, behaviour: SmtpBehaviour) -> Self {
        let state = SmtpState {
            hostname: hostname.to_owned(),
            behaviour,
            greeting_delay: Duration::ZERO,
            sessions: Mutex::default(),
            in_progress: Gauge::default(),
        };
        Self {
            state: Arc::new(state),
        }
    }

    /// Waits `delay` after accepting a connection before the greeting, as a busy server
    /// does, so the sessions of a client that opens many overlap.
    pub fn greeting_delay(mut self, delay: Duration) -> Self {
        // The state is shared only once the server starts.
        if let Some(state) = Arc::get_mut(&mut self.state) {
            state.greeting_delay = delay;
        }
        self
    }

    /// Binds a fresh loopback address and serves until the handle is shut down or dropped.
    pub async fn start(self) -> io::Result<SmtpHandle> {
        self.start_on(bind_tcp().await?)
    }

    /// Serves on `listener` (e.g. one from [`crate::SharedPort`], so every MX of a test is on
    /// the same port) until the handle is shut down or dropped.
    pub fn start_on(self, listener: TcpListener) -> io::Result<SmtpHandle> {
        let addr = listener.local_addr()?;
        let state = Arc::clone(&self.state);
        let server = ServerHandle::spawn(addr, move |shutdown| self.run(listener, shutdown));
        Ok(SmtpHandle { server, state })
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let state = self.state;
        accept_loop(listener, shutdown, move |stream| {
            let state = Arc::clone(&state);
            async move {
                let index = state.new_session();
                // A failed session is the client's business; the server goes on.
                let _ = serve_session(&state, index, stream).await;
            }
        })
        .await;
    }
}

async fn serve_session(state: &SmtpState, index: usize, mut stream: TcpStream) -> io::Result<()> {
    let host = &state.hostname;
    // Over at QUIT (before its reply) or when the session ends.
    let mut open = Some(state.in_progress.enter());
    if !state.greeting_delay.is_zero() {
        tokio::time::sleep(state.greeting_delay).await;
    }
    match state.behaviour {
        SmtpBehaviour::SilentBanner => {
            // Hold the connection open, reading nothing back, until the client gives up.
            let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
            return Ok(());
        }
        SmtpBehaviour::RejectingBanner(421) => {
            let banner = format!("421 4.3.2 {host} Service not available, closing channel\r\n");
            stream.write_all(banner.as_bytes()).await?;
            return stream.shutdown().await;
        }
        SmtpBehaviour::RejectingBanner(code) => {
            let banner = format!("{code} {host} No SMTP service here\r\n");
            stream.write_all(banner.as_bytes()).await?;
            return reject_until_quit(state, index, BufReader::new(stream), &mut open).await;
        }
        _ => {}
    }
    let banner = format!("220 {host} ESMTP mta-sts-testnet\r\n");
    stream.write_all(banner.as_bytes()).await?;
    let mut reader = BufReader::new(stream);
    if dialogue(state, index, &mut reader, false, &mut open).await? == Next::Quit {
        return Ok(());
    }
    // Bytes the client pipelined after STARTTLS are dropped with the buffer: accepting them
    // would be the STARTTLS command injection of CVE-2011-0411.
    let mut stream = reader.into_inner();
    let Some(accepted) = with_timeout(read_client_hello(&mut stream)).await? else {
        return Ok(());
    };
    let sni = accepted.client_hello().server_name().map(str::to_owned);
    state.record(index, |s| s.sni.clone_from(&sni));
    match &state.behaviour {
        SmtpBehaviour::StartTls(certificate) => {
            let config: Arc<ServerConfig> = certificate.select(sni.as_deref()).server_config(&[]);
            let tls = StartHandshake::from_parts(accepted, stream)
                .into_stream(config)
                .await?;
            state.record(index, |s| s.tls_established = true);
            let mut reader = BufReader::new(tls);
            dialogue(state, index, &mut reader, true, &mut open).await?;
            reader.into_inner().shutdown().await
        }
        SmtpBehaviour::LegacyTlsOnly(version) => {
            stream.write_all(&legacy_server_hello(*version)).await?;
            // Wait for the client's protocol_version alert and close, as the old stack would.
            let mut sink = [0u8; 512];
            let _ = with_timeout(stream.read(&mut sink)).await;
            Ok(())
        }
        _ => {
            stream.write_all(&HANDSHAKE_FAILURE_ALERT).await?;
            stream.shutdown().await
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Next {
    Quit,
    StartTls,
}

async fn with_timeout<T>(future: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(IDLE_TIMEOUT, future)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "SMTP client idle"))?
}

/// Reads one line without its CRLF; `None` at end of stream or when the line exceeds
/// [`LINE_LIMIT`] (the session is then ended rather than resynchronised).
async fn read_line(
    reader: &mut (impl AsyncRead + Unpin + AsyncBufReadExt),
) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let n = with_timeout(
        (&mut *reader)
            .take(LINE_LIMIT as u64)
            .read_until(b'\n', &mut line),
    )
    .await?;
    if n == 0 || !line.ends_with(b"\n") {
        return Ok(None);
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

async fn reply<S: AsyncRead + AsyncWrite + Unpin>(
    reader: &mut BufReader<S>,
    text: &str,
) -> io::Result<()> {
    let stream = reader.get_mut();
    stream.write_all(text.as_bytes()).await?;
    stream.flush().await
}

/// The SMTP command loop; returns when the client quits or when STARTTLS was accepted. QUIT
/// ends `open` before it is answered.
async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(
    state: &SmtpState,
    index: usize,
    reader: &mut BufReader<S>,
    in_tls: bool,
    open: &mut Option<InProgress<'_>>,
) -> io::Result<Next> {
    let host = &state.hostname;
    let offers_starttls = !in_tls && !matches!(state.behaviour, SmtpBehaviour::NoStartTls);
    let mut mail_from: Option<String> = None;
    let mut rcpt_to = Vec::new();
    loop {
        let Some(line) = read_line(reader).await? else {
            return Ok(Next::Quit);
        };
        let (verb, argument) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let verb = verb.to_ascii_uppercase();
        state.record(index, |s| s.commands.push(verb.clone()));
        match verb.as_str() {
            "EHLO" => {
                let mut text = format!(
                    "250-{host} greets {argument}\r\n250-PIPELINING\r\n250-SIZE {MESSAGE_LIMIT}\r\n"
                );
                if offers_starttls {
                    text.push_str("250-STARTTLS\r\n");
                }
                text.push_str("250 8BITMIME\r\n");
                reply(reader, &text).await?;
            }
            "HELO" => reply(reader, &format!("250 {host}\r\n")).await?,
            "STARTTLS" if offers_starttls => {
                reply(reader, "220 2.0.0 Ready to start TLS\r\n").await?;
                return Ok(Next::StartTls);
            }
            "STARTTLS" if in_tls => reply(reader, "503 5.5.1 TLS already active\r\n").await?,
            "STARTTLS" => reply(reader, "502 5.5.1 STARTTLS not supported\r\n").await?,
            "MAIL" => {
                mail_from = Some(argument.to_owned());
                rcpt_to.clear();
                reply(reader, "250 2.1.0 OK\r\n").await?;
            }
            "RCPT" if mail_from.is_some() => {
                rcpt_to.push(argument.to_owned());
                reply(reader, "250 2.1.5 OK\r\n").await?;
            }
            "DATA" if mail_from.is_some() && !rcpt_to.is_empty() => {
                reply(reader, "354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let Some(data) = read_data(reader).await? else {
                    return Ok(Next::Quit);
                };
                let message = ReceivedMessage {
                    mail_from: mail_from.take().unwrap_or_default(),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    data,
                };
                state.record(index, |s| s.messages.push(message));
                reply(reader, "250 2.0.0 OK queued\r\n").await?;
            }
            "RCPT" | "DATA" => reply(reader, "503 5.5.1 Bad sequence of commands\r\n").await?,
            "RSET" => {
                mail_from = None;
                rcpt_to.clear();
                reply(reader, "250 2.0.0 OK\r\n").await?;
            }
            "NOOP" => reply(reader, "250 2.0.0 OK\r\n").await?,
            "QUIT" => {
                open.take();
                reply(reader, &format!("221 2.0.0 {host} closing connection\r\n")).await?;
                return Ok(Next::Quit);
            }
            _ => reply(reader, "500 5.5.2 Command not recognized\r\n").await?,
        }
    }
}

/// Reads DATA lines up to the lone `.`; `None` if the client closes or exceeds
/// [`MESSAGE_LIMIT`].
async fn read_data(
    reader: &mut (impl AsyncRead + Unpin + AsyncBufReadExt),
) -> io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    loop {
        let Some(line) = read_line(reader).await? else {
            return Ok(None);
        };
        if line == "." {
            return Ok(Some(data));
        }
        let unstuffed = line.strip_prefix('.').unwrap_or(&line);
        data.extend_from_slice(unstuffed.as_bytes());
        data.extend_from_slice(b"\r\n");
        if data.len() > MESSAGE_LIMIT {
            return Ok(None);
        }
    }
}

/// After a 554 greeting: 503 to every command, 221 to QUIT (RFC 5321 §3.1).
async fn reject_until_quit(
    state: &SmtpState,
    index: usize,
    mut reader: BufReader<TcpStream>,
    open: &mut Option<InProgress<'_>>,
) -> io::Result<()> {
    while let Some(line) = read_line(&mut reader).await? {
        let verb = line
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        state.record(index, |s| s.commands.push(verb.clone()));
        if verb == "QUIT" {
            open.take();
            return reply(&mut reader, "221 2.0.0 Bye\r\n").await;
        }
        reply(&mut reader, "503 5.5.1 No SMTP service here\r\n").await?;
    }
    Ok(())
}

/// A ServerHello record as a TLS 1.0/1.1-only server sends it: no extensions, session id empty,
/// TLS_RSA_WITH_AES_128_CBC_SHA (which every such server supports).
fn legacy_server_hello(version: LegacyTlsVersion) -> Vec<u8> {
    let wire_version: [u8; 2] = match version {
        LegacyTlsVersion::Tls10 => [0x03, 0x01],
        LegacyTlsVersion::Tls11 => [0x03, 0x02],
    };
    let mut body = wire_version.to_vec();
    body.extend_from_slice(&[0x5a; 32]); // server random
    body.push(0); // empty session id
    body.extend_from_slice(&[0x00, 0x2f]); // TLS_RSA_WITH_AES_128_CBC_SHA
    body.push(0); // null compression
    let mut handshake = vec![0x02]; // ServerHello
    handshake.extend_from_slice(&u24_be(body.len()));
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16]; // handshake record
    record.extend_from_slice(&wire_version);
    record.extend_from_slice(
        &u16::try_from(handshake.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    record.extend_from_slice(&handshake);
    record
}

fn u24_be(n: usize) -> [u8; 3] {
    let [_, a, b, c] = u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
    [a, b, c]
}

/// A running [`SmtpServer`]: its address and the sessions it saw.
#[derive(Debug)]
pub struct SmtpHandle {
    server: ServerHandle,
    state: Arc<SmtpState>,
}

impl SmtpHandle {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The IP address to publish in the MX host's A record.
    pub fn ip(&self) -> std::net::IpAddr {
        self.server.ip()
    }

    /// Every session so far, in the order they were accepted (open ones included).
    pub fn sessions(&self) -> Vec<SmtpSession> {
        self.state
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The most sessions in progress at once so far, each counted from its accept until the
    /// server answers QUIT (or the session ends without one): a client that holds a place per
    /// session until QUIT is answered never sees fewer places taken than this.
    pub fn peak_sessions(&self) -> usize {
        self.state.in_progress.peak()
    }

    /// Stops the server and waits until it is gone.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
