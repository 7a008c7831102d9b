//! The dashboard's access control, API and metrics over HTTP (`oneshot`), with the read side
//! kept in memory (the store's implementation is tested with a real browser in the CLI).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode, header};
use mta_sts_server::{
    AlertDeliveryRow, AlertRow, AppState, CertRow, CheckFinding, CheckRow, Config, DashboardData,
    DataError, DomainStats, DriftRow, MAX_FAILED_LOGINS, MemorySink, QuarantineItem, ReportDetail,
    ReportQuery, ReportRow, Reprocess, StoreTotals, Tally, app, hash_password, new_api_token,
};
use support::{config_toml, send};

/// Every domain has `sessions` successful sessions on one day.
struct Fixed {
    sessions: BTreeMap<String, u64>,
}

#[async_trait]
impl DashboardData for Fixed {
    async fn domain_stats(
        &self,
        domain: &str,
        since: i64,
        _: i64,
    ) -> Result<DomainStats, DataError> {
        let ok = self.sessions.get(domain).copied().unwrap_or(0);
        let day = Tally {
            key: mta_sts_tlsrpt::report::Timestamp::from_unix_seconds(since)
                .map(|t| t.to_string()[..10].to_owned())
                .unwrap_or_default(),
            reports: 1,
            successful: Some(ok),
            failed: 0,
            failure_types: BTreeMap::new(),
        };
        Ok(DomainStats {
            total: Tally {
                key: domain.to_owned(),
                ..day.clone()
            },
            daily: vec![day],
            ..DomainStats::default()
        })
    }
    async fn reports(&self, _: &ReportQuery) -> Result<Vec<ReportRow>, DataError> {
        Ok(Vec::new())
    }
    async fn report(&self, _: i64) -> Result<Option<ReportDetail>, DataError> {
        Ok(None)
    }
    async fn quarantine(&self, _: u32) -> Result<Vec<QuarantineItem>, DataError> {
        Ok(Vec::new())
    }
    async fn reprocess(&self, _: i64) -> Result<Reprocess, DataError> {
        Ok(Reprocess::NotFound)
    }
    async fn totals(&self) -> Result<StoreTotals, DataError> {
        Ok(StoreTotals {
            reports: 7,
            quarantined: 1,
        })
    }
    async fn alerts(&self, domains: &[String]) -> Result<Vec<AlertRow>, DataError> {
        let alert = AlertRow {
            domain: "example.com".to_owned(),
            kind: "failure_rate_high".to_owned(),
            key: String::new(),
            summary: "7.0 % of sessions failed <b>".to_owned(),
            detail: "70 of 1000 sessions failed".to_owned(),
            opened_at: 1_780_021_602,
            last_seen: 1_780_021_602,
            notified_at: Some(1_780_021_602),
            deliveries: vec![AlertDeliveryRow {
                channel: "webhook".to_owned(),
                state: "sent".to_owned(),
                attempts: 1,
                last_error: None,
            }],
        };
        Ok(domains
            .iter()
            .filter(|d| *d == "example.com")
            .map(|_| alert.clone())
            .collect())
    }
    async fn latest_checks(&self, domains: &[String]) -> Result<Vec<Option<CheckRow>>, DataError> {
        Ok(domains
            .iter()
            .map(|d| checks_of(d).into_iter().next())
            .collect())
    }
    async fn checks(
        &self,
        domain: &str,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<CheckRow>, DataError> {
        Ok(checks_of(domain)
            .into_iter()
            .skip(offset as usize)
            .take(limit as usize)
            .collect())
    }
    async fn check_findings(&self, domain: &str, id: i64) -> Result<Vec<CheckFinding>, DataError> {
        Ok(if domain == "example.com" && id == 2 {
            vec![CheckFinding {
                code: "mx-not-covered".to_owned(),
                severity: "error".to_owned(),
                area: "mx".to_owned(),
                subject: "mx2.example.com".to_owned(),
                message: "no mx pattern of the policy covers this MX host".to_owned(),
                evidence: String::new(),
                fix: "add mx: mx2.example.com to the policy".to_owned(),
                rfc: "RFC 8461 §4.1".to_owned(),
            }]
        } else {
            Vec::new()
        })
    }
}

/// Two checks of example.com, newest first: the MX host changed between them; none of others.
fn checks_of(domain: &str) -> Vec<CheckRow> {
    if domain != "example.com" {
        return Vec::new();
    }
    let older = CheckRow {
        id: 1,
        started_at: 1_780_000_000,
        finished_at: 1_780_000_002,
        verdict: "testing".to_owned(),
        summary: "testing".to_owned(),
        incomplete: None,
        errors: 0,
        warnings: 1,
        policy_id: Some("1".to_owned()),
        policy_mode: Some("testing".to_owned()),
        policy_error: None,
        mx: Some(vec!["mx1.example.com".to_owned()]),
        certificates: vec![CertRow {
            host: "mta-sts.example.com".to_owned(),
            not_after: 1_790_000_000,
        }],
        drift: Vec::new(),
    };
    let newer = CheckRow {
        id: 2,
        started_at: 1_780_021_600,
        finished_at: 1_780_021_602,
        errors: 1,
        mx: Some(vec!["mx2.example.com".to_owned()]),
        drift: vec![DriftRow {
            kind: "mx-changed-policy-not".to_owned(),
            key: "mx1.example.com".to_owned(),
            summary: "the MX hosts of example.com changed <b>".to_owned(),
            detail: "update the policy".to_owned(),
        }],
        ..older.clone()
    };
    vec![newer, older]
}

struct Site {
    router: Router,
    token: String,
    org_token: String,
}

fn site(extra: &str) -> Site {
    let hash = hash_password("pw").expect("hash");
    let (token, sha) = new_api_token().expect("token");
    let (org_token, org_sha) = new_api_token().expect("token");
    let dashboard = format!(
        r#"
[[dashboard.user]]
name = "admin"
password_hash = "{hash}"
[[dashboard.token]]
name = "all"
sha256 = "{sha}"
[[dashboard.token]]
name = "org"
sha256 = "{org_sha}"
domains = ["example.org"]
{extra}"#
    );
    let config =
        Config::from_toml(&config_toml(&dashboard), std::path::Path::new(".")).expect("config");
    let data = Fixed {
        sessions: [
            ("example.com".to_owned(), 10),
            ("example.org".to_owned(), 20),
        ]
        .into(),
    };
    let state =
        AppState::new(&config, Arc::new(MemorySink::new())).with_dashboard(&config, Arc::new(data));
    Site {
        router: app(state),
        token,
        org_token,
    }
}

fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path).header("host", "mta-sts.example.com");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Body::empty()).expect("request")
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("JSON")
}

#[tokio::test]
async fn without_a_dashboard_section_nothing_is_served() {
    let config = support::config("");
    let (router, _) = support::router(&config);
    for path in ["/", "/login", "/api/v1/domains", "/metrics"] {
        let (response, _) = send(&router, get(path, None)).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn the_api_and_metrics_need_a_token_or_a_session() {
    let site = site("");
    for path in [
        "/api/v1/domains",
        "/api/v1/domains/example.com",
        "/api/v1/domains/example.com/daily",
        "/api/v1/domains/example.com/checks",
        "/api/v1/domains/example.com/alerts",
        "/api/v1/domains/no-such.example",
        "/api/v1/alerts",
        "/api/v1/reports",
        "/api/v1/reports/1",
        "/api/v1/quarantine",
        "/metrics",
    ] {
        let (response, _) = send(&site.router, get(path, None)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let (response, _) = send(&site.router, get(path, Some("mtasts_wrong"))).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let (response, _) = send(&site.router, get("/", None)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/login");
    // Policy hosting stays public.
    let (response, _) = send(&site.router, get("/.well-known/mta-sts.txt", None)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_token_limited_to_one_domain_sees_only_that_domain() {
    let site = site("");
    let (response, body) = send(&site.router, get("/api/v1/domains", Some(&site.token))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let all = json(&body);
    let names: Vec<&str> = all["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["domain"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["example.com", "example.org"]);
    assert_eq!(all["domains"][1]["sessions"], 20);

    let (_, body) = send(&site.router, get("/api/v1/domains", Some(&site.org_token))).await;
    let names: Vec<String> = json(&body)["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["domain"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["example.org"]);
    for path in [
        "/api/v1/domains/example.com",
        "/api/v1/domains/example.com/daily",
        "/api/v1/domains/example.com/checks",
        "/api/v1/domains/example.com/alerts",
        "/api/v1/domains/no-such.example",
        "/api/v1/quarantine",
    ] {
        let (response, _) = send(&site.router, get(path, Some(&site.org_token))).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let (response, body) = send(
        &site.router,
        get(
            "/api/v1/domains/example.org/daily?days=7",
            Some(&site.org_token),
        ),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let daily = json(&body);
    assert_eq!(daily["days"].as_array().unwrap().len(), 7);
    assert_eq!(daily["days"][0]["successful"], 20);

    let (response, body) = send(&site.router, get("/metrics", Some(&site.org_token))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains(r#"mta_sts_report_sessions{domain="example.org",result="successful"} 20"#),
        "{text}"
    );
    assert!(!text.contains("example.com"), "{text}");
    assert!(!text.contains("mta_sts_quarantine_size"), "{text}");
    let (response, _) = send(
        &site.router,
        support::post("/tlsrpt", Some("application/tlsrpt+json"), support::REPORT),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let (response, _) = send(
        &site.router,
        support::post("/tlsrpt", Some("application/tlsrpt+json"), support::REPORT),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let (_, body) = send(&site.router, get("/metrics", Some(&site.token))).await;
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains(r#"mta_sts_intake_reports_total{outcome="stored"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"mta_sts_intake_reports_total{outcome="duplicate"} 1"#),
        "{text}"
    );
    assert!(text.contains("mta_sts_quarantine_size 1"), "{text}");
    assert!(text.contains("mta_sts_reports_stored 7"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}

fn form_post(path: &str, cookie: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header("host", "mta-sts.example.com")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie)
        .body(Body::from(body.to_owned()))
        .expect("request")
}

/// The login form's CSRF cookie and field value.
async fn login_token(router: &Router) -> String {
    let (response, body) = send(router, get("/login", None)).await;
    let cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
    );
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .split('=')
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(String::from_utf8(body).unwrap().contains(&value));
    value
}

#[tokio::test]
async fn login_sets_a_strict_session_cookie_and_actions_need_the_csrf_token() {
    let site = site("");
    let token = login_token(&site.router).await;
    // Without the form's cookie (another site's form): refused.
    let (response, _) = send(
        &site.router,
        form_post(
            "/login",
            "",
            &format!("user=admin&password=pw&login_csrf={token}"),
        ),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (response, _) = send(
        &site.router,
        form_post(
            "/login",
            &format!("mta_sts_login={token}"),
            &format!("user=admin&password=pw&login_csrf={token}"),
        ),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let session = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("mta_sts_session="))
        .expect("session cookie");
    for flag in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(flag), "{session}");
    }
    let cookie = session.split(';').next().unwrap().to_owned();
    let mut request = get("/", None);
    request
        .headers_mut()
        .insert(header::COOKIE, cookie.parse().unwrap());
    let (response, body) = send(&site.router, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains(r#"data-domain="example.com""#));

    // An action without the session's CSRF token is refused, and the session stays.
    let (response, _) = send(&site.router, form_post("/logout", &cookie, "csrf=nope")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (response, _) = send(
        &site.router,
        form_post("/quarantine/1/reprocess", &cookie, ""),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let csrf = page
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf field")
        .to_owned();
    let (response, _) = send(
        &site.router,
        form_post("/logout", &cookie, &format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let mut request = get("/", None);
    request
        .headers_mut()
        .insert(header::COOKIE, cookie.parse().unwrap());
    let (response, _) = send(&site.router, request).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "logged out");
}

#[tokio::test]
async fn repeated_failed_logins_are_answered_429() {
    let site = site("");
    let token = login_token(&site.router).await;
    let cookie = format!("mta_sts_login={token}");
    for _ in 0..MAX_FAILED_LOGINS {
        let (response, _) = send(
            &site.router,
            form_post(
                "/login",
                &cookie,
                &format!("user=admin&password=wrong&login_csrf={token}"),
            ),
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let (response, body) = send(
        &site.router,
        form_post(
            "/login",
            &cookie,
            &format!("user=admin&password=pw&login_csrf={token}"),
        ),
    )
    .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("Too many failed logins")
    );
}

#[test]
fn dashboard_config_errors_name_the_field() {
    let refused = |dashboard: &str, intake: &str| {
        let text = config_toml(&format!("{intake}\n{dashboard}"));
        Config::from_toml(&text, std::path::Path::new("."))
            .expect_err("refused")
            .to_string()
    };
    let hash = hash_password("pw").expect("hash");
    let error = refused(
        "[[dashboard.user]]\nname = \"a\"\npassword_hash = \"plain\"",
        "",
    );
    assert!(
        error.contains("dashboard.user[0].password_hash") && error.contains("mta-sts passwd"),
        "{error}"
    );
    let error = refused(
        &format!(
            "[[dashboard.user]]\nname = \"a\"\npassword_hash = \"{hash}\"\ndomains = [\"other.example\"]"
        ),
        "",
    );
    assert!(
        error.contains("dashboard.user[0].domains") && error.contains("other.example"),
        "{error}"
    );
    let error = refused("[[dashboard.token]]\nname = \"t\"\nsha256 = \"abc\"", "");
    assert!(error.contains("dashboard.token[0].sha256"), "{error}");
    let error = refused(
        &format!("[[dashboard.user]]\nname = \"a\"\npassword_hash = \"{hash}\""),
        "[intake]\npath = \"/reports\"",
    );
    assert!(
        error.contains("intake.path") && error.contains("dashboard"),
        "{error}"
    );
}

#[tokio::test]
async fn checks_are_shown_only_to_viewers_of_their_domain() {
    let site = site("");
    let (response, body) = send(
        &site.router,
        get("/api/v1/domains/example.com/checks", Some(&site.token)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = json(&body);
    let checks = page["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0]["id"], 2);
    assert_eq!(checks[0]["finished_at"], "2026-05-29T02:26:42Z");
    assert_eq!(checks[0]["drift"][0]["kind"], "mx-changed-policy-not");
    assert_eq!(
        checks[0]["changes"],
        serde_json::json!([
            "MX mx1.example.com → mx2.example.com",
            "drift: the MX hosts of example.com changed <b>"
        ])
    );
    assert_eq!(checks[1]["changes"], serde_json::json!(["first check"]));
    assert_eq!(page["more"], false);

    let (_, body) = send(
        &site.router,
        get("/api/v1/domains/example.com", Some(&site.token)),
    )
    .await;
    let latest = &json(&body)["latest_check"];
    assert_eq!(latest["id"], 2);
    assert_eq!(latest["findings"][0]["code"], "mx-not-covered");
    assert_eq!(
        latest["findings"][0]["fix"],
        "add mx: mx2.example.com to the policy"
    );
    let (_, body) = send(&site.router, get("/api/v1/domains", Some(&site.token))).await;
    let all = json(&body);
    assert_eq!(all["domains"][0]["latest_check"]["verdict"], "testing");
    assert_eq!(all["domains"][1]["latest_check"], serde_json::Value::Null);

    let (_, body) = send(&site.router, get("/domains/example.com", Some(&site.token))).await;
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains(r#"data-table="check-history""#), "{page}");
    assert!(
        page.contains("add mx: mx2.example.com to the policy"),
        "{page}"
    );
    assert!(page.contains("changed &lt;b&gt;"), "escaped: {page}");
    assert!(!page.contains("changed <b>"), "{page}");
    let (_, body) = send(&site.router, get("/", Some(&site.token))).await;
    let overview = String::from_utf8(body).unwrap();
    assert!(overview.contains("not checked yet"), "{overview}");
    assert!(
        overview.contains(r#"data-field="check-verdict">testing<"#),
        "{overview}"
    );

    let (_, body) = send(&site.router, get("/metrics", Some(&site.token))).await;
    let text = String::from_utf8(body).unwrap();
    for line in [
        r#"mta_sts_check_verdict{domain="example.com",verdict="testing"} 1"#,
        r#"mta_sts_check_findings{domain="example.com",severity="error"} 1"#,
        r#"mta_sts_check_timestamp_seconds{domain="example.com"} 1780021602"#,
        r#"mta_sts_certificate_expiry_timestamp_seconds{domain="example.com",host="mta-sts.example.com"} 1790000000"#,
        r#"mta_sts_drift{domain="example.com",kind="mx-changed-policy-not",key="mx1.example.com"} 1"#,
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }

    // Limited to example.org: none of example.com's checks, anywhere.
    let (response, _) = send(
        &site.router,
        get("/api/v1/domains/example.com/checks", Some(&site.org_token)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let (response, body) = send(
        &site.router,
        get("/api/v1/domains/example.org/checks", Some(&site.org_token)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(&body)["checks"], serde_json::json!([]));
    let (_, body) = send(&site.router, get("/metrics", Some(&site.org_token))).await;
    let text = String::from_utf8(body).unwrap();
    assert!(!text.contains("mta_sts_check_verdict{"), "{text}");
}

#[tokio::test]
async fn open_alerts_are_shown_only_to_viewers_of_their_domain() {
    let site = site("");
    let (response, body) = send(&site.router, get("/api/v1/alerts", Some(&site.token))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let all = json(&body);
    assert_eq!(all["alerts"].as_array().unwrap().len(), 1);
    let alert = &all["alerts"][0];
    assert_eq!(alert["domain"], "example.com");
    assert_eq!(alert["kind"], "failure_rate_high");
    assert_eq!(alert["opened_at"], "2026-05-29T02:26:42Z");
    assert_eq!(alert["deliveries"][0]["state"], "sent");
    let (response, body) = send(
        &site.router,
        get("/api/v1/domains/example.com/alerts", Some(&site.token)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json(&body)["alerts"][0]["summary"],
        "7.0 % of sessions failed <b>"
    );

    let (_, body) = send(&site.router, get("/", Some(&site.token))).await;
    let overview = String::from_utf8(body).unwrap();
    assert!(
        overview.contains(r#"href="/domains/example.com#alerts">1 open</a>"#),
        "{overview}"
    );
    let (_, body) = send(&site.router, get("/domains/example.com", Some(&site.token))).await;
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains(r#"data-table="alerts""#), "{page}");
    assert!(
        page.contains("sessions failed &lt;b&gt;"),
        "escaped: {page}"
    );
    assert!(!page.contains("failed <b>"), "{page}");
    let (_, body) = send(&site.router, get("/metrics", Some(&site.token))).await;
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains(r#"mta_sts_open_alerts{domain="example.com",kind="failure_rate_high"} 1"#),
        "{text}"
    );

    // Limited to example.org: example.com's alert nowhere.
    let (_, body) = send(&site.router, get("/api/v1/alerts", Some(&site.org_token))).await;
    assert_eq!(json(&body)["alerts"], serde_json::json!([]));
    let (response, _) = send(
        &site.router,
        get("/api/v1/domains/example.com/alerts", Some(&site.org_token)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let (_, body) = send(&site.router, get("/metrics", Some(&site.org_token))).await;
    let text = String::from_utf8(body).unwrap();
    assert!(!text.contains("mta_sts_open_alerts{"), "{text}");
}
