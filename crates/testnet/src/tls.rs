//! Reading a TLS ClientHello before deciding how (or whether) to answer it.

use std::io;

use rustls::server::{Accepted, Acceptor};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// A ClientHello never needs more; a peer sending more without completing one is not TLS.
const CLIENT_HELLO_LIMIT: usize = 64 * 1024;

/// Reads from `stream` until a whole ClientHello has arrived.
///
/// Returns `Ok(None)` when the peer closes first or sends something that is not a ClientHello.
/// The stream is left right after the ClientHello, so the caller can still finish the handshake
/// with [`tokio_rustls::StartHandshake::from_parts`], or answer with raw bytes instead.
pub(crate) async fn read_client_hello(stream: &mut TcpStream) -> io::Result<Option<Accepted>> {
    let mut acceptor = Acceptor::default();
    let mut buffer = vec![0u8; 4096];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(None);
        }
        total += n;
        if total > CLIENT_HELLO_LIMIT {
            return Ok(None);
        }
        let mut unread = buffer.get(..n).unwrap_or_default();
        while !unread.is_empty() {
            match acceptor.read_tls(&mut unread) {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => return Ok(Some(accepted)),
            Ok(None) => continue,
            // Not TLS, or a malformed hello: the caller just closes.
            Err(_) => return Ok(None),
        }
    }
}
