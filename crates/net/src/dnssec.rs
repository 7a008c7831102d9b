//! Lookups whose answers a validating resolver vouches for: the AD bit (RFC 4035 §3.2.3), as
//! DANE for SMTP (RFC 7672) needs and as Postfix asks for with `smtp_dns_support_level =
//! dnssec`.
//!
//! hickory's stub resolver neither asks for DNSSEC nor shows the AD bit without validating by
//! itself, so these queries are written and read here: one question with RD, AD and EDNS DO
//! set (RFC 6840 §5.7), over UDP, again over TCP when the answer is truncated. The AD bit is
//! only as trustworthy as the path to the resolver: use one on the same host or network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::dns::{DnsError, DnsFailure, DnsResult, Mx, fqdn, mx_records};

/// The UDP payload size offered (the 2020 DNS flag day value).
const EDNS_PAYLOAD: u16 = 1232;
/// The largest answer read: a DNS message over TCP is at most 64 KiB.
const MAX_MESSAGE: usize = 65_535;

/// An answer and whether the validating resolver vouched for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated<T> {
    /// The records (empty for NODATA).
    pub value: T,
    /// The resolver set the AD bit: the answer is DNSSEC-validated ("secure"). False for
    /// unsigned zones and for resolvers that do not validate.
    pub authentic: bool,
}

/// One TLSA record (RFC 6698 §2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tlsa {
    /// Certificate usage: 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE.
    pub usage: u8,
    /// Selector: 0 the whole certificate, 1 its public key.
    pub selector: u8,
    /// Matching type: 0 exact, 1 SHA-256, 2 SHA-512.
    pub matching: u8,
    /// The certificate association data.
    pub data: Vec<u8>,
}

/// The DNS servers asked and how long each query may take.
#[derive(Clone, Debug)]
pub(crate) struct DnssecClient {
    servers: Vec<SocketAddr>,
    timeout: Duration,
    attempts: usize,
}

impl DnssecClient {
    pub(crate) fn new(servers: Vec<SocketAddr>, timeout: Duration, attempts: usize) -> Self {
        Self {
            servers,
            timeout,
            attempts: attempts.max(1),
        }
    }

    /// The MX records of `domain`, sorted by preference then exchange; empty for NODATA.
    pub(crate) async fn mx(&self, domain: &str) -> DnsResult<Authenticated<Vec<Mx>>> {
        let answer = self.records(domain, RecordType::MX, "MX").await?;
        Ok(Authenticated {
            value: mx_records(&answer.value),
            authentic: answer.authentic,
        })
    }

    /// The TLSA records at `_PORT._tcp.HOST` (RFC 7672 §2.2); empty for NODATA.
    pub(crate) async fn tlsa(&self, host: &str, port: u16) -> DnsResult<Authenticated<Vec<Tlsa>>> {
        let name = format!("_{port}._tcp.{host}");
        let answer = self.records(&name, RecordType::TLSA, "TLSA").await?;
        let records = answer
            .value
            .iter()
            .filter_map(|record| match &record.data {
                RData::TLSA(tlsa) => Some(Tlsa {
                    usage: tlsa.cert_usage.into(),
                    selector: tlsa.selector.into(),
                    matching: tlsa.matching.into(),
                    data: tlsa.cert_data.clone(),
                }),
                _ => None,
            })
            .collect();
        Ok(Authenticated {
            value: records,
            authentic: answer.authentic,
        })
    }

    /// The answer section of a `record_type` query for `name` (CNAMEs included) with the AD
    /// bit; NXDOMAIN is [`DnsError::NoRecords`], NODATA an empty list.
    async fn records(
        &self,
        name: &str,
        record_type: RecordType,
        shown_type: &str,
    ) -> DnsResult<Authenticated<Vec<Record>>> {
        let (query_name, display) = fqdn(name)?;
        let failed = |reason| DnsError::Failed {
            name: display.clone(),
            record_type: shown_type.to_owned(),
            reason,
        };
        if self.servers.is_empty() {
            return Err(failed(DnsFailure::Other("no DNS server configured".into())));
        }
        let mut last = DnsFailure::Timeout;
        for _ in 0..self.attempts {
            for &server in &self.servers {
                match self.ask(server, &query_name, record_type).await {
                    Ok(message) => return interpret(message, &display, shown_type),
                    Err(failure) => last = failure,
                }
            }
        }
        Err(failed(last))
    }

    /// One exchange with `server`: UDP, then TCP if the answer is truncated.
    async fn ask(
        &self,
        server: SocketAddr,
        name: &Name,
        record_type: RecordType,
    ) -> Result<Message, DnsFailure> {
        let mut query = Message::query();
        query.metadata.recursion_desired = true;
        query.metadata.authentic_data = true;
        query.add_query(Query::query(name.clone(), record_type));
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        edns.set_dnssec_ok(true);
        query.set_edns(edns);
        let bytes = query
            .to_vec()
            .map_err(|error| DnsFailure::Other(format!("cannot write the query: {error}")))?;
        let exchange = async {
            let answer = udp_exchange(server, &bytes, &query).await?;
            if answer.metadata.truncation {
                tcp_exchange(server, &bytes, &query).await
            } else {
                Ok(answer)
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(DnsFailure::Timeout))
    }
}

/// The records of a response, or the error its code means.
fn interpret(
    message: Message,
    name: &str,
    record_type: &str,
) -> DnsResult<Authenticated<Vec<Record>>> {
    match message.metadata.response_code {
        ResponseCode::NoError => Ok(Authenticated {
            authentic: message.metadata.authentic_data,
            value: message.answers,
        }),
        ResponseCode::NXDomain => Err(DnsError::NoRecords {
            name: name.to_owned(),
            record_type: record_type.to_owned(),
            nxdomain: true,
        }),
        code => Err(DnsError::Failed {
            name: name.to_owned(),
            record_type: record_type.to_owned(),
            reason: crate::dns::response_code_failure(code),
        }),
    }
}

/// Whether `answer` answers `query`: a response with its id and its one question.
fn answers(answer: &Message, query: &Message) -> bool {
    answer.metadata.message_type == MessageType::Response
        && answer.metadata.id == query.metadata.id
        && answer.queries == query.queries
}

async fn udp_exchange(
    server: SocketAddr,
    bytes: &[u8],
    query: &Message,
) -> Result<Message, DnsFailure> {
    let io = |error: std::io::Error| DnsFailure::Other(format!("{server}: {error}"));
    let local: IpAddr = if server.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind((local, 0)).await.map_err(io)?;
    socket.connect(server).await.map_err(io)?;
    socket.send(bytes).await.map_err(io)?;
    let mut buffer = vec![0; MAX_MESSAGE];
    loop {
        let len = socket.recv(&mut buffer).await.map_err(io)?;
        // Anything that is not the answer (a late reply, a spoofing attempt) is skipped; the
        // timeout around the exchange ends the wait.
        if let Some(answer) = buffer
            .get(..len)
            .and_then(|bytes| Message::from_vec(bytes).ok())
            .filter(|answer| answers(answer, query))
        {
            return Ok(answer);
        }
    }
}

async fn tcp_exchange(
    server: SocketAddr,
    bytes: &[u8],
    query: &Message,
) -> Result<Message, DnsFailure> {
    let io = |error: std::io::Error| DnsFailure::Other(format!("{server} over TCP: {error}"));
    let mut stream = TcpStream::connect(server).await.map_err(io)?;
    let length = u16::try_from(bytes.len())
        .map_err(|_| DnsFailure::Other("query too long for TCP".into()))?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.map_err(io)?;
    let length = usize::from(stream.read_u16().await.map_err(io)?);
    let mut buffer = vec![0; length];
    stream.read_exact(&mut buffer).await.map_err(io)?;
    let answer = Message::from_vec(&buffer)
        .map_err(|error| DnsFailure::Other(format!("{server}: unreadable answer: {error}")))?;
    if answers(&answer, query) {
        Ok(answer)
    } else {
        Err(DnsFailure::Other(format!(
            "{server}: the TCP answer is for another question"
        )))
    }
}
