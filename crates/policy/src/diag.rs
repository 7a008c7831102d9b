//! Diagnostics: what is wrong (or risky) in a record or policy, where, and what to do.

use serde::Serialize;

/// How bad a finding is.
///
/// An [`Error`](Severity::Error) makes the record or policy unusable for a compliant sender;
/// a [`Warning`](Severity::Warning) is a risk or a hygiene problem that senders tolerate;
/// [`Info`](Severity::Info) is worth knowing but needs no action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing to fix.
    Info,
    /// Tolerated by senders, but risky or against the RFC's advice.
    Warning,
    /// A compliant sender cannot use the record or policy.
    Error,
}

impl Severity {
    /// The lowercase name used in human and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding about a record or a policy.
///
/// `code` is stable kebab-case, meant for programs and documentation; `message` is for people.
/// `line` and `column` are 1-based; the column counts characters of the line as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error, warning or info.
    pub severity: Severity,
    /// Stable identifier, e.g. `invalid-max-age`.
    pub code: &'static str,
    /// 1-based line (always 1 for a TXT record).
    pub line: u32,
    /// 1-based column within the line.
    pub column: u32,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The RFC section that states the rule, e.g. `RFC 8461 §3.2`.
    pub rfc: &'static str,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic without a hint.
    pub fn new(
        severity: Severity,
        code: &'static str,
        (line, column): (u32, u32),
        rfc: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity,
            code,
            line,
            column,
            message: message.into(),
            rfc,
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// True for [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Most diagnostics one input can produce; past this, one last diagnostic says so.
///
/// Garbage input (a binary file, an HTML page) would otherwise yield one diagnostic per line.
pub const MAX_DIAGNOSTICS: usize = 100;

/// A list of diagnostics that stops growing at [`MAX_DIAGNOSTICS`].
///
/// Past the cap one `too-many-diagnostics` entry stands for the rest; it is an error as soon as
/// any dropped diagnostic is, so the verdict never depends on the cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiagnosticList {
    items: Vec<Diagnostic>,
}

impl DiagnosticList {
    /// Adds a diagnostic unless the cap is reached.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        if self.items.len() < MAX_DIAGNOSTICS {
            self.items.push(diagnostic);
        } else if self.items.len() == MAX_DIAGNOSTICS {
            self.items.push(Diagnostic::new(
                diagnostic.severity.max(Severity::Warning),
                "too-many-diagnostics",
                (diagnostic.line, diagnostic.column),
                "",
                format!("more than {MAX_DIAGNOSTICS} problems; the rest are not shown"),
            ));
        } else if let Some(last) = self.items.last_mut() {
            last.severity = last.severity.max(diagnostic.severity);
        }
    }

    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    /// The diagnostics, in the order they were found.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }
}

/// The outcome of linting one input: the value when a compliant sender can use it, and every
/// diagnostic found on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint<T> {
    /// The parsed value; `None` when any diagnostic is an error.
    pub value: Option<T>,
    /// Every finding, in input order.
    pub diagnostics: Vec<Diagnostic>,
}

impl<T> Lint<T> {
    /// Builds the outcome; the value is dropped when any diagnostic is an error.
    pub fn new(value: Option<T>, diagnostics: DiagnosticList) -> Self {
        let value = if diagnostics.has_errors() {
            None
        } else {
            value
        };
        Lint {
            value,
            diagnostics: diagnostics.into_vec(),
        }
    }

    /// True when a compliant sender can use the input (warnings allowed).
    pub fn is_valid(&self) -> bool {
        self.value.is_some()
    }

    /// The first error, if any.
    pub fn first_error(&self) -> Option<&Diagnostic> {
        self.diagnostics.iter().find(|d| d.is_error())
    }
}
