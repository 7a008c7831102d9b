//! The HTTP application: policy hosting and TLS-RPT intake, as one axum [`Router`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use mta_sts_tlsrpt::report::measure;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{BoxError, ServiceBuilder};

use crate::config::{Config, Intake, Limits};
use crate::intake::{IncomingReport, IngestOutcome, ReportSink};

/// Where RFC 8461 §3.3 puts the policy.
pub const POLICY_PATH: &str = "/.well-known/mta-sts.txt";

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
        }
    }

    /// Serves `config`'s policies from now on. Requests in flight finish with the old ones;
    /// connections stay open. Intake settings and listeners are fixed at start.
    pub fn replace_policies(&self, config: &Config) {
        self.policies.store(Arc::new(policy_table(config)));
    }

    /// The intake settings the router was built with.
    pub fn intake(&self) -> &Intake {
        &self.intake
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
    Router::new()
        .route(POLICY_PATH, any(policy))
        .merge(intake_router(&state.intake))
        .fallback(not_found)
        .with_state(state)
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

async fn limit_error(error: BoxError) -> Response {
    if error.is::<tower::timeout::error::Elapsed>() {
        (StatusCode::REQUEST_TIMEOUT, "request took too long\n").into_response()
    } else if error.is::<tower::load_shed::error::Overloaded>() {
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

/// Bodies up to this size that are not gzip are measured on the async worker; others (a small
/// gzip body can decompress to megabytes) on a blocking thread.
const INLINE_MEASURE_LIMIT: usize = 64 * 1024;

/// Copies of a body the intake and the sink hold at once (the request's, the sink's own, and one
/// while it hashes or moves it to a blocking thread).
const BODY_COPIES: usize = 3;

fn intake_busy() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "30")],
        "too many reports being read at once; retry later\n",
    )
        .into_response()
}

async fn receive_report(
    State(state): State<AppState>,
    peer: Option<axum::Extension<PeerAddr>>,
    request: Request,
) -> Response {
    // The answer comes before the request timeout even when the store hangs: a 503 the sender
    // retries, never a 408 or a dropped connection that it may not.
    let store_deadline = tokio::time::Instant::now() + store_answer_time(state.intake.timeout);
    let max_body = state.intake.max_body;
    let max_decompressed = state.intake.max_decompressed;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > max_body) {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("report body larger than {max_body} bytes\n"),
        )
            .into_response();
    }
    // The body is held from here on, so its place in the budget comes first.
    let body_bytes = declared.unwrap_or(max_body).saturating_mul(BODY_COPIES);
    let Some(_body_permit) = state.budget.reserve(body_bytes) else {
        return intake_busy();
    };
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    // The body limit layer turns a body past `max_body` into 413 here.
    let body = match Bytes::from_request(request, &state).await {
        Ok(body) => body,
        Err(rejection) => return rejection.into_response(),
    };
    // What reading the report will take, found without allocating it. A body that cannot be
    // measured still goes to the sink, which keeps it in quarantine with the reason.
    let cost = if body.len() <= INLINE_MEASURE_LIMIT && !body.starts_with(b"\x1f\x8b") {
        measure(&body, max_decompressed)
    } else {
        let body = body.clone();
        tokio::task::spawn_blocking(move || measure(&body, max_decompressed))
            .await
            .unwrap_or(Err(mta_sts_tlsrpt::ReportError::TooLarge {
                limit: max_decompressed,
            }))
    };
    let reading = cost.map_or(max_decompressed.saturating_mul(2), |cost| {
        cost.reading_bytes()
    });
    let Some(_reading_permit) = state.budget.reserve(reading) else {
        return intake_busy();
    };
    let report = IncomingReport {
        peer: peer.map(|axum::Extension(PeerAddr(addr))| addr),
        content_type,
        body,
        max_decompressed,
    };
    // Shown as 127.0.0.1:39284 in the log, or "unknown" (oneshot tests).
    let peer = report
        .peer
        .map_or_else(|| "unknown".to_owned(), |p| p.to_string());
    let Ok(stored) = tokio::time::timeout_at(store_deadline, state.sink.ingest(report)).await
    else {
        tracing::error!(%peer, "report not stored: the store did not answer in time");
        return store_unavailable();
    };
    match stored {
        Ok(IngestOutcome::Stored) => (StatusCode::CREATED, "stored\n").into_response(),
        Ok(IngestOutcome::Duplicate) => {
            (StatusCode::OK, "already stored (duplicate)\n").into_response()
        }
        Ok(IngestOutcome::Quarantined { reason }) => {
            tracing::info!(%peer, %reason, "report quarantined");
            (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response()
        }
        Ok(IngestOutcome::TooLarge { limit }) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("report larger than {limit} bytes once decompressed\n"),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%peer, %error, "report not stored");
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
