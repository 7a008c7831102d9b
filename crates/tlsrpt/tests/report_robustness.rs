//! The report reader against hostile and broken input: it never panics, a bad policy never
//! rejects a report, only a missing identity or non-JSON does, and size caps hold.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use mta_sts_tlsrpt::report::{
    DEFAULT_MAX_DECOMPRESSED, MAX_WARNINGS, Report, ReportError, ReportWarningKind, decode,
    decompress,
};
use serde_json::{Value, json};

const MINIMAL_REPORT: &str = r#"{"organization-name":"Example Inc.","report-id":"r-1",
  "date-range":{"start-datetime":"2024-01-09T00:00:00Z","end-datetime":"2024-01-09T23:59:59Z"},
  "contact-info":"tls@example.net",
  "policies":[{"policy":{"policy-type":"sts","policy-domain":"example.com",
      "policy-string":["version: STSv1","mode: enforce","mx: mx.example.com","max_age: 86400"],
      "mx-host":["mx.example.com"]},
    "summary":{"total-successful-session-count":5,"total-failure-session-count":1},
    "failure-details":[{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.1",
      "receiving-mx-hostname":"mx.example.com","receiving-ip":"198.51.100.1",
      "failed-session-count":1}]}]}"#;

fn minimal_report() -> Value {
    serde_json::from_str(MINIMAL_REPORT).expect("minimal report is JSON")
}

fn read_value(value: &Value) -> Result<mta_sts_tlsrpt::report::ReadReport, ReportError> {
    Report::from_json(value.to_string().as_bytes())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("writing to a Vec");
    encoder.finish().expect("finishing a Vec")
}

/// A small deterministic generator, so that a failure repeats.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(bound.max(1)).unwrap_or(1)).unwrap_or(0)
    }
}

#[test]
fn minimal_report_reads_cleanly() {
    let read = Report::from_json(MINIMAL_REPORT.as_bytes()).expect("minimal report reads");
    assert_eq!(read.warnings, []);
    assert_eq!(read.report.policies.len(), 1);
}

#[test]
fn random_bytes_never_panic() {
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..2000 {
        let length = random.below(300);
        let bytes: Vec<u8> = (0..length)
            .map(|_| u8::try_from(random.next() & 0xff).unwrap_or(0))
            .collect();
        let _ = Report::from_json(&bytes);
        let _ = decode(&bytes, DEFAULT_MAX_DECOMPRESSED);
    }
}

#[test]
fn mutated_reports_never_panic() {
    const JSON_BYTES: &[u8] = b"{}[]\",:0123456789-+.eE tfnul\\\x00\xff";
    let original = MINIMAL_REPORT.as_bytes();
    let mut random = XorShift(42);
    for _ in 0..3000 {
        let mut bytes = original.to_vec();
        for _ in 0..=random.below(4) {
            let position = random.below(bytes.len());
            let replacement = JSON_BYTES
                .get(random.below(JSON_BYTES.len()))
                .copied()
                .unwrap_or(b' ');
            match random.below(3) {
                0 => {
                    if let Some(byte) = bytes.get_mut(position) {
                        *byte = replacement;
                    }
                }
                1 if position < bytes.len() => {
                    bytes.remove(position);
                }
                _ => bytes.insert(position, replacement),
            }
        }
        let _ = Report::from_json(&bytes);
        let _ = decode(&gzip(&bytes), DEFAULT_MAX_DECOMPRESSED);
    }
}

/// Every value shape a sender could put where RFC 8460 wants something else.
fn hostile_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(-1),
        json!(1.5),
        json!(1e308),
        serde_json::from_str("18446744073709551616").expect("big integer is JSON"),
        json!(""),
        json!("12"),
        json!("-3"),
        json!("x".repeat(10_000)),
        json!([]),
        json!([null, 1, "a", [], {}]),
        json!({}),
        json!({"nested": {"deeper": [1, 2, 3]}}),
    ]
}

#[test]
fn any_value_anywhere_in_a_policy_never_rejects_the_report() {
    let pointers = [
        "/policies",
        "/policies/0",
        "/policies/0/policy",
        "/policies/0/policy/policy-type",
        "/policies/0/policy/policy-string",
        "/policies/0/policy/policy-string/0",
        "/policies/0/policy/policy-domain",
        "/policies/0/policy/mx-host",
        "/policies/0/policy/mx-host/0",
        "/policies/0/summary",
        "/policies/0/summary/total-successful-session-count",
        "/policies/0/summary/total-failure-session-count",
        "/policies/0/failure-details",
        "/policies/0/failure-details/0",
        "/policies/0/failure-details/0/result-type",
        "/policies/0/failure-details/0/sending-mta-ip",
        "/policies/0/failure-details/0/receiving-mx-hostname",
        "/policies/0/failure-details/0/receiving-ip",
        "/policies/0/failure-details/0/failed-session-count",
        "/contact-info",
    ];
    for pointer in pointers {
        for hostile in hostile_values() {
            let mut report = minimal_report();
            *report.pointer_mut(pointer).expect("pointer exists") = hostile.clone();
            let read = read_value(&report)
                .unwrap_or_else(|error| panic!("{pointer} = {hostile}: rejected: {error}"));
            assert_eq!(read.report.report_id, "r-1");
        }
    }
}

#[test]
fn any_wrong_value_in_the_identity_is_an_error_naming_the_field() {
    let fields = [
        ("/organization-name", "organization-name"),
        ("/report-id", "report-id"),
        ("/date-range", "date-range"),
        ("/date-range/start-datetime", "date-range.start-datetime"),
        ("/date-range/end-datetime", "date-range.end-datetime"),
    ];
    for (pointer, path) in fields {
        for hostile in hostile_values() {
            let is_a_name = !path.starts_with("date-range");
            if is_a_name && hostile.as_str().is_some_and(|text| !text.trim().is_empty()) {
                continue;
            }
            let mut report = minimal_report();
            *report.pointer_mut(pointer).expect("pointer exists") = hostile.clone();
            let error = read_value(&report)
                .err()
                .unwrap_or_else(|| panic!("{pointer} = {hostile}: accepted"));
            assert!(
                error.to_string().contains(path),
                "{pointer} = {hostile}: {error}"
            );
        }
    }
}

#[test]
fn missing_identity_fields_are_errors_with_their_path() {
    for (pointer_parent, key, path) in [
        ("", "organization-name", "organization-name"),
        ("", "report-id", "report-id"),
        ("", "date-range", "date-range"),
        ("/date-range", "end-datetime", "date-range.end-datetime"),
    ] {
        let mut report = minimal_report();
        report
            .pointer_mut(pointer_parent)
            .and_then(Value::as_object_mut)
            .expect("parent is an object")
            .remove(key);
        assert_eq!(
            read_value(&report),
            Err(ReportError::MissingField { path }),
            "{path}"
        );
    }
}

#[test]
fn empty_report_id_is_an_error() {
    let mut report = minimal_report();
    report["report-id"] = json!("  ");
    assert_eq!(
        read_value(&report),
        Err(ReportError::EmptyField { path: "report-id" })
    );
}

#[test]
fn invalid_date_is_an_error_echoing_a_short_excerpt() {
    let mut report = minimal_report();
    report["date-range"]["start-datetime"] = json!(format!("yesterday{}", "!".repeat(1000)));
    let error = read_value(&report).expect_err("an invalid date is refused");
    let ReportError::InvalidDate { path, value } = &error else {
        panic!("unexpected error {error:?}");
    };
    assert_eq!(*path, "date-range.start-datetime");
    assert_eq!(value.chars().count(), 65);
    assert!(error.to_string().len() < 200, "{error}");
}

#[test]
fn non_json_is_an_error_with_its_position() {
    let error =
        Report::from_json(b"{\n  \"organization-name\": oops }").expect_err("not JSON is refused");
    let ReportError::NotJson { line, column, .. } = error else {
        panic!("unexpected error {error:?}");
    };
    assert_eq!((line, column), (2, 24));
    assert!(matches!(
        Report::from_json(b""),
        Err(ReportError::NotJson { .. })
    ));
    assert!(matches!(
        Report::from_json(b"{} trailing"),
        Err(ReportError::NotJson { .. })
    ));
}

#[test]
fn a_document_that_is_not_an_object_is_an_error() {
    assert_eq!(
        Report::from_json(format!("[{MINIMAL_REPORT}]").as_bytes()),
        Err(ReportError::NotAnObject { found: "an array" })
    );
    assert_eq!(
        Report::from_json(b"null"),
        Err(ReportError::NotAnObject { found: "null" })
    );
}

#[test]
fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    let depth = 100_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert!(matches!(
        Report::from_json(nested.as_bytes()),
        Err(ReportError::NotJson { .. })
    ));
    let inside_a_policy = MINIMAL_REPORT.replacen(
        r#""mx-host":["mx.example.com"]"#,
        &format!(r#""mx-host":{}{}"#, "[".repeat(depth), "]".repeat(depth)),
        1,
    );
    assert!(matches!(
        Report::from_json(inside_a_policy.as_bytes()),
        Err(ReportError::NotJson { .. })
    ));
}

#[test]
fn counts_that_are_not_non_negative_integers_read_as_zero() {
    for (count, value) in [
        ("-5", "-5"),
        ("1.5", "1.5"),
        ("18446744073709551616", "1.8446744073709552e+19"),
        ("1e300", "1e+300"),
        (r#""twelve""#, "twelve"),
        (r#""+12""#, "+12"),
        (r#""99999999999999999999999""#, "99999999999999999999999"),
    ] {
        let json = MINIMAL_REPORT.replacen(
            r#""total-successful-session-count":5"#,
            &format!(r#""total-successful-session-count":{count}"#),
            1,
        );
        let read =
            Report::from_json(json.as_bytes()).unwrap_or_else(|error| panic!("{count}: {error}"));
        let summary = read.report.policies.first().expect("one policy").summary;
        assert_eq!(summary.total_successful_session_count, 0, "{count}");
        assert_eq!(summary.total_failure_session_count, 1, "{count}");
        let kinds: Vec<_> = read.warnings.iter().map(|warning| &warning.kind).collect();
        assert_eq!(
            kinds,
            [&ReportWarningKind::InvalidCount {
                value: value.to_owned()
            }],
            "{count}"
        );
    }
}

#[test]
fn largest_count_reads_exactly() {
    let json = MINIMAL_REPORT.replacen(
        r#""total-successful-session-count":5"#,
        r#""total-successful-session-count":18446744073709551615"#,
        1,
    );
    let read = Report::from_json(json.as_bytes()).expect("u64::MAX reads");
    let summary = read.report.policies.first().expect("one policy").summary;
    assert_eq!(summary.total_successful_session_count, u64::MAX);
    assert_eq!(read.warnings, []);
}

#[test]
fn number_beyond_double_range_is_not_i_json() {
    let json = MINIMAL_REPORT.replacen(
        r#""total-successful-session-count":5"#,
        r#""total-successful-session-count":1e400"#,
        1,
    );
    assert!(matches!(
        Report::from_json(json.as_bytes()),
        Err(ReportError::NotJson { .. })
    ));
}

#[test]
fn missing_summary_reads_as_zero_counts_with_one_warning() {
    let mut report = minimal_report();
    report["policies"][0]
        .as_object_mut()
        .expect("policy entry")
        .remove("summary");
    let read = read_value(&report).expect("reads");
    assert_eq!(
        read.warnings
            .iter()
            .map(|warning| (warning.path.as_str(), &warning.kind))
            .collect::<Vec<_>>(),
        [("policies[0].summary", &ReportWarningKind::MissingField)]
    );
    let summary = read.report.policies.first().expect("one policy").summary;
    assert_eq!(summary.total_successful_session_count, 0);
    assert_eq!(summary.total_failure_session_count, 0);
}

#[test]
fn missing_policies_reads_as_none_with_a_warning() {
    let mut report = minimal_report();
    report.as_object_mut().expect("object").remove("policies");
    let read = read_value(&report).expect("reads");
    assert!(read.report.policies.is_empty());
    assert_eq!(read.warnings.len(), 1);
    assert_eq!(
        read.warnings.first().map(|w| w.path.as_str()),
        Some("policies")
    );
}

#[test]
fn policy_type_of_the_wrong_type_is_kept_empty_with_its_path() {
    let mut report = minimal_report();
    report["policies"][0]["policy"]["policy-type"] = json!(7);
    let read = read_value(&report).expect("reads");
    // The policy's sessions still count; its type is unknown.
    assert_eq!(read.report.policies.len(), 1);
    assert_eq!(read.report.policies[0].policy.policy_type.as_str(), "");
    let warning = read.warnings.first().expect("one warning");
    assert_eq!(warning.path, "policies[0].policy.policy-type");
    assert_eq!(
        warning.kind,
        ReportWarningKind::WrongType {
            expected: "a string",
            found: "a number"
        }
    );
}

#[test]
fn megabyte_report_reads_with_capped_warnings() {
    let bad_policy = r#"{"policy":{"policy-type":"sts"},"summary":{}},"#;
    let count = 1024 * 1024 / bad_policy.len();
    let mut json = String::from(
        r#"{"organization-name":"Flood","report-id":"f","date-range":{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-01T23:59:59Z"},"contact-info":"a@b.example","policies":["#,
    );
    json.push_str(&bad_policy.repeat(count));
    json.push_str(r#"{"policy":{"policy-type":"sts","policy-domain":"ok.example"}}]}"#);
    assert!(json.len() >= 1024 * 1024);
    let read = Report::from_json(json.as_bytes()).expect("a large report reads");
    // Policies without a domain are kept (their sessions count), each with three warnings:
    // no domain, and no summary counts; the good one gave one (no summary).
    assert_eq!(read.report.policies.len(), count + 1);
    assert_eq!(read.warnings.len(), MAX_WARNINGS + 1);
    let last = read.warnings.last().expect("warnings");
    assert_eq!(last.path, "$");
    assert_eq!(
        last.kind,
        ReportWarningKind::TooManyWarnings {
            omitted: 3 * count + 1 - MAX_WARNINGS
        }
    );
}

#[test]
fn ten_megabyte_string_is_kept_but_not_echoed() {
    let huge = "a".repeat(10 * 1024 * 1024);
    let mut report = minimal_report();
    report["policies"][0]["policy"]["policy-type"] = json!(huge);
    let read = read_value(&report).expect("reads");
    let policy = read.report.policies.first().expect("one policy");
    assert_eq!(policy.policy.policy_type.as_str().len(), huge.len());
    assert!(read.warnings.iter().all(|w| w.to_string().len() < 200));
}

#[test]
fn byte_order_mark_is_skipped_with_a_warning() {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(MINIMAL_REPORT.as_bytes());
    let read = Report::from_json(&bytes).expect("reads");
    assert_eq!(
        read.warnings
            .iter()
            .map(|warning| (warning.path.as_str(), &warning.kind))
            .collect::<Vec<_>>(),
        [("$", &ReportWarningKind::ByteOrderMark)]
    );
}

#[test]
fn reversed_date_range_is_kept_with_a_warning() {
    let mut report = minimal_report();
    report["date-range"]["start-datetime"] = json!("2024-01-10T00:00:00Z");
    let read = read_value(&report).expect("reads");
    assert_eq!(
        read.warnings
            .iter()
            .map(|warning| (warning.path.as_str(), &warning.kind))
            .collect::<Vec<_>>(),
        [("date-range", &ReportWarningKind::DateRangeReversed)]
    );
}

#[test]
fn dates_with_offsets_are_converted_to_utc() {
    let mut report = minimal_report();
    report["date-range"]["start-datetime"] = json!("2024-01-09T01:00:00+01:00");
    let read = read_value(&report).expect("reads");
    assert_eq!(read.warnings, []);
    assert_eq!(
        read.report.date_range.start.to_string(),
        "2024-01-09T00:00:00Z"
    );
    assert_eq!(
        read.report.date_range.start.original(),
        "2024-01-09T01:00:00+01:00"
    );
}

#[test]
fn writer_escapes_what_json_requires() {
    let mut report = Report::from_json(MINIMAL_REPORT.as_bytes())
        .expect("reads")
        .report;
    report.organization_name = "Quote \" backslash \\ newline \n tab \t bell \u{7} é 😀".to_owned();
    let written = report.to_json();
    assert!(written.contains(r#"Quote \" backslash \\ newline \n tab \t bell \u0007 é 😀"#));
    let again = Report::from_json(written.as_bytes()).expect("rewritten report reads");
    assert_eq!(again.report, report);
    assert_eq!(again.warnings, []);
}

#[test]
fn gzip_is_sniffed_whatever_the_declared_type() {
    let plain = decode(MINIMAL_REPORT.as_bytes(), DEFAULT_MAX_DECOMPRESSED).expect("plain");
    let gzipped =
        decode(&gzip(MINIMAL_REPORT.as_bytes()), DEFAULT_MAX_DECOMPRESSED).expect("gzipped");
    assert_eq!(plain, gzipped);
}

#[test]
fn concatenated_gzip_members_decompress_as_one_body() {
    let (head, tail) = MINIMAL_REPORT.split_at(100);
    let mut body = gzip(head.as_bytes());
    body.extend(gzip(tail.as_bytes()));
    let json = decompress(&body, DEFAULT_MAX_DECOMPRESSED).expect("decompresses");
    assert_eq!(&*json, MINIMAL_REPORT.as_bytes());
}

#[test]
fn gzip_bomb_stops_at_the_limit_with_a_distinct_error() {
    let bomb = gzip(&vec![b' '; 64 * 1024 * 1024]);
    assert!(bomb.len() < 1024 * 1024);
    assert_eq!(
        decode(&bomb, DEFAULT_MAX_DECOMPRESSED),
        Err(ReportError::TooLarge {
            limit: DEFAULT_MAX_DECOMPRESSED
        })
    );
}

#[test]
fn decompressed_size_exactly_at_the_limit_is_accepted() {
    let limit = MINIMAL_REPORT.len();
    let body = gzip(MINIMAL_REPORT.as_bytes());
    assert!(decode(&body, limit).is_ok());
    assert_eq!(
        decode(&body, limit - 1),
        Err(ReportError::TooLarge { limit: limit - 1 })
    );
}

#[test]
fn plain_json_over_the_limit_is_too_large() {
    let limit = MINIMAL_REPORT.len() - 1;
    assert_eq!(
        decode(MINIMAL_REPORT.as_bytes(), limit),
        Err(ReportError::TooLarge { limit })
    );
}

#[test]
fn truncated_or_corrupt_gzip_is_a_gzip_error() {
    let body = gzip(MINIMAL_REPORT.as_bytes());
    let truncated = body.get(..body.len() / 2).expect("half");
    assert!(matches!(
        decode(truncated, DEFAULT_MAX_DECOMPRESSED),
        Err(ReportError::Gzip { .. })
    ));
    let mut corrupt_checksum = body.clone();
    let crc_position = corrupt_checksum.len() - 8;
    if let Some(byte) = corrupt_checksum.get_mut(crc_position) {
        *byte ^= 0xff;
    }
    assert!(matches!(
        decode(&corrupt_checksum, DEFAULT_MAX_DECOMPRESSED),
        Err(ReportError::Gzip { .. })
    ));
    assert!(matches!(
        decode(b"\x1f\x8b", DEFAULT_MAX_DECOMPRESSED),
        Err(ReportError::Gzip { .. })
    ));
}

#[test]
fn nul_characters_are_replaced_with_a_warning_at_their_path() {
    let mut report = minimal_report();
    report["organization-name"] = json!("Example\u{0}Inc.");
    report["policies"][0]["policy"]["policy-domain"] = json!("example.com\u{0}");
    report["policies"][0]["failure-details"][0]["receiving-mx-hostname"] = json!("\u{0}mx");
    let read = read_value(&report).expect("a NUL does not reject the report");
    assert_eq!(read.report.organization_name, "Example\u{FFFD}Inc.");
    assert_eq!(
        read.report.policies[0].policy.policy_domain,
        "example.com\u{FFFD}"
    );
    assert_eq!(
        read.report.policies[0].failure_details[0]
            .receiving_mx_hostname
            .as_deref(),
        Some("\u{FFFD}mx")
    );
    assert!(!read.report.to_json().contains("\\u0000"));
    let nul_paths: Vec<&str> = read
        .warnings
        .iter()
        .filter(|w| w.kind == ReportWarningKind::NulCharacter)
        .map(|w| w.path.as_str())
        .collect();
    assert_eq!(
        nul_paths,
        [
            "organization-name",
            "policies[0].policy.policy-domain",
            "policies[0].failure-details[0].receiving-mx-hostname"
        ]
    );
}

#[test]
fn ten_megabytes_of_objects_are_refused_before_the_tree_is_built() {
    let object = r#"{"a":0},"#;
    let mut json = String::from(
        r#"{"organization-name":"Flood","report-id":"f","date-range":{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-01T23:59:59Z"},"policies":["#,
    );
    json.push_str(&object.repeat((10 * 1024 * 1024 - 1024) / object.len()));
    json.push_str("{}]}");
    let error = Report::from_json(json.as_bytes()).expect_err("refused");
    assert_eq!(
        error,
        ReportError::TooComplex {
            limit: mta_sts_tlsrpt::report::MAX_TREE_BYTES
        }
    );
    assert!(
        error.to_string().contains("too many JSON values"),
        "{error}"
    );
    // measure() finds the same without decompressing into memory.
    let cost = mta_sts_tlsrpt::report::measure(&gzip(json.as_bytes()), DEFAULT_MAX_DECOMPRESSED)
        .expect("measured");
    assert_eq!(cost.json_len, json.len());
    assert!(cost.tree_bytes > mta_sts_tlsrpt::report::MAX_TREE_BYTES);
    assert_eq!(cost.reading_bytes(), 2 * json.len());
}

#[test]
fn a_whitespace_bomb_costs_its_length_only() {
    let mut json = MINIMAL_REPORT.to_owned();
    json.push_str(&" ".repeat(DEFAULT_MAX_DECOMPRESSED - json.len()));
    let cost = mta_sts_tlsrpt::report::measure(&gzip(json.as_bytes()), DEFAULT_MAX_DECOMPRESSED)
        .expect("measured");
    assert_eq!(cost.json_len, DEFAULT_MAX_DECOMPRESSED);
    assert!(
        cost.tree_bytes < DEFAULT_MAX_DECOMPRESSED + 64 * 1024,
        "{cost:?}"
    );
    let over = format!("{json} ");
    assert_eq!(
        mta_sts_tlsrpt::report::measure(&gzip(over.as_bytes()), DEFAULT_MAX_DECOMPRESSED),
        Err(ReportError::TooLarge {
            limit: DEFAULT_MAX_DECOMPRESSED
        })
    );
}
