//! The HTTPS policy server: each site's TLS and HTTP behaviour, observed by a rustls client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mta_sts_testnet::{
    HttpBehaviour, HttpsServer, OVERSIZE_BODY_BYTES, POLICY_PATH, Site, SiteTls, TestCa,
    self_signed,
};
use rustls::pki_types::ServerName;
use rustls::{CertificateError, ClientConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const POLICY: &str = "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 86400\n";

/// What the client got: the whole response, or the error that stopped it.
#[derive(Debug)]
struct Fetched {
    status_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Fetched {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn fetch(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> std::io::Result<Fetched> {
    let tcp = TcpStream::connect(addr).await?;
    let server_name = ServerName::try_from(host.to_owned()).unwrap();
    let mut tls = TlsConnector::from(config).connect(server_name, tcp).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tls.read_to_end(&mut raw).await?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap().to_owned();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    Ok(Fetched {
        status_line,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

async fn serve(ca: &TestCa, sites: impl IntoIterator<Item = Site>) -> mta_sts_testnet::HttpsHandle {
    HttpsServer::new(ca, sites).unwrap().start().await.unwrap()
}

fn certificate_error(error: &std::io::Error) -> Option<CertificateError> {
    let inner = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    match inner {
        rustls::Error::InvalidCertificate(e) => Some(e.clone()),
        _ => None,
    }
}

#[tokio::test]
async fn good_site_serves_policy_as_text_plain() {
    let ca = TestCa::new("Test CA");
    let server = serve(&ca, [Site::policy("mta-sts.example.com", POLICY)]).await;
    let fetched = fetch(
        ca.client_config(),
        server.addr(),
        "mta-sts.example.com",
        POLICY_PATH,
    )
    .await
    .unwrap();
    assert_eq!(fetched.status_line, "HTTP/1.1 200 OK");
    assert_eq!(fetched.header("Content-Type"), Some("text/plain"));
    assert_eq!(fetched.body, POLICY.as_bytes());
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].sni, "mta-sts.example.com");
    assert_eq!(
        requests[0].host_header.as_deref(),
        Some("mta-sts.example.com")
    );
    assert_eq!(requests[0].path, POLICY_PATH);
}

#[tokio::test]
async fn one_server_hosts_many_sites_by_sni() {
    let ca = TestCa::new("Test CA");
    let server = serve(
        &ca,
        [
            Site::policy("mta-sts.a.example", "version: STSv1\nmode: testing\n"),
            Site::new("mta-sts.b.example", HttpBehaviour::Status(404)),
            Site::new("mta-sts.c.example", HttpBehaviour::Status(500)),
            Site::new(
                "mta-sts.d.example",
                HttpBehaviour::Redirect("https://elsewhere.example/policy".into()),
            ),
            Site::new(
                "mta-sts.e.example",
                HttpBehaviour::Ok {
                    content_type: "text/html".into(),
                    body: b"<html>policy</html>".to_vec(),
                },
            ),
        ],
    )
    .await;
    let get = |host: &'static str| fetch(ca.client_config(), server.addr(), host, POLICY_PATH);
    let a = get("mta-sts.a.example").await.unwrap();
    assert_eq!(a.body, b"version: STSv1\nmode: testing\n");
    let b = get("mta-sts.b.example").await.unwrap();
    assert_eq!(b.status_line, "HTTP/1.1 404 Not Found");
    let c = get("mta-sts.c.example").await.unwrap();
    assert_eq!(c.status_line, "HTTP/1.1 500 Internal Server Error");
    let d = get("mta-sts.d.example").await.unwrap();
    assert_eq!(d.status_line, "HTTP/1.1 301 Moved Permanently");
    assert_eq!(
        d.header("Location"),
        Some("https://elsewhere.example/policy")
    );
    let e = get("mta-sts.e.example").await.unwrap();
    assert_eq!(e.header("Content-Type"), Some("text/html"));
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let ca = TestCa::new("Test CA");
    let server = serve(&ca, [Site::policy("mta-sts.example.com", POLICY)]).await;
    let fetched = fetch(
        ca.client_config(),
        server.addr(),
        "mta-sts.example.com",
        "/",
    )
    .await
    .unwrap();
    assert_eq!(fetched.status_line, "HTTP/1.1 404 Not Found");
}

#[tokio::test]
async fn oversize_by_content_length_declares_more_than_64_kib() {
    let ca = TestCa::new("Test CA");
    let host = "mta-sts.big.example";
    let server = serve(&ca, [Site::new(host, HttpBehaviour::OversizeContentLength)]).await;
    let fetched = fetch(ca.client_config(), server.addr(), host, POLICY_PATH)
        .await
        .unwrap();
    let declared: usize = fetched.header("Content-Length").unwrap().parse().unwrap();
    assert!(declared > 64 * 1024);
    assert_eq!(fetched.body.len(), declared);
}

#[tokio::test]
async fn oversize_by_chunks_has_no_content_length() {
    let ca = TestCa::new("Test CA");
    let host = "mta-sts.chunky.example";
    let server = serve(&ca, [Site::new(host, HttpBehaviour::OversizeChunked)]).await;
    let fetched = fetch(ca.client_config(), server.addr(), host, POLICY_PATH)
        .await
        .unwrap();
    assert_eq!(fetched.header("Content-Length"), None);
    assert_eq!(fetched.header("Transfer-Encoding"), Some("chunked"));
    // The chunk framing adds bytes; the payload alone is OVERSIZE_BODY_BYTES.
    assert!(fetched.body.len() > OVERSIZE_BODY_BYTES);
    assert!(fetched.body.ends_with(b"\r\n0\r\n\r\n"));
}

#[tokio::test]
async fn slow_drip_outlasts_a_client_timeout() {
    let ca = TestCa::new("Test CA");
    let host = "mta-sts.slow.example";
    let behaviour = HttpBehaviour::SlowDrip {
        body: POLICY.as_bytes().to_vec(),
        interval: Duration::from_millis(50),
    };
    let server = serve(&ca, [Site::new(host, behaviour)]).await;
    let result = tokio::time::timeout(
        Duration::from_millis(500),
        fetch(ca.client_config(), server.addr(), host, POLICY_PATH),
    )
    .await;
    assert!(
        result.is_err(),
        "the whole response took longer than the timeout"
    );
    // The request got through: the server is slow, not deaf.
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
}

#[tokio::test]
async fn certificate_for_another_name_fails_verification() {
    let ca = TestCa::new("Test CA");
    let host = "mta-sts.example.com";
    let wrong = ca.issue(&["www.example.com"]).unwrap();
    let server = serve(&ca, [Site::policy(host, POLICY).certificate(wrong)]).await;
    let error = fetch(ca.client_config(), server.addr(), host, POLICY_PATH)
        .await
        .unwrap_err();
    assert!(
        matches!(
            certificate_error(&error),
            Some(
                CertificateError::NotValidForNameContext { .. } | CertificateError::NotValidForName
            )
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn bad_certificates_fail_verification_each_in_its_own_way() {
    let ca = TestCa::new("Test CA");
    let untrusted = TestCa::new("Untrusted CA");
    let names = ["mta-sts.example.com"];
    let cases = [
        ("expired", ca.issue_expired(&names).unwrap()),
        ("not yet valid", ca.issue_not_yet_valid(&names).unwrap()),
        ("untrusted CA", untrusted.issue(&names).unwrap()),
        (
            "missing intermediate",
            ca.issue_without_intermediate(&names).unwrap(),
        ),
        ("self-signed", self_signed(&names).unwrap()),
    ];
    for (case, identity) in cases {
        let server = serve(&ca, [Site::policy(names[0], POLICY).certificate(identity)]).await;
        let error = fetch(ca.client_config(), server.addr(), names[0], POLICY_PATH)
            .await
            .unwrap_err();
        let kind = certificate_error(&error);
        let expected = match case {
            "expired" => matches!(kind, Some(CertificateError::ExpiredContext { .. })),
            "not yet valid" => matches!(kind, Some(CertificateError::NotValidYetContext { .. })),
            _ => matches!(kind, Some(CertificateError::UnknownIssuer)),
        };
        assert!(expected, "{case}: {error:?}");
    }
}

#[tokio::test]
async fn tls_refusals_never_complete_a_handshake() {
    let ca = TestCa::new("Test CA");
    let server = serve(
        &ca,
        [
            Site::policy("mta-sts.closed.example", POLICY).tls(SiteTls::RefuseByClosing),
            Site::policy("mta-sts.plain.example", POLICY).tls(SiteTls::RefuseWithPlaintext),
        ],
    )
    .await;
    for host in [
        "mta-sts.closed.example",
        "mta-sts.plain.example",
        "unknown.example",
    ] {
        let result = fetch(ca.client_config(), server.addr(), host, POLICY_PATH).await;
        assert!(result.is_err(), "{host}: {result:?}");
    }
    let plain = fetch(
        ca.client_config(),
        server.addr(),
        "mta-sts.plain.example",
        POLICY_PATH,
    )
    .await
    .unwrap_err();
    let inner = plain
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(inner, Some(rustls::Error::InvalidMessage(_))),
        "plaintext where TLS was expected: {plain:?}"
    );
}

#[tokio::test]
async fn sites_can_change_while_serving() {
    let ca = TestCa::new("Test CA");
    let host = "mta-sts.example.com";
    let server = serve(&ca, [Site::policy(host, POLICY)]).await;
    server
        .set_site(Site::new(host, HttpBehaviour::Status(503)))
        .unwrap();
    let fetched = fetch(ca.client_config(), server.addr(), host, POLICY_PATH)
        .await
        .unwrap();
    assert_eq!(fetched.status_line, "HTTP/1.1 503 Service Unavailable");
}
