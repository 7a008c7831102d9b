//! The policy fetch of RFC 8461 §3.3, one test per rule, against testnet's HTTPS sites.

use std::time::Duration;

use mta_sts_net::{CertProblem, FetchError, Net, TlsFailure};
use mta_sts_testnet::{
    DnsHandle, HttpBehaviour, HttpsHandle, Lab, OVERSIZE_BODY_BYTES, POLICY_PATH, Site, SiteTls,
    TestCa, Zone, self_signed,
};

use super::{config, net};

const POLICY: &str = "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 86400\n";
const HOST: &str = "mta-sts.example.com";

/// A lab serving `site` as example.com's policy host.
async fn serve(site: Site) -> (Lab, HttpsHandle, DnsHandle) {
    let lab = Lab::new();
    let web = lab.https([site]).await.unwrap();
    let dns = lab
        .dns([Zone::new("example.com").address("mta-sts", web.ip())])
        .await
        .unwrap();
    (lab, web, dns)
}

async fn fetch(site: Site) -> Result<mta_sts_net::FetchedPolicy, FetchError> {
    let (lab, _web, dns) = serve(site).await;
    net(&lab, &dns).fetch_policy("example.com").await
}

fn certificate_problems(error: &FetchError) -> &[CertProblem] {
    match error {
        FetchError::Tls {
            failure: TlsFailure::Certificate { verdict, .. },
            ..
        } => &verdict.problems,
        other => panic!("expected a certificate failure, got {other:?}"),
    }
}

#[tokio::test]
async fn good_policy_is_fetched_with_its_evidence() {
    let (lab, web, dns) = serve(Site::policy(HOST, POLICY)).await;
    let policy = net(&lab, &dns).fetch_policy("Example.COM.").await.unwrap();
    assert_eq!(policy.body, POLICY.as_bytes());
    assert_eq!(policy.content_type.as_deref(), Some("text/plain"));
    assert_eq!(policy.peer, web.addr());
    assert_eq!(policy.url, format!("https://{HOST}{POLICY_PATH}"));
    assert_eq!(policy.certificate.subject_alt_names, [HOST]);
    assert!(
        policy
            .certificate
            .issuer
            .contains("Testnet CA intermediate")
    );
    assert!(policy.certificate.not_before < policy.certificate.not_after);
    assert_eq!(policy.tls_version, "TLSv1.3");

    let requests = web.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].sni, HOST);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, POLICY_PATH);
    assert_eq!(requests[0].host_header.as_deref(), Some(HOST));
}

#[tokio::test]
async fn sni_selects_the_policy_domains_site() {
    let lab = Lab::new();
    let web = lab
        .https([
            Site::policy("mta-sts.example.com", POLICY),
            Site::policy(
                "mta-sts.example.net",
                "version: STSv1\nmode: none\nmax_age: 86400\n",
            ),
        ])
        .await
        .unwrap();
    let dns = lab
        .dns([
            Zone::new("example.com").address("mta-sts", web.ip()),
            Zone::new("example.net").address("mta-sts", web.ip()),
        ])
        .await
        .unwrap();
    let net = net(&lab, &dns);
    let com = net.fetch_policy("example.com").await.unwrap();
    let other = net.fetch_policy("example.net").await.unwrap();
    assert_eq!(com.body, POLICY.as_bytes());
    assert!(other.body.starts_with(b"version: STSv1\nmode: none"));
    assert_eq!(other.certificate.subject_alt_names, ["mta-sts.example.net"]);
}

#[tokio::test]
async fn only_status_200_is_a_policy() {
    for status in [404, 500] {
        let error = fetch(Site::new(HOST, HttpBehaviour::Status(status)))
            .await
            .unwrap_err();
        assert_eq!(error, FetchError::Status { status });
        assert!(error.to_string().contains(&status.to_string()), "{error}");
    }
}

#[tokio::test]
async fn redirect_is_not_followed() {
    let location = "https://elsewhere.example/.well-known/mta-sts.txt";
    let (lab, web, dns) = serve(Site::new(
        HOST,
        HttpBehaviour::Redirect(location.to_owned()),
    ))
    .await;
    let error = net(&lab, &dns)
        .fetch_policy("example.com")
        .await
        .unwrap_err();
    assert_eq!(
        error,
        FetchError::Redirect {
            status: 301,
            location: Some(location.to_owned())
        }
    );
    assert_eq!(
        web.requests().len(),
        1,
        "exactly one request, none to the Location"
    );
}

#[tokio::test]
async fn content_type_must_be_text_plain() {
    let html = HttpBehaviour::Ok {
        content_type: "text/html".to_owned(),
        body: POLICY.into(),
    };
    let error = fetch(Site::new(HOST, html)).await.unwrap_err();
    assert_eq!(
        error,
        FetchError::ContentType {
            found: Some("text/html".to_owned())
        }
    );
    assert!(error.to_string().contains("text/html"), "{error}");
}

#[tokio::test]
async fn content_type_parameters_are_ignored() {
    let with_charset = HttpBehaviour::Ok {
        content_type: "text/plain; charset=utf-8".to_owned(),
        body: POLICY.into(),
    };
    let policy = fetch(Site::new(HOST, with_charset)).await.unwrap();
    assert_eq!(
        policy.content_type.as_deref(),
        Some("text/plain; charset=utf-8")
    );
}

#[tokio::test]
async fn oversize_content_length_is_refused_by_the_header() {
    let error = fetch(Site::new(HOST, HttpBehaviour::OversizeContentLength))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        FetchError::TooLarge {
            declared: Some(OVERSIZE_BODY_BYTES as u64)
        }
    );
}

#[tokio::test]
async fn oversize_chunked_body_is_refused_while_reading() {
    let error = fetch(Site::new(HOST, HttpBehaviour::OversizeChunked))
        .await
        .unwrap_err();
    assert_eq!(error, FetchError::TooLarge { declared: None });
}

#[tokio::test]
async fn slow_drip_hits_the_fetch_timeout() {
    let drip = HttpBehaviour::SlowDrip {
        body: POLICY.into(),
        interval: Duration::from_millis(50),
    };
    let (lab, _web, dns) = serve(Site::new(HOST, drip)).await;
    let mut config = config(&lab, &dns);
    config.fetch_timeout = Duration::from_millis(600);
    let error = Net::new(config)
        .unwrap()
        .fetch_policy("example.com")
        .await
        .unwrap_err();
    assert_eq!(error, FetchError::Timeout { limit_ms: 600 });
}

#[tokio::test]
async fn certificate_for_another_name_is_refused() {
    let lab = Lab::new();
    let other = lab.ca().issue(&["www.example.com"]).unwrap();
    let web = lab
        .https([Site::policy(HOST, POLICY).certificate(other)])
        .await
        .unwrap();
    let dns = lab
        .dns([Zone::new("example.com").address("mta-sts", web.ip())])
        .await
        .unwrap();
    let error = net(&lab, &dns)
        .fetch_policy("example.com")
        .await
        .unwrap_err();
    assert_eq!(
        certificate_problems(&error),
        [CertProblem::NameMismatch {
            expected: HOST.to_owned(),
            presented: vec!["www.example.com".to_owned()],
        }]
    );
    assert!(
        web.requests().is_empty(),
        "no request is sent over an unverified connection"
    );
}

#[tokio::test]
async fn expired_certificate_is_refused_with_its_date() {
    let lab = Lab::new();
    let expired = lab.ca().issue_expired(&[HOST]).unwrap();
    let web = lab
        .https([Site::policy(HOST, POLICY).certificate(expired)])
        .await
        .unwrap();
    let dns = lab
        .dns([Zone::new("example.com").address("mta-sts", web.ip())])
        .await
        .unwrap();
    let error = net(&lab, &dns)
        .fetch_policy("example.com")
        .await
        .unwrap_err();
    let problems = certificate_problems(&error);
    assert!(
        matches!(problems, [CertProblem::Expired { .. }]),
        "{problems:?}"
    );
    assert!(error.to_string().contains("expired at"), "{error}");
    let FetchError::Tls {
        failure: TlsFailure::Certificate { certificate, .. },
        ..
    } = &error
    else {
        unreachable!()
    };
    assert_eq!(certificate.as_ref().unwrap().subject_alt_names, [HOST]);
}

#[tokio::test]
async fn certificate_from_an_untrusted_ca_is_refused() {
    let lab = Lab::new();
    let stranger = TestCa::new("Untrusted CA").issue(&[HOST]).unwrap();
    let web = lab
        .https([Site::policy(HOST, POLICY).certificate(stranger)])
        .await
        .unwrap();
    let dns = lab
        .dns([Zone::new("example.com").address("mta-sts", web.ip())])
        .await
        .unwrap();
    let error = net(&lab, &dns)
        .fetch_policy("example.com")
        .await
        .unwrap_err();
    let problems = certificate_problems(&error);
    assert!(
        matches!(problems, [CertProblem::UntrustedIssuer { issuer }] if issuer.contains("Untrusted CA")),
        "{problems:?}"
    );
}

#[tokio::test]
async fn self_signed_and_incomplete_chains_are_refused_each_as_such() {
    let lab = Lab::new();
    let leaf_only = lab
        .ca()
        .issue_without_intermediate(&["mta-sts.example.net"])
        .unwrap();
    let web = lab
        .https([
            Site::policy(HOST, POLICY).certificate(self_signed(&[HOST]).unwrap()),
            Site::policy("mta-sts.example.net", POLICY).certificate(leaf_only),
        ])
        .await
        .unwrap();
    let dns = lab
        .dns([
            Zone::new("example.com").address("mta-sts", web.ip()),
            Zone::new("example.net").address("mta-sts", web.ip()),
        ])
        .await
        .unwrap();
    let net = net(&lab, &dns);
    let error = net.fetch_policy("example.com").await.unwrap_err();
    assert_eq!(certificate_problems(&error), [CertProblem::SelfSigned]);
    let error = net.fetch_policy("example.net").await.unwrap_err();
    let problems = certificate_problems(&error);
    assert!(
        matches!(problems, [CertProblem::MissingIntermediate { .. }]),
        "{problems:?}"
    );
}

#[tokio::test]
async fn tls_refusals_are_handshake_failures() {
    for refusal in [SiteTls::RefuseByClosing, SiteTls::RefuseWithPlaintext] {
        let error = fetch(Site::policy(HOST, POLICY).tls(refusal.clone()))
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                FetchError::Tls {
                    failure: TlsFailure::Handshake {
                        legacy_tls_only: false,
                        ..
                    },
                    ..
                }
            ),
            "{refusal:?}: {error:?}"
        );
    }
}

#[tokio::test]
async fn plain_http_on_the_https_port_is_explained_as_such() {
    let error = fetch(Site::policy(HOST, POLICY).tls(SiteTls::RefuseWithPlaintext))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("plain text, not TLS"), "{text}");
}

#[tokio::test]
async fn missing_policy_host_is_a_dns_error() {
    let lab = Lab::new();
    let dns = lab
        .dns([Zone::new("example.com").mx(10, "mx1.example.com")])
        .await
        .unwrap();
    let error = net(&lab, &dns)
        .fetch_policy("example.com")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, FetchError::Dns { error } if error.is_no_records()),
        "{error:?}"
    );
}

#[tokio::test]
async fn refused_connection_names_the_address() {
    let lab = Lab::new();
    let refused = mta_sts_testnet::refused_addr().await.unwrap();
    let dns = lab
        .dns([Zone::new("example.com").address("mta-sts", refused.ip())])
        .await
        .unwrap();
    let mut config = config(&lab, &dns);
    config.https_port = refused.port();
    let error = Net::new(config)
        .unwrap()
        .fetch_policy("example.com")
        .await
        .unwrap_err();
    assert_eq!(
        error,
        FetchError::Connect {
            addr: refused,
            reason: mta_sts_net::ConnectFailure::Refused
        }
    );
}

#[tokio::test]
async fn errors_serialize_with_their_kind() {
    let error = fetch(Site::new(HOST, HttpBehaviour::Status(404)))
        .await
        .unwrap_err();
    let json = serde_json::to_value(&error).unwrap();
    assert_eq!(json["kind"], "status");
    assert_eq!(json["status"], 404);
    let policy = fetch(Site::policy(HOST, POLICY)).await.unwrap();
    let json = serde_json::to_value(&policy).unwrap();
    assert!(json["elapsed_ms"].is_u64());
    assert_eq!(json["certificate"]["subject_alt_names"][0], HOST);
}

#[tokio::test]
async fn policy_host_behind_a_cname_keeps_its_own_name_for_sni() {
    let lab = Lab::new();
    let web = lab.https([Site::policy(HOST, POLICY)]).await.unwrap();
    let dns = lab
        .dns([
            // mta-sts CNAME sts.hosting.example.
            Zone::new("example.com").cname("mta-sts", "sts.hosting.example"),
            Zone::new("hosting.example").address("sts", web.ip()),
        ])
        .await
        .unwrap();
    let policy = net(&lab, &dns).fetch_policy("example.com").await.unwrap();
    assert_eq!(policy.body, POLICY.as_bytes());
    assert_eq!(web.requests()[0].sni, HOST);
}
