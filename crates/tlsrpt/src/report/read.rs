//! The lenient reader: RFC 8460 JSON as real senders write it.

use serde_json::{Map, Value};

use super::datetime::{Zone, parse_date_time};
use super::error::excerpt;
use super::measure::{MAX_TREE_BYTES, tree_bytes};
use super::{
    AppliedPolicy, DateRange, FailureDetail, PolicyResult, PolicyType, ReadReport, Report,
    ReportError, ReportWarning, ReportWarningKind, ResultType, SessionSummary, SkipReason,
    Timestamp,
};

/// The most warnings kept for one report; past it they are only counted, so that a hostile
/// report of a million bad entries costs no more memory than its own JSON.
pub const MAX_WARNINGS: usize = 1000;

const UTF8_BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

type Object = Map<String, Value>;

pub(super) fn read_report(bytes: &[u8]) -> Result<ReadReport, ReportError> {
    let mut reader = Reader::default();
    let bytes = match bytes.strip_prefix(UTF8_BYTE_ORDER_MARK) {
        Some(rest) => {
            reader.warn("$".to_owned(), ReportWarningKind::ByteOrderMark);
            rest
        }
        None => bytes,
    };
    if tree_bytes(bytes) > MAX_TREE_BYTES {
        return Err(ReportError::TooComplex {
            limit: MAX_TREE_BYTES,
        });
    }
    let document: Value = serde_json::from_slice(bytes).map_err(|error| ReportError::NotJson {
        line: error.line(),
        column: error.column(),
        reason: error.to_string(),
    })?;
    let Value::Object(root) = document else {
        return Err(ReportError::NotAnObject {
            found: json_type(&document),
        });
    };
    let organization_name = identity_string(&root, "organization-name")?;
    let report_id = identity_string(&root, "report-id")?;
    let date_range = reader.date_range(&root)?;
    let contact_info = match root.get("contact-info") {
        None | Some(Value::Null) => {
            reader.warn("contact-info".to_owned(), ReportWarningKind::MissingField);
            None
        }
        value => reader.optional_string(value, "contact-info"),
    };
    let policies = reader.policies(root.get("policies"));
    let mut report = Report {
        organization_name,
        date_range,
        contact_info,
        report_id,
        policies,
    };
    reader.replace_nul_characters(&mut report);
    Ok(ReadReport {
        report,
        warnings: reader.finish(),
    })
}

/// What stands in for a NUL character in a string read from a report.
const NUL_REPLACEMENT: &str = "\u{FFFD}";

/// Replaces every NUL in `text` with U+FFFD; true if there was one.
fn replace_nul(text: &mut String) -> bool {
    if !text.contains('\0') {
        return false;
    }
    *text = text.replace('\0', NUL_REPLACEMENT);
    true
}

/// `policy` as the reader reads it back once written: NUL replaced in every string, and the
/// `policy-string` entries unpacked by the reader's rules (a JSON array in a string, TLSA records
/// joined with `;`). The builder applies it, so what it writes reads back unchanged.
pub(crate) fn policy_as_read(policy: &AppliedPolicy) -> AppliedPolicy {
    let mut reader = Reader::default();
    let mut policy_string = Vec::new();
    for text in &policy.policy_string {
        reader.policy_string_entry(text, "", &policy.policy_type, &mut policy_string);
    }
    let mut policy_type = policy.policy_type.clone();
    if let PolicyType::Other(name) = &mut policy_type {
        replace_nul(name);
    }
    let mut read = AppliedPolicy {
        policy_type,
        policy_string,
        policy_domain: policy.policy_domain.clone(),
        mx_host: policy.mx_host.clone(),
    };
    replace_nul(&mut read.policy_domain);
    read.policy_string
        .iter_mut()
        .chain(&mut read.mx_host)
        .for_each(|text| {
            replace_nul(text);
        });
    read
}

/// `text` as the reader reads it back: NUL replaced (see [`policy_as_read`]).
pub(crate) fn text_as_read(text: &str) -> String {
    let mut text = text.to_owned();
    replace_nul(&mut text);
    text
}

/// A string the report cannot be identified without.
fn identity_string(root: &Object, key: &'static str) -> Result<String, ReportError> {
    match root.get(key) {
        None | Some(Value::Null) => Err(ReportError::MissingField { path: key }),
        Some(Value::String(text)) if text.trim().is_empty() => {
            Err(ReportError::EmptyField { path: key })
        }
        Some(Value::String(text)) => Ok(text.clone()),
        Some(other) => Err(ReportError::WrongType {
            path: key,
            expected: "a string",
            found: json_type(other),
        }),
    }
}

#[derive(Default)]
struct Reader {
    warnings: Vec<ReportWarning>,
    omitted_warnings: usize,
}

impl Reader {
    fn warn(&mut self, path: String, kind: ReportWarningKind) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(ReportWarning { path, kind });
        } else {
            self.omitted_warnings += 1;
        }
    }

    /// JSON allows `\u0000` in strings, but a NUL means nothing in a report and databases
    /// refuse it in text (PostgreSQL rejects the whole statement): every string of the report
    /// gets U+FFFD instead, with a warning at its path.
    fn replace_nul_characters(&mut self, report: &mut Report) {
        fn nul_at(reader: &mut Reader, text: &mut String, path: &dyn Fn() -> String) {
            if replace_nul(text) {
                reader.warn(path(), ReportWarningKind::NulCharacter);
            }
        }
        nul_at(self, &mut report.organization_name, &|| {
            "organization-name".to_owned()
        });
        nul_at(self, &mut report.report_id, &|| "report-id".to_owned());
        if let Some(contact) = &mut report.contact_info {
            nul_at(self, contact, &|| "contact-info".to_owned());
        }
        for (index, result) in report.policies.iter_mut().enumerate() {
            let policy = &mut result.policy;
            let at = |field: &str| format!("policies[{index}].policy.{field}");
            if let PolicyType::Other(name) = &mut policy.policy_type {
                nul_at(self, name, &|| at("policy-type"));
            }
            nul_at(self, &mut policy.policy_domain, &|| at("policy-domain"));
            for (entry, text) in policy.policy_string.iter_mut().enumerate() {
                nul_at(self, text, &|| at(&format!("policy-string[{entry}]")));
            }
            for (entry, text) in policy.mx_host.iter_mut().enumerate() {
                nul_at(self, text, &|| at(&format!("mx-host[{entry}]")));
            }
            for (entry, detail) in result.failure_details.iter_mut().enumerate() {
                let at =
                    |field: &str| format!("policies[{index}].failure-details[{entry}].{field}");
                if let ResultType::Other(name) = &mut detail.result_type {
                    nul_at(self, name, &|| at("result-type"));
                }
                let optional = [
                    ("sending-mta-ip", &mut detail.sending_mta_ip),
                    ("receiving-mx-hostname", &mut detail.receiving_mx_hostname),
                    ("receiving-mx-helo", &mut detail.receiving_mx_helo),
                    ("receiving-ip", &mut detail.receiving_ip),
                    ("additional-information", &mut detail.additional_information),
                    ("failure-reason-code", &mut detail.failure_reason_code),
                ];
                for (field, value) in optional {
                    if let Some(text) = value {
                        nul_at(self, text, &|| at(field));
                    }
                }
            }
        }
    }

    fn finish(mut self) -> Vec<ReportWarning> {
        if self.omitted_warnings > 0 {
            self.warnings.push(ReportWarning {
                path: "$".to_owned(),
                kind: ReportWarningKind::TooManyWarnings {
                    omitted: self.omitted_warnings,
                },
            });
        }
        self.warnings
    }

    fn date_range(&mut self, root: &Object) -> Result<DateRange, ReportError> {
        let range = match root.get("date-range") {
            None | Some(Value::Null) => {
                return Err(ReportError::MissingField { path: "date-range" });
            }
            Some(Value::Object(range)) => range,
            Some(other) => {
                return Err(ReportError::WrongType {
                    path: "date-range",
                    expected: "an object",
                    found: json_type(other),
                });
            }
        };
        let start = self.timestamp(range, "start-datetime", "date-range.start-datetime")?;
        let end = self.timestamp(range, "end-datetime", "date-range.end-datetime")?;
        if end < start {
            self.warn(
                "date-range".to_owned(),
                ReportWarningKind::DateRangeReversed,
            );
        }
        Ok(DateRange { start, end })
    }

    fn timestamp(
        &mut self,
        range: &Object,
        key: &str,
        path: &'static str,
    ) -> Result<Timestamp, ReportError> {
        let text = match range.get(key) {
            None | Some(Value::Null) => return Err(ReportError::MissingField { path }),
            Some(Value::String(text)) => text,
            Some(other) => {
                return Err(ReportError::WrongType {
                    path,
                    expected: "a string",
                    found: json_type(other),
                });
            }
        };
        let (timestamp, zone) =
            parse_date_time(text.trim()).ok_or_else(|| ReportError::InvalidDate {
                path,
                value: excerpt(text),
            })?;
        if zone == Zone::Missing {
            self.warn(path.to_owned(), ReportWarningKind::DateWithoutZone);
        }
        Ok(timestamp)
    }

    fn policies(&mut self, value: Option<&Value>) -> Vec<PolicyResult> {
        let entries = match value {
            None | Some(Value::Null) => {
                self.warn("policies".to_owned(), ReportWarningKind::MissingField);
                return Vec::new();
            }
            Some(Value::Array(entries)) => entries,
            Some(other) => {
                self.warn(
                    "policies".to_owned(),
                    ReportWarningKind::WrongType {
                        expected: "an array",
                        found: json_type(other),
                    },
                );
                return Vec::new();
            }
        };
        entries
            .iter()
            .enumerate()
            .filter_map(|(index, entry)| self.policy_result(entry, &format!("policies[{index}]")))
            .collect()
    }

    fn policy_result(&mut self, value: &Value, path: &str) -> Option<PolicyResult> {
        let skip = |reader: &mut Self, path: String, reason: SkipReason| {
            reader.warn(path, ReportWarningKind::PolicySkipped { reason });
            None
        };
        let Value::Object(entry) = value else {
            return skip(self, path.to_owned(), SkipReason::NotAnObject);
        };
        let policy_path = format!("{path}.policy");
        let policy = match entry.get("policy") {
            Some(Value::Object(policy)) => policy,
            other => return skip(self, policy_path, skip_reason(other, "an object")),
        };
        // A policy missing its type or domain still carries session counts: keep it (with an
        // empty value and a warning) so the report's totals stay right.
        let type_path = format!("{policy_path}.policy-type");
        let policy_type = match policy.get("policy-type") {
            Some(Value::String(name)) => PolicyType::from_name(name),
            other => {
                self.warn_missing_or_wrong(type_path.clone(), other, "a string");
                PolicyType::Other(String::new())
            }
        };
        let domain_path = format!("{policy_path}.policy-domain");
        let policy_domain = match policy.get("policy-domain") {
            Some(Value::String(domain)) if !domain.trim().is_empty() => domain.clone(),
            other => {
                self.warn_missing_or_wrong(domain_path, other, "a string");
                String::new()
            }
        };
        if let PolicyType::Other(name) = &policy_type
            && !name.is_empty()
        {
            self.warn(
                type_path,
                ReportWarningKind::UnknownPolicyType {
                    value: excerpt(name),
                },
            );
        }
        let policy_string = self.policy_string(
            policy.get("policy-string"),
            &format!("{policy_path}.policy-string"),
            &policy_type,
        );
        let mx_host = self.mx_host(policy.get("mx-host"), &format!("{policy_path}.mx-host"));
        let summary = self.summary(entry.get("summary"), &format!("{path}.summary"));
        let failure_details = self.failure_details(
            entry.get("failure-details"),
            &format!("{path}.failure-details"),
        );
        Some(PolicyResult {
            policy: AppliedPolicy {
                policy_type,
                policy_string,
                policy_domain,
                mx_host,
            },
            summary,
            failure_details,
        })
    }

    fn policy_string(
        &mut self,
        value: Option<&Value>,
        path: &str,
        policy_type: &PolicyType,
    ) -> Vec<String> {
        let mut entries = Vec::new();
        match value {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) => {
                self.warn(path.to_owned(), ReportWarningKind::PolicyStringAsString);
                self.policy_string_entry(text, path, policy_type, &mut entries);
            }
            Some(Value::Array(items)) => {
                for (index, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{index}]");
                    match item {
                        Value::String(text) => {
                            self.policy_string_entry(text, &item_path, policy_type, &mut entries);
                        }
                        other => self.warn_wrong_type(item_path, "a string", other),
                    }
                }
            }
            Some(other) => self.warn_wrong_type(path.to_owned(), "an array of strings", other),
        }
        entries
    }

    /// One `policy-string` text, unpacked when a sender packed several entries into it.
    fn policy_string_entry(
        &mut self,
        text: &str,
        path: &str,
        policy_type: &PolicyType,
        entries: &mut Vec<String>,
    ) {
        if text.trim_start().starts_with('[')
            && let Ok(inner) = serde_json::from_str::<Vec<String>>(text)
        {
            self.warn(path.to_owned(), ReportWarningKind::PolicyStringJsonInString);
            // The unpacked entries follow the same rule as entries sent as an array, so what
            // the strict writer writes reads back the same.
            for entry in inner {
                self.policy_string_record(&entry, path, policy_type, entries);
            }
            return;
        }
        self.policy_string_record(text, path, policy_type, entries);
    }

    /// One entry of `policy-string`: TLSA records joined with `;` (RFC 8460 §4) are split.
    fn policy_string_record(
        &mut self,
        text: &str,
        path: &str,
        policy_type: &PolicyType,
        entries: &mut Vec<String>,
    ) {
        if *policy_type == PolicyType::Tlsa && text.contains(';') {
            self.warn(
                path.to_owned(),
                ReportWarningKind::TlsaRecordsSemicolonSeparated,
            );
            entries.extend(
                text.split(';')
                    .map(str::trim)
                    .filter(|record| !record.is_empty())
                    .map(str::to_owned),
            );
            return;
        }
        entries.push(text.to_owned());
    }

    fn mx_host(&mut self, value: Option<&Value>, path: &str) -> Vec<String> {
        match value {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(pattern)) => {
                self.warn(path.to_owned(), ReportWarningKind::MxHostAsString);
                vec![pattern.clone()]
            }
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(index, item)| match item {
                    Value::String(pattern) => Some(pattern.clone()),
                    other => {
                        self.warn_wrong_type(format!("{path}[{index}]"), "a string", other);
                        None
                    }
                })
                .collect(),
            Some(other) => {
                self.warn_wrong_type(path.to_owned(), "an array of strings", other);
                Vec::new()
            }
        }
    }

    fn summary(&mut self, value: Option<&Value>, path: &str) -> SessionSummary {
        match value {
            Some(Value::Object(summary)) => SessionSummary {
                total_successful_session_count: self.count(
                    summary,
                    "total-successful-session-count",
                    path,
                ),
                total_failure_session_count: self.count(
                    summary,
                    "total-failure-session-count",
                    path,
                ),
            },
            None | Some(Value::Null) => {
                self.warn(path.to_owned(), ReportWarningKind::MissingField);
                SessionSummary::default()
            }
            Some(other) => {
                self.warn_wrong_type(path.to_owned(), "an object", other);
                SessionSummary::default()
            }
        }
    }

    fn failure_details(&mut self, value: Option<&Value>, path: &str) -> Vec<FailureDetail> {
        match value {
            // Senders leave the array out when nothing failed.
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(entries)) => entries
                .iter()
                .enumerate()
                .filter_map(|(index, entry)| {
                    self.failure_detail(entry, &format!("{path}[{index}]"))
                })
                .collect(),
            Some(other) => {
                self.warn_wrong_type(path.to_owned(), "an array", other);
                Vec::new()
            }
        }
    }

    fn failure_detail(&mut self, value: &Value, path: &str) -> Option<FailureDetail> {
        let skip = |reader: &mut Self, path: String, reason: SkipReason| {
            reader.warn(path, ReportWarningKind::FailureDetailSkipped { reason });
            None
        };
        let Value::Object(detail) = value else {
            return skip(self, path.to_owned(), SkipReason::NotAnObject);
        };
        let type_path = format!("{path}.result-type");
        let result_type = match detail.get("result-type") {
            Some(Value::String(name)) => ResultType::from_name(name),
            other => return skip(self, type_path, skip_reason(other, "a string")),
        };
        if let ResultType::Other(name) = &result_type {
            self.warn(
                type_path,
                ReportWarningKind::UnknownResultType {
                    value: excerpt(name),
                },
            );
        }
        let failed_session_count = self.count(detail, "failed-session-count", path);
        let mut field = |key: &str| self.optional_string(detail.get(key), &format!("{path}.{key}"));
        let sending_mta_ip = field("sending-mta-ip");
        let receiving_mx_hostname = field("receiving-mx-hostname");
        let receiving_mx_helo = field("receiving-mx-helo");
        let receiving_ip = field("receiving-ip");
        let additional_information = field("additional-information");
        let failure_reason_code = field("failure-reason-code");
        Some(FailureDetail {
            result_type,
            sending_mta_ip,
            receiving_mx_hostname,
            receiving_mx_helo,
            receiving_ip,
            failed_session_count,
            additional_information,
            failure_reason_code,
        })
    }

    /// A string field that may be left out.
    fn optional_string(&mut self, value: Option<&Value>, path: &str) -> Option<String> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(other) => {
                self.warn_wrong_type(path.to_owned(), "a string", other);
                None
            }
        }
    }

    /// A session count: RFC 8460 wants a JSON number; senders also send strings of digits.
    fn count(&mut self, object: &Object, key: &str, parent_path: &str) -> u64 {
        let path = || format!("{parent_path}.{key}");
        match object.get(key) {
            None | Some(Value::Null) => {
                self.warn(path(), ReportWarningKind::MissingField);
                0
            }
            Some(Value::Number(number)) => number.as_u64().unwrap_or_else(|| {
                let value = number.to_string();
                self.warn(path(), ReportWarningKind::InvalidCount { value });
                0
            }),
            Some(Value::String(text)) => match parse_decimal_count(text) {
                Some(count) => {
                    self.warn(path(), ReportWarningKind::CountAsString);
                    count
                }
                None => {
                    let value = excerpt(text);
                    self.warn(path(), ReportWarningKind::InvalidCount { value });
                    0
                }
            },
            Some(other) => {
                self.warn_wrong_type(path(), "a number", other);
                0
            }
        }
    }

    /// A field that is absent, null, empty, or of another type: [`ReportWarningKind::MissingField`]
    /// or [`ReportWarningKind::WrongType`].
    fn warn_missing_or_wrong(
        &mut self,
        path: String,
        value: Option<&Value>,
        expected: &'static str,
    ) {
        match value {
            None | Some(Value::Null) | Some(Value::String(_)) => {
                self.warn(path, ReportWarningKind::MissingField);
            }
            Some(other) => self.warn_wrong_type(path, expected, other),
        }
    }

    fn warn_wrong_type(&mut self, path: String, expected: &'static str, found: &Value) {
        let found = json_type(found);
        self.warn(path, ReportWarningKind::WrongType { expected, found });
    }
}

/// Why a required field of an entry cannot be used.
fn skip_reason(value: Option<&Value>, expected: &'static str) -> SkipReason {
    match value {
        None | Some(Value::Null) => SkipReason::MissingField,
        Some(other) => SkipReason::WrongType {
            expected,
            found: json_type(other),
        },
    }
}

/// A count sent as a string: ASCII digits only (no sign), surrounding spaces allowed.
fn parse_decimal_count(text: &str) -> Option<u64> {
    let digits = text.trim();
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
