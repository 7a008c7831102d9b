//! The HTML pages. Every number comes from [`DashboardData`](super::DashboardData) as the
//! store counts it; every string from a report goes through [`esc`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::response::Response;
use http::StatusCode;

use super::auth::Viewer;
use super::chart::{self, DayBar};
use super::data::{
    CheckFinding, CheckRow, DomainStats, Readiness, ReportQuery, ReportRow, Reprocess, Tally,
};
use super::extract::{PageDomain, PageViewer};
use super::html::{self, Section, esc, num, percent, url};
use super::{Dashboard, DomainInfo, csrf_ok, data_error, html_response, now};

/// The ranges the domain page offers, in days.
pub(crate) const RANGES: [u32; 4] = [7, 30, 90, 365];
/// The overview's and the default range.
pub(crate) const DEFAULT_DAYS: u32 = 30;
/// A reporter is silent after this many days without a report.
pub const SILENT_DAYS: i64 = 7;
/// Rows of a failure table on the domain page (the API has them all).
pub(crate) const TABLE_ROWS: usize = 20;
/// Reports per page of the list.
pub(crate) const PAGE_SIZE: u32 = 50;

/// The last `days` UTC days up to today: `(since, until, day names)` for queries and charts.
pub(crate) fn period(days: u32, now: i64) -> (i64, i64, Vec<String>) {
    let today = now - now.rem_euclid(86_400);
    let first = today - i64::from(days.saturating_sub(1)) * 86_400;
    let names = (0..i64::from(days))
        .map(|i| day_name(first + i * 86_400))
        .collect();
    (first, today + 86_400, names)
}

/// `YYYY-MM-DD` of a UTC time.
pub(crate) fn day_name(unix: i64) -> String {
    mta_sts_tlsrpt::report::Timestamp::from_unix_seconds(unix)
        .map(|t| t.to_string().chars().take(10).collect())
        .unwrap_or_default()
}

/// `days=N` of a query, one of [`RANGES`], else the default.
pub(crate) fn days_param(query: &HashMap<String, String>) -> u32 {
    query
        .get("days")
        .and_then(|d| d.parse().ok())
        .filter(|d| RANGES.contains(d))
        .unwrap_or(DEFAULT_DAYS)
}

/// How a domain is doing, in one word for its colour and one sentence of what to do.
pub(crate) struct Health {
    pub level: &'static str,
    pub headline: String,
    pub todo: String,
}

/// The receiving MX with the most failures, with its failure count.
fn worst(list: &[Tally]) -> Option<&Tally> {
    list.iter()
        .max_by_key(|t| t.failed)
        .filter(|t| t.failed > 0)
}

pub(crate) fn health(info: &DomainInfo, stats: &DomainStats, days: u32) -> Health {
    let total = &stats.total;
    let sessions = total.successful.unwrap_or(0).saturating_add(total.failed);
    if sessions == 0 {
        return Health {
            level: "warn",
            headline: format!("No TLS reports in the last {days} days"),
            todo: format!(
                "Check that {} TXT \"{}\" is published; senders report daily once it is.",
                info.records.tlsrpt.name, info.records.tlsrpt.value
            ),
        };
    }
    if total.failed > 0 {
        let kind = worst(&stats.by_result).map_or("unknown", |t| t.key.as_str());
        let at = worst(&stats.by_mx)
            .map(|t| format!(" at {}", t.key))
            .unwrap_or_default();
        return Health {
            level: "bad",
            headline: format!(
                "{} of {} sessions failed ({})",
                num(total.failed),
                num(sessions),
                percent(total.failure_rate())
            ),
            todo: format!(
                "Mostly {kind}{at}: {}.",
                html::result_hint(kind).replace("<domain>", &info.name)
            ),
        };
    }
    let todo = match &stats.readiness {
        _ if info.mode == "enforce" => {
            "Nothing to fix: the policy is enforced and every session used TLS.".to_owned()
        }
        Some(Readiness::Ready) => {
            "Ready for enforce: set mode: enforce in the policy, then publish its new id."
                .to_owned()
        }
        Some(Readiness::NotEnoughData {
            days,
            reporters,
            min_days,
            min_reporters,
        }) => {
            let mut wanted = Vec::new();
            if days < min_days {
                wanted.push(format!("{min_days} days of reports ({days} so far)"));
            }
            if reporters < min_reporters {
                wanted.push(format!("{min_reporters} reporters ({reporters} so far)"));
            }
            format!(
                "Nothing to fix. Before enforce, wait for {}.",
                wanted.join(" and ")
            )
        }
        _ => "Nothing to fix.".to_owned(),
    };
    Health {
        level: "ok",
        headline: format!("All {} sessions used TLS", num(sessions)),
        todo,
    }
}

fn readiness_text(mode: &str, readiness: Option<&Readiness>) -> (&'static str, String) {
    match readiness {
        _ if mode == "enforce" => ("ok", "enforced already".to_owned()),
        Some(Readiness::Ready) => ("ok", "ready for enforce".to_owned()),
        Some(Readiness::NotYet { fix }) => ("bad", format!("not yet: {fix}")),
        Some(Readiness::NotEnoughData {
            days,
            reporters,
            min_days,
            min_reporters,
        }) => (
            "warn",
            format!(
                "not enough data ({days}/{min_days} days, {reporters}/{min_reporters} reporters)"
            ),
        ),
        None => ("warn", "unknown".to_owned()),
    }
}

/// A domain's card: its figures over the overview's period.
pub(crate) struct Card {
    pub info: DomainInfo,
    pub stats: DomainStats,
    pub bars: Vec<DayBar>,
    /// The latest scheduled check.
    pub check: Option<CheckRow>,
    /// The open alerts.
    pub alerts: Vec<super::data::AlertRow>,
}

/// The cards of every domain the viewer may see.
pub(crate) async fn cards(
    dashboard: &Dashboard,
    viewer: &Viewer,
) -> Result<Vec<Card>, super::DataError> {
    let (since, until, days) = period(DEFAULT_DAYS, now());
    let scope = dashboard.scope(viewer);
    let names: Vec<String> = scope.iter().map(|d| d.name.clone()).collect();
    let all = dashboard.overview_stats(&names, since, until).await?;
    let checks = dashboard.data.latest_checks(&names).await?;
    let mut alerts = dashboard.data.alerts(&names).await?;
    Ok(scope
        .into_iter()
        .zip(all)
        .zip(checks)
        .map(|((info, stats), check)| {
            let bars = chart::day_bars(&days, &stats.daily);
            let (mine, rest) = alerts.drain(..).partition(|a| a.domain == info.name);
            alerts = rest;
            Card {
                info,
                stats,
                bars,
                check,
                alerts: mine,
            }
        })
        .collect())
}

pub(crate) async fn overview(
    State(dashboard): State<Arc<Dashboard>>,
    PageViewer(viewer): PageViewer,
) -> Response {
    let cards = match cards(&dashboard, &viewer).await {
        Ok(cards) => cards,
        Err(error) => return data_error(&error),
    };
    // What needs attention first: failing domains, then those without data, then clean ones.
    let mut cards = cards;
    cards.sort_by_key(|c| match health(&c.info, &c.stats, DEFAULT_DAYS).level {
        "bad" => 0,
        "warn" => 1,
        _ => 2,
    });
    let mut body = String::from("<h1>Your domains</h1>");
    if cards.is_empty() {
        body.push_str(
            "<p>No domain to show: this user may see none of the configured domains.</p>",
        );
    }
    let failing = cards
        .iter()
        .filter(|c| health(&c.info, &c.stats, DEFAULT_DAYS).level == "bad")
        .count();
    let _ = write!(
        body,
        r#"<p class="muted">Last {DEFAULT_DAYS} days, from the TLS reports senders sent. {} of {} domains have failed sessions.</p><div class="cards">"#,
        failing,
        cards.len()
    );
    for card in &cards {
        let health = health(&card.info, &card.stats, DEFAULT_DAYS);
        let total = &card.stats.total;
        let (ready_class, ready) = readiness_text(card.info.mode, card.stats.readiness.as_ref());
        let _ = write!(
            body,
            r#"<section class="card {level}" data-domain="{name}"><h2><a href="/domains/{link}">{name}</a></h2><p><strong>{headline}</strong><br><span class="todo">{todo}</span></p>{spark}<dl><dt>policy</dt><dd><span class="badge">{mode}</span> id <code>{id}</code></dd><dt>sessions</dt><dd><span class="num" data-field="sessions">{sessions}</span> (<span class="num ok" data-field="successful">{ok}</span> ok, <span class="num bad" data-field="failed">{bad}</span> failed)</dd><dt>failure rate</dt><dd data-field="rate">{rate}</dd><dt>reporters</dt><dd data-field="reporters">{reporters}</dd><dt>enforce</dt><dd><span class="state {ready_class}">{ready}</span></dd><dt>latest check</dt><dd data-field="check">{check}</dd><dt>alerts</dt><dd data-field="alerts">{alerts}</dd></dl></section>"#,
            level = health.level,
            name = esc(&card.info.name),
            link = url(&card.info.name),
            headline = esc(&health.headline),
            todo = esc(&health.todo),
            spark = chart::sparkline(&card.bars),
            mode = card.info.mode,
            id = esc(&card.info.records.policy_id),
            sessions = num(total.successful.unwrap_or(0).saturating_add(total.failed)),
            ok = num(total.successful.unwrap_or(0)),
            bad = num(total.failed),
            rate = percent(total.failure_rate()),
            reporters = card.stats.by_reporter.len(),
            ready = esc(&ready),
            check = latest_check_cell(card.check.as_ref(), now()),
            alerts = super::alerts::card_cell(&card.info.name, &card.alerts),
        );
    }
    body.push_str("</div>");
    html_response(
        StatusCode::OK,
        html::page("Overview", Section::Overview, Some(&viewer), &body),
    )
}

pub(super) fn not_found(viewer: &Viewer, what: &str) -> Response {
    html_response(
        StatusCode::NOT_FOUND,
        html::page(
            "Not found",
            Section::None,
            Some(viewer),
            &format!(
                "<h1>Not found</h1><p>{}</p><p><a href=\"/\">Back to the overview</a></p>",
                esc(what)
            ),
        ),
    )
}

/// A table of failure groups: key, failed sessions, reports, and the result types.
fn failure_table(title: &str, column: &str, list: &[Tally], hints: bool, field: &str) -> String {
    let mut out = format!("<h2>{}</h2>", esc(title));
    if list.is_empty() {
        out.push_str(r#"<p class="muted">No failures.</p>"#);
        return out;
    }
    let mut sorted: Vec<&Tally> = list.iter().collect();
    sorted.sort_by(|a, b| b.failed.cmp(&a.failed).then_with(|| a.key.cmp(&b.key)));
    let _ = write!(
        out,
        r#"<div class="scroll"><table data-table="{field}"><tr><th>{}</th><th class="n">failed sessions</th><th class="n hide-narrow">reports</th><th>{}</th></tr>"#,
        esc(column),
        if hints { "what to do" } else { "result types" }
    );
    let hidden = sorted.len().saturating_sub(TABLE_ROWS);
    for tally in sorted.into_iter().take(TABLE_ROWS) {
        let detail = if hints {
            esc(html::result_hint(&tally.key))
        } else {
            types(&tally.failure_types)
        };
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td class="n num bad">{}</td><td class="n hide-narrow">{}</td><td>{detail}</td></tr>"#,
            esc(&tally.key),
            num(tally.failed),
            num(tally.reports)
        );
    }
    out.push_str("</table></div>");
    if hidden > 0 {
        let _ = write!(
            out,
            r#"<p class="muted">and {hidden} more with fewer failures (all of them: <code>/api/v1/domains/&lt;domain&gt;</code>).</p>"#
        );
    }
    out
}

fn types(types: &std::collections::BTreeMap<String, u64>) -> String {
    let mut list: Vec<(&String, &u64)> = types.iter().collect();
    list.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    list.iter()
        .map(|(t, n)| format!("{} {}", esc(t), num(**n)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) async fn domain(
    State(dashboard): State<Arc<Dashboard>>,
    PageDomain { viewer, info }: PageDomain,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let days = days_param(&query);
    let (since, until, day_names) = period(days, now());
    let stats = match dashboard.data.domain_stats(&info.name, since, until).await {
        Ok(stats) => stats,
        Err(error) => return data_error(&error),
    };
    let bars = chart::day_bars(&day_names, &stats.daily);
    let health = health(&info, &stats, days);
    let name = esc(&info.name);
    let mut body = format!(
        r#"<h1>{name}</h1><div class="verdict {}"><strong>{}</strong><span class="todo">{}</span></div>"#,
        health.level,
        esc(&health.headline),
        esc(&health.todo)
    );
    body.push_str(r#"<p class="ranges">Range: "#);
    for range in RANGES {
        let class = if range == days {
            r#" class="here""#
        } else {
            ""
        };
        let _ = write!(
            body,
            r#"<a href="/domains/{}?days={range}"{class}>{range} days</a>"#,
            url(&info.name)
        );
    }
    let total = &stats.total;
    let _ = write!(
        body,
        r#"</p><h2>Sessions per day</h2><p class="legend"><span class="ok">■ successful</span> <span class="bad">■ failed</span> · total <span class="num" data-field="sessions">{}</span>, failed <span class="num bad" data-field="failed">{}</span> ({}) in <span data-field="reports">{}</span> reports</p>{}"#,
        num(total.successful.unwrap_or(0).saturating_add(total.failed)),
        num(total.failed),
        percent(total.failure_rate()),
        num(total.reports),
        chart::stacked_days(&bars)
    );
    let (ready_class, ready) = readiness_text(info.mode, stats.readiness.as_ref());
    let _ = write!(
        body,
        r#"<h2>Ready for enforce?</h2><p><span class="state {ready_class}" data-field="readiness">{}</span> <span class="muted">(over the shown range; the policy is in <code>{}</code> mode)</span></p>"#,
        esc(&ready),
        info.mode
    );
    match dashboard
        .data
        .alerts(std::slice::from_ref(&info.name))
        .await
    {
        Ok(alerts) => body.push_str(&super::alerts::section(&alerts)),
        Err(error) => return data_error(&error),
    }
    body.push_str(&failure_table(
        "Failures by result type",
        "result type",
        &stats.by_result,
        true,
        "by-result",
    ));
    body.push_str(&failure_table(
        "Failures by receiving MX host",
        "MX host",
        &stats.by_mx,
        false,
        "by-mx",
    ));
    body.push_str(&failure_table(
        "Failures by receiving IP",
        "address",
        &stats.by_receiving_ip,
        false,
        "by-receiving-ip",
    ));
    body.push_str(&failure_table(
        "Failures by sending MTA IP",
        "address",
        &stats.by_sending_ip,
        false,
        "by-sending-ip",
    ));
    body.push_str(&reporter_table(&info.name, &stats));
    body.push_str(&silent_reporters(&stats));
    let records = &info.records;
    let _ = write!(
        body,
        r#"<h2>Policy served</h2><p>At <a href="{url}">{url_text}</a> (mode {mode}, max_age {max_age}):</p><pre>{policy}</pre><h2>TXT records to publish</h2><div class="scroll"><table><tr><th>name</th><th>value</th></tr><tr><td><code>{sts_name}</code></td><td><code>{sts_value}</code></td></tr><tr><td><code>{rpt_name}</code></td><td><code>{rpt_value}</code></td></tr></table></div>"#,
        url = esc(&records.policy_url),
        url_text = esc(&records.policy_url),
        mode = info.mode,
        max_age = info.max_age,
        policy = esc(&info.policy_text),
        sts_name = esc(&records.sts.name),
        sts_value = esc(&records.sts.value),
        rpt_name = esc(&records.tlsrpt.name),
        rpt_value = esc(&records.tlsrpt.value),
    );
    match check_section(&dashboard, &info).await {
        Ok(section) => body.push_str(&section),
        Err(error) => return data_error(&error),
    }
    let _ = write!(
        body,
        r#"<p><a href="/reports?domain={}">Reports for {name}</a></p>"#,
        url(&info.name)
    );
    html_response(
        StatusCode::OK,
        html::page(&info.name, Section::Overview, Some(&viewer), &body),
    )
}

fn reporter_table(domain: &str, stats: &DomainStats) -> String {
    let mut out = String::from("<h2>Sessions by reporting organisation</h2>");
    if stats.by_reporter.is_empty() {
        out.push_str(r#"<p class="muted">No reports in this range.</p>"#);
        return out;
    }
    out.push_str(r#"<div class="scroll"><table data-table="by-reporter"><tr><th>reporter</th><th class="n">sessions</th><th class="n">failed</th><th class="n">rate</th><th class="n hide-narrow">reports</th><th class="hide-narrow">last report</th></tr>"#);
    for tally in &stats.by_reporter {
        let last = stats
            .last_report
            .get(&tally.key)
            .map(|&end| day_name(end))
            .unwrap_or_default();
        let _ = write!(
            out,
            r#"<tr><td><a href="/reports?domain={}&amp;reporter={}">{}</a></td><td class="n">{}</td><td class="n num{}">{}</td><td class="n">{}</td><td class="n hide-narrow">{}</td><td class="hide-narrow">{}</td></tr>"#,
            url(domain),
            url(&tally.key),
            esc(&tally.key),
            num(tally.successful.unwrap_or(0).saturating_add(tally.failed)),
            if tally.failed > 0 { " bad" } else { "" },
            num(tally.failed),
            percent(tally.failure_rate()),
            num(tally.reports),
            esc(&last)
        );
    }
    out.push_str("</table></div>");
    out
}

/// Reporters whose last report ended [`SILENT_DAYS`] or more ago, with when (UTC seconds).
pub fn silent(stats: &DomainStats, now: i64) -> Vec<(String, i64)> {
    stats
        .last_report
        .iter()
        .filter(|&(_, &end)| now.saturating_sub(end) >= SILENT_DAYS * 86_400)
        .map(|(org, &end)| (org.clone(), end))
        .collect()
}

fn silent_reporters(stats: &DomainStats) -> String {
    let now = now();
    let list = silent(stats, now);
    let mut out = format!("<h2>Reporters silent for {SILENT_DAYS} days or more</h2>");
    if list.is_empty() {
        out.push_str(r#"<p class="muted">None: every reporter of this range sent a report in the last week.</p>"#);
        return out;
    }
    out.push_str(r#"<div class="scroll"><table data-table="silent"><tr><th>reporter</th><th>last report ended</th><th class="n">days ago</th></tr>"#);
    for (org, end) in list {
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td>{}</td><td class="n">{}</td></tr>"#,
            esc(&org),
            esc(&day_name(end)),
            now.saturating_sub(end) / 86_400
        );
    }
    out.push_str("</table></div>");
    out
}

/// A `YYYY-MM-DD` date of a filter, as the start of that UTC day.
fn date_param(query: &HashMap<String, String>, key: &str) -> Result<Option<i64>, String> {
    match query.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => mta_sts_tlsrpt::report::Timestamp::parse(&format!("{text}T00:00:00Z"))
            .filter(|_| text.len() == 10)
            .map(|t| Some(t.unix_seconds()))
            .ok_or_else(|| format!("{key}: {text:?} is not a date; write YYYY-MM-DD")),
    }
}

/// The report query of a list request, with the viewer's scope; an error names the bad field.
pub(crate) fn report_query(
    dashboard: &Dashboard,
    viewer: &Viewer,
    query: &HashMap<String, String>,
) -> Result<(ReportQuery, u32), String> {
    let mut domains: Vec<String> = dashboard
        .scope(viewer)
        .into_iter()
        .map(|d| d.name)
        .collect();
    if let Some(wanted) = query
        .get("domain")
        .map(|d| d.trim())
        .filter(|d| !d.is_empty())
    {
        let wanted = wanted.trim_end_matches('.').to_ascii_lowercase();
        domains.retain(|d| *d == wanted);
    }
    let page = query
        .get("page")
        .and_then(|p| p.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let until = date_param(query, "until")?.map(|start| start + 86_400);
    Ok((
        ReportQuery {
            domains,
            reporter: query.get("reporter").filter(|r| !r.is_empty()).cloned(),
            since: date_param(query, "since")?,
            until,
            failures_only: query.get("failures").is_some_and(|v| !v.is_empty()),
            offset: (page - 1).saturating_mul(PAGE_SIZE),
            limit: PAGE_SIZE,
        },
        page,
    ))
}

/// The reports of `query`, one more than a page when there are more; nothing when the scope
/// is empty.
pub(crate) async fn list_reports(
    dashboard: &Dashboard,
    query: &ReportQuery,
) -> Result<Vec<ReportRow>, super::DataError> {
    if query.domains.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows = dashboard.data.reports(query).await?;
    // A report can cover several domains: only the viewer's are shown.
    for row in &mut rows {
        row.policies.retain(|p| {
            query
                .domains
                .contains(&p.domain.trim_end_matches('.').to_ascii_lowercase())
        });
    }
    Ok(rows)
}

pub(crate) async fn reports(
    State(dashboard): State<Arc<Dashboard>>,
    PageViewer(viewer): PageViewer,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let field = |key: &str| esc(query.get(key).map_or("", String::as_str));
    let mut body = String::from("<h1>Reports</h1>");
    let _ = write!(
        body,
        r#"<form class="filters" method="get" action="/reports"><label>domain <select name="domain"><option value="">all</option>"#
    );
    let chosen = query.get("domain").map(|d| d.to_ascii_lowercase());
    for info in dashboard.scope(&viewer) {
        let selected = if chosen.as_deref() == Some(info.name.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            body,
            r#"<option value="{0}"{selected}>{0}</option>"#,
            esc(&info.name)
        );
    }
    let _ = write!(
        body,
        r#"</select></label><label>reporter <input name="reporter" value="{}"></label><label>from <input name="since" type="date" value="{}"></label><label>to <input name="until" type="date" value="{}"></label><label>failures only <input type="checkbox" name="failures" value="1"{}></label><button type="submit">Filter</button></form>"#,
        field("reporter"),
        field("since"),
        field("until"),
        if query.get("failures").is_some_and(|v| !v.is_empty()) {
            " checked"
        } else {
            ""
        }
    );
    let (report_query, page) = match report_query(&dashboard, &viewer, &query) {
        Ok(q) => q,
        Err(message) => {
            let _ = write!(body, r#"<p class="error">{}</p>"#, esc(&message));
            return html_response(
                StatusCode::BAD_REQUEST,
                html::page("Reports", Section::Reports, Some(&viewer), &body),
            );
        }
    };
    let mut rows = match list_reports(&dashboard, &report_query).await {
        Ok(rows) => rows,
        Err(error) => return data_error(&error),
    };
    let more = rows.len() > PAGE_SIZE as usize;
    rows.truncate(PAGE_SIZE as usize);
    if rows.is_empty() {
        body.push_str("<p>No reports match.</p>");
    } else {
        body.push_str(r#"<div class="scroll"><table data-table="reports"><tr><th>period start</th><th>reporter</th><th class="hide-narrow">report-id</th><th>domain</th><th class="n">successful</th><th class="n">failed</th></tr>"#);
        for row in &rows {
            let domains: Vec<String> = row.policies.iter().map(|p| esc(&p.domain)).collect();
            let ok: u64 = row.policies.iter().map(|p| p.successful).sum();
            let bad: u64 = row.policies.iter().map(|p| p.failed).sum();
            let _ = write!(
                body,
                r#"<tr><td><a href="/reports/{id}">{start}</a></td><td>{org}</td><td class="hide-narrow">{rid}</td><td>{domains}</td><td class="n">{ok}</td><td class="n num{class}">{bad}</td></tr>"#,
                id = row.id,
                // Daily reports start at midnight: the date says it all.
                start = esc(row.start.strip_suffix("T00:00:00Z").unwrap_or(&row.start)),
                org = esc(&row.reporter),
                rid = esc(&row.report_id),
                domains = domains.join(", "),
                ok = num(ok),
                class = if bad > 0 { " bad" } else { "" },
                bad = num(bad),
            );
        }
        body.push_str("</table></div>");
    }
    let link = |page: u32| {
        let mut params: Vec<String> = query
            .iter()
            .filter(|(k, _)| k.as_str() != "page")
            .map(|(k, v)| format!("{}={}", url(k), url(v)))
            .collect();
        params.sort();
        params.push(format!("page={page}"));
        format!("/reports?{}", esc(&params.join("&")))
    };
    body.push_str(r#"<p class="pager">"#);
    if page > 1 {
        let _ = write!(
            body,
            r#"<a href="{}" rel="prev">← newer</a>"#,
            link(page - 1)
        );
    }
    let _ = write!(body, "<span>page {page}</span>");
    if more {
        let _ = write!(
            body,
            r#"<a href="{}" rel="next">older →</a>"#,
            link(page + 1)
        );
    }
    body.push_str("</p>");
    html_response(
        StatusCode::OK,
        html::page("Reports", Section::Reports, Some(&viewer), &body),
    )
}

/// The report `id` as the viewer may see it: `None` when it covers none of the viewer's
/// domains; the policies of other domains removed, and the JSON withheld when it has any.
pub(crate) async fn scoped_report(
    dashboard: &Dashboard,
    viewer: &Viewer,
    id: i64,
) -> Result<Option<super::ReportDetail>, super::DataError> {
    let scope: Vec<String> = dashboard
        .scope(viewer)
        .into_iter()
        .map(|d| d.name)
        .collect();
    let Some(mut detail) = dashboard.data.report(id).await? else {
        return Ok(None);
    };
    let mine = |domain: &str| scope.contains(&domain.trim_end_matches('.').to_ascii_lowercase());
    if !detail.policies.iter().any(|p| mine(&p.counts.domain)) {
        return Ok(None);
    }
    if !detail.policies.iter().all(|p| mine(&p.counts.domain)) {
        detail.policies.retain(|p| mine(&p.counts.domain));
        detail.row.policies.retain(|p| mine(&p.domain));
        detail.json = "(withheld: this report also covers domains you may not see)".to_owned();
    }
    Ok(Some(detail))
}

pub(crate) async fn report(
    State(dashboard): State<Arc<Dashboard>>,
    PageViewer(viewer): PageViewer,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return not_found(&viewer, "Report ids are numbers.");
    };
    let detail = match scoped_report(&dashboard, &viewer, id).await {
        Ok(Some(detail)) => detail,
        Ok(None) => return not_found(&viewer, &format!("No report {id} here.")),
        Err(error) => return data_error(&error),
    };
    let row = &detail.row;
    let mut body = format!(
        r#"<h1>Report from {}</h1><div class="scroll"><table><tr><th>report-id</th><td>{}</td></tr><tr><th>period</th><td>{} to {}</td></tr><tr><th>contact</th><td>{}</td></tr><tr><th>stored as</th><td>report {} (raw body {})</td></tr></table></div>"#,
        esc(&row.reporter),
        esc(&row.report_id),
        esc(&row.start),
        esc(&row.end),
        esc(detail.contact.as_deref().unwrap_or("-")),
        detail.row.id,
        detail.raw_id
    );
    if !detail.conflicting.is_empty() {
        let others: Vec<String> = detail
            .conflicting
            .iter()
            .map(|k| format!(r#"<a href="/reports/{k}">{k}</a>"#))
            .collect();
        let _ = write!(
            body,
            r#"<p class="notice error">Other reports with this identity differ: {} ({}; one may be forged).</p>"#,
            others.join(", "),
            if detail.counted {
                "this one is counted"
            } else {
                "this one is not counted"
            }
        );
    }
    for policy in &detail.policies {
        let c = &policy.counts;
        let _ = write!(
            body,
            r#"<h2>{} policy for {}</h2><p><span class="num ok" data-field="successful">{}</span> successful, <span class="num bad" data-field="failed">{}</span> failed sessions</p>"#,
            esc(&c.policy_type),
            esc(&c.domain),
            num(c.successful),
            num(c.failed)
        );
        if !policy.mx_hosts.is_empty() {
            let _ = write!(body, "<p>mx: {}</p>", esc(&policy.mx_hosts.join(", ")));
        }
        if !policy.policy_strings.is_empty() {
            let _ = write!(
                body,
                "<pre>{}</pre>",
                esc(&policy.policy_strings.join("\n"))
            );
        }
        if !policy.failures.is_empty() {
            body.push_str(r#"<div class="scroll"><table data-table="failures"><tr><th>result type</th><th class="n">sessions</th><th>sending IP</th><th>receiving MX</th><th>receiving IP</th><th>reason</th></tr>"#);
            for f in &policy.failures {
                let _ = write!(
                    body,
                    r#"<tr><td>{}</td><td class="n num bad">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                    esc(&f.result_type),
                    num(f.failed_sessions),
                    esc(f.sending_mta_ip.as_deref().unwrap_or("-")),
                    esc(f.receiving_mx_hostname.as_deref().unwrap_or("-")),
                    esc(f.receiving_ip.as_deref().unwrap_or("-")),
                    esc(f.reason.as_deref().unwrap_or(""))
                );
            }
            body.push_str("</table></div>");
        }
    }
    if !detail.warnings.is_empty() {
        body.push_str("<h2>What the reader tolerated</h2><ul>");
        for (path, message) in &detail.warnings {
            let _ = write!(
                body,
                "<li><code>{}</code>: {}</li>",
                esc(path),
                esc(message)
            );
        }
        body.push_str("</ul>");
    }
    let _ = write!(
        body,
        r#"<h2>Report JSON</h2><pre data-field="json">{}</pre>"#,
        esc(&detail.json)
    );
    html_response(
        StatusCode::OK,
        html::page("Report", Section::Reports, Some(&viewer), &body),
    )
}

/// How many quarantined bodies a page lists.
pub(crate) const QUARANTINE_SHOWN: u32 = 500;

pub(crate) async fn quarantine(
    State(dashboard): State<Arc<Dashboard>>,
    PageViewer(viewer): PageViewer,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !viewer.sees_everything() {
        return not_found(&viewer, "The quarantine is for users who see every domain.");
    }
    let items = match dashboard.data.quarantine(QUARANTINE_SHOWN).await {
        Ok(items) => items,
        Err(error) => return data_error(&error),
    };
    let mut body = String::from("<h1>Quarantine</h1>");
    if let (Some(done), Some(id)) = (query.get("done"), query.get("id")) {
        let message = match done.as_str() {
            "released" => "now reads: it is stored as a report and left the quarantine",
            "unreadable" => "still does not read; it stays here",
            "held" => "is held on purpose (manual or DKIM required) and was not read again",
            _ => "is no longer in quarantine",
        };
        let _ = write!(body, r#"<p class="notice">Body {} {message}.</p>"#, esc(id));
    }
    body.push_str(r#"<p class="muted">Bodies the store kept but could not read as reports, with the reason. Re-process reads one again (after an upgrade of mta-sts, say).</p>"#);
    if items.is_empty() {
        body.push_str("<p>Nothing in quarantine.</p>");
    } else {
        body.push_str(r#"<div class="scroll"><table data-table="quarantine"><tr><th>id</th><th>quarantined</th><th>code</th><th>reason</th><th class="n hide-narrow">bytes</th><th class="hide-narrow">source</th><th></th></tr>"#);
        let csrf = esc(viewer.csrf.as_deref().unwrap_or(""));
        for item in &items {
            let _ = write!(
                body,
                r#"<tr><td>{id}</td><td>{at}</td><td><code>{code}</code></td><td>{reason}</td><td class="n hide-narrow">{size}</td><td class="hide-narrow">{source}</td><td><form method="post" action="/quarantine/{id}/reprocess"><input type="hidden" name="csrf" value="{csrf}"><button type="submit">Re-process</button></form></td></tr>"#,
                id = item.id,
                at = esc(&item.quarantined_at),
                code = esc(&item.code),
                reason = esc(&item.reason),
                size = num(item.size),
                source = esc(&item.source),
            );
        }
        body.push_str("</table></div>");
    }
    html_response(
        StatusCode::OK,
        html::page("Quarantine", Section::Quarantine, Some(&viewer), &body),
    )
}

pub(crate) async fn reprocess(
    State(dashboard): State<Arc<Dashboard>>,
    PageViewer(viewer): PageViewer,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&viewer, &form) {
        return html_response(
            StatusCode::FORBIDDEN,
            html::page(
                "Refused",
                Section::None,
                Some(&viewer),
                "<h1>Refused</h1><p>The form carried no valid CSRF token. Reload the quarantine page and try again.</p>",
            ),
        );
    }
    if !viewer.sees_everything() {
        return not_found(&viewer, "The quarantine is for users who see every domain.");
    }
    let Ok(id) = id.parse::<i64>() else {
        return not_found(&viewer, "Quarantine ids are numbers.");
    };
    let done = match dashboard.data.reprocess(id).await {
        Ok(Reprocess::Released) => "released",
        Ok(Reprocess::StillUnreadable) => "unreadable",
        Ok(Reprocess::Held) => "held",
        Ok(Reprocess::NotFound) => "gone",
        Err(error) => return data_error(&error),
    };
    tracing::info!(user = %esc(&viewer.name), body = id, outcome = done, "quarantine re-process");
    super::see_other(&format!("/quarantine?done={done}&id={id}"))
}

// --- scheduled checks ----------------------------------------------------------------------

/// Checks in the domain page's history table (the API pages through all of them).
pub(crate) const CHECK_HISTORY_ROWS: u32 = 20;

/// `YYYY-MM-DD HH:MM UTC` of a UTC time.
pub(crate) fn when(unix: i64) -> String {
    mta_sts_tlsrpt::report::Timestamp::from_unix_seconds(unix)
        .map(|t| {
            let text = t.to_string();
            format!("{} UTC", text.get(..16).unwrap_or(&text).replace('T', " "))
        })
        .unwrap_or_default()
}

/// RFC 3339 of a UTC time.
pub(crate) fn rfc3339(unix: i64) -> String {
    mta_sts_tlsrpt::report::Timestamp::from_unix_seconds(unix)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// How long ago, roughly.
pub(crate) fn ago(unix: i64, now: i64) -> String {
    let seconds = now.saturating_sub(unix).max(0);
    match seconds {
        s if s < 120 => "just now".to_owned(),
        s if s < 7200 => format!("{} min ago", s / 60),
        s if s < 2 * 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

/// The colour of a check: failed or at error level `bad`, warnings or not protected `warn`.
pub(crate) fn check_level(check: &CheckRow) -> &'static str {
    if check.incomplete.is_some()
        || check.errors > 0
        || matches!(
            check.verdict.as_str(),
            "mail-would-bounce" | "degraded" | "mail-deferred"
        )
    {
        "bad"
    } else if check.warnings > 0 || check.verdict != "protected" {
        "warn"
    } else {
        "ok"
    }
}

/// The verdict of a check in a few words: the sender verdict, or that the check failed.
pub(crate) fn check_verdict(check: &CheckRow) -> String {
    match &check.incomplete {
        Some(why) => format!("check failed: {why}"),
        None => check.verdict.clone(),
    }
}

/// The overview's "latest check" cell.
fn latest_check_cell(check: Option<&CheckRow>, now: i64) -> String {
    let Some(check) = check else {
        return r#"<span class="muted">not checked yet</span>"#.to_owned();
    };
    let drift = if check.drift.is_empty() {
        String::new()
    } else {
        format!(
            r#"<br><span class="bad" data-field="drift">{}</span>"#,
            esc(&check
                .drift
                .iter()
                .map(|d| d.summary.as_str())
                .collect::<Vec<_>>()
                .join("; "))
        )
    };
    format!(
        r#"<span class="state {}" data-field="check-verdict">{}</span> <span class="muted">{} ({})</span>{drift}"#,
        check_level(check),
        esc(&check_verdict(check)),
        esc(&when(check.finished_at)),
        esc(&ago(check.finished_at, now)),
    )
}

/// What changed from `older` (the check before) to `check`: verdict, policy id and mode, MX
/// hosts, and drift found or gone.
pub(crate) fn check_changes(check: &CheckRow, older: Option<&CheckRow>) -> Vec<String> {
    let Some(older) = older else {
        return vec!["first check".to_owned()];
    };
    let mut out = Vec::new();
    let (was, is) = (check_verdict(older), check_verdict(check));
    if was != is {
        out.push(format!("verdict {was} → {is}"));
    }
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_owned());
    if older.policy_id != check.policy_id {
        out.push(format!(
            "policy id {} → {}",
            text(&older.policy_id),
            text(&check.policy_id)
        ));
    }
    if older.policy_mode != check.policy_mode {
        out.push(format!(
            "mode {} → {}",
            text(&older.policy_mode),
            text(&check.policy_mode)
        ));
    }
    if let (Some(was), Some(is)) = (&older.mx, &check.mx)
        && was != is
    {
        out.push(format!("MX {} → {}", was.join(", "), is.join(", ")));
    }
    let same = |a: &super::DriftRow, b: &super::DriftRow| a.kind == b.kind && a.key == b.key;
    for d in &check.drift {
        if !older.drift.iter().any(|o| same(o, d)) {
            out.push(format!("drift: {}", d.summary));
        }
    }
    for d in &older.drift {
        if !check.drift.iter().any(|n| same(n, d)) {
            out.push(format!("resolved: {}", d.summary));
        }
    }
    out
}

fn findings_list(findings: &[CheckFinding]) -> String {
    let shown: Vec<&CheckFinding> = findings.iter().filter(|f| f.severity != "info").collect();
    if shown.is_empty() {
        return r#"<p class="muted">No errors or warnings.</p>"#.to_owned();
    }
    let mut out = String::from(
        r#"<div class="scroll"><table data-table="check-findings"><tr><th>severity</th><th>what</th><th>fix</th></tr>"#,
    );
    for f in shown {
        let class = if f.severity == "error" { "bad" } else { "warn" };
        let _ = write!(
            out,
            r#"<tr><td><span class="badge {class}">{}</span></td><td><code>{}</code> {}: {}{}</td><td>{}{}</td></tr>"#,
            esc(&f.severity),
            esc(&f.code),
            esc(&f.subject),
            esc(&f.message),
            if f.evidence.is_empty() {
                String::new()
            } else {
                format!(
                    r#"<br><span class="muted">seen: {}</span>"#,
                    esc(&f.evidence)
                )
            },
            esc(&f.fix),
            if f.rfc.is_empty() {
                String::new()
            } else {
                format!(r#" <span class="muted">({})</span>"#, esc(&f.rfc))
            },
        );
    }
    out.push_str("</table></div>");
    out
}

/// The domain page's checks: the latest one's verdict, drift and findings with their fixes,
/// the certificates it saw, and the history.
async fn check_section(
    dashboard: &Dashboard,
    info: &DomainInfo,
) -> Result<String, super::DataError> {
    let mut out = String::from("<h2>Live check</h2>");
    let history = dashboard
        .data
        .checks(&info.name, 0, CHECK_HISTORY_ROWS + 1)
        .await?;
    let Some(latest) = history.first() else {
        let _ = write!(
            out,
            r#"<p class="muted" data-field="check">Not checked yet: <code>mta-sts serve</code> checks every domain shortly after start-up and then every <code>[checks] interval</code> (or run <code>mta-sts check {}</code>).</p>"#,
            esc(&info.name)
        );
        return Ok(out);
    };
    let now = now();
    let _ = write!(
        out,
        r#"<div class="verdict {}" data-field="check"><strong data-field="check-verdict">{}</strong><span class="todo">{} · {} ({}) · {} errors, {} warnings</span></div>"#,
        check_level(latest),
        esc(&check_verdict(latest)),
        esc(&latest.summary),
        esc(&when(latest.finished_at)),
        esc(&ago(latest.finished_at, now)),
        latest.errors,
        latest.warnings
    );
    if !latest.drift.is_empty() {
        out.push_str(r#"<h3>Drift</h3><ul data-table="drift">"#);
        for d in &latest.drift {
            let _ = write!(
                out,
                r#"<li><strong class="bad">{}</strong><br><span class="muted">{}</span></li>"#,
                esc(&d.summary),
                esc(&d.detail)
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("<h3>Findings</h3>");
    let findings = dashboard.data.check_findings(&info.name, latest.id).await?;
    out.push_str(&findings_list(&findings));
    if !latest.certificates.is_empty() {
        out.push_str(r#"<h3>Certificates</h3><div class="scroll"><table data-table="certificates"><tr><th>host</th><th>expires</th></tr>"#);
        for c in &latest.certificates {
            let days = c.not_after.saturating_sub(now).div_euclid(86_400);
            let class = if days < 14 { " bad" } else { "" };
            let _ = write!(
                out,
                r#"<tr><td>{}</td><td class="num{class}">{} ({days} days)</td></tr>"#,
                esc(&c.host),
                esc(&day_name(c.not_after))
            );
        }
        out.push_str("</table></div>");
    }
    out.push_str(r#"<h3>Check history</h3><div class="scroll"><table data-table="check-history"><tr><th>time</th><th>verdict</th><th class="n">errors</th><th class="n">warnings</th><th>what changed</th></tr>"#);
    let shown = history.len().min(CHECK_HISTORY_ROWS as usize);
    for (i, check) in history.iter().take(shown).enumerate() {
        let changes = check_changes(check, history.get(i + 1));
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td><span class="state {}">{}</span></td><td class="n">{}</td><td class="n">{}</td><td>{}</td></tr>"#,
            esc(&when(check.finished_at)),
            check_level(check),
            esc(&check_verdict(check)),
            check.errors,
            check.warnings,
            esc(&changes.join("; "))
        );
    }
    out.push_str("</table></div>");
    if history.len() > shown {
        let _ = write!(
            out,
            r#"<p class="muted">Older checks: <code>/api/v1/domains/{}/checks?page=2</code>.</p>"#,
            esc(&info.name)
        );
    }
    Ok(out)
}
