//! The aggregation builder: session outcomes in, one RFC 8460 §4 report out.
//!
//! A sender counts every session it attempted towards a domain over one UTC day. The builder
//! merges what it is given: a policy seen again (same type, string, domain and MX patterns) adds
//! to the same entry, and a failure seen again (same result type, addresses, names, additional
//! information and reason code) adds to the same failure detail. Entries come out in a stable
//! order, so the same input always writes the same bytes.
//!
//! What comes in is taken as the lenient reader would read it back (NUL replaced, `policy-string`
//! entries unpacked: TLSA records joined with `;` are split), so a report written from it reads
//! back unchanged, and what the reader would see as one policy is one entry.

use std::collections::BTreeMap;
use std::fmt;

use super::datetime::{Zone, parse_date_time};
use super::read::{policy_as_read, text_as_read};
use super::{
    AppliedPolicy, DateRange, FailureDetail, PolicyResult, Report, ResultType, SessionSummary,
    Timestamp,
};

const SECONDS_PER_DAY: i64 = 86_400;

/// One UTC calendar day, the period of a daily report (RFC 8460 §4.1: `date-range` from
/// `00:00:00Z` to `23:59:59Z`).
///
/// ```
/// use mta_sts_tlsrpt::report::UtcDay;
///
/// let day = UtcDay::parse("2024-02-29").unwrap();
/// assert_eq!(day.to_string(), "2024-02-29");
/// assert_eq!(day.next().to_string(), "2024-03-01");
/// let range = day.date_range();
/// assert_eq!(range.start.to_string(), "2024-02-29T00:00:00Z");
/// assert_eq!(range.end.to_string(), "2024-02-29T23:59:59Z");
/// assert!(UtcDay::parse("2023-02-29").is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UtcDay {
    /// Days since 1970-01-01.
    days: i64,
}

impl UtcDay {
    /// The day `YYYY-MM-DD`; `None` for anything else (or a date that does not exist).
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 10 {
            return None;
        }
        let (timestamp, zone) = parse_date_time(&format!("{text}T00:00:00Z"))?;
        (zone == Zone::Given).then(|| Self::containing(timestamp.unix_seconds()))
    }

    /// The day that holds the instant `unix_seconds` (seconds since the Unix epoch).
    pub fn containing(unix_seconds: i64) -> Self {
        Self {
            days: unix_seconds.div_euclid(SECONDS_PER_DAY),
        }
    }

    /// The day after this one.
    #[must_use]
    pub fn next(self) -> Self {
        Self {
            days: self.days.saturating_add(1),
        }
    }

    /// The day before this one.
    #[must_use]
    pub fn previous(self) -> Self {
        Self {
            days: self.days.saturating_sub(1),
        }
    }

    /// Seconds since the Unix epoch at the start of the day (`00:00:00Z`).
    pub fn start_unix_seconds(self) -> i64 {
        self.days.saturating_mul(SECONDS_PER_DAY)
    }

    /// `00:00:00Z` to `23:59:59Z` of the day, as RFC 8460 §4.1 writes a daily report's period.
    /// Days outside the years 0000–9999 (which RFC 3339 cannot write) are clamped to them.
    pub fn date_range(self) -> DateRange {
        let start = self.start_unix_seconds();
        DateRange {
            start: Timestamp::clamped(start),
            end: Timestamp::clamped(start.saturating_add(SECONDS_PER_DAY - 1)),
        }
    }
}

impl fmt::Display for UtcDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let start = self.date_range().start.to_string();
        f.write_str(start.get(..10).unwrap_or(&start))
    }
}

/// Builds one report: add sessions and failures in any order, then [`ReportBuilder::build`].
///
/// ```
/// use mta_sts_tlsrpt::report::{AppliedPolicy, FailureDetail, PolicyType, ReportBuilder,
///     ResultType, UtcDay};
///
/// let day = UtcDay::parse("2024-01-09").unwrap();
/// let mut builder = ReportBuilder::new("Example Sender", "r-1", day.date_range())
///     .contact_info("tlsrpt@sender.example");
/// let policy = AppliedPolicy {
///     policy_type: PolicyType::NoPolicyFound,
///     policy_string: vec![],
///     policy_domain: "example.com".into(),
///     mx_host: vec![],
/// };
/// builder.add_sessions(&policy, 10, 1);
/// builder.add_sessions(&policy, 5, 0);
/// builder.add_failure(&policy, FailureDetail {
///     result_type: ResultType::StarttlsNotSupported,
///     sending_mta_ip: Some("192.0.2.1".into()),
///     receiving_mx_hostname: Some("mx.example.com".into()),
///     receiving_mx_helo: None,
///     receiving_ip: Some("198.51.100.7".into()),
///     failed_session_count: 1,
///     additional_information: None,
///     failure_reason_code: None,
/// });
/// let report = builder.build();
/// assert_eq!(report.policies.len(), 1);
/// assert_eq!(report.policies[0].summary.total_successful_session_count, 15);
/// assert_eq!(report.policies[0].summary.total_failure_session_count, 1);
/// assert_eq!(report.policies[0].failure_details[0].failed_session_count, 1);
/// ```
#[derive(Debug, Clone)]
pub struct ReportBuilder {
    organization_name: String,
    contact_info: Option<String>,
    report_id: String,
    date_range: DateRange,
    policies: BTreeMap<PolicyKey, Entry>,
}

/// What makes two applied policies the same entry (RFC 8460 §4.4: type, string, domain and MX
/// patterns).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PolicyKey {
    policy_domain: String,
    policy_type: String,
    policy_string: Vec<String>,
    mx_host: Vec<String>,
}

/// What makes two failures the same failure detail: everything but the count.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct FailureKey {
    result_type: String,
    sending_mta_ip: Option<String>,
    receiving_mx_hostname: Option<String>,
    receiving_mx_helo: Option<String>,
    receiving_ip: Option<String>,
    additional_information: Option<String>,
    failure_reason_code: Option<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    policy: AppliedPolicy,
    summary: SessionSummary,
    failures: BTreeMap<FailureKey, FailureDetail>,
}

impl ReportBuilder {
    /// A builder for the report `report_id` of `organization_name` covering `date_range`.
    pub fn new(
        organization_name: impl Into<String>,
        report_id: impl Into<String>,
        date_range: DateRange,
    ) -> Self {
        Self {
            organization_name: organization_name.into(),
            contact_info: None,
            report_id: report_id.into(),
            date_range,
            policies: BTreeMap::new(),
        }
    }

    /// Sets `contact-info`.
    #[must_use]
    pub fn contact_info(mut self, contact_info: impl Into<String>) -> Self {
        self.contact_info = Some(contact_info.into());
        self
    }

    /// Adds `successful` and `failed` sessions under `policy`.
    pub fn add_sessions(&mut self, policy: &AppliedPolicy, successful: u64, failed: u64) {
        let summary = &mut self.entry(policy).summary;
        summary.total_successful_session_count = summary
            .total_successful_session_count
            .saturating_add(successful);
        summary.total_failure_session_count =
            summary.total_failure_session_count.saturating_add(failed);
    }

    /// Adds `detail.failed_session_count` failures of the kind `detail` describes under
    /// `policy`. Session counts are separate ([`ReportBuilder::add_sessions`]): failure types
    /// overlap (RFC 8460 §4), so details need not add up to the summary.
    pub fn add_failure(&mut self, policy: &AppliedPolicy, mut detail: FailureDetail) {
        if let ResultType::Other(name) = &mut detail.result_type {
            *name = text_as_read(name);
        }
        for text in [
            &mut detail.sending_mta_ip,
            &mut detail.receiving_mx_hostname,
            &mut detail.receiving_mx_helo,
            &mut detail.receiving_ip,
            &mut detail.additional_information,
            &mut detail.failure_reason_code,
        ]
        .into_iter()
        .flatten()
        {
            *text = text_as_read(text);
        }
        let key = FailureKey {
            result_type: detail.result_type.as_str().to_owned(),
            sending_mta_ip: detail.sending_mta_ip.clone(),
            receiving_mx_hostname: detail.receiving_mx_hostname.clone(),
            receiving_mx_helo: detail.receiving_mx_helo.clone(),
            receiving_ip: detail.receiving_ip.clone(),
            additional_information: detail.additional_information.clone(),
            failure_reason_code: detail.failure_reason_code.clone(),
        };
        let failures = &mut self.entry(policy).failures;
        match failures.get_mut(&key) {
            Some(existing) => {
                existing.failed_session_count = existing
                    .failed_session_count
                    .saturating_add(detail.failed_session_count);
            }
            None => {
                failures.insert(key, detail);
            }
        }
    }

    /// The report: policies ordered by domain, type, string and MX patterns; failure details
    /// ordered by result type and then the rest.
    pub fn build(self) -> Report {
        Report {
            organization_name: text_as_read(&self.organization_name),
            date_range: self.date_range,
            contact_info: self.contact_info.as_deref().map(text_as_read),
            report_id: text_as_read(&self.report_id),
            policies: self
                .policies
                .into_values()
                .map(|entry| PolicyResult {
                    policy: entry.policy,
                    summary: entry.summary,
                    failure_details: entry.failures.into_values().collect(),
                })
                .collect(),
        }
    }

    fn entry(&mut self, policy: &AppliedPolicy) -> &mut Entry {
        let policy = &policy_as_read(policy);
        let key = PolicyKey {
            policy_domain: policy.policy_domain.clone(),
            policy_type: policy.policy_type.as_str().to_owned(),
            policy_string: policy.policy_string.clone(),
            mx_host: policy.mx_host.clone(),
        };
        self.policies.entry(key).or_insert_with(|| Entry {
            policy: policy.clone(),
            summary: SessionSummary::default(),
            failures: BTreeMap::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{PolicyType, ResultType};

    fn sts(domain: &str, mx: &str) -> AppliedPolicy {
        AppliedPolicy {
            policy_type: PolicyType::Sts,
            policy_string: vec![
                "version: STSv1".into(),
                "mode: enforce".into(),
                format!("mx: {mx}"),
                "max_age: 86400".into(),
            ],
            policy_domain: domain.into(),
            mx_host: vec![mx.into()],
        }
    }

    fn failure(result_type: ResultType, receiving_ip: &str, count: u64) -> FailureDetail {
        FailureDetail {
            result_type,
            sending_mta_ip: Some("192.0.2.1".into()),
            receiving_mx_hostname: Some("mx.example.com".into()),
            receiving_mx_helo: None,
            receiving_ip: Some(receiving_ip.into()),
            failed_session_count: count,
            additional_information: None,
            failure_reason_code: None,
        }
    }

    #[test]
    fn daily_date_range_is_midnight_to_one_second_before_midnight() {
        let day = UtcDay::parse("2024-12-31").unwrap();
        let range = day.date_range();
        assert_eq!(range.start.to_string(), "2024-12-31T00:00:00Z");
        assert_eq!(range.end.to_string(), "2024-12-31T23:59:59Z");
        assert_eq!(day.next().to_string(), "2025-01-01");
        assert_eq!(day.next().previous(), day);
        assert_eq!(UtcDay::containing(range.end.unix_seconds()), day);
        assert_eq!(UtcDay::containing(range.end.unix_seconds() + 1), day.next());
    }

    #[test]
    fn day_text_must_be_a_real_calendar_date() {
        for bad in [
            "2024-1-01",
            "2024-13-01",
            "2023-02-29",
            "2024-01-01T00:00:00Z",
            "",
            "x",
        ] {
            assert_eq!(UtcDay::parse(bad), None, "{bad:?}");
        }
        assert_eq!(UtcDay::containing(-1).to_string(), "1969-12-31");
    }

    #[test]
    fn same_policy_is_one_entry_with_summed_counts() {
        let mut builder = ReportBuilder::new("o", "r", UtcDay::containing(0).date_range());
        builder.add_sessions(&sts("a.example", "mx.a.example"), 3, 1);
        builder.add_sessions(&sts("a.example", "mx.a.example"), 4, 2);
        builder.add_sessions(&sts("a.example", "mx2.a.example"), 1, 0);
        let report = builder.build();
        assert_eq!(report.policies.len(), 2);
        let first = &report.policies[0];
        assert_eq!(first.policy.mx_host, vec!["mx.a.example".to_owned()]);
        assert_eq!(first.summary.total_successful_session_count, 7);
        assert_eq!(first.summary.total_failure_session_count, 3);
        assert_eq!(report.policies[1].summary.total_successful_session_count, 1);
    }

    #[test]
    fn same_failure_is_one_detail_with_summed_counts() {
        let policy = sts("a.example", "mx.a.example");
        let mut builder = ReportBuilder::new("o", "r", UtcDay::containing(0).date_range());
        builder.add_failure(
            &policy,
            failure(ResultType::CertificateExpired, "198.51.100.1", 2),
        );
        builder.add_failure(
            &policy,
            failure(ResultType::CertificateExpired, "198.51.100.1", 3),
        );
        builder.add_failure(
            &policy,
            failure(ResultType::CertificateExpired, "198.51.100.2", 1),
        );
        builder.add_failure(
            &policy,
            failure(ResultType::DaneRequired, "198.51.100.1", 1),
        );
        let report = builder.build();
        let details = &report.policies[0].failure_details;
        let counts: Vec<_> = details
            .iter()
            .map(|d| (d.result_type.as_str(), d.failed_session_count))
            .collect();
        assert_eq!(
            counts,
            [
                ("certificate-expired", 5),
                ("certificate-expired", 1),
                ("dane-required", 1)
            ]
        );
    }

    /// Regression (fuzz target `tlsrpt_datagram`): a TLSA `policy-string` entry holding `;`
    /// (records joined, as some senders write them) was written as one entry and read back
    /// as two; NUL was written and read back as U+FFFD.
    #[test]
    fn what_the_reader_would_change_is_changed_before_it_is_written() {
        let policy = AppliedPolicy {
            policy_type: PolicyType::Tlsa,
            policy_string: vec![
                "3 1 1 0C72AC70B745AC19998811B131D662C9AC69DBDBE7CB23E5B514B56664C5D3D6".into(),
                "3 1 1$ABCDEF0123456789ABCDEF0123456789ABCDEF0123456;89ABCDEF0123459876".into(),
            ],
            policy_domain: "dane\0.example".into(),
            mx_host: vec![],
        };
        let mut builder = ReportBuilder::new("o\0", "r", UtcDay::containing(0).date_range());
        builder.add_sessions(&policy, 1, 0);
        let mut detail = failure(ResultType::Other("x\0".into()), "::1", 1);
        detail.additional_information = Some("a\0b".into());
        builder.add_failure(&policy, detail);
        let report = builder.build();
        assert_eq!(report.organization_name, "o\u{FFFD}");
        let written = &report.policies[0];
        assert_eq!(written.policy.policy_string.len(), 3);
        assert_eq!(written.policy.policy_domain, "dane\u{FFFD}.example");
        assert_eq!(
            written.failure_details[0].additional_information.as_deref(),
            Some("a\u{FFFD}b")
        );
        let read = Report::from_json(report.to_json().as_bytes()).unwrap();
        assert_eq!(read.report, report);
    }

    #[test]
    fn built_report_reads_back_without_warnings() {
        let policy = sts("a.example", "mx.a.example");
        let mut builder = ReportBuilder::new(
            "Sender \"Inc\"",
            "2024-01-09_a.example_1",
            UtcDay::parse("2024-01-09").unwrap().date_range(),
        )
        .contact_info("mailto:tls@sender.example");
        builder.add_sessions(&policy, 10, 2);
        builder.add_failure(&policy, failure(ResultType::ValidationFailure, "::1", 2));
        let report = builder.build();
        let read = Report::from_json(report.to_json().as_bytes()).unwrap();
        assert!(read.warnings.is_empty(), "{:?}", read.warnings);
        assert_eq!(read.report, report);
    }
}
