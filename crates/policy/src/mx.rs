//! `mx` patterns (RFC 8461 §3.2, §4.1) and how a sender matches an MX host against them.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Serialize, Serializer};

use crate::diag::Severity;

/// Where the pattern rules are stated.
const RFC_MX: &str = "RFC 8461 §3.2";

/// One `mx` pattern of a policy: a host name, or `*.` and a domain.
///
/// The name is stored lowercased and as A-labels, so matching is a plain comparison.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MxPattern {
    wildcard: bool,
    /// The name after `*.`, or the whole name.
    domain: String,
}

/// A problem with an `mx` value: its severity, stable code, message and hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxProblem {
    /// Error (the pattern is unusable) or warning/info (it works, but…).
    pub severity: Severity,
    /// Stable kebab-case code.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: String,
}

impl MxProblem {
    fn new(
        severity: Severity,
        code: &'static str,
        message: String,
        hint: impl Into<String>,
    ) -> Self {
        MxProblem {
            severity,
            code,
            message,
            hint: hint.into(),
        }
    }

    fn error(code: &'static str, message: String, hint: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, message, hint)
    }

    /// Where the rule is stated.
    pub fn rfc(&self) -> &'static str {
        RFC_MX
    }
}

/// Longest DNS name in presentation form, without the trailing dot (RFC 1035 §2.3.4).
const MAX_NAME_LEN: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;

impl MxPattern {
    /// Parses the value of an `mx` line.
    ///
    /// On success, also returns the warnings and infos about the value (U-label, upper case,
    /// single label, a wildcard over a top-level domain).
    pub fn parse(value: &str) -> Result<(MxPattern, Vec<MxProblem>), MxProblem> {
        if let Some(pattern) = Self::parse_plain(value) {
            return Ok((pattern, Vec::new()));
        }
        Self::parse_explained(value)
    }

    /// The common case in one pass: an optional `*.`, then two or more lowercase LDH labels
    /// within DNS limits, the last not all digits, no `xn--` label. Anything else (including
    /// valid names that deserve a note) goes to [`Self::parse_explained`].
    fn parse_plain(value: &str) -> Option<MxPattern> {
        let (wildcard, domain) = match value.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        if domain.len() > MAX_NAME_LEN {
            return None;
        }
        let (mut labels, mut label_len, mut label_digits) = (1usize, 0usize, true);
        let mut prev = b'.';
        for &b in domain.as_bytes() {
            match b {
                b'a'..=b'z' => label_digits = false,
                b'0'..=b'9' => {}
                b'-' if prev != b'.' => label_digits = false,
                b'.' if prev != b'.' && prev != b'-' => {
                    labels += 1;
                    label_len = 0;
                    label_digits = true;
                    prev = b;
                    continue;
                }
                _ => return None,
            }
            label_len += 1;
            // "xn--" (or any "??--") labels need an IDNA check.
            if label_len > MAX_LABEL_LEN || (label_len == 4 && b == b'-' && prev == b'-') {
                return None;
            }
            prev = b;
        }
        let ends_well = prev != b'.' && prev != b'-';
        (ends_well && labels >= 2 && !label_digits).then(|| MxPattern {
            wildcard,
            domain: domain.to_owned(),
        })
    }

    fn parse_explained(value: &str) -> Result<(MxPattern, Vec<MxProblem>), MxProblem> {
        let mut notes = Vec::new();
        if value.is_empty() {
            return Err(MxProblem::error(
                "invalid-mx",
                "mx value is empty".into(),
                "write one MX host name, e.g. \"mx: mail.example.com\"",
            ));
        }
        // Ports, literals and trailing dots are named on the text as written, before IDNA
        // conversion could mangle them into a label.
        if let Some(problem) = literal_problem(value) {
            return Err(problem);
        }
        let ascii;
        let name = if value.is_ascii() {
            value
        } else {
            ascii = to_a_labels(value).map_err(|_| {
                MxProblem::error(
                    "invalid-mx",
                    format!("mx \"{value}\" is not a valid internationalized domain name"),
                    "write the name as A-labels (xn--...)",
                )
            })?;
            notes.push(MxProblem::new(
                Severity::Warning,
                "mx-u-label",
                format!("mx \"{value}\" is written as a U-label (Unicode)"),
                format!("RFC 8461 requires the A-label: write \"mx: {ascii}\""),
            ));
            &ascii
        };
        let (wildcard, domain) = match name.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, name),
        };
        if domain.contains('*') {
            return Err(MxProblem::error(
                "mx-invalid-wildcard",
                format!("mx \"{value}\" uses '*' other than as the whole leftmost label"),
                "a wildcard must be exactly \"*.\" followed by a domain, e.g. \"*.example.com\"",
            ));
        }
        check_domain(value, domain)?;
        if domain.bytes().any(|b| b.is_ascii_uppercase()) {
            notes.push(MxProblem::new(
                Severity::Info,
                "mx-uppercase",
                format!("mx \"{value}\" has upper-case letters; matching ignores case"),
                format!("write it in lower case: \"{}\"", name.to_ascii_lowercase()),
            ));
        }
        if !domain.contains('.') {
            let (code, message, hint) = if wildcard {
                (
                    "mx-wildcard-too-broad",
                    format!("mx \"{value}\" matches every host under a top-level domain"),
                    "list your MX hosts, or a wildcard under your own domain",
                )
            } else {
                (
                    "mx-single-label",
                    format!("mx \"{value}\" is a single-label name"),
                    "use the fully qualified MX host name, without a trailing dot",
                )
            };
            notes.push(MxProblem::new(Severity::Warning, code, message, hint));
        }
        Ok((
            MxPattern {
                wildcard,
                domain: domain.to_ascii_lowercase(),
            },
            notes,
        ))
    }

    /// True for a `*.` pattern.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// The name after `*.`, or the whole name; lowercase A-labels.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// True when this pattern covers `host`, an MX host name already normalized with
    /// [`normalize_host`].
    ///
    /// `*.example.com` matches exactly one extra leftmost label: `mail.example.com`, but not
    /// `example.com` or `a.b.example.com` (RFC 8461 §4.1).
    pub fn matches(&self, host: &str) -> bool {
        if !self.wildcard {
            return host == self.domain;
        }
        match host
            .strip_suffix(self.domain.as_str())
            .and_then(|head| head.strip_suffix('.'))
        {
            Some(label) => !label.is_empty() && !label.contains('.'),
            None => false,
        }
    }
}

impl std::fmt::Display for MxPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.domain)
    }
}

impl Serialize for MxPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Rejects IP literals, ports, trailing dots, underscores and whitespace with a specific reason.
fn literal_problem(name: &str) -> Option<MxProblem> {
    // Only names made of digits and dots, or with ':' or '[', can be address literals.
    let maybe_literal = name.starts_with('[')
        || name.contains(':')
        || name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    if maybe_literal
        && (name.starts_with('[')
            || bare.parse::<Ipv4Addr>().is_ok()
            || bare.parse::<Ipv6Addr>().is_ok())
    {
        return Some(MxProblem::error(
            "mx-ip-address",
            format!("mx \"{name}\" is an IP address"),
            "mx patterns are host names: use the MX host's name, as in the MX record",
        ));
    }
    if let Some((host, port)) = name.rsplit_once(':') {
        let hint = format!("remove the port: \"mx: {host}\"");
        let message = if port.bytes().all(|b| b.is_ascii_digit()) {
            format!("mx \"{name}\" has a port")
        } else {
            format!("mx \"{name}\" contains ':'")
        };
        return Some(MxProblem::error("mx-port", message, hint));
    }
    if let Some(host) = name.strip_suffix('.') {
        return Some(MxProblem::error(
            "mx-trailing-dot",
            format!("mx \"{name}\" ends with a dot"),
            format!("write it without the trailing dot: \"mx: {host}\""),
        ));
    }
    if name.contains('_') {
        return Some(MxProblem::error(
            "mx-underscore",
            format!("mx \"{name}\" contains '_', which host names cannot"),
            "use the MX host name exactly as in the MX record",
        ));
    }
    if name.contains([' ', '\t']) {
        return Some(MxProblem::error(
            "invalid-mx",
            format!("mx \"{name}\" contains whitespace"),
            "write one host per mx line: \"mx: a.example.com\" then \"mx: b.example.com\"",
        ));
    }
    None
}

/// Checks the RFC 5321 `Domain` rule: dot-separated labels of letters, digits and inner hyphens,
/// within DNS length limits; `xn--` labels must be valid Punycode.
fn check_domain(value: &str, domain: &str) -> Result<(), MxProblem> {
    let bad = |why: String| {
        Err(MxProblem::error(
            "invalid-mx",
            format!("mx \"{value}\" is not a valid host name: {why}"),
            "use letters, digits and '-' in dot-separated labels, e.g. \"mail.example.com\"",
        ))
    };
    if domain.len() > MAX_NAME_LEN {
        return bad(format!("longer than {MAX_NAME_LEN} characters"));
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return bad("empty label".into());
        }
        if label.len() > MAX_LABEL_LEN {
            return bad(format!("label longer than {MAX_LABEL_LEN} characters"));
        }
        if let Some(b) = label
            .bytes()
            .find(|b| !(b.is_ascii_alphanumeric() || *b == b'-'))
        {
            return bad(format!("character '{}' is not allowed", b.escape_ascii()));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad(format!("label \"{label}\" starts or ends with '-'"));
        }
        if label.len() > 4
            && label
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("xn--"))
        {
            let (_, result) = idna::domain_to_unicode(label);
            if result.is_err() {
                return bad(format!("\"{label}\" is not a valid A-label"));
            }
        }
    }
    Ok(())
}

fn to_a_labels(name: &str) -> Result<String, idna::Errors> {
    idna::domain_to_ascii(name)
}

/// Normalizes an MX host name the way a sender compares it with `mx` patterns: trailing dot
/// removed, lowercased, internationalized labels converted to A-labels.
pub fn normalize_host(host: &str) -> Result<String, String> {
    let trimmed = host.trim();
    let name = trimmed.strip_suffix('.').unwrap_or(trimmed);
    if name.is_empty() {
        return Err("empty host name".into());
    }
    if name.is_ascii() {
        return Ok(name.to_ascii_lowercase());
    }
    to_a_labels(name)
        .map_err(|_| format!("\"{host}\" is not a valid internationalized domain name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(value: &str) -> MxPattern {
        MxPattern::parse(value).unwrap().0
    }

    fn error(value: &str) -> &'static str {
        MxPattern::parse(value).unwrap_err().code
    }

    fn matches(p: &str, host: &str) -> bool {
        pattern(p).matches(&normalize_host(host).unwrap())
    }

    #[test]
    fn wildcard_matches_exactly_one_label() {
        assert!(matches("*.example.com", "mail.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(!matches("*.example.com", "foo.bar.example.com"));
        assert!(!matches("*.example.com", "mailexample.com"));
        assert!(!matches("*.example.com", ".example.com"));
    }

    #[test]
    fn exact_pattern_matches_only_that_name() {
        assert!(matches("mail.example.com", "mail.example.com"));
        assert!(!matches("mail.example.com", "mx.mail.example.com"));
        assert!(!matches("mail.example.com", "example.com"));
    }

    #[test]
    fn matching_ignores_case_and_trailing_dot() {
        assert!(matches("Mail.Example.COM", "MAIL.example.com."));
        assert!(matches("*.example.com", "MX1.EXAMPLE.COM."));
    }

    #[test]
    fn idn_hosts_match_as_a_labels() {
        assert!(matches("mail.xn--bcher-kva.example", "mail.bücher.example"));
        assert!(matches("*.bücher.example", "mail.xn--bcher-kva.example"));
        let (_, notes) = MxPattern::parse("mail.bücher.example").unwrap();
        assert_eq!(notes[0].code, "mx-u-label");
    }

    #[test]
    fn wildcard_must_be_whole_leftmost_label() {
        assert_eq!(error("*mail.example.com"), "mx-invalid-wildcard");
        assert_eq!(error("mail.*.example.com"), "mx-invalid-wildcard");
        assert_eq!(error("*.*.example.com"), "mx-invalid-wildcard");
        assert_eq!(error("*"), "mx-invalid-wildcard");
        assert_eq!(error("*."), "mx-trailing-dot");
    }

    #[test]
    fn literals_ports_dots_and_underscores_are_rejected() {
        assert_eq!(error("192.0.2.1"), "mx-ip-address");
        assert_eq!(error("[192.0.2.1]"), "mx-ip-address");
        assert_eq!(error("2001:db8::1"), "mx-ip-address");
        assert_eq!(error("mail.example.com:25"), "mx-port");
        assert_eq!(error("mail.example.com."), "mx-trailing-dot");
        assert_eq!(error("_mail.example.com"), "mx-underscore");
        assert_eq!(error("mail example.com"), "invalid-mx");
        assert_eq!(error("-mail.example.com"), "invalid-mx");
        assert_eq!(error("mail..example.com"), "invalid-mx");
        assert_eq!(error(&format!("{}.com", "a".repeat(64))), "invalid-mx");
        assert_eq!(error("xn--zz.example.com"), "invalid-mx");
        let port = MxPattern::parse("例え.テスト:25").unwrap_err();
        assert_eq!(port.code, "mx-port");
        assert_eq!(port.hint, "remove the port: \"mx: 例え.テスト\"");
    }

    #[test]
    fn broad_or_short_names_warn() {
        let (_, notes) = MxPattern::parse("*.com").unwrap();
        assert_eq!(notes[0].code, "mx-wildcard-too-broad");
        let (_, notes) = MxPattern::parse("localhost").unwrap();
        assert_eq!(notes[0].code, "mx-single-label");
    }

    #[test]
    fn fast_path_agrees_with_the_explained_path() {
        for value in [
            "mail.example.com",
            "*.example.com",
            "a.b",
            "a-b.c0",
            "mx1.example.co.uk",
            "1.2.3.4",
            "mail.123",
            "a..b",
            "a.-b.c",
            "a-.b",
            "-a.b",
            "a.b-",
            "xn--bcher-kva.example",
            "ab--cd.example",
            "Mail.example.com",
            "localhost",
            "*.com",
            "*.",
            "*",
            "a.b.",
            "a_b.example",
            "a b.example",
            &format!("{}.com", "a".repeat(63)),
            &format!("{}.com", "a".repeat(64)),
            &format!("{}.com", "a.".repeat(125)),
        ] {
            // The fast path may decline a valid name, but what it accepts must be exactly what
            // the explained path accepts, with nothing to note.
            if let Some(plain) = MxPattern::parse_plain(value) {
                assert_eq!(
                    MxPattern::parse_explained(value),
                    Ok((plain, Vec::new())),
                    "{value}"
                );
            }
        }
        for common in [
            "mail.example.com",
            "*.example.com",
            "mx-1.mail.example.co.uk",
        ] {
            assert!(MxPattern::parse_plain(common).is_some(), "{common}");
        }
    }

    #[test]
    fn display_round_trips() {
        assert_eq!(pattern("*.Example.com").to_string(), "*.example.com");
        assert_eq!(pattern("mx.example.com").to_string(), "mx.example.com");
    }
}
