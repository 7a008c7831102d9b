//! TLS-RPT HTTPS intake (RFC 8460 §5.4) through the router, without sockets.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::StatusCode;
use mta_sts_server::{
    AppState, IncomingReport, IngestOutcome, MemorySink, ReportSink, SinkError, app,
};
use support::{OTHER_REPORT, REPORT, REPORT_GZ, STRANGER_REPORT, config, gzip, post, router, send};
use tokio::sync::Notify;

#[tokio::test]
async fn json_report_is_stored_with_201() {
    let (router, sink) = router(&config(""));
    let (response, body) = send(
        &router,
        post("/tlsrpt", Some("application/tlsrpt+json"), REPORT),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED, "{body:?}");
    let held = sink.snapshot();
    assert_eq!(held.stored.len(), 1);
    assert_eq!(held.stored.values().next().unwrap().as_ref(), REPORT);
    assert_eq!(
        held.content_types,
        [Some("application/tlsrpt+json".to_owned())]
    );
}

#[tokio::test]
async fn gzip_report_is_stored_with_its_raw_bytes() {
    let (router, sink) = router(&config(""));
    let (response, _) = send(
        &router,
        post("/tlsrpt", Some("application/tlsrpt+gzip"), REPORT_GZ),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        sink.snapshot().stored.values().next().unwrap().as_ref(),
        REPORT_GZ
    );
}

#[tokio::test]
async fn gzip_is_sniffed_whatever_the_label_says() {
    let (router, sink) = router(&config(""));
    for (label, body) in [
        (Some("application/tlsrpt+json"), gzip(REPORT)),
        (None, gzip(OTHER_REPORT)),
    ] {
        let (response, text) = send(&router, post("/tlsrpt", label, body)).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{label:?}: {text:?}"
        );
    }
    assert_eq!(sink.snapshot().stored.len(), 2);
}

#[tokio::test]
async fn duplicate_delivery_is_idempotent() {
    let (router, sink) = router(&config(""));
    let first = send(
        &router,
        post("/tlsrpt", Some("application/tlsrpt+json"), REPORT),
    )
    .await;
    assert_eq!(first.0.status(), StatusCode::CREATED);
    // The same report again, even gzipped this time, changes nothing and is a success.
    for body in [REPORT.to_vec(), gzip(REPORT)] {
        let (response, _) = send(
            &router,
            post("/tlsrpt", Some("application/tlsrpt+gzip"), body),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(sink.snapshot().stored.len(), 1);
}

#[tokio::test]
async fn body_over_the_cap_is_413() {
    let (router, sink) = router(&config("[intake]\nmax_body = 1000"));
    let big = vec![b' '; 1001];
    let (response, _) = send(
        &router,
        post("/tlsrpt", Some("application/tlsrpt+json"), big),
    )
    .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let exact = [REPORT, &vec![b' '; 1000 - REPORT.len()]].concat();
    assert_eq!(exact.len(), 1000);
    let (response, _) = send(
        &router,
        post("/tlsrpt", Some("application/tlsrpt+json"), exact),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(sink.snapshot().stored.len(), 1);
}

#[tokio::test]
async fn gzip_bomb_is_413() {
    let (router, sink) = router(&config("[intake]\nmax_decompressed = 100000"));
    // 50 MB of spaces gzips to about 50 KB: under the body cap, far over the decompressed cap.
    let bomb = gzip(&vec![b' '; 50 * 1024 * 1024]);
    assert!(bomb.len() < 1024 * 1024);
    let (response, body) = send(
        &router,
        post("/tlsrpt", Some("application/tlsrpt+gzip"), bomb),
    )
    .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(String::from_utf8(body).unwrap().contains("100000 bytes"));
    assert!(sink.snapshot().stored.is_empty());
}

#[tokio::test]
async fn unreadable_report_is_400_with_the_reason_and_quarantined() {
    let (router, sink) = router(&config(""));
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "application/tlsrpt+json",
            b"this is not json".to_vec(),
            "not JSON",
        ),
        (
            "application/tlsrpt+gzip",
            b"\x1f\x8b\x08garbage".to_vec(),
            "gzip",
        ),
        (
            "application/tlsrpt+json",
            br#"{"report-id": "x"}"#.to_vec(),
            "organization-name",
        ),
        ("application/tlsrpt+json", Vec::new(), "not JSON"),
    ];
    for (label, body, reason) in &cases {
        let (response, text) = send(&router, post("/tlsrpt", Some(label), body.clone())).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains(reason), "{reason:?} in {text:?}");
    }
    let held = sink.snapshot();
    assert_eq!(held.quarantined.len(), cases.len());
    assert_eq!(held.quarantined[0].0.as_ref(), b"this is not json");
}

#[tokio::test]
async fn intake_path_is_configurable_and_only_takes_post() {
    let (router, _) = router(&config("[intake]\npath = \"/reports/tls\""));
    let (response, _) = send(&router, post("/reports/tls", None, REPORT)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let (response, _) = send(&router, post("/tlsrpt", None, REPORT)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let (response, _) = send(&router, support::get("mta-sts.example.com", "/reports/tls")).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");
}

/// A sink that fails, or waits until released.
#[derive(Default)]
struct TestSink {
    fail: bool,
    /// Notified when a report reaches the sink.
    entered: Notify,
    release: Notify,
    hold: bool,
}

#[async_trait]
impl ReportSink for TestSink {
    async fn ingest(&self, _: IncomingReport) -> Result<IngestOutcome, SinkError> {
        self.entered.notify_one();
        if self.hold {
            self.release.notified().await;
        }
        if self.fail {
            return Err(SinkError::new("database is down"));
        }
        Ok(IngestOutcome::Stored)
    }
}

#[tokio::test]
async fn sink_failure_is_503_so_the_sender_retries() {
    let sink = Arc::new(TestSink {
        fail: true,
        ..TestSink::default()
    });
    let router = app(AppState::new(&config(""), sink));
    let (response, body) = send(&router, post("/tlsrpt", None, REPORT)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert!(!String::from_utf8(body).unwrap().contains("database"));
}

#[tokio::test]
async fn requests_beyond_the_concurrency_cap_are_503() {
    let sink = Arc::new(TestSink {
        hold: true,
        ..TestSink::default()
    });
    let router = app(AppState::new(
        &config("[intake]\nmax_concurrent = 1"),
        sink.clone(),
    ));
    let first = tokio::spawn({
        let router = router.clone();
        async move { send(&router, post("/tlsrpt", None, REPORT)).await }
    });
    // The first request holds its slot once it has reached the sink.
    within(sink.entered.notified()).await;
    let (second, _) = within(send(&router, post("/tlsrpt", None, REPORT))).await;
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    sink.release.notify_one();
    let (first, _) = within(first).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
}

/// `future`'s output, or a failed test if it takes longer than 10 s (instead of a hang).
async fn within<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("timed out after 10 s")
}

/// A client whose body never finishes gets 408 at the request timeout.
#[tokio::test(start_paused = true)]
async fn slow_upload_times_out_with_408() {
    let router = app(AppState::new(
        &config("[intake]\ntimeout_seconds = 5"),
        Arc::new(MemorySink::new()),
    ));
    let endless = axum::body::Body::from_stream(futures_util::stream::pending::<
        Result<bytes::Bytes, std::io::Error>,
    >());
    let request = http::Request::post("/tlsrpt")
        .header("host", "mta-sts.example.com")
        .body(endless)
        .expect("valid request");
    let (response, _) = send(&router, request).await;
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
}

/// A store that stops answering (a paused database) gets the sender a 503 with Retry-After
/// before the request timeout, never a 408 or no answer: senders retry a 503.
#[tokio::test(start_paused = true)]
async fn a_store_that_does_not_answer_is_503_before_the_request_timeout() {
    let sink = Arc::new(TestSink {
        hold: true,
        ..TestSink::default()
    });
    let router = app(AppState::new(
        &config("[intake]\ntimeout_seconds = 5"),
        sink,
    ));
    let started = tokio::time::Instant::now();
    let (response, _) = send(&router, post("/tlsrpt", None, REPORT)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    // Paused time: exact, not a timing assertion.
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn memory_sink_stores_once_and_keeps_unreadable_bodies() {
    let memory = Arc::new(MemorySink::new());
    let sink: Arc<dyn ReportSink> = memory.clone();
    let incoming = |body: &[u8], max_decompressed| IncomingReport {
        peer: None,
        content_type: Some("application/tlsrpt+gzip".to_owned()),
        body: body.to_vec().into(),
        max_decompressed,
        read: None,
    };
    let ingest = |report| {
        let sink = Arc::clone(&sink);
        async move { sink.ingest(report).await.unwrap() }
    };
    assert_eq!(
        ingest(incoming(REPORT_GZ, 1 << 20)).await,
        IngestOutcome::Stored
    );
    assert_eq!(
        ingest(incoming(REPORT, 1 << 20)).await,
        IngestOutcome::Duplicate
    );
    assert!(matches!(
        ingest(incoming(b"not a report", 1 << 20)).await,
        IngestOutcome::Quarantined { reason } if !reason.is_empty()
    ));
    assert_eq!(
        ingest(incoming(OTHER_REPORT, 16)).await,
        IngestOutcome::TooLarge { limit: 16 }
    );
    let held = memory.snapshot();
    assert_eq!(held.stored.len(), 1);
    assert_eq!(held.stored.values().next().unwrap().as_ref(), REPORT_GZ);
    assert_eq!(held.quarantined.len(), 1);
    assert_eq!(held.quarantined[0].0.as_ref(), b"not a report");
    assert_eq!(held.content_types.len(), 4);
}

#[tokio::test]
async fn a_report_about_a_domain_not_served_is_refused_counted_and_not_stored() {
    let sink = Arc::new(MemorySink::new());
    let state = AppState::new(&config(""), sink.clone());
    let router = app(state.clone());
    for body in [STRANGER_REPORT.to_vec(), gzip(STRANGER_REPORT)] {
        let (response, text) = send(&router, post("/tlsrpt", None, body)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("reports about company-y.example are not accepted here"),
            "{text}"
        );
    }
    let held = sink.snapshot();
    assert!(held.stored.is_empty() && held.quarantined.is_empty());
    assert!(held.content_types.is_empty(), "the sink never saw them");
    assert_eq!(state.refused_reports(), 2);
    // Reports about served domains still go through, whatever the case of the domain.
    let (response, _) = send(&router, post("/tlsrpt", None, REPORT)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(state.refused_reports(), 2);
}

#[tokio::test]
async fn intake_accept_any_takes_reports_about_any_domain() {
    let sink = Arc::new(MemorySink::new());
    let state = AppState::new(&config("[intake]\naccept = \"any\""), sink.clone());
    let router = app(state.clone());
    let (response, _) = send(&router, post("/tlsrpt", None, STRANGER_REPORT)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(sink.snapshot().stored.len(), 1);
    assert_eq!(state.refused_reports(), 0);
}
