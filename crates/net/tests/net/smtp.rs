//! The STARTTLS probe against every testnet SMTP behaviour: what it saw, and how it ended.

use std::collections::HashMap;
use std::time::Duration;

use mta_sts_net::{CertProblem, ConnectFailure, MxProbe, Net, ProbeOptions, ProbeOutcome};
use mta_sts_testnet::{
    DnsHandle, Lab, LegacyTlsVersion, ServerCertificate, SmtpBehaviour, SmtpHandle, TestCa, Zone,
    self_signed,
};

use super::{config, net};

const MX: &str = "mx1.example.com";

/// A lab with one SMTP server behaving as `behaviour` (built from the lab's CA).
async fn serve(behaviour: impl FnOnce(&Lab) -> SmtpBehaviour) -> (Lab, SmtpHandle, DnsHandle) {
    let lab = Lab::new();
    let smtp = lab.smtp(MX, behaviour(&lab)).await.unwrap();
    let dns = lab
        .dns([Zone::new("example.com").address("mx1", smtp.ip())])
        .await
        .unwrap();
    (lab, smtp, dns)
}

async fn run_probe(behaviour: impl FnOnce(&Lab) -> SmtpBehaviour) -> (MxProbe, SmtpHandle) {
    let (lab, smtp, dns) = serve(behaviour).await;
    let probe = net(&lab, &dns).probe_mx(MX, smtp.ip()).await;
    (probe, smtp)
}

fn problems(probe: &MxProbe) -> &[CertProblem] {
    &probe
        .tls
        .as_ref()
        .expect("the handshake completed")
        .verification
        .problems
}

fn good(lab: &Lab) -> SmtpBehaviour {
    SmtpBehaviour::starttls(lab.ca().issue(&[MX]).unwrap())
}

#[tokio::test]
async fn good_starttls_is_probed_without_sending_mail() {
    let (probe, smtp) = run_probe(good).await;
    assert_eq!(probe.outcome, ProbeOutcome::Ok, "{probe:?}");
    assert!(probe.is_valid_for_mta_sts());
    assert_eq!(probe.host, MX);
    assert_eq!(probe.addr, smtp.addr());
    let banner = probe.banner.as_ref().unwrap();
    assert_eq!(banner.code, 220);
    assert!(banner.text().starts_with(MX));
    assert_eq!(probe.starttls_offered, Some(true));
    assert!(
        probe.ehlo.as_ref().unwrap().lines.len() > 1,
        "multiline EHLO reply read whole"
    );
    assert_eq!(probe.ehlo_after_tls.as_ref().unwrap().code, 250);
    let tls = probe.tls.as_ref().unwrap();
    assert_eq!(tls.version, "TLSv1.3");
    assert!(
        tls.cipher_suite.starts_with("TLS13_"),
        "{}",
        tls.cipher_suite
    );
    assert_eq!(tls.certificate.as_ref().unwrap().subject_alt_names, [MX]);
    assert_eq!(tls.intermediates.len(), 1);
    assert!(tls.verification.is_valid());

    let sessions = smtp.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].sni.as_deref(), Some(MX));
    assert!(sessions[0].tls_established);
    assert_eq!(sessions[0].commands, ["EHLO", "STARTTLS", "EHLO", "QUIT"]);
}

#[tokio::test]
async fn missing_starttls_is_reported_and_not_attempted() {
    let (probe, smtp) = run_probe(|_| SmtpBehaviour::NoStartTls).await;
    assert_eq!(probe.outcome, ProbeOutcome::NoStartTls);
    assert_eq!(probe.starttls_offered, Some(false));
    assert!(probe.tls.is_none());
    assert_eq!(smtp.sessions()[0].commands, ["EHLO", "QUIT"]);
}

#[tokio::test]
async fn handshake_failure_after_starttls_is_not_legacy() {
    let (probe, _smtp) = run_probe(|_| SmtpBehaviour::StartTlsThenHandshakeFailure).await;
    assert!(
        matches!(
            probe.outcome,
            ProbeOutcome::HandshakeFailed {
                legacy_tls_only: false,
                ..
            }
        ),
        "{:?}",
        probe.outcome
    );
    assert_eq!(probe.starttls_offered, Some(true));
}

#[tokio::test]
async fn tls_1_0_and_1_1_only_servers_are_recognised() {
    for version in [LegacyTlsVersion::Tls10, LegacyTlsVersion::Tls11] {
        let (probe, _smtp) = run_probe(|_| SmtpBehaviour::LegacyTlsOnly(version)).await;
        assert!(
            matches!(&probe.outcome, ProbeOutcome::HandshakeFailed { legacy_tls_only: true, reason } if reason.contains("TLS 1.0/1.1")),
            "{version:?}: {:?}",
            probe.outcome
        );
    }
}

#[tokio::test]
async fn bad_certificates_are_reported_with_their_details() {
    let (expired, _s) =
        run_probe(|lab| SmtpBehaviour::starttls(lab.ca().issue_expired(&[MX]).unwrap())).await;
    assert_eq!(
        expired.outcome,
        ProbeOutcome::Ok,
        "the session itself works"
    );
    assert!(!expired.is_valid_for_mta_sts());
    assert!(
        matches!(problems(&expired), [CertProblem::Expired { .. }]),
        "{expired:?}"
    );

    let (wrong_name, _s) =
        run_probe(|lab| SmtpBehaviour::starttls(lab.ca().issue(&["mail.other.example"]).unwrap()))
            .await;
    assert_eq!(
        problems(&wrong_name),
        [CertProblem::NameMismatch {
            expected: MX.to_owned(),
            presented: vec!["mail.other.example".to_owned()],
        }]
    );

    let (self_signed, _s) =
        run_probe(|_| SmtpBehaviour::starttls(self_signed(&[MX]).unwrap())).await;
    assert_eq!(problems(&self_signed), [CertProblem::SelfSigned]);

    let (untrusted, _s) =
        run_probe(|_| SmtpBehaviour::starttls(TestCa::new("Untrusted CA").issue(&[MX]).unwrap()))
            .await;
    assert!(
        matches!(problems(&untrusted), [CertProblem::UntrustedIssuer { .. }]),
        "{untrusted:?}"
    );

    let (leaf_only, _s) = run_probe(|lab| {
        SmtpBehaviour::starttls(lab.ca().issue_without_intermediate(&[MX]).unwrap())
    })
    .await;
    assert!(
        matches!(
            problems(&leaf_only),
            [CertProblem::MissingIntermediate { .. }]
        ),
        "{leaf_only:?}"
    );
}

#[tokio::test]
async fn every_problem_of_a_certificate_is_listed() {
    let (probe, _s) = run_probe(|_| {
        let stranger = TestCa::new("Untrusted CA");
        SmtpBehaviour::starttls(stranger.issue_expired(&["mail.other.example"]).unwrap())
    })
    .await;
    let problems = problems(&probe);
    assert!(
        matches!(
            problems,
            [
                CertProblem::UntrustedIssuer { .. },
                CertProblem::Expired { .. },
                CertProblem::NameMismatch { .. }
            ]
        ),
        "{problems:?}"
    );
}

#[tokio::test]
async fn wildcard_certificate_matches_one_label_only() {
    let (probe, _s) =
        run_probe(|lab| SmtpBehaviour::starttls(lab.ca().issue(&["*.example.com"]).unwrap())).await;
    assert!(probe.is_valid_for_mta_sts(), "{probe:?}");
    let (deeper, _s) =
        run_probe(|lab| SmtpBehaviour::starttls(lab.ca().issue(&["*.com"]).unwrap())).await;
    assert!(
        matches!(problems(&deeper), [CertProblem::NameMismatch { .. }]),
        "{deeper:?}"
    );
}

#[tokio::test]
async fn certificate_depends_on_sni_and_the_probe_without_sni_shows_it() {
    let lab = Lab::new();
    let behaviour = SmtpBehaviour::StartTls(ServerCertificate::BySni {
        by_name: HashMap::from([(MX.to_owned(), lab.ca().issue(&[MX]).unwrap())]),
        default: lab.ca().issue(&["default.hosting.example"]).unwrap(),
    });
    let smtp = lab.smtp(MX, behaviour).await.unwrap();
    let dns = lab
        .dns([Zone::new("example.com").address("mx1", smtp.ip())])
        .await
        .unwrap();
    let probe = net(&lab, &dns)
        .probe_mx_with(
            MX,
            smtp.ip(),
            ProbeOptions::default().with_without_sni(true),
        )
        .await;
    assert!(probe.is_valid_for_mta_sts(), "{probe:?}");
    assert!(probe.sni);
    let without = probe.without_sni.as_deref().expect("second probe");
    assert!(!without.sni);
    assert_eq!(without.outcome, ProbeOutcome::Ok);
    assert!(
        matches!(problems(without), [CertProblem::NameMismatch { .. }]),
        "{without:?}"
    );
    let sessions = smtp.sessions();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0].sni.as_deref(), Some(MX));
    assert_eq!(sessions[1].sni, None);
}

#[tokio::test]
async fn rejecting_banners_are_reported_with_code_and_text() {
    for code in [421, 554] {
        let (probe, smtp) = run_probe(|_| SmtpBehaviour::RejectingBanner(code)).await;
        assert!(
            matches!(&probe.outcome, ProbeOutcome::BannerRejected { code: c, text } if *c == code && text.contains(MX)),
            "{:?}",
            probe.outcome
        );
        assert!(probe.ehlo.is_none());
        if code == 554 {
            // RFC 5321 §3.1: after 554 the client sends QUIT, nothing else.
            assert_eq!(smtp.sessions()[0].commands, ["QUIT"]);
        }
    }
}

#[tokio::test]
async fn refused_connection_is_connect_failed() {
    let lab = Lab::new();
    let _smtp = lab.smtp(MX, SmtpBehaviour::NoStartTls).await.unwrap();
    let refused = lab.refused_smtp_addr().await.unwrap();
    let dns = lab.dns([Zone::new("example.com")]).await.unwrap();
    let probe = net(&lab, &dns).probe_mx(MX, refused.ip()).await;
    assert_eq!(
        probe.outcome,
        ProbeOutcome::ConnectFailed {
            reason: ConnectFailure::Refused
        }
    );
    assert!(probe.banner.is_none());
}

#[tokio::test]
async fn silent_banner_times_out() {
    let (lab, smtp, dns) = serve(|_| SmtpBehaviour::SilentBanner).await;
    let mut config = config(&lab, &dns);
    config.timeout = Duration::from_millis(300);
    let probe = Net::new(config).unwrap().probe_mx(MX, smtp.ip()).await;
    assert_eq!(probe.outcome, ProbeOutcome::BannerTimeout);
}

#[tokio::test]
async fn every_address_of_an_mx_host_is_probed() {
    let lab = Lab::new();
    let first = lab.smtp(MX, good(&lab)).await.unwrap();
    let second = lab.smtp(MX, SmtpBehaviour::NoStartTls).await.unwrap();
    let dns = lab
        .dns([Zone::new("example.com")
            .address("mx1", first.ip())
            .address("mx1", second.ip())])
        .await
        .unwrap();
    let mut probes = net(&lab, &dns)
        .probe_mx_host(MX, ProbeOptions::default())
        .await
        .unwrap();
    probes.sort_by_key(|probe| probe.addr != first.addr());
    assert_eq!(probes.len(), 2);
    assert_eq!(
        (probes[0].addr, &probes[0].outcome),
        (first.addr(), &ProbeOutcome::Ok)
    );
    assert_eq!(
        (probes[1].addr, &probes[1].outcome),
        (second.addr(), &ProbeOutcome::NoStartTls)
    );
}

#[tokio::test]
async fn probes_serialize_for_json_reports() {
    let (probe, _smtp) = run_probe(|_| SmtpBehaviour::RejectingBanner(554)).await;
    let json = serde_json::to_value(&probe).unwrap();
    assert_eq!(json["outcome"]["kind"], "banner_rejected");
    assert_eq!(json["outcome"]["code"], 554);
    assert!(json["elapsed_ms"].is_u64());
}

#[tokio::test]
async fn a_peer_that_is_not_smtp_is_a_protocol_error() {
    use tokio::io::AsyncWriteExt;

    let listener = mta_sts_testnet::bind_tcp().await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await.unwrap();
        // Keep the connection open until the client gives up.
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut sink).await;
    });
    let lab = Lab::new();
    let dns = lab.dns([Zone::new("example.com")]).await.unwrap();
    let mut config = config(&lab, &dns);
    config.smtp_port = addr.port();
    let probe = Net::new(config).unwrap().probe_mx(MX, addr.ip()).await;
    assert!(
        matches!(&probe.outcome, ProbeOutcome::ProtocolError { step: mta_sts_net::SmtpStep::Banner, detail } if detail.contains("SSH-2.0")),
        "{:?}",
        probe.outcome
    );
    server.abort();
}
