//! Open drift alerts on the dashboard: the count on each overview card, the list on the domain
//! page, `GET /api/v1/alerts` and `/api/v1/domains/{domain}/alerts`, and the
//! `mta_sts_open_alerts` gauge. Which domains a viewer sees is decided by
//! [`Dashboard::scope`](super::Dashboard) as everywhere else.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

use super::api::{answer, unavailable};
use super::data::AlertRow;
use super::extract::{ApiDomain, ApiViewer};
use super::html::{esc, url};
use super::pages::{self, rfc3339};
use super::{Dashboard, now};

fn alert_json(alert: &AlertRow) -> Value {
    json!({
        "domain": alert.domain,
        "kind": alert.kind,
        "key": alert.key,
        "summary": alert.summary,
        "detail": alert.detail,
        "opened_at": rfc3339(alert.opened_at),
        "last_seen": rfc3339(alert.last_seen),
        "notified_at": alert.notified_at.map(rfc3339),
        "deliveries": alert.deliveries.iter().map(|d| json!({
            "channel": d.channel,
            "state": d.state,
            "attempts": d.attempts,
            "last_error": d.last_error,
        })).collect::<Vec<_>>(),
    })
}

/// `GET /api/v1/alerts`: the open alerts of every domain the viewer may see.
pub(crate) async fn all(
    State(dashboard): State<Arc<Dashboard>>,
    ApiViewer(viewer): ApiViewer,
) -> Response {
    let names: Vec<String> = dashboard
        .scope(&viewer)
        .into_iter()
        .map(|d| d.name)
        .collect();
    match dashboard.data.alerts(&names).await {
        Ok(alerts) => answer(
            StatusCode::OK,
            &json!({ "alerts": alerts.iter().map(alert_json).collect::<Vec<_>>() }),
        ),
        Err(failure) => unavailable(&failure),
    }
}

/// `GET /api/v1/domains/{domain}/alerts`: one domain's open alerts.
pub(crate) async fn domain(
    State(dashboard): State<Arc<Dashboard>>,
    ApiDomain(info): ApiDomain,
) -> Response {
    match dashboard
        .data
        .alerts(std::slice::from_ref(&info.name))
        .await
    {
        Ok(alerts) => answer(
            StatusCode::OK,
            &json!({
                "domain": info.name,
                "alerts": alerts.iter().map(alert_json).collect::<Vec<_>>(),
            }),
        ),
        Err(failure) => unavailable(&failure),
    }
}

/// The overview card's cell: how many alerts are open, linked to the domain page's list.
pub(crate) fn card_cell(domain: &str, alerts: &[AlertRow]) -> String {
    if alerts.is_empty() {
        return "none".to_owned();
    }
    format!(
        r#"<a class="state bad" href="/domains/{}#alerts">{} open</a>"#,
        url(domain),
        alerts.len()
    )
}

/// The domain page's section.
pub(crate) fn section(alerts: &[AlertRow]) -> String {
    let mut out = String::from(r#"<h2 id="alerts">Open alerts</h2>"#);
    if alerts.is_empty() {
        out.push_str(r#"<p class="muted">None.</p>"#);
        return out;
    }
    out.push_str(r#"<div class="scroll"><table data-table="alerts"><tr><th>kind</th><th>alert</th><th>since</th><th>notified</th></tr>"#);
    let now = now();
    for alert in alerts {
        let notified = match alert.notified_at {
            None => "no".to_owned(),
            Some(at) => {
                let states: Vec<String> = alert
                    .deliveries
                    .iter()
                    .map(|d| format!("{} {}", esc(&d.channel), esc(&d.state)))
                    .collect();
                format!("{} ({})", esc(&rfc3339(at)), states.join(", "))
            }
        };
        let _ = write!(
            out,
            r#"<tr><td><code>{kind}</code></td><td><strong>{summary}</strong><br><span class="muted">{detail}</span></td><td title="{since}">{ago}</td><td>{notified}</td></tr>"#,
            kind = esc(&alert.kind),
            summary = esc(&alert.summary),
            detail = esc(&alert.detail),
            since = esc(&rfc3339(alert.opened_at)),
            ago = esc(&pages::ago(alert.opened_at, now)),
        );
    }
    out.push_str("</table></div>");
    out
}

/// `mta_sts_open_alerts{domain, kind}`: open alerts of each domain the viewer sees, by kind.
pub(crate) fn metrics(registry: &mut Registry, cards: &[pages::Card]) {
    let open = Family::<Vec<(String, String)>, Gauge>::default();
    registry.register(
        "mta_sts_open_alerts",
        "Open drift alerts, by domain and kind",
        open.clone(),
    );
    for card in cards {
        for alert in &card.alerts {
            open.get_or_create(&vec![
                ("domain".to_owned(), card.info.name.clone()),
                ("kind".to_owned(), alert.kind.clone()),
            ])
            .inc();
        }
    }
}
