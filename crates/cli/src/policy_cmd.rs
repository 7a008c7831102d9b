//! `mta-sts policy new` and `mta-sts policy match`.

use std::fmt::Write as _;

use anyhow::Context;
use mta_sts_policy::{Diagnostic, Mode, Policy, Severity, normalize_host};
use serde::Serialize;

use crate::Outcome;
use crate::args::{PolicyMatchArgs, PolicyNewArgs};
use crate::input;
use crate::render::{self, Source, Style};

/// `policy new`: the arguments become policy lines, checked by the same linter as any policy
/// file, then written in canonical form.
pub fn new(args: &PolicyNewArgs, style: Style) -> anyhow::Result<Outcome> {
    let mode = Mode::from(args.mode);
    let max_age = args
        .max_age
        .clone()
        .unwrap_or_else(|| mode.recommended_max_age().to_string());
    // A line break in a value would write a line of its own ("mx: evil.example"): refuse any
    // control character before a single line is built.
    let values = args
        .mx
        .iter()
        .map(|mx| ("--mx", mx.as_str()))
        .chain(args.max_age.iter().map(|m| ("--max-age", m.as_str())));
    let controls: Vec<_> = values
        .filter(|(_, value)| value.chars().any(char::is_control))
        .collect();
    if !controls.is_empty() {
        for (flag, value) in controls {
            let d = Diagnostic::new(
                Severity::Error,
                "control-character",
                (0, 0),
                "RFC 8461 §3.2",
                format!("{flag} \"{value}\" contains a control character"),
            )
            .hint("give one value per flag, without line breaks or tabs");
            let origin = format!("{flag} {value}");
            let source = Source {
                name: &render::clean(&origin),
                text: None,
            };
            eprint!("{}", render::diagnostics(&source, &[d], style));
        }
        eprintln!("{}", style.bad("policy not written: fix the errors above"));
        return Ok(Outcome::Problems);
    }
    // One line per argument, so a diagnostic's line names the argument it came from.
    let mut text = String::new();
    let mut origin = Vec::new();
    let _ = writeln!(text, "version: STSv1");
    // Findings on line 1 are about the policy as a whole (missing mx, …).
    origin.push("policy".to_owned());
    let _ = writeln!(text, "mode: {mode}");
    origin.push(format!("--mode {mode}"));
    for mx in &args.mx {
        let _ = writeln!(text, "mx: {}", mx_as_written(mx));
        origin.push(render::clean(&format!("--mx {mx}")).into_owned());
    }
    let _ = writeln!(text, "max_age: {max_age}");
    origin.push(render::clean(&format!("--max-age {max_age}")).into_owned());

    let lint = Policy::lint(text.as_bytes());
    // A missing-mx error only repeats what an invalid --mx already said.
    let mx_rejected = lint
        .diagnostics
        .iter()
        .any(|d| d.is_error() && d.code.starts_with("mx-") || d.code == "invalid-mx");
    let shown: Vec<_> = lint
        .diagnostics
        .iter()
        .filter(|d| d.severity >= Severity::Warning)
        .filter(|d| !(mx_rejected && d.code == "missing-mx"))
        .collect();
    for d in &shown {
        let from = origin
            .get(d.line.saturating_sub(1) as usize)
            .map_or("policy", String::as_str);
        let source = Source {
            name: from,
            text: None,
        };
        // The position is in generated text; the argument it came from says more.
        let mut one = (*d).clone();
        one.line = 0;
        eprint!("{}", render::diagnostics(&source, &[one], style));
    }
    let Some(policy) = lint.policy() else {
        eprintln!("{}", style.bad("policy not written: fix the errors above"));
        return Ok(Outcome::Problems);
    };
    let body = policy.to_text();
    match &args.output {
        Some(path) => {
            std::fs::write(path, &body)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "wrote {}: publish it at https://mta-sts.<your domain>/.well-known/mta-sts.txt, then run `mta-sts dns records --domain <your domain> --policy {}`",
                path.display(),
                path.display()
            );
        }
        None => out!("{body}"),
    }
    Ok(Outcome::Ok)
}

/// An `--mx` value as the policy line gets it: the trailing dot of a fully qualified name
/// removed (as a sender ignores it when matching) and internationalized labels written as the
/// A-labels RFC 8461 requires. A value that cannot be converted is kept, so the linter names
/// what is wrong with it.
fn mx_as_written(mx: &str) -> String {
    let name = match mx.strip_suffix('.') {
        Some(name) if !name.is_empty() && !name.ends_with('.') && name != "*" => name,
        _ => mx,
    };
    if name.is_ascii() {
        return name.to_owned();
    }
    let (prefix, host) = match name.strip_prefix("*.") {
        Some(host) => ("*.", host),
        None => ("", name),
    };
    match normalize_host(host) {
        Ok(ascii) if !ascii.contains('*') && !ascii.contains(':') => format!("{prefix}{ascii}"),
        _ => name.to_owned(),
    }
}

#[derive(Serialize)]
struct HostMatch {
    host: String,
    normalized: Option<String>,
    covered: bool,
    pattern: Option<String>,
    error: Option<String>,
}

#[derive(Serialize)]
struct MatchJson<'a> {
    policy_valid: bool,
    mode: Option<Mode>,
    all_covered: bool,
    hosts: &'a [HostMatch],
    diagnostics: &'a [mta_sts_policy::Diagnostic],
}

/// `policy match FILE HOST...`.
pub fn matches(args: &PolicyMatchArgs, style: Style) -> anyhow::Result<Outcome> {
    let (name, body) = input::read_file(&args.file)?;
    let lint = Policy::lint(&body);
    let policy = lint.policy();
    let policy = policy.as_ref();
    let hosts: Vec<HostMatch> = args
        .hosts
        .iter()
        .map(|host| {
            let (normalized, error) = match normalize_host(host) {
                Ok(n) => (Some(n), None),
                Err(e) => (None, Some(e)),
            };
            let pattern = policy
                .zip(normalized.as_deref())
                .and_then(|(p, n)| p.mx.iter().find(|m| m.matches(n)))
                .map(ToString::to_string);
            HostMatch {
                host: host.clone(),
                normalized,
                covered: pattern.is_some(),
                pattern,
                error,
            }
        })
        .collect();
    let all_covered = policy.is_some() && hosts.iter().all(|h| h.covered);
    if args.json {
        let errors: Vec<_> = lint.errors().cloned().collect();
        let json = MatchJson {
            policy_valid: policy.is_some(),
            mode: lint.fields.mode,
            all_covered,
            hosts: &hosts,
            diagnostics: &errors,
        };
        outln!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        if policy.is_none() {
            out!("{}", render::policy_errors(&name, &body, &lint, style));
            outln!(
                "{}: {}",
                name,
                style.bad("invalid policy: a sender would not apply it, so no host is covered")
            );
        }
        let width = hosts
            .iter()
            .map(|h| h.host.chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        outln!("{}", style.bold(&format!("{:width$}  PATTERN", "HOST")));
        for h in &hosts {
            let result = match (&h.pattern, &h.error) {
                (Some(p), _) => style.good(p),
                (None, Some(e)) => style.bad(&format!("not covered ({e})")),
                (None, None) => style.bad("not covered"),
            };
            outln!("{:width$}  {result}", h.host);
        }
        if let Some(p) = policy.filter(|p| p.mode == Mode::None) {
            outln!(
                "note: mode is {}, so senders apply no policy at all",
                p.mode
            );
        }
    }
    Ok(if all_covered {
        Outcome::Ok
    } else {
        Outcome::Problems
    })
}

#[cfg(test)]
mod tests {
    use super::mx_as_written;

    #[test]
    fn trailing_dot_is_removed_and_idns_become_a_labels() {
        assert_eq!(mx_as_written("mail.example.com."), "mail.example.com");
        assert_eq!(mx_as_written("bücher.example"), "xn--bcher-kva.example");
        assert_eq!(
            mx_as_written("*.bücher.example."),
            "*.xn--bcher-kva.example"
        );
        // What the linter must still see as written.
        assert_eq!(mx_as_written("mail.example.com.."), "mail.example.com..");
        assert_eq!(mx_as_written("*."), "*.");
        assert_eq!(mx_as_written("mail.example.com:25"), "mail.example.com:25");
    }
}
