//! Human output: diagnostics with line/column pointers, optional colour.

use std::fmt::Write;
use std::io::IsTerminal;

use mta_sts_policy::{Diagnostic, Severity};

use crate::args::ColorChoice;

/// Whether to colour output.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    color: bool,
}

impl Style {
    /// Colour on a terminal unless NO_COLOR is set, or as the user asked.
    pub fn detect(choice: ColorChoice) -> Style {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        };
        Style { color }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// Bold.
    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    /// Green, for good news.
    pub fn good(self, text: &str) -> String {
        self.paint("1;32", text)
    }

    /// Yellow, for warnings.
    pub fn warn(self, text: &str) -> String {
        self.paint("1;33", text)
    }

    /// Cyan, for notes.
    pub fn note(self, text: &str) -> String {
        self.paint("1;36", text)
    }

    /// Red, for errors.
    pub fn bad(self, text: &str) -> String {
        self.paint("1;31", text)
    }

    fn severity(self, severity: Severity) -> String {
        let code = match severity {
            Severity::Error => "1;31",
            Severity::Warning => "1;33",
            Severity::Info => "1;36",
        };
        self.paint(code, severity.as_str())
    }
}

/// Where diagnostics point: a name to print and, when there is one, the text they point into.
pub struct Source<'a> {
    /// File name or label, e.g. `mta-sts.txt` or `_mta-sts record`.
    pub name: &'a str,
    /// The text, for showing the offending line.
    pub text: Option<&'a str>,
}

/// Renders diagnostics like a compiler: header, location, source line with a caret, RFC and hint.
///
/// A diagnostic with line 0 has no position: only the source name is shown.
pub fn diagnostics(source: &Source<'_>, diagnostics: &[Diagnostic], style: Style) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let _ = writeln!(
            out,
            "{}{} {}",
            style.severity(d.severity),
            style.bold(&format!("[{}]:", d.code)),
            clean(&d.message)
        );
        if d.line == 0 {
            let _ = writeln!(out, "  --> {}", source.name);
        } else {
            let _ = writeln!(out, "  --> {}:{}:{}", source.name, d.line, d.column);
        }
        let line = source
            .text
            .and_then(|t| t.split('\n').nth(d.line.saturating_sub(1) as usize));
        if let Some(line) = line {
            let line = line.trim_end_matches('\r');
            let number = d.line.to_string();
            let pad = " ".repeat(number.len());
            let shown: String = line.chars().take(120).map(visible).collect();
            let caret_at = (d.column.saturating_sub(1) as usize).min(shown.chars().count());
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{number} | {shown}");
            let _ = writeln!(
                out,
                "{pad} | {}{}",
                " ".repeat(caret_at),
                style.severity_caret(d.severity)
            );
        }
        if !d.rfc.is_empty() {
            let _ = writeln!(out, "   = {}", d.rfc);
        }
        if let Some(hint) = &d.hint {
            let _ = writeln!(out, "   = hint: {}", clean(hint));
        }
        out.push('\n');
    }
    out
}

impl Style {
    fn severity_caret(self, severity: Severity) -> String {
        let code = match severity {
            Severity::Error => "1;31",
            Severity::Warning => "1;33",
            Severity::Info => "1;36",
        };
        self.paint(code, "^")
    }
}

/// Text from the network or a file, safe for a terminal: control characters (escape sequences
/// could recolour or retitle the user's terminal) are shown escaped, e.g. `\u{1b}`.
pub fn clean(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Control characters shown as visible symbols, so a pointer lines up with what is printed.
fn visible(c: char) -> char {
    match c {
        '\t' => ' ',
        c if c.is_control() => '\u{fffd}',
        c => c,
    }
}

/// The errors of an invalid policy file, pointing into its text.
pub fn policy_errors(
    name: &str,
    body: &[u8],
    lint: &mta_sts_policy::PolicyLint,
    style: Style,
) -> String {
    let text = String::from_utf8_lossy(body);
    let errors: Vec<_> = lint.errors().cloned().collect();
    let source = Source {
        name,
        text: Some(&text),
    };
    diagnostics(&source, &errors, style)
}

/// "2 errors, 1 warning" style count.
pub fn counts(diagnostics: &[Diagnostic]) -> String {
    let count = |s| diagnostics.iter().filter(|d| d.severity == s).count();
    let mut parts = Vec::new();
    // "info" is a mass noun: "2 info", as the diagnostics are labelled.
    for (severity, one, many) in [
        (Severity::Error, "error", "errors"),
        (Severity::Warning, "warning", "warnings"),
        (Severity::Info, "info", "info"),
    ] {
        match count(severity) {
            0 => {}
            1 => parts.push(format!("1 {one}")),
            n => parts.push(format!("{n} {many}")),
        }
    }
    if parts.is_empty() {
        "no problems".to_owned()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            clean("mode \u{1b}[31mEVIL\u{7}"),
            "mode \\u{1b}[31mEVIL\\u{7}"
        );
        assert!(matches!(clean("plain"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn caret_points_at_the_column() {
        let d = Diagnostic::new(
            Severity::Error,
            "invalid-mode",
            (2, 7),
            "RFC 8461 §3.2",
            "bad mode",
        )
        .hint("fix it");
        let text = "version: STSv1\nmode: Enforce\n";
        let out = diagnostics(
            &Source {
                name: "p.txt",
                text: Some(text),
            },
            &[d],
            Style { color: false },
        );
        assert_eq!(
            out,
            "error[invalid-mode]: bad mode\n  --> p.txt:2:7\n  |\n2 | mode: Enforce\n  |       ^\n   = RFC 8461 §3.2\n   = hint: fix it\n\n"
        );
    }
}
