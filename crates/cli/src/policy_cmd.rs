//! `mta-sts policy new` and `mta-sts policy match`.

use std::fmt::Write as _;

use anyhow::Context;
use mta_sts_policy::{Mode, Policy, Severity, normalize_host};
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
    // One line per argument, so a diagnostic's line names the argument it came from.
    let mut text = String::new();
    let mut origin = Vec::new();
    let _ = writeln!(text, "version: STSv1");
    // Findings on line 1 are about the policy as a whole (missing mx, …).
    origin.push("policy".to_owned());
    let _ = writeln!(text, "mode: {mode}");
    origin.push(format!("--mode {mode}"));
    for mx in &args.mx {
        let _ = writeln!(text, "mx: {mx}");
        origin.push(format!("--mx {mx}"));
    }
    let _ = writeln!(text, "max_age: {max_age}");
    origin.push(format!("--max-age {max_age}"));

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
