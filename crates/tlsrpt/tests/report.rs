//! The report reader against the project's fixtures, each modelled on what a real sender sends
//! (see `fixtures/reports/README.md`): exact counts and exact warnings.

use mta_sts_tlsrpt::report::{
    DEFAULT_MAX_DECOMPRESSED, PolicyType, ReadReport, Report, ReportWarningKind, ResultType,
    SkipReason, decode,
};

fn fixture_bytes(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/reports/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn read_fixture(name: &str) -> ReadReport {
    Report::from_json(&fixture_bytes(name)).unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// The warnings as (path, kind) pairs, for exact comparison.
fn warnings(read: &ReadReport) -> Vec<(&str, ReportWarningKind)> {
    read.warnings
        .iter()
        .map(|warning| (warning.path.as_str(), warning.kind.clone()))
        .collect()
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| (*value).to_owned()).collect()
}

const ALL_JSON_FIXTURES: [&str; 12] = [
    "google-sts-enforce.json",
    "google-sts-testing-failures.json",
    "google-no-policy-found.json",
    "rfc8460-appendix-b.json",
    "microsoft-sts-tlsa.json",
    "microsoft-date-without-zone.json",
    "microsoft-fetch-error-no-addresses.json",
    "mailru-fetch-errors.json",
    "no-contact.json",
    "counts-as-strings.json",
    "malformed-policies.json",
    "dane-tlsa-records.json",
];

#[test]
fn google_sts_enforce_reads_without_warnings() {
    let read = read_fixture("google-sts-enforce.json");
    assert_eq!(warnings(&read), []);
    let report = &read.report;
    assert_eq!(report.organization_name, "Google Inc.");
    assert_eq!(report.report_id, "2025-05-22T00:00:00Z_example.org");
    assert_eq!(
        report.contact_info.as_deref(),
        Some("smtp-tls-reporting@google.com")
    );
    assert_eq!(report.date_range.start.unix_seconds(), 1_747_872_000);
    assert_eq!(report.date_range.end.unix_seconds(), 1_747_958_399);
    let [policy] = report.policies.as_slice() else {
        panic!("one policy expected: {:?}", report.policies);
    };
    assert_eq!(policy.policy.policy_type, PolicyType::Sts);
    assert_eq!(policy.policy.policy_domain, "example.org");
    assert_eq!(
        policy.policy.policy_string,
        strings(&[
            "version: STSv1",
            "mode: enforce",
            "mx: *.mail.example.org",
            "max_age: 2592000"
        ])
    );
    assert_eq!(policy.policy.mx_host, strings(&["*.mail.example.org"]));
    assert_eq!(policy.summary.total_successful_session_count, 41);
    assert_eq!(policy.summary.total_failure_session_count, 0);
    assert!(policy.failure_details.is_empty());
}

#[test]
fn google_testing_failures_keep_one_row_per_sending_ip() {
    let read = read_fixture("google-sts-testing-failures.json");
    assert_eq!(warnings(&read), []);
    let [policy] = read.report.policies.as_slice() else {
        panic!("one policy expected");
    };
    assert_eq!(policy.summary.total_successful_session_count, 0);
    assert_eq!(policy.summary.total_failure_session_count, 3);
    assert!(policy.policy.mx_host.is_empty());
    let rows: Vec<_> = policy
        .failure_details
        .iter()
        .map(|detail| {
            (
                detail.result_type.clone(),
                detail.sending_mta_ip.as_deref(),
                detail.receiving_ip.as_deref(),
                detail.receiving_mx_hostname.as_deref(),
                detail.failed_session_count,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                ResultType::ValidationFailure,
                Some("192.0.2.201"),
                Some("198.51.100.41"),
                Some("example.net"),
                2
            ),
            (
                ResultType::ValidationFailure,
                Some("192.0.2.176"),
                Some("198.51.100.41"),
                Some("example.net"),
                1
            ),
        ]
    );
}

#[test]
fn no_policy_found_has_no_policy_string_and_no_warning() {
    let read = read_fixture("google-no-policy-found.json");
    assert_eq!(warnings(&read), []);
    let [policy] = read.report.policies.as_slice() else {
        panic!("one policy expected");
    };
    assert_eq!(policy.policy.policy_type, PolicyType::NoPolicyFound);
    assert_eq!(policy.policy.policy_domain, "example.ca");
    assert!(policy.policy.policy_string.is_empty());
    assert_eq!(policy.summary.total_successful_session_count, 48);
}

#[test]
fn rfc8460_appendix_b_mx_host_string_reads_as_one_pattern() {
    let read = read_fixture("rfc8460-appendix-b.json");
    assert_eq!(
        warnings(&read),
        [(
            "policies[0].policy.mx-host",
            ReportWarningKind::MxHostAsString
        )]
    );
    let [policy] = read.report.policies.as_slice() else {
        panic!("one policy expected");
    };
    assert_eq!(
        policy.policy.mx_host,
        strings(&["*.mail.company-y.example"])
    );
    assert_eq!(policy.summary.total_successful_session_count, 5326);
    assert_eq!(policy.summary.total_failure_session_count, 303);
    let [expired, starttls, validation] = policy.failure_details.as_slice() else {
        panic!("three failure details expected");
    };
    assert_eq!(expired.result_type, ResultType::CertificateExpired);
    assert_eq!(
        expired.sending_mta_ip.as_deref(),
        Some("2001:db8:abcd:0012::1")
    );
    assert_eq!(expired.receiving_ip, None);
    assert_eq!(expired.failed_session_count, 100);
    assert_eq!(starttls.result_type, ResultType::StarttlsNotSupported);
    assert_eq!(starttls.failed_session_count, 200);
    // Not a URI (the RFC's own line break left spaces in it), kept as sent.
    assert_eq!(
        starttls.additional_information.as_deref(),
        Some(
            "https://reports.company-x.example/report_info ? id = 5065427 c - 23 d3# StarttlsNotSupported "
        )
    );
    assert_eq!(validation.result_type, ResultType::ValidationFailure);
    assert_eq!(validation.failed_session_count, 3);
    assert_eq!(
        validation.failure_reason_code.as_deref(),
        Some("X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED")
    );
}

#[test]
fn microsoft_tlsa_json_inside_a_string_is_unpacked() {
    let read = read_fixture("microsoft-sts-tlsa.json");
    assert_eq!(
        warnings(&read),
        [(
            "policies[1].policy.policy-string[0]",
            ReportWarningKind::PolicyStringJsonInString
        )]
    );
    let [sts, tlsa] = read.report.policies.as_slice() else {
        panic!("two policies expected");
    };
    assert_eq!(sts.policy.policy_type, PolicyType::Sts);
    assert_eq!(sts.policy.policy_string.len(), 4);
    assert!(sts.policy.mx_host.is_empty());
    assert_eq!(tlsa.policy.policy_type, PolicyType::Tlsa);
    assert_eq!(
        tlsa.policy.policy_string,
        strings(&[
            "3 1 1 1F850A337E6DB9C609C522D136A475638CC43E1ED424F8EEC8513D747D1D085D",
            "3 1 1 12350A337E6DB9C6123522D136A475638CC43E1ED424F8EEC8513D747D1D1234",
        ])
    );
    // The same two sessions, once per policy type: the reader keeps both as sent.
    assert_eq!(sts.summary.total_successful_session_count, 2);
    assert_eq!(tlsa.summary.total_successful_session_count, 2);
}

#[test]
fn microsoft_dates_without_zone_read_as_utc() {
    let read = read_fixture("microsoft-date-without-zone.json");
    assert_eq!(
        warnings(&read),
        [
            (
                "date-range.start-datetime",
                ReportWarningKind::DateWithoutZone
            ),
            (
                "date-range.end-datetime",
                ReportWarningKind::DateWithoutZone
            ),
        ]
    );
    let range = &read.report.date_range;
    assert_eq!(range.start.unix_seconds(), 1_673_308_800);
    assert_eq!(range.end.unix_seconds(), 1_673_395_199);
    assert_eq!(range.start.original(), "2023-01-10T00:00:00");
    assert_eq!(range.start.to_string(), "2023-01-10T00:00:00Z");
    assert_eq!(read.report.policies.len(), 1);
}

#[test]
fn microsoft_fetch_error_without_addresses_reads_without_warnings() {
    let read = read_fixture("microsoft-fetch-error-no-addresses.json");
    assert_eq!(warnings(&read), []);
    assert_eq!(read.report.report_id, "1234567890+");
    let [policy] = read.report.policies.as_slice() else {
        panic!("one policy expected");
    };
    assert!(policy.policy.policy_string.is_empty());
    assert_eq!(policy.summary.total_failure_session_count, 3);
    let [detail] = policy.failure_details.as_slice() else {
        panic!("one failure detail expected");
    };
    assert_eq!(detail.result_type, ResultType::StsPolicyFetchError);
    assert_eq!(detail.failed_session_count, 3);
    assert_eq!(detail.sending_mta_ip, None);
    assert_eq!(detail.receiving_mx_hostname, None);
}

#[test]
fn mailru_failure_details_may_add_up_to_more_than_the_summary() {
    let read = read_fixture("mailru-fetch-errors.json");
    assert_eq!(warnings(&read), []);
    let report = &read.report;
    // End at the next day's 00:00Z: a full UTC day written as RFC 8460 §4.1 words it.
    assert_eq!(
        report.date_range.end.unix_seconds() - report.date_range.start.unix_seconds(),
        86_400
    );
    let [policy] = report.policies.as_slice() else {
        panic!("one policy expected");
    };
    assert_eq!(policy.summary.total_failure_session_count, 1);
    let reasons: Vec<_> = policy
        .failure_details
        .iter()
        .map(|detail| {
            (
                detail.failed_session_count,
                detail.failure_reason_code.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (1, Some("bad https response code: 404")),
            (1, Some("bad https response code: 500"))
        ]
    );
}

#[test]
fn null_contact_info_reads_as_none_with_a_warning() {
    let read = read_fixture("no-contact.json");
    assert_eq!(
        warnings(&read),
        [("contact-info", ReportWarningKind::MissingField)]
    );
    assert_eq!(read.report.contact_info, None);
    let [policy] = read.report.policies.as_slice() else {
        panic!("one policy expected");
    };
    // A pattern with the policy line's `mx: ` prefix left in, kept as sent.
    assert_eq!(policy.policy.mx_host, strings(&["mx: mx.example.net"]));
    assert!(policy.failure_details.is_empty());
}

#[test]
fn counts_as_strings_read_as_numbers() {
    let read = read_fixture("counts-as-strings.json");
    assert_eq!(
        warnings(&read),
        [
            (
                "policies[0].summary.total-successful-session-count",
                ReportWarningKind::CountAsString
            ),
            (
                "policies[0].summary.total-failure-session-count",
                ReportWarningKind::CountAsString
            ),
            (
                "policies[0].failure-details[0].failed-session-count",
                ReportWarningKind::CountAsString
            ),
        ]
    );
    let [policy] = read.report.policies.as_slice() else {
        panic!("one policy expected");
    };
    assert_eq!(policy.summary.total_successful_session_count, 12);
    assert_eq!(policy.summary.total_failure_session_count, 3);
    let [detail] = policy.failure_details.as_slice() else {
        panic!("one failure detail expected");
    };
    assert_eq!(detail.result_type, ResultType::CertificateNotTrusted);
    assert_eq!(detail.failed_session_count, 3);
}

#[test]
fn malformed_policies_are_left_out_and_the_rest_is_read() {
    let read = read_fixture("malformed-policies.json");
    assert_eq!(
        warnings(&read),
        [
            // Kept with an empty domain: its sessions still count.
            (
                "policies[1].policy.policy-domain",
                ReportWarningKind::MissingField
            ),
            (
                "policies[1].summary.total-failure-session-count",
                ReportWarningKind::MissingField
            ),
            (
                "policies[2].policy.policy-type",
                ReportWarningKind::UnknownPolicyType {
                    value: "invalid-policy-type".to_owned()
                }
            ),
            (
                "policies[2].summary.total-failure-session-count",
                ReportWarningKind::MissingField
            ),
            (
                "policies[3]",
                ReportWarningKind::PolicySkipped {
                    reason: SkipReason::NotAnObject
                }
            ),
            (
                "policies[4].summary.total-failure-session-count",
                ReportWarningKind::InvalidCount {
                    value: "-2".to_owned()
                }
            ),
            (
                "policies[4].failure-details[0].result-type",
                ReportWarningKind::UnknownResultType {
                    value: "tls-version-too-old".to_owned()
                }
            ),
            (
                "policies[4].failure-details[1].result-type",
                ReportWarningKind::FailureDetailSkipped {
                    reason: SkipReason::MissingField
                }
            ),
            (
                "policies[4].failure-details[2]",
                ReportWarningKind::FailureDetailSkipped {
                    reason: SkipReason::NotAnObject
                }
            ),
        ]
    );
    let types: Vec<_> = read
        .report
        .policies
        .iter()
        .map(|policy| {
            (
                policy.policy.policy_type.as_str(),
                policy.summary.total_successful_session_count,
                policy.summary.total_failure_session_count,
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            ("sts", 7, 0),
            ("no-policy-found", 1, 0),
            ("invalid-policy-type", 1, 0),
            ("sts", 4, 0)
        ]
    );
    let details = &read
        .report
        .policies
        .last()
        .expect("four policies")
        .failure_details;
    let [unknown] = details.as_slice() else {
        panic!("one failure detail expected: {details:?}");
    };
    assert_eq!(
        unknown.result_type,
        ResultType::Other("tls-version-too-old".to_owned())
    );
    assert_eq!(unknown.failed_session_count, 2);
}

#[test]
fn tlsa_records_separated_by_semicolons_are_split() {
    let read = read_fixture("dane-tlsa-records.json");
    assert_eq!(
        warnings(&read),
        [
            (
                "policies[0].policy.policy-string",
                ReportWarningKind::PolicyStringAsString
            ),
            (
                "policies[0].policy.policy-string",
                ReportWarningKind::TlsaRecordsSemicolonSeparated
            ),
        ]
    );
    let [policy] = read.report.policies.as_slice() else {
        panic!("one policy expected");
    };
    assert_eq!(
        policy.policy.policy_string,
        strings(&[
            "3 1 1 1F850A337E6DB9C609C522D136A475638CC43E1ED424F8EEC8513D747D1D085D",
            "3 1 1 12350A337E6DB9C6123522D136A475638CC43E1ED424F8EEC8513D747D1D1234",
        ])
    );
    let [tlsa_invalid, dnssec_invalid] = policy.failure_details.as_slice() else {
        panic!("two failure details expected");
    };
    assert_eq!(tlsa_invalid.result_type, ResultType::TlsaInvalid);
    assert_eq!(
        tlsa_invalid.receiving_mx_helo.as_deref(),
        Some("mx.example.se ESMTP")
    );
    assert_eq!(tlsa_invalid.receiving_ip.as_deref(), Some("2001:db8:1::25"));
    assert_eq!(tlsa_invalid.failed_session_count, 4);
    assert_eq!(dnssec_invalid.result_type, ResultType::DnssecInvalid);
    assert_eq!(dnssec_invalid.failed_session_count, 1);
}

#[test]
fn gzip_body_decodes_like_the_plain_json() {
    let gzipped = decode(
        &fixture_bytes("google-sts-enforce.json.gz"),
        DEFAULT_MAX_DECOMPRESSED,
    )
    .expect("gzip fixture decodes");
    let plain = decode(
        &fixture_bytes("google-sts-enforce.json"),
        DEFAULT_MAX_DECOMPRESSED,
    )
    .expect("plain fixture decodes");
    assert_eq!(gzipped, plain);
}

#[test]
fn every_fixture_round_trips_through_the_strict_writer() {
    for name in ALL_JSON_FIXTURES {
        let first = read_fixture(name);
        let written = first.report.to_json();
        let again = Report::from_json(written.as_bytes())
            .unwrap_or_else(|error| panic!("{name}: rewritten report unreadable: {error}"));
        assert_eq!(again.report, first.report, "{name}");
        // Strict output needs no tolerance. What stays is what the sender said: unknown types
        // are kept as values, and a contact-info left out stays out.
        for warning in &again.warnings {
            assert!(
                matches!(
                    (warning.path.as_str(), &warning.kind),
                    (_, ReportWarningKind::UnknownPolicyType { .. })
                        | (_, ReportWarningKind::UnknownResultType { .. })
                        | ("contact-info", ReportWarningKind::MissingField)
                ) || (warning.kind == ReportWarningKind::MissingField
                    && warning.path.ends_with(".policy-domain")),
                "{name}: {warning} in {written}"
            );
            assert!(
                !matches!(
                    warning.kind,
                    ReportWarningKind::PolicySkipped { .. }
                        | ReportWarningKind::FailureDetailSkipped { .. }
                ),
                "{name}: {warning} in {written}"
            );
        }
    }
}

#[test]
fn strict_writer_emits_rfc8460_field_names_numbers_and_utc_dates() {
    let read = read_fixture("microsoft-date-without-zone.json");
    assert_eq!(
        read.report.to_json(),
        concat!(
            r#"{"organization-name":"Microsoft Corporation","#,
            r#""date-range":{"start-datetime":"2023-01-10T00:00:00Z","end-datetime":"2023-01-10T23:59:59Z"},"#,
            r#""contact-info":"tlsrpt-noreply@microsoft.com","report-id":"133198585438131172+example.nl","#,
            r#""policies":[{"policy":{"policy-type":"sts","#,
            r#""policy-string":["version: STSv1","mode: enforce","mx: mail.example.nl","max_age: 86400"],"#,
            r#""policy-domain":"example.nl"},"#,
            r#""summary":{"total-successful-session-count":2,"total-failure-session-count":0},"#,
            r#""failure-details":[]}]}"#,
        )
    );
}

#[test]
fn strict_writer_writes_mx_host_as_an_array_and_counts_as_numbers() {
    let rfc = read_fixture("rfc8460-appendix-b.json").report.to_json();
    assert!(
        rfc.contains(r#""mx-host":["*.mail.company-y.example"]"#),
        "{rfc}"
    );
    let counts = read_fixture("counts-as-strings.json").report.to_json();
    assert!(
        counts.contains(r#""total-successful-session-count":12,"#),
        "{counts}"
    );
    assert!(counts.contains(r#""failed-session-count":3,"#), "{counts}");
}

#[test]
fn identity_is_the_same_whether_or_not_the_date_had_a_zone() {
    let zoneless = read_fixture("microsoft-date-without-zone.json").report;
    let mut with_zone_json = String::from_utf8(fixture_bytes("microsoft-date-without-zone.json"))
        .expect("fixture is UTF-8");
    with_zone_json = with_zone_json
        .replace("T00:00:00\"", "T00:00:00Z\"")
        .replace("T23:59:59\"", "T23:59:59Z\"");
    let with_zone = Report::from_json(with_zone_json.as_bytes())
        .expect("zoned variant reads")
        .report;
    assert_eq!(zoneless.identity(), with_zone.identity());
    let identity = zoneless.identity();
    assert_eq!(identity.organization_name, "Microsoft Corporation");
    assert_eq!(identity.report_id, "133198585438131172+example.nl");
    assert_eq!(identity.start_unix_seconds, 1_673_308_800);
    assert_eq!(identity.end_unix_seconds, 1_673_395_199);
}

#[test]
fn identity_differs_when_the_report_id_differs() {
    let first = read_fixture("google-sts-enforce.json").report;
    let mut second = first.clone();
    second.report_id.push_str("-2");
    assert_ne!(first.identity(), second.identity());
}

/// Found by fuzzing: TLSA records packed as JSON inside a string, one of them joined with `;`.
/// The unpacked entries follow the array rule, so the strict output reads back the same.
#[test]
fn tlsa_json_in_string_with_semicolon_round_trips() {
    let bytes = include_bytes!("fixtures/regressions/tlsa-json-in-string-with-semicolon.json");
    let read = Report::from_json(bytes).unwrap();
    // The first policy lacks its type and domain: kept, with both empty.
    assert_eq!(read.report.policies.len(), 2);
    let strings = &read.report.policies[1].policy.policy_string;
    assert_eq!(strings.len(), 3, "{strings:?}");
    let again = Report::from_json(read.report.to_json().as_bytes()).unwrap();
    assert_eq!(again.report, read.report);
}
