//! The dashboard of `mta-sts serve`: HTML pages, the JSON API under `/api/v1/` and `/metrics`,
//! all behind a login ([`auth`]), all read through [`DashboardData`] (the store, wired in by
//! the binary). Served only when `[dashboard]` names a user or a token.
//!
//! - `/` overview: a card per domain; `/domains/{domain}?days=N` a domain's page;
//!   `/reports` (filters, paged), `/reports/{id}`, `/quarantine` with "re-process".
//! - `/api/v1/domains`, `/api/v1/domains/{domain}`, `/api/v1/domains/{domain}/daily`,
//!   `/api/v1/domains/{domain}/checks`,
//!   `/api/v1/reports`, `/api/v1/reports/{id}`, `/api/v1/quarantine`.
//! - `/metrics`: Prometheus text format.

mod alerts;
mod api;
mod auth;
mod chart;
mod data;
mod extract;
mod html;
mod pages;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Form, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{BoxError, ServiceBuilder};

pub use auth::{
    ApiToken, DEFAULT_SESSION_HOURS, DashboardConfig, LOGIN_WINDOW, MAX_FAILED_LOGINS,
    SESSION_COOKIE, User, hash_password, new_api_token,
};
pub(crate) use auth::{RawDashboard, check_config};
pub use data::{
    AlertDeliveryRow, AlertRow, CertRow, CheckFinding, CheckRow, DashboardData, DataError,
    DomainStats, DriftRow, FailureRow, PolicyCount, PolicyDetail, QuarantineItem, Readiness,
    ReportDetail, ReportQuery, ReportRow, Reprocess, StoreTotals, Tally,
};
pub use pages::{SILENT_DAYS, silent as silent_reporters};

use crate::app::{IntakeCounts, PeerAddr};
use crate::config::{Config, DnsRecords};
use auth::{Auth, LOGIN_COOKIE, LoginError, Viewer};

/// Paths the dashboard answers; `intake.path` may not be one of them or under them.
pub(crate) const PATHS: [&str; 8] = [
    "/",
    "/login",
    "/logout",
    "/assets",
    "/domains",
    "/reports",
    "/quarantine",
    "/api",
];
/// See [`PATHS`].
pub(crate) const METRICS_PATH: &str = "/metrics";

/// Dashboard requests handled at once; more are answered 503.
const MAX_CONCURRENT: usize = 32;
/// The longest a dashboard request may take.
const TIMEOUT: Duration = Duration::from_secs(20);
/// The largest form body (login, actions).
const MAX_FORM: usize = 16 * 1024;

/// A hosted domain as the dashboard shows it.
#[derive(Debug, Clone)]
pub(crate) struct DomainInfo {
    pub name: String,
    pub mode: &'static str,
    pub max_age: u32,
    pub policy_text: String,
    pub records: DnsRecords,
}

/// What the dashboard's handlers share.
pub(crate) struct Dashboard {
    auth: Auth,
    data: Arc<dyn DashboardData>,
    domains: ArcSwap<Vec<DomainInfo>>,
    /// The intake's counters, for `/metrics`.
    intake: IntakeCounts,
    /// The overview's figures of each domain, kept for [`OVERVIEW_CACHE`]: counting every
    /// domain's month of reports takes a while, and reports arrive daily.
    overview: std::sync::Mutex<HashMap<(String, i64), (std::time::Instant, DomainStats)>>,
}

/// How long the overview's (and `/metrics`') figures of a domain are reused.
pub(crate) const OVERVIEW_CACHE: Duration = Duration::from_secs(60);

impl Dashboard {
    /// The dashboard of `config`, or `None` when `[dashboard]` names nobody.
    pub fn new(
        config: &Config,
        data: Arc<dyn DashboardData>,
        intake: IntakeCounts,
    ) -> Option<Dashboard> {
        config.dashboard.enabled().then(|| Dashboard {
            auth: Auth::new(&config.dashboard),
            data,
            domains: ArcSwap::from_pointee(domain_infos(config)),
            intake,
            overview: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Shows `config`'s domains and policies from now on (users need a restart).
    pub fn replace_domains(&self, config: &Config) {
        self.domains.store(Arc::new(domain_infos(config)));
    }

    /// The stats of `domains` since `since` (the overview's period), from the cache when they
    /// are younger than [`OVERVIEW_CACHE`]; the others are read in one call.
    async fn overview_stats(
        &self,
        domains: &[String],
        since: i64,
        until: i64,
    ) -> Result<Vec<DomainStats>, DataError> {
        let now = std::time::Instant::now();
        let fresh = |at: &std::time::Instant| now.duration_since(*at) < OVERVIEW_CACHE;
        let missing: Vec<String> = {
            let cache = self
                .overview
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            domains
                .iter()
                .filter(|d| {
                    !cache
                        .get(&((*d).clone(), since))
                        .is_some_and(|(at, _)| fresh(at))
                })
                .cloned()
                .collect()
        };
        let read = if missing.is_empty() {
            Vec::new()
        } else {
            self.data.domains_stats(&missing, since, until).await?
        };
        let mut cache = self
            .overview
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() > 10 * domains.len().max(100) {
            cache.retain(|_, (at, _)| fresh(at));
        }
        for (domain, stats) in missing.into_iter().zip(read) {
            cache.insert((domain, since), (now, stats));
        }
        Ok(domains
            .iter()
            .map(|d| {
                cache
                    .get(&(d.clone(), since))
                    .map(|(_, stats)| stats.clone())
                    .unwrap_or_default()
            })
            .collect())
    }

    /// The domain `name` (as a path gives it) when the viewer may see it.
    fn find(&self, viewer: &Viewer, name: &str) -> Option<DomainInfo> {
        let wanted = name.trim_end_matches('.').to_ascii_lowercase();
        self.scope(viewer).into_iter().find(|d| d.name == wanted)
    }

    /// The configured domains a viewer may see, in config order.
    fn scope(&self, viewer: &Viewer) -> Vec<DomainInfo> {
        let domains = self.domains.load();
        let names: Vec<String> = domains.iter().map(|d| d.name.clone()).collect();
        let allowed = viewer.scope(&names);
        domains
            .iter()
            .filter(|d| allowed.contains(&d.name))
            .cloned()
            .collect()
    }
}

fn domain_infos(config: &Config) -> Vec<DomainInfo> {
    let records = config.dns_records();
    config
        .domains()
        .iter()
        .zip(records)
        .map(|(domain, records)| DomainInfo {
            name: domain.name().to_owned(),
            mode: domain.policy().mode.as_str(),
            max_age: domain.policy().max_age,
            policy_text: String::from_utf8_lossy(domain.policy_body()).replace("\r\n", "\n"),
            records,
        })
        .collect()
}

/// The dashboard's routes with their limits: requests beyond [`MAX_CONCURRENT`] are shed
/// (503), each has [`TIMEOUT`] (408), forms are capped at [`MAX_FORM`] bytes (413).
pub(crate) fn router<S>(dashboard: Arc<Dashboard>) -> Router<S> {
    let limits = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(limit_error))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::new(MAX_CONCURRENT))
        .timeout(TIMEOUT);
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/assets/dashboard.css", get(stylesheet))
        .route("/domains/{domain}", get(pages::domain))
        .route("/reports", get(pages::reports))
        .route("/reports/{id}", get(pages::report))
        .route("/quarantine", get(pages::quarantine))
        .route("/quarantine/{id}/reprocess", post(pages::reprocess))
        .route("/api/v1/domains", get(api::domains))
        .route("/api/v1/domains/{domain}", get(api::domain))
        .route("/api/v1/domains/{domain}/daily", get(api::daily))
        .route("/api/v1/domains/{domain}/checks", get(api::checks))
        .route("/api/v1/domains/{domain}/alerts", get(alerts::domain))
        .route("/api/v1/alerts", get(alerts::all))
        .route("/api/v1/reports", get(api::reports))
        .route("/api/v1/reports/{id}", get(api::report))
        .route("/api/v1/quarantine", get(api::quarantine))
        .route(METRICS_PATH, get(api::metrics))
        .layer(DefaultBodyLimit::max(MAX_FORM))
        .layer(limits)
        .with_state(dashboard)
}

async fn limit_error(error: BoxError) -> Response {
    if error.is::<tower::timeout::error::Elapsed>() {
        (StatusCode::REQUEST_TIMEOUT, "request took too long\n").into_response()
    } else if error.is::<tower::load_shed::error::Overloaded>() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "too many dashboard requests at once; retry in a few seconds\n",
        )
            .into_response()
    } else {
        tracing::error!(%error, "dashboard layer failed");
        (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
    }
}

/// Headers every dashboard answer carries: nothing cached, no framing, no inline script or
/// style, nothing loaded from elsewhere.
fn secure_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// An HTML answer.
fn html_response(status: StatusCode, body: String) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    secure_headers(&mut response);
    response
}

/// A redirect after a form (303: the browser follows with GET).
fn see_other(to: &str) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response();
    secure_headers(&mut response);
    response
}

/// The viewer of a page request, or the redirect to the login form.
fn page_viewer(dashboard: &Dashboard, headers: &HeaderMap) -> Result<Viewer, Box<Response>> {
    dashboard
        .auth
        .viewer(headers)
        .ok_or_else(|| Box::new(see_other("/login")))
}

/// The store did not answer: logged, and said plainly.
fn data_error(error: &DataError) -> Response {
    tracing::error!(%error, "dashboard could not read the store");
    html_response(
        StatusCode::SERVICE_UNAVAILABLE,
        html::page(
            "Store unavailable",
            html::Section::None,
            None,
            "<h1>The store did not answer</h1><p>Reload the page in a moment; the server log says what failed.</p>",
        ),
    )
}

/// A POST from a page must carry its session's CSRF token.
fn csrf_ok(viewer: &Viewer, form: &HashMap<String, String>) -> bool {
    match (&viewer.csrf, form.get("csrf")) {
        (Some(expected), Some(given)) => expected == given,
        _ => false,
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        html::CSS,
    )
        .into_response()
}

fn login_page(message: Option<&str>, status: StatusCode) -> Response {
    let Some(token) = auth::form_token() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no system randomness\n").into_response();
    };
    let message = message.map_or_else(String::new, |m| {
        format!(r#"<p class="error">{}</p>"#, html::esc(m))
    });
    let body = format!(
        r#"<form class="login" method="post" action="/login"><h1>Log in</h1>{message}<label>User <input name="user" autocomplete="username" required autofocus></label><label>Password <input name="password" type="password" autocomplete="current-password" required></label><input type="hidden" name="login_csrf" value="{token}"><button type="submit">Log in</button></form>"#
    );
    let mut response = html_response(
        status,
        html::page("Log in", html::Section::None, None, &body),
    );
    if let Ok(cookie) = HeaderValue::from_str(&format!(
        "{LOGIN_COOKIE}={token}; Path=/login; Max-Age=3600; Secure; HttpOnly; SameSite=Strict"
    )) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

async fn login_form(State(dashboard): State<Arc<Dashboard>>, headers: HeaderMap) -> Response {
    if dashboard.auth.viewer(&headers).is_some() {
        return see_other("/");
    }
    login_page(None, StatusCode::OK)
}

async fn login(
    State(dashboard): State<Arc<Dashboard>>,
    peer: Option<axum::Extension<PeerAddr>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let ip = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.0.ip());
    // The form must come from a login page this browser loaded (login CSRF).
    let expected = auth::cookie(&headers, LOGIN_COOKIE);
    if expected.is_none() || expected != form.get("login_csrf").map(String::as_str) {
        return login_page(
            Some("The login form expired; enter your name and password again."),
            StatusCode::FORBIDDEN,
        );
    }
    let user = form.get("user").map_or("", String::as_str);
    let password = form.get("password").map_or("", String::as_str);
    match dashboard.auth.login(ip, user, password).await {
        Ok(session) => {
            tracing::info!(user = %html::esc(user), %ip, "dashboard login");
            let mut response = see_other("/");
            let max_age = dashboard.auth.lifetime().as_secs();
            for cookie in [
                format!(
                    "{SESSION_COOKIE}={session}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Strict"
                ),
                format!(
                    "{LOGIN_COOKIE}=; Path=/login; Max-Age=0; Secure; HttpOnly; SameSite=Strict"
                ),
            ] {
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            response
        }
        Err(LoginError::Wrong) => {
            tracing::warn!(user = %html::esc(user), %ip, "dashboard login failed");
            login_page(
                Some("Wrong user name or password."),
                StatusCode::UNAUTHORIZED,
            )
        }
        Err(LoginError::Throttled(wait)) => {
            tracing::warn!(user = %html::esc(user), %ip, "dashboard login throttled");
            let minutes = wait.as_secs().div_ceil(60).max(1);
            let mut response = login_page(
                Some(&format!(
                    "Too many failed logins. Try again in {minutes} minutes."
                )),
                StatusCode::TOO_MANY_REQUESTS,
            );
            if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

async fn logout(
    State(dashboard): State<Arc<Dashboard>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(viewer) = dashboard.auth.viewer(&headers) else {
        return see_other("/login");
    };
    if !csrf_ok(&viewer, &form) {
        return (StatusCode::FORBIDDEN, "missing or wrong CSRF token\n").into_response();
    }
    dashboard.auth.logout(&headers);
    let mut response = see_other("/login");
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict"
    )) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
