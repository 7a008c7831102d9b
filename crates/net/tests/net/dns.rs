//! DNS: answers as RFC 8461 §3.1 reads them, and "no records" never confused with "failed".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use mta_sts_net::{DnsError, DnsFailure, Mx, Net, NetConfig};
use mta_sts_testnet::{DnsServer, SilentDnsServer, Zone};

fn example_zone() -> Zone {
    Zone::new("example.com")
        // _mta-sts TXT "v=STSv1; " "id=20240101"
        .txt("_mta-sts", &["v=STSv1; ", "id=20240101"])
        // _mta-sts TXT "unrelated"
        .txt("_mta-sts", &["unrelated"])
        // @ MX 20 MX2.Example.COM. / @ MX 10 mx1.example.com.
        .mx(20, "MX2.Example.COM.")
        .mx(10, "mx1.example.com")
        .a("mx1", Ipv4Addr::new(127, 10, 0, 1))
        .aaaa("mx1", Ipv6Addr::LOCALHOST)
        .a("v4only", Ipv4Addr::new(127, 10, 0, 2))
        // _smtp._tls CNAME _smtp._tls.provider.example.
        .cname("_smtp._tls", "_smtp._tls.provider.example")
        .servfail("broken")
        .nxdomain("gone")
        .nodata("empty")
        .silent("black-hole")
}

fn provider_zone() -> Zone {
    Zone::new("provider.example").txt("_smtp._tls", &["v=TLSRPTv1; rua=mailto:r@provider.example"])
}

async fn start() -> (mta_sts_testnet::DnsHandle, Net) {
    serve([
        example_zone(),
        provider_zone(),
        Zone::new("nullmx.example").null_mx(),
    ])
    .await
}

/// A DNS server for `zones` and a `Net` that asks it.
async fn serve(zones: impl IntoIterator<Item = Zone>) -> (mta_sts_testnet::DnsHandle, Net) {
    let dns = DnsServer::new(zones).start().await.unwrap();
    let net = Net::new(NetConfig {
        resolver: Some(dns.addr()),
        timeout: Duration::from_millis(500),
        ..NetConfig::default()
    })
    .unwrap();
    (dns, net)
}

#[tokio::test]
async fn txt_strings_of_one_record_are_concatenated_without_spaces() {
    let (_dns, net) = start().await;
    let mut records = net.resolver().txt("_mta-sts.example.com").await.unwrap();
    records.sort();
    assert_eq!(
        records,
        [b"unrelated".to_vec(), b"v=STSv1; id=20240101".to_vec()]
    );
}

#[tokio::test]
async fn txt_follows_cname_and_reports_the_chain() {
    let (_dns, net) = start().await;
    let answer = net
        .resolver()
        .txt_answer("_smtp._tls.example.com.")
        .await
        .unwrap();
    assert_eq!(
        answer.records,
        [b"v=TLSRPTv1; rua=mailto:r@provider.example".to_vec()]
    );
    assert_eq!(answer.cname_chain, ["_smtp._tls.provider.example"]);
}

#[tokio::test]
async fn servfail_is_a_failure_not_an_absence() {
    let (_dns, net) = start().await;
    let error = net.resolver().txt("broken.example.com").await.unwrap_err();
    assert!(
        matches!(&error, DnsError::Failed { reason: DnsFailure::ServFail, name, .. } if name == "broken.example.com"),
        "{error:?}"
    );
    assert!(error.to_string().contains("SERVFAIL"), "{error}");
}

#[tokio::test]
async fn refused_is_a_failure_not_an_absence() {
    let (_dns, net) = start().await;
    let error = net
        .resolver()
        .txt("_mta-sts.not-served.example")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            DnsError::Failed {
                reason: DnsFailure::Refused,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn nxdomain_and_nodata_are_both_no_records_told_apart() {
    let (_dns, net) = start().await;
    let forced = net.resolver().txt("gone.example.com").await.unwrap_err();
    assert!(
        matches!(forced, DnsError::NoRecords { nxdomain: true, .. }),
        "{forced:?}"
    );
    let unknown = net
        .resolver()
        .txt("_mta-sts.nowhere.example.com")
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, DnsError::NoRecords { nxdomain: true, .. }),
        "{unknown:?}"
    );
    let forced = net.resolver().txt("empty.example.com").await.unwrap_err();
    assert!(
        matches!(
            forced,
            DnsError::NoRecords {
                nxdomain: false,
                ..
            }
        ),
        "{forced:?}"
    );
    let other_type = net.resolver().txt("mx1.example.com").await.unwrap_err();
    assert!(
        matches!(&other_type, DnsError::NoRecords { nxdomain: false, record_type, .. } if record_type == "TXT"),
        "{other_type:?}"
    );
    assert!(other_type.is_no_records());
    assert_eq!(
        other_type.to_string(),
        "mx1.example.com has no TXT records (NODATA)"
    );
}

#[tokio::test]
async fn silent_name_times_out_as_a_failure() {
    let (_dns, net) = start().await;
    let error = net
        .resolver()
        .txt("black-hole.example.com")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            DnsError::Failed {
                reason: DnsFailure::Timeout,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn silent_server_times_out_as_a_failure() {
    let silent = SilentDnsServer::start().await.unwrap();
    let net = Net::new(NetConfig {
        resolver: Some(silent.addr()),
        timeout: Duration::from_millis(300),
        ..NetConfig::default()
    })
    .unwrap();
    let error = net.resolver().mx("example.com").await.unwrap_err();
    assert!(
        matches!(
            error,
            DnsError::Failed {
                reason: DnsFailure::Timeout,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.is_no_records());
}

#[tokio::test]
async fn mx_records_are_sorted_lowercase_without_trailing_dot() {
    let (_dns, net) = start().await;
    let mx = net.resolver().mx("Example.com.").await.unwrap();
    let expected = [
        Mx {
            preference: 10,
            exchange: "mx1.example.com".to_owned(),
        },
        Mx {
            preference: 20,
            exchange: "mx2.example.com".to_owned(),
        },
    ];
    assert_eq!(mx, expected);
    assert!(!mx.iter().any(Mx::is_null));
}

#[tokio::test]
async fn null_mx_is_reported_as_such() {
    let (_dns, net) = start().await;
    let mx = net.resolver().mx("nullmx.example").await.unwrap();
    assert_eq!(
        mx,
        [Mx {
            preference: 0,
            exchange: ".".to_owned()
        }]
    );
    assert!(mx[0].is_null());
}

#[tokio::test]
async fn addresses_combine_a_and_aaaa_and_tolerate_a_missing_family() {
    let (_dns, net) = start().await;
    let both = net.resolver().addresses("mx1.example.com").await.unwrap();
    assert_eq!(
        both,
        [
            IpAddr::V4(Ipv4Addr::new(127, 10, 0, 1)),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        ]
    );
    let v4 = net
        .resolver()
        .addresses("v4only.example.com")
        .await
        .unwrap();
    assert_eq!(v4, [IpAddr::V4(Ipv4Addr::new(127, 10, 0, 2))]);
    let none = net
        .resolver()
        .addresses("nothing.example.com")
        .await
        .unwrap_err();
    assert!(
        matches!(none, DnsError::NoRecords { nxdomain: true, .. }),
        "{none:?}"
    );
    let broken = net
        .resolver()
        .addresses("broken.example.com")
        .await
        .unwrap_err();
    assert!(matches!(broken, DnsError::Failed { .. }), "{broken:?}");
}

#[tokio::test]
async fn invalid_names_are_refused_before_asking() {
    let (_dns, net) = start().await;
    for name in ["", ".", "a..b"] {
        let error = net.resolver().txt(name).await.unwrap_err();
        assert!(
            matches!(error, DnsError::InvalidName { .. }),
            "{name:?}: {error:?}"
        );
    }
}

#[test]
fn errors_serialize_with_their_kind() {
    let error = DnsError::Failed {
        name: "example.com".to_owned(),
        record_type: "MX".to_owned(),
        reason: DnsFailure::Timeout,
    };
    let json = serde_json::to_value(&error).unwrap();
    assert_eq!(json["kind"], "failed");
    assert_eq!(json["reason"]["kind"], "timeout");
}

// Lookups for DANE: the AD bit of a validating resolver (the testnet server stands in for one
// and sets it on answers from signed zones).

async fn start_signed() -> (mta_sts_testnet::DnsHandle, Net) {
    let big = [0x5a_u8; 400];
    serve([
        Zone::new("signed.example")
            .mx(10, "mx1.signed.example")
            .tlsa("_25._tcp.mx1", 3, 1, 1, &[0xab; 32])
            // Three records of 400 bytes: more than a 1232-byte UDP answer holds.
            .tlsa("_25._tcp.big", 2, 0, 1, &big)
            .tlsa("_25._tcp.big", 2, 0, 2, &big)
            .tlsa("_25._tcp.big", 3, 0, 0, &big)
            .nodata("nomx")
            .signed(),
        Zone::new("unsigned.example")
            .mx(10, "mx1.unsigned.example")
            .tlsa("_25._tcp.mx1", 3, 1, 1, &[0xab; 32]),
    ])
    .await
}

#[tokio::test]
async fn validated_answers_carry_the_ad_bit_and_unsigned_ones_do_not() {
    let (_dns, net) = start_signed().await;
    let resolver = net.resolver();
    let mx = resolver.mx_authenticated("signed.example").await.unwrap();
    assert!(mx.authentic);
    assert_eq!(mx.value[0].exchange, "mx1.signed.example");
    let tlsa = resolver
        .tlsa_authenticated("mx1.signed.example", 25)
        .await
        .unwrap();
    assert!(tlsa.authentic);
    assert_eq!(
        (
            tlsa.value[0].usage,
            tlsa.value[0].selector,
            tlsa.value[0].matching
        ),
        (3, 1, 1)
    );
    let mx = resolver.mx_authenticated("unsigned.example").await.unwrap();
    assert!(!mx.authentic, "an unsigned zone is never authentic");
    let tlsa = resolver
        .tlsa_authenticated("mx1.unsigned.example", 25)
        .await
        .unwrap();
    assert!(!tlsa.authentic);
    assert_eq!(tlsa.value.len(), 1);
}

#[tokio::test]
async fn authenticated_nodata_is_empty_and_nxdomain_is_no_records() {
    let (_dns, net) = start_signed().await;
    let resolver = net.resolver();
    let nodata = resolver
        .mx_authenticated("nomx.signed.example")
        .await
        .unwrap();
    assert!(nodata.value.is_empty());
    assert!(nodata.authentic, "a validated denial");
    let missing = resolver
        .tlsa_authenticated("nothere.signed.example", 25)
        .await
        .unwrap_err();
    assert!(
        matches!(missing, DnsError::NoRecords { nxdomain: true, .. }),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_truncated_authenticated_answer_is_asked_again_over_tcp() {
    let (_dns, net) = start_signed().await;
    let tlsa = net
        .resolver()
        .tlsa_authenticated("big.signed.example", 25)
        .await
        .unwrap();
    assert_eq!(tlsa.value.len(), 3, "all three records, over TCP");
    assert!(tlsa.authentic);
}

#[tokio::test]
async fn an_authenticated_lookup_of_a_silent_server_times_out() {
    let silent = SilentDnsServer::start().await.unwrap();
    let net = Net::new(NetConfig {
        resolver: Some(silent.addr()),
        timeout: Duration::from_millis(200),
        ..NetConfig::default()
    })
    .unwrap();
    let error = net
        .resolver()
        .mx_authenticated("example.com")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            DnsError::Failed {
                reason: DnsFailure::Timeout,
                ..
            }
        ),
        "{error:?}"
    );
}
