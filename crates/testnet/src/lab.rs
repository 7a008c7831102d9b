//! One test's little internet: a CA and the port plan shared by its servers.

use std::io;
use std::net::SocketAddr;

use crate::addr::{SharedPort, bind_udp_and_tcp_v6};
use crate::ca::TestCa;
use crate::dns::{DnsHandle, DnsServer, Zone};
use crate::https::{HttpsHandle, HttpsServer, Site};
use crate::smtp::{SmtpBehaviour, SmtpHandle, SmtpServer};

/// A test's lab: a trusted CA, and servers each on its own loopback address.
///
/// All SMTP servers of a lab listen on one port ([`Lab::smtp_port`]) and all HTTPS servers on
/// another ([`Lab::https_port`]), so a client under test needs only "port 25 is really X, port
/// 443 is really Y" overrides and otherwise follows DNS to the right address, as in production.
/// Labs are independent: tests running in parallel each build their own.
#[derive(Debug)]
pub struct Lab {
    ca: TestCa,
    smtp_port: SharedPort,
    https_port: SharedPort,
    /// Where [`Lab::dns`] listens, when not on a fresh address.
    dns_addr: Option<SocketAddr>,
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

impl Lab {
    /// A lab with a fresh CA ("Testnet CA") and no servers yet.
    pub fn new() -> Self {
        Self {
            ca: TestCa::new("Testnet CA"),
            smtp_port: SharedPort::new(),
            https_port: SharedPort::new(),
            dns_addr: None,
        }
    }

    /// A lab whose SMTP servers listen on `smtp_port`, HTTPS servers on `https_port` and DNS
    /// server on `dns`: with 25, 443 and 127.0.0.1:53 in a network namespace of its own
    /// ([`crate::NetNamespace`] or `ip netns`), a client finds everything with its defaults
    /// and `nameserver 127.0.0.1`.
    pub fn with_ports(smtp_port: u16, https_port: u16, dns: SocketAddr) -> Self {
        Self {
            ca: TestCa::new("Testnet CA"),
            smtp_port: SharedPort::fixed(smtp_port),
            https_port: SharedPort::fixed(https_port),
            dns_addr: Some(dns),
        }
    }

    /// The CA clients of this lab should trust; it issues the servers' good certificates.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// Starts an authoritative DNS server for `zones` on a fresh address (UDP and TCP), or
    /// where [`Lab::with_ports`] says.
    pub async fn dns(&self, zones: impl IntoIterator<Item = Zone>) -> io::Result<DnsHandle> {
        match self.dns_addr {
            Some(addr) => {
                let udp = tokio::net::UdpSocket::bind(addr).await?;
                let tcp = tokio::net::TcpListener::bind(addr).await?;
                DnsServer::new(zones).start_on(udp, tcp)
            }
            None => DnsServer::new(zones).start().await,
        }
    }

    /// Starts an HTTPS server for `sites` on a fresh address and the lab's HTTPS port; sites
    /// without an explicit certificate get one from [`Lab::ca`].
    pub async fn https(&self, sites: impl IntoIterator<Item = Site>) -> io::Result<HttpsHandle> {
        let server = HttpsServer::new(&self.ca, sites).map_err(io::Error::other)?;
        self.start_https(server).await
    }

    /// Starts `server` (made with [`Lab::ca`], say with a response delay) on a fresh address
    /// and the lab's HTTPS port.
    pub async fn start_https(&self, server: HttpsServer) -> io::Result<HttpsHandle> {
        server.start_on(self.https_port.bind().await?)
    }

    /// Starts an SMTP server named `hostname` on a fresh address and the lab's SMTP port.
    pub async fn smtp(&self, hostname: &str, behaviour: SmtpBehaviour) -> io::Result<SmtpHandle> {
        self.start_smtp(SmtpServer::new(hostname, behaviour)).await
    }

    /// Starts `server` (say with a greeting delay) on a fresh address and the lab's SMTP port.
    pub async fn start_smtp(&self, server: SmtpServer) -> io::Result<SmtpHandle> {
        server.start_on(self.smtp_port.bind().await?)
    }

    /// Starts an authoritative DNS server for `zones` on `::1` and a fresh port.
    pub async fn dns_v6(&self, zones: impl IntoIterator<Item = Zone>) -> io::Result<DnsHandle> {
        let (udp, tcp) = bind_udp_and_tcp_v6().await?;
        DnsServer::new(zones).start_on(udp, tcp)
    }

    /// Starts an HTTPS server for `sites` on `::1` and the lab's HTTPS port (one per lab).
    pub async fn https_v6(&self, sites: impl IntoIterator<Item = Site>) -> io::Result<HttpsHandle> {
        let server = HttpsServer::new(&self.ca, sites).map_err(io::Error::other)?;
        server.start_on(self.https_port.bind_v6().await?)
    }

    /// Starts an SMTP server named `hostname` on `::1` and the lab's SMTP port (one per lab):
    /// an MX reachable over IPv6.
    pub async fn smtp_v6(
        &self,
        hostname: &str,
        behaviour: SmtpBehaviour,
    ) -> io::Result<SmtpHandle> {
        SmtpServer::new(hostname, behaviour).start_on(self.smtp_port.bind_v6().await?)
    }

    /// `[::1]` on the lab's SMTP port, where nothing listens unless [`Lab::smtp_v6`] was
    /// called (connection refused).
    pub async fn refused_smtp_addr_v6(&self) -> io::Result<SocketAddr> {
        self.smtp_port.refused_addr_v6().await
    }

    /// An address on the lab's SMTP port where nothing listens (connection refused).
    pub async fn refused_smtp_addr(&self) -> io::Result<SocketAddr> {
        self.smtp_port.refused_addr().await
    }

    /// The port every SMTP server of this lab listens on ("port 25"), once one has started.
    pub fn smtp_port(&self) -> Option<u16> {
        self.smtp_port.get()
    }

    /// The port every HTTPS server of this lab listens on ("port 443"), once one has started.
    pub fn https_port(&self) -> Option<u16> {
        self.https_port.get()
    }
}
