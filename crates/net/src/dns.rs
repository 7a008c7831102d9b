//! DNS lookups that keep "there is no such record" apart from "the lookup failed".

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use serde::Serialize;

use crate::config::{ConfigError, NetConfig};
use crate::dnssec::{Authenticated, DnssecClient, Tlsa};

/// How many times a query is sent before the lookup counts as timed out (UDP loses packets).
const QUERY_ATTEMPTS: usize = 2;

/// The result of a DNS lookup.
pub type DnsResult<T> = Result<T, DnsError>;

/// A DNS lookup that produced no usable answer.
///
/// RFC 8461 §3.1 and §5 treat the two kinds differently: a name without records means "no
/// policy", while a failed lookup must never be mistaken for that.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DnsError {
    /// The server answered authoritatively that there are no such records: the name does not
    /// exist (NXDOMAIN) or has no records of this type (NODATA).
    NoRecords {
        /// The name asked about, without the trailing dot.
        name: String,
        /// The record type asked for (`TXT`, `MX`, `A/AAAA`).
        record_type: String,
        /// NXDOMAIN (the name does not exist) rather than NODATA.
        nxdomain: bool,
    },
    /// No answer could be had: SERVFAIL, REFUSED, a timeout, an unusable response.
    Failed {
        /// The name asked about, without the trailing dot.
        name: String,
        /// The record type asked for.
        record_type: String,
        /// Why.
        reason: DnsFailure,
    },
    /// The name cannot be asked about at all.
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl DnsError {
    /// Whether the answer was "no such records" (NXDOMAIN or NODATA), as opposed to a failure.
    pub fn is_no_records(&self) -> bool {
        matches!(self, Self::NoRecords { .. })
    }
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRecords {
                name,
                record_type,
                nxdomain: true,
            } => write!(
                f,
                "{name} does not exist (NXDOMAIN, asked for {record_type})"
            ),
            Self::NoRecords {
                name,
                record_type,
                nxdomain: false,
            } => write!(f, "{name} has no {record_type} records (NODATA)"),
            Self::Failed {
                name,
                record_type,
                reason,
            } => write!(f, "DNS lookup of {record_type} for {name} failed: {reason}"),
            Self::InvalidName { name, reason } => {
                write!(f, "{name:?} is not a valid DNS name: {reason}")
            }
        }
    }
}

impl std::error::Error for DnsError {}

/// Why a DNS lookup failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DnsFailure {
    /// No answer within the timeout.
    Timeout,
    /// The server answered SERVFAIL.
    ServFail,
    /// The server answered REFUSED.
    Refused,
    /// Another response code.
    ResponseCode(String),
    /// Anything else (no reachable server, malformed response, ...).
    Other(String),
}

impl fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("no answer in time"),
            Self::ServFail => f.write_str("the server answered SERVFAIL"),
            Self::Refused => f.write_str("the server answered REFUSED"),
            Self::ResponseCode(code) => write!(f, "the server answered {code}"),
            Self::Other(detail) => f.write_str(detail),
        }
    }
}

/// One MX record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mx {
    /// Lower is preferred.
    pub preference: u16,
    /// The exchange, lowercase, without the trailing dot; `"."` for the root (a null MX).
    pub exchange: String,
}

impl Mx {
    /// Whether this is the null MX `0 .` of RFC 7505: the domain accepts no mail.
    pub fn is_null(&self) -> bool {
        self.exchange == "."
    }
}

/// The TXT records at a name, with the aliases followed to reach them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TxtAnswer {
    /// Each record's character-strings concatenated without separators (RFC 8461 §3.1).
    pub records: Vec<Vec<u8>>,
    /// The CNAME targets followed, in order (empty when the name had the records itself).
    pub cname_chain: Vec<String>,
}

/// A DNS client: the system's resolver or the one server [`NetConfig::resolver`] names.
///
/// Nothing is cached between lookups unless [`NetConfig::dns_cache_size`] asks for it, so a
/// checker sees a zone as it is now. Names are always
/// asked for as given (fully qualified), never with a search domain appended. Each query waits
/// [`NetConfig::timeout`] for an answer and is sent at most twice, so a server that never
/// answers costs about twice the timeout before [`DnsFailure::Timeout`].
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
    /// The same servers, asked with DNSSEC for answers that must be validated (DANE).
    dnssec: DnssecClient,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver as `config` says: [`NetConfig::resolver`] or the system configuration, with
    /// [`NetConfig::timeout`] per query.
    pub fn new(config: &NetConfig) -> Result<Self, ConfigError> {
        let servers = match config.resolver {
            Some(addr) => vec![addr],
            None => hickory_resolver::system_conf::read_system_conf()
                .map_err(|error| ConfigError::SystemResolver {
                    reason: error.to_string(),
                })?
                .0
                .name_servers()
                .iter()
                .filter_map(|server| {
                    let udp = server
                        .connections
                        .iter()
                        .find(|c| matches!(c.protocol, ProtocolConfig::Udp))?;
                    Some(SocketAddr::new(server.ip, udp.port))
                })
                .collect(),
        };
        let dnssec = DnssecClient::new(servers, config.timeout, QUERY_ATTEMPTS);
        let mut builder = match config.resolver {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                let resolver_config = ResolverConfig::from_parts(None, vec![], vec![server]);
                let mut builder = TokioResolver::builder_with_config(
                    resolver_config,
                    TokioRuntimeProvider::default(),
                );
                // A named server is the whole truth, /etc/hosts included.
                builder.options_mut().use_hosts_file = ResolveHosts::Never;
                builder
            }
            None => {
                TokioResolver::builder_tokio().map_err(|error| ConfigError::SystemResolver {
                    reason: error.to_string(),
                })?
            }
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = config.timeout;
        options.attempts = QUERY_ATTEMPTS;
        options.cache_size = config.dns_cache_size;
        options.preserve_intermediates = true;
        options.ndots = 0;
        let inner = builder
            .build()
            .map_err(|error| ConfigError::SystemResolver {
                reason: error.to_string(),
            })?;
        Ok(Self { inner, dnssec })
    }

    /// The MX records of `domain` as a validating resolver vouches for them (sorted by
    /// preference, then exchange; empty for NODATA), with the AD bit: DANE (RFC 7672 §2.2.1)
    /// applies only to MX hosts from a secure MX answer.
    pub async fn mx_authenticated(&self, domain: &str) -> DnsResult<Authenticated<Vec<Mx>>> {
        self.dnssec.mx(domain).await
    }

    /// The TLSA records of `host` for SMTP on `port` (`_PORT._tcp.HOST`, RFC 7672 §2.2), with
    /// the AD bit; empty for NODATA.
    pub async fn tlsa_authenticated(
        &self,
        host: &str,
        port: u16,
    ) -> DnsResult<Authenticated<Vec<Tlsa>>> {
        self.dnssec.tlsa(host, port).await
    }

    /// The TXT records at `name` (CNAMEs followed), each record's strings concatenated.
    pub async fn txt(&self, name: &str) -> DnsResult<Vec<Vec<u8>>> {
        Ok(self.txt_answer(name).await?.records)
    }

    /// The TXT records at `name`, with the CNAME chain followed to reach them.
    pub async fn txt_answer(&self, name: &str) -> DnsResult<TxtAnswer> {
        let (fqdn, display) = fqdn(name)?;
        let lookup = self
            .inner
            .lookup(fqdn, RecordType::TXT)
            .await
            .map_err(|error| dns_error(&display, "TXT", &error))?;
        let mut answer = TxtAnswer::default();
        for record in lookup.answers() {
            match &record.data {
                RData::TXT(txt) => answer.records.push(txt.txt_data.concat()),
                RData::CNAME(target) => answer.cname_chain.push(display_name(&target.0)),
                _ => {}
            }
        }
        if answer.records.is_empty() {
            return Err(no_data(&display, "TXT"));
        }
        Ok(answer)
    }

    /// The MX records of `domain`, sorted by preference, then exchange.
    pub async fn mx(&self, domain: &str) -> DnsResult<Vec<Mx>> {
        let (fqdn, display) = fqdn(domain)?;
        let lookup = self
            .inner
            .lookup(fqdn, RecordType::MX)
            .await
            .map_err(|error| dns_error(&display, "MX", &error))?;
        let records = mx_records(lookup.answers());
        if records.is_empty() {
            return Err(no_data(&display, "MX"));
        }
        Ok(records)
    }

    /// The IPv4 and IPv6 addresses of `host` (A and AAAA, CNAMEs followed), IPv4 first.
    ///
    /// Succeeds if either type has addresses. Fails with [`DnsError::NoRecords`] only when
    /// both types have none, and with [`DnsError::Failed`] when one failed and the other
    /// gave nothing.
    pub async fn addresses(&self, host: &str) -> DnsResult<Vec<IpAddr>> {
        let (fqdn, display) = fqdn(host)?;
        let (v4, v6) = tokio::join!(
            self.inner.lookup(fqdn.clone(), RecordType::A),
            self.inner.lookup(fqdn, RecordType::AAAA)
        );
        let mut addresses = Vec::new();
        let mut outcomes = Vec::new();
        for (lookup, record_type) in [(v4, "A"), (v6, "AAAA")] {
            match lookup {
                Ok(lookup) => {
                    addresses.extend(lookup.answers().iter().filter_map(
                        |record| match &record.data {
                            RData::A(a) => Some(IpAddr::V4(a.0)),
                            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                            _ => None,
                        },
                    ));
                }
                Err(error) => outcomes.push(dns_error(&display, record_type, &error)),
            }
        }
        if !addresses.is_empty() {
            return Ok(addresses);
        }
        let record_type = "A/AAAA".to_owned();
        if let Some(failed) = outcomes.iter().find(|error| !error.is_no_records()) {
            return Err(match failed.clone() {
                DnsError::Failed { name, reason, .. } => DnsError::Failed {
                    name,
                    record_type,
                    reason,
                },
                other => other,
            });
        }
        let nxdomain = outcomes
            .iter()
            .any(|error| matches!(error, DnsError::NoRecords { nxdomain: true, .. }));
        Err(DnsError::NoRecords {
            name: display,
            record_type,
            nxdomain,
        })
    }
}

/// The MX records among `answers`, sorted by preference, then exchange.
pub(crate) fn mx_records(answers: &[hickory_resolver::proto::rr::Record]) -> Vec<Mx> {
    let mut records: Vec<Mx> = answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::MX(mx) => Some(Mx {
                preference: mx.preference,
                exchange: display_name(&mx.exchange),
            }),
            _ => None,
        })
        .collect();
    records.sort_by(|a, b| (a.preference, &a.exchange).cmp(&(b.preference, &b.exchange)));
    records
}

/// The absolute form of `name` for the query, and the form errors show.
pub(crate) fn fqdn(name: &str) -> DnsResult<(Name, String)> {
    let trimmed = name.trim();
    let display = trimmed.strip_suffix('.').unwrap_or(trimmed).to_owned();
    let invalid = |reason: String| DnsError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    if display.is_empty() {
        return Err(invalid("empty name".to_owned()));
    }
    let mut parsed = Name::from_utf8(&display).map_err(|error| invalid(error.to_string()))?;
    parsed.set_fqdn(true);
    Ok((parsed, display.to_ascii_lowercase()))
}

/// A name as records show it: ASCII (A-labels), lowercase, without the trailing dot; the root
/// stays `"."`.
pub(crate) fn display_name(name: &Name) -> String {
    if name.is_root() {
        return ".".to_owned();
    }
    let ascii = name.to_ascii().to_ascii_lowercase();
    ascii.strip_suffix('.').unwrap_or(&ascii).to_owned()
}

fn no_data(name: &str, record_type: &str) -> DnsError {
    DnsError::NoRecords {
        name: name.to_owned(),
        record_type: record_type.to_owned(),
        nxdomain: false,
    }
}

fn dns_error(name: &str, record_type: &str, error: &NetError) -> DnsError {
    let failed = |reason| DnsError::Failed {
        name: name.to_owned(),
        record_type: record_type.to_owned(),
        reason,
    };
    match error {
        NetError::Dns(HickoryDnsError::NoRecordsFound(no_records)) => {
            match no_records.response_code {
                ResponseCode::NXDomain => DnsError::NoRecords {
                    name: name.to_owned(),
                    record_type: record_type.to_owned(),
                    nxdomain: true,
                },
                ResponseCode::NoError => no_data(name, record_type),
                code => failed(response_code_failure(code)),
            }
        }
        NetError::Dns(HickoryDnsError::ResponseCode(code)) => failed(response_code_failure(*code)),
        NetError::Timeout => failed(DnsFailure::Timeout),
        other => failed(DnsFailure::Other(other.to_string())),
    }
}

pub(crate) fn response_code_failure(code: ResponseCode) -> DnsFailure {
    match code {
        ResponseCode::ServFail => DnsFailure::ServFail,
        ResponseCode::Refused => DnsFailure::Refused,
        other => DnsFailure::ResponseCode(other.to_string()),
    }
}
