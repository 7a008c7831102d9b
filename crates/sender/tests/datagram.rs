//! libtlsrpt datagrams in the exact wire format Postfix sends, one fixture per case.

use mta_sts_sender::tlsrpt::{Datagram, DatagramError, MAX_DATAGRAM_SIZE};
use mta_sts_tlsrpt::report::{PolicyType, ResultType};

fn fixture(name: &str) -> Datagram {
    let path = format!(
        "{}/tests/fixtures/datagrams/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap();
    Datagram::parse(&bytes).unwrap_or_else(|error| panic!("{path}: {error}"))
}

#[test]
fn sts_success_has_the_policy_and_no_failure() {
    let datagram = fixture("sts-success");
    assert_eq!(datagram.domain, "example.com");
    assert_eq!(
        datagram.tlsrpt_record,
        "v=TLSRPTv1; rua=mailto:tlsrpt@example.com"
    );
    let [policy] = datagram.policies.as_slice() else {
        panic!("one policy expected");
    };
    assert_eq!(policy.policy.policy_type, PolicyType::Sts);
    assert_eq!(policy.policy.policy_string.len(), 5);
    assert_eq!(
        policy.policy.mx_host,
        ["mx1.example.com", "*.mx.example.com"]
    );
    assert!(!policy.failed);
    assert!(policy.failures.is_empty());
}

#[test]
fn sts_failure_maps_every_short_key() {
    let datagram = fixture("sts-certificate-host-mismatch");
    assert_eq!(
        datagram.domain, "example.com",
        "lowercased, trailing dot removed"
    );
    let policy = &datagram.policies[0];
    assert!(policy.failed);
    let detail = &policy.failures[0];
    assert_eq!(detail.result_type, ResultType::CertificateHostMismatch);
    assert_eq!(detail.sending_mta_ip.as_deref(), Some("192.0.2.10"));
    assert_eq!(detail.receiving_ip.as_deref(), Some("198.51.100.25"));
    assert_eq!(
        detail.receiving_mx_hostname.as_deref(),
        Some("mx1.example.com")
    );
    assert_eq!(
        detail.receiving_mx_helo.as_deref(),
        Some("smtp.provider.example")
    );
    assert_eq!(
        detail.failure_reason_code.as_deref(),
        Some("X509_V_ERR_HOSTNAME_MISMATCH")
    );
    assert_eq!(detail.failed_session_count, 1);
}

#[test]
fn tlsa_policies_keep_their_records() {
    let success = fixture("tlsa-success");
    assert_eq!(success.policies[0].policy.policy_type, PolicyType::Tlsa);
    assert_eq!(success.policies[0].policy.policy_string.len(), 2);
    assert!(success.policies[0].policy.mx_host.is_empty());
    let invalid = fixture("tlsa-invalid");
    let detail = &invalid.policies[0].failures[0];
    assert_eq!(detail.result_type, ResultType::TlsaInvalid);
    assert_eq!(
        detail.additional_information.as_deref(),
        Some("https://dane.example/why")
    );
}

#[test]
fn no_policy_found_has_its_policy_domain() {
    let found = fixture("no-policy-found");
    assert_eq!(
        found.policies[0].policy.policy_type,
        PolicyType::NoPolicyFound
    );
    assert_eq!(found.policies[0].policy.policy_domain, "plain.example");
    let without = fixture("no-policy-found-without-domain");
    assert_eq!(without.policies[0].policy.policy_domain, "plain.example");
    assert_eq!(
        without.policies[0].failures[0].result_type,
        ResultType::StarttlsNotSupported
    );
}

#[test]
fn several_policies_in_one_datagram_are_each_kept() {
    let datagram = fixture("sts-and-tlsa");
    let types: Vec<_> = datagram
        .policies
        .iter()
        .map(|policy| (policy.policy.policy_type.clone(), policy.failed))
        .collect();
    assert_eq!(types, [(PolicyType::Tlsa, true), (PolicyType::Sts, false)]);
    assert_eq!(
        datagram.policies[0].failures[0].result_type,
        ResultType::DnssecInvalid
    );
}

#[test]
fn every_failure_code_maps_to_its_result_type() {
    let datagram = fixture("every-failure-code");
    let names: Vec<_> = datagram.policies[0]
        .failures
        .iter()
        .map(|detail| detail.result_type.as_str().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "starttls-not-supported",
            "certificate-host-mismatch",
            "certificate-not-trusted",
            "certificate-expired",
            "validation-failure",
            "sts-policy-fetch-error",
            "sts-policy-invalid",
            "sts-webpki-invalid",
            "tlsa-invalid",
            "dnssec-invalid",
            "dane-required",
            // An unknown code is a general failure, its code kept as the reason.
            "validation-failure",
        ]
    );
    assert_eq!(
        datagram.policies[0].failures[11]
            .failure_reason_code
            .as_deref(),
        Some("libtlsrpt failure code 999")
    );
}

#[test]
fn invalid_datagrams_say_what_is_wrong() {
    let cases: [(&[u8], &str); 6] = [
        (b"not json", "not a libtlsrpt datagram"),
        (
            br#"{"dpv":"2","d":"a.example","pr":"","policies":[]}"#,
            "only \"1\"",
        ),
        (br#"{"dpv":"1","d":".","pr":"","policies":[]}"#, "\"d\""),
        (
            br#"{"dpv":"1","d":"a.example","policies":[]}"#,
            "missing field `pr`",
        ),
        (
            br#"{"dpv":"1","d":"a.example","pr":"","policies":[{"policy-type":3,"f":0}]}"#,
            "policies[0].policy-type is 3",
        ),
        (
            br#"{"dpv":"1","d":"a.example","pr":"","policies":[{"policy-type":2}]}"#,
            "missing field `f`",
        ),
    ];
    for (bytes, expected) in cases {
        let error = Datagram::parse(bytes).unwrap_err().to_string();
        assert!(error.contains(expected), "{error:?} lacks {expected:?}");
    }
    let large = vec![b' '; MAX_DATAGRAM_SIZE + 1];
    assert_eq!(
        Datagram::parse(&large),
        Err(DatagramError::TooLarge {
            len: MAX_DATAGRAM_SIZE + 1
        })
    );
}
