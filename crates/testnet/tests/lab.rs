//! A whole domain in one lab: DNS points at an HTTPS policy host and an MX, all reached the way
//! a client under test reaches them, through DNS plus port overrides.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};
use mta_sts_testnet::{HttpBehaviour, Lab, POLICY_PATH, Site, SmtpBehaviour, Zone};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const POLICY: &str = "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 86400\n";

fn resolver(addr: SocketAddr) -> TokioResolver {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let server = NameServerConfig::new(addr.ip(), true, vec![udp]);
    let mut options = ResolverOpts::default();
    options.timeout = Duration::from_secs(2);
    Resolver::builder_with_config(
        ResolverConfig::from_parts(None, vec![], vec![server]),
        TokioRuntimeProvider::default(),
    )
    .with_options(options)
    .build()
    .unwrap()
}

async fn first_ip(resolver: &TokioResolver, host: &str) -> IpAddr {
    resolver
        .lookup_ip(host)
        .await
        .unwrap()
        .iter()
        .next()
        .unwrap()
}

#[tokio::test]
async fn domain_with_policy_host_and_mx_is_reachable_through_dns() {
    let lab = Lab::new();
    let mx1 = lab
        .smtp(
            "mx1.example.com",
            SmtpBehaviour::starttls(lab.ca().issue(&["mx1.example.com"]).unwrap()),
        )
        .await
        .unwrap();
    let mx2 = lab
        .smtp("mx2.example.com", SmtpBehaviour::NoStartTls)
        .await
        .unwrap();
    let web = lab
        .https([
            Site::policy("mta-sts.example.com", POLICY),
            Site::new("mta-sts.other.example", HttpBehaviour::Status(404)),
        ])
        .await
        .unwrap();
    let dns = lab
        .dns([Zone::new("example.com")
            .txt("_mta-sts", &["v=STSv1; id=20240101"])
            .address("mta-sts", web.ip())
            .mx(10, "mx1.example.com")
            .mx(20, "mx2.example.com")
            .address("mx1", mx1.ip())
            .address("mx2", mx2.ip())])
        .await
        .unwrap();

    // One port per service, distinct addresses per host.
    let smtp_port = lab.smtp_port().unwrap();
    let https_port = lab.https_port().unwrap();
    assert_eq!(
        (mx1.addr().port(), mx2.addr().port()),
        (smtp_port, smtp_port)
    );
    assert_ne!(mx1.ip(), mx2.ip());
    assert_eq!(web.addr().port(), https_port);

    let resolver = resolver(dns.addr());
    let policy_ip = first_ip(&resolver, "mta-sts.example.com.").await;
    let tcp = TcpStream::connect((policy_ip, https_port)).await.unwrap();
    let name = ServerName::try_from("mta-sts.example.com").unwrap();
    let mut tls = TlsConnector::from(lab.ca().client_config())
        .connect(name, tcp)
        .await
        .unwrap();
    let request = format!("GET {POLICY_PATH} HTTP/1.1\r\nHost: mta-sts.example.com\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tls.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(response.ends_with(POLICY));

    for (host, expected_banner) in [("mx1.example.com.", "mx1"), ("mx2.example.com.", "mx2")] {
        let ip = first_ip(&resolver, host).await;
        let mut smtp = BufReader::new(TcpStream::connect((ip, smtp_port)).await.unwrap());
        let mut banner = String::new();
        smtp.read_line(&mut banner).await.unwrap();
        assert!(
            banner.starts_with(&format!("220 {expected_banner}.example.com")),
            "{banner}"
        );
    }
}

#[tokio::test]
async fn refused_smtp_address_shares_the_smtp_port() {
    let lab = Lab::new();
    let mx = lab
        .smtp("mx1.example.com", SmtpBehaviour::NoStartTls)
        .await
        .unwrap();
    let refused = lab.refused_smtp_addr().await.unwrap();
    assert_eq!(refused.port(), mx.addr().port());
    let error = TcpStream::connect(refused).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_labs_never_collide() {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        tasks.spawn(async {
            let lab = Lab::new();
            let a = lab
                .smtp("a.example", SmtpBehaviour::NoStartTls)
                .await
                .unwrap();
            let b = lab
                .smtp("b.example", SmtpBehaviour::NoStartTls)
                .await
                .unwrap();
            (a.addr(), b.addr())
        });
    }
    let mut seen = std::collections::HashSet::new();
    while let Some(result) = tasks.join_next().await {
        let (a, b) = result.unwrap();
        assert!(seen.insert(a) && seen.insert(b), "address reused: {a} {b}");
    }
}
