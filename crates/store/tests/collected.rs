//! The sending side's rows on both backends: collected intervals, outgoing reports and their
//! deliveries.

use mta_sts_store::{
    CollectedFailure, CollectedInterval, CollectedSessions, DeliveryState, DeliveryUpdate,
    InvalidDatagram, Location, NewOutgoingReport, ReportScope, Store,
};
use mta_sts_tlsrpt::report::{AppliedPolicy, FailureDetail, PolicyType, ResultType, UtcDay};

#[macro_use]
mod backends;

use backends::{Backend, run};

on_both_backends!(
    committed_intervals_add_up_per_day_and_policy,
    an_interval_committed_twice_counts_once,
    invalid_datagrams_are_counted_and_kept,
    outgoing_report_is_stored_once_with_a_delivery_per_destination,
    delivery_outcomes_are_recorded_and_due_ones_listed,
);

fn scope(day: &str, domain: &str) -> ReportScope {
    ReportScope {
        day: UtcDay::parse(day).unwrap(),
        domain: domain.to_owned(),
        tlsrpt_record: format!("v=TLSRPTv1; rua=mailto:tlsrpt@{domain}"),
    }
}

fn sts(domain: &str) -> AppliedPolicy {
    AppliedPolicy {
        policy_type: PolicyType::Sts,
        policy_string: vec!["version: STSv1".into(), "mode: enforce".into()],
        policy_domain: domain.to_owned(),
        mx_host: vec![format!("mx.{domain}")],
    }
}

fn expired(count: u64) -> FailureDetail {
    FailureDetail {
        result_type: ResultType::CertificateExpired,
        sending_mta_ip: Some("192.0.2.1".into()),
        receiving_mx_hostname: Some("mx.a.example".into()),
        receiving_mx_helo: None,
        receiving_ip: Some("198.51.100.1".into()),
        failed_session_count: count,
        additional_information: None,
        failure_reason_code: None,
    }
}

fn interval(id: &str, day: &str, successful: u64, failed: u64) -> CollectedInterval {
    CollectedInterval {
        id: id.to_owned(),
        datagrams: successful + failed,
        sessions: vec![CollectedSessions {
            scope: scope(day, "a.example"),
            policy: sts("a.example"),
            successful,
            failed,
        }],
        failures: vec![CollectedFailure {
            scope: scope(day, "a.example"),
            policy: sts("a.example"),
            detail: expired(failed),
        }],
        ..CollectedInterval::default()
    }
}

async fn committed_intervals_add_up_per_day_and_policy(location: Location) {
    let store = Store::open(&location).await.unwrap();
    assert!(
        store
            .commit_collected(interval("i1", "2024-01-09", 5, 2))
            .await
            .unwrap()
    );
    assert!(
        store
            .commit_collected(interval("i2", "2024-01-09", 3, 1))
            .await
            .unwrap()
    );
    assert!(
        store
            .commit_collected(interval("i3", "2024-01-10", 7, 0))
            .await
            .unwrap()
    );
    let day = UtcDay::parse("2024-01-09").unwrap();
    let reports = store.collected_reports(day).await.unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].scope, scope("2024-01-09", "a.example"));
    let policy = &reports[0].policies[0];
    assert_eq!((policy.successful, policy.failed), (8, 3));
    assert_eq!(policy.policy, sts("a.example"));
    assert_eq!(policy.failures, [expired(3)]);
    assert_eq!(store.collected_days().await.unwrap(), [day, day.next()]);
    let totals = store.collector_totals().await.unwrap();
    assert_eq!(
        (totals.intervals, totals.datagrams, totals.invalid),
        (3, 18, 0)
    );
    store.close().await;
}

async fn an_interval_committed_twice_counts_once(location: Location) {
    let store = Store::open(&location).await.unwrap();
    assert!(
        store
            .commit_collected(interval("same", "2024-01-09", 5, 2))
            .await
            .unwrap()
    );
    assert!(
        !store
            .commit_collected(interval("same", "2024-01-09", 5, 2))
            .await
            .unwrap()
    );
    let reports = store
        .collected_reports(UtcDay::parse("2024-01-09").unwrap())
        .await
        .unwrap();
    assert_eq!(
        (
            reports[0].policies[0].successful,
            reports[0].policies[0].failed
        ),
        (5, 2)
    );
    store.close().await;
}

async fn invalid_datagrams_are_counted_and_kept(location: Location) {
    let store = Store::open(&location).await.unwrap();
    let kept = InvalidDatagram {
        received_at: 1_704_758_400,
        bytes: b"\xff not json".to_vec(),
        reason: "datagram is not a libtlsrpt datagram".into(),
    };
    let interval = CollectedInterval {
        id: "bad".into(),
        datagrams: 10,
        invalid: 10,
        kept_invalid: vec![kept.clone()],
        ..CollectedInterval::default()
    };
    store.commit_collected(interval).await.unwrap();
    assert_eq!(store.invalid_datagrams(100).await.unwrap(), [kept]);
    assert_eq!(store.collector_totals().await.unwrap().invalid, 10);
    store.close().await;
}

fn outgoing(day: &str) -> NewOutgoingReport {
    NewOutgoingReport {
        scope: scope(day, "a.example"),
        report_id: format!("{day}.a.example@sender.example"),
        json: b"{}".to_vec(),
        destinations: vec![
            "mailto:tlsrpt@a.example".into(),
            "https://tlsrpt.a.example/v1".into(),
        ],
    }
}

async fn outgoing_report_is_stored_once_with_a_delivery_per_destination(location: Location) {
    let store = Store::open(&location).await.unwrap();
    let first = store
        .add_outgoing_report(outgoing("2024-01-09"), 100)
        .await
        .unwrap();
    let again = store
        .add_outgoing_report(outgoing("2024-01-09"), 200)
        .await
        .unwrap();
    assert_eq!(first, again);
    let day = UtcDay::parse("2024-01-09").unwrap();
    let reports = store.outgoing_reports(day).await.unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].report_id, "2024-01-09.a.example@sender.example");
    let deliveries = store.deliveries(Some(day), None).await.unwrap();
    let destinations: Vec<_> = deliveries
        .iter()
        .map(|d| (d.destination.as_str(), d.state, d.next_attempt_at))
        .collect();
    assert_eq!(
        destinations,
        [
            ("https://tlsrpt.a.example/v1", DeliveryState::Pending, 100),
            ("mailto:tlsrpt@a.example", DeliveryState::Pending, 100),
        ]
    );
    store.close().await;
}

async fn delivery_outcomes_are_recorded_and_due_ones_listed(location: Location) {
    let store = Store::open(&location).await.unwrap();
    let key = store
        .add_outgoing_report(outgoing("2024-01-09"), 100)
        .await
        .unwrap();
    assert_eq!(store.deliveries(None, Some(99)).await.unwrap().len(), 0);
    assert_eq!(store.deliveries(None, Some(100)).await.unwrap().len(), 2);
    let sent = DeliveryUpdate {
        state: DeliveryState::Sent,
        attempts: 1,
        next_attempt_at: 100,
        attempted_at: 100,
        error: None,
    };
    store
        .record_delivery(key, "mailto:tlsrpt@a.example", sent)
        .await
        .unwrap();
    let retry = DeliveryUpdate {
        state: DeliveryState::Pending,
        attempts: 1,
        next_attempt_at: 400,
        attempted_at: 100,
        error: Some("connection refused".into()),
    };
    store
        .record_delivery(key, "https://tlsrpt.a.example/v1", retry)
        .await
        .unwrap();
    assert_eq!(store.deliveries(None, Some(399)).await.unwrap().len(), 0);
    let due = store.deliveries(None, Some(400)).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].last_error.as_deref(), Some("connection refused"));
    assert_eq!(due[0].last_attempt_at, Some(100));
    let all = store.deliveries(None, None).await.unwrap();
    assert_eq!(all[1].state, DeliveryState::Sent);
    store.close().await;
}
