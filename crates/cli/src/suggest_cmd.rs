//! `mta-sts suggest`: what to publish for a domain, from its live MX hosts and what it
//! publishes now.

use std::fmt::Write as _;

use mta_sts_check::{CheckOptions, SuggestRequest, Suggestion, analyze, gather};
use mta_sts_policy::{Mode, policy_id};
use serde::Serialize;

use crate::Outcome;
use crate::args::SuggestArgs;
use crate::check::net;
use crate::dns::{TxtRecord, build_records, parse_report_uris, policy_domain};
use crate::render::{Style, clean};

#[derive(Serialize)]
struct SuggestJson<'a> {
    domain: &'a str,
    /// False when there is nothing safe to publish (exit 1); see `suggestion.warnings`.
    usable: bool,
    mx_hosts: Vec<&'a str>,
    suggestion: &'a Suggestion,
    records: &'a [TxtRecord],
}

/// `suggest DOMAIN [--mode M] [--rua URI]...`.
pub fn suggest(args: &SuggestArgs, style: Style) -> anyhow::Result<Outcome> {
    let domain = policy_domain(&args.domain)?;
    // Usage errors first, before any network work.
    let request = SuggestRequest {
        mode: args.mode.map(Mode::from),
        rua: parse_report_uris(&args.rua)?,
    };
    let net = net(&args.net)?;
    let options = CheckOptions {
        no_smtp: true,
        without_sni: false,
    };
    let report =
        crate::runtime()?.block_on(async { analyze(gather(&net, &domain, options).await) });
    if let Some(why) = &report.incomplete {
        eprintln!("mta-sts: cannot suggest for {domain}: {}", clean(why));
        return Ok(Outcome::Incomplete);
    }
    if report.evidence.mx_hosts.is_empty() {
        eprintln!(
            "mta-sts: {domain} has no MX host to cover (null MX: the domain accepts no mail, or the MX lookup failed)"
        );
        return Ok(Outcome::Problems);
    }
    let suggestion = mta_sts_check::suggest(&report, &request);
    let outcome = if suggestion.is_usable() {
        Outcome::Ok
    } else {
        Outcome::Problems
    };
    let records = build_records(
        &domain,
        suggestion.policy_text.as_bytes(),
        &suggestion.rua,
        3600,
    )?;
    if args.json {
        let json = SuggestJson {
            domain: &domain,
            usable: suggestion.is_usable(),
            mx_hosts: report
                .evidence
                .mx_hosts
                .iter()
                .map(|h| h.host.as_str())
                .collect(),
            suggestion: &suggestion,
            records: &records,
        };
        outln!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(outcome);
    }
    if !suggestion.is_usable() {
        // Only the reason: a policy for a domain without mail servers is no advice.
        for w in &suggestion.warnings {
            eprintln!(
                "{}[{}]: {}",
                style.warn("warning"),
                w.code,
                clean(&w.message)
            );
        }
        eprintln!("{}", style.bad(&format!("no suggestion for {domain}")));
        return Ok(outcome);
    }
    out!("{}", render(&domain, &suggestion, &records, style));
    Ok(outcome)
}

/// The suggestion for people: warnings first, then what to publish, the change, the rollout.
fn render(domain: &str, s: &Suggestion, records: &[TxtRecord], style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        style.bold(&format!("Suggested MTA-STS setup for {domain}"))
    );
    for w in &s.warnings {
        let _ = writeln!(
            out,
            "\n{}[{}]: {}",
            style.warn("warning"),
            w.code,
            clean(&w.message)
        );
    }
    let _ = writeln!(
        out,
        "\nPolicy (serve at https://mta-sts.{domain}/.well-known/mta-sts.txt):\n"
    );
    for line in s.policy_text.lines() {
        let _ = writeln!(out, "    {}", clean(line));
    }
    let _ = writeln!(
        out,
        "\nDNS records (policy id {}):\n",
        policy_id(s.policy_text.as_bytes())
    );
    for r in records {
        let _ = writeln!(out, "    {}", clean(&r.zone_line()));
    }
    let rua = match s.rua_source {
        mta_sts_check::RuaSource::Published => {
            "rua: the published report destinations are kept".to_owned()
        }
        mta_sts_check::RuaSource::PublishedAndGiven => {
            "rua: the published report destinations are kept, the --rua ones added".to_owned()
        }
        mta_sts_check::RuaSource::Given => "rua: the --rua destinations".to_owned(),
        mta_sts_check::RuaSource::Default => format!(
            "rua defaults to mailto:tlsrpt@{domain}: make sure that mailbox exists, or pass --rua"
        ),
    };
    let _ = writeln!(out, "\n    ; {rua}");
    match &s.diff {
        Some(diff) if diff.is_empty() => {
            let _ = writeln!(out, "\nThe published policy already matches.");
        }
        Some(diff) => {
            let _ = writeln!(out, "\nChanges from the published policy:");
            for mx in &diff.add_mx {
                let _ = writeln!(out, "    {}", style.good(&format!("+ mx: {}", clean(mx))));
            }
            for mx in &diff.remove_mx {
                let _ = writeln!(out, "    {}", style.bad(&format!("- mx: {}", clean(mx))));
            }
            if let Some((from, to)) = diff.mode {
                let _ = writeln!(out, "    mode: {from} -> {to}");
            }
            if let Some((from, to)) = diff.max_age {
                let _ = writeln!(out, "    max_age: {from} -> {to}");
            }
        }
        None => {}
    }
    for note in &s.notes {
        let _ = writeln!(out, "    ({})", clean(note));
    }
    let _ = writeln!(out, "\nRollout:");
    for (i, step) in s.steps.iter().enumerate() {
        let _ = writeln!(out, "  {}. {}", i + 1, clean(step));
    }
    out
}
