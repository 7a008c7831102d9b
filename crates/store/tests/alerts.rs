//! Alert state on both backends: an open alert raised again queues nothing, a notification
//! within the cool-down is not repeated even after a clear and a re-open, one after it is, and
//! all of it holds across a reopened store (a restart).

use mta_sts_store::{
    AlertFilter, AlertRaised, DeliveryState, DeliveryUpdate, Location, NewAlert, Store,
};

#[macro_use]
mod backends;

use backends::{Backend, run};

on_both_backends!(
    raising_an_open_alert_again_notifies_nothing,
    the_cool_down_holds_across_a_clear_and_a_restart,
    deliveries_are_due_until_recorded,
);

const DAY: i64 = 86_400;

fn alert(at: i64) -> NewAlert {
    NewAlert {
        domain: "Example.COM.".to_owned(),
        kind: "failure_rate_high".to_owned(),
        key: String::new(),
        summary: "7.0 % of sessions failed".to_owned(),
        detail: "70 of 1000 sessions failed over the last day".to_owned(),
        at,
        cool_down: DAY,
        channels: vec!["webhook".to_owned(), "email".to_owned()],
    }
}

async fn raising_an_open_alert_again_notifies_nothing(location: Location) {
    let store = Store::open(&location).await.unwrap();
    assert_eq!(
        store.raise_alert(alert(1000)).await.unwrap(),
        AlertRaised::Notify
    );
    let mut again = alert(2000);
    again.summary = "8.0 % of sessions failed".to_owned();
    assert_eq!(
        store.raise_alert(again).await.unwrap(),
        AlertRaised::AlreadyOpen
    );
    let alerts = store.alerts(&AlertFilter::default()).await.unwrap();
    assert_eq!(alerts.len(), 1);
    let stored = &alerts[0];
    assert_eq!(stored.domain, "example.com");
    assert!(stored.open);
    assert_eq!(stored.summary, "8.0 % of sessions failed");
    assert_eq!(
        (stored.first_seen, stored.opened_at, stored.last_seen),
        (1000, 1000, 2000)
    );
    assert_eq!(stored.notified_at, Some(1000));
    let channels: Vec<&str> = stored
        .deliveries
        .iter()
        .map(|d| d.channel.as_str())
        .collect();
    assert_eq!(channels, ["email", "webhook"]);
    assert!(
        stored
            .deliveries
            .iter()
            .all(|d| d.state == DeliveryState::Pending)
    );
    store.close().await;
}

async fn the_cool_down_holds_across_a_clear_and_a_restart(location: Location) {
    let store = Store::open(&location).await.unwrap();
    assert_eq!(
        store.raise_alert(alert(1000)).await.unwrap(),
        AlertRaised::Notify
    );
    assert!(
        store
            .clear_alert("example.com", "failure_rate_high", "", 5000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .clear_alert("example.com", "failure_rate_high", "", 5001)
            .await
            .unwrap()
    );
    assert!(
        store
            .alerts(&AlertFilter {
                open_only: true,
                ..AlertFilter::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await;

    // A restart: the cool-down is in the store.
    let store = Store::open(&location).await.unwrap();
    assert_eq!(
        store.raise_alert(alert(1000 + DAY - 1)).await.unwrap(),
        AlertRaised::CoolingDown
    );
    let reopened = &store.alerts(&AlertFilter::default()).await.unwrap()[0];
    assert!(reopened.open);
    assert_eq!(reopened.opened_at, 1000 + DAY - 1);
    assert_eq!(reopened.cleared_at, Some(5000));
    assert_eq!(reopened.notified_at, Some(1000), "not notified again");
    assert!(
        store
            .clear_alert("example.com", "failure_rate_high", "", 1000 + DAY)
            .await
            .unwrap()
    );
    assert_eq!(
        store.raise_alert(alert(1000 + DAY)).await.unwrap(),
        AlertRaised::Notify,
        "the cool-down is over"
    );
    let notified = &store.alerts(&AlertFilter::default()).await.unwrap()[0];
    assert_eq!(notified.notified_at, Some(1000 + DAY));
    store.close().await;
}

async fn deliveries_are_due_until_recorded(location: Location) {
    let store = Store::open(&location).await.unwrap();
    store.raise_alert(alert(1000)).await.unwrap();
    let mut other = alert(1000);
    other.domain = "other.example".to_owned();
    other.channels = Vec::new();
    assert_eq!(
        store.raise_alert(other).await.unwrap(),
        AlertRaised::CoolingDown
    );
    let due = |at| AlertFilter {
        due_by: Some(at),
        ..AlertFilter::default()
    };
    assert!(store.alerts(&due(999)).await.unwrap().is_empty());
    let pending = store.alerts(&due(1000)).await.unwrap();
    assert_eq!(
        pending.len(),
        1,
        "an alert without channels has nothing due"
    );
    assert_eq!(pending[0].deliveries.len(), 2);
    let id = ("example.com", "failure_rate_high", "");
    let sent = DeliveryUpdate {
        state: DeliveryState::Sent,
        attempts: 1,
        next_attempt_at: 1001,
        attempted_at: 1001,
        error: None,
    };
    store
        .record_alert_delivery(id, "webhook", sent)
        .await
        .unwrap();
    let retry = DeliveryUpdate {
        state: DeliveryState::Pending,
        attempts: 1,
        next_attempt_at: 1301,
        attempted_at: 1001,
        error: Some("mail via relay: connection refused".to_owned()),
    };
    store
        .record_alert_delivery(id, "email", retry)
        .await
        .unwrap();
    assert!(store.alerts(&due(1300)).await.unwrap().is_empty());
    let later = store.alerts(&due(1301)).await.unwrap();
    assert_eq!(later[0].deliveries.len(), 1);
    assert_eq!(later[0].deliveries[0].channel, "email");
    assert_eq!(later[0].deliveries[0].attempts, 1);
    let mine = AlertFilter {
        domains: Some(vec!["other.example".to_owned()]),
        ..AlertFilter::default()
    };
    let listed = store.alerts(&mine).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].domain, "other.example");
    store.close().await;
}
