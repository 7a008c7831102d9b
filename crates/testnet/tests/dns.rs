//! The DNS servers answer real queries, over UDP and TCP, as the zones say.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::{CNAME, MX};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};
use mta_sts_testnet::{DnsServer, SilentDnsServer, Zone};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const MX1: Ipv4Addr = Ipv4Addr::new(127, 10, 0, 1);

fn example_zone() -> Zone {
    Zone::new("example.com")
        // _mta-sts TXT "v=STSv1; " "id=20240101"
        .txt("_mta-sts", &["v=STSv1; ", "id=20240101"])
        // @ MX 10 mx1.example.com.
        .mx(10, "mx1.example.com")
        .a("mx1", MX1)
        .aaaa("mx1", "::1".parse().unwrap())
        // mta-sts CNAME policy.example.com.
        .cname("mta-sts", "policy.example.com")
        .a("policy", Ipv4Addr::new(127, 10, 0, 2))
        .servfail("_smtp._tls")
        .nxdomain("gone")
        .nodata("empty")
        .silent("black-hole")
}

fn resolver(addr: SocketAddr, timeout: Duration) -> TokioResolver {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
    let config = ResolverConfig::from_parts(None, vec![], vec![server]);
    let mut options = ResolverOpts::default();
    options.timeout = timeout;
    options.attempts = 1;
    options.cache_size = 0;
    Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(options)
        .build()
        .unwrap()
}

/// Sends one query over UDP and returns the raw response message.
async fn query_udp(server: SocketAddr, name: &str, record_type: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.id = 4242;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(&message.to_vec().unwrap(), server)
        .await
        .unwrap();
    let mut buffer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buffer))
        .await
        .expect("the server answers")
        .unwrap();
    Message::from_vec(&buffer[..n]).unwrap()
}

/// Sends one query over TCP (two-byte length prefix) and returns the response message.
async fn query_tcp(server: SocketAddr, name: &str, record_type: RecordType) -> Message {
    let mut message = Message::query();
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
    let bytes = message.to_vec().unwrap();
    let mut stream = TcpStream::connect(server).await.unwrap();
    stream.write_u16(bytes.len() as u16).await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    let length = stream.read_u16().await.unwrap();
    let mut buffer = vec![0u8; usize::from(length)];
    stream.read_exact(&mut buffer).await.unwrap();
    Message::from_vec(&buffer).unwrap()
}

#[tokio::test]
async fn txt_record_keeps_its_character_strings_apart() {
    let dns = DnsServer::new([example_zone()]).start().await.unwrap();
    let lookup = resolver(dns.addr(), Duration::from_secs(2))
        .txt_lookup("_mta-sts.example.com.")
        .await
        .unwrap();
    let records: Vec<_> = lookup.answers().iter().collect();
    assert_eq!(records.len(), 1, "one record, not one per string");
    let RData::TXT(txt) = &records[0].data else {
        panic!("not a TXT record: {:?}", records[0]);
    };
    let strings: Vec<&[u8]> = txt.txt_data.iter().map(|s| &s[..]).collect();
    assert_eq!(strings, [&b"v=STSv1; "[..], &b"id=20240101"[..]]);
}

#[tokio::test]
async fn mx_and_address_records_answer() {
    let dns = DnsServer::new([example_zone()]).start().await.unwrap();
    let resolver = resolver(dns.addr(), Duration::from_secs(2));
    let mx = resolver.mx_lookup("example.com.").await.unwrap();
    let exchanges: Vec<_> = mx
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::MX(mx) => Some((mx.preference, mx.exchange.to_string())),
            _ => None,
        })
        .collect();
    assert_eq!(exchanges, [(10, "mx1.example.com.".to_owned())]);
    let ips: Vec<_> = resolver
        .lookup_ip("mx1.example.com.")
        .await
        .unwrap()
        .iter()
        .collect();
    assert!(ips.contains(&MX1.into()));
    assert!(ips.contains(&"::1".parse::<std::net::IpAddr>().unwrap()));
}

#[tokio::test]
async fn null_mx_is_served_as_preference_zero_root() {
    let dns = DnsServer::new([Zone::new("nomail.example").null_mx()])
        .start()
        .await
        .unwrap();
    let response = query_udp(dns.addr(), "nomail.example.", RecordType::MX).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(response.answers.len(), 1);
    assert_eq!(
        response.answers[0].data,
        RData::MX(MX::new(0, Name::root()))
    );
}

#[tokio::test]
async fn cname_is_followed_within_the_zone() {
    let dns = DnsServer::new([example_zone()]).start().await.unwrap();
    let response = query_udp(dns.addr(), "mta-sts.example.com.", RecordType::A).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.metadata.authoritative);
    let target = Name::from_ascii("policy.example.com.").unwrap();
    assert_eq!(response.answers[0].data, RData::CNAME(CNAME(target)));
    assert_eq!(
        response.answers[1].data,
        RData::A(Ipv4Addr::new(127, 10, 0, 2).into())
    );
    // The resolver sees the chain and the final address.
    let ips: Vec<_> = resolver(dns.addr(), Duration::from_secs(2))
        .lookup_ip("mta-sts.example.com.")
        .await
        .unwrap()
        .iter()
        .collect();
    assert_eq!(ips, [std::net::IpAddr::from(Ipv4Addr::new(127, 10, 0, 2))]);
}

#[tokio::test]
async fn servfail_nxdomain_and_nodata_are_distinct() {
    let dns = DnsServer::new([example_zone()]).start().await.unwrap();
    let code = |m: Message| (m.metadata.response_code, m.answers.len());
    let servfail = query_udp(dns.addr(), "_smtp._tls.example.com.", RecordType::TXT).await;
    assert_eq!(code(servfail), (ResponseCode::ServFail, 0));
    let forced_nx = query_udp(dns.addr(), "gone.example.com.", RecordType::TXT).await;
    assert_eq!(code(forced_nx), (ResponseCode::NXDomain, 0));
    let forced_nodata = query_udp(dns.addr(), "empty.example.com.", RecordType::TXT).await;
    assert_eq!(code(forced_nodata), (ResponseCode::NoError, 0));
    // Without a behaviour: an unknown name is NXDOMAIN, a known name of another type NODATA,
    // both with the zone's SOA for negative caching.
    let unknown = query_udp(dns.addr(), "nothing-here.example.com.", RecordType::TXT).await;
    assert_eq!(unknown.authorities.len(), 1);
    assert_eq!(code(unknown), (ResponseCode::NXDomain, 0));
    let no_txt = query_udp(dns.addr(), "mx1.example.com.", RecordType::TXT).await;
    assert_eq!(code(no_txt), (ResponseCode::NoError, 0));
    // An empty non-terminal exists: _tls has no records but _smtp._tls is below it.
    let empty_non_terminal = query_udp(dns.addr(), "_tls.example.com.", RecordType::TXT).await;
    assert_eq!(code(empty_non_terminal), (ResponseCode::NoError, 0));
    let not_ours = query_udp(dns.addr(), "example.org.", RecordType::TXT).await;
    assert_eq!(code(not_ours), (ResponseCode::Refused, 0));

    // The resolver reports them as an error, "no such domain" and "no records" respectively.
    let resolver = resolver(dns.addr(), Duration::from_secs(2));
    let servfail = resolver
        .txt_lookup("_smtp._tls.example.com.")
        .await
        .unwrap_err();
    assert!(
        !servfail.is_no_records_found(),
        "SERVFAIL is not 'no records': {servfail:?}"
    );
    let nx = resolver.txt_lookup("gone.example.com.").await.unwrap_err();
    assert!(nx.is_nx_domain(), "{nx:?}");
    let nodata = resolver.txt_lookup("empty.example.com.").await.unwrap_err();
    assert!(
        nodata.is_no_records_found() && !nodata.is_nx_domain(),
        "{nodata:?}"
    );
}

#[tokio::test]
async fn tcp_answers_like_udp() {
    let dns = DnsServer::new([example_zone()]).start().await.unwrap();
    let response = query_tcp(dns.addr(), "_mta-sts.example.com.", RecordType::TXT).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(response.answers.len(), 1);
}

#[tokio::test]
async fn silent_name_times_out() {
    let dns = DnsServer::new([example_zone()]).start().await.unwrap();
    let error = resolver(dns.addr(), Duration::from_millis(300))
        .txt_lookup("black-hole.example.com.")
        .await
        .unwrap_err();
    assert!(matches!(error, NetError::Timeout), "{error:?}");
    // The rest of the zone still answers.
    let response = query_udp(dns.addr(), "_mta-sts.example.com.", RecordType::TXT).await;
    assert_eq!(response.answers.len(), 1);
}

#[tokio::test]
async fn silent_server_never_answers_udp_or_tcp() {
    let silent = SilentDnsServer::start().await.unwrap();
    let error = resolver(silent.addr(), Duration::from_millis(300))
        .txt_lookup("_mta-sts.example.com.")
        .await
        .unwrap_err();
    assert!(matches!(error, NetError::Timeout), "{error:?}");
    let mut stream = TcpStream::connect(silent.addr()).await.unwrap();
    stream.write_all(&[0, 20]).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut byte)).await;
    assert!(read.is_err(), "TCP accepted but never answered");
}

#[tokio::test]
async fn zone_can_change_while_serving_and_queries_are_recorded() {
    let dns = DnsServer::new([example_zone()]).start().await.unwrap();
    dns.set_zone(Zone::new("example.com").txt("_mta-sts", &["v=STSv1; id=2"]));
    let response = query_udp(dns.addr(), "_mta-sts.example.com.", RecordType::TXT).await;
    let RData::TXT(txt) = &response.answers[0].data else {
        panic!("not TXT")
    };
    assert_eq!(&txt.txt_data[0][..], b"v=STSv1; id=2");
    let mx = query_udp(dns.addr(), "example.com.", RecordType::MX).await;
    assert_eq!(mx.answers.len(), 0, "the old zone is gone");
    assert_eq!(
        dns.queries(),
        [
            (
                Name::from_ascii("_mta-sts.example.com.").unwrap(),
                RecordType::TXT
            ),
            (Name::from_ascii("example.com.").unwrap(), RecordType::MX),
        ]
    );
}

#[tokio::test]
async fn shutdown_stops_answering() {
    let dns = DnsServer::new([example_zone()]).start().await.unwrap();
    let addr = dns.addr();
    dns.shutdown().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the TCP listener is closed"
    );
}

#[test]
fn servers_dropped_with_their_runtime_leave_nothing_behind() {
    // Each test runtime drops its handles; a new runtime starts clean on fresh addresses.
    for _ in 0..2 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let dns = DnsServer::new([example_zone()]).start().await.unwrap();
            let response = query_udp(dns.addr(), "example.com.", RecordType::MX).await;
            assert_eq!(response.answers.len(), 1);
        });
    }
}
