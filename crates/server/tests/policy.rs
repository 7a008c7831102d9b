//! Policy hosting (RFC 8461 §3.3) through the router, without sockets.

mod support;

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use mta_sts_server::{Config, MemorySink, Server, ServerError};
use support::{config, get, router, send};

const POLICY: &str = "/.well-known/mta-sts.txt";

#[tokio::test]
async fn policy_is_served_by_host_as_text_plain() {
    let (router, _) = router(&config(""));
    let (response, body) = send(&router, get("mta-sts.example.com", POLICY)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "version: STSv1\r\nmode: testing\r\nmx: mx1.example.com\r\nmx: *.mx.example.net\r\nmax_age: 604800\r\n"
    );
    let (_, body) = send(&router, get("mta-sts.example.org", POLICY)).await;
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("mode: enforce\r\n")
    );
}

#[tokio::test]
async fn host_is_case_insensitive_and_port_is_ignored() {
    let (router, _) = router(&config(""));
    for host in [
        "MTA-STS.Example.COM",
        "mta-sts.example.com:443",
        "mta-sts.example.com.",
    ] {
        let (response, body) = send(&router, get(host, POLICY)).await;
        assert_eq!(response.status(), StatusCode::OK, "{host}");
        assert!(body.starts_with(b"version: STSv1"), "{host}");
    }
}

#[tokio::test]
async fn head_has_headers_and_no_body() {
    let (router, _) = router(&config(""));
    let (_, served) = send(&router, get("mta-sts.example.com", POLICY)).await;
    let request = Request::head(POLICY)
        .header("host", "mta-sts.example.com")
        .body(Body::empty())
        .unwrap();
    let (response, body) = send(&router, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(
        response.headers()["content-length"],
        served.len().to_string().as_str()
    );
    assert!(body.is_empty());
}

#[tokio::test]
async fn unknown_host_is_not_found() {
    let (router, _) = router(&config(""));
    for host in ["mta-sts.example.net", "example.com", "www.example.com"] {
        let (response, _) = send(&router, get(host, POLICY)).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{host}");
    }
    let no_host = Request::get(POLICY).body(Body::empty()).unwrap();
    assert_eq!(
        send(&router, no_host).await.0.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn unknown_path_is_not_found() {
    let (router, _) = router(&config(""));
    for path in [
        "/",
        "/.well-known/mta-sts.txt/",
        "/.well-known/mta-sts",
        "/mta-sts.txt",
    ] {
        let (response, _) = send(&router, get("mta-sts.example.com", path)).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn other_methods_on_the_policy_are_not_allowed() {
    let (router, _) = router(&config(""));
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let request = Request::builder()
            .method(method)
            .uri(POLICY)
            .header("host", "mta-sts.example.com")
            .body(Body::empty())
            .unwrap();
        let (response, _) = send(&router, request).await;
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
        assert_eq!(response.headers()["allow"], "GET, HEAD");
    }
}

#[tokio::test]
async fn redirects_are_never_answered() {
    // Senders never follow redirects (RFC 8461 §3.3): not even http → https or a slash.
    let (router, _) = router(&config(""));
    for (host, path) in [
        ("mta-sts.example.com", "/.well-known/mta-sts.txt/"),
        ("mta-sts.example.com", "/.well-known//mta-sts.txt"),
    ] {
        let (response, _) = send(&router, get(host, path)).await;
        assert!(!response.status().is_redirection());
    }
}

fn write_config(dir: &std::path::Path, mode: &str) -> std::path::PathBuf {
    let path = dir.join("mta-sts.toml");
    std::fs::write(
        &path,
        format!(
            "[tls]\nmode = \"none\"\n[[domain]]\nname = \"example.com\"\nmode = \"{mode}\"\nmx = [\"mx1.example.com\"]\n"
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn reload_swaps_the_policy_and_a_bad_reload_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "testing");
    let server = Server::new(Config::load(&path).unwrap(), Arc::new(MemorySink::new())).unwrap();
    let router = server.router();
    let (_, body) = send(&router, get("mta-sts.example.com", POLICY)).await;
    assert!(String::from_utf8(body).unwrap().contains("mode: testing"));

    write_config(dir.path(), "enforce");
    server.reload().unwrap();
    let (_, body) = send(&router, get("mta-sts.example.com", POLICY)).await;
    assert!(String::from_utf8(body).unwrap().contains("mode: enforce"));

    write_config(dir.path(), "enforced");
    let error = server.reload().unwrap_err();
    assert!(
        matches!(error, ServerError::Config(_)),
        "refused with the diagnostic: {error}"
    );
    assert!(error.to_string().contains("mode"), "{error}");
    let (_, body) = send(&router, get("mta-sts.example.com", POLICY)).await;
    assert!(String::from_utf8(body).unwrap().contains("mode: enforce"));
}
