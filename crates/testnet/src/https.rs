//! HTTPS policy hosts: one server, many sites chosen by SNI, each with its own good or bad
//! behaviour.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::StartHandshake;

use crate::addr::bind_tcp;
use crate::ca::{CertificateError, Identity, TestCa};
use crate::handle::{Gauge, ServerHandle, accept_loop};
use crate::tls::read_client_hello;

/// Where RFC 8461 §3.3 puts the policy.
pub const POLICY_PATH: &str = "/.well-known/mta-sts.txt";
/// Body size of the oversize behaviours: above the 64 KiB a policy client may read.
pub const OVERSIZE_BODY_BYTES: usize = 70 * 1024;
/// Longest request head the server reads; a policy client sends a few hundred bytes.
const REQUEST_HEAD_LIMIT: usize = 8 * 1024;
/// How long the server waits for a ClientHello or a request head.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Chunk size of [`HttpBehaviour::OversizeChunked`].
const CHUNK_BYTES: usize = 4096;

/// What a site answers to `GET` [`POLICY_PATH`] (other paths get 404).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpBehaviour {
    /// 200 with this content type and body.
    Ok {
        /// The `Content-Type` header value.
        content_type: String,
        /// The body.
        body: Vec<u8>,
    },
    /// This status (404, 500, ...) with a short text body.
    Status(u16),
    /// 301 Moved Permanently with this `Location`.
    Redirect(String),
    /// 200 text/plain declaring `Content-Length` [`OVERSIZE_BODY_BYTES`] and sending that many
    /// bytes: a client must refuse by the header or stop reading at its cap.
    OversizeContentLength,
    /// 200 text/plain sent chunked, without `Content-Length`, [`OVERSIZE_BODY_BYTES`] long: only
    /// a cap enforced while reading catches it.
    OversizeChunked,
    /// A good 200 text/plain response with this body, sent one byte per `interval` (headers
    /// included), so a client's timeout expires first.
    SlowDrip {
        /// The policy body.
        body: Vec<u8>,
        /// Pause between two bytes.
        interval: Duration,
    },
}

impl HttpBehaviour {
    /// 200 `text/plain` with `body`: a well-served policy.
    pub fn policy(body: &str) -> Self {
        Self::Ok {
            content_type: "text/plain".to_owned(),
            body: body.as_bytes().to_vec(),
        }
    }
}

/// How a site's TLS handshake goes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SiteTls {
    /// A certificate issued by the server's CA for the site's host name (the default).
    IssuedByServerCa,
    /// This certificate: another name's, expired, from an untrusted CA, ...
    Certificate(Identity),
    /// Read the ClientHello, then close the connection without a word.
    RefuseByClosing,
    /// Read the ClientHello, then answer in plaintext HTTP, as a port-443 listener without TLS
    /// does: the client receives bytes that are not TLS.
    RefuseWithPlaintext,
}

/// One virtual host of an [`HttpsServer`], selected by the SNI the client sends.
#[derive(Clone, Debug)]
pub struct Site {
    host: String,
    tls: SiteTls,
    behaviour: HttpBehaviour,
}

impl Site {
    /// A site for `host` (e.g. `"mta-sts.example.com"`) answering with `behaviour`, with a
    /// valid certificate.
    pub fn new(host: &str, behaviour: HttpBehaviour) -> Self {
        Self {
            host: host.to_ascii_lowercase(),
            tls: SiteTls::IssuedByServerCa,
            behaviour,
        }
    }

    /// A site serving `body` as a well-formed policy (200, `text/plain`, valid certificate).
    pub fn policy(host: &str, body: &str) -> Self {
        Self::new(host, HttpBehaviour::policy(body))
    }

    /// Presents `identity` instead of a valid certificate for the host.
    pub fn certificate(mut self, identity: Identity) -> Self {
        self.tls = SiteTls::Certificate(identity);
        self
    }

    /// Sets how the TLS handshake goes.
    pub fn tls(mut self, tls: SiteTls) -> Self {
        self.tls = tls;
        self
    }

    /// The host name the site answers for.
    pub fn host(&self) -> &str {
        &self.host
    }
}

/// A request the server received, for tests that count fetches or check what was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The SNI of the TLS connection.
    pub sni: String,
    /// The request method (`GET`).
    pub method: String,
    /// The request target (`/.well-known/mta-sts.txt`).
    pub path: String,
    /// The `Host` header, if any.
    pub host_header: Option<String>,
}

/// A site ready to serve: its behaviour and, unless it refuses TLS, its rustls config.
#[derive(Debug)]
struct PreparedSite {
    site: Site,
    config: Option<Arc<ServerConfig>>,
}

#[derive(Debug)]
struct HttpsState {
    ca: TestCa,
    sites: RwLock<HashMap<String, Arc<PreparedSite>>>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// How long a request waits before its response (a busy server).
    response_delay: Duration,
    /// Connections in progress, for tests of a client's per-destination cap.
    in_progress: Gauge,
}

impl HttpsState {
    fn prepare(&self, site: Site) -> Result<Arc<PreparedSite>, CertificateError> {
        let identity = match &site.tls {
            SiteTls::IssuedByServerCa => Some(self.ca.issue(&[site.host.as_str()])?),
            SiteTls::Certificate(identity) => Some(identity.clone()),
            SiteTls::RefuseByClosing | SiteTls::RefuseWithPlaintext => None,
        };
        let config = identity.map(|identity| identity.server_config(&[b"http/1.1"]));
        Ok(Arc::new(PreparedSite { site, config }))
    }

    fn insert(&self, site: Site) -> Result<(), CertificateError> {
        let prepared = self.prepare(site)?;
        let mut sites = self.sites.write().unwrap_or_else(|p| p.into_inner());
        sites.insert(prepared.site.host.clone(), prepared);
        Ok(())
    }

    fn site(&self, sni: &str) -> Option<Arc<PreparedSite>> {
        let sites = self.sites.read().unwrap_or_else(|p| p.into_inner());
        sites.get(&sni.to_ascii_lowercase()).cloned()
    }
}

/// An HTTPS server hosting many [`Site`]s on one address, chosen by SNI.
///
/// A ClientHello without SNI, or with a name no site has, is closed without a certificate. Every
/// response carries `Connection: close`.
#[derive(Debug)]
pub struct HttpsServer {
    state: Arc<HttpsState>,
}

impl HttpsServer {
    /// A server for `sites`, issuing their default certificates from `ca`.
    pub fn new(
        ca: &TestCa,
        sites: impl IntoIterator<Item = Site>,
    ) -> Result<Self, CertificateError> {
        let state = HttpsState {
            ca: ca.clone(),
            sites: RwLock::default(),
            requests: Mutex::default(),
            response_delay: Duration::ZERO,
            in_progress: Gauge::default(),
        };
        for site in sites {
            state.insert(site)?;
        }
        Ok(Self {
            state: Arc::new(state),
        })
    }

    /// Waits `delay` after reading a request before answering it, as a busy server does, so
    /// the fetches of a client that opens many overlap.
    pub fn response_delay(mut self, delay: Duration) -> Self {
        // The state is shared only once the server starts.
        if let Some(state) = Arc::get_mut(&mut self.state) {
            state.response_delay = delay;
        }
        self
    }

    /// Binds a fresh loopback address and serves until the handle is shut down or dropped.
    pub async fn start(self) -> io::Result<HttpsHandle> {
        self.start_on(bind_tcp().await?)
    }

    /// Serves on `listener` (e.g. one from [`crate::SharedPort`]) until the handle is shut
    /// down or dropped.
    pub fn start_on(self, listener: TcpListener) -> io::Result<HttpsHandle> {
        let addr = listener.local_addr()?;
        let state = Arc::clone(&self.state);
        let server = ServerHandle::spawn(addr, move |shutdown| self.run(listener, shutdown));
        Ok(HttpsHandle { server, state })
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let state = self.state;
        accept_loop(listener, shutdown, move |stream| {
            let state = Arc::clone(&state);
            async move {
                // A failed connection is the client's business; the server goes on.
                let _ = serve_connection(&state, stream).await;
            }
        })
        .await;
    }
}

async fn serve_connection(state: &HttpsState, mut stream: TcpStream) -> io::Result<()> {
    // Over when the response starts (or the connection ends without one).
    let open = state.in_progress.enter();
    let Some(accepted) = tokio::time::timeout(READ_TIMEOUT, read_client_hello(&mut stream))
        .await
        .map_err(io::Error::other)??
    else {
        return Ok(());
    };
    let sni = accepted
        .client_hello()
        .server_name()
        .unwrap_or_default()
        .to_owned();
    let Some(site) = state.site(&sni) else {
        return Ok(());
    };
    let config = match (&site.site.tls, &site.config) {
        (SiteTls::RefuseWithPlaintext, _) => {
            stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nThis port speaks plain HTTP.\r\n")
                .await?;
            return stream.shutdown().await;
        }
        (_, Some(config)) => Arc::clone(config),
        (_, None) => return Ok(()),
    };
    let mut tls = StartHandshake::from_parts(accepted, stream)
        .into_stream(config)
        .await?;
    let Some(request) = tokio::time::timeout(READ_TIMEOUT, read_request_head(&mut tls, sni))
        .await
        .map_err(io::Error::other)??
    else {
        return Ok(());
    };
    state
        .requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(request.clone());
    if !state.response_delay.is_zero() {
        tokio::time::sleep(state.response_delay).await;
    }
    drop(open);
    if request.path != POLICY_PATH {
        write_status(&mut tls, 404).await?;
    } else {
        write_behaviour(&mut tls, &site.site.behaviour).await?;
    }
    tls.shutdown().await
}

/// Reads the request line and headers; `None` if the peer closes or sends no valid HTTP/1.x.
async fn read_request_head(
    stream: &mut (impl AsyncRead + Unpin),
    sni: String,
) -> io::Result<Option<RecordedRequest>> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > REQUEST_HEAD_LIMIT {
            return Ok(None);
        }
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(buffer.get(..n).unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(path), Some(version)) = (
        request_line.next(),
        request_line.next(),
        request_line.next(),
    ) else {
        return Ok(None);
    };
    if !version.starts_with("HTTP/1.") {
        return Ok(None);
    }
    let host_header = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("host"))
        .map(|(_, value)| value.trim().to_owned());
    Ok(Some(RecordedRequest {
        sni,
        method: method.to_owned(),
        path: path.to_owned(),
        host_header,
    }))
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

async fn write_status(stream: &mut (impl AsyncWrite + Unpin), status: u16) -> io::Result<()> {
    let body = format!("{status} {}\n", reason_phrase(status));
    let response = full_response(status, "text/plain", &[], body.as_bytes());
    stream.write_all(&response).await
}

fn full_response(
    status: u16,
    content_type: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason_phrase(status),
        body.len()
    );
    for (name, value) in extra_headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut response = head.into_bytes();
    response.extend_from_slice(body);
    response
}

async fn write_behaviour(
    stream: &mut (impl AsyncWrite + Unpin),
    behaviour: &HttpBehaviour,
) -> io::Result<()> {
    match behaviour {
        HttpBehaviour::Ok { content_type, body } => {
            stream
                .write_all(&full_response(200, content_type, &[], body))
                .await
        }
        HttpBehaviour::Status(status) => write_status(stream, *status).await,
        HttpBehaviour::Redirect(location) => {
            let body = format!("Moved to {location}\n");
            let response = full_response(
                301,
                "text/plain",
                &[("Location", location)],
                body.as_bytes(),
            );
            stream.write_all(&response).await
        }
        HttpBehaviour::OversizeContentLength => {
            let body = oversize_body();
            stream
                .write_all(&full_response(200, "text/plain", &[], &body))
                .await
        }
        HttpBehaviour::OversizeChunked => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                .await?;
            for chunk in oversize_body().chunks(CHUNK_BYTES) {
                stream
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                stream.write_all(chunk).await?;
                stream.write_all(b"\r\n").await?;
            }
            stream.write_all(b"0\r\n\r\n").await
        }
        HttpBehaviour::SlowDrip { body, interval } => {
            for byte in full_response(200, "text/plain", &[], body) {
                stream.write_all(&[byte]).await?;
                stream.flush().await?;
                tokio::time::sleep(*interval).await;
            }
            Ok(())
        }
    }
}

/// A syntactically valid policy padded with comment-like filler past the size cap, so only the
/// size can be the reason to reject it.
fn oversize_body() -> Vec<u8> {
    let mut body = b"version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n".to_vec();
    while body.len() < OVERSIZE_BODY_BYTES {
        body.extend_from_slice(b"x-padding: 0123456789abcdef0123456789abcdef0123456789abcdef\n");
    }
    body.truncate(OVERSIZE_BODY_BYTES);
    body
}

/// A running [`HttpsServer`]: its address, its sites (changeable while it runs), the requests
/// it received.
#[derive(Debug)]
pub struct HttpsHandle {
    server: ServerHandle,
    state: Arc<HttpsState>,
}

impl HttpsHandle {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The IP address to publish in the A record of every site's host.
    pub fn ip(&self) -> std::net::IpAddr {
        self.server.ip()
    }

    /// Adds `site`, or replaces the site with the same host (a policy whose id changed).
    pub fn set_site(&self, site: Site) -> Result<(), CertificateError> {
        self.state.insert(site)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The most connections in progress at once so far, each counted from its accept until
    /// the server starts its response (or the connection ends without one): a client that
    /// holds a place per fetch until it has the response never sees fewer places taken.
    pub fn peak_connections(&self) -> usize {
        self.state.in_progress.peak()
    }

    /// Stops the server and waits until it is gone.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
