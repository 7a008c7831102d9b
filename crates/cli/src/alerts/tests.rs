//! The engine against a real webhook receiver (HTTPS, test CA) and a real SMTP sink with
//! STARTTLS (testnet): one notification per event, none during the cool-down, one again after
//! it, none for an alert raised while open, the same after a restart; a receiver that is down
//! is retried with back-off. Time is the engine's injected clock, so nothing sleeps.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use mta_sts_server::{AlertSmtp, AlertsConfig, DomainStats, Tally};
use mta_sts_store::{AlertFilter, DeliveryState, Location, Store};
use mta_sts_testnet::{SmtpBehaviour, SmtpHandle, SmtpServer, TestCa, WebhookHandle};

use super::deliver::{Channels, mail};
use super::reports::{Rules, conditions};
use super::{AlertEvent, AlertKind, Alerts};

const HOUR: i64 = 3600;
const START: i64 = 1_704_844_800; // 2024-01-10T00:00:00Z

struct Peers {
    ca: TestCa,
    webhook: WebhookHandle,
    relay: SmtpHandle,
    dir: tempfile::TempDir,
}

impl Peers {
    async fn start(webhook_status: u16) -> Peers {
        let ca = TestCa::new("alerts test CA");
        let webhook = WebhookHandle::start(&ca, webhook_status).await.unwrap();
        let relay_ip = mta_sts_testnet::next_loopback_ip().to_string();
        let identity = ca.issue(&[relay_ip.as_str()]).unwrap();
        let listener = tokio::net::TcpListener::bind((relay_ip.as_str(), 0))
            .await
            .unwrap();
        let relay = SmtpServer::new("relay.test", SmtpBehaviour::starttls(identity))
            .start_on(listener)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.root_pem()).unwrap();
        std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
        Peers {
            ca,
            webhook,
            relay,
            dir,
        }
    }

    fn config(&self) -> AlertsConfig {
        AlertsConfig {
            webhook: Some(self.webhook.url()),
            webhook_token_file: Some(self.dir.path().join("token")),
            smtp: Some(AlertSmtp {
                host: self.relay.ip().to_string(),
                port: self.relay.addr().port(),
                starttls: true,
                username: None,
                password_file: None,
                from: "alerts@example.com".to_owned(),
                to: vec!["admin@example.com".to_owned()],
            }),
            ca_file: vec![self.dir.path().join("ca.pem")],
            dashboard_url: Some("https://dash.example.com".to_owned()),
            ..AlertsConfig::default()
        }
    }

    fn location(&self) -> Location {
        Location::DataDirectory(self.dir.path().join("data"))
    }

    fn mails(&self) -> Vec<String> {
        self.relay
            .sessions()
            .iter()
            .flat_map(|session| session.messages.clone())
            .map(|message| String::from_utf8_lossy(&message.data).into_owned())
            .collect()
    }
}

async fn engine(store: &Arc<Store>, config: &AlertsConfig, clock: &Arc<AtomicI64>) -> Alerts {
    let clock = Arc::clone(clock);
    Alerts::with_clock(
        Arc::clone(store),
        config,
        Channels::from_config(config).unwrap(),
        Arc::new(move || clock.load(Ordering::SeqCst)),
    )
}

fn event() -> AlertEvent {
    AlertEvent {
        domain: "example.com".to_owned(),
        kind: AlertKind::FailureRateHigh,
        key: String::new(),
        summary: "7.0 % of sessions failed".to_owned(),
        detail: "70 of 1000 sessions failed".to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_notification_per_event_none_during_the_cool_down_and_after_a_restart() {
    let peers = Peers::start(200).await;
    let config = peers.config();
    let clock = Arc::new(AtomicI64::new(START));
    let store = Arc::new(Store::open(&peers.location()).await.unwrap());
    let alerts = engine(&store, &config, &clock).await;

    alerts.raise(event()).await.unwrap();
    alerts.raise(event()).await.unwrap();
    assert_eq!(alerts.deliver_due().await.unwrap(), 2);
    assert_eq!(alerts.deliver_due().await.unwrap(), 0);
    let posts = peers.webhook.received();
    assert_eq!(
        posts.len(),
        1,
        "one webhook call for one event raised twice"
    );
    assert_eq!(
        peers.mails().len(),
        1,
        "one mail for one event raised twice"
    );

    let post = &posts[0];
    assert_eq!(post.method, "POST");
    assert_eq!(post.header("content-type"), Some("application/json"));
    assert_eq!(post.header("authorization"), Some("Bearer s3cret"));
    let json: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
    assert_eq!(json["domain"], "example.com");
    assert_eq!(json["kind"], "failure_rate_high");
    assert_eq!(json["key"], "");
    assert_eq!(json["summary"], "7.0 % of sessions failed");
    assert_eq!(json["detail"], "70 of 1000 sessions failed");
    assert_eq!(json["opened_at"], "2024-01-10T00:00:00Z");
    assert_eq!(
        json["dashboard_url"],
        "https://dash.example.com/domains/example.com"
    );
    let mail = &peers.mails()[0];
    assert!(mail.contains("Subject: [mta-sts] example.com: 7.0 % of sessions failed\r\n"));
    assert!(mail.contains("To: admin@example.com\r\n"));
    assert!(mail.contains("70 of 1000 sessions failed"));
    assert!(peers.relay.sessions().iter().all(|s| s.tls_established));

    // Cleared and open again an hour later: within the cool-down, nothing is sent.
    clock.store(START + HOUR, Ordering::SeqCst);
    alerts
        .clear("example.com", AlertKind::FailureRateHigh, "")
        .await
        .unwrap();
    alerts.raise(event()).await.unwrap();
    assert_eq!(alerts.deliver_due().await.unwrap(), 0);

    // A restart: a new store handle and engine; the cool-down is in the store.
    drop(alerts);
    Arc::into_inner(store).unwrap().close().await;
    let store = Arc::new(Store::open(&peers.location()).await.unwrap());
    let alerts = engine(&store, &config, &clock).await;
    alerts.raise(event()).await.unwrap();
    clock.store(START + 23 * HOUR, Ordering::SeqCst);
    alerts
        .clear("example.com", AlertKind::FailureRateHigh, "")
        .await
        .unwrap();
    alerts.raise(event()).await.unwrap();
    assert_eq!(alerts.deliver_due().await.unwrap(), 0);
    assert_eq!(peers.webhook.received().len(), 1);
    assert_eq!(peers.mails().len(), 1);

    // Past the cool-down, a re-opened alert is notified again, once.
    clock.store(START + 24 * HOUR, Ordering::SeqCst);
    alerts
        .clear("example.com", AlertKind::FailureRateHigh, "")
        .await
        .unwrap();
    alerts.raise(event()).await.unwrap();
    alerts.raise(event()).await.unwrap();
    assert_eq!(alerts.deliver_due().await.unwrap(), 2);
    assert_eq!(peers.webhook.received().len(), 2);
    assert_eq!(peers.mails().len(), 2);

    // Another key of the same kind is another alert.
    let mut other = event();
    other.key = "mx2.example.com".to_owned();
    alerts.raise(other).await.unwrap();
    assert_eq!(alerts.deliver_due().await.unwrap(), 2);
    assert_eq!(peers.webhook.received().len(), 3);
    drop(alerts);
    Arc::into_inner(store).unwrap().close().await;
    drop(peers.ca);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_is_retried_with_back_off_and_holds_nothing_up() {
    let peers = Peers::start(503).await;
    let mut config = peers.config();
    config.smtp = None;
    let clock = Arc::new(AtomicI64::new(START));
    let store = Arc::new(Store::open(&peers.location()).await.unwrap());
    let alerts = engine(&store, &config, &clock).await;
    alerts.raise(event()).await.unwrap();
    assert_eq!(alerts.deliver_due().await.unwrap(), 0);
    let stored = store.alerts(&AlertFilter::default()).await.unwrap();
    let delivery = &stored[0].deliveries[0];
    assert_eq!(delivery.state, DeliveryState::Pending);
    assert_eq!(delivery.attempts, 1);
    assert_eq!(
        delivery.next_attempt_at,
        START + 300,
        "first retry after 5 minutes"
    );
    assert!(delivery.last_error.as_deref().unwrap().contains("503"));
    // Not due before the back-off ends; tried again once it has.
    clock.store(START + 299, Ordering::SeqCst);
    alerts.deliver_due().await.unwrap();
    assert_eq!(peers.webhook.received().len(), 1);
    clock.store(START + 300, Ordering::SeqCst);
    alerts.deliver_due().await.unwrap();
    assert_eq!(peers.webhook.received().len(), 2);
    // After a day of failures, it is given up.
    clock.store(START + 25 * HOUR, Ordering::SeqCst);
    alerts.deliver_due().await.unwrap();
    let stored = store.alerts(&AlertFilter::default()).await.unwrap();
    assert_eq!(stored[0].deliveries[0].state, DeliveryState::Failed);
    drop(alerts);
    Arc::into_inner(store).unwrap().close().await;
}

#[test]
fn text_from_the_network_cannot_add_a_mail_header() {
    let alert = mta_sts_store::StoredAlert {
        domain: "example.com".to_owned(),
        kind: "reporter_silent".to_owned(),
        key: "evil\r\nBcc: x@example.net".to_owned(),
        open: true,
        summary: "reporter evil\r\nBcc: x@example.net silent".to_owned(),
        detail: "d".to_owned(),
        first_seen: START,
        opened_at: START,
        last_seen: START,
        cleared_at: None,
        notified_at: Some(START),
        deliveries: Vec::new(),
    };
    let text = String::from_utf8(mail(&alert, "a@example.com", &[], None, START)).unwrap();
    let head = text.split("\r\n\r\n").next().unwrap();
    assert!(!head.lines().any(|line| line.starts_with("Bcc")), "{head}");
}

fn tally(day: &str, successful: u64, failures: &[(&str, u64)]) -> Tally {
    Tally {
        key: day.to_owned(),
        reports: 1,
        successful: Some(successful),
        failed: failures.iter().map(|(_, n)| n).sum(),
        failure_types: failures
            .iter()
            .map(|(t, n)| ((*t).to_owned(), *n))
            .collect(),
    }
}

fn rules() -> Rules {
    Rules {
        failure_rate_percent: 5.0,
        min_sessions: 20,
        new_failure_days: 30,
    }
}

fn kinds(events: &[AlertEvent]) -> Vec<(AlertKind, &str)> {
    events.iter().map(|e| (e.kind, e.key.as_str())).collect()
}

#[test]
fn a_failure_type_seen_in_the_days_before_is_not_new() {
    let now = START + 10 * HOUR; // 2024-01-10; yesterday's reports count as recent
    let stats = DomainStats {
        daily: vec![
            tally("2024-01-02", 1000, &[("certificate-expired", 1)]),
            tally(
                "2024-01-09",
                1000,
                &[("certificate-expired", 2), ("starttls-not-supported", 3)],
            ),
        ],
        ..DomainStats::default()
    };
    assert_eq!(
        kinds(&conditions("example.com", &stats, &rules(), now)),
        [(AlertKind::NewFailureType, "starttls-not-supported")]
    );
}

#[test]
fn the_failure_rate_counts_above_the_threshold_with_enough_sessions() {
    let now = START + 10 * HOUR;
    let high = DomainStats {
        daily: vec![
            tally("2024-01-01", 100, &[("validation-failure", 50)]),
            tally("2024-01-09", 90, &[("validation-failure", 6)]),
            tally("2024-01-10", 0, &[("validation-failure", 1)]),
        ],
        ..DomainStats::default()
    };
    let events = conditions("example.com", &high, &rules(), now);
    assert_eq!(kinds(&events), [(AlertKind::FailureRateHigh, "")]);
    assert_eq!(events[0].summary, "7.2 % of sessions failed");
    let at_threshold = DomainStats {
        daily: vec![
            tally("2024-01-01", 100, &[("validation-failure", 50)]),
            tally("2024-01-09", 95, &[("validation-failure", 5)]),
        ],
        ..DomainStats::default()
    };
    assert!(conditions("example.com", &at_threshold, &rules(), now).is_empty());
    let too_few = DomainStats {
        daily: vec![
            tally("2024-01-01", 1, &[("validation-failure", 1)]),
            tally("2024-01-09", 10, &[("validation-failure", 9)]),
        ],
        ..DomainStats::default()
    };
    assert!(conditions("example.com", &too_few, &rules(), now).is_empty());
}

#[test]
fn a_reporter_silent_for_seven_days_is_an_alert() {
    let now = START;
    let stats = DomainStats {
        last_report: [
            ("Old Org".to_owned(), now - 7 * 86_400),
            ("Recent Org".to_owned(), now - 6 * 86_400),
        ]
        .into_iter()
        .collect(),
        ..DomainStats::default()
    };
    let events = conditions("example.com", &stats, &rules(), now);
    assert_eq!(kinds(&events), [(AlertKind::ReporterSilent, "Old Org")]);
    assert_eq!(events[0].summary, "reporter Old Org silent for 7 days");
}

#[test]
fn kinds_have_stable_snake_case_names() {
    let names: Vec<String> = AlertKind::ALL
        .iter()
        .map(|kind| {
            serde_json::to_value(kind)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "mx_changed_policy_not",
            "policy_changed_id_not",
            "certificate_expiring",
            "policy_fetch_failing",
            "new_failure_type",
            "failure_rate_high",
            "reporter_silent"
        ]
    );
}
