//! An HTTPS receiver of POSTs (a webhook endpoint) that records every request, for tests of
//! what a program posts: headers and body as received.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::addr::next_loopback_ip;
use crate::ca::{CertificateError, TestCa};
use crate::handle::ServerHandle;

/// The largest request (head and body) the receiver reads.
const MAX_REQUEST: usize = 1024 * 1024;
/// How long the receiver waits for a handshake or the rest of a request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One request the receiver got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedPost {
    /// The method (`POST`).
    pub method: String,
    /// The request target (`/hook`).
    pub path: String,
    /// The headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (as long as `Content-Length` says).
    pub body: Vec<u8>,
}

impl ReceivedPost {
    /// The first header called `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A running receiver on a fresh loopback address, with a certificate from the test CA for
/// that address: post to [`WebhookHandle::url`].
#[derive(Debug)]
pub struct WebhookHandle {
    server: ServerHandle,
    received: Arc<Mutex<Vec<ReceivedPost>>>,
}

impl WebhookHandle {
    /// Starts a receiver answering every request with `status` (200, 503, ...).
    pub async fn start(ca: &TestCa, status: u16) -> Result<WebhookHandle, io::Error> {
        let ip = next_loopback_ip().to_string();
        let identity = ca
            .issue(&[ip.as_str()])
            .map_err(|error: CertificateError| io::Error::other(error.to_string()))?;
        let acceptor = TlsAcceptor::from(identity.server_config(&[b"http/1.1"]));
        let listener = TcpListener::bind((ip.as_str(), 0)).await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let server = ServerHandle::spawn(addr, move |shutdown| async move {
            let accept = async {
                let mut connections = tokio::task::JoinSet::new();
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, log) = (acceptor.clone(), Arc::clone(&log));
                    connections.spawn(async move {
                        let Ok(Ok(mut tls)) =
                            tokio::time::timeout(READ_TIMEOUT, acceptor.accept(tcp)).await
                        else {
                            return;
                        };
                        if let Ok(Ok(Some(post))) =
                            tokio::time::timeout(READ_TIMEOUT, read_request(&mut tls)).await
                        {
                            log.lock().unwrap_or_else(|p| p.into_inner()).push(post);
                        }
                        let answer = format!(
                            "HTTP/1.1 {status} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                        let _ = tls.write_all(answer.as_bytes()).await;
                        let _ = tls.shutdown().await;
                    });
                }
            };
            tokio::select! {
                () = accept => {}
                () = shutdown => {}
            }
        });
        Ok(WebhookHandle { server, received })
    }

    /// `https://IP:PORT/hook`, the address to post to.
    pub fn url(&self) -> String {
        format!("https://{}/hook", self.addr())
    }

    /// The address the receiver listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<ReceivedPost> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops the receiver and waits until it is gone.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Reads one HTTP/1.1 request: the head up to the blank line, then `Content-Length` bytes.
async fn read_request(
    stream: &mut (impl AsyncReadExt + Unpin),
) -> Result<Option<ReceivedPost>, io::Error> {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 || buffer.len() > MAX_REQUEST {
            return Ok(None);
        }
        buffer.extend_from_slice(chunk.get(..read).unwrap_or_default());
    };
    let head = String::from_utf8_lossy(buffer.get(..head_end).unwrap_or_default()).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_REQUEST);
    let mut body = buffer.split_off(head_end + 4);
    while body.len() < length {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        body.extend_from_slice(chunk.get(..read).unwrap_or_default());
    }
    body.truncate(length);
    Ok(Some(ReceivedPost {
        method,
        path,
        headers,
        body,
    }))
}
