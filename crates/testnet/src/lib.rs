//! A hermetic little internet on 127.0.0.0/8 for tests and benchmarks of MTA-STS (RFC 8461) and
//! TLS-RPT (RFC 8460) clients: authoritative DNS, HTTPS policy hosts, SMTP servers and a test CA,
//! all built in code and all misbehaving on request. Never part of the release binary.
//!
//! - [`Zone`] and [`DnsServer`]: zones with TXT (multi-string), MX (null MX too), A/AAAA, CNAME,
//!   and per-name SERVFAIL / NXDOMAIN / NODATA / silence; [`SilentDnsServer`] never answers.
//! - [`TestCa`] and [`Identity`]: good, expired, not-yet-valid, wrong-name, untrusted,
//!   missing-intermediate and [`self_signed`] certificates.
//! - [`HttpsServer`] with [`Site`]s chosen by SNI, each with an [`HttpBehaviour`] (good, 404,
//!   500, redirect, wrong content type, oversize, slow drip) and a [`SiteTls`] (certificate or
//!   refusal).
//! - [`SmtpServer`] with an [`SmtpBehaviour`]: STARTTLS good or broken in every way a checker
//!   must report, rejecting or silent banners.
//! - [`Lab`] ties them together: one CA, each server on a fresh loopback address, all SMTP
//!   servers on one port and all HTTPS servers on another, so a client needs only port
//!   overrides. [`refused_addr`] gives an address where nothing listens. The `_v6` methods
//!   of [`Lab`] put a server on `::1` instead (one per lab and kind, since `::1` is one
//!   address).
//!
//! - [`ManyDomains`]: thousands of generated domains of seven [`DomainKind`]s on a few shared
//!   MX fleets, with the verdict each must get, for tests and benchmarks of bulk checkers.
//!
//! - [`NetNamespace`]: a network namespace of the test's own, for an address that drops SYNs
//!   (a connect that times out rather than being refused); needs root, `ip` and `nft`.
//!
//! Every server stops when its handle is dropped or shut down, aborting its connections, so
//! nothing leaks from one test into the next. Addresses come from [`next_loopback_ip`], so tests
//! run in parallel within and across processes. Linux only (it routes all of 127/8 to `lo`).
//!
//! ```
//! use mta_sts_testnet::{Lab, Site, SmtpBehaviour, Zone};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let lab = Lab::new();
//! let mx_cert = lab.ca().issue(&["mx1.example.com"]).unwrap();
//! let mx = lab.smtp("mx1.example.com", SmtpBehaviour::starttls(mx_cert)).await?;
//! let policy = "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 86400\n";
//! let web = lab.https([Site::policy("mta-sts.example.com", policy)]).await?;
//! let dns = lab
//!     .dns([Zone::new("example.com")
//!         .txt("_mta-sts", &["v=STSv1; ", "id=20240101"])
//!         .address("mta-sts", web.ip())
//!         .mx(10, "mx1.example.com")
//!         .address("mx1", mx.ip())])
//!     .await?;
//! // Point the client under test at `dns.addr()`, trust `lab.ca().root_store()`, and map
//! // port 443 to `lab.https_port()` and port 25 to `lab.smtp_port()`.
//! # let _ = (dns.addr(), lab.https_port(), lab.smtp_port());
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod addr;
mod ca;
mod dns;
mod handle;
mod https;
mod lab;
mod many;
mod netns;
mod smtp;
mod tls;
mod webhook;

pub use addr::{
    SharedPort, bind_tcp, bind_udp_and_tcp, bind_udp_and_tcp_v6, next_loopback_ip, refused_addr,
};
pub use ca::{CertificateError, Identity, TestCa, crypto_provider, self_signed};
pub use dns::{DnsHandle, DnsServer, NameBehaviour, SilentDnsServer, Zone};
pub use handle::{ServerHandle, ShutdownSignal};
pub use https::{
    HttpBehaviour, HttpsHandle, HttpsServer, OVERSIZE_BODY_BYTES, POLICY_PATH, RecordedRequest,
    Site, SiteTls,
};
pub use lab::Lab;
pub use many::{DomainKind, ManyDomains};
pub use netns::NetNamespace;
pub use smtp::{
    LegacyTlsVersion, ReceivedMessage, ServerCertificate, SmtpBehaviour, SmtpHandle, SmtpServer,
    SmtpSession,
};
pub use webhook::{ReceivedPost, WebhookHandle};
