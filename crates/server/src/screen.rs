//! What the intake learns from a report before handing it to the sink: who sent it and which
//! domains it is about, for the log line of every report and for `intake.accept`.

use std::collections::HashMap;

use mta_sts_tlsrpt::report::ReadReport;

/// Longest reporter name or report-id put in a log line, in characters; the sender chooses
/// them, and a megabyte-long name must not become a megabyte-long line.
const MAX_SHOWN: usize = 120;

/// The parts of a readable report the intake logs and screens by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    /// `organization-name`, capped for the log (whose formatter quotes and escapes fields).
    pub reporter: String,
    /// `report-id`, capped for the log.
    pub report_id: String,
    /// Every `policy-domain`, lowercase, without trailing dot, in report order.
    domains: Vec<String>,
}

impl Summary {
    /// The summary of a report the intake has read.
    pub(crate) fn of(read: &ReadReport) -> Summary {
        let report = &read.report;
        Summary {
            reporter: capped(&report.organization_name),
            report_id: capped(&report.report_id),
            domains: report
                .policies
                .iter()
                .map(|p| {
                    p.policy
                        .policy_domain
                        .trim_end_matches('.')
                        .to_ascii_lowercase()
                })
                .collect(),
        }
    }

    /// Why `intake.accept = "configured"` refuses the report, or `None` when every policy
    /// domain in it is served here (`policies` is the table of policy hosts).
    pub(crate) fn refusal<T>(&self, policies: &HashMap<String, T>) -> Option<String> {
        if self.domains.is_empty() {
            return Some("the report names no policy-domain".to_owned());
        }
        let foreign = self
            .domains
            .iter()
            .find(|domain| !policies.contains_key(&format!("mta-sts.{domain}")))?;
        Some(format!(
            "reports about {} are not accepted here: this intake takes reports only for the domains it serves",
            shown(foreign)
        ))
    }
}

/// `text` cut at [`MAX_SHOWN`] characters (with `…` when cut).
fn capped(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_SHOWN).collect();
    if text.chars().nth(MAX_SHOWN).is_some() {
        out.push('…');
    }
    out
}

/// `text` capped and escaped (control characters, quotes, backslashes), for a log message or
/// an answer, so one log line stays one readable line.
pub(crate) fn shown(text: &str) -> String {
    capped(text).escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_text_is_one_escaped_capped_line() {
        assert_eq!(shown("Example\n\u{1b}[31mx"), "Example\\n\\u{1b}[31mx");
        let long = "a".repeat(500);
        assert_eq!(shown(&long).chars().count(), MAX_SHOWN + 1);
    }

    #[test]
    fn a_report_is_refused_when_any_policy_domain_is_not_served() {
        let summary = |domains: &[&str]| Summary {
            reporter: String::new(),
            report_id: String::new(),
            domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        };
        let policies: HashMap<String, ()> = [("mta-sts.example.com".to_owned(), ())].into();
        assert_eq!(summary(&["example.com"]).refusal(&policies), None);
        let refusal = summary(&["example.com", "example.org"])
            .refusal(&policies)
            .unwrap();
        assert!(refusal.starts_with("reports about example.org are not accepted"));
        assert!(summary(&[]).refusal(&policies).is_some());
    }
}
