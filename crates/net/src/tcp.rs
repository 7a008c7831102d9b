//! Opening a TCP connection, with the reasons it fails told apart.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpStream;

/// Why a TCP connection could not be opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConnectFailure {
    /// The host answered that nothing listens on the port (RST).
    Refused,
    /// No answer within the timeout (a firewall dropping packets, a host that is down).
    Timeout,
    /// The network says the host cannot be reached.
    Unreachable(String),
    /// Another socket error.
    Other(String),
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused => f.write_str("connection refused"),
            Self::Timeout => f.write_str("no answer in time (connection timed out)"),
            Self::Unreachable(detail) => write!(f, "unreachable: {detail}"),
            Self::Other(detail) => f.write_str(detail),
        }
    }
}

/// Connects to `addr` within `timeout`.
pub(crate) async fn connect(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream, ConnectFailure> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => Err(ConnectFailure::Timeout),
        Ok(Ok(stream)) => {
            // SMTP and HTTP requests are small and answered at once; Nagle only adds delay.
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(error)) => Err(match error.kind() {
            io::ErrorKind::ConnectionRefused => ConnectFailure::Refused,
            io::ErrorKind::TimedOut => ConnectFailure::Timeout,
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                ConnectFailure::Unreachable(error.to_string())
            }
            _ => ConnectFailure::Other(error.to_string()),
        }),
    }
}

/// Removes the first complete line from `buffer` (searching from byte `from`, before which
/// there is no line feed) and returns it without its CRLF, or bare LF as lenient peers send.
pub(crate) fn take_line(buffer: &mut Vec<u8>, from: usize) -> Option<Vec<u8>> {
    let position = buffer.get(from..)?.iter().position(|b| *b == b'\n')?;
    let mut line: Vec<u8> = buffer.drain(..=from + position).collect();
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Some(line)
}
