//! Loopback address allocation, so that tests never collide on an address or a fixed port.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use tokio::net::{TcpListener, UdpSocket};

/// How many fresh addresses [`SharedPort`] tries before giving up: a bind fails only when
/// another process happens to hold the same address and port, which a fresh address avoids.
const BIND_ATTEMPTS: usize = 16;

/// Hands out a fresh address in 127.0.0.0/8 on every call.
///
/// Addresses come from a per-process counter whose start is derived from the process id, so
/// parallel tests in one process never share an address and test processes running side by side
/// mostly use disjoint ranges. Nothing is bound: combine it with port 0 (or [`SharedPort`]) so
/// that a rare collision across processes is resolved by the kernel, not by luck.
///
/// 127.0.x.x is never returned (127.0.0.1 is everybody's), nor a last octet of 0 or 255.
/// Linux routes all of 127.0.0.0/8 to the loopback interface without configuration.
pub fn next_loopback_ip() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static SEED: OnceLock<u32> = OnceLock::new();
    // Multiplying by a large odd constant spreads neighbouring pids far apart in the 24-bit space.
    let seed = *SEED.get_or_init(|| std::process::id().wrapping_mul(0x9E37_79B1));
    loop {
        let n = seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) & 0x00FF_FFFF;
        let [_, b, c, d] = n.to_be_bytes();
        if b != 0 && d != 0 && d != 255 {
            return Ipv4Addr::new(127, b, c, d);
        }
    }
}

/// Binds a TCP listener on a fresh loopback address and a kernel-chosen port.
pub async fn bind_tcp() -> io::Result<TcpListener> {
    TcpListener::bind((next_loopback_ip(), 0)).await
}

/// Binds a UDP socket and a TCP listener on the same fresh loopback address and port, as a DNS
/// server needs.
pub async fn bind_udp_and_tcp() -> io::Result<(UdpSocket, TcpListener)> {
    bind_udp_and_tcp_with(bind_tcp).await
}

/// Like [`bind_udp_and_tcp`], on the IPv6 loopback address `::1` and a kernel-chosen port.
pub async fn bind_udp_and_tcp_v6() -> io::Result<(UdpSocket, TcpListener)> {
    bind_udp_and_tcp_with(|| TcpListener::bind((Ipv6Addr::LOCALHOST, 0))).await
}

async fn bind_udp_and_tcp_with<F, Fut>(bind_tcp: F) -> io::Result<(UdpSocket, TcpListener)>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = io::Result<TcpListener>>,
{
    let mut last_error = None;
    for _ in 0..BIND_ATTEMPTS {
        let tcp = bind_tcp().await?;
        match UdpSocket::bind(tcp.local_addr()?).await {
            Ok(udp) => return Ok((udp, tcp)),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no address could be bound")))
}

/// One port number shared by many servers, each on its own loopback address.
///
/// A client under test reaches "port 25" or "port 443" of whatever address DNS gave it; with a
/// port override it uses one substitute port for every host. So all SMTP servers of a test listen
/// on the same port (chosen by the kernel for the first one), each on a fresh address.
#[derive(Debug, Default)]
pub struct SharedPort {
    /// The port chosen when the first listener was bound; `None` until then.
    port: Mutex<Option<u16>>,
}

impl SharedPort {
    /// A shared port that will be chosen by the first [`SharedPort::bind`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A shared port that is `port` from the start (25 and 443 in a network namespace of
    /// the lab's own, where clients need no port overrides).
    pub fn fixed(port: u16) -> Self {
        Self {
            port: Mutex::new(Some(port)),
        }
    }

    /// The shared port, once a listener has been bound.
    pub fn get(&self) -> Option<u16> {
        *self
            .port
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Binds a listener on a fresh loopback address and the shared port (choosing the port if
    /// this is the first listener).
    pub async fn bind(&self) -> io::Result<TcpListener> {
        self.bind_at(next_loopback_ip).await
    }

    /// Binds a listener on the IPv6 loopback address `::1` and the shared port (choosing the
    /// port if this is the first listener).
    ///
    /// `::1` is one address, so one listener per shared port: a second call fails with
    /// `AddrInUse`, as it does in the rare case another process holds `::1` on the port
    /// chosen earlier for IPv4 listeners.
    pub async fn bind_v6(&self) -> io::Result<TcpListener> {
        self.bind_at(|| Ipv6Addr::LOCALHOST).await
    }

    async fn bind_at<A: Into<IpAddr>>(&self, address: impl Fn() -> A) -> io::Result<TcpListener> {
        let mut last_error = None;
        for _ in 0..BIND_ATTEMPTS {
            let port = self.get().unwrap_or(0);
            match TcpListener::bind((address().into(), port)).await {
                Ok(listener) => {
                    let bound = listener.local_addr()?.port();
                    let mut slot = self.port.lock().unwrap_or_else(|p| p.into_inner());
                    match *slot {
                        // Another task chose the port while we were binding on port 0.
                        Some(chosen) if chosen != bound => continue,
                        _ => *slot = Some(bound),
                    }
                    return Ok(listener);
                }
                Err(error) if error.kind() == io::ErrorKind::AddrInUse => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("no address could be bound")))
    }

    /// An address on the shared port where nothing listens: connecting to it is refused.
    ///
    /// The address is fresh, so no server of this process is bound there.
    pub async fn refused_addr(&self) -> io::Result<SocketAddr> {
        let port = match self.get() {
            Some(port) => port,
            // Choosing the port needs a bind; the listener is dropped at once.
            None => self.bind().await?.local_addr()?.port(),
        };
        Ok(SocketAddr::from((next_loopback_ip(), port)))
    }

    /// `[::1]` on the shared port, where nothing listens as long as no listener of this shared
    /// port was bound with [`SharedPort::bind_v6`]: connecting to it is refused.
    pub async fn refused_addr_v6(&self) -> io::Result<SocketAddr> {
        let port = match self.get() {
            Some(port) => port,
            None => self.bind().await?.local_addr()?.port(),
        };
        Ok(SocketAddr::from((Ipv6Addr::LOCALHOST, port)))
    }
}

/// An address on a fresh loopback IP where nothing listens, so a connection is refused.
///
/// The port is one the kernel just handed out and then released, on an address no other server
/// of this process will ever use.
pub async fn refused_addr() -> io::Result<SocketAddr> {
    let listener = bind_tcp().await?;
    listener.local_addr()
}
