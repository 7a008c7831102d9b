//! Where the network is and how long to wait for it.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Default for [`NetConfig::timeout`]: long enough for a slow MX greeting, short enough that a
/// checker answers within a minute even when several steps stall.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`NetConfig::fetch_timeout`]: the one minute RFC 8461 §3.3 suggests.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything the network layer needs to know about the world it talks to.
///
/// Production uses [`NetConfig::default`]: the system resolver, the public (Mozilla) roots and
/// the real ports. Tests point the same code at loopback servers by changing fields:
///
/// ```
/// use std::time::Duration;
/// use mta_sts_net::NetConfig;
///
/// let config = NetConfig {
///     resolver: Some("127.0.0.1:5353".parse().unwrap()),
///     https_port: 8443,
///     smtp_port: 2525,
///     timeout: Duration::from_secs(2),
///     ..NetConfig::default()
/// };
/// assert_eq!(config.fetch_timeout, Duration::from_secs(60));
/// ```
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// The DNS server to ask (UDP, and TCP for truncated answers); `None` uses the system's
    /// configuration (`/etc/resolv.conf`).
    pub resolver: Option<SocketAddr>,
    /// Root certificates trusted in addition to the public roots of `webpki-roots` (a private
    /// CA, or a test CA).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// The port policy hosts are reached on (443 in production).
    pub https_port: u16,
    /// The port MX hosts are reached on (25 in production).
    pub smtp_port: u16,
    /// Limit for each single step: one DNS query, a TCP connect, a TLS handshake, each SMTP
    /// reply. Default [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
    /// Limit for a whole policy fetch, from the DNS lookup of the policy host to the last body
    /// byte. Default [`DEFAULT_FETCH_TIMEOUT`].
    pub fetch_timeout: Duration,
    /// How many DNS answers the resolver keeps (by their TTL) and shares between lookups; 0
    /// (the default) caches nothing, so every lookup sees the zone as it is now. A run over
    /// many domains sets it, so MX hosts and name servers they share are asked about once.
    pub dns_cache_size: u64,
    /// Most sessions (SMTP probes, policy fetches) open at once to one destination address; 0
    /// (the default) sets no cap. A scan sets it, so thousands of domains hosted by one
    /// provider do not all land on its servers at once. Waiting for a place does not count
    /// against [`NetConfig::timeout`] or [`NetConfig::fetch_timeout`].
    pub per_destination: usize,
    /// The name this client gives in `EHLO`.
    pub ehlo_name: String,
    /// The `User-Agent` of policy fetches: names this tool, so a policy host's logs show who
    /// asked.
    pub user_agent: String,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            resolver: None,
            extra_roots: Vec::new(),
            https_port: 443,
            smtp_port: 25,
            timeout: DEFAULT_TIMEOUT,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            dns_cache_size: 0,
            per_destination: 0,
            ehlo_name: default_ehlo_name(),
            user_agent: concat!(
                "mta-sts/",
                env!("CARGO_PKG_VERSION"),
                " (+RFC 8461 checker)"
            )
            .to_owned(),
        }
    }
}

/// The machine's host name if it looks like a domain, else `localhost`: an MX may reject an
/// EHLO argument that is not a name, and a probe must not fail for that.
fn default_ehlo_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| {
            name.contains('.')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        })
        .unwrap_or_else(|| "localhost".to_owned())
}

impl NetConfig {
    /// Adds every certificate of the PEM file at `path` to [`NetConfig::extra_roots`] and
    /// returns how many there were.
    pub fn add_ca_file(&mut self, path: impl AsRef<Path>) -> Result<usize, ConfigError> {
        let path = path.as_ref();
        let ca_file_error = |reason: String| ConfigError::CaFile {
            path: path.to_owned(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|error| ca_file_error(error.to_string()))?;
        let mut added = 0;
        for certificate in CertificateDer::pem_slice_iter(&bytes) {
            let certificate = certificate.map_err(|error| ca_file_error(error.to_string()))?;
            self.extra_roots.push(certificate);
            added += 1;
        }
        if added == 0 {
            return Err(ca_file_error("no PEM certificate in the file".to_owned()));
        }
        Ok(added)
    }
}

/// Why a [`NetConfig`] cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A CA file could not be read or holds no certificate.
    CaFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An extra root certificate cannot serve as a trust anchor.
    Root {
        /// Position in [`NetConfig::extra_roots`].
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The system resolver configuration could not be read.
    SystemResolver {
        /// What went wrong.
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CaFile { path, reason } => {
                write!(f, "cannot use CA file {}: {reason}", path.display())
            }
            Self::Root { index, reason } => {
                write!(f, "extra root certificate #{index} is not usable: {reason}")
            }
            Self::SystemResolver { reason } => write!(
                f,
                "cannot read the system resolver configuration: {reason}; name a DNS server instead"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}
