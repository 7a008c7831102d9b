//! The HTTP application: policy hosting and TLS-RPT intake, as one axum [`Router`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use mta_sts_tlsrpt::report::{BodyCost, ReadReport, ReportError, measure};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{BoxError, ServiceBuilder};

use crate::acme::Http01Tokens;
use crate::config::{Accept, Config, Intake, Limits};
use crate::intake::{IncomingReport, IngestOutcome, ReportSink};
use crate::screen::Summary;

/// Where RFC 8461 §3.3 puts the policy.
pub const POLICY_PATH: &str = "/.well-known/mta-sts.txt";

/// Where the ACME CA fetches HTTP-01 answers (RFC 8555 §8.3).
const ACME_CHALLENGE_PATH: &str = "/.well-known/acme-challenge/{token}";

/// The address of the peer of a connection, set by the listeners on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// What the handlers share: the policy table (swapped on reload), the report sink and the
/// intake settings (fixed for the life of the router).
#[derive(Clone)]
pub struct AppState {
    policies: Arc<ArcSwap<HashMap<String, Bytes>>>,
    sink: Arc<dyn ReportSink>,
    intake: Arc<Intake>,
    budget: Arc<MemoryBudget>,
    /// Reports refused by `intake.accept` since start.
    refused: Arc<AtomicU64>,
    /// What became of the reports that reached the sink, for `/metrics`.
    outcomes: Arc<IntakeOutcomes>,
    /// The dashboard, API and metrics, when `[dashboard]` names someone.
    dashboard: Option<Arc<crate::dashboard::Dashboard>>,
    /// Pending ACME HTTP-01 challenges, answered on every listener.
    acme_tokens: Arc<Http01Tokens>,
}

/// The intake's memory budget (`limits.intake_memory`): bytes held by reports being read, all
/// requests together. A request reserves what its body will take before reading it, and what
/// reading the report will take (found by [`measure`], which allocates nothing) before handing
/// it to the sink; what cannot be reserved is answered 503 with `Retry-After`.
struct MemoryBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl MemoryBudget {
    fn new(limits: &Limits) -> Self {
        let total = limits.intake_memory.min(Semaphore::MAX_PERMITS);
        MemoryBudget {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Reserves `bytes` until the permit is dropped; `None` when the budget is spent. A request
    /// larger than the whole budget gets all of it, so it runs alone rather than never.
    fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let wanted = u32::try_from(bytes.clamp(1, self.total)).unwrap_or(u32::MAX);
        Arc::clone(&self.bytes).try_acquire_many_owned(wanted).ok()
    }
}

impl AppState {
    /// The state for `config`'s domains and intake settings, storing reports in `sink`.
    pub fn new(config: &Config, sink: Arc<dyn ReportSink>) -> Self {
        AppState {
            policies: Arc::new(ArcSwap::from_pointee(policy_table(config))),
            sink,
            intake: Arc::new(config.intake.clone()),
            budget: Arc::new(MemoryBudget::new(&config.limits)),
            refused: Arc::new(AtomicU64::new(0)),
            outcomes: Arc::new(IntakeOutcomes::default()),
            dashboard: None,
            acme_tokens: Arc::new(Http01Tokens::default()),
        }
    }

    /// Serves the dashboard, the JSON API and `/metrics` from `data`, when `config`'s
    /// `[dashboard]` names a user or a token (else they stay 404).
    pub fn with_dashboard(
        mut self,
        config: &Config,
        data: Arc<dyn crate::dashboard::DashboardData>,
    ) -> Self {
        self.dashboard =
            crate::dashboard::Dashboard::new(config, data, self.intake_counts()).map(Arc::new);
        self
    }

    /// The HTTP-01 challenges the ACME task answers through this application.
    pub(crate) fn acme_tokens(&self) -> Arc<Http01Tokens> {
        Arc::clone(&self.acme_tokens)
    }

    /// Serves `config`'s policies from now on. Requests in flight finish with the old ones;
    /// connections stay open. Intake settings and listeners are fixed at start.
    pub fn replace_policies(&self, config: &Config) {
        self.policies.store(Arc::new(policy_table(config)));
        if let Some(dashboard) = &self.dashboard {
            dashboard.replace_domains(config);
        }
    }

    /// The intake settings the router was built with.
    pub fn intake(&self) -> &Intake {
        &self.intake
    }

    /// How many reports `intake.accept` refused since start (about domains not served here).
    pub fn refused_reports(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// Reports the intake handed to the sink since start, by what became of them.
#[derive(Debug, Default)]
pub(crate) struct IntakeOutcomes {
    pub stored: AtomicU64,
    pub duplicate: AtomicU64,
    pub quarantined: AtomicU64,
    pub too_large: AtomicU64,
    /// Not stored: the store failed or did not answer in time (503).
    pub unavailable: AtomicU64,
}

impl IntakeOutcomes {
    fn record(&self, outcome: Option<&Result<IngestOutcome, crate::intake::SinkError>>) {
        let counter = match outcome {
            Some(Ok(IngestOutcome::Stored)) => &self.stored,
            Some(Ok(IngestOutcome::Duplicate)) => &self.duplicate,
            Some(Ok(IngestOutcome::Quarantined { .. })) => &self.quarantined,
            Some(Ok(IngestOutcome::TooLarge { .. })) => &self.too_large,
            Some(Err(_)) | None => &self.unavailable,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The intake's counters, as `/metrics` reads them.
#[derive(Debug, Clone)]
pub(crate) struct IntakeCounts {
    pub refused: Arc<AtomicU64>,
    pub outcomes: Arc<IntakeOutcomes>,
}

impl AppState {
    fn intake_counts(&self) -> IntakeCounts {
        IntakeCounts {
            refused: Arc::clone(&self.refused),
            outcomes: Arc::clone(&self.outcomes),
        }
    }
}

fn policy_table(config: &Config) -> HashMap<String, Bytes> {
    config
        .domains()
        .iter()
        .map(|domain| {
            (
                domain.policy_host(),
                Bytes::copy_from_slice(domain.policy_body()),
            )
        })
        .collect()
}

/// The whole HTTP application: policy hosting on every `mta-sts.<domain>` host and the report
/// intake on any host, each with its own limits. Everything else is 404.
pub fn app(state: AppState) -> Router {
    let router = Router::new()
        .route(POLICY_PATH, any(policy))
        .route(ACME_CHALLENGE_PATH, get(acme_challenge))
        .merge(intake_router(&state.intake));
    let router = match &state.dashboard {
        Some(dashboard) => router.merge(crate::dashboard::router(Arc::clone(dashboard))),
        None => router,
    };
    router.fallback(not_found).with_state(state)
}

/// `POST {intake.path}` with its limits, outermost first: errors of the layers below become
/// HTTP answers (503 when shed, 408 on timeout); requests beyond `max_concurrent` are shed
/// rather than queued; the whole request, upload and storage included, has `timeout`; the
/// body is capped at `max_body` (413). The decompressed cap is the sink's (see
/// [`IncomingReport::max_decompressed`]).
fn intake_router(intake: &Intake) -> Router<AppState> {
    let limits = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(limit_error))
        .load_shed()
        // Global: axum may apply a layer to each method endpoint separately, and the plain
        // `concurrency_limit` would then count each copy on its own.
        .layer(GlobalConcurrencyLimitLayer::new(intake.max_concurrent))
        .timeout(intake.timeout)
        .layer(DefaultBodyLimit::max(intake.max_body));
    Router::new().route(
        &intake.path,
        post(receive_report)
            .layer(limits)
            .fallback(|| async { method_not_allowed("POST") }),
    )
}

async fn limit_error(peer: Option<axum::Extension<PeerAddr>>, error: BoxError) -> Response {
    let peer = shown_peer(peer);
    if error.is::<tower::timeout::error::Elapsed>() {
        tracing::warn!(%peer, status = 408, "report request timed out");
        (StatusCode::REQUEST_TIMEOUT, "request took too long\n").into_response()
    } else if error.is::<tower::load_shed::error::Overloaded>() {
        tracing::warn!(%peer, status = 503, "report refused (503): too many report requests at once");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "60")],
            "too many reports at once; retry later\n",
        )
            .into_response()
    } else {
        tracing::error!(%error, "intake layer failed");
        (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
    }
}

/// The host a request is for: `Host` (HTTP/1.1) or the URI authority (HTTP/2), lowercase,
/// without port or trailing dot.
fn request_host(request: &Request) -> Option<String> {
    let raw = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))?;
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // An IPv6 literal: never a policy host, but strip the port consistently.
        rest.split(']').next().unwrap_or(rest)
    } else {
        raw.split(':').next().unwrap_or(raw)
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

async fn policy(State(state): State<AppState>, request: Request) -> Response {
    let Some(body) =
        request_host(&request).and_then(|host| state.policies.load().get(&host).cloned())
    else {
        return not_found().await;
    };
    let method = request.method();
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed("GET, HEAD");
    }
    let length = body.len();
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// The key authorization of a pending HTTP-01 challenge, for any host; 404 for any other token.
async fn acme_challenge(
    State(state): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    match state.acme_tokens.get(&token) {
        Some(key_authorization) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            key_authorization,
        )
            .into_response(),
        None => not_found().await,
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

fn method_not_allowed(allow: &'static str) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, allow)],
        "method not allowed\n",
    )
        .into_response()
}

/// Bodies that are no larger than this once decompressed are read on the async worker (real
/// daily reports are a few kilobytes); larger ones on a blocking thread.
const INLINE_READ_LIMIT: usize = 64 * 1024;

/// A read body: its place in the memory budget, and what reading it gave (`None` when the
/// reader failed; the sink then reads it again, and keeps it in quarantine if that fails too).
type Reading = (
    OwnedSemaphorePermit,
    Option<Result<ReadReport, ReportError>>,
);

/// Reads `body` once, for the log line, `intake.accept` and the sink: first what reading will
/// take (by [`measure`], which allocates nothing), reserved in the memory budget, then the
/// report. Off the async workers unless the body is small once decompressed. `None` when the
/// budget is spent.
async fn read_report(
    budget: &Arc<MemoryBudget>,
    body: &Bytes,
    content_type: &str,
    max_decompressed: usize,
) -> Option<Reading> {
    // A first look, capped at the inline limit: a small gzip body can hold megabytes.
    let limit = INLINE_READ_LIMIT.min(max_decompressed);
    if body.len() <= INLINE_READ_LIMIT {
        let cost = measure(body, limit);
        if limit == max_decompressed || !matches!(cost, Err(ReportError::TooLarge { .. })) {
            return read_measured(budget, body, content_type, max_decompressed, cost);
        }
    }
    let (budget, body, content_type) = (Arc::clone(budget), body.clone(), content_type.to_owned());
    tokio::task::spawn_blocking(move || {
        let cost = measure(&body, max_decompressed);
        read_measured(&budget, &body, &content_type, max_decompressed, cost)
    })
    .await
    .ok()
    .flatten()
}

/// [`read_report`] once `body` is measured. A body that cannot be measured is not read: what
/// stopped the measure (broken gzip, too large) is what reading it gives.
fn read_measured(
    budget: &MemoryBudget,
    body: &[u8],
    content_type: &str,
    max_decompressed: usize,
    cost: Result<BodyCost, ReportError>,
) -> Option<Reading> {
    let reading = cost
        .as_ref()
        .map_or(max_decompressed.saturating_mul(2), BodyCost::reading_bytes);
    let permit = budget.reserve(reading)?;
    let read = match cost {
        Err(error) => Some(Err(error)),
        // The reader is pure and returns errors; should it panic all the same, the sink reads
        // the body again and keeps it in quarantine.
        Ok(_) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            mta_sts_tlsrpt::mail::decode_body(content_type, body, max_decompressed)
        }))
        .ok(),
    };
    Some((permit, read))
}

/// Copies of a body the intake and the sink hold at once (the request's, the sink's own, and one
/// while it hashes or moves it to a blocking thread).
const BODY_COPIES: usize = 3;

fn intake_busy(peer: &str, size: Option<usize>) -> Response {
    tracing::warn!(
        %peer,
        size,
        status = 503,
        "report refused (503): intake memory budget spent"
    );
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "30")],
        "too many reports being read at once; retry later\n",
    )
        .into_response()
}

/// The peer as the log shows it: 127.0.0.1:39284, or "unknown" (`oneshot` tests).
fn shown_peer(peer: Option<axum::Extension<PeerAddr>>) -> String {
    peer.map_or_else(
        || "unknown".to_owned(),
        |axum::Extension(PeerAddr(addr))| addr.to_string(),
    )
}

/// The one log line of a report that reached the sink or was refused after reading: who sent
/// it, which report, how big, what became of it.
fn log_report(peer: &str, summary: Option<&Summary>, size: usize, status: StatusCode, what: &str) {
    let (reporter, report_id) = summary.map_or(("?", "?"), |s| (&*s.reporter, &*s.report_id));
    let status = status.as_u16();
    match status {
        ..400 => tracing::info!(%peer, reporter, report_id, size, status, "{what}"),
        400..500 => tracing::warn!(%peer, reporter, report_id, size, status, "{what}"),
        _ => tracing::error!(%peer, reporter, report_id, size, status, "{what}"),
    }
}

async fn receive_report(
    State(state): State<AppState>,
    peer: Option<axum::Extension<PeerAddr>>,
    request: Request,
) -> Response {
    // The answer comes before the request timeout even when the store hangs: a 503 the sender
    // retries, never a 408 or a dropped connection that it may not.
    let store_deadline = tokio::time::Instant::now() + store_answer_time(state.intake.timeout);
    let peer_addr = peer.as_ref().map(|axum::Extension(PeerAddr(addr))| *addr);
    let peer = shown_peer(peer);
    let max_body = state.intake.max_body;
    let max_decompressed = state.intake.max_decompressed;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if let Some(length) = declared.filter(|&length| length > max_body) {
        tracing::warn!(%peer, size = length, status = 413, "report refused (413): body larger than intake.max_body");
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("report body larger than {max_body} bytes\n"),
        )
            .into_response();
    }
    // The body is held from here on, so its place in the budget comes first.
    let body_bytes = declared.unwrap_or(max_body).saturating_mul(BODY_COPIES);
    let Some(_body_permit) = state.budget.reserve(body_bytes) else {
        return intake_busy(&peer, declared);
    };
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    // The body limit layer turns a body past `max_body` into 413 here.
    let body = match Bytes::from_request(request, &state).await {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            tracing::warn!(%peer, status = status.as_u16(), "report refused ({}): {}", status.as_u16(), rejection.body_text());
            return rejection.into_response();
        }
    };
    let size = body.len();
    // Read once, here; the sink gets what it gave. An unreadable body still goes to the sink,
    // which keeps it in quarantine with the reason.
    let Some((_reading_permit, read)) = read_report(
        &state.budget,
        &body,
        content_type.as_deref().unwrap_or(""),
        max_decompressed,
    )
    .await
    else {
        return intake_busy(&peer, Some(size));
    };
    let summary = match &read {
        Some(Ok(read)) => Some(Summary::of(read)),
        _ => None,
    };
    if state.intake.accept == Accept::Configured
        && let Some(reason) = summary
            .as_ref()
            .and_then(|s| s.refusal(&state.policies.load()))
    {
        let refused = state.refused.fetch_add(1, Ordering::Relaxed) + 1;
        log_report(
            &peer,
            summary.as_ref(),
            size,
            StatusCode::FORBIDDEN,
            &format!("report refused (403, {refused} since start): {reason}"),
        );
        return (StatusCode::FORBIDDEN, format!("{reason}\n")).into_response();
    }
    let report = IncomingReport {
        peer: peer_addr,
        content_type,
        body,
        max_decompressed,
        read,
    };
    let summary = summary.as_ref();
    let stored = tokio::time::timeout_at(store_deadline, state.sink.ingest(report)).await;
    state.outcomes.record(stored.as_ref().ok());
    let Ok(stored) = stored else {
        log_report(
            &peer,
            summary,
            size,
            StatusCode::SERVICE_UNAVAILABLE,
            "report not stored (503): the store did not answer in time",
        );
        return store_unavailable();
    };
    match stored {
        Ok(IngestOutcome::Stored) => {
            log_report(&peer, summary, size, StatusCode::CREATED, "report stored");
            (StatusCode::CREATED, "stored\n").into_response()
        }
        Ok(IngestOutcome::Duplicate) => {
            log_report(
                &peer,
                summary,
                size,
                StatusCode::OK,
                "report already stored (duplicate)",
            );
            (StatusCode::OK, "already stored (duplicate)\n").into_response()
        }
        Ok(IngestOutcome::Quarantined { reason }) => {
            log_report(
                &peer,
                summary,
                size,
                StatusCode::BAD_REQUEST,
                &format!(
                    "report quarantined (400): {}",
                    crate::screen::shown(&reason)
                ),
            );
            (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response()
        }
        Ok(IngestOutcome::TooLarge { limit }) => {
            log_report(
                &peer,
                summary,
                size,
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("report refused (413): larger than {limit} bytes once decompressed"),
            );
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("report larger than {limit} bytes once decompressed\n"),
            )
                .into_response()
        }
        Err(error) => {
            log_report(
                &peer,
                summary,
                size,
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("report not stored (503): {error}"),
            );
            store_unavailable()
        }
    }
}

/// How long a report may wait for the store: the request's time (`intake.timeout`) less a
/// margin, so that the 503 leaves before the request timeout's 408 would.
fn store_answer_time(timeout: std::time::Duration) -> std::time::Duration {
    let margin = (timeout / 10).min(std::time::Duration::from_secs(1));
    timeout.saturating_sub(margin)
}

fn store_unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "300")],
        "report could not be stored; retry later\n",
    )
        .into_response()
}
