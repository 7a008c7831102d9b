//! The policy fetch of RFC 8461 §3.3: one HTTPS GET, judged as a sender judges it.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mta_sts_policy::MAX_POLICY_SIZE;
use rustls::pki_types::ServerName;
use serde::{Serialize, Serializer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use crate::Net;
use crate::cert::{CertSummary, CertVerdict, TlsInfo, handshake_failure};
use crate::dns::DnsError;
use crate::tcp::{ConnectFailure, connect};

/// Where RFC 8461 §3.2 puts the policy on the policy host.
pub const POLICY_PATH: &str = "/.well-known/mta-sts.txt";
/// Longest response head (status line and headers) read; a policy host sends a few hundred
/// bytes.
const HEAD_LIMIT: usize = 16 * 1024;
/// Longest chunk-size or trailer line read.
const CHUNK_LINE_LIMIT: usize = 1024;
/// Interim (1xx) responses skipped before the final one; more is a broken or hostile server.
const MAX_INTERIM_RESPONSES: usize = 8;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;

/// A policy body as the policy host served it, with the evidence of how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FetchedPolicy {
    /// The URL fetched.
    pub url: String,
    /// The response body, at most [`MAX_POLICY_SIZE`] bytes; not yet parsed.
    pub body: Vec<u8>,
    /// The `Content-Type` header as sent (it was `text/plain`, maybe with parameters).
    pub content_type: Option<String>,
    /// The address the policy came from.
    pub peer: SocketAddr,
    /// The policy host's certificate (it was valid: chained to a trusted root, named the
    /// policy host, in date).
    pub certificate: CertSummary,
    /// The negotiated TLS version (`TLSv1.3`).
    pub tls_version: String,
    /// The negotiated cipher suite.
    pub cipher_suite: String,
    /// How long the fetch took, DNS lookup included.
    #[serde(serialize_with = "serialize_millis", rename = "elapsed_ms")]
    pub elapsed: Duration,
}

/// Serializes a duration as whole milliseconds, the unit people read in reports.
pub(crate) fn serialize_millis<S: Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// Why no policy could be fetched. Under RFC 8461 §3.3 each means "no policy from this fetch".
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FetchError {
    /// The policy domain is not a usable host name.
    InvalidDomain {
        /// The domain as given.
        domain: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The policy host's addresses could not be found.
    Dns {
        /// The lookup's failure.
        error: DnsError,
    },
    /// No address of the policy host accepted a connection (the last attempt is reported).
    Connect {
        /// The address tried last.
        addr: SocketAddr,
        /// Why it failed.
        reason: ConnectFailure,
    },
    /// The TLS handshake failed, or the certificate is not acceptable.
    Tls {
        /// The address connected to.
        addr: SocketAddr,
        /// What went wrong.
        failure: TlsFailure,
    },
    /// The whole fetch took longer than [`crate::NetConfig::fetch_timeout`].
    Timeout {
        /// The limit, in milliseconds.
        limit_ms: u64,
    },
    /// A status other than 200 (and not a redirect).
    Status {
        /// The HTTP status.
        status: u16,
    },
    /// A 3xx redirect, which senders never follow.
    Redirect {
        /// The HTTP status.
        status: u16,
        /// The `Location` header, if any.
        location: Option<String>,
    },
    /// A 200 response whose media type is not `text/plain`.
    ContentType {
        /// The `Content-Type` header as sent, or `None` when there was none.
        found: Option<String>,
    },
    /// The body is larger than [`MAX_POLICY_SIZE`]; reading stopped there.
    TooLarge {
        /// The declared `Content-Length`, when that is how it was known.
        declared: Option<u64>,
    },
    /// The response is not valid HTTP/1.1, or the connection broke during it.
    Http {
        /// What was wrong.
        detail: String,
    },
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidDomain { domain, reason } => {
                write!(f, "{domain:?} is not a valid policy domain: {reason}")
            }
            Self::Dns { error } => write!(f, "cannot find the policy host: {error}"),
            Self::Connect { addr, reason } => {
                write!(f, "cannot connect to the policy host at {addr}: {reason}")
            }
            Self::Tls { addr, failure } => write!(f, "policy host at {addr}: {failure}"),
            Self::Timeout { limit_ms } => {
                write!(f, "the policy fetch did not complete within {limit_ms} ms")
            }
            Self::Status { status } => write!(
                f,
                "the policy host answered HTTP {status}; only 200 is a policy"
            ),
            Self::Redirect { status, location } => write!(
                f,
                "the policy host answered HTTP {status} redirecting to {}; senders never follow redirects",
                location.as_deref().unwrap_or("(no Location)")
            ),
            Self::ContentType { found: Some(found) } => write!(
                f,
                "the policy is served as {found:?}; it must be text/plain"
            ),
            Self::ContentType { found: None } => write!(
                f,
                "the policy is served without a Content-Type; it must be text/plain"
            ),
            Self::TooLarge {
                declared: Some(declared),
            } => write!(
                f,
                "the policy is {declared} bytes (Content-Length); senders read at most {MAX_POLICY_SIZE}"
            ),
            Self::TooLarge { declared: None } => write!(
                f,
                "the policy body exceeds {MAX_POLICY_SIZE} bytes; reading stopped there"
            ),
            Self::Http { detail } => {
                write!(f, "invalid HTTP response from the policy host: {detail}")
            }
        }
    }
}

impl std::error::Error for FetchError {}

impl From<DnsError> for FetchError {
    fn from(error: DnsError) -> Self {
        Self::Dns { error }
    }
}

/// How a TLS connection failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TlsFailure {
    /// The handshake completed but the certificate is not acceptable; nothing was sent.
    Certificate {
        /// The problems found.
        verdict: CertVerdict,
        /// The certificate presented, if it could be read (boxed: errors stay small).
        certificate: Option<Box<CertSummary>>,
    },
    /// The handshake did not complete.
    Handshake {
        /// Why.
        reason: String,
        /// The server speaks only TLS 1.0 or 1.1.
        legacy_tls_only: bool,
    },
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Certificate { verdict, .. } => write!(f, "{verdict}"),
            Self::Handshake { reason, .. } => write!(f, "TLS handshake failed: {reason}"),
        }
    }
}

impl Net {
    /// Fetches the policy of `domain` as RFC 8461 §3.3 says a sender does: HTTPS GET of
    /// `https://mta-sts.<domain>/.well-known/mta-sts.txt`, SNI and certificate for that host,
    /// status 200 only, no redirects, `text/plain`, at most 64 KiB, within
    /// [`crate::NetConfig::fetch_timeout`].
    ///
    /// The body is returned unparsed: parse it with `mta_sts_policy::Policy`.
    pub async fn fetch_policy(&self, domain: &str) -> Result<FetchedPolicy, FetchError> {
        let mut budget = Budget::new(self.config().fetch_timeout);
        let domain =
            mta_sts_policy::normalize_host(domain).map_err(|reason| FetchError::InvalidDomain {
                domain: domain.to_owned(),
                reason,
            })?;
        let host = format!("mta-sts.{domain}");
        let server_name =
            ServerName::try_from(host.clone()).map_err(|error| FetchError::InvalidDomain {
                domain: domain.clone(),
                reason: error.to_string(),
            })?;
        let addresses = budget.run(self.resolver().addresses(&host)).await??;
        let port = self.config().https_port;
        let mut last_failure = None;
        let mut connected = None;
        for ip in addresses {
            let addr = SocketAddr::new(ip, port);
            // Waiting for a place at a busy destination is not part of the fetch's time.
            let slot = self.destination_slot(ip).await;
            match budget.run(connect(addr, self.config().timeout)).await? {
                Ok(stream) => {
                    connected = Some((addr, stream, slot));
                    break;
                }
                Err(reason) => last_failure = Some(FetchError::Connect { addr, reason }),
            }
        }
        let Some((peer, tcp, _slot)) = connected else {
            return Err(last_failure.unwrap_or_else(|| FetchError::Http {
                detail: "the policy host has no address".to_owned(),
            }));
        };
        let mut policy = budget
            .run(self.fetch_over(tcp, peer, &host, server_name))
            .await??;
        policy.elapsed = budget.used;
        Ok(policy)
    }

    /// The request and the response over a connection to the policy host `host` at `peer`.
    async fn fetch_over(
        &self,
        tcp: tokio::net::TcpStream,
        peer: SocketAddr,
        host: &str,
        server_name: ServerName<'static>,
    ) -> Result<FetchedPolicy, FetchError> {
        let connector = TlsConnector::from(self.https_tls());
        let mut tls = connector.connect(server_name, tcp).await.map_err(|error| {
            let (reason, legacy_tls_only) = handshake_failure(&error);
            FetchError::Tls {
                addr: peer,
                failure: TlsFailure::Handshake {
                    reason,
                    legacy_tls_only,
                },
            }
        })?;
        let tls_info = TlsInfo::from_connection(tls.get_ref().1, self.roots(), host);
        let certificate = match tls_info.certificate {
            Some(certificate) if tls_info.verification.is_valid() => certificate,
            certificate => {
                return Err(FetchError::Tls {
                    addr: peer,
                    failure: TlsFailure::Certificate {
                        verdict: tls_info.verification,
                        certificate: certificate.map(Box::new),
                    },
                });
            }
        };

        // No conditional or cache headers: RFC 8461 §3.3 forbids HTTP caching, and
        // `no-cache` asks any intermediary for a fresh answer too.
        let request = format!(
            "GET {POLICY_PATH} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {}\r\nAccept: text/plain\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
            self.config().user_agent
        );
        let io_error = |error: io::Error| FetchError::Http {
            detail: format!("connection failed: {error}"),
        };
        tls.write_all(request.as_bytes()).await.map_err(io_error)?;
        tls.flush().await.map_err(io_error)?;

        let mut reader = ResponseReader::new(tls);
        let head = reader.read_final_head().await?;
        if (300..400).contains(&head.status) {
            return Err(FetchError::Redirect {
                status: head.status,
                location: head.header("location").map(str::to_owned),
            });
        }
        if head.status != 200 {
            return Err(FetchError::Status {
                status: head.status,
            });
        }
        let content_type = head.header("content-type").map(str::to_owned);
        if !content_type.as_deref().is_some_and(is_text_plain) {
            return Err(FetchError::ContentType {
                found: content_type,
            });
        }
        if let Some(encoding) = head
            .header("content-encoding")
            .filter(|encoding| !encoding.eq_ignore_ascii_case("identity"))
        {
            return Err(FetchError::Http {
                detail: format!("the body is encoded as {encoding:?}, which was not asked for"),
            });
        }
        let body = reader.read_body(&head).await?;
        Ok(FetchedPolicy {
            url: format!("https://{host}{POLICY_PATH}"),
            body,
            content_type,
            peer,
            certificate,
            tls_version: tls_info.version,
            cipher_suite: tls_info.cipher_suite,
            elapsed: Duration::ZERO,
        })
    }
}

/// The time a policy fetch may take ([`crate::NetConfig::fetch_timeout`]), spent step by step;
/// waits for a place at the destination are not spent from it.
struct Budget {
    limit: Duration,
    used: Duration,
}

impl Budget {
    fn new(limit: Duration) -> Self {
        Self {
            limit,
            used: Duration::ZERO,
        }
    }

    /// Runs one step within what is left; [`FetchError::Timeout`] when it runs out.
    async fn run<F: std::future::Future>(&mut self, step: F) -> Result<F::Output, FetchError> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.limit.saturating_sub(self.used), step).await;
        self.used += started.elapsed();
        result.map_err(|_| FetchError::Timeout {
            limit_ms: u64::try_from(self.limit.as_millis()).unwrap_or(u64::MAX),
        })
    }
}

/// Whether a `Content-Type` value names the media type `text/plain`, whatever its parameters.
fn is_text_plain(value: &str) -> bool {
    let media_type = value.split(';').next().unwrap_or_default().trim();
    media_type.eq_ignore_ascii_case("text/plain")
}

/// A response's status and headers.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) status: u16,
    /// Header names lowercased, values trimmed, in order.
    headers: Vec<(String, String)>,
}

impl ResponseHead {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }

    fn headers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }
}

fn http_error(detail: impl Into<String>) -> FetchError {
    FetchError::Http {
        detail: detail.into(),
    }
}

/// Reads an HTTP/1.1 response from a stream, never buffering more than the limits allow.
pub(crate) struct ResponseReader<S> {
    stream: S,
    /// Bytes received and not yet consumed.
    buffer: Vec<u8>,
    /// The peer closed the connection.
    eof: bool,
}

impl<S: AsyncRead + Unpin> ResponseReader<S> {
    pub(crate) fn new(stream: S) -> Self {
        Self {
            stream,
            buffer: Vec::new(),
            eof: false,
        }
    }

    /// Reads more bytes into the buffer; returns how many (0 at end of stream).
    async fn fill(&mut self) -> Result<usize, FetchError> {
        if self.eof {
            return Ok(0);
        }
        let mut chunk = [0u8; READ_CHUNK];
        let n = match self.stream.read(&mut chunk).await {
            Ok(n) => n,
            // Many servers close without TLS close_notify; the HTTP framing decides whether
            // the response was complete.
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(error) => return Err(http_error(format!("connection failed: {error}"))),
        };
        if n == 0 {
            self.eof = true;
        }
        self.buffer
            .extend_from_slice(chunk.get(..n).unwrap_or_default());
        Ok(n)
    }

    /// One line without its line ending (CRLF, or a bare LF as lenient clients accept).
    async fn read_line(&mut self, limit: usize, what: &str) -> Result<Vec<u8>, FetchError> {
        let mut searched = 0;
        loop {
            if let Some(line) = crate::tcp::take_line(&mut self.buffer, searched) {
                return Ok(line);
            }
            searched = self.buffer.len();
            if searched > limit {
                return Err(http_error(format!("{what} longer than {limit} bytes")));
            }
            if self.fill().await? == 0 {
                return Err(http_error(format!("connection closed in the {what}")));
            }
        }
    }

    /// The final response head, skipping interim 1xx responses.
    pub(crate) async fn read_final_head(&mut self) -> Result<ResponseHead, FetchError> {
        for _ in 0..=MAX_INTERIM_RESPONSES {
            let head = self.read_head().await?;
            if !(100..200).contains(&head.status) {
                return Ok(head);
            }
        }
        Err(http_error("too many interim (1xx) responses"))
    }

    async fn read_head(&mut self) -> Result<ResponseHead, FetchError> {
        let mut budget = HEAD_LIMIT;
        let status_line = self.read_line(budget, "response head").await?;
        budget = budget.saturating_sub(status_line.len());
        let status = parse_status_line(&status_line)?;
        let mut headers: Vec<(String, String)> = Vec::new();
        loop {
            let line = self.read_line(budget, "response head").await?;
            budget = budget.checked_sub(line.len() + 2).ok_or_else(|| {
                http_error(format!("response head longer than {HEAD_LIMIT} bytes"))
            })?;
            if line.is_empty() {
                return Ok(ResponseHead { status, headers });
            }
            let text = String::from_utf8_lossy(&line);
            if text.starts_with([' ', '\t']) {
                // Obsolete line folding (RFC 9112 §5.2): part of the previous value.
                let Some((_, value)) = headers.last_mut() else {
                    return Err(http_error("response head starts with a continuation line"));
                };
                value.push(' ');
                value.push_str(text.trim());
                continue;
            }
            let Some((name, value)) = text.split_once(':') else {
                return Err(http_error(format!("header line without a colon: {text:?}")));
            };
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }

    /// The body as the head frames it, refusing more than [`MAX_POLICY_SIZE`] bytes.
    pub(crate) async fn read_body(&mut self, head: &ResponseHead) -> Result<Vec<u8>, FetchError> {
        if let Some(encoding) = head.header("transfer-encoding") {
            let last = encoding.rsplit(',').next().unwrap_or_default().trim();
            if last.eq_ignore_ascii_case("chunked") {
                return self.read_chunked().await;
            }
            return Err(http_error(format!(
                "unsupported Transfer-Encoding {encoding:?}"
            )));
        }
        let mut lengths = head.headers("content-length").flat_map(|v| v.split(','));
        if let Some(first) = lengths.next() {
            let length = parse_content_length(first)?;
            for other in lengths {
                if parse_content_length(other)? != length {
                    return Err(http_error("conflicting Content-Length headers"));
                }
            }
            if length > MAX_POLICY_SIZE as u64 {
                return Err(FetchError::TooLarge {
                    declared: Some(length),
                });
            }
            // Bounded by MAX_POLICY_SIZE just above.
            let length = usize::try_from(length).unwrap_or(MAX_POLICY_SIZE);
            while self.buffer.len() < length {
                if self.fill().await? == 0 {
                    return Err(http_error(format!(
                        "connection closed after {} of {length} body bytes",
                        self.buffer.len()
                    )));
                }
            }
            let body = self.buffer.drain(..length).collect();
            return Ok(body);
        }
        // No framing: the body runs to the end of the connection.
        loop {
            if self.buffer.len() > MAX_POLICY_SIZE {
                return Err(FetchError::TooLarge { declared: None });
            }
            if self.fill().await? == 0 {
                return Ok(std::mem::take(&mut self.buffer));
            }
        }
    }

    async fn read_chunked(&mut self) -> Result<Vec<u8>, FetchError> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line(CHUNK_LINE_LIMIT, "chunk size line").await?;
            let text = String::from_utf8_lossy(&line);
            let size_text = text.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .ok()
                .filter(|_| !size_text.is_empty() && !size_text.starts_with('+'))
                .ok_or_else(|| http_error(format!("invalid chunk size {size_text:?}")))?;
            if size == 0 {
                // Trailer fields, up to the empty line; their content is of no use here.
                while !self
                    .read_line(CHUNK_LINE_LIMIT, "chunked trailer")
                    .await?
                    .is_empty()
                {}
                return Ok(body);
            }
            if body.len().saturating_add(size) > MAX_POLICY_SIZE {
                return Err(FetchError::TooLarge { declared: None });
            }
            while self.buffer.len() < size {
                if self.fill().await? == 0 {
                    return Err(http_error("connection closed inside a chunk"));
                }
            }
            body.extend(self.buffer.drain(..size));
            if !self.read_line(2, "chunk end").await?.is_empty() {
                return Err(http_error("chunk data longer than its declared size"));
            }
        }
    }
}

fn parse_status_line(line: &[u8]) -> Result<u16, FetchError> {
    let text = String::from_utf8_lossy(line);
    let mut parts = text.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(http_error(format!("not an HTTP/1.x status line: {text:?}")));
    }
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(http_error(format!("invalid status code in {text:?}")));
    }
    code.parse()
        .map_err(|_| http_error(format!("invalid status code in {text:?}")))
}

fn parse_content_length(value: &str) -> Result<u64, FetchError> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(http_error(format!("invalid Content-Length {value:?}")));
    }
    // Too many digits for u64 is certainly too large for a policy.
    Ok(value.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: &[u8]) -> Result<Vec<u8>, FetchError> {
        let mut reader = ResponseReader::new(response);
        let head = reader.read_final_head().await?;
        reader.read_body(&head).await
    }

    #[tokio::test]
    async fn chunked_body_is_reassembled_with_extensions_and_trailers() {
        let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: 1\r\n\r\n";
        assert_eq!(body_of(response).await.unwrap(), b"hello world");
    }

    #[tokio::test]
    async fn interim_responses_are_skipped() {
        let response =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(body_of(response).await.unwrap(), b"ok");
    }

    #[tokio::test]
    async fn body_without_framing_runs_to_the_end() {
        let response = b"HTTP/1.0 200 OK\nContent-Type: text/plain\n\nversion: STSv1\n";
        assert_eq!(body_of(response).await.unwrap(), b"version: STSv1\n");
    }

    #[tokio::test]
    async fn short_body_is_an_error() {
        let response = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
        assert!(matches!(
            body_of(response).await,
            Err(FetchError::Http { .. })
        ));
    }

    #[tokio::test]
    async fn conflicting_content_lengths_are_an_error() {
        let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc";
        assert!(matches!(
            body_of(response).await,
            Err(FetchError::Http { .. })
        ));
    }

    #[tokio::test]
    async fn unframed_body_over_the_cap_is_too_large() {
        let mut response = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        response.resize(response.len() + MAX_POLICY_SIZE + 1, b'x');
        assert_eq!(
            body_of(&response).await,
            Err(FetchError::TooLarge { declared: None })
        );
    }

    #[tokio::test]
    async fn body_of_exactly_the_cap_is_accepted() {
        let mut response =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {MAX_POLICY_SIZE}\r\n\r\n").into_bytes();
        response.resize(response.len() + MAX_POLICY_SIZE, b'x');
        assert_eq!(body_of(&response).await.unwrap().len(), MAX_POLICY_SIZE);
    }

    #[tokio::test]
    async fn garbage_is_not_a_response() {
        for response in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"",
        ] {
            assert!(
                matches!(body_of(response).await, Err(FetchError::Http { .. })),
                "{:?}",
                String::from_utf8_lossy(response)
            );
        }
    }

    #[test]
    fn content_type_parameters_are_ignored() {
        assert!(is_text_plain("text/plain"));
        assert!(is_text_plain("Text/Plain; charset=utf-8"));
        assert!(!is_text_plain("text/html"));
        assert!(!is_text_plain("text/plainish"));
    }
}
