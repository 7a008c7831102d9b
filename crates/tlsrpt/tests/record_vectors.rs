//! Verdict vectors for the `_smtp._tls` record (RFC 8460 §3 ABNF and prose).

use mta_sts_tlsrpt::{ReportUri, TlsRptRecord};

const RECORDS: &[(&str, bool)] = &[
    ("v=TLSRPTv1;rua=mailto:reports@example.com", true),
    (
        "v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt",
        true,
    ),
    (
        "v=TLSRPTv1; rua=mailto:a@example.com,https://r.example.com/x",
        true,
    ),
    (
        "v=TLSRPTv1; rua=mailto:a@example.com , mailto:b@example.com",
        true,
    ),
    ("v=TLSRPTv1; rua=mailto:a@example.com;", true),
    ("v=TLSRPTv1 ; rua=mailto:a@example.com ; ", true),
    ("v=TLSRPTv1; ext=1; rua=mailto:a@example.com", true),
    ("v=TLSRPTv1; rua=mailto:a@example.com; ext=1", true),
    ("v=TLSRPTv1; rua=MAILTO:a@example.com", true),
    ("v=TLSRPTv1; rua=mailto:a%2Bb@example.com", true),
    (
        "v=TLSRPTv1; rua=mailto:tls@example.com?subject=TLS%20report",
        true,
    ),
    (
        "v=TLSRPTv1; rua=https://user@r.example.com:8443/p?q=1#f",
        true,
    ),
    (
        "v=TLSRPTv1; rua=mailto:a@example.com,http://r.example.com/",
        true,
    ),
    ("v=TLSRPTv1", false),
    ("v=TLSRPTv1;", false),
    ("v=TLSRPTv1; rua=", false),
    ("v=TLSRPTv1; rua=http://r.example.com/", false),
    ("v=TLSRPTv1; rua=ftp://r.example.com/", false),
    ("v=TLSRPTv1; rua=reports@example.com", false),
    ("v=TLSRPTv1; rua=mailto:", false),
    ("v=TLSRPTv1; rua=mailto:@example.com", false),
    ("v=TLSRPTv1; rua=mailto:a@example.com!10m", false),
    (
        "v=TLSRPTv1; rua=mailto:a@example.com;mailto:b@example.com",
        false,
    ),
    ("v=TLSRPTv1; rua=mailto:a@example.com,", false),
    ("v=TLSRPTv1; rua=mailto:a@exa mple.com", false),
    ("v=TLSRPTv1; rua=mailto:a@example.com%zz", false),
    ("v=TLSRPTv1; rua=https://", false),
    ("v=TLSRPTv1 rua=mailto:a@example.com", false),
    ("v=TLSRPTv1; rua=mailto:a@example.com ", false),
    ("v=TLSRPTv1;; rua=mailto:a@example.com", false),
    ("v=TLSRPTv2; rua=mailto:a@example.com", false),
    ("v=tlsrptv1; rua=mailto:a@example.com", false),
    (" v=TLSRPTv1; rua=mailto:a@example.com", false),
    ("rua=mailto:a@example.com; v=TLSRPTv1", false),
    ("v=TLSRPTv1; rua=mailto:a@exämple.com", false),
    ("v=TLSRPTv1; rua=mailto:a@example.com; ext=a b", false),
];

#[test]
fn record_verdicts() {
    for (record, valid) in RECORDS {
        let lint = TlsRptRecord::lint(record.as_bytes());
        assert_eq!(
            lint.is_valid(),
            *valid,
            "{record:?}: {:?}",
            lint.diagnostics
        );
        assert_eq!(
            TlsRptRecord::parse(record.as_bytes()).is_ok(),
            *valid,
            "{record:?}"
        );
    }
}

#[test]
fn unsupported_uris_beside_usable_ones_are_dropped() {
    let r =
        TlsRptRecord::parse(b"v=TLSRPTv1; rua=mailto:a@example.com,http://r.example.com/").unwrap();
    assert_eq!(r.rua, [ReportUri::Mailto("mailto:a@example.com".into())]);
}

#[test]
fn rrset_rule() {
    let valid = |set: &[&str]| TlsRptRecord::lint_rrset(set).is_valid();
    assert!(valid(&[
        "v=spf1 -all",
        "v=TLSRPTv1; rua=mailto:a@example.com"
    ]));
    assert!(!valid(&[
        "v=TLSRPTv1; rua=mailto:a@example.com",
        "v=TLSRPTv1; rua=mailto:b@example.com"
    ]));
    assert!(!valid(&[]));
}
