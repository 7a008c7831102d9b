//! The strict writer: RFC 8460 §4.4 JSON, nothing else.
//!
//! Written by hand rather than through `serde_json` so that writing cannot fail and fields come
//! out in the RFC's order.

use super::{FailureDetail, PolicyResult, Report};

pub(super) fn write_report(report: &Report) -> String {
    let mut out = String::with_capacity(1024);
    let mut root = ObjectWriter::open(&mut out);
    root.string("organization-name", &report.organization_name);
    let mut range = ObjectWriter::open(root.key("date-range"));
    range.string("start-datetime", &report.date_range.start.to_string());
    range.string("end-datetime", &report.date_range.end.to_string());
    range.close();
    if let Some(contact_info) = &report.contact_info {
        root.string("contact-info", contact_info);
    }
    root.string("report-id", &report.report_id);
    let policies = root.key("policies");
    policies.push('[');
    for (index, policy) in report.policies.iter().enumerate() {
        if index > 0 {
            policies.push(',');
        }
        write_policy_result(policies, policy);
    }
    policies.push(']');
    root.close();
    out
}

fn write_policy_result(out: &mut String, result: &PolicyResult) {
    let mut entry = ObjectWriter::open(out);
    let mut policy = ObjectWriter::open(entry.key("policy"));
    policy.string("policy-type", result.policy.policy_type.as_str());
    policy.strings("policy-string", &result.policy.policy_string);
    policy.string("policy-domain", &result.policy.policy_domain);
    // `mx-host` describes an STS policy's patterns; other policy types have none to write.
    if !result.policy.mx_host.is_empty() {
        policy.strings("mx-host", &result.policy.mx_host);
    }
    policy.close();
    let mut summary = ObjectWriter::open(entry.key("summary"));
    summary.number(
        "total-successful-session-count",
        result.summary.total_successful_session_count,
    );
    summary.number(
        "total-failure-session-count",
        result.summary.total_failure_session_count,
    );
    summary.close();
    let details = entry.key("failure-details");
    details.push('[');
    for (index, detail) in result.failure_details.iter().enumerate() {
        if index > 0 {
            details.push(',');
        }
        write_failure_detail(details, detail);
    }
    details.push(']');
    entry.close();
}

fn write_failure_detail(out: &mut String, detail: &FailureDetail) {
    let mut object = ObjectWriter::open(out);
    object.string("result-type", detail.result_type.as_str());
    let optional_fields = [
        ("sending-mta-ip", &detail.sending_mta_ip),
        ("receiving-mx-hostname", &detail.receiving_mx_hostname),
        ("receiving-mx-helo", &detail.receiving_mx_helo),
        ("receiving-ip", &detail.receiving_ip),
    ];
    for (key, value) in optional_fields {
        if let Some(value) = value {
            object.string(key, value);
        }
    }
    object.number("failed-session-count", detail.failed_session_count);
    let optional_fields = [
        ("additional-information", &detail.additional_information),
        ("failure-reason-code", &detail.failure_reason_code),
    ];
    for (key, value) in optional_fields {
        if let Some(value) = value {
            object.string(key, value);
        }
    }
    object.close();
}

/// Writes one JSON object's members, with the commas between them.
struct ObjectWriter<'a> {
    out: &'a mut String,
    has_members: bool,
}

impl<'a> ObjectWriter<'a> {
    fn open(out: &'a mut String) -> Self {
        out.push('{');
        Self {
            out,
            has_members: false,
        }
    }

    /// Starts a member; the caller writes its value into the returned string.
    fn key(&mut self, key: &str) -> &mut String {
        if self.has_members {
            self.out.push(',');
        }
        self.has_members = true;
        write_string(self.out, key);
        self.out.push(':');
        self.out
    }

    fn string(&mut self, key: &str, value: &str) {
        write_string(self.key(key), value);
    }

    fn number(&mut self, key: &str, value: u64) {
        self.key(key).push_str(&value.to_string());
    }

    fn strings(&mut self, key: &str, values: &[String]) {
        let out = self.key(key);
        out.push('[');
        for (index, value) in values.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            write_string(out, value);
        }
        out.push(']');
    }

    fn close(self) {
        self.out.push('}');
    }
}

/// A JSON string literal (RFC 8259 §7): quote, backslash and control characters escaped.
fn write_string(out: &mut String, value: &str) {
    out.push('"');
    for character in value.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            control if u32::from(control) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(control)));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}
