//! `mta-sts check`: the live check of domains.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use mta_sts_check::{Area, CheckOptions, Report, SenderVerdict, analyze, gather};
use mta_sts_net::{Net, NetConfig};
use mta_sts_policy::Severity;

use crate::Outcome;
use crate::args::{CheckArgs, NetArgs};
use crate::dns::policy_domain;
use crate::render::{Style, clean};

/// The network as the flags describe it.
pub(crate) fn net(args: &NetArgs) -> anyhow::Result<Net> {
    let mut config = NetConfig {
        resolver: args.resolver,
        https_port: args.https_port,
        smtp_port: args.smtp_port,
        ..NetConfig::default()
    };
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        anyhow::bail!("--timeout must be a positive number of seconds");
    }
    config.timeout = Duration::from_secs_f64(args.timeout);
    for file in &args.ca_file {
        config
            .add_ca_file(file)
            .with_context(|| format!("--ca-file {}", file.display()))?;
    }
    Net::new(config).context("cannot set up the network")
}

/// `check DOMAIN...`.
pub fn check(args: &CheckArgs, style: Style) -> anyhow::Result<Outcome> {
    let domains = args
        .domains
        .iter()
        .map(|d| policy_domain(d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let net = net(&args.net)?;
    let options = CheckOptions {
        no_smtp: args.no_smtp,
        without_sni: args.without_sni,
    };
    let reports: Vec<Report> = crate::runtime()?.block_on(async {
        // A few domains from the command line, checked at once; `scan` will bound this.
        let checks = domains
            .iter()
            .map(|d| async { analyze(gather(&net, d, options).await) });
        futures_util::future::join_all(checks).await
    });
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for report in &reports {
            out!("{}", render_report(report, style));
        }
    }
    Ok(if reports.iter().any(|r| r.incomplete.is_some()) {
        Outcome::Incomplete
    } else if reports.iter().any(Report::has_problems) {
        Outcome::Problems
    } else {
        Outcome::Ok
    })
}

fn severity_label(severity: Severity, style: Style) -> String {
    match severity {
        Severity::Error => style.bad("error"),
        Severity::Warning => style.warn("warning"),
        Severity::Info => style.note("info"),
    }
}

/// The report for people: verdicts first, then findings grouped by area.
pub fn render_report(report: &Report, style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", style.bold(&report.domain));
    if let Some(why) = &report.incomplete {
        let _ = writeln!(out, "  {} {why}", style.bad("check incomplete:"));
    }
    let verdict = clean(&report.sender.summary()).into_owned();
    let verdict = match report.sender {
        SenderVerdict::Protected => style.good(&verdict),
        SenderVerdict::MailWouldBounce { .. } | SenderVerdict::Degraded { .. } => {
            style.bad(&verdict)
        }
        _ => style.warn(&verdict),
    };
    let _ = writeln!(out, "  sender verdict: {verdict}");
    let h = report.hygiene;
    let hygiene = match (h.errors, h.warnings) {
        (0, 0) => style.good("clean"),
        (e, w) => {
            let text = format!("{e} error{}, {w} warning{}", plural(e), plural(w));
            if e > 0 {
                style.bad(&text)
            } else {
                style.warn(&text)
            }
        }
    };
    let _ = writeln!(out, "  RFC hygiene:    {hygiene}");
    for area in [
        Area::StsRecord,
        Area::Policy,
        Area::Mx,
        Area::Smtp,
        Area::TlsRpt,
    ] {
        let findings: Vec<_> = report.findings.iter().filter(|f| f.area == area).collect();
        let incomplete = report.incomplete.is_some() && findings.is_empty();
        let mark = if incomplete {
            style.warn("?")
        } else if findings.iter().any(|f| f.severity >= Severity::Warning) {
            style.bad("✗")
        } else {
            style.good("✓")
        };
        let _ = writeln!(out, "\n  {mark} {}", style.bold(area.title()));
        if incomplete {
            let _ = writeln!(out, "      not checked");
        } else if findings.is_empty() {
            let _ = writeln!(out, "      ok");
        }
        for f in findings {
            let _ = writeln!(
                out,
                "    {}[{}] {}: {}",
                severity_label(f.severity, style),
                f.code,
                clean(&f.subject),
                clean(&f.message)
            );
            if !f.evidence.is_empty() {
                let _ = writeln!(out, "        seen: {}", clean(&f.evidence));
            }
            if !f.fix.is_empty() {
                let _ = writeln!(out, "        fix:  {}", clean(&f.fix));
            }
            if !f.rfc.is_empty() {
                let _ = writeln!(out, "        see:  {}", f.rfc);
            }
        }
    }
    out.push('\n');
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
