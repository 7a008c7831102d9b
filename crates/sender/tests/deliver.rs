//! Delivery against real peers on loopback: a testnet SMTP server with STARTTLS as the relay,
//! and an address where nothing listens for an https: receiver that is down.

use mta_sts_sender::tlsrpt::{DeliveryOptions, Reporter, build_day, deliver_due};
use mta_sts_store::{
    CollectedInterval, CollectedSessions, DeliveryState, Location, ReportScope, Store,
};
use mta_sts_testnet::{Lab, SmtpBehaviour, refused_addr};
use mta_sts_tlsrpt::report::{AppliedPolicy, PolicyType, Report, UtcDay, decompress};

fn day() -> UtcDay {
    UtcDay::parse("2024-01-09").unwrap()
}

async fn store_with(dir: &std::path::Path, records: &[(&str, &str)]) -> Store {
    let store = Store::open(&Location::DataDirectory(dir.join("data")))
        .await
        .unwrap();
    let sessions = records
        .iter()
        .map(|(domain, record)| CollectedSessions {
            scope: ReportScope {
                day: day(),
                domain: (*domain).to_owned(),
                tlsrpt_record: (*record).to_owned(),
            },
            policy: AppliedPolicy {
                policy_type: PolicyType::NoPolicyFound,
                policy_string: vec![],
                policy_domain: (*domain).to_owned(),
                mx_host: vec![],
            },
            successful: 9,
            failed: 1,
        })
        .collect();
    let interval = CollectedInterval {
        id: "one".into(),
        datagrams: 10,
        sessions,
        ..CollectedInterval::default()
    };
    store.commit_collected(interval).await.unwrap();
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailto_goes_through_the_relay_with_starttls_and_the_rfc_headers() {
    let lab = Lab::new();
    let relay_ip = mta_sts_testnet::next_loopback_ip().to_string();
    let identity = lab.ca().issue(&[relay_ip.as_str()]).unwrap();
    let listener = tokio::net::TcpListener::bind((relay_ip.as_str(), 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let relay = mta_sts_testnet::SmtpServer::new("relay.test", SmtpBehaviour::starttls(identity))
        .start_on(listener)
        .unwrap();
    let down = refused_addr().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let https = format!("https://reports.example.net:{}/v1", down.port());
    let record = format!("v=TLSRPTv1; rua=mailto:tls@example.com,{https}");
    let store = store_with(dir.path(), &[("example.com", record.as_str())]).await;
    let reporter = Reporter::new("Example Sender", "tlsrpt@sender.example");
    let mut options = DeliveryOptions::new(reporter.clone());
    options.smtp_relay = Some((relay_ip.clone(), port));
    options.extra_roots = vec![lab.ca().root_der().clone()];
    options.resolve = vec![("reports.example.net".into(), down.ip())];
    let now = day().next().start_unix_seconds() + 60;
    build_day(&store, day(), &reporter, now).await.unwrap();
    let run = deliver_due(&store, &options, now).await.unwrap();
    assert_eq!((run.sent, run.retrying), (1, 1));

    let sessions = relay.sessions();
    let session = sessions.iter().find(|s| !s.messages.is_empty()).unwrap();
    assert!(session.tls_established, "STARTTLS before the mail");
    let message = &session.messages[0];
    assert_eq!(message.rcpt_to, ["TO:<tls@example.com>"]);
    let text = String::from_utf8_lossy(&message.data);
    for header in [
        "TLS-Report-Domain: example.com\r\n",
        "TLS-Report-Submitter: sender.example\r\n",
        "TLS-Required: No\r\n",
        "Auto-Submitted: auto-generated\r\n",
        "Content-Type: multipart/report; report-type=\"tlsrpt\"",
        "Content-Type: application/tlsrpt+gzip\r\n",
        "Subject: Report Domain: example.com Submitter: sender.example Report-ID: <",
        "filename=\"sender.example!example.com!1704758400!1704844799!",
    ] {
        assert!(text.contains(header), "{header:?} missing in\n{text}");
    }
    // The attachment is the report, gzipped.
    let base64_body: String = text
        .split("Content-Transfer-Encoding: base64\r\n")
        .nth(1)
        .unwrap()
        .split("\r\n\r\n")
        .nth(1)
        .unwrap()
        .split("--")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    use base64::Engine as _;
    let gzip = base64::engine::general_purpose::STANDARD
        .decode(base64_body)
        .unwrap();
    let json = decompress(&gzip, 1 << 20).unwrap();
    let report = Report::from_json(&json).unwrap().report;
    assert_eq!(report.policies[0].summary.total_successful_session_count, 9);

    let deliveries = store.deliveries(Some(day()), None).await.unwrap();
    let down_delivery = deliveries.iter().find(|d| d.destination == https).unwrap();
    assert_eq!(down_delivery.state, DeliveryState::Pending);
    assert_eq!(down_delivery.attempts, 1);
    assert_eq!(
        down_delivery.next_attempt_at,
        now + 300,
        "first retry after 5 minutes"
    );
    assert!(
        down_delivery
            .last_error
            .as_deref()
            .unwrap()
            .contains("connect")
    );
    // Nothing is due before the back-off ends; then it is tried again.
    let early = deliver_due(&store, &options, now + 299).await.unwrap();
    assert_eq!(early.retrying + early.sent, 0);
    let later = deliver_due(&store, &options, now + 300).await.unwrap();
    assert_eq!(later.retrying, 1);
    // Past 24 hours after the report was built, a failure is final.
    let last = deliver_due(&store, &options, i64::MAX / 4).await.unwrap();
    assert_eq!(last.failed, 1);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppressed_and_oversized_destinations_are_not_sent_to() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(
        dir.path(),
        &[
            ("a.example", "v=TLSRPTv1; rua=mailto:tls@quiet.example"),
            ("b.example", "v=TLSRPTv1; rua=mailto:tls@b.example"),
        ],
    )
    .await;
    let reporter = Reporter::new("Example Sender", "tlsrpt@sender.example");
    let mut options = DeliveryOptions::new(reporter.clone());
    options.suppressed = vec!["quiet.example".into()];
    options.max_mail_size = 10;
    build_day(&store, day(), &reporter, 0).await.unwrap();
    let run = deliver_due(&store, &options, 0).await.unwrap();
    assert_eq!(run.suppressed, 2);
    let errors: Vec<_> = store
        .deliveries(Some(day()), None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.state, d.last_error.unwrap_or_default()))
        .collect();
    assert_eq!(
        errors[0],
        (DeliveryState::Suppressed, "on the suppression list".into())
    );
    assert!(errors[1].1.contains("over the 10-byte limit"), "{errors:?}");
    store.close().await;
}
