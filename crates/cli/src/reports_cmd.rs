//! `mta-sts reports summary|export|readiness`: the stored reports as answers; `reports
//! rebuild`: every report derived again from the raw bytes kept.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use mta_sts_check::{CheckOptions, Checker, Report, SenderVerdict};
use mta_sts_policy::Severity;
use mta_sts_store::analysis::{
    self, AnalysisFilter, GroupBy, PolicyRow, READY_MIN_DAYS, READY_MIN_REPORTERS, Readiness,
    SummaryRow, Verdict,
};

use crate::Outcome;
use crate::args::{
    ExportFormat, ReportsExportArgs, ReportsReadinessArgs, ReportsRebuildArgs, ReportsSummaryArgs,
    StoreArgs, SummaryBy, TimeArgs,
};
use crate::render::{Style, clean};

impl From<SummaryBy> for GroupBy {
    fn from(by: SummaryBy) -> Self {
        match by {
            SummaryBy::Domain => Self::Domain,
            SummaryBy::Day => Self::Day,
            SummaryBy::Org => Self::Org,
            SummaryBy::Result => Self::Result,
            SummaryBy::Mx => Self::Mx,
            SummaryBy::SendingIp => Self::SendingIp,
            SummaryBy::ReceivingIp => Self::ReceivingIp,
        }
    }
}

/// The stored policy entries for `domain` within the period `time` names.
fn rows(
    store: &StoreArgs,
    domain: Option<&str>,
    time: &TimeArgs,
    default_since: Option<&str>,
) -> anyhow::Result<Vec<PolicyRow>> {
    let now = unix_now();
    let since = match time.since.as_deref().or(default_since) {
        Some(text) => Some(parse_time(text, now).with_context(|| "--since")?),
        None => None,
    };
    let until = match time.until.as_deref() {
        Some(text) => Some(parse_time(text, now).with_context(|| "--until")?),
        None => None,
    };
    let filter = AnalysisFilter {
        domain: domain.map(str::to_owned),
        since,
        until,
        ..AnalysisFilter::default()
    };
    crate::runtime()?.block_on(async {
        let store = crate::serve::open_store(store).await?;
        let rows = store.policy_rows(&filter).await?;
        store.close().await;
        anyhow::Ok(rows)
    })
}

/// `30d` (days before now), `YYYY-MM-DD` (that day, 00:00 UTC) or `YYYY-MM-DDTHH:MM:SSZ`.
fn parse_time(text: &str, now: i64) -> anyhow::Result<i64> {
    let bad = || {
        anyhow::anyhow!(
            "{:?} is not a time: give 30d (days ago), 2024-01-31 or 2024-01-31T12:00:00Z",
            clean(text)
        )
    };
    if let Some(days) = text.strip_suffix('d') {
        let days: i64 = days.parse().map_err(|_| bad())?;
        return Ok(now.saturating_sub(days.saturating_mul(86_400)));
    }
    // A date alone is that day's start, in UTC.
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    mta_sts_tlsrpt::report::Timestamp::parse(&full)
        .map(|t| t.unix_seconds())
        .ok_or_else(bad)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn rate(row: &SummaryRow) -> String {
    row.failure_rate()
        .map_or_else(|| "-".to_owned(), |r| format!("{:.2}%", r * 100.0))
}

/// `validation-failure 3, starttls-not-supported 1`, largest first.
fn types(row: &SummaryRow) -> String {
    let mut types: Vec<(&String, &u64)> = row.failure_types.iter().collect();
    types.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    types
        .iter()
        .map(|(t, n)| format!("{} {n}", clean(t)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn summary_json(row: &SummaryRow) -> serde_json::Value {
    serde_json::json!({
        "key": row.key,
        "reports": row.reports,
        "sessions": row.sessions(),
        "successful": row.successful,
        "failed": row.failed,
        "failure_rate": row.failure_rate(),
        "failure_types": row.failure_types,
        "details_exceed_total": row.details_exceed_total,
    })
}

/// `reports summary`.
pub fn summary(args: &ReportsSummaryArgs, style: Style) -> anyhow::Result<Outcome> {
    let rows = rows(&args.store, args.domain.as_deref(), &args.time, None)?;
    let by = GroupBy::from(args.by);
    let groups = analysis::summarize(&rows, by);
    if args.json {
        let json: Vec<_> = groups.iter().map(summary_json).collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "by": args.by.name(),
                "failures_only": by.failures_only(),
                "groups": json,
            }))?
        );
        return Ok(Outcome::Ok);
    }
    if groups.is_empty() {
        outln!("no reports match");
        return Ok(Outcome::Ok);
    }
    let mut out = String::new();
    let width = groups
        .iter()
        .map(|g| clean(&g.key).chars().count())
        .max()
        .unwrap_or(0)
        .clamp(6, 40);
    let name = args.by.name().to_uppercase();
    if by.failures_only() {
        let _ = writeln!(
            out,
            "{}",
            style.bold(&format!(
                "{name:<width$}  {:>7}  {:>9}  FAILURE TYPES",
                "REPORTS", "FAILED"
            ))
        );
        for g in &groups {
            let _ = writeln!(
                out,
                "{:<width$}  {:>7}  {:>9}  {}",
                cut(&g.key, width),
                g.reports,
                g.failed,
                types(g)
            );
        }
        let _ = writeln!(
            out,
            "(failure details only: reports break down failures by {}, not successes)",
            args.by.name()
        );
    } else {
        let _ = writeln!(
            out,
            "{}",
            style.bold(&format!(
                "{name:<width$}  {:>7}  {:>10}  {:>10}  {:>9}  {:>7}  FAILURE TYPES",
                "REPORTS", "SESSIONS", "SUCCESSFUL", "FAILED", "RATE"
            ))
        );
        for g in &groups {
            let failed = format!("{:>9}", g.failed);
            let _ = writeln!(
                out,
                "{:<width$}  {:>7}  {:>10}  {:>10}  {}  {:>7}  {}{}",
                cut(&g.key, width),
                g.reports,
                g.sessions().unwrap_or(0),
                g.successful.unwrap_or(0),
                if g.failed > 0 {
                    style.bad(&failed)
                } else {
                    failed
                },
                rate(g),
                types(g),
                if g.details_exceed_total > 0 {
                    format!(
                        " [details exceed the failure total in {} reports; shown as reported]",
                        g.details_exceed_total
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    out!("{out}");
    Ok(Outcome::Ok)
}

fn cut(text: &str, width: usize) -> String {
    clean(text).chars().take(width).collect()
}

/// The export columns, one row per policy entry × failure detail.
const EXPORT_COLUMNS: [&str; 17] = [
    "report",
    "organization_name",
    "report_id",
    "date_start",
    "date_end",
    "policy_domain",
    "policy_type",
    "counted",
    "successful",
    "failed",
    "details_exceed_total",
    "result_type",
    "sending_mta_ip",
    "receiving_mx_hostname",
    "receiving_ip",
    "failed_session_count",
    "failure_reason_code",
];

fn export_records(rows: &[PolicyRow]) -> impl Iterator<Item = serde_json::Value> + '_ {
    rows.iter().flat_map(|row| {
        let base = serde_json::json!({
            "report": row.report.0,
            "organization_name": row.organization_name,
            "report_id": row.report_id,
            "date_start": timestamp(row.date_start),
            "date_end": timestamp(row.date_end),
            "policy_domain": row.policy_domain,
            "policy_type": row.policy_type,
            "counted": row.counted,
            "successful": row.successful,
            "failed": row.failed,
            "details_exceed_total": row.details_exceed_total(),
        });
        let details: Vec<serde_json::Value> = if row.details.is_empty() {
            vec![with_detail(&base, None)]
        } else {
            row.details
                .iter()
                .map(|d| with_detail(&base, Some(d)))
                .collect()
        };
        details
    })
}

fn with_detail(
    base: &serde_json::Value,
    detail: Option<&analysis::DetailRow>,
) -> serde_json::Value {
    let mut record = base.clone();
    if let Some(object) = record.as_object_mut() {
        object.insert(
            "result_type".into(),
            detail.map(|d| d.result_type.clone()).into(),
        );
        object.insert(
            "sending_mta_ip".into(),
            detail.and_then(|d| d.sending_mta_ip.clone()).into(),
        );
        object.insert(
            "receiving_mx_hostname".into(),
            detail.and_then(|d| d.receiving_mx_hostname.clone()).into(),
        );
        object.insert(
            "receiving_ip".into(),
            detail.and_then(|d| d.receiving_ip.clone()).into(),
        );
        object.insert(
            "failed_session_count".into(),
            detail.map(|d| d.failed_session_count).into(),
        );
        object.insert(
            "failure_reason_code".into(),
            detail.and_then(|d| d.failure_reason_code.clone()).into(),
        );
    }
    record
}

fn timestamp(unix_seconds: i64) -> String {
    mta_sts_tlsrpt::report::Timestamp::from_unix_seconds(unix_seconds)
        .map_or_else(|| unix_seconds.to_string(), |t| t.to_string())
}

/// `reports export`.
pub fn export(args: &ReportsExportArgs) -> anyhow::Result<Outcome> {
    let rows = rows(&args.store, args.domain.as_deref(), &args.time, None)?;
    let format = if args.json {
        ExportFormat::Json
    } else {
        args.format
    };
    let stdout = std::io::stdout();
    let mut stdout = std::io::BufWriter::new(stdout.lock());
    match format {
        ExportFormat::Json => {
            let records: Vec<_> = export_records(&rows).collect();
            serde_json::to_writer_pretty(&mut stdout, &records)?;
            std::io::Write::write_all(&mut stdout, b"\n")?;
        }
        ExportFormat::Jsonl => {
            for record in export_records(&rows) {
                serde_json::to_writer(&mut stdout, &record)?;
                std::io::Write::write_all(&mut stdout, b"\n")?;
            }
        }
        ExportFormat::Csv => {
            let mut csv = csv::Writer::from_writer(&mut stdout);
            csv.write_record(EXPORT_COLUMNS)?;
            for record in export_records(&rows) {
                let fields = EXPORT_COLUMNS.iter().map(|c| match &record[*c] {
                    serde_json::Value::Null => String::new(),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                csv.write_record(fields)?;
            }
            csv.flush()?;
        }
    }
    std::io::Write::flush(&mut stdout)?;
    Ok(Outcome::Ok)
}

/// `reports readiness DOMAIN`.
pub fn readiness(args: &ReportsReadinessArgs, style: Style) -> anyhow::Result<Outcome> {
    if args.domain.trim().is_empty() {
        bail!("give the policy domain, e.g. `mta-sts reports readiness example.com`");
    }
    let rows = rows(&args.store, Some(&args.domain), &args.time, Some("30d"))?;
    let mut r = analysis::readiness(&args.domain, &rows);
    let live = if args.live {
        let report = live_check(args, &r.domain)?;
        if let Some(fix) = live_fix(&report) {
            r.verdict = Verdict::NotYet { fix };
        }
        Some(report)
    } else {
        None
    };
    let outcome = if r.verdict == Verdict::Ready {
        Outcome::Ok
    } else {
        Outcome::Problems
    };
    if args.json {
        let mut json = readiness_json(&r);
        json["live"] = live.as_ref().map_or(serde_json::Value::Null, live_json);
        outln!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(outcome);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        style.bold(&format!(
            "May {} go from testing to enforce?",
            clean(&r.domain)
        ))
    );
    let verdict = verdict_text(&r.verdict);
    let _ = writeln!(
        out,
        "  verdict: {}",
        match r.verdict {
            Verdict::Ready => style.good(&verdict),
            Verdict::NotYet { .. } => style.bad(&verdict),
            Verdict::NotEnoughData { .. } => style.warn(&verdict),
        }
    );
    let _ = writeln!(
        out,
        "  days covered: {} ({} to {}); wanted: {READY_MIN_DAYS}",
        r.days,
        r.first_day.as_deref().unwrap_or("-"),
        r.last_day.as_deref().unwrap_or("-")
    );
    let reporters: Vec<String> = r
        .reporters
        .iter()
        .map(|(org, n)| format!("{} ({n})", clean(org)))
        .collect();
    let _ = writeln!(
        out,
        "  reporters: {}; wanted: {READY_MIN_REPORTERS}{}",
        r.reporters.len(),
        if reporters.is_empty() {
            String::new()
        } else {
            format!(": {}", reporters.join(", "))
        }
    );
    for (org, last) in &r.stopped {
        let _ = writeln!(
            out,
            "  {} {} stopped sending: last report {last}",
            style.warn("note:"),
            clean(org)
        );
    }
    let _ = writeln!(
        out,
        "  sessions: {} ({} failed, {})",
        r.total.sessions().unwrap_or(0),
        r.total.failed,
        rate(&r.total)
    );
    if !r.would_refuse.is_empty() {
        let _ = writeln!(out, "  MX hosts senders would refuse under enforce:");
        for (mx, sessions, result) in &r.would_refuse {
            let _ = writeln!(
                out,
                "    {}: {sessions} failed sessions, mostly {}",
                clean(mx),
                clean(result)
            );
        }
    }
    if !r.by_mx.is_empty() {
        let _ = writeln!(out, "  failures per receiving MX:");
        for g in &r.by_mx {
            let _ = writeln!(out, "    {}: {} ({})", clean(&g.key), g.failed, types(g));
        }
    }
    if !r.by_result.is_empty() {
        let _ = writeln!(out, "  failures per result type:");
        for g in &r.by_result {
            let _ = writeln!(out, "    {}: {}", clean(&g.key), g.failed);
        }
    }
    match &live {
        None => {
            let _ = writeln!(
                out,
                "  (from the stored reports only; --live, or `mta-sts check {}`, adds the live state)",
                clean(&r.domain)
            );
        }
        Some(report) => {
            let _ = writeln!(out, "  live check: {}", clean(&report.sender.summary()));
            if let Some(reason) = &report.incomplete {
                let _ = writeln!(
                    out,
                    "    {} incomplete ({}); the verdict rests on the reports",
                    style.warn("note:"),
                    clean(reason)
                );
            }
            for finding in report
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
            {
                let _ = writeln!(
                    out,
                    "    {} {}: {}",
                    style.bad("error:"),
                    clean(&finding.subject),
                    clean(&finding.message)
                );
            }
        }
    }
    out!("{out}");
    Ok(outcome)
}

/// `check DOMAIN` for `readiness --live`, through the same checker.
fn live_check(args: &ReportsReadinessArgs, domain: &str) -> anyhow::Result<Report> {
    let net = crate::check::net(&args.net)?;
    let options = CheckOptions {
        no_smtp: args.no_smtp,
        without_sni: false,
    };
    let checker = Checker::new(net, options);
    Ok(crate::runtime()?.block_on(checker.check(domain)))
}

/// What the live state says to fix before `enforce`, when anything: an error finding comes
/// first (a policy that does not cover an MX, a record senders cannot use), then MX hosts
/// that would refuse mail under `enforce`. An incomplete check decides nothing.
fn live_fix(report: &Report) -> Option<String> {
    if report.incomplete.is_some() {
        return None;
    }
    if let Some(finding) = report
        .findings
        .iter()
        .find(|f| f.severity == Severity::Error)
    {
        return Some(format!(
            "{} ({}; live check): {}",
            finding.message, finding.subject, finding.fix
        ));
    }
    match &report.sender {
        SenderVerdict::Testing {
            would_fail_under_enforce,
        } if !would_fail_under_enforce.is_empty() => Some(format!(
            "the MX hosts that would fail under enforce today (live check): {}",
            would_fail_under_enforce.join(", ")
        )),
        _ => None,
    }
}

fn live_json(report: &Report) -> serde_json::Value {
    serde_json::json!({
        "sender": report.sender.summary(),
        "incomplete": report.incomplete,
        "errors": report.findings.iter().filter(|f| f.severity == Severity::Error).map(|f| serde_json::json!({
            "code": f.code, "subject": f.subject, "message": f.message, "fix": f.fix,
        })).collect::<Vec<_>>(),
    })
}

fn verdict_text(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Ready => "ready".to_owned(),
        Verdict::NotYet { fix } => format!("not yet: fix {} first", clean(fix)),
        Verdict::NotEnoughData { days, reporters } => {
            format!("not enough data: {days} days, {reporters} reporters")
        }
    }
}

/// `reports rebuild`.
pub fn rebuild(args: &ReportsRebuildArgs) -> anyhow::Result<Outcome> {
    let terminal = std::io::stderr().is_terminal();
    let stats = crate::runtime()?.block_on(async {
        let store = crate::serve::open_store(&args.store).await?;
        let mut last = std::time::Instant::now();
        let stats = store
            .rebuild(|so_far| {
                if terminal && last.elapsed() >= std::time::Duration::from_millis(200) {
                    last = std::time::Instant::now();
                    eprint!(
                        "\r\x1b[2K{} derived again, {} released, {} unreadable",
                        so_far.rederived, so_far.released, so_far.unreadable
                    );
                }
            })
            .await?;
        if terminal {
            eprint!("\r\x1b[2K");
        }
        store.close().await;
        anyhow::Ok(stats)
    })?;
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "rederived": stats.rederived,
                "released": stats.released,
                "unreadable": stats.unreadable,
                "held": stats.held,
            }))?
        );
    } else {
        outln!(
            "{} reports derived again, {} released from quarantine, {} still unreadable, {} held \
             on purpose (manual, dkim-required)",
            stats.rederived,
            stats.released,
            stats.unreadable,
            stats.held
        );
    }
    Ok(Outcome::Ok)
}

fn readiness_json(r: &Readiness) -> serde_json::Value {
    let (verdict, fix) = match &r.verdict {
        Verdict::Ready => ("ready", None),
        Verdict::NotYet { fix } => ("not-yet", Some(fix.clone())),
        Verdict::NotEnoughData { .. } => ("not-enough-data", None),
    };
    serde_json::json!({
        "domain": r.domain,
        "verdict": verdict,
        "verdict_text": verdict_text(&r.verdict),
        "fix_first": fix,
        "days": r.days,
        "first_day": r.first_day,
        "last_day": r.last_day,
        "min_days": READY_MIN_DAYS,
        "reporters": r.reporters,
        "min_reporters": READY_MIN_REPORTERS,
        "stopped_reporters": r.stopped,
        "total": summary_json(&r.total),
        "by_mx": r.by_mx.iter().map(summary_json).collect::<Vec<_>>(),
        "by_result": r.by_result.iter().map(summary_json).collect::<Vec<_>>(),
        "would_refuse": r.would_refuse.iter().map(|(mx, n, t)| serde_json::json!({
            "mx": mx, "failed": n, "main_result_type": t,
        })).collect::<Vec<_>>(),
        "policy_failures": r.policy_failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_days_ago_dates_or_utc_date_times() {
        assert_eq!(parse_time("2024-01-09", 0).unwrap(), 1_704_758_400);
        assert_eq!(
            parse_time("2024-01-09T23:59:59Z", 0).unwrap(),
            1_704_844_799
        );
        assert_eq!(parse_time("30d", 30 * 86_400 + 5).unwrap(), 5);
        for bad in ["2024-13-01", "yesterday", "2024-1-9", "2024-01-09T10:00"] {
            assert!(parse_time(bad, 0).is_err(), "{bad}");
        }
    }
}
