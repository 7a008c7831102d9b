//! DKIM-signed report mails (RFC 8460 §3), verified by an independent verifier (mail-auth)
//! that looks the public key up over real DNS on loopback (a testnet zone).

use std::sync::Arc;

use base64::Engine as _;
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};
use mta_sts_sender::tlsrpt::{DeliveryOptions, ReportSigner, Reporter};
use mta_sts_store::{OutgoingKey, OutgoingReport, ReportScope};
use mta_sts_testnet::{DnsHandle, Lab, Zone};
use mta_sts_tlsrpt::report::UtcDay;

const SELECTOR: &str = "tlsrpt2026";

fn report() -> OutgoingReport {
    OutgoingReport {
        key: OutgoingKey(1),
        scope: ReportScope {
            day: UtcDay::parse("2026-11-01").unwrap(),
            domain: "example.com".into(),
            tlsrpt_record: "v=TLSRPTv1; rua=mailto:tls@example.com".into(),
        },
        report_id: "2026-11-01_example.com@sender.example".into(),
        json: b"{}".to_vec(),
    }
}

fn authenticator(dns: &DnsHandle) -> MessageAuthenticator {
    let mut udp = ConnectionConfig::udp();
    udp.port = dns.addr().port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = dns.addr().port();
    let server = NameServerConfig::new(dns.addr().ip(), true, vec![udp, tcp]);
    MessageAuthenticator::new(
        ResolverConfig::from_parts(None, vec![], vec![server]),
        ResolverOpts::default(),
    )
    .unwrap()
}

async fn verify(authenticator: &MessageAuthenticator, mail: &[u8]) -> Vec<DkimResult> {
    let message = AuthenticatedMessage::parse(mail).unwrap();
    authenticator
        .verify_dkim(&message)
        .await
        .iter()
        .map(|output| output.result().clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_report_mail_verifies_with_the_published_key() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let public = base64::engine::general_purpose::STANDARD.encode(key.public_key_raw());
    let lab = Lab::new();
    let dns = lab
        .dns([Zone::new("sender.example").txt(
            &format!("{SELECTOR}._domainkey"),
            &[&format!("v=DKIM1; k=ed25519; p={public}")],
        )])
        .await
        .unwrap();
    let signer =
        ReportSigner::from_pem(key.serialize_pem().as_bytes(), "sender.example", SELECTOR).unwrap();
    let mut options =
        DeliveryOptions::new(Reporter::new("Example Sender", "tlsrpt@sender.example"));
    options.dkim = Some(Arc::new(signer));
    let mail = options
        .report_mail(
            &report(),
            b"gzip bytes",
            &["tls@example.com".into()],
            1_793_500_000,
        )
        .unwrap();
    let text = String::from_utf8_lossy(&mail);
    assert!(text.starts_with("DKIM-Signature: "), "{text}");
    assert!(text.contains("d=sender.example"), "{text}");
    assert!(text.contains(&format!("s={SELECTOR}")), "{text}");
    let signed = text.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    for header in [
        "tls-report-domain",
        "tls-report-submitter",
        "tls-required",
        "subject",
    ] {
        assert!(signed.contains(header), "{header} is signed: {signed}");
    }

    let authenticator = authenticator(&dns);
    assert_eq!(verify(&authenticator, &mail).await, [DkimResult::Pass]);
    // A report altered on the way fails.
    let tampered = text.replace(
        "This is an aggregate TLS report",
        "This is a forged TLS report",
    );
    let results = verify(&authenticator, tampered.as_bytes()).await;
    assert!(
        matches!(
            results.as_slice(),
            [DkimResult::Fail(_) | DkimResult::Neutral(_)]
        ),
        "{results:?}"
    );
    // Without a key the same mail goes out unsigned.
    options.dkim = None;
    let unsigned = options
        .report_mail(
            &report(),
            b"gzip bytes",
            &["tls@example.com".into()],
            1_793_500_000,
        )
        .unwrap();
    assert!(unsigned.starts_with(b"From: "));
    assert!(verify(&authenticator, &unsigned).await.is_empty());
}

#[test]
fn keys_that_cannot_sign_dkim_are_refused() {
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let error = ReportSigner::from_pem(ec.serialize_pem().as_bytes(), "sender.example", "s")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("neither an RSA nor an Ed25519 key"),
        "{error}"
    );
    let error = ReportSigner::from_pem(b"not a key", "sender.example", "s")
        .unwrap_err()
        .to_string();
    assert!(error.contains("no private key"), "{error}");
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let error = ReportSigner::from_pem(ed.serialize_pem().as_bytes(), "", "s")
        .unwrap_err()
        .to_string();
    assert!(error.contains("domain and a selector"), "{error}");
}
