//! The SMTP servers, driven through real dialogues by a small client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mta_sts_testnet::{
    LegacyTlsVersion, ServerCertificate, SmtpBehaviour, SmtpHandle, SmtpServer, TestCa,
    refused_addr, self_signed,
};
use rustls::pki_types::ServerName;
use rustls::{CertificateError, ClientConfig, PeerIncompatible};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const MX: &str = "mx1.example.com";

/// A minimal SMTP client: enough to walk a server through EHLO, STARTTLS, EHLO, QUIT.
struct Client<S> {
    reader: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    fn new(stream: S) -> Self {
        Self {
            reader: BufReader::new(stream),
        }
    }

    /// Reads one (possibly multiline) reply: its code and the text of each line.
    async fn reply(&mut self) -> (u16, Vec<String>) {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(5), self.reader.read_line(&mut line))
                .await
                .expect("a reply in time")
                .unwrap();
            assert!(n > 0, "connection closed before a reply");
            let line = line.trim_end();
            let code = line[..3].parse().unwrap();
            lines.push(line[4..].to_owned());
            if line.as_bytes()[3] == b' ' {
                return (code, lines);
            }
        }
    }

    async fn command(&mut self, line: &str) -> (u16, Vec<String>) {
        let stream = self.reader.get_mut();
        stream
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.reply().await
    }
}

/// Connects, checks the 220 banner, says EHLO and returns the client and the EHLO keywords.
async fn greet(addr: SocketAddr) -> (Client<TcpStream>, Vec<String>) {
    let mut client = Client::new(TcpStream::connect(addr).await.unwrap());
    let (code, banner) = client.reply().await;
    assert_eq!(code, 220, "{banner:?}");
    let (code, ehlo) = client.command("EHLO client.example").await;
    assert_eq!(code, 250);
    (client, ehlo)
}

/// EHLO, STARTTLS, and the TLS handshake with `config` and SNI `sni`.
async fn starttls(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    sni: &str,
) -> std::io::Result<Client<tokio_rustls::client::TlsStream<TcpStream>>> {
    let (mut client, ehlo) = greet(addr).await;
    assert!(ehlo.iter().any(|k| k == "STARTTLS"), "{ehlo:?}");
    assert_eq!(client.command("STARTTLS").await.0, 220);
    let tcp = client.reader.into_inner();
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let tls = TlsConnector::from(config).connect(name, tcp).await?;
    Ok(Client::new(tls))
}

async fn start(behaviour: SmtpBehaviour) -> SmtpHandle {
    SmtpServer::new(MX, behaviour).start().await.unwrap()
}

fn rustls_error(error: &std::io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

#[tokio::test]
async fn good_starttls_dialogue() {
    let ca = TestCa::new("Test CA");
    let server = start(SmtpBehaviour::starttls(ca.issue(&[MX]).unwrap())).await;
    let mut tls = starttls(server.addr(), ca.client_config(), MX)
        .await
        .unwrap();
    let (code, ehlo) = tls.command("EHLO client.example").await;
    assert_eq!(code, 250);
    assert!(!ehlo.iter().any(|k| k == "STARTTLS"), "not offered twice");
    assert_eq!(tls.command("MAIL FROM:<a@client.example>").await.0, 250);
    assert_eq!(tls.command("RCPT TO:<tlsrpt@example.com>").await.0, 250);
    assert_eq!(tls.command("DATA").await.0, 354);
    assert_eq!(
        tls.command("Subject: report\r\n\r\n..dot\r\n.").await.0,
        250
    );
    assert_eq!(tls.command("QUIT").await.0, 221);
    let sessions = server.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].sni.as_deref(), Some(MX));
    assert!(sessions[0].tls_established);
    assert_eq!(
        sessions[0].commands,
        ["EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    );
    assert_eq!(
        sessions[0].messages[0].data,
        b"Subject: report\r\n\r\n.dot\r\n"
    );
}

#[tokio::test]
async fn no_starttls_is_neither_offered_nor_accepted() {
    let server = start(SmtpBehaviour::NoStartTls).await;
    let (mut client, ehlo) = greet(server.addr()).await;
    assert!(!ehlo.iter().any(|k| k == "STARTTLS"), "{ehlo:?}");
    assert_eq!(client.command("STARTTLS").await.0, 502);
    assert_eq!(client.command("QUIT").await.0, 221);
}

#[tokio::test]
async fn starttls_accepted_then_handshake_fails() {
    let ca = TestCa::new("Test CA");
    let server = start(SmtpBehaviour::StartTlsThenHandshakeFailure).await;
    let error = starttls(server.addr(), ca.client_config(), MX)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            rustls_error(&error),
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::HandshakeFailure
            ))
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn legacy_tls_only_offers_no_tls_1_2_or_newer() {
    let ca = TestCa::new("Test CA");
    for version in [LegacyTlsVersion::Tls10, LegacyTlsVersion::Tls11] {
        let server = start(SmtpBehaviour::LegacyTlsOnly(version)).await;
        let error = starttls(server.addr(), ca.client_config(), MX)
            .await
            .err()
            .unwrap();
        assert!(
            matches!(
                rustls_error(&error),
                Some(rustls::Error::PeerIncompatible(
                    PeerIncompatible::ServerDoesNotSupportTls12Or13
                ))
            ),
            "{version:?}: {error:?}"
        );
    }
}

#[tokio::test]
async fn bad_certificates_fail_verification_after_starttls() {
    let ca = TestCa::new("Test CA");
    let untrusted = TestCa::new("Untrusted CA");
    let cases = [
        ("expired", ca.issue_expired(&[MX]).unwrap()),
        ("wrong name", ca.issue(&["mx9.example.net"]).unwrap()),
        ("self-signed", self_signed(&[MX]).unwrap()),
        ("untrusted CA", untrusted.issue(&[MX]).unwrap()),
    ];
    for (case, identity) in cases {
        let server = start(SmtpBehaviour::starttls(identity)).await;
        let error = starttls(server.addr(), ca.client_config(), MX)
            .await
            .err()
            .unwrap();
        let Some(rustls::Error::InvalidCertificate(kind)) = rustls_error(&error) else {
            panic!("{case}: {error:?}");
        };
        let expected = match case {
            "expired" => matches!(kind, CertificateError::ExpiredContext { .. }),
            "wrong name" => matches!(kind, CertificateError::NotValidForNameContext { .. }),
            _ => matches!(kind, CertificateError::UnknownIssuer),
        };
        assert!(expected, "{case}: {kind:?}");
    }
}

#[tokio::test]
async fn certificate_depends_on_sni() {
    let ca = TestCa::new("Test CA");
    let certificate = ServerCertificate::BySni {
        by_name: HashMap::from([(MX.to_owned(), ca.issue(&[MX]).unwrap())]),
        default: ca.issue(&["default.example.net"]).unwrap(),
    };
    let server = start(SmtpBehaviour::StartTls(certificate)).await;
    assert!(
        starttls(server.addr(), ca.client_config(), MX)
            .await
            .is_ok()
    );
    // An IP address as server name sends no SNI: the default certificate comes back.
    let error = starttls(server.addr(), ca.client_config(), &server.ip().to_string())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            rustls_error(&error),
            Some(rustls::Error::InvalidCertificate(_))
        ),
        "{error:?}"
    );
    let sessions = server.sessions();
    assert_eq!(sessions[1].sni, None);
}

#[tokio::test]
async fn rejecting_banners() {
    let server = start(SmtpBehaviour::RejectingBanner(421)).await;
    let mut client = Client::new(TcpStream::connect(server.addr()).await.unwrap());
    assert_eq!(client.reply().await.0, 421);

    let server = start(SmtpBehaviour::RejectingBanner(554)).await;
    let mut client = Client::new(TcpStream::connect(server.addr()).await.unwrap());
    assert_eq!(client.reply().await.0, 554);
    assert_eq!(client.command("EHLO client.example").await.0, 503);
    assert_eq!(client.command("QUIT").await.0, 221);
}

#[tokio::test]
async fn silent_banner_never_arrives() {
    let server = start(SmtpBehaviour::SilentBanner).await;
    let mut stream = BufReader::new(TcpStream::connect(server.addr()).await.unwrap());
    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_millis(300), stream.read_line(&mut line)).await;
    assert!(read.is_err(), "no banner: {line:?}");
}

#[tokio::test]
async fn refused_address_refuses() {
    let addr = refused_addr().await.unwrap();
    let error = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn overlong_line_ends_the_session() {
    let server = start(SmtpBehaviour::NoStartTls).await;
    let (mut client, _) = greet(server.addr()).await;
    let stream = client.reader.get_mut();
    stream.write_all(&vec![b'A'; 5000]).await.unwrap();
    stream.write_all(b"\r\n").await.unwrap();
    let mut rest = String::new();
    let n = tokio::time::timeout(Duration::from_secs(5), client.reader.read_line(&mut rest))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a reply: {rest:?}");
}

#[tokio::test]
async fn dropping_the_handle_stops_the_server() {
    let server = start(SmtpBehaviour::NoStartTls).await;
    let addr = server.addr();
    let (mut client, _) = greet(addr).await;
    drop(server);
    tokio::task::yield_now().await;
    let mut line = String::new();
    let n = tokio::time::timeout(Duration::from_secs(5), client.reader.read_line(&mut line))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "open sessions are closed too");
    assert!(TcpStream::connect(addr).await.is_err());
}
