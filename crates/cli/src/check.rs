//! `mta-sts check`: the live check of domains.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt as _;
use mta_sts_check::{
    Area, CheckOptions, Checker, Finding, MxHost, RUN_DNS_CACHE_SIZE, Report, SenderVerdict,
};
use mta_sts_net::{
    DEFAULT_FETCH_TIMEOUT, FetchedPolicy, MxProbe, Net, NetConfig, ProbeOutcome, TxtAnswer, utc,
};
use mta_sts_policy::{Severity, StsRecord};
use mta_sts_tlsrpt::TlsRptRecord;

use crate::Outcome;
use crate::args::{CheckArgs, NetArgs};
use crate::dns::policy_domain;
use crate::render::{Style, clean};

/// Reads `--resolver`: `IP`, `IP:PORT`, `[IPv6]:PORT`; without a port, port 53.
pub fn parse_resolver(value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = value.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| {
            format!("{value:?} is not an IP address or IP:PORT (e.g. 127.0.0.1, 127.0.0.1:5353, [::1]:53)")
        })
}

/// The network as the flags describe it. `--timeout` bounds every step and the whole policy
/// fetch (which gets at most the RFC's minute either way); `many` turns on the DNS cache
/// shared by the domains of the run.
pub(crate) fn net_for(args: &NetArgs, many: bool) -> anyhow::Result<Net> {
    Net::new(net_config(args, many)?).context("cannot set up the network")
}

/// The network configuration [`net_for`] builds on.
pub(crate) fn net_config(args: &NetArgs, many: bool) -> anyhow::Result<NetConfig> {
    let mut config = NetConfig {
        resolver: args.resolver,
        https_port: args.https_port,
        smtp_port: args.smtp_port,
        dns_cache_size: if many { RUN_DNS_CACHE_SIZE } else { 0 },
        ..NetConfig::default()
    };
    if let Some(timeout) = args.timeout {
        if !(timeout.is_finite() && timeout > 0.0) {
            anyhow::bail!("--timeout must be a positive number of seconds, not {timeout}");
        }
        config.timeout = Duration::from_secs_f64(timeout);
        config.fetch_timeout = config.timeout.min(DEFAULT_FETCH_TIMEOUT);
    }
    for file in &args.ca_file {
        config
            .add_ca_file(file)
            .with_context(|| format!("--ca-file {}", file.display()))?;
    }
    Ok(config)
}

/// The network for one domain (no DNS cache: every lookup sees the zone as it is now).
pub(crate) fn net(args: &NetArgs) -> anyhow::Result<Net> {
    net_for(args, false)
}

/// The sender verdict's status as `check --json` names it (`protected`, `testing`, ...).
pub(crate) fn verdict_status(report: &Report) -> String {
    serde_json::to_value(&report.sender)
        .ok()
        .and_then(|v| v["status"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `check DOMAIN...`.
pub fn check(args: &CheckArgs, style: Style) -> anyhow::Result<Outcome> {
    let domains = args
        .domains
        .iter()
        .map(|d| policy_domain(d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.concurrency == 0 {
        anyhow::bail!("--concurrency must be at least 1");
    }
    let net = net_for(&args.net, true)?;
    let options = CheckOptions {
        no_smtp: args.no_smtp,
        without_sni: args.without_sni,
    };
    let checker = Checker::new(net, options).concurrency(args.concurrency);
    let progress = Progress::new(domains.len());
    let mut reports: Vec<Report> = Vec::with_capacity(domains.len());
    let mut outcome = Outcome::Ok;
    crate::runtime()?.block_on(async {
        let ticker = progress.clone().tick();
        let mut stream = std::pin::pin!(checker.check_all(&domains, |_| progress.done()));
        while let Some(report) = stream.next().await {
            if report.incomplete.is_some() {
                outcome = Outcome::Incomplete;
            } else if report.has_problems() && outcome == Outcome::Ok {
                outcome = Outcome::Problems;
            }
            // People see each report as soon as it and those before it are done.
            if !args.json {
                progress.clear();
                out!("{}", render_report(&report, style, args.quiet));
            }
            reports.push(report);
        }
        ticker.abort();
        progress.clear();
        anyhow::Ok(())
    })?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(outcome)
}

/// "checked 12/1000 domains" on a terminal's stderr while a run is slow; nothing when stderr
/// is not a terminal.
#[derive(Clone)]
struct Progress {
    inner: std::sync::Arc<ProgressInner>,
}

struct ProgressInner {
    total: usize,
    done: AtomicUsize,
    started: Instant,
    shown: std::sync::atomic::AtomicBool,
    terminal: bool,
}

impl Progress {
    /// Progress appears only after this long: a quick check prints nothing extra.
    const DELAY: Duration = Duration::from_millis(1500);

    fn new(total: usize) -> Self {
        Self {
            inner: std::sync::Arc::new(ProgressInner {
                total,
                done: AtomicUsize::new(0),
                started: Instant::now(),
                shown: std::sync::atomic::AtomicBool::new(false),
                terminal: std::io::stderr().is_terminal(),
            }),
        }
    }

    fn done(&self) {
        self.inner.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Redraws the line twice a second until aborted.
    fn tick(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            if !self.inner.terminal {
                return;
            }
            tokio::time::sleep(Self::DELAY).await;
            loop {
                let done = self.inner.done.load(Ordering::Relaxed);
                let secs = self.inner.started.elapsed().as_secs();
                let domains = if self.inner.total == 1 {
                    "domain"
                } else {
                    "domains"
                };
                eprint!(
                    "\r\x1b[2Kchecking: {done}/{} {domains} done, {secs} s",
                    self.inner.total
                );
                self.inner.shown.store(true, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    }

    /// Removes the progress line, if one is shown, before other output.
    fn clear(&self) {
        if self.inner.shown.swap(false, Ordering::Relaxed) {
            eprint!("\r\x1b[2K");
        }
    }
}

fn severity_label(severity: Severity, style: Style) -> String {
    match severity {
        Severity::Error => style.bad("error"),
        Severity::Warning => style.warn("warning"),
        Severity::Info => style.note("info"),
    }
}

/// The report for people: verdicts first, then each area with what was seen (unless `quiet`)
/// and its findings.
pub fn render_report(report: &Report, style: Style, quiet: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", style.bold(&report.domain));
    if let Some(why) = &report.incomplete {
        let _ = writeln!(out, "  {} {}", style.bad("check incomplete:"), clean(why));
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
    for area in Area::ALL {
        let findings: Vec<&Finding> = report.findings.iter().filter(|f| f.area == area).collect();
        if area == Area::Domain && findings.is_empty() {
            continue;
        }
        let not_checked = report.not_checked(area);
        let mark = if findings.iter().any(|f| f.severity >= Severity::Warning) {
            style.bad("✗")
        } else if not_checked.is_some() {
            style.warn("?")
        } else {
            style.good("✓")
        };
        let _ = writeln!(out, "\n  {mark} {}", style.bold(area.title()));
        if let Some(why) = &not_checked
            && findings.is_empty()
        {
            let _ = writeln!(out, "      not checked: {}", clean(why));
        } else if !quiet {
            evidence(&mut out, report, area, style);
        } else if findings.is_empty() {
            let _ = writeln!(out, "      ok");
        }
        for f in findings {
            finding(&mut out, f, style);
        }
    }
    out.push('\n');
    out
}

fn finding(out: &mut String, f: &Finding, style: Style) {
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

/// One labelled evidence line, the value escaped.
fn line(out: &mut String, label: &str, value: &str) {
    let _ = writeln!(out, "      {label:<9}{}", clean(value));
}

/// What was seen in `area`, compactly.
fn evidence(out: &mut String, report: &Report, area: Area, style: Style) {
    let e = &report.evidence;
    let now = e.checked_at;
    match area {
        Area::Domain => {}
        Area::StsRecord => {
            if let Ok(answer) = &e.sts_txt {
                txt_lines(out, answer);
                if let Some(record) = StsRecord::lint_rrset(&answer.records).value {
                    line(out, "id:", &record.id);
                    for (name, value) in &record.extensions {
                        line(out, "extra:", &format!("{name}={value}"));
                    }
                }
            }
        }
        Area::Policy => match &e.policy {
            Ok(fetched) => policy_lines(out, fetched, report.policy.as_ref(), now),
            Err(error) => line(out, "fetch:", &error.to_string()),
        },
        Area::Mx => {
            for host in &e.mx_hosts {
                let coverage = match &report.policy {
                    Some(policy) => match policy.matching_mx(&host.host) {
                        Some(pattern) => format!("covered by {pattern}"),
                        None => style.bad("not covered"),
                    },
                    None => "no policy".to_owned(),
                };
                let name = if host.implicit {
                    format!("{} (implicit MX: the domain itself)", host.host)
                } else {
                    host.host.clone()
                };
                let _ = writeln!(
                    out,
                    "      {:>5} {}  {coverage}",
                    host.preference,
                    clean(&name)
                );
            }
        }
        Area::Smtp => {
            for host in &e.mx_hosts {
                probe_lines(out, host, now, style);
            }
        }
        Area::TlsRpt => {
            if let Ok(answer) = &e.tlsrpt_txt {
                txt_lines(out, answer);
                if let Some(record) = TlsRptRecord::lint_rrset(&answer.records).value {
                    for uri in &record.rua {
                        line(out, "rua:", uri.as_str());
                    }
                }
            }
        }
    }
}

fn txt_lines(out: &mut String, answer: &TxtAnswer) {
    if !answer.cname_chain.is_empty() {
        line(
            out,
            "CNAME:",
            &format!("→ {}", answer.cname_chain.join(" → ")),
        );
    }
    for record in &answer.records {
        let (text, _) = mta_sts_check::bytes_as_text(record);
        line(out, "record:", &format!("\"{text}\""));
    }
}

fn days_left(not_after: i64, now: i64) -> String {
    let days = (not_after - now).div_euclid(86_400);
    let date = utc(not_after);
    let date = date.split(' ').next().unwrap_or_default().to_owned();
    if days < 0 {
        format!("{date} (expired {} days ago)", -days)
    } else {
        format!("{date} ({days} days left)")
    }
}

fn policy_lines(
    out: &mut String,
    fetched: &FetchedPolicy,
    policy: Option<&mta_sts_policy::Policy>,
    now: i64,
) {
    line(out, "url:", &fetched.url);
    line(
        out,
        "fetched:",
        &format!(
            "HTTP 200, {}, {} bytes in {} ms from {}",
            fetched.content_type.as_deref().unwrap_or("no Content-Type"),
            fetched.body.len(),
            fetched.elapsed.as_millis(),
            fetched.peer
        ),
    );
    line(
        out,
        "TLS:",
        &format!(
            "{}, {}, certificate issued by {}, expires {}",
            fetched.tls_version,
            fetched.cipher_suite,
            fetched.certificate.issuer,
            days_left(fetched.certificate.not_after, now)
        ),
    );
    if let Some(policy) = policy {
        line(out, "mode:", policy.mode.as_str());
        line(
            out,
            "max_age:",
            &format!(
                "{} ({} days)",
                policy.max_age,
                f64::from(policy.max_age) / 86_400.0
            ),
        );
        let patterns: Vec<String> = policy.mx.iter().map(ToString::to_string).collect();
        line(
            out,
            "mx:",
            &if patterns.is_empty() {
                "none".to_owned()
            } else {
                patterns.join(", ")
            },
        );
    }
}

fn probe_lines(out: &mut String, host: &MxHost, now: i64, style: Style) {
    let probes = match &host.probes {
        Ok(probes) => probes,
        Err(error) => {
            let _ = writeln!(
                out,
                "      {}: {}",
                clean(&host.host),
                clean(&error.to_string())
            );
            return;
        }
    };
    for probe in probes {
        probe_line(out, probe, now, style);
    }
}

fn probe_line(out: &mut String, probe: &MxProbe, now: i64, style: Style) {
    let addr = format!("{} [{}]:{}", probe.host, probe.addr.ip(), probe.addr.port());
    let ms = probe.elapsed.as_millis();
    let starttls = match probe.starttls_offered {
        Some(true) => "STARTTLS yes",
        Some(false) => "STARTTLS no",
        None => "STARTTLS ?",
    };
    let Some(tls) = &probe.tls else {
        let what = if probe.outcome == ProbeOutcome::Ok {
            starttls.to_owned()
        } else {
            format!("{starttls}: {}", probe.outcome)
        };
        let _ = writeln!(out, "      {}  {}, {ms} ms", clean(&addr), clean(&what));
        return;
    };
    let _ = writeln!(
        out,
        "      {}  {starttls}, {}, {}, {ms} ms",
        clean(&addr),
        tls.version,
        tls.cipher_suite
    );
    let Some(cert) = &tls.certificate else {
        let _ = writeln!(out, "          certificate: none presented");
        return;
    };
    let matches = if tls
        .verification
        .problems
        .iter()
        .any(|p| matches!(p, mta_sts_net::CertProblem::NameMismatch { .. }))
    {
        style.bad("does not match")
    } else {
        style.good("matches")
    };
    let _ = writeln!(
        out,
        "          certificate: {}, SAN {} ({matches} {}), issuer {}, expires {}",
        clean(&cert.subject),
        clean(&cert.subject_alt_names.join(" ")),
        clean(&probe.host),
        clean(&cert.issuer),
        days_left(cert.not_after, now)
    );
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolver_without_a_port_means_port_53() {
        assert_eq!(
            parse_resolver("127.0.0.4"),
            Ok("127.0.0.4:53".parse().unwrap())
        );
        assert_eq!(
            parse_resolver("127.0.0.4:5353"),
            Ok("127.0.0.4:5353".parse().unwrap())
        );
        assert_eq!(parse_resolver("::1"), Ok("[::1]:53".parse().unwrap()));
        assert_eq!(parse_resolver("[::1]"), Ok("[::1]:53".parse().unwrap()));
        assert_eq!(
            parse_resolver("[::1]:5353"),
            Ok("[::1]:5353".parse().unwrap())
        );
        let error = parse_resolver("dns.example").unwrap_err();
        assert!(
            error.contains("\"dns.example\" is not an IP address"),
            "{error}"
        );
    }
}
