//! `/api/v1/`: what the pages show, as JSON with stable field names (see the README), and
//! `/metrics` in the Prometheus (OpenMetrics) text format. A bearer token or a session cookie
//! is needed; what a viewer may see is the same as on the pages.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

use super::auth::Viewer;
use super::data::{CheckRow, DomainStats, Readiness, ReportRow, Tally};
use super::extract::{ApiDomain, ApiViewer};
use super::pages::{self, DEFAULT_DAYS, PAGE_SIZE, day_name, days_param, health, period};
use super::{Dashboard, DataError, DomainInfo, now, secure_headers};

pub(crate) fn answer(status: StatusCode, value: &Value) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{value}\n"),
    )
        .into_response();
    secure_headers(&mut response);
    response
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    answer(status, &json!({ "error": message }))
}

pub(crate) fn unavailable(failure: &DataError) -> Response {
    tracing::error!(error = %failure, "API could not read the store");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store did not answer; retry later",
    )
}

pub(crate) fn api_viewer(
    dashboard: &Dashboard,
    headers: &HeaderMap,
) -> Result<Viewer, Box<Response>> {
    dashboard.auth.viewer(headers).ok_or_else(|| {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "log in, or send Authorization: Bearer TOKEN (see `mta-sts passwd --token`)",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        Box::new(response)
    })
}

fn tally_json(tally: &Tally) -> Value {
    json!({
        "key": tally.key,
        "reports": tally.reports,
        "sessions": tally.successful.map(|ok| ok.saturating_add(tally.failed)),
        "successful": tally.successful,
        "failed": tally.failed,
        "failure_rate": tally.failure_rate(),
        "failure_types": tally.failure_types,
    })
}

fn readiness_json(readiness: Option<&Readiness>) -> Value {
    match readiness {
        Some(Readiness::Ready) => json!({ "verdict": "ready" }),
        Some(Readiness::NotYet { fix }) => json!({ "verdict": "not-yet", "fix": fix }),
        Some(Readiness::NotEnoughData {
            days,
            reporters,
            min_days,
            min_reporters,
        }) => json!({
            "verdict": "not-enough-data",
            "days": days,
            "reporters": reporters,
            "min_days": min_days,
            "min_reporters": min_reporters,
        }),
        None => Value::Null,
    }
}

fn period_json(days: u32) -> Value {
    let (since, until, _) = period(days, now());
    // `until` is exclusive (tomorrow 00:00): the last day shown is the one before.
    json!({ "days": days, "since": day_name(since), "until": day_name(until - 1) })
}

fn summary_json(info: &DomainInfo, stats: &DomainStats, days: u32) -> Value {
    let health = health(info, stats, days);
    let total = &stats.total;
    json!({
        "domain": info.name,
        "policy": { "mode": info.mode, "id": info.records.policy_id, "max_age": info.max_age },
        "sessions": total.successful.unwrap_or(0).saturating_add(total.failed),
        "successful": total.successful.unwrap_or(0),
        "failed": total.failed,
        "failure_rate": total.failure_rate(),
        "reports": total.reports,
        "reporters": stats.by_reporter.len(),
        "health": { "level": health.level, "headline": health.headline, "todo": health.todo },
        "readiness": readiness_json(stats.readiness.as_ref()),
    })
}

/// `GET /api/v1/domains`: the overview's cards.
pub(crate) async fn domains(
    State(dashboard): State<Arc<Dashboard>>,
    ApiViewer(viewer): ApiViewer,
) -> Response {
    match pages::cards(&dashboard, &viewer).await {
        Ok(cards) => answer(
            StatusCode::OK,
            &json!({
                "period": period_json(DEFAULT_DAYS),
                "domains": cards.iter().map(|c| {
                    let mut value = summary_json(&c.info, &c.stats, DEFAULT_DAYS);
                    value["latest_check"] = c.check.as_ref().map_or(Value::Null, |check| check_json(check, None));
                    value
                }).collect::<Vec<_>>(),
            }),
        ),
        Err(failure) => unavailable(&failure),
    }
}

/// A domain's stats over `days=`, and that number of days.
async fn domain_stats(
    dashboard: &Dashboard,
    info: &DomainInfo,
    query: &HashMap<String, String>,
) -> Result<(DomainStats, u32), Response> {
    let days = days_param(query);
    let (since, until, _) = period(days, now());
    let stats = dashboard
        .data
        .domain_stats(&info.name, since, until)
        .await
        .map_err(|failure| unavailable(&failure))?;
    Ok((stats, days))
}

/// `GET /api/v1/domains/{domain}?days=N`: the domain page.
pub(crate) async fn domain(
    State(dashboard): State<Arc<Dashboard>>,
    ApiDomain(info): ApiDomain,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (stats, days) = match domain_stats(&dashboard, &info, &query).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let list = |tallies: &[Tally]| tallies.iter().map(tally_json).collect::<Vec<_>>();
    let silent: Vec<Value> = pages::silent(&stats, now())
        .into_iter()
        .map(|(reporter, end)| json!({ "reporter": reporter, "last_report_end": day_name(end) }))
        .collect();
    let mut value = summary_json(&info, &stats, days);
    value["period"] = period_json(days);
    value["policy"]["url"] = info.records.policy_url.clone().into();
    value["policy"]["text"] = info.policy_text.clone().into();
    value["records"] = json!({
        "sts": { "name": info.records.sts.name, "value": info.records.sts.value },
        "tlsrpt": { "name": info.records.tlsrpt.name, "value": info.records.tlsrpt.value },
    });
    value["total"] = tally_json(&stats.total);
    value["by_result"] = list(&stats.by_result).into();
    value["by_reporter"] = list(&stats.by_reporter).into();
    value["by_mx"] = list(&stats.by_mx).into();
    value["by_receiving_ip"] = list(&stats.by_receiving_ip).into();
    value["by_sending_ip"] = list(&stats.by_sending_ip).into();
    value["silent_reporters"] = silent.into();
    value["latest_check"] = match latest_check_json(&dashboard, &info.name).await {
        Ok(check) => check,
        Err(failure) => return unavailable(&failure),
    };
    answer(StatusCode::OK, &value)
}

// --- scheduled checks ----------------------------------------------------------------------

/// A check as the API gives it; `changes` (what changed since `older`) only when the check
/// before is known.
fn check_json(check: &CheckRow, older: Option<Option<&CheckRow>>) -> Value {
    let mut value = json!({
        "id": check.id,
        "started_at": pages::rfc3339(check.started_at),
        "finished_at": pages::rfc3339(check.finished_at),
        "verdict": check.verdict,
        "summary": check.summary,
        "failed": check.incomplete.is_some(),
        "incomplete": check.incomplete,
        "errors": check.errors,
        "warnings": check.warnings,
        "policy": {
            "id": check.policy_id,
            "mode": check.policy_mode,
            "fetch_error": check.policy_error,
        },
        "mx": check.mx,
        "certificates": check.certificates.iter().map(|c| json!({
            "host": c.host,
            "not_after": pages::rfc3339(c.not_after),
        })).collect::<Vec<_>>(),
        "drift": check.drift.iter().map(|d| json!({
            "kind": d.kind,
            "key": d.key,
            "summary": d.summary,
            "detail": d.detail,
        })).collect::<Vec<_>>(),
    });
    if let Some(older) = older {
        value["changes"] = pages::check_changes(check, older).into();
    }
    value
}

/// The latest check of `domain` with its findings, or `null`.
async fn latest_check_json(dashboard: &Dashboard, domain: &str) -> Result<Value, DataError> {
    let Some(latest) = dashboard.data.checks(domain, 0, 1).await?.pop() else {
        return Ok(Value::Null);
    };
    let findings = dashboard.data.check_findings(domain, latest.id).await?;
    let mut value = check_json(&latest, None);
    value["findings"] = findings
        .iter()
        .map(|f| {
            json!({
                "code": f.code,
                "severity": f.severity,
                "area": f.area,
                "subject": f.subject,
                "message": f.message,
                "evidence": f.evidence,
                "fix": f.fix,
                "rfc": f.rfc,
            })
        })
        .collect::<Vec<_>>()
        .into();
    Ok(value)
}

/// `GET /api/v1/domains/{domain}/checks?page=N`: the scheduled checks, newest first.
pub(crate) async fn checks(
    State(dashboard): State<Arc<Dashboard>>,
    ApiDomain(info): ApiDomain,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let page = query
        .get("page")
        .and_then(|p| p.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let offset = (page - 1).saturating_mul(PAGE_SIZE);
    // One more than a page: whether there is a next page, and what the last one changed.
    let runs = match dashboard
        .data
        .checks(&info.name, offset, PAGE_SIZE.saturating_add(1))
        .await
    {
        Ok(runs) => runs,
        Err(failure) => return unavailable(&failure),
    };
    let more = runs.len() > PAGE_SIZE as usize;
    let shown: Vec<Value> = runs
        .iter()
        .take(PAGE_SIZE as usize)
        .enumerate()
        .map(|(i, run)| check_json(run, Some(runs.get(i + 1))))
        .collect();
    answer(
        StatusCode::OK,
        &json!({
            "domain": info.name,
            "page": page,
            "page_size": PAGE_SIZE,
            "more": more,
            "checks": shown,
        }),
    )
}

/// `GET /api/v1/domains/{domain}/daily?days=N`: sessions per day, every day of the range.
pub(crate) async fn daily(
    State(dashboard): State<Arc<Dashboard>>,
    ApiDomain(info): ApiDomain,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (stats, days) = match domain_stats(&dashboard, &info, &query).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (_, _, names) = period(days, now());
    let daily: Vec<Value> = names
        .iter()
        .map(|day| {
            let tally = stats.daily.iter().find(|t| &t.key == day);
            json!({
                "day": day,
                "reports": tally.map_or(0, |t| t.reports),
                "successful": tally.and_then(|t| t.successful).unwrap_or(0),
                "failed": tally.map_or(0, |t| t.failed),
            })
        })
        .collect();
    answer(
        StatusCode::OK,
        &json!({ "domain": info.name, "period": period_json(days), "days": daily }),
    )
}

fn row_json(row: &ReportRow) -> Value {
    json!({
        "id": row.id,
        "reporter": row.reporter,
        "report_id": row.report_id,
        "start": row.start,
        "end": row.end,
        "policies": row.policies.iter().map(|p| json!({
            "domain": p.domain,
            "policy_type": p.policy_type,
            "successful": p.successful,
            "failed": p.failed,
        })).collect::<Vec<_>>(),
    })
}

/// `GET /api/v1/reports?domain=&reporter=&since=&until=&failures=1&page=N`.
pub(crate) async fn reports(
    State(dashboard): State<Arc<Dashboard>>,
    ApiViewer(viewer): ApiViewer,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (report_query, page) = match pages::report_query(&dashboard, &viewer, &query) {
        Ok(q) => q,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    match pages::list_reports(&dashboard, &report_query).await {
        Ok(mut rows) => {
            let more = rows.len() > PAGE_SIZE as usize;
            rows.truncate(PAGE_SIZE as usize);
            answer(
                StatusCode::OK,
                &json!({
                    "page": page,
                    "page_size": PAGE_SIZE,
                    "more": more,
                    "reports": rows.iter().map(row_json).collect::<Vec<_>>(),
                }),
            )
        }
        Err(failure) => unavailable(&failure),
    }
}

/// `GET /api/v1/reports/{id}`.
pub(crate) async fn report(
    State(dashboard): State<Arc<Dashboard>>,
    ApiViewer(viewer): ApiViewer,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error(StatusCode::NOT_FOUND, "report ids are numbers");
    };
    let detail = match pages::scoped_report(&dashboard, &viewer, id).await {
        Ok(Some(detail)) => detail,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such report"),
        Err(failure) => return unavailable(&failure),
    };
    let mut value = row_json(&detail.row);
    value["raw_id"] = detail.raw_id.into();
    value["contact"] = detail.contact.clone().into();
    value["counted"] = detail.counted.into();
    value["conflicting"] = detail.conflicting.clone().into();
    value["policies"] = detail
        .policies
        .iter()
        .map(|p| {
            json!({
                "domain": p.counts.domain,
                "policy_type": p.counts.policy_type,
                "successful": p.counts.successful,
                "failed": p.counts.failed,
                "mx_hosts": p.mx_hosts,
                "policy_strings": p.policy_strings,
                "failures": p.failures.iter().map(|f| json!({
                    "result_type": f.result_type,
                    "sending_mta_ip": f.sending_mta_ip,
                    "receiving_mx_hostname": f.receiving_mx_hostname,
                    "receiving_ip": f.receiving_ip,
                    "failed_sessions": f.failed_sessions,
                    "reason": f.reason,
                })).collect::<Vec<_>>(),
            })
        })
        .collect::<Vec<_>>()
        .into();
    value["warnings"] = detail
        .warnings
        .iter()
        .map(|(path, message)| json!({ "path": path, "message": message }))
        .collect::<Vec<_>>()
        .into();
    value["report"] = serde_json::from_str(&detail.json).unwrap_or(Value::Null);
    answer(StatusCode::OK, &value)
}

/// `GET /api/v1/quarantine`.
pub(crate) async fn quarantine(
    State(dashboard): State<Arc<Dashboard>>,
    ApiViewer(viewer): ApiViewer,
) -> Response {
    if !viewer.sees_everything() {
        return error(
            StatusCode::NOT_FOUND,
            "the quarantine is for viewers who see every domain",
        );
    }
    match dashboard.data.quarantine(pages::QUARANTINE_SHOWN).await {
        Ok(items) => answer(
            StatusCode::OK,
            &json!({
                "quarantine": items.iter().map(|q| json!({
                    "id": q.id,
                    "code": q.code,
                    "reason": q.reason,
                    "quarantined_at": q.quarantined_at,
                    "source": q.source,
                    "size": q.size,
                })).collect::<Vec<_>>(),
            }),
        ),
        Err(failure) => unavailable(&failure),
    }
}

type Labels = Vec<(String, String)>;

/// `GET /metrics`.
pub(crate) async fn metrics(
    State(dashboard): State<Arc<Dashboard>>,
    ApiViewer(viewer): ApiViewer,
) -> Response {
    let cards = match pages::cards(&dashboard, &viewer).await {
        Ok(cards) => cards,
        Err(failure) => return unavailable(&failure),
    };
    let mut registry = Registry::default();
    let sessions = Family::<Labels, Gauge>::default();
    let failures = Family::<Labels, Gauge>::default();
    let policy = Family::<Labels, Gauge>::default();
    registry.register(
        "mta_sts_report_sessions",
        "Sessions in the TLS reports of the last 30 days, by policy domain and result",
        sessions.clone(),
    );
    registry.register(
        "mta_sts_report_failed_sessions",
        "Failed sessions in the TLS reports of the last 30 days, by policy domain and result type",
        failures.clone(),
    );
    registry.register(
        "mta_sts_policy",
        "The policy served for each domain (value 1), with its mode and id",
        policy.clone(),
    );
    let label = |pairs: &[(&str, &str)]| -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    for card in &cards {
        let domain = card.info.name.as_str();
        let total = &card.stats.total;
        sessions
            .get_or_create(&label(&[("domain", domain), ("result", "successful")]))
            .set(gauge(total.successful.unwrap_or(0)));
        sessions
            .get_or_create(&label(&[("domain", domain), ("result", "failed")]))
            .set(gauge(total.failed));
        for result in &card.stats.by_result {
            failures
                .get_or_create(&label(&[("domain", domain), ("result_type", &result.key)]))
                .set(gauge(result.failed));
        }
        policy
            .get_or_create(&label(&[
                ("domain", domain),
                ("mode", card.info.mode),
                ("id", &card.info.records.policy_id),
            ]))
            .set(1);
    }
    check_metrics(&mut registry, &cards);
    super::alerts::metrics(&mut registry, &cards);
    if viewer.sees_everything() {
        let totals = match dashboard.data.totals().await {
            Ok(totals) => totals,
            Err(failure) => return unavailable(&failure),
        };
        let stored = Gauge::<i64>::default();
        stored.set(gauge(totals.reports));
        registry.register(
            "mta_sts_reports_stored",
            "Reports in the store (one body per report identity)",
            stored,
        );
        let quarantined = Gauge::<i64>::default();
        quarantined.set(gauge(totals.quarantined));
        registry.register(
            "mta_sts_quarantine_size",
            "Bodies in quarantine",
            quarantined,
        );
        let intake = Family::<Labels, Counter>::default();
        registry.register(
            "mta_sts_intake_reports",
            "Reports posted to the HTTPS intake since start, by outcome: stored, duplicate, \
             quarantined (unreadable, 400), too-large (413), refused (about domains not \
             served here, 403), unavailable (the store failed, 503)",
            intake.clone(),
        );
        let outcomes = &dashboard.intake.outcomes;
        for (outcome, count) in [
            ("stored", &outcomes.stored),
            ("duplicate", &outcomes.duplicate),
            ("quarantined", &outcomes.quarantined),
            ("too-large", &outcomes.too_large),
            ("refused", &*dashboard.intake.refused),
            ("unavailable", &outcomes.unavailable),
        ] {
            intake
                .get_or_create(&label(&[("outcome", outcome)]))
                .inc_by(count.load(Ordering::Relaxed));
        }
    }
    let mut text = String::new();
    if encode(&mut text, &registry).is_err() {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be encoded",
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The latest scheduled check of each domain in `/metrics`.
fn check_metrics(registry: &mut Registry, cards: &[pages::Card]) {
    let verdict = Family::<Labels, Gauge>::default();
    let problems = Family::<Labels, Gauge>::default();
    let finished = Family::<Labels, Gauge>::default();
    let expiry = Family::<Labels, Gauge>::default();
    let drift = Family::<Labels, Gauge>::default();
    registry.register(
        "mta_sts_check_verdict",
        "The latest scheduled check of each domain (value 1), with its sender verdict \
         (`failed` when the check could not be completed)",
        verdict.clone(),
    );
    registry.register(
        "mta_sts_check_findings",
        "Findings of the latest scheduled check, by domain and severity (error, warning)",
        problems.clone(),
    );
    registry.register(
        "mta_sts_check_timestamp_seconds",
        "When the latest scheduled check of each domain finished, Unix seconds",
        finished.clone(),
    );
    registry.register(
        "mta_sts_certificate_expiry_timestamp_seconds",
        "The notAfter of the policy host's and each MX host's certificate, Unix seconds, as \
         the latest scheduled check saw it",
        expiry.clone(),
    );
    registry.register(
        "mta_sts_drift",
        "What drifted at the latest scheduled check (value 1), by domain, kind and key",
        drift.clone(),
    );
    let labels = |pairs: &[(&str, &str)]| -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    for card in cards {
        let Some(check) = &card.check else { continue };
        let domain = card.info.name.as_str();
        let status = if check.incomplete.is_some() {
            "failed"
        } else {
            check.verdict.as_str()
        };
        verdict
            .get_or_create(&labels(&[("domain", domain), ("verdict", status)]))
            .set(1);
        for (severity, count) in [("error", check.errors), ("warning", check.warnings)] {
            problems
                .get_or_create(&labels(&[("domain", domain), ("severity", severity)]))
                .set(gauge(count));
        }
        finished
            .get_or_create(&labels(&[("domain", domain)]))
            .set(check.finished_at);
        for c in &check.certificates {
            expiry
                .get_or_create(&labels(&[("domain", domain), ("host", &c.host)]))
                .set(c.not_after);
        }
        for d in &check.drift {
            drift
                .get_or_create(&labels(&[
                    ("domain", domain),
                    ("kind", &d.kind),
                    ("key", &d.key),
                ]))
                .set(1);
        }
    }
}
