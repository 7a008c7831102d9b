//! The lenient reader: RFC 8460 JSON as real senders write it.

use serde::de::{DeserializeSeed as _, MapAccess, SeqAccess};

use super::datetime::{Zone, parse_date_time};
use super::error::excerpt;
use super::measure::{MAX_TREE_BYTES, tree_bytes};
use super::shape::{
    Num, Scalar, Scalars, Shape, Val, ValSeed, members, scalar, skip_map, skip_seq,
};
use super::{
    AppliedPolicy, DateRange, FailureDetail, PolicyResult, PolicyType, ReadReport, Report,
    ReportError, ReportWarning, ReportWarningKind, ResultType, SessionSummary, SkipReason,
    Timestamp,
};

/// The most warnings kept for one report; past it they are only counted, so that a hostile
/// report of a million bad entries costs no more memory than its own JSON.
pub const MAX_WARNINGS: usize = 1000;

const UTF8_BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

// What the reader takes in: each member of the report as its conversion below wants it (see
// `shape`). Arrays of entries are converted entry by entry as they are parsed, their warnings
// kept aside (by the same rule as the report's) until the fixed order of the report's warnings
// reaches them, so an array of junk costs its capped warnings, never a tree.

/// The members of the report object.
struct RootRaw {
    organization_name: Option<Scalar>,
    report_id: Option<Scalar>,
    date_range: Option<Val<(), RangeRaw>>,
    contact_info: Option<Scalar>,
    policies: Option<Val<Read<PolicyResult>, ()>>,
}

struct RootShape;

impl<'de> Shape<'de> for RootShape {
    type Array = ();
    type Object = RootRaw;
    fn array<S: SeqAccess<'de>>(self, seq: S) -> Result<(), S::Error> {
        skip_seq(seq)
    }
    fn object<M: MapAccess<'de>>(self, map: M) -> Result<RootRaw, M::Error> {
        let mut root = RootRaw {
            organization_name: None,
            report_id: None,
            date_range: None,
            contact_info: None,
            policies: None,
        };
        const NAMES: &[&str] = &[
            "organization-name",
            "report-id",
            "date-range",
            "contact-info",
            "policies",
        ];
        members(map, NAMES, |index, map| {
            match index {
                0 => root.organization_name = scalar(map)?,
                1 => root.report_id = scalar(map)?,
                2 => root.date_range = Some(map.next_value_seed(ValSeed(RangeShape))?),
                3 => root.contact_info = scalar(map)?,
                _ => root.policies = Some(map.next_value_seed(ValSeed(PoliciesShape))?),
            }
            Ok(())
        })?;
        Ok(root)
    }
}

/// The members of `date-range`.
struct RangeRaw {
    start: Option<Scalar>,
    end: Option<Scalar>,
}

struct RangeShape;

impl<'de> Shape<'de> for RangeShape {
    type Array = ();
    type Object = RangeRaw;
    fn array<S: SeqAccess<'de>>(self, seq: S) -> Result<(), S::Error> {
        skip_seq(seq)
    }
    fn object<M: MapAccess<'de>>(self, map: M) -> Result<RangeRaw, M::Error> {
        let mut range = RangeRaw {
            start: None,
            end: None,
        };
        members(map, &["start-datetime", "end-datetime"], |index, map| {
            match index {
                0 => range.start = scalar(map)?,
                _ => range.end = scalar(map)?,
            }
            Ok(())
        })?;
        Ok(range)
    }
}

/// An array of entries, converted as it was parsed, with the warnings converting gave.
struct Read<T> {
    entries: Vec<T>,
    reader: Reader,
}

/// `policies`: each entry becomes a [`PolicyResult`] (or a warning) as soon as it is parsed.
struct PoliciesShape;

impl<'de> Shape<'de> for PoliciesShape {
    type Array = Read<PolicyResult>;
    type Object = ();
    fn array<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Read<PolicyResult>, S::Error> {
        let mut reader = Reader::default();
        let mut entries = Vec::new();
        for index in 0.. {
            let path = format!("policies[{index}]");
            let Some(entry) = seq.next_element_seed(ValSeed(EntryShape { path: &path }))? else {
                break;
            };
            entries.extend(reader.policy_result(entry, &path));
        }
        Ok(Read { entries, reader })
    }
    fn object<M: MapAccess<'de>>(self, map: M) -> Result<(), M::Error> {
        skip_map(map)
    }
}

/// The members of a `policies` entry.
struct EntryRaw {
    policy: Option<Val<(), PolicyRaw>>,
    summary: Option<Val<(), SummaryRaw>>,
    failure_details: Option<Val<Read<FailureDetail>, ()>>,
}

struct EntryShape<'p> {
    /// The entry's path (`policies[3]`), for its failure details' warnings.
    path: &'p str,
}

impl<'de> Shape<'de> for EntryShape<'_> {
    type Array = ();
    type Object = EntryRaw;
    fn array<S: SeqAccess<'de>>(self, seq: S) -> Result<(), S::Error> {
        skip_seq(seq)
    }
    fn object<M: MapAccess<'de>>(self, map: M) -> Result<EntryRaw, M::Error> {
        let mut entry = EntryRaw {
            policy: None,
            summary: None,
            failure_details: None,
        };
        let path = self.path;
        members(
            map,
            &["policy", "summary", "failure-details"],
            |index, map| {
                match index {
                    0 => entry.policy = Some(map.next_value_seed(ValSeed(PolicyShape))?),
                    1 => entry.summary = Some(map.next_value_seed(ValSeed(SummaryShape))?),
                    _ => {
                        let shape = DetailsShape { path };
                        entry.failure_details = Some(map.next_value_seed(ValSeed(shape))?);
                    }
                }
                Ok(())
            },
        )?;
        Ok(entry)
    }
}

/// The members of an entry's `policy`.
struct PolicyRaw {
    policy_type: Option<Scalar>,
    policy_domain: Option<Scalar>,
    policy_string: Option<Val<Strings, ()>>,
    mx_host: Option<Val<Strings, ()>>,
}

struct PolicyShape;

impl<'de> Shape<'de> for PolicyShape {
    type Array = ();
    type Object = PolicyRaw;
    fn array<S: SeqAccess<'de>>(self, seq: S) -> Result<(), S::Error> {
        skip_seq(seq)
    }
    fn object<M: MapAccess<'de>>(self, map: M) -> Result<PolicyRaw, M::Error> {
        let mut policy = PolicyRaw {
            policy_type: None,
            policy_domain: None,
            policy_string: None,
            mx_host: None,
        };
        const NAMES: &[&str] = &["policy-type", "policy-domain", "policy-string", "mx-host"];
        members(map, NAMES, |index, map| {
            match index {
                0 => policy.policy_type = scalar(map)?,
                1 => policy.policy_domain = scalar(map)?,
                2 => policy.policy_string = Some(map.next_value_seed(ValSeed(StringsShape))?),
                _ => policy.mx_host = Some(map.next_value_seed(ValSeed(StringsShape))?),
            }
            Ok(())
        })?;
        Ok(policy)
    }
}

/// An array that should hold strings (`policy-string`, `mx-host`), by index. Past
/// [`MAX_WARNINGS`] items of another type, the report's warnings are full whatever else it
/// holds: the rest are only counted.
struct Strings {
    items: Vec<Item>,
    omitted: usize,
}

enum Item {
    Str(usize, String),
    Wrong(usize, &'static str),
}

struct StringsShape;

impl<'de> Shape<'de> for StringsShape {
    type Array = Strings;
    type Object = ();
    fn array<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Strings, S::Error> {
        let mut strings = Strings {
            items: Vec::new(),
            omitted: 0,
        };
        let mut wrong = 0;
        for index in 0.. {
            match seq.next_element_seed(ValSeed(Scalars))? {
                None => break,
                Some(Val::Str(text)) => strings.items.push(Item::Str(index, text)),
                Some(_) if wrong >= MAX_WARNINGS => strings.omitted += 1,
                Some(other) => {
                    wrong += 1;
                    strings.items.push(Item::Wrong(index, other.json_type()));
                }
            }
        }
        Ok(strings)
    }
    fn object<M: MapAccess<'de>>(self, map: M) -> Result<(), M::Error> {
        skip_map(map)
    }
}

/// The members of an entry's `summary`.
struct SummaryRaw {
    successful: Option<Scalar>,
    failure: Option<Scalar>,
}

struct SummaryShape;

impl<'de> Shape<'de> for SummaryShape {
    type Array = ();
    type Object = SummaryRaw;
    fn array<S: SeqAccess<'de>>(self, seq: S) -> Result<(), S::Error> {
        skip_seq(seq)
    }
    fn object<M: MapAccess<'de>>(self, map: M) -> Result<SummaryRaw, M::Error> {
        let mut summary = SummaryRaw {
            successful: None,
            failure: None,
        };
        const NAMES: &[&str] = &[
            "total-successful-session-count",
            "total-failure-session-count",
        ];
        members(map, NAMES, |index, map| {
            match index {
                0 => summary.successful = scalar(map)?,
                _ => summary.failure = scalar(map)?,
            }
            Ok(())
        })?;
        Ok(summary)
    }
}

/// `failure-details`: each entry becomes a [`FailureDetail`] (or a warning) as it is parsed.
struct DetailsShape<'p> {
    /// The path of the policies entry.
    path: &'p str,
}

impl<'de> Shape<'de> for DetailsShape<'_> {
    type Array = Read<FailureDetail>;
    type Object = ();
    fn array<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Read<FailureDetail>, S::Error> {
        let mut reader = Reader::default();
        let mut entries = Vec::new();
        for index in 0.. {
            let Some(detail) = seq.next_element_seed(ValSeed(DetailShape))? else {
                break;
            };
            let path = format!("{}.failure-details[{index}]", self.path);
            entries.extend(reader.failure_detail(detail, &path));
        }
        Ok(Read { entries, reader })
    }
    fn object<M: MapAccess<'de>>(self, map: M) -> Result<(), M::Error> {
        skip_map(map)
    }
}

/// The optional string members of a failure detail, in the order their warnings come.
const DETAIL_STRINGS: [&str; 6] = [
    "sending-mta-ip",
    "receiving-mx-hostname",
    "receiving-mx-helo",
    "receiving-ip",
    "additional-information",
    "failure-reason-code",
];

/// The members of a failure detail.
struct DetailRaw {
    result_type: Option<Scalar>,
    failed_session_count: Option<Scalar>,
    optional: [(&'static str, Option<Scalar>); 6],
}

struct DetailShape;

impl<'de> Shape<'de> for DetailShape {
    type Array = ();
    type Object = DetailRaw;
    fn array<S: SeqAccess<'de>>(self, seq: S) -> Result<(), S::Error> {
        skip_seq(seq)
    }
    fn object<M: MapAccess<'de>>(self, map: M) -> Result<DetailRaw, M::Error> {
        let mut detail = DetailRaw {
            result_type: None,
            failed_session_count: None,
            optional: DETAIL_STRINGS.map(|key| (key, None)),
        };
        const NAMES: &[&str] = &[
            "result-type",
            "failed-session-count",
            "sending-mta-ip",
            "receiving-mx-hostname",
            "receiving-mx-helo",
            "receiving-ip",
            "additional-information",
            "failure-reason-code",
        ];
        members(map, NAMES, |index, map| {
            match index {
                0 => detail.result_type = scalar(map)?,
                1 => detail.failed_session_count = scalar(map)?,
                other => {
                    if let Some((_, value)) = detail.optional.get_mut(other - 2) {
                        *value = scalar(map)?;
                    }
                }
            }
            Ok(())
        })?;
        Ok(detail)
    }
}

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
    // As serde_json::from_slice does: the value, then nothing but whitespace.
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let document = ValSeed(RootShape)
        .deserialize(&mut deserializer)
        .and_then(|document| deserializer.end().map(|()| document))
        .map_err(|error| ReportError::NotJson {
            line: error.line(),
            column: error.column(),
            reason: error.to_string(),
        })?;
    let Val::Object(root) = document else {
        return Err(ReportError::NotAnObject {
            found: document.json_type(),
        });
    };
    let organization_name = identity_string(root.organization_name, "organization-name")?;
    let report_id = identity_string(root.report_id, "report-id")?;
    let date_range = reader.date_range(root.date_range)?;
    let contact_info = match root.contact_info {
        None | Some(Val::Null) => {
            reader.warn("contact-info".to_owned(), ReportWarningKind::MissingField);
            None
        }
        value => reader.optional_string(value, "contact-info"),
    };
    let policies = reader.policies(root.policies);
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
fn identity_string(value: Option<Scalar>, key: &'static str) -> Result<String, ReportError> {
    match value {
        None | Some(Val::Null) => Err(ReportError::MissingField { path: key }),
        Some(Val::Str(text)) if text.trim().is_empty() => {
            Err(ReportError::EmptyField { path: key })
        }
        Some(Val::Str(text)) => Ok(text),
        Some(other) => Err(ReportError::WrongType {
            path: key,
            expected: "a string",
            found: other.json_type(),
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

    /// Takes the warnings of a part of the report read on its own (kept by the same rule), as
    /// if they had been given here.
    fn absorb(&mut self, part: Reader) {
        for warning in part.warnings {
            self.warn(warning.path, warning.kind);
        }
        self.omitted_warnings += part.omitted_warnings;
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

    fn date_range(&mut self, value: Option<Val<(), RangeRaw>>) -> Result<DateRange, ReportError> {
        let range = match value {
            None | Some(Val::Null) => {
                return Err(ReportError::MissingField { path: "date-range" });
            }
            Some(Val::Object(range)) => range,
            Some(other) => {
                return Err(ReportError::WrongType {
                    path: "date-range",
                    expected: "an object",
                    found: other.json_type(),
                });
            }
        };
        let start = self.timestamp(range.start, "date-range.start-datetime")?;
        let end = self.timestamp(range.end, "date-range.end-datetime")?;
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
        value: Option<Scalar>,
        path: &'static str,
    ) -> Result<Timestamp, ReportError> {
        let text = match value {
            None | Some(Val::Null) => return Err(ReportError::MissingField { path }),
            Some(Val::Str(text)) => text,
            Some(other) => {
                return Err(ReportError::WrongType {
                    path,
                    expected: "a string",
                    found: other.json_type(),
                });
            }
        };
        let (timestamp, zone) =
            parse_date_time(text.trim()).ok_or_else(|| ReportError::InvalidDate {
                path,
                value: excerpt(&text),
            })?;
        if zone == Zone::Missing {
            self.warn(path.to_owned(), ReportWarningKind::DateWithoutZone);
        }
        Ok(timestamp)
    }

    fn policies(&mut self, value: Option<Val<Read<PolicyResult>, ()>>) -> Vec<PolicyResult> {
        match value {
            None | Some(Val::Null) => {
                self.warn("policies".to_owned(), ReportWarningKind::MissingField);
                Vec::new()
            }
            Some(Val::Array(read)) => self.take(read),
            Some(other) => {
                self.warn(
                    "policies".to_owned(),
                    ReportWarningKind::WrongType {
                        expected: "an array",
                        found: other.json_type(),
                    },
                );
                Vec::new()
            }
        }
    }

    /// The entries of an array read on its own, its warnings now given here.
    fn take<T>(&mut self, read: Read<T>) -> Vec<T> {
        self.absorb(read.reader);
        read.entries
    }

    fn policy_result(&mut self, value: Val<(), EntryRaw>, path: &str) -> Option<PolicyResult> {
        let skip = |reader: &mut Self, path: String, reason: SkipReason| {
            reader.warn(path, ReportWarningKind::PolicySkipped { reason });
            None
        };
        let Val::Object(entry) = value else {
            return skip(self, path.to_owned(), SkipReason::NotAnObject);
        };
        let policy_path = format!("{path}.policy");
        let policy = match entry.policy {
            Some(Val::Object(policy)) => policy,
            other => return skip(self, policy_path, skip_reason(other.as_ref(), "an object")),
        };
        // A policy missing its type or domain still carries session counts: keep it (with an
        // empty value and a warning) so the report's totals stay right.
        let type_path = format!("{policy_path}.policy-type");
        let policy_type = match policy.policy_type {
            Some(Val::Str(name)) => PolicyType::from_name(&name),
            other => {
                self.warn_missing_or_wrong(type_path.clone(), other.as_ref(), "a string");
                PolicyType::Other(String::new())
            }
        };
        let domain_path = format!("{policy_path}.policy-domain");
        let policy_domain = match policy.policy_domain {
            Some(Val::Str(domain)) if !domain.trim().is_empty() => domain,
            other => {
                self.warn_missing_or_wrong(domain_path, other.as_ref(), "a string");
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
            policy.policy_string,
            &format!("{policy_path}.policy-string"),
            &policy_type,
        );
        let mx_host = self.mx_host(policy.mx_host, &format!("{policy_path}.mx-host"));
        let summary = self.summary(entry.summary, &format!("{path}.summary"));
        let failure_details =
            self.failure_details(entry.failure_details, &format!("{path}.failure-details"));
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
        value: Option<Val<Strings, ()>>,
        path: &str,
        policy_type: &PolicyType,
    ) -> Vec<String> {
        let mut entries = Vec::new();
        match value {
            None | Some(Val::Null) => {}
            Some(Val::Str(text)) => {
                self.warn(path.to_owned(), ReportWarningKind::PolicyStringAsString);
                self.policy_string_entry(&text, path, policy_type, &mut entries);
            }
            Some(Val::Array(strings)) => {
                for item in strings.items {
                    match item {
                        Item::Str(index, text) => {
                            let item_path = format!("{path}[{index}]");
                            self.policy_string_entry(&text, &item_path, policy_type, &mut entries);
                        }
                        Item::Wrong(index, found) => {
                            self.warn_found(format!("{path}[{index}]"), "a string", found);
                        }
                    }
                }
                self.omitted_warnings += strings.omitted;
            }
            Some(other) => self.warn_wrong_type(path.to_owned(), "an array of strings", &other),
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

    fn mx_host(&mut self, value: Option<Val<Strings, ()>>, path: &str) -> Vec<String> {
        match value {
            None | Some(Val::Null) => Vec::new(),
            Some(Val::Str(pattern)) => {
                self.warn(path.to_owned(), ReportWarningKind::MxHostAsString);
                vec![pattern]
            }
            Some(Val::Array(strings)) => {
                let mut patterns = Vec::with_capacity(strings.items.len());
                for item in strings.items {
                    match item {
                        Item::Str(_, pattern) => patterns.push(pattern),
                        Item::Wrong(index, found) => {
                            self.warn_found(format!("{path}[{index}]"), "a string", found);
                        }
                    }
                }
                self.omitted_warnings += strings.omitted;
                patterns
            }
            Some(other) => {
                self.warn_wrong_type(path.to_owned(), "an array of strings", &other);
                Vec::new()
            }
        }
    }

    fn summary(&mut self, value: Option<Val<(), SummaryRaw>>, path: &str) -> SessionSummary {
        match value {
            Some(Val::Object(summary)) => SessionSummary {
                total_successful_session_count: self.count(
                    summary.successful,
                    "total-successful-session-count",
                    path,
                ),
                total_failure_session_count: self.count(
                    summary.failure,
                    "total-failure-session-count",
                    path,
                ),
            },
            None | Some(Val::Null) => {
                self.warn(path.to_owned(), ReportWarningKind::MissingField);
                SessionSummary::default()
            }
            Some(other) => {
                self.warn_wrong_type(path.to_owned(), "an object", &other);
                SessionSummary::default()
            }
        }
    }

    fn failure_details(
        &mut self,
        value: Option<Val<Read<FailureDetail>, ()>>,
        path: &str,
    ) -> Vec<FailureDetail> {
        match value {
            // Senders leave the array out when nothing failed.
            None | Some(Val::Null) => Vec::new(),
            Some(Val::Array(read)) => self.take(read),
            Some(other) => {
                self.warn_wrong_type(path.to_owned(), "an array", &other);
                Vec::new()
            }
        }
    }

    fn failure_detail(&mut self, value: Val<(), DetailRaw>, path: &str) -> Option<FailureDetail> {
        let skip = |reader: &mut Self, path: String, reason: SkipReason| {
            reader.warn(path, ReportWarningKind::FailureDetailSkipped { reason });
            None
        };
        let Val::Object(detail) = value else {
            return skip(self, path.to_owned(), SkipReason::NotAnObject);
        };
        let type_path = format!("{path}.result-type");
        let result_type = match detail.result_type {
            Some(Val::Str(name)) => ResultType::from_name(&name),
            other => return skip(self, type_path, skip_reason(other.as_ref(), "a string")),
        };
        if let ResultType::Other(name) = &result_type {
            self.warn(
                type_path,
                ReportWarningKind::UnknownResultType {
                    value: excerpt(name),
                },
            );
        }
        let failed_session_count =
            self.count(detail.failed_session_count, "failed-session-count", path);
        let [
            sending_mta_ip,
            receiving_mx_hostname,
            receiving_mx_helo,
            receiving_ip,
            additional_information,
            failure_reason_code,
        ] = detail
            .optional
            .map(|(key, value)| self.optional_string(value, &format!("{path}.{key}")));
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
    fn optional_string(&mut self, value: Option<Scalar>, path: &str) -> Option<String> {
        match value {
            None | Some(Val::Null) => None,
            Some(Val::Str(text)) => Some(text),
            Some(other) => {
                self.warn_wrong_type(path.to_owned(), "a string", &other);
                None
            }
        }
    }

    /// A session count: RFC 8460 wants a JSON number; senders also send strings of digits.
    fn count(&mut self, value: Option<Scalar>, key: &str, parent_path: &str) -> u64 {
        let path = || format!("{parent_path}.{key}");
        match value {
            None | Some(Val::Null) => {
                self.warn(path(), ReportWarningKind::MissingField);
                0
            }
            Some(Val::Number(Num::U64(count))) => count,
            Some(Val::Number(Num::Other(value))) => {
                self.warn(path(), ReportWarningKind::InvalidCount { value });
                0
            }
            Some(Val::Str(text)) => match parse_decimal_count(&text) {
                Some(count) => {
                    self.warn(path(), ReportWarningKind::CountAsString);
                    count
                }
                None => {
                    let value = excerpt(&text);
                    self.warn(path(), ReportWarningKind::InvalidCount { value });
                    0
                }
            },
            Some(other) => {
                self.warn_wrong_type(path(), "a number", &other);
                0
            }
        }
    }

    /// A field that is absent, null, empty, or of another type: [`ReportWarningKind::MissingField`]
    /// or [`ReportWarningKind::WrongType`].
    fn warn_missing_or_wrong(
        &mut self,
        path: String,
        value: Option<&Scalar>,
        expected: &'static str,
    ) {
        match value {
            None | Some(Val::Null) | Some(Val::Str(_)) => {
                self.warn(path, ReportWarningKind::MissingField);
            }
            Some(other) => self.warn_wrong_type(path, expected, other),
        }
    }

    fn warn_wrong_type<A, O>(&mut self, path: String, expected: &'static str, found: &Val<A, O>) {
        self.warn_found(path, expected, found.json_type());
    }

    fn warn_found(&mut self, path: String, expected: &'static str, found: &'static str) {
        self.warn(path, ReportWarningKind::WrongType { expected, found });
    }
}

/// Why a required field of an entry cannot be used.
fn skip_reason<A, O>(value: Option<&Val<A, O>>, expected: &'static str) -> SkipReason {
    match value {
        None | Some(Val::Null) => SkipReason::MissingField,
        Some(other) => SkipReason::WrongType {
            expected,
            found: other.json_type(),
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
