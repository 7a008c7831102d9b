//! Shared test fixtures: configs, report bodies, requests.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{Request, Response};
use http_body_util::BodyExt;
use mta_sts_server::{AppState, Config, MemorySink, app};
use tower::ServiceExt;

/// A report as Google sends it.
pub const REPORT: &[u8] =
    include_bytes!("../../../tlsrpt/tests/fixtures/reports/google-sts-enforce.json");
/// The same report, gzipped by the sender.
pub const REPORT_GZ: &[u8] =
    include_bytes!("../../../tlsrpt/tests/fixtures/reports/google-sts-enforce.json.gz");
/// Another report (a different identity), about example.com.
pub const OTHER_REPORT: &[u8] =
    include_bytes!("../../../tlsrpt/tests/fixtures/reports/microsoft-sts-tlsa.json");
/// A report about company-y.example, a domain the test config does not serve.
pub const STRANGER_REPORT: &[u8] =
    include_bytes!("../../../tlsrpt/tests/fixtures/reports/rfc8460-appendix-b.json");

/// Plain-HTTP config for example.com (testing) and example.org (enforce), plus `extra` TOML.
pub fn config_toml(extra: &str) -> String {
    format!(
        r#"
[tls]
mode = "none"

[listen]
http = ["127.0.0.1:0"]
{extra}

[[domain]]
name = "example.com"
mode = "testing"
mx = ["mx1.example.com", "*.mx.example.net"]
max_age = 604800

[[domain]]
name = "Example.ORG"
mode = "enforce"
mx = ["mail.example.org"]
max_age = 1209600
"#
    )
}

pub fn config(extra: &str) -> Config {
    Config::from_toml(&config_toml(extra), Path::new(".")).expect("test config is valid")
}

pub fn router(config: &Config) -> (Router, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::new());
    (app(AppState::new(config, sink.clone())), sink)
}

pub async fn send(router: &Router, request: Request<Body>) -> (Response<Body>, Vec<u8>) {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes().to_vec();
    (Response::from_parts(parts, Body::empty()), bytes)
}

pub fn get(host: &str, path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", host)
        .body(Body::empty())
        .expect("valid request")
}

pub fn post(path: &str, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Request<Body> {
    let mut request = Request::post(path).header("host", "mta-sts.example.com");
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request
        .body(Body::from(body.into()))
        .expect("valid request")
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("in memory");
    encoder.finish().expect("in memory")
}

/// Writes a PEM file of `label` blocks.
pub fn write_pem(path: &Path, label: &str, ders: &[&[u8]]) {
    let text: String = ders
        .iter()
        .map(|der| pem::encode(&pem::Pem::new(label, der.to_vec())))
        .collect();
    std::fs::write(path, text).expect("writable temp dir");
}
