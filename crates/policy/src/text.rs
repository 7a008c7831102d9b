//! The policy file served at `https://mta-sts.<domain>/.well-known/mta-sts.txt`
//! (RFC 8461 §3.2): parse, lint, serialize.

use std::borrow::Cow;

use serde::Serialize;

use crate::diag::{Diagnostic, DiagnosticList, Severity};
use crate::mx::MxPattern;
use crate::record::first_error;
use crate::taglist::is_field_name;

const RFC_POLICY: &str = "RFC 8461 §3.2";
const RFC_FETCH: &str = "RFC 8461 §3.3";

/// Largest policy a sender is expected to read (RFC 8461 §3.3 suggests 64 kilobytes).
pub const MAX_POLICY_SIZE: usize = 64 * 1024;
/// Largest `max_age` (one year, RFC 8461 §3.2).
pub const MAX_MAX_AGE: u32 = 31_557_600;
/// Below this `max_age` (one day) a policy is refetched so often that blocking the refresh
/// strips protection quickly.
pub const MIN_SAFE_MAX_AGE: u32 = 86_400;
/// The `max_age` range that suits `testing`: 1–2 weeks, long enough to gather reports, short
/// enough to change course.
pub const TESTING_MAX_AGE: std::ops::RangeInclusive<u32> = 604_800..=1_209_600;

/// What a sender does when validation fails (RFC 8461 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Do not deliver to hosts that fail validation.
    Enforce,
    /// Deliver anyway, and report failures through TLS-RPT.
    Testing,
    /// Treat the domain as having no policy.
    None,
}

impl Mode {
    /// The value as written in a policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }

    /// The `max_age` to publish in this mode: 1 week while `testing` (change course quickly),
    /// 2 weeks in `enforce` (raise it once stable), 1 day for `none` (on the way out).
    pub fn recommended_max_age(self) -> u32 {
        match self {
            Mode::Testing => *TESTING_MAX_AGE.start(),
            Mode::Enforce => *TESTING_MAX_AGE.end(),
            Mode::None => MIN_SAFE_MAX_AGE,
        }
    }

    /// Parses a mode value; values are case-sensitive.
    pub fn parse(value: &str) -> Option<Mode> {
        match value {
            "enforce" => Some(Mode::Enforce),
            "testing" => Some(Mode::Testing),
            "none" => Some(Mode::None),
            _ => None,
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid MTA-STS policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Always `STSv1`.
    pub version: &'static str,
    /// What senders do on failure.
    pub mode: Mode,
    /// Allowed MX host patterns (may be empty only with mode `none`).
    pub mx: Vec<MxPattern>,
    /// How long senders may cache the policy, in seconds.
    pub max_age: u32,
    /// Fields not defined by RFC 8461, in file order; senders ignore them.
    pub extensions: Vec<(String, String)>,
}

/// Everything read from a policy file, valid or not: what `lint --json` shows as `parsed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyFields {
    /// The first `version` value.
    pub version: Option<Cow<'static, str>>,
    /// The first valid `mode`.
    pub mode: Option<Mode>,
    /// Every valid `mx` pattern.
    pub mx: Vec<MxPattern>,
    /// The first valid `max_age`.
    pub max_age: Option<u32>,
    /// Other fields.
    pub extensions: Vec<(String, String)>,
}

/// The outcome of [`Policy::lint`]: the fields read and every diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLint {
    /// What was read, even from an invalid policy.
    pub fields: PolicyFields,
    /// Every finding, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl PolicyLint {
    /// True when a compliant sender can use the policy (warnings allowed).
    pub fn is_valid(&self) -> bool {
        let f = &self.fields;
        f.version.is_some()
            && f.mode.is_some()
            && f.max_age.is_some()
            && !self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The first error, if any.
    pub fn first_error(&self) -> Option<&Diagnostic> {
        self.errors().next()
    }

    /// The errors, without warnings and notes.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    /// The policy, when it is valid.
    pub fn policy(&self) -> Option<Policy> {
        self.clone().into_policy()
    }

    /// The policy, when it is valid, without copying the fields.
    pub fn into_policy(self) -> Option<Policy> {
        if !self.is_valid() {
            return None;
        }
        let f = self.fields;
        Some(Policy {
            version: "STSv1",
            mode: f.mode?,
            mx: f.mx,
            max_age: f.max_age?,
            extensions: f.extensions,
        })
    }
}

impl Policy {
    /// Parses a policy body; the error is the first problem that makes it unusable.
    pub fn parse(body: &[u8]) -> Result<Policy, Diagnostic> {
        let lint = Policy::lint(body);
        let error = lint.first_error().cloned();
        lint.into_policy()
            .ok_or_else(|| first_error(error.into_iter().collect()))
    }

    /// Parses a policy body and reports every finding.
    pub fn lint(body: &[u8]) -> PolicyLint {
        let mut reader = Reader::default();
        reader.read(body);
        reader.finish()
    }

    /// The policy in canonical form: `version` first, `mode`, one `mx` per line, extensions,
    /// `max_age` last; CRLF line ends, as RFC 8461 §3.2 describes.
    pub fn to_text(&self) -> String {
        let mut text = String::with_capacity(64 + self.mx.len() * 32);
        let mut line = |key: &str, value: &dyn std::fmt::Display| {
            use std::fmt::Write;
            // Writing to a String cannot fail.
            let _ = write!(text, "{key}: {value}\r\n");
        };
        line("version", &self.version);
        line("mode", &self.mode);
        for mx in &self.mx {
            line("mx", mx);
        }
        for (name, value) in &self.extensions {
            line(name, value);
        }
        line("max_age", &self.max_age);
        text
    }

    /// The first pattern that covers `host` (an MX host name, normalized or not), if any.
    pub fn matching_mx(&self, host: &str) -> Option<&MxPattern> {
        let host = crate::mx::normalize_host(host).ok()?;
        self.mx.iter().find(|p| p.matches(&host))
    }
}

/// Reads a policy body line by line.
#[derive(Default)]
struct Reader {
    fields: PolicyFields,
    diagnostics: DiagnosticList,
    /// Line of the first `version`, `mode`, `max_age` (for duplicate reports).
    seen: [Option<u32>; 3],
    lf_lines: u32,
    crlf_lines: u32,
    /// The body was not read at all (empty or too large): no point listing missing keys.
    unread: bool,
}

const VERSION: usize = 0;
const MODE: usize = 1;
const MAX_AGE: usize = 2;

/// One line of the policy, without its line end.
#[derive(Clone, Copy)]
struct Line<'a> {
    text: &'a str,
    number: u32,
}

impl Line<'_> {
    /// (line, 1-based character column) of a byte offset in the line.
    fn at(self, offset: usize) -> (u32, u32) {
        (self.number, column(self.text, offset))
    }
}

/// A place in the policy: computing its column is left until a diagnostic needs it.
#[derive(Clone, Copy)]
struct Pos<'a> {
    line: Line<'a>,
    offset: usize,
}

impl Pos<'_> {
    fn at(self) -> (u32, u32) {
        self.line.at(self.offset)
    }

    fn number(self) -> u32 {
        self.line.number
    }
}

impl From<Pos<'_>> for (u32, u32) {
    fn from(pos: Pos<'_>) -> Self {
        pos.at()
    }
}

/// 1-based character column of byte offset `at` in `line`.
fn column(line: &str, at: usize) -> u32 {
    let chars = line.get(..at).map_or(at, |head| head.chars().count());
    u32::try_from(chars).unwrap_or(u32::MAX).saturating_add(1)
}

fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

impl Reader {
    fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        at: impl Into<(u32, u32)>,
        message: impl Into<String>,
        hint: &str,
    ) {
        let d = Diagnostic::new(severity, code, at.into(), RFC_POLICY, message);
        self.diagnostics
            .push(if hint.is_empty() { d } else { d.hint(hint) });
    }

    fn read(&mut self, body: &[u8]) {
        if body.len() > MAX_POLICY_SIZE {
            self.diagnostics.push(
                Diagnostic::new(
                    Severity::Error,
                    "policy-too-large",
                    (1, 1),
                    RFC_FETCH,
                    format!(
                        "policy is {} bytes; senders stop reading at {MAX_POLICY_SIZE}",
                        body.len()
                    ),
                )
                .hint("a policy is a few lines; check that this is the right file"),
            );
            self.unread = true;
            return;
        }
        if body.is_empty() {
            self.push(
                Severity::Error,
                "empty-policy",
                (1, 1),
                "policy is empty",
                "a policy needs version, mode, mx and max_age lines",
            );
            self.unread = true;
            return;
        }
        let text = match std::str::from_utf8(body) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(e) => {
                let good = body.get(..e.valid_up_to()).unwrap_or_default();
                let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
                let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                let col = String::from_utf8_lossy(good.get(line_start..).unwrap_or_default())
                    .chars()
                    .count()
                    + 1;
                self.push(
                    Severity::Error,
                    "invalid-utf8",
                    (
                        u32::try_from(line).unwrap_or(u32::MAX),
                        u32::try_from(col).unwrap_or(u32::MAX),
                    ),
                    "policy is not valid UTF-8",
                    "save the file as UTF-8 (plain ASCII is best)",
                );
                String::from_utf8_lossy(body)
            }
        };
        let text = match text.strip_prefix('\u{feff}') {
            Some(rest) => {
                self.push(
                    Severity::Error,
                    "byte-order-mark",
                    (1, 1),
                    "policy starts with a byte-order mark, so senders do not see its first key",
                    "save the file as UTF-8 without BOM",
                );
                rest
            }
            None => &text,
        };
        let bytes = text.as_bytes();
        let mut start = 0;
        let mut number: u32 = 0;
        while start < bytes.len() {
            number = number.saturating_add(1);
            // One pass over the line: its end, its first ':' and its first '\r'.
            let (mut end, mut colon, mut cr) = (start, None, None);
            while let Some(&b) = bytes.get(end) {
                match b {
                    b'\n' => break,
                    b':' if colon.is_none() => colon = Some(end - start),
                    b'\r' if cr.is_none() => cr = Some(end - start),
                    _ => {}
                }
                end += 1;
            }
            let terminated = end < bytes.len();
            let mut line = text.get(start..end).unwrap_or_default();
            if terminated && cr == Some(line.len().wrapping_sub(1)) {
                // CRLF: the '\r' belongs to the line end.
                line = line.get(..line.len() - 1).unwrap_or_default();
                cr = None;
                self.crlf_lines += 1;
            } else if terminated {
                self.lf_lines += 1;
            }
            self.read_line(Line { text: line, number }, colon, cr);
            start = end + 1;
        }
        if self.lf_lines > 0 && self.crlf_lines > 0 {
            self.push(
                Severity::Info,
                "mixed-line-endings",
                (1, 1),
                "policy mixes LF and CRLF line ends",
                "use CRLF (or LF) throughout",
            );
        }
    }

    fn read_line(&mut self, line: Line<'_>, colon: Option<usize>, cr: Option<usize>) {
        if let Some(at) = cr {
            self.push(
                Severity::Error,
                "bare-cr",
                line.at(at),
                "carriage return without line feed",
                "end lines with LF or CRLF, not CR alone",
            );
        }
        let text = line.text;
        let Some((raw_key, raw_value)) =
            colon.and_then(|c| Some((text.get(..c)?, text.get(c + 1..)?)))
        else {
            if text.trim_matches(is_wsp).is_empty() {
                self.push(
                    Severity::Warning,
                    "blank-line",
                    line.at(0),
                    "blank line; the policy grammar has none, and strict parsers reject the policy",
                    "remove blank lines",
                );
            } else {
                self.push(
                    Severity::Error,
                    "missing-colon",
                    line.at(0),
                    format!("line \"{}\" is not a \"key: value\" pair", shorten(text)),
                    "write each line as \"key: value\"; some senders stop reading at such a line",
                );
            }
            return;
        };
        // The grammar has no whitespace before a key or before its ':', so senders that follow
        // it (and parsers that split on ':' without trimming) do not see such a key at all.
        let key = raw_key.trim_start_matches(is_wsp);
        let key_trimmed = key.trim_end_matches(is_wsp);
        if key.len() != raw_key.len() {
            self.push(
                Severity::Warning,
                "leading-whitespace",
                line.at(0),
                format!(
                    "line starts with whitespace, so senders ignore it (it is not a \"{}\" line)",
                    shorten(key_trimmed)
                ),
                "start the line with the key",
            );
            return;
        }
        if key_trimmed.len() != key.len() {
            self.push(
                Severity::Warning,
                "space-before-colon",
                line.at(key_trimmed.len()),
                format!(
                    "whitespace between \"{}\" and ':', so senders ignore this line",
                    shorten(key_trimmed)
                ),
                "write the key directly followed by ':'",
            );
            return;
        }
        let key = key_trimmed;
        let value_start = raw_value.trim_start_matches(is_wsp);
        let value = value_start.trim_end_matches(is_wsp);
        let at = Pos {
            line,
            offset: text.len() - value_start.len(),
        };
        match key {
            "version" => self.read_version(value, at),
            "mode" => self.read_mode(value, at),
            "max_age" => self.read_max_age(value, at),
            "mx" => self.read_mx(value, at),
            _ => self.read_extension(key, value, Pos { line, offset: 0 }),
        }
    }

    /// Records the first line of a non-repeated key; false (with a warning) for a repeat.
    fn first_of(&mut self, slot: usize, key: &str, at: Pos<'_>) -> bool {
        match self.seen.get(slot).copied().flatten() {
            Some(first) => {
                self.push(
                    Severity::Warning,
                    "duplicate-key",
                    (at.number(), 1),
                    format!("{key} appears again (first on line {first}); senders use the first"),
                    "keep one line per key (only mx may repeat)",
                );
                false
            }
            None => {
                if let Some(s) = self.seen.get_mut(slot) {
                    *s = Some(at.number());
                }
                true
            }
        }
    }

    fn read_version(&mut self, value: &str, at: Pos<'_>) {
        if !self.first_of(VERSION, "version", at) {
            return;
        }
        if value == "STSv1" {
            self.fields.version = Some(Cow::Borrowed("STSv1"));
        } else {
            self.fields.version = Some(Cow::Owned(value.to_owned()));
            let hint = if value.eq_ignore_ascii_case("STSv1") {
                "values are case-sensitive: write \"version: STSv1\""
            } else {
                "write \"version: STSv1\""
            };
            self.push(
                Severity::Error,
                "invalid-version",
                at,
                format!("version \"{}\" is not STSv1", shorten(value)),
                hint,
            );
        }
        if at.number() != 1 {
            self.push(
                Severity::Warning,
                "version-not-first",
                (at.number(), 1),
                "version is not on the first line",
                "put \"version: STSv1\" first, as every example and most providers do",
            );
        }
    }

    fn read_mode(&mut self, value: &str, at: Pos<'_>) {
        if !self.first_of(MODE, "mode", at) {
            return;
        }
        match Mode::parse(value) {
            Some(mode) => self.fields.mode = Some(mode),
            None => {
                let hint = match Mode::parse(&value.to_ascii_lowercase()) {
                    Some(mode) => format!("values are case-sensitive: write \"mode: {mode}\""),
                    None => "mode is one of enforce, testing, none".to_owned(),
                };
                self.push(
                    Severity::Error,
                    "invalid-mode",
                    at,
                    format!(
                        "mode \"{}\" is not enforce, testing or none",
                        shorten(value)
                    ),
                    &hint,
                );
            }
        }
    }

    fn read_max_age(&mut self, value: &str, at: Pos<'_>) {
        if !self.first_of(MAX_AGE, "max_age", at) {
            return;
        }
        let digits_only = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
        if !digits_only || value.len() > 10 {
            let why = if value.is_empty() {
                "is empty".to_owned()
            } else if digits_only {
                "has more than 10 digits".to_owned()
            } else {
                format!("\"{}\" is not a plain number", shorten(value))
            };
            self.push(
                Severity::Error,
                "invalid-max-age",
                at,
                format!("max_age {why}"),
                "max_age is whole seconds in digits only (no sign, unit or decimal point), e.g. 604800",
            );
            return;
        }
        match value.parse::<u64>() {
            Ok(seconds) if seconds <= u64::from(MAX_MAX_AGE) => {
                self.fields.max_age = u32::try_from(seconds).ok();
            }
            _ => self.push(
                Severity::Error,
                "max-age-too-large",
                at,
                format!("max_age {value} is above the maximum of {MAX_MAX_AGE} (one year)"),
                "use at most 31557600",
            ),
        }
    }

    fn read_mx(&mut self, value: &str, at: Pos<'_>) {
        match MxPattern::parse(value) {
            Ok((pattern, notes)) => {
                for note in notes {
                    self.push(note.severity, note.code, at, note.message, &note.hint);
                }
                if self.fields.mx.contains(&pattern) {
                    self.push(
                        Severity::Info,
                        "duplicate-mx",
                        at,
                        format!("mx {pattern} is listed more than once"),
                        "remove the repeated line",
                    );
                } else {
                    self.fields.mx.push(pattern);
                }
            }
            Err(problem) => self.push(
                problem.severity,
                problem.code,
                at,
                problem.message,
                &problem.hint,
            ),
        }
    }

    fn read_extension(&mut self, key: &str, value: &str, at: Pos<'_>) {
        let folded = key.to_ascii_lowercase().replace('-', "_");
        if let Some(known) = ["version", "mode", "max_age", "mx"]
            .into_iter()
            .find(|k| *k == folded || k.replace('_', "") == folded)
        {
            self.push(
                Severity::Warning,
                "misspelled-key",
                at,
                format!("\"{key}\" is not \"{known}\"; keys are case-sensitive, so senders ignore this line"),
                &format!("write \"{known}:\""),
            );
            return;
        }
        if !is_field_name(key) {
            self.push(
                Severity::Warning,
                "invalid-key",
                at,
                format!(
                    "\"{}\" is not a valid key; senders ignore this line",
                    shorten(key)
                ),
                "keys are 1-32 letters, digits, '_', '-' or '.', starting with a letter or digit",
            );
            return;
        }
        if value.is_empty() || value.chars().any(char::is_control) {
            self.push(
                Severity::Warning,
                "invalid-extension-value",
                at,
                format!("{key} has an empty value or control characters"),
                "",
            );
        }
        self.push(
            Severity::Info,
            "unknown-key",
            at,
            format!("{key} is not defined by RFC 8461; senders ignore it"),
            "",
        );
        self.fields
            .extensions
            .push((key.to_owned(), value.to_owned()));
    }

    fn finish(mut self) -> PolicyLint {
        let f = &self.fields;
        let (version, mode, max_age) = (f.version.is_some(), f.mode, f.max_age);
        let missing = |key: &str| format!("policy has no valid {key} line");
        if self.unread {
            return PolicyLint {
                fields: self.fields,
                diagnostics: self.diagnostics.into_vec(),
            };
        }
        if !version {
            self.push(
                Severity::Error,
                "missing-version",
                (1, 1),
                missing("version"),
                "add \"version: STSv1\" as the first line",
            );
        }
        if mode.is_none() && self.seen[MODE].is_none() {
            self.push(
                Severity::Error,
                "missing-mode",
                (1, 1),
                missing("mode"),
                "add \"mode: testing\" (then \"enforce\" once reports are clean)",
            );
        }
        if max_age.is_none() && self.seen[MAX_AGE].is_none() {
            self.push(
                Severity::Error,
                "missing-max-age",
                (1, 1),
                missing("max_age"),
                "add \"max_age: 604800\" (one week)",
            );
        }
        if mode.is_some_and(|m| m != Mode::None) && self.fields.mx.is_empty() {
            self.push(
                Severity::Error,
                "missing-mx",
                (1, 1),
                "policy has no valid mx line; every MX would fail validation",
                "add one \"mx: <host>\" line per MX host (or a \"*.domain\" wildcard)",
            );
        }
        if let (Some(mode), Some(age)) = (mode, max_age) {
            self.max_age_advice(mode, age);
        }
        PolicyLint {
            fields: self.fields,
            diagnostics: self.diagnostics.into_vec(),
        }
    }

    fn max_age_advice(&mut self, mode: Mode, age: u32) {
        let at = (self.seen[MAX_AGE].unwrap_or(1), 1);
        if age < MIN_SAFE_MAX_AGE && mode != Mode::None {
            self.push(
                Severity::Warning,
                "max-age-too-short",
                at,
                format!("max_age {age} is under a day: senders refetch constantly, and an attacker who blocks the refresh removes protection quickly"),
                "use 604800 (a week) while testing, and weeks or more (e.g. 31557600) in enforce",
            );
        } else if mode == Mode::Testing && !TESTING_MAX_AGE.contains(&age) {
            self.push(
                Severity::Warning,
                "testing-max-age",
                at,
                format!("max_age {age} in testing is outside 604800-1209600 (1-2 weeks)"),
                "while testing, 1-2 weeks lets you change course quickly and still covers report periods",
            );
        } else if mode == Mode::Enforce && age < *TESTING_MAX_AGE.start() {
            self.push(
                Severity::Info,
                "max-age-below-weeks",
                at,
                format!("max_age {age} is under a week; RFC 8461 expects weeks or more in enforce"),
                "once stable, raise max_age (e.g. 31557600)",
            );
        }
    }
}

/// The first 40 characters of `s`, for messages about untrusted input.
fn shorten(s: &str) -> String {
    const KEEP: usize = 40;
    match s.char_indices().nth(KEEP) {
        Some((i, _)) => format!("{}…", s.get(..i).unwrap_or_default()),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_EXAMPLE: &str = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n";

    fn codes(body: &str) -> Vec<&'static str> {
        Policy::lint(body.as_bytes())
            .diagnostics
            .iter()
            .map(|d| d.code)
            .collect()
    }

    fn with(lines: &[&str]) -> String {
        lines.join("\n")
    }

    #[test]
    fn rfc_example_is_valid_and_clean() {
        let lint = Policy::lint(RFC_EXAMPLE.as_bytes());
        assert!(lint.diagnostics.is_empty(), "{:?}", lint.diagnostics);
        let policy = lint.into_policy().unwrap();
        assert_eq!(policy.mode, Mode::Enforce);
        assert_eq!(policy.max_age, 604800);
        assert_eq!(policy.mx.len(), 3);
    }

    #[test]
    fn crlf_and_lf_are_both_accepted() {
        let crlf = RFC_EXAMPLE.replace('\n', "\r\n");
        assert_eq!(
            Policy::parse(crlf.as_bytes()),
            Policy::parse(RFC_EXAMPLE.as_bytes())
        );
        assert!(codes(RFC_EXAMPLE.trim_end()).is_empty());
    }

    #[test]
    fn value_splits_on_first_colon() {
        let p =
            Policy::parse(b"version: STSv1\nmode: none\nmax_age: 86400\nx-note: a:b:c\n").unwrap();
        assert_eq!(p.extensions, [("x-note".to_owned(), "a:b:c".to_owned())]);
    }

    #[test]
    fn names_and_values_are_case_sensitive() {
        assert!(
            codes("version: STSv1\nMode: enforce\nmx: a.example\nmax_age: 86400")
                .contains(&"missing-mode")
        );
        assert!(
            codes("version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 86400")
                .contains(&"invalid-mode")
        );
        assert!(
            codes("version: stsv1\nmode: enforce\nmx: a.example\nmax_age: 86400")
                .contains(&"invalid-version")
        );
    }

    #[test]
    fn duplicate_non_mx_keys_first_wins() {
        let body = with(&[
            "version: STSv1",
            "mode: enforce",
            "mode: none",
            "mx: a.example.com",
            "max_age: 604800",
        ]);
        let lint = Policy::lint(body.as_bytes());
        assert_eq!(lint.diagnostics[0].code, "duplicate-key");
        assert_eq!(lint.diagnostics[0].line, 3);
        assert_eq!(lint.into_policy().unwrap().mode, Mode::Enforce);
    }

    #[test]
    fn max_age_is_digits_only_and_bounded() {
        for bad in [
            "+86400",
            "-1",
            "86400s",
            "1e5",
            "",
            " ",
            "8 6400",
            "12345678901",
        ] {
            let body =
                format!("version: STSv1\nmode: enforce\nmx: a.example.com\nmax_age: {bad}\n");
            assert!(
                codes(&body).contains(&"invalid-max-age"),
                "{bad:?}: {:?}",
                codes(&body)
            );
        }
        let body = "version: STSv1\nmode: enforce\nmx: a.example.com\nmax_age: 31557601\n";
        assert!(codes(body).contains(&"max-age-too-large"));
        let body = "version: STSv1\nmode: enforce\nmx: a.example.com\nmax_age: 31557600\n";
        assert!(Policy::parse(body.as_bytes()).is_ok());
        let body = "version: STSv1\nmode: enforce\nmx: a.example.com\nmax_age: 0\n";
        assert_eq!(codes(body), ["max-age-too-short"]);
    }

    #[test]
    fn mx_is_required_unless_mode_none() {
        assert!(codes("version: STSv1\nmode: enforce\nmax_age: 86400").contains(&"missing-mx"));
        assert!(Policy::parse(b"version: STSv1\nmode: none\nmax_age: 86400").is_ok());
    }

    #[test]
    fn missing_fields_are_errors() {
        assert!(codes("mode: enforce\nmx: a.example\nmax_age: 86400").contains(&"missing-version"));
        assert!(
            codes("version: STSv1\nmx: a.example.com\nmax_age: 86400").contains(&"missing-mode")
        );
        assert!(
            codes("version: STSv1\nmode: enforce\nmx: a.example.com").contains(&"missing-max-age")
        );
    }

    #[test]
    fn warnings_leave_the_policy_valid() {
        let body = "mode: testing\nversion: STSv1\nmx: a.example.com\nmax_age: 86400\n\n";
        let lint = Policy::lint(body.as_bytes());
        assert!(lint.is_valid());
        assert_eq!(
            codes(body),
            ["version-not-first", "blank-line", "testing-max-age"]
        );
    }

    #[test]
    fn unknown_keys_are_kept_but_ignored() {
        let p =
            Policy::parse(b"version: STSv1\nmode: none\nfoo: bar baz\nmax_age: 86400\n").unwrap();
        assert_eq!(p.extensions, [("foo".to_owned(), "bar baz".to_owned())]);
    }

    #[test]
    fn byte_order_mark_hides_the_first_key() {
        let body = format!("\u{feff}{RFC_EXAMPLE}");
        assert_eq!(codes(&body), ["byte-order-mark"]);
    }

    #[test]
    fn bare_cr_is_an_error() {
        let body = RFC_EXAMPLE.replace('\n', "\r");
        assert!(codes(&body).contains(&"bare-cr"));
    }

    #[test]
    fn invalid_utf8_is_located() {
        let mut body = b"version: STSv1\nmode: none\nx: \xff\n".to_vec();
        body.extend_from_slice(b"max_age: 86400\n");
        let lint = Policy::lint(&body);
        let d = &lint.diagnostics[0];
        assert_eq!((d.code, d.line, d.column), ("invalid-utf8", 3, 4));
    }

    #[test]
    fn oversize_policy_is_refused() {
        let body = format!("{RFC_EXAMPLE}{}", "x: y\n".repeat(MAX_POLICY_SIZE / 5 + 1));
        assert_eq!(codes(&body), ["policy-too-large"]);
    }

    #[test]
    fn garbage_gives_a_bounded_list_of_errors() {
        let body = "<html>\n".repeat(10_000);
        let lint = Policy::lint(body.as_bytes());
        assert!(!lint.is_valid());
        assert!(lint.diagnostics.len() <= crate::diag::MAX_DIAGNOSTICS + 1);
    }

    #[test]
    fn canonical_form_round_trips() {
        let body = "mode: enforce\r\nmx: B.example.com\nversion: STSv1\nmax_age: 604800\nmx: *.example.net\nx: y\n";
        let p = Policy::parse(body.as_bytes()).unwrap();
        let text = p.to_text();
        assert_eq!(
            text,
            "version: STSv1\r\nmode: enforce\r\nmx: b.example.com\r\nmx: *.example.net\r\nx: y\r\nmax_age: 604800\r\n"
        );
        let again = Policy::lint(text.as_bytes());
        assert_eq!(again.policy().as_ref(), Some(&p));
        assert_eq!(again.into_policy().unwrap().to_text(), text);
    }

    #[test]
    fn misspelled_keys_are_called_out() {
        let body = "version: STSv1\nmode: enforce\nmx: a.example.com\nmax-age: 604800\n";
        assert_eq!(codes(body), ["misspelled-key", "missing-max-age"]);
    }
}
