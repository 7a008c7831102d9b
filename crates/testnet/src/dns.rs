//! An authoritative DNS server for zones built in code, and a DNS server that never answers.
//!
//! The server also stands in for a validating resolver: answers from a zone marked
//! [`Zone::signed`] carry the AD bit (RFC 4035 §3.2.3) when the query asks for DNSSEC (DO or AD
//! set, RFC 6840 §5.7), as a validating resolver's answers for a securely signed zone do. No
//! RRSIG is served: clients of a validating resolver trust its AD bit, not signatures.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hickory_proto::op::{Edns, Metadata, ResponseCode};
use hickory_proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SOA, TLSA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};

use crate::addr::bind_udp_and_tcp;
use crate::handle::{ServerHandle, accept_loop};

/// TTL of records added before any [`Zone::ttl`] call. Short, since tests change zones.
const DEFAULT_TTL: u32 = 60;
/// How long the server waits for a query on an idle TCP connection.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// hickory's per-connection response queue length; tests send a handful of queries.
const TCP_RESPONSE_BUFFER: usize = 16;
/// CNAME chains longer than this are answered as they stand, which also stops loops.
const MAX_CNAME_CHAIN: usize = 8;
/// UDP payload size advertised in EDNS answers (the 2020 DNS flag day value).
const EDNS_PAYLOAD: u16 = 1232;

/// What the server does for a query about one name, instead of answering from records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameBehaviour {
    /// Answer SERVFAIL (rcode 2), as a broken or unreachable authority does.
    ServFail,
    /// Answer NXDOMAIN (rcode 3) even if records exist: the name does not exist.
    NxDomain,
    /// Answer NOERROR with no records, whatever the type: the name exists but has no such data.
    NoData,
    /// Drop the query: the client times out.
    Silent,
}

/// A DNS zone built in code.
///
/// Owner names are relative to the zone origin (`"_mta-sts"`, `"mx1"`), `"@"` is the origin
/// itself, and a name ending in `.` is absolute. Targets (MX exchanges, CNAME targets) are always
/// absolute, with or without the trailing dot. Every zone gets an SOA record, which negative
/// answers carry as resolvers expect.
///
/// ```
/// # use mta_sts_testnet::Zone;
/// let zone = Zone::new("example.com")
///     .txt("_mta-sts", &["v=STSv1; ", "id=20240101"])  // one record, two strings
///     .mx(10, "mx1.example.com")
///     .a("mx1", "127.1.2.3".parse().unwrap())
///     .cname("mta-sts", "policy-host.example.net")
///     .servfail("_smtp._tls");
/// ```
///
/// Builder methods panic on a name that is not a valid DNS name: that is a mistake in the test,
/// not a network condition.
#[derive(Clone, Debug)]
pub struct Zone {
    origin: Name,
    /// TTL for records added from now on.
    ttl: u32,
    records: Vec<Record>,
    behaviours: HashMap<Name, NameBehaviour>,
    /// Answers from the zone are DNSSEC-validated (the AD bit is set when asked for).
    signed: bool,
}

impl Zone {
    /// An empty zone for `origin` (e.g. `"example.com"`).
    ///
    /// # Panics
    /// If `origin` is not a valid DNS name.
    pub fn new(origin: &str) -> Self {
        Self {
            origin: absolute_name(origin),
            ttl: DEFAULT_TTL,
            records: Vec::new(),
            behaviours: HashMap::new(),
            signed: false,
        }
    }

    /// Marks the zone DNSSEC-signed with a chain of trust: its answers (positive and negative)
    /// carry the AD bit when the query sets DO or AD, as a validating resolver's do. A CNAME
    /// chain is authentic only when every zone it passes through is signed.
    pub fn signed(mut self) -> Self {
        self.signed = true;
        self
    }

    /// The zone's origin, fully qualified.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// Uses `ttl` seconds for the records added after this call.
    pub fn ttl(mut self, ttl: u32) -> Self {
        self.ttl = ttl;
        self
    }

    /// Adds one TXT record at `name` made of `strings`, each a separate character-string
    /// (so `&["v=STSv1; ", "id=1"]` is one record a client must concatenate).
    ///
    /// # Panics
    /// If a string is longer than 255 bytes, which no TXT character-string can be.
    pub fn txt(self, name: &str, strings: &[&str]) -> Self {
        assert!(
            strings.iter().all(|s| s.len() <= 255),
            "a TXT character-string holds at most 255 bytes; split it"
        );
        let strings = strings.iter().map(|s| (*s).to_owned()).collect();
        self.record(name, RData::TXT(TXT::new(strings)))
    }

    /// Adds a TXT record of raw character-strings, which need not be UTF-8 (what a zone may
    /// hold and a client must report without losing bytes).
    ///
    /// # Panics
    /// If a string is longer than 255 bytes.
    pub fn txt_bytes(self, name: &str, strings: &[&[u8]]) -> Self {
        assert!(
            strings.iter().all(|s| s.len() <= 255),
            "a TXT character-string holds at most 255 bytes; split it"
        );
        self.record(name, RData::TXT(TXT::from_bytes(strings.to_vec())))
    }

    /// Adds an MX record at the zone origin.
    pub fn mx(self, preference: u16, exchange: &str) -> Self {
        self.mx_at("@", preference, exchange)
    }

    /// Adds an MX record at `name`.
    pub fn mx_at(self, name: &str, preference: u16, exchange: &str) -> Self {
        let exchange = absolute_name(exchange);
        self.record(name, RData::MX(MX::new(preference, exchange)))
    }

    /// Adds the null MX record `0 .` (RFC 7505: the domain accepts no mail) at the origin.
    pub fn null_mx(self) -> Self {
        self.record("@", RData::MX(MX::new(0, Name::root())))
    }

    /// Adds an A record at `name`.
    pub fn a(self, name: &str, address: Ipv4Addr) -> Self {
        self.record(name, RData::A(A(address)))
    }

    /// Adds an AAAA record at `name`.
    pub fn aaaa(self, name: &str, address: Ipv6Addr) -> Self {
        self.record(name, RData::AAAA(AAAA(address)))
    }

    /// Adds an A or AAAA record at `name`, whichever `address` is (e.g. a server handle's
    /// `ip()`).
    pub fn address(self, name: &str, address: IpAddr) -> Self {
        match address {
            IpAddr::V4(v4) => self.a(name, v4),
            IpAddr::V6(v6) => self.aaaa(name, v6),
        }
    }

    /// Adds a TLSA record (RFC 6698) at `name`, e.g. `"_25._tcp.mx1"`: certificate usage,
    /// selector, matching type (numbers as in the zone file) and the association data.
    pub fn tlsa(self, name: &str, usage: u8, selector: u8, matching: u8, data: &[u8]) -> Self {
        let tlsa = TLSA::new(
            CertUsage::from(usage),
            Selector::from(selector),
            Matching::from(matching),
            data.to_vec(),
        );
        self.record(name, RData::TLSA(tlsa))
    }

    /// Adds a CNAME record at `name` pointing at the absolute name `target`.
    pub fn cname(self, name: &str, target: &str) -> Self {
        let target = absolute_name(target);
        self.record(name, RData::CNAME(CNAME(target)))
    }

    /// Answers SERVFAIL for every query about `name`.
    pub fn servfail(self, name: &str) -> Self {
        self.behaviour(name, NameBehaviour::ServFail)
    }

    /// Answers NXDOMAIN for every query about `name`.
    pub fn nxdomain(self, name: &str) -> Self {
        self.behaviour(name, NameBehaviour::NxDomain)
    }

    /// Answers NOERROR without records for every query about `name`.
    pub fn nodata(self, name: &str) -> Self {
        self.behaviour(name, NameBehaviour::NoData)
    }

    /// Never answers queries about `name`.
    pub fn silent(self, name: &str) -> Self {
        self.behaviour(name, NameBehaviour::Silent)
    }

    /// Sets what the server does for queries about `name`, overriding its records.
    pub fn behaviour(mut self, name: &str, behaviour: NameBehaviour) -> Self {
        let name = self.owner_name(name);
        self.behaviours.insert(name, behaviour);
        self
    }

    /// Adds a record of any type at `name`.
    pub fn record(mut self, name: &str, rdata: RData) -> Self {
        let name = self.owner_name(name);
        self.records.push(Record::from_rdata(name, self.ttl, rdata));
        self
    }

    fn owner_name(&self, name: &str) -> Name {
        if name == "@" {
            return self.origin.clone();
        }
        Name::parse(name, Some(&self.origin))
            .unwrap_or_else(|error| panic!("{name:?} is not a valid DNS name: {error}"))
    }

    fn soa(&self) -> Record {
        let host_master = Name::parse("hostmaster", Some(&self.origin))
            .expect("hostmaster under a valid origin is valid");
        let ns = Name::parse("ns", Some(&self.origin)).expect("ns under a valid origin is valid");
        let soa = SOA::new(ns, host_master, 1, 3600, 600, 86400, self.ttl);
        Record::from_rdata(self.origin.clone(), self.ttl, RData::SOA(soa))
    }

    /// Whether `name` owns records or has descendants that do (an empty non-terminal exists).
    /// Names given a behaviour count as owners: the test put them in the zone.
    fn name_exists(&self, name: &Name) -> bool {
        name == &self.origin
            || self.records.iter().any(|r| name.zone_of(&r.name))
            || self.behaviours.keys().any(|owner| name.zone_of(owner))
    }
}

fn absolute_name(name: &str) -> Name {
    let mut parsed = Name::from_ascii(name)
        .unwrap_or_else(|error| panic!("{name:?} is not a valid DNS name: {error}"));
    parsed.set_fqdn(true);
    parsed
}

/// What the authoritative logic decided for one query.
enum Answer {
    Respond {
        code: ResponseCode,
        answers: Vec<Record>,
        /// The SOA of the zone in negative answers, else empty.
        soa: Vec<Record>,
        /// Every zone the answer came from is signed.
        authentic: bool,
    },
    Drop,
}

/// The zone of `name`: the one with the longest origin `name` is in.
fn most_specific_zone<'a>(zones: &'a HashMap<Name, Zone>, name: &Name) -> Option<&'a Zone> {
    let mut candidate = name.to_lowercase();
    loop {
        if let Some(zone) = zones.get(&candidate) {
            return Some(zone);
        }
        if candidate.is_root() {
            return None;
        }
        candidate = candidate.base_name();
    }
}

/// The zones served, shared between the server task and its handle.
#[derive(Debug, Default)]
struct DnsState {
    /// By origin, lowercased: a lab of many thousand zones answers each query with a few
    /// map lookups, not a walk over every zone.
    zones: RwLock<HashMap<Name, Zone>>,
    queries: Mutex<Vec<(Name, RecordType)>>,
}

impl DnsState {
    fn answer(&self, qname: &Name, qtype: RecordType) -> Answer {
        let zones = self.zones.read().unwrap_or_else(|p| p.into_inner());
        let mut answers = Vec::new();
        let mut name = qname.clone();
        // Cleared by the first unsigned zone on the way (a CNAME may lead to another zone).
        let mut authentic = true;
        for _ in 0..MAX_CNAME_CHAIN {
            let Some(zone) = most_specific_zone(&zones, &name) else {
                // Not ours: REFUSED for the question itself, the chain so far for a CNAME target
                // outside our zones (a resolver would continue elsewhere).
                let code = if answers.is_empty() {
                    ResponseCode::Refused
                } else {
                    ResponseCode::NoError
                };
                return Answer::Respond {
                    code,
                    answers,
                    soa: Vec::new(),
                    authentic: false,
                };
            };
            authentic &= zone.signed;
            match zone.behaviours.get(&name) {
                Some(NameBehaviour::Silent) => return Answer::Drop,
                Some(NameBehaviour::ServFail) => {
                    return Answer::Respond {
                        code: ResponseCode::ServFail,
                        answers: Vec::new(),
                        soa: Vec::new(),
                        authentic: false,
                    };
                }
                Some(NameBehaviour::NxDomain) => {
                    return Answer::Respond {
                        code: ResponseCode::NXDomain,
                        answers,
                        soa: vec![zone.soa()],
                        authentic,
                    };
                }
                Some(NameBehaviour::NoData) => {
                    return Answer::Respond {
                        code: ResponseCode::NoError,
                        answers,
                        soa: vec![zone.soa()],
                        authentic,
                    };
                }
                None => {}
            }
            let at_name: Vec<&Record> = zone.records.iter().filter(|r| r.name == name).collect();
            let matching: Vec<Record> = if qtype == RecordType::SOA && name == zone.origin {
                vec![zone.soa()]
            } else {
                at_name
                    .iter()
                    .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
                    .map(|r| (*r).clone())
                    .collect()
            };
            if !matching.is_empty() {
                answers.extend(matching);
                return Answer::Respond {
                    code: ResponseCode::NoError,
                    answers,
                    soa: Vec::new(),
                    authentic,
                };
            }
            let cname = at_name.iter().find_map(|r| match &r.data {
                RData::CNAME(CNAME(target)) => Some(target.clone()),
                _ => None,
            });
            match cname {
                Some(target) if qtype != RecordType::CNAME => {
                    answers.extend(at_name.iter().map(|r| (*r).clone()));
                    name = target;
                }
                _ => {
                    let code = if zone.name_exists(&name) {
                        ResponseCode::NoError
                    } else {
                        ResponseCode::NXDomain
                    };
                    return Answer::Respond {
                        code,
                        answers,
                        soa: vec![zone.soa()],
                        authentic,
                    };
                }
            }
        }
        Answer::Respond {
            code: ResponseCode::NoError,
            answers,
            soa: Vec::new(),
            authentic,
        }
    }
}

/// hickory's request handler over our zones.
struct ZoneHandler(Arc<DnsState>);

#[async_trait::async_trait]
impl RequestHandler for ZoneHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        let response_edns = request.edns.as_ref().map(|_| {
            let mut edns = Edns::new();
            edns.set_max_payload(EDNS_PAYLOAD);
            edns
        });
        let builder = MessageResponseBuilder::new(&request.queries, response_edns.as_ref());
        let answer = match request.queries.queries() {
            [query] => {
                let qname = Name::from(query.name());
                self.0
                    .queries
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((qname.clone(), query.query_type()));
                self.0.answer(&qname, query.query_type())
            }
            // Real resolvers send exactly one question; anything else is a malformed query.
            _ => Answer::Respond {
                code: ResponseCode::FormErr,
                answers: Vec::new(),
                soa: Vec::new(),
                authentic: false,
            },
        };
        let asks_for_dnssec = request.metadata.authentic_data
            || request
                .edns
                .as_ref()
                .is_some_and(|edns| edns.flags().dnssec_ok);
        let (code, answers, soa) = match answer {
            Answer::Respond {
                code,
                answers,
                soa,
                authentic,
            } => {
                metadata.authentic_data = authentic && asks_for_dnssec;
                (code, answers, soa)
            }
            Answer::Drop => {
                metadata.response_code = ResponseCode::NoError;
                return ResponseInfo::from(hickory_proto::op::Header {
                    metadata,
                    counts: Default::default(),
                });
            }
        };
        metadata.response_code = code;
        let response = builder.build(metadata, answers.iter(), [], soa.iter(), []);
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => {
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(hickory_proto::op::Header {
                    metadata,
                    counts: Default::default(),
                })
            }
        }
    }
}

/// An authoritative DNS server for [`Zone`]s, on UDP and TCP.
#[derive(Debug, Default)]
pub struct DnsServer {
    state: Arc<DnsState>,
}

impl DnsServer {
    /// A server answering for `zones` (the most specific zone wins for a name).
    pub fn new(zones: impl IntoIterator<Item = Zone>) -> Self {
        let state = DnsState {
            zones: RwLock::new(
                zones
                    .into_iter()
                    .map(|zone| (zone.origin.to_lowercase(), zone))
                    .collect(),
            ),
            queries: Mutex::default(),
        };
        Self {
            state: Arc::new(state),
        }
    }

    /// Binds UDP and TCP on one fresh loopback address and port and serves until the handle is
    /// shut down or dropped.
    pub async fn start(self) -> io::Result<DnsHandle> {
        let (udp, tcp) = bind_udp_and_tcp().await?;
        self.start_on(udp, tcp)
    }

    /// Serves on `udp` and `tcp` (bound to one address and port, e.g. by
    /// [`crate::bind_udp_and_tcp_v6`]) until the handle is shut down or dropped.
    pub fn start_on(self, udp: UdpSocket, tcp: TcpListener) -> io::Result<DnsHandle> {
        let addr = udp.local_addr()?;
        let state = Arc::clone(&self.state);
        let server = ServerHandle::spawn(addr, move |shutdown| self.run(udp, tcp, shutdown));
        Ok(DnsHandle { server, state })
    }

    /// Serves on the given sockets until `shutdown` completes.
    pub async fn run(self, udp: UdpSocket, tcp: TcpListener, shutdown: impl Future<Output = ()>) {
        let mut server = Server::new(ZoneHandler(self.state));
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
        shutdown.await;
        // Dropping `server` would abort its tasks too; shutting down lets open TCP
        // connections finish their current answer.
        let _ = tokio::time::timeout(Duration::from_secs(1), server.shutdown_gracefully()).await;
    }
}

/// A running [`DnsServer`]: its address, its zones (changeable while it runs), the queries it
/// received.
#[derive(Debug)]
pub struct DnsHandle {
    server: ServerHandle,
    state: Arc<DnsState>,
}

impl DnsHandle {
    /// The UDP and TCP address of the server: what a resolver under test is pointed at.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Replaces the zone with the same origin, or adds `zone`: later queries see the change
    /// (a policy id that changes, a record that vanishes).
    pub fn set_zone(&self, zone: Zone) {
        let mut zones = self.state.zones.write().unwrap_or_else(|p| p.into_inner());
        zones.insert(zone.origin.to_lowercase(), zone);
    }

    /// Every question received so far, in order (to show what a client cached or asked).
    pub fn queries(&self) -> Vec<(Name, RecordType)> {
        self.state
            .queries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops the server and waits until it is gone.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// A DNS server that never answers: it receives UDP queries and accepts TCP connections, and
/// drops everything, so a client sees a timeout rather than a refusal.
#[derive(Debug, Default)]
pub struct SilentDnsServer;

impl SilentDnsServer {
    /// Binds UDP and TCP on one fresh loopback address and port.
    pub async fn start() -> io::Result<ServerHandle> {
        let (udp, tcp) = bind_udp_and_tcp().await?;
        let addr = udp.local_addr()?;
        Ok(ServerHandle::spawn(addr, move |shutdown| {
            Self::run(udp, tcp, shutdown)
        }))
    }

    /// Swallows queries on the given sockets until `shutdown` completes.
    pub async fn run(udp: UdpSocket, tcp: TcpListener, shutdown: impl Future<Output = ()>) {
        let swallow_udp = async move {
            let mut buffer = [0u8; 512];
            loop {
                // Errors (ICMP echoes of earlier sends) are as uninteresting as the queries.
                let _ = udp.recv_from(&mut buffer).await;
            }
        };
        let swallow_tcp = accept_loop(tcp, std::future::pending(), |mut stream| async move {
            let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
        });
        tokio::select! {
            () = shutdown => {}
            () = swallow_udp => {}
            () = swallow_tcp => {}
        }
    }
}
