//! The Postfix socketmap MTA-STS policy server (`smtp_tls_policy_maps`), a drop-in replacement
//! for postfix-mta-sts-resolver with the same replies.
//!
//! - [`netstring`]: the socketmap framing.
//! - [`Request`] / [`Key`]: `<map-name> <key>` and the key's reduction to a domain.
//! - [`PolicyResolver`]: the cache and the rules of RFC 8461 §2, §3.3 and §5.1 — DANE first
//!   (MX hosts with DNSSEC-validated TLSA records get `dane`, never `OK secure`); a cached policy
//!   is served until its `max_age` runs out, whatever DNS or HTTPS say meanwhile; the TXT `id`
//!   decides whether to fetch again; failures are retried after a pause. The cache lives in
//!   memory and, with [`PolicyResolver::with_store`], in the store, so a restart keeps it and
//!   resolvers on one PostgreSQL share it; [`PolicyResolver::spawn_maintenance`] refreshes
//!   policies before they expire and applies `resolver purge`.
//! - [`serve`]: the listeners (TCP and unix), pipelining, limits, graceful shutdown;
//!   [`serve_on`] spreads the connections over one single-threaded runtime per core.
//! - [`ResolverConfig`] / [`ZoneConfig`]: what each map name answers.
//!
//! ```no_run
//! use std::sync::Arc;
//! use mta_sts_net::{Net, NetConfig};
//! use mta_sts_sender::resolver::{Clock, PolicyResolver, ResolverConfig, bind, serve};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Arc::new(ResolverConfig::default());
//! let listeners = config
//!     .listen
//!     .iter()
//!     .map(|addr| bind(addr, &config.unix_socket))
//!     .collect::<Result<Vec<_>, _>>()?;
//! let resolver = PolicyResolver::new(Net::new(NetConfig::default())?, config, Clock::system());
//! serve(resolver, listeners, async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(())
//! # }
//! ```

mod cache;
mod config;
mod lookup;
pub mod netstring;
mod persist;
mod refresh;
mod reply;
mod request;
mod server;

pub use cache::{CachedPolicy, Clock, Dane, Entry, MemoryCache, Outcome, UnixTime};
pub use config::{
    CacheConfig, ConfigFileError, DEFAULT_PORT, DaneReply, Limits, ListenAddr, NetworkConfig,
    ResolverConfig, StorageConfig, UnixSocket, ZoneConfig,
};
pub use lookup::{Decision, PolicyResolver};
pub use refresh::Maintenance;
pub use reply::NOT_FOUND;
pub use request::{Key, NotADomain, Request, normalize_key};
pub use server::{BindError, Listener, bind, serve, serve_on};
