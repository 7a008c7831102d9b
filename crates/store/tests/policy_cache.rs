//! The resolver's policy cache on both backends: saved entries survive a reopen, an older entry
//! never replaces a newer one, purges delete and are recorded, pruning keeps valid policies.

use mta_sts_store::{Location, PolicyEntry, Store, StoredPolicy};

#[macro_use]
mod backends;

use backends::{Backend, run};

on_both_backends!(
    saved_entry_survives_a_reopen,
    older_entry_does_not_replace_a_newer_one,
    purge_deletes_and_is_recorded,
    prune_keeps_valid_policies,
);

fn entry(domain: &str, checked_at: i64, id: Option<&str>) -> PolicyEntry {
    PolicyEntry {
        domain: domain.to_owned(),
        checked_at,
        outcome: if id.is_some() { "valid" } else { "no_record" }.to_owned(),
        outcome_detail: None,
        policy: id.map(|id| StoredPolicy {
            id: id.to_owned(),
            body: "version: STSv1\nmode: enforce\nmx: mx.a.example\nmax_age: 86400\n".to_owned(),
            fetched_at: checked_at,
            confirmed_at: checked_at,
            expires_at: checked_at + 86400,
        }),
    }
}

async fn saved_entry_survives_a_reopen(location: Location) {
    let store = Store::open(&location).await.unwrap();
    let saved = entry("a.example", 1000, Some("id1"));
    store.save_policy_entry(saved.clone()).await.unwrap();
    let mut failed = entry("b.example", 1000, None);
    failed.outcome = "dns_failed".into();
    failed.outcome_detail = Some("SERVFAIL".into());
    store.save_policy_entry(failed.clone()).await.unwrap();
    store.close().await;
    let store = Store::open(&location).await.unwrap();
    assert_eq!(
        store.policy_entry("a.example").await.unwrap(),
        Some(saved.clone())
    );
    assert_eq!(store.policy_entry("c.example").await.unwrap(), None);
    assert_eq!(store.policy_entries().await.unwrap(), vec![saved, failed]);
    store.close().await;
}

async fn older_entry_does_not_replace_a_newer_one(location: Location) {
    let store = Store::open(&location).await.unwrap();
    let newer = entry("a.example", 2000, Some("id2"));
    store.save_policy_entry(newer.clone()).await.unwrap();
    store
        .save_policy_entry(entry("a.example", 1000, Some("id1")))
        .await
        .unwrap();
    assert_eq!(store.policy_entry("a.example").await.unwrap(), Some(newer));
    let newest = entry("a.example", 3000, None);
    store.save_policy_entry(newest.clone()).await.unwrap();
    assert_eq!(store.policy_entry("a.example").await.unwrap(), Some(newest));
    store.close().await;
}

async fn purge_deletes_and_is_recorded(location: Location) {
    let store = Store::open(&location).await.unwrap();
    assert_eq!(store.last_policy_purge().await.unwrap(), 0);
    for domain in ["a.example", "b.example", "c.example"] {
        store
            .save_policy_entry(entry(domain, 1000, Some("id")))
            .await
            .unwrap();
    }
    assert_eq!(store.purge_policies(Some("b.example")).await.unwrap(), 1);
    assert_eq!(store.purge_policies(Some("x.example")).await.unwrap(), 0);
    let first = store.last_policy_purge().await.unwrap();
    assert_eq!(store.purge_policies(None).await.unwrap(), 2);
    assert!(store.policy_entries().await.unwrap().is_empty());
    let purges = store.policy_purges_after(0).await.unwrap();
    let domains: Vec<_> = purges.iter().map(|p| p.domain.as_deref()).collect();
    assert_eq!(domains, [Some("b.example"), Some("x.example"), None]);
    let later = store.policy_purges_after(first).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].domain, None);
    assert_eq!(store.last_policy_purge().await.unwrap(), later[0].id);
    store.close().await;
}

async fn prune_keeps_valid_policies(location: Location) {
    let store = Store::open(&location).await.unwrap();
    store
        .save_policy_entry(entry("valid.example", 1000, Some("id")))
        .await
        .unwrap();
    store
        .save_policy_entry(entry("none.example", 1000, None))
        .await
        .unwrap();
    store
        .save_policy_entry(entry("recent.example", 5000, None))
        .await
        .unwrap();
    assert_eq!(store.prune_policy_entries(2000).await.unwrap(), 1);
    let domains: Vec<_> = store
        .policy_entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.domain)
        .collect();
    assert_eq!(domains, ["recent.example", "valid.example"]);
    // Once its max_age has run out, a policy goes too.
    assert_eq!(store.prune_policy_entries(1000 + 86400).await.unwrap(), 2);
    assert!(store.policy_entries().await.unwrap().is_empty());
    store.close().await;
}
