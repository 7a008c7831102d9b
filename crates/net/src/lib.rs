//! The network side of MTA-STS (RFC 8461): DNS lookups, the HTTPS policy fetch and SMTP
//! STARTTLS probes, each reporting what it saw as evidence rather than just failing.
//!
//! - [`NetConfig`]: resolver address, extra trust roots, port overrides, timeouts, EHLO name,
//!   User-Agent. Production uses the defaults; tests point the same code at loopback servers.
//! - [`Net`]: everything below behind one cheap-to-clone handle.
//! - [`Resolver`]: TXT (strings concatenated, CNAMEs followed), MX (null MX kept), A/AAAA;
//!   [`DnsError`] keeps "no such records" ([`DnsError::NoRecords`]) apart from "the lookup
//!   failed" ([`DnsError::Failed`]); [`Resolver::mx_authenticated`] and
//!   [`Resolver::tlsa_authenticated`] ask with DNSSEC and report the AD bit ([`Authenticated`]),
//!   for DANE.
//! - [`Net::fetch_policy`]: the policy fetch of RFC 8461 §3.3 → [`FetchedPolicy`] or a typed
//!   [`FetchError`] (status, redirect, content type, size, certificate, timeout, ...).
//! - [`Net::probe_mx`]: an SMTP session up to STARTTLS and TLS, never sending mail →
//!   [`MxProbe`] with the banner, EHLO, TLS version and cipher, the certificate
//!   ([`CertSummary`]) and the sender's verdict on it ([`CertVerdict`]).
//!
//! Certificates are judged explicitly after the handshake, so an invalid one is reported with
//! its details and every problem it has. Everything serializes with serde for `--json`.
//!
//! ```no_run
//! use mta_sts_net::{Net, NetConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let net = Net::new(NetConfig::default())?;
//! let records = net.resolver().txt("_mta-sts.example.com").await?;
//! println!("{} TXT record(s)", records.len());
//! match net.fetch_policy("example.com").await {
//!     Ok(policy) => println!("{} bytes from {}", policy.body.len(), policy.peer),
//!     Err(error) => println!("no policy: {error}"),
//! }
//! for mx in net.resolver().mx("example.com").await? {
//!     for probe in net.probe_mx_host(&mx.exchange, Default::default()).await? {
//!         println!("{} {}: {}", probe.host, probe.addr, probe.outcome);
//!     }
//! }
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used, clippy::indexing_slicing)]

mod cert;
mod config;
mod dns;
mod dnssec;
mod fetch;
pub mod fuzzing;
mod limit;
mod smtp;
mod tcp;

use std::sync::Arc;

use rustls::ClientConfig;

pub use cert::{
    CertProblem, CertSummary, CertVerdict, TlsInfo, rfc3339, serialize_rfc3339, utc,
    verifying_client_config,
};
pub use config::{ConfigError, DEFAULT_FETCH_TIMEOUT, DEFAULT_TIMEOUT, NetConfig};
pub use dns::{DnsError, DnsFailure, DnsResult, Mx, Resolver, TxtAnswer};
pub use dnssec::{Authenticated, Tlsa};
pub use fetch::{FetchError, FetchedPolicy, POLICY_PATH, TlsFailure};
pub use smtp::{MxProbe, ProbeOptions, ProbeOutcome, SmtpReply, SmtpStep};
pub use tcp::ConnectFailure;

/// The network: a resolver, trust roots and TLS settings built once from a [`NetConfig`].
///
/// Cloning is cheap and clones share everything, so a scanner can hand one to each task.
#[derive(Clone, Debug)]
pub struct Net {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: NetConfig,
    resolver: Resolver,
    roots: cert::TrustRoots,
    /// Sessions open per destination address.
    destinations: limit::Destinations,
    /// Policy fetches: SNI, ALPN `http/1.1`.
    https_tls: Arc<ClientConfig>,
    /// STARTTLS with SNI.
    smtp_tls: Arc<ClientConfig>,
    /// STARTTLS without SNI, for [`ProbeOptions::without_sni`].
    smtp_tls_without_sni: Arc<ClientConfig>,
}

impl Net {
    /// Builds the resolver, the trust roots and the TLS configurations `config` asks for.
    pub fn new(config: NetConfig) -> Result<Self, ConfigError> {
        let provider = cert::provider();
        let roots = cert::TrustRoots::new(&config, &provider)?;
        let resolver = Resolver::new(&config)?;
        let inner = Inner {
            https_tls: cert::client_config(Arc::clone(&provider), &[b"http/1.1"], true),
            smtp_tls: cert::client_config(Arc::clone(&provider), &[], true),
            smtp_tls_without_sni: cert::client_config(provider, &[], false),
            destinations: limit::Destinations::new(config.per_destination),
            config,
            resolver,
            roots,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The configuration this network was built from.
    pub fn config(&self) -> &NetConfig {
        &self.inner.config
    }

    /// The DNS resolver.
    pub fn resolver(&self) -> &Resolver {
        &self.inner.resolver
    }

    fn roots(&self) -> &cert::TrustRoots {
        &self.inner.roots
    }

    /// A place for one session at `ip`, waiting while [`NetConfig::per_destination`] sessions
    /// are open there.
    async fn destination_slot(&self, ip: std::net::IpAddr) -> Option<limit::Slot> {
        self.inner.destinations.slot(ip).await
    }

    fn https_tls(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.inner.https_tls)
    }

    fn smtp_tls(&self, sni: bool) -> Arc<ClientConfig> {
        if sni {
            Arc::clone(&self.inner.smtp_tls)
        } else {
            Arc::clone(&self.inner.smtp_tls_without_sni)
        }
    }
}
