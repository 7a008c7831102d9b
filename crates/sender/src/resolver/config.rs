//! The resolver's settings: where it listens, how each zone (map name) answers, how the cache
//! behaves. Read from the `[resolver]`-less TOML file of `mta-sts resolver --config`, or built
//! by the command line's quick form.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// The port postfix-mta-sts-resolver listens on by default, kept so `main.cf` need not change.
pub const DEFAULT_PORT: u16 = 8461;

/// Where the resolver listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address (`127.0.0.1:8461`).
    Tcp(SocketAddr),
    /// A unix socket (`unix:/run/mta-sts/resolver.sock`).
    Unix(PathBuf),
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(
                    "unix: needs a socket path, as in unix:/run/mta-sts/resolver.sock".into(),
                );
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        text.parse()
            .map(Self::Tcp)
            .map_err(|_| format!("{text:?} is neither IP:PORT (127.0.0.1:8461) nor unix:PATH"))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Who owns a unix socket and who may connect to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnixSocket {
    /// The owning user (name or uid); unchanged when `None`.
    pub owner: Option<String>,
    /// The owning group (name or gid); unchanged when `None`.
    pub group: Option<String>,
    /// Permission bits as an octal string (`"0660"`); the umask's when `None`.
    pub mode: Option<String>,
}

/// How one zone (a map name in `main.cf`) answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZoneConfig {
    /// Treat `mode: testing` like `enforce` (answer `OK secure` instead of `NOTFOUND `).
    pub strict_testing: bool,
    /// Append `servername=hostname`, so Postfix sends SNI for the MX host name.
    pub require_sni: bool,
    /// Append the TLSRPT attributes of Postfix ≥ 3.10 (`policy_type`, `policy_domain`,
    /// `policy_ttl`, `mx_host_pattern`, `{ policy_string = ... }`). Off by default: older
    /// Postfix rejects the reply.
    pub tlsrpt: bool,
    /// Answer `TEMP <reason>` (Postfix defers the mail) when a domain's policy cannot be known
    /// — the TXT lookup failed, or the record exists but the policy cannot be fetched — and
    /// nothing usable is cached. Off by default (`NOTFOUND `, as RFC 8461 §5 says).
    pub fail_closed: bool,
    /// The reply for a domain whose MX hosts have DNSSEC-validated TLSA records: DANE comes
    /// before MTA-STS (RFC 8461 §2), so never `OK secure`.
    pub dane: DaneReply,
}

/// What a zone answers for a domain with DANE.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DaneReply {
    /// `dane`: Postfix uses DANE for the domain (its `dane` security level).
    #[default]
    Dane,
    /// `NOTFOUND `: leave it to Postfix's own `smtp_tls_security_level = dane`.
    Notfound,
}

impl Default for ZoneConfig {
    fn default() -> Self {
        Self {
            strict_testing: false,
            require_sni: true,
            tlsrpt: false,
            fail_closed: false,
            dane: DaneReply::Dane,
        }
    }
}

/// The cache's timings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// A cached answer is served without asking DNS for this many seconds; after that the
    /// `_mta-sts` TXT record is checked again (in the background while a policy is valid).
    pub check_interval: u64,
    /// After a failed lookup or fetch, wait this many seconds before trying again.
    pub retry_after_failure: u64,
    /// Drop a cached policy that could not be confirmed (its TXT id seen unchanged, or the
    /// policy fetched) for this many seconds, even before its `max_age` runs out. `None`: keep
    /// it for its whole `max_age`, as RFC 8461 §5.1 says.
    pub max_stale: Option<u64>,
    /// A cached policy not confirmed for this many seconds (or half its `max_age`, when
    /// shorter) is looked up again in the background, whether or not mail goes to its domain,
    /// so that it does not run out while the domain still publishes it.
    pub refresh_interval: u64,
    /// Proactive refreshes run at once, at most.
    pub refresh_concurrency: usize,
    /// Every this many seconds: apply purges recorded in the store by `resolver purge`, start
    /// the proactive refreshes that are due, drop entries that are no longer of use.
    pub sync_interval: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            check_interval: 60,
            retry_after_failure: 300,
            max_stale: None,
            refresh_interval: 3600,
            refresh_concurrency: 16,
            sync_interval: 5,
        }
    }
}

/// Where the cache persists (RFC 8461 §5.1 wants a policy kept across restarts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// The data directory of the SQLite store [default: the platform's, as for `serve`].
    pub data_dir: Option<PathBuf>,
    /// A PostgreSQL URL instead (`postgres://user@host/db`): one cache for several resolvers.
    pub database: Option<String>,
}

/// Caps on what one client can hold.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Close a connection with no request for this many seconds.
    pub idle_timeout: u64,
    /// The longest request, in bytes.
    pub max_request: usize,
    /// Requests read ahead on one connection while earlier ones are being answered.
    pub max_pipelined: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            idle_timeout: 600,
            max_request: super::netstring::MAX_REQUEST_LEN,
            max_pipelined: 128,
        }
    }
}

/// How the resolver reaches DNS and policy hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// The DNS server to ask (`IP:PORT`); the system's (`/etc/resolv.conf`) when `None`.
    pub dns_resolver: Option<SocketAddr>,
    /// Extra trusted CA certificates (PEM) for policy hosts, besides the public roots.
    pub ca_file: Option<PathBuf>,
    /// The port of policy hosts (443 when `None`).
    pub https_port: Option<u16>,
    /// Seconds for each DNS query and connection step (10 when `None`).
    pub timeout: Option<u64>,
}

/// Why a config file cannot be used.
#[derive(Debug)]
pub struct ConfigFileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong: the I/O error, or the TOML error with its line and column.
    pub reason: String,
}

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot use {}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for ConfigFileError {}

/// Everything the resolver needs besides the network and the store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResolverConfig {
    /// Where to listen.
    pub listen: Vec<ListenAddr>,
    /// Owner and mode of unix sockets.
    pub unix_socket: UnixSocket,
    /// How long open connections may take to finish after SIGTERM, in seconds.
    pub shutdown_timeout: u64,
    /// The zone used for map names not in `zones`.
    pub default_zone: ZoneConfig,
    /// Zones by map name.
    pub zones: HashMap<String, ZoneConfig>,
    /// Cache timings.
    pub cache: CacheConfig,
    /// Connection limits.
    pub limits: Limits,
    /// DNS and HTTPS.
    pub network: NetworkConfig,
    /// Where the cache persists.
    pub storage: StorageConfig,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            listen: vec![ListenAddr::Tcp(SocketAddr::from((
                [127, 0, 0, 1],
                DEFAULT_PORT,
            )))],
            unix_socket: UnixSocket::default(),
            shutdown_timeout: 20,
            default_zone: ZoneConfig::default(),
            zones: HashMap::new(),
            cache: CacheConfig::default(),
            limits: Limits::default(),
            network: NetworkConfig::default(),
            storage: StorageConfig::default(),
        }
    }
}

impl ResolverConfig {
    /// Reads a TOML config file; keys left out keep their defaults.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigFileError> {
        let error = |reason: String| ConfigFileError {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let config: Self = toml::from_str(&text).map_err(|e| error(e.to_string()))?;
        if config.listen.is_empty() {
            return Err(error("`listen` is empty: give at least one address".into()));
        }
        Ok(config)
    }

    /// The zone for map name `map`.
    pub fn zone(&self, map: &str) -> &ZoneConfig {
        self.zones.get(map).unwrap_or(&self.default_zone)
    }

    /// The shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_may_leave_dane_to_postfix() {
        let config: ResolverConfig =
            toml::from_str("[zones.p]\ndane = \"notfound\"\n[default_zone]\ndane = \"dane\"\n")
                .unwrap();
        assert_eq!(config.zone("p").dane, DaneReply::Notfound);
        assert_eq!(config.zone("other").dane, DaneReply::Dane);
        assert_eq!(ZoneConfig::default().dane, DaneReply::Dane);
        assert!(toml::from_str::<ResolverConfig>("[default_zone]\ndane = \"off\"\n").is_err());
    }

    #[test]
    fn listen_address_is_tcp_or_unix() {
        assert_eq!(
            "127.0.0.1:8461".parse::<ListenAddr>(),
            Ok(ListenAddr::Tcp("127.0.0.1:8461".parse().unwrap()))
        );
        assert_eq!(
            "unix:/run/x.sock".parse::<ListenAddr>(),
            Ok(ListenAddr::Unix("/run/x.sock".into()))
        );
        assert!("localhost".parse::<ListenAddr>().is_err());
        assert!("unix:".parse::<ListenAddr>().is_err());
    }

    #[test]
    fn config_file_reads_zones_and_keeps_defaults() {
        let dir = std::env::temp_dir().join(format!("mta-sts-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("resolver.toml");
        std::fs::write(
            &path,
            "listen = [\"127.0.0.1:8461\", \"unix:/run/r.sock\"]\n\
             [zones.strict]\nstrict_testing = true\n",
        )
        .unwrap();
        let config = ResolverConfig::load(&path).unwrap();
        assert_eq!(config.listen.len(), 2);
        assert!(config.zone("strict").strict_testing);
        assert!(config.zone("strict").require_sni);
        assert_eq!(config.cache, CacheConfig::default());
        std::fs::write(&path, "listen = [\"127.0.0.1:8461\"]\nstrict_testing = 1\n").unwrap();
        let error = ResolverConfig::load(&path).unwrap_err().to_string();
        assert!(error.contains("strict_testing"), "{error}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn unknown_map_names_use_the_default_zone() {
        let mut config = ResolverConfig::default();
        config.zones.insert(
            "strict".into(),
            ZoneConfig {
                strict_testing: true,
                ..ZoneConfig::default()
            },
        );
        assert!(config.zone("strict").strict_testing);
        assert!(!config.zone("postfix").strict_testing);
    }
}
