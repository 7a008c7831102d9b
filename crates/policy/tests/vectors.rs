//! Verdict vectors: records, policies and MX matches with a clear answer in RFC 8461 (its ABNF
//! and prose), in the shapes other implementations' test suites use.

use mta_sts_policy::{Mode, Policy, Severity, StsRecord, normalize_host};

/// `(record, valid)`: RFC 8461 §3.1 ABNF.
const STS_RECORDS: &[(&str, bool)] = &[
    ("v=STSv1; id=20160831085700Z;", true),
    ("v=STSv1; id=20190429T010101", true),
    ("v=STSv1;id=a", true),
    ("v=STSv1;id=a;", true),
    ("v=STSv1; id=a; ", true),
    ("v=STSv1 ; id=a", true),
    ("v=STSv1;\tid=a\t;\t", true),
    ("v=STSv1; id=a; ext=b", true),
    ("v=STSv1; ext=b; id=a", true),
    (
        "v=STSv1; id=a ; ext.x-y_z=!\"#$%&'()*+,-./0123456789:<>?@[\\]^_`{|}~",
        true,
    ),
    ("v=STSv1; id=01234567890123456789012345678901", true),
    ("v=STSv1; id=012345678901234567890123456789012", false),
    ("v=STSv1", false),
    ("v=STSv1;", false),
    ("v=STSv1; id=", false),
    ("v=STSv1; id=a b", false),
    ("v=STSv1; id=a-b", false),
    ("v=STSv1; id=a_b", false),
    ("v=STSv1; id=a.b", false),
    ("v=STSv1 id=a", false),
    (" v=STSv1; id=a", false),
    ("v=STSv1; id=a;;", false),
    ("v=STSv1;; id=a", false),
    ("v=STSv1; id=a ", false),
    ("v=STSv2; id=a", false),
    ("v=STSv10; id=a", false),
    ("V=STSv1; id=a", false),
    ("v=stsv1; id=a", false),
    ("id=a; v=STSv1", false),
    ("v = STSv1; id=a", false),
    ("v=STSv1; id = a", false),
    ("v=STSv1; ID=a", false),
    ("v=STSv1; id=a; ext", false),
    ("v=STSv1; id=a; =b", false),
    ("v=STSv1; id=a; ext=", false),
    ("v=STSv1; id=a; ext=a=b", false),
    ("v=STSv1; id=a; ext=a b", false),
    ("v=STSv1; id=a; -ext=b", false),
    ("v=STSv1; id=a\0", false),
    ("v=STSv1; id=a\n", false),
    ("v=STSv1; id=é", false),
    ("", false),
];

#[test]
fn sts_record_verdicts() {
    for (record, valid) in STS_RECORDS {
        let lint = StsRecord::lint(record.as_bytes());
        assert_eq!(
            lint.is_valid(),
            *valid,
            "{record:?}: {:?}",
            lint.diagnostics
        );
        assert_eq!(
            StsRecord::parse(record.as_bytes()).is_ok(),
            *valid,
            "{record:?}"
        );
    }
}

#[test]
fn sts_rrset_verdicts() {
    let valid = |set: &[&str]| StsRecord::lint_rrset(set).is_valid();
    assert!(valid(&["v=STSv1; id=1"]));
    assert!(valid(&[
        "v=spf1 -all",
        "v=STSv1; id=1",
        "google-site-verification=x"
    ]));
    assert!(!valid(&["v=STSv1; id=1", "v=STSv1; id=2"]));
    assert!(
        !valid(&["v=STSv1; id=1", "v=STSv1; bogus"]),
        "an invalid v=STSv1 record still counts"
    );
    assert!(!valid(&[]));
    assert!(!valid(&["v=spf1 -all"]));
    assert!(
        valid(&["v=STSv10; id=1", "v=STSv1; id=2"]),
        "v=STSv10 is not an STSv1 record"
    );
}

const ENFORCE: &str = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 604800\n";

/// `(policy, valid)`: RFC 8461 §3.2 ABNF and rules.
fn policy_vectors() -> Vec<(String, bool)> {
    let mut v: Vec<(String, bool)> = [
        (ENFORCE, true),
        ("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 604800\r\n", true),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 604800", true),
        ("version: STSv1\nmode: testing\nmx: mail.example.com\nmx: *.example.net\nmax_age: 86400\n", true),
        ("version: STSv1\nmode: none\nmax_age: 86400\n", true),
        ("version: STSv1\nmode: none\nmx: mail.example.com\nmax_age: 0\n", true),
        ("mode: enforce\nmx: mail.example.com\nmax_age: 604800\nversion: STSv1\n", true),
        ("version:STSv1\nmode:enforce\nmx:mail.example.com\nmax_age:604800\n", true),
        ("version: \tSTSv1 \nmode:  enforce\t\nmx: mail.example.com  \nmax_age: 604800 \n", true),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 604800\nfoo: bar baz\n", true),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 604800\nx-note: ünïcödé value\n", true),
        ("version: STSv1\nmode: enforce\nmode: none\nmx: mail.example.com\nmax_age: 604800\n", true),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 604800\nmax_age: +1\n", true),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 0604800\n", true),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 31557600\n", true),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 31557601\n", false),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 12345678901\n", false),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: +604800\n", false),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: -1\n", false),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 1.5\n", false),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 1w\n", false),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age:\n", false),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com\n", false),
        ("version: STSv1\nmx: mail.example.com\nmax_age: 604800\n", false),
        ("mode: enforce\nmx: mail.example.com\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: enforce\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: testing\nmax_age: 604800\n", false),
        ("version: STSv2\nmode: enforce\nmx: mail.example.com\nmax_age: 604800\n", false),
        ("version: stsv1\nmode: enforce\nmx: mail.example.com\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: Enforce\nmx: mail.example.com\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: enforced\nmx: mail.example.com\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: reject\nmx: mail.example.com\nmax_age: 604800\n", false),
        ("version: STSv1\nMode: enforce\nmx: mail.example.com\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: enforce\nMX: mail.example.com\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com\nmax-age: 604800\n", false),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com:25\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com.\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: enforce\nmx: 192.0.2.1\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: enforce\nmx: [192.0.2.1]\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: enforce\nmx: mail*.example.com\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: enforce\nmx: *.*.example.com\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: enforce\nmx: mail.*.example.com\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: enforce\nmx: *\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: enforce\nmx: _mail.example.com\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com mail2.example.com\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com,mail2.example.com\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: enforce\nmx:\nmax_age: 604800\n", false),
        ("version: STSv1\rmode: enforce\rmx: mail.example.com\rmax_age: 604800\r", false),
        ("\u{feff}version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 604800\n", false),
        ("<html><body>Not Found</body></html>\n", false),
        (" mode: enforce\nversion: STSv1\nmx: mail.example.com\nmax_age: 604800\n", false),
        ("version: STSv1\nmode : enforce\nmx: mail.example.com\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: enforce\n\tmx: mail.example.com\nmax_age: 604800\n", false),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 604800\n x-note: y\n", true),
        ("", false),
    ]
    .iter()
    .map(|(p, v)| (p.to_string(), *v))
    .collect();
    v.push((format!("{ENFORCE}{}", "x: y\n".repeat(13_200)), false));
    v
}

#[test]
fn policy_verdicts() {
    for (body, valid) in policy_vectors() {
        let lint = Policy::lint(body.as_bytes());
        let shown: String = body.chars().take(120).collect();
        assert_eq!(lint.is_valid(), valid, "{shown:?}: {:?}", lint.diagnostics);
        // Every error is reported as an error, and a valid policy has none.
        assert_eq!(
            lint.diagnostics
                .iter()
                .any(|d| d.severity == Severity::Error),
            !valid,
            "{shown:?}"
        );
    }
}

#[test]
fn policy_with_invalid_utf8_is_invalid() {
    let body = b"version: STSv1\nmode: enforce\nmx: mail.\xffexample.com\nmax_age: 604800\n";
    assert!(!Policy::lint(body).is_valid());
}

#[test]
fn duplicates_keep_the_first_value() {
    let p = Policy::parse(b"version: STSv1\nmode: testing\nmode: enforce\nmx: a.example.com\nmax_age: 604800\nmax_age: 1\n").unwrap();
    assert_eq!((p.mode, p.max_age), (Mode::Testing, 604800));
}

/// `(pattern, host, matches)`: RFC 8461 §4.1.
const MATCHES: &[(&str, &str, bool)] = &[
    ("mail.example.com", "mail.example.com", true),
    ("mail.example.com", "MAIL.EXAMPLE.COM", true),
    ("mail.example.com", "mail.example.com.", true),
    ("MAIL.example.com", "mail.example.com", true),
    ("mail.example.com", "mail2.example.com", false),
    ("mail.example.com", "example.com", false),
    ("mail.example.com", "a.mail.example.com", false),
    ("*.example.com", "mail.example.com", true),
    ("*.example.com", "MX1.Example.Com.", true),
    ("*.example.com", "example.com", false),
    ("*.example.com", "foo.bar.example.com", false),
    ("*.example.com", "mail.example.net", false),
    ("*.example.com", "mailexample.com", false),
    ("*.example.com", "mail.example.com.evil.net", false),
    ("*.mail.example.com", "mx.mail.example.com", true),
    ("*.mail.example.com", "mail.example.com", false),
    ("mail.xn--bcher-kva.example", "mail.bücher.example", true),
    ("*.xn--bcher-kva.example", "mx.BÜCHER.example", true),
    ("*.bücher.example", "mx.xn--bcher-kva.example", true),
];

#[test]
fn mx_match_verdicts() {
    for (pattern, host, expected) in MATCHES {
        let body = format!("version: STSv1\nmode: enforce\nmx: {pattern}\nmax_age: 604800\n");
        let policy = Policy::parse(body.as_bytes()).unwrap();
        assert_eq!(
            policy.matching_mx(host).is_some(),
            *expected,
            "{pattern} vs {host}"
        );
    }
}

#[test]
fn host_normalization() {
    assert_eq!(normalize_host("MX.Example.COM.").unwrap(), "mx.example.com");
    assert_eq!(
        normalize_host("bücher.example").unwrap(),
        "xn--bcher-kva.example"
    );
    assert!(normalize_host("").is_err());
    assert!(normalize_host(".").is_err());
}
