//! The dashboard in a real headless Chromium against a running `mta-sts serve` with seeded
//! reports: log in, the overview, a domain page, the reports, a report, the quarantine; the
//! numbers shown are the store's (as `mta-sts reports summary|show` give them); a user limited
//! to one domain sees nothing of another, on the pages and in the API. Screenshots are saved
//! under target/dashboard-screenshots/.

#[path = "support/browser.rs"]
mod browser;
mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use browser::Browser;
use serde_json::{Value, json};
use support::{bin, json as stdout_json, mta_sts, start_listening, temp_dir};

const PASSWORD: &str = "correct horse battery";
/// A reporter whose name is markup: it must show as text.
const MARKUP_ORG: &str = "<img src=x onerror=\"document.title='pwned'\">";

fn day(days_ago: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = mta_sts_tlsrpt::report::Timestamp::from_unix_seconds(now - days_ago * 86_400).unwrap();
    t.to_string()[..10].to_owned()
}

fn report(
    org: &str,
    domain: &str,
    days_ago: i64,
    ok: u64,
    failures: &[(&str, &str, u64)],
) -> Value {
    let d = day(days_ago);
    let failed: u64 = failures.iter().map(|f| f.2).sum();
    let details: Vec<Value> = failures
        .iter()
        .map(|(result, mx, n)| {
            json!({"result-type": result, "sending-mta-ip": format!("192.0.2.{days_ago}"),
                   "receiving-mx-hostname": mx, "receiving-ip": "198.51.100.7", "failed-session-count": n})
        })
        .collect();
    json!({
        "organization-name": org,
        "date-range": {"start-datetime": format!("{d}T00:00:00Z"), "end-datetime": format!("{d}T23:59:59Z")},
        "contact-info": "tlsrpt@reporter.example",
        "report-id": format!("{}-{domain}-{d}", org.len()),
        "policies": [{
            "policy": {"policy-type": "sts", "policy-domain": domain, "mx-host": [format!("mx1.{domain}")],
                       "policy-string": ["version: STSv1", "mode: testing", &format!("mx: mx1.{domain}"), "max_age: 604800"]},
            "summary": {"total-successful-session-count": ok, "total-failure-session-count": failed},
            "failure-details": details,
        }]
    })
}

/// Reports of the last 20 days: example.com from three reporters (one silent for 9 days,
/// one named with markup) with certificate failures, example.org clean; and one body that
/// is no report.
fn seed(dir: &Path) -> usize {
    let mut reports = Vec::new();
    for d in 1..=20i64 {
        let failures: Vec<(&str, &str, u64)> = match (d % 3) as u64 {
            0 => vec![],
            n => vec![("certificate-expired", "mx1.example.com", n)],
        };
        reports.push(report(
            "Google Inc.",
            "example.com",
            d,
            1000 + d.unsigned_abs(),
            &failures,
        ));
        reports.push(report("Google Inc.", "example.org", d, 100, &[]));
        if d >= 9 {
            reports.push(report("Microsoft Corporation", "example.com", d, 400, &[]));
        }
    }
    reports.push(report(
        MARKUP_ORG,
        "example.com",
        2,
        5,
        &[("starttls-not-supported", "mx2.example.com", 2)],
    ));
    for (index, r) in reports.iter().enumerate() {
        std::fs::write(dir.join(format!("r{index}.json")), r.to_string()).unwrap();
    }
    std::fs::write(dir.join("broken.json"), br#"{"organization-name": "x", "#).unwrap();
    reports.len()
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots")
}

fn login(browser: &mut Browser, base: &str, user: &str) {
    browser.open(&format!("{base}/login"));
    let script = format!(
        "document.querySelector('[name=user]').value = {user:?};
         document.querySelector('[name=password]').value = {PASSWORD:?};
         document.querySelector('form.login').submit();"
    );
    browser.eval_and_wait(&script);
    assert_eq!(
        browser.url(),
        format!("{base}/"),
        "{user} logged in and sees the overview"
    );
}

fn logout(browser: &mut Browser) {
    browser.eval_and_wait("document.querySelector('form[action=\"/logout\"]').submit()");
}

/// `fetch(path)` from the page, with its cookies: `[status, body]`.
fn fetch(browser: &mut Browser, path: &str) -> (u64, Value) {
    let result = browser.eval(&format!(
        "fetch({path:?}).then(async r => [r.status, await r.text()])"
    ));
    let status = result[0].as_u64().unwrap();
    let body = serde_json::from_str(result[1].as_str().unwrap()).unwrap_or(Value::Null);
    (status, body)
}

fn store_json(args: &[&str], data: &str) -> Value {
    let mut all = args.to_vec();
    all.extend(["--json", "--data-dir", data]);
    let out = mta_sts(&all);
    // `reports readiness` exits 1 when the domain is not ready; its JSON is the answer.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{all:?}: {}",
        support::stderr(&out)
    );
    stdout_json(&out)
}

fn number(text: &Value) -> u64 {
    text.as_str()
        .unwrap_or_else(|| panic!("not text: {text}"))
        .replace(',', "")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {text}"))
}

#[test]
fn dashboard_in_chromium_shows_the_store_numbers_and_keeps_users_to_their_domains() {
    let dir = temp_dir("dashboard-browser");
    let reports = dir.join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    let seeded = seed(&reports);
    let data = dir.join("data");
    let data_s = data.to_str().unwrap().to_owned();
    let out = mta_sts(&[
        "reports",
        "ingest",
        reports.to_str().unwrap(),
        "--data-dir",
        &data_s,
    ]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let said = format!("{}{}", support::stdout(&out), support::stderr(&out));
    assert!(
        said.contains(&format!("{} read: {seeded} stored", seeded + 1)),
        "{said}"
    );

    let hash = support::with_stdin(&["passwd"], format!("{PASSWORD}\n").as_bytes());
    assert!(hash.status.success());
    let hash = support::stdout(&hash).trim().to_owned();
    let addr = free_port();
    let config = dir.join("mta-sts.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[tls]
mode = "none"
[listen]
http = ["{addr}"]
[checks]
enabled = false
[storage]
data_dir = "{data_s}"
[[dashboard.user]]
name = "admin"
password_hash = "{hash}"
[[dashboard.user]]
name = "org-only"
password_hash = "{hash}"
domains = ["example.org"]
[[domain]]
name = "example.com"
mode = "testing"
mx = ["mx1.example.com"]
rua = ["mailto:tlsrpt@example.com"]
[[domain]]
name = "example.org"
mode = "enforce"
mx = ["mx1.example.org"]
"#
        ),
    )
    .unwrap();
    let _server = start_listening(
        bin().args(["serve", "--config", config.to_str().unwrap()]),
        addr,
    );
    let base = format!("http://{addr}");
    let shots = screenshots();
    let mut browser = Browser::start(&dir.join("chromium-profile"));
    browser.viewport(1280, 900, false);

    // Not logged in: every page sends to the login form; the API says 401.
    browser.open(&format!("{base}/domains/example.com"));
    assert_eq!(browser.url(), format!("{base}/login"));
    login(&mut browser, &base, "admin");
    browser.screenshot(&shots.join("overview.png"));

    // The overview's cards hold the store's totals (`reports summary --by domain`).
    let by_domain = store_json(&["reports", "summary", "--since", "30d"], &data_s);
    let cards = browser.eval(
        "[...document.querySelectorAll('[data-domain]')].map(c => ({
            domain: c.dataset.domain,
            level: c.className,
            sessions: c.querySelector('[data-field=sessions]').textContent,
            failed: c.querySelector('[data-field=failed]').textContent }))",
    );
    let cards = cards.as_array().unwrap();
    assert_eq!(cards.len(), 2, "{cards:?}");
    for group in by_domain["groups"].as_array().unwrap() {
        let card = cards
            .iter()
            .find(|c| c["domain"] == group["key"])
            .unwrap_or_else(|| panic!("no card for {}", group["key"]));
        assert_eq!(
            number(&card["sessions"]),
            group["sessions"].as_u64().unwrap()
        );
        assert_eq!(number(&card["failed"]), group["failed"].as_u64().unwrap());
    }
    let com = cards.iter().find(|c| c["domain"] == "example.com").unwrap();
    assert!(
        com["level"].as_str().unwrap().contains("bad"),
        "failures show red: {com}"
    );
    let org = cards.iter().find(|c| c["domain"] == "example.org").unwrap();
    assert!(org["level"].as_str().unwrap().contains("ok"), "{org}");

    // The domain page: totals, failures by result type, the silent reporter, the verdict.
    browser.open(&format!("{base}/domains/example.com?days=30"));
    browser.screenshot(&shots.join("domain.png"));
    let summary = store_json(
        &[
            "reports",
            "summary",
            "--domain",
            "example.com",
            "--since",
            "30d",
        ],
        &data_s,
    );
    let total = &summary["groups"][0];
    let shown = browser.eval(
        "({sessions: document.querySelector('[data-field=sessions]').textContent,
           failed: document.querySelector('[data-field=failed]').textContent,
           readiness: document.querySelector('[data-field=readiness]').textContent,
           results: [...document.querySelectorAll('[data-table=by-result] tr')].slice(1)
              .map(r => [r.cells[0].textContent, r.cells[1].textContent]),
           silent: [...document.querySelectorAll('[data-table=silent] tr')].slice(1)
              .map(r => r.cells[0].textContent),
           bars: document.querySelectorAll('svg.chart g').length,
           title: document.title})",
    );
    assert_eq!(
        number(&shown["sessions"]),
        total["sessions"].as_u64().unwrap()
    );
    assert_eq!(number(&shown["failed"]), total["failed"].as_u64().unwrap());
    assert_eq!(shown["bars"], 30, "a bar for every day of the range");
    let by_result = store_json(
        &[
            "reports",
            "summary",
            "--domain",
            "example.com",
            "--since",
            "30d",
            "--by",
            "result",
        ],
        &data_s,
    );
    let mut expected: Vec<(String, u64)> = by_result["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap().to_owned(),
                g["failed"].as_u64().unwrap(),
            )
        })
        .collect();
    expected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let results: Vec<(String, u64)> = shown["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_owned(), number(&r[1])))
        .collect();
    assert_eq!(results, expected);
    assert_eq!(shown["silent"], json!(["Microsoft Corporation"]));
    let readiness = store_json(
        &["reports", "readiness", "example.com", "--since", "30d"],
        &data_s,
    );
    assert_eq!(readiness["verdict"], "not-yet");
    let fix = readiness["fix_first"].as_str().unwrap();
    assert!(
        shown["readiness"].as_str().unwrap().contains(fix),
        "{} / {fix}",
        shown["readiness"]
    );

    // The reports list with failures only, and the report whose reporter is markup.
    browser.open(&format!("{base}/reports?domain=example.com&failures=1"));
    browser.screenshot(&shots.join("reports.png"));
    let rows = browser.eval(
        "[...document.querySelectorAll('[data-table=reports] tr')].slice(1).map(r => r.cells[1].textContent)",
    );
    // 14 of Google's 20 days have failures, and the markup reporter's one report.
    assert_eq!(rows.as_array().unwrap().len(), 15, "{rows}");
    let listed = store_json(
        &[
            "reports",
            "list",
            "--domain",
            "example.com",
            "--limit",
            "1000",
        ],
        &data_s,
    );
    let marked = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["organization_name"] == MARKUP_ORG)
        .unwrap();
    let id = marked["id"].as_i64().unwrap();
    browser.open(&format!("{base}/reports/{id}"));
    browser.screenshot(&shots.join("report.png"));
    let page = browser.eval(
        "({h1: document.querySelector('h1').textContent, images: document.images.length,
           title: document.title,
           ok: document.querySelector('[data-field=successful]').textContent,
           failed: document.querySelector('[data-field=failed]').textContent,
           json: document.querySelector('[data-field=json]').textContent})",
    );
    assert_eq!(
        page["h1"],
        format!("Report from {MARKUP_ORG}"),
        "markup shown as text"
    );
    assert_eq!(page["images"], 0, "no element made from report text");
    assert_ne!(page["title"], "pwned");
    let shown_report = store_json(&["reports", "show", &id.to_string()], &data_s);
    let summary = &shown_report["report"]["policies"][0]["summary"];
    assert_eq!(
        number(&page["ok"]),
        summary["total-successful-session-count"].as_u64().unwrap()
    );
    assert_eq!(
        number(&page["failed"]),
        summary["total-failure-session-count"].as_u64().unwrap()
    );
    let raw: Value = serde_json::from_str(page["json"].as_str().unwrap()).unwrap();
    assert_eq!(raw["organization-name"], MARKUP_ORG);

    // The quarantine: the broken body with its reason; re-processing it keeps it there.
    browser.open(&format!("{base}/quarantine"));
    let reasons = browser.eval(
        "[...document.querySelectorAll('[data-table=quarantine] tr')].slice(1).map(r => r.cells[3].textContent)",
    );
    assert_eq!(reasons.as_array().unwrap().len(), 1, "{reasons}");
    assert!(
        reasons[0].as_str().unwrap().contains("not JSON"),
        "{reasons}"
    );
    browser.eval_and_wait("document.querySelector('[data-table=quarantine] form').submit()");
    let notice = browser.eval("document.querySelector('.notice').textContent");
    assert!(
        notice.as_str().unwrap().contains("still does not read"),
        "{notice}"
    );
    browser.screenshot(&shots.join("quarantine.png"));

    // A phone, in dark mode.
    browser.viewport(390, 844, true);
    browser.color_scheme(true);
    browser.open(&format!("{base}/domains/example.com"));
    browser.screenshot(&shots.join("domain-phone-dark.png"));
    let width = browser.eval("document.documentElement.scrollWidth");
    assert!(
        width.as_u64().unwrap() <= 390,
        "no sideways scrolling on a phone: {width}"
    );
    browser.color_scheme(false);
    browser.viewport(1280, 900, false);

    // A user limited to example.org sees nothing of example.com: pages and API.
    logout(&mut browser);
    login(&mut browser, &base, "org-only");
    browser.screenshot(&shots.join("overview-org-only.png"));
    let domains =
        browser.eval("[...document.querySelectorAll('[data-domain]')].map(c => c.dataset.domain)");
    assert_eq!(domains, json!(["example.org"]));
    let html = browser.eval("document.body.innerHTML");
    assert!(
        !html.as_str().unwrap().contains("example.com"),
        "no trace of example.com"
    );
    browser.open(&format!("{base}/domains/example.com"));
    assert_eq!(
        browser.eval("document.querySelector('h1').textContent"),
        "Not found"
    );
    browser.open(&format!("{base}/reports/{id}"));
    assert_eq!(
        browser.eval("document.querySelector('h1').textContent"),
        "Not found"
    );
    browser.open(&format!("{base}/reports?domain=example.com"));
    let rows = browser.eval("document.querySelectorAll('[data-table=reports] tr').length");
    assert_eq!(rows, 0, "no example.com reports listed");
    browser.open(&format!("{base}/reports"));
    let listed = browser.eval(
        "[...document.querySelectorAll('[data-table=reports] tr')].slice(1).map(r => r.cells[3].textContent)",
    );
    assert!(!listed.as_array().unwrap().is_empty());
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d == "example.org"),
        "{listed}"
    );
    assert_eq!(fetch(&mut browser, "/api/v1/domains/example.com").0, 404);
    assert_eq!(
        fetch(&mut browser, "/api/v1/domains/example.com/daily").0,
        404
    );
    assert_eq!(fetch(&mut browser, &format!("/api/v1/reports/{id}")).0, 404);
    assert_eq!(fetch(&mut browser, "/api/v1/quarantine").0, 404);
    let (status, domains) = fetch(&mut browser, "/api/v1/domains");
    assert_eq!(status, 200);
    let names: Vec<&Value> = domains["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["domain"])
        .collect();
    assert_eq!(names, [&json!("example.org")]);
    let (_, reports) = fetch(&mut browser, "/api/v1/reports?domain=example.com");
    assert_eq!(reports["reports"], json!([]));
    let (status, metrics) = {
        let r = browser.eval("fetch('/metrics').then(async r => [r.status, await r.text()])");
        (r[0].as_u64().unwrap(), r[1].as_str().unwrap().to_owned())
    };
    assert_eq!(status, 200);
    assert!(metrics.contains("domain=\"example.org\""), "{metrics}");
    assert!(!metrics.contains("example.com"), "{metrics}");
}
