//! Findings: one problem (or fact worth knowing) about a domain, with its evidence and fix.

use mta_sts_policy::{Diagnostic, Severity};
use serde::Serialize;

/// Which part of the setup a finding is about; findings are grouped by it in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Area {
    /// The domain as a whole: it does not exist, or nothing could be looked up.
    Domain,
    /// The `_mta-sts` TXT record.
    StsRecord,
    /// The policy host and the policy file.
    Policy,
    /// The MX records and their coverage by the policy.
    Mx,
    /// STARTTLS, TLS and certificates of the MX hosts.
    Smtp,
    /// The `_smtp._tls` TXT record.
    TlsRpt,
}

impl Area {
    /// A heading for people.
    pub fn title(self) -> &'static str {
        match self {
            Area::Domain => "Domain",
            Area::StsRecord => "MTA-STS record",
            Area::Policy => "Policy",
            Area::Mx => "MX hosts",
            Area::Smtp => "STARTTLS on MX hosts",
            Area::TlsRpt => "TLS-RPT record",
        }
    }

    /// Every area, in report order.
    pub const ALL: [Area; 6] = [
        Area::Domain,
        Area::StsRecord,
        Area::Policy,
        Area::Mx,
        Area::Smtp,
        Area::TlsRpt,
    ];
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable kebab-case code, e.g. `smtp-cert-expired`.
    pub code: String,
    /// Error: senders fail or cannot use the setup; warning: a risk, or not protected yet;
    /// info: worth knowing.
    pub severity: Severity,
    /// The part of the setup.
    pub area: Area,
    /// What it is about: a DNS name, a URL, `mx1.example.com [192.0.2.1]:25`.
    pub subject: String,
    /// What is wrong, in one sentence.
    pub message: String,
    /// What was seen.
    pub evidence: String,
    /// The RFC section with the rule.
    pub rfc: &'static str,
    /// What to do, in one line.
    pub fix: String,
}

impl Finding {
    /// A finding; `evidence` and `fix` may be empty.
    pub fn new(
        code: impl Into<String>,
        severity: Severity,
        area: Area,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            code: code.into(),
            severity,
            area,
            subject: subject.into(),
            message: message.into(),
            evidence: String::new(),
            rfc: "",
            fix: String::new(),
        }
    }

    /// Adds what was seen.
    pub fn evidence(mut self, evidence: impl Into<String>) -> Self {
        self.evidence = evidence.into();
        self
    }

    /// Adds the RFC section.
    pub fn rfc(mut self, rfc: &'static str) -> Self {
        self.rfc = rfc;
        self
    }

    /// Adds the fix.
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }

    /// A linter diagnostic about a record or policy, as a finding: its code gets `prefix`
    /// (`policy-invalid-max-age`), its position becomes part of the evidence.
    pub fn from_diagnostic(prefix: &str, area: Area, subject: &str, d: &Diagnostic) -> Self {
        Finding {
            code: format!("{prefix}-{}", d.code),
            severity: d.severity,
            area,
            subject: subject.to_owned(),
            message: d.message.clone(),
            evidence: format!("line {}, column {}", d.line, d.column),
            rfc: d.rfc,
            fix: d.hint.clone().unwrap_or_default(),
        }
    }
}
