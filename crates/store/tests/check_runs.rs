//! The history of scheduled checks on both backends: what is stored reads back (newest first,
//! paged), the latest run of each domain, the report JSON, and retention that keeps each
//! domain's latest run.

use mta_sts_store::{
    CertExpiry, CheckRun, CheckState, Drift, DriftKind, Location, Store, policy_hash,
};

#[macro_use]
mod backends;

use backends::{Backend, run};

on_both_backends!(
    runs_read_back_newest_first_and_paged,
    the_latest_run_of_each_domain_and_its_report,
    retention_keeps_the_latest_run_of_each_domain,
);

fn new_run(domain: &str, started_at: i64) -> CheckRun {
    CheckRun {
        id: 0,
        domain: domain.to_owned(),
        started_at,
        finished_at: started_at + 2,
        verdict: "testing".to_owned(),
        summary: "testing: senders deliver anyway".to_owned(),
        incomplete: None,
        errors: 0,
        warnings: 1,
        state: CheckState {
            policy_id: Some("20240101".to_owned()),
            policy_mode: Some("testing".to_owned()),
            policy_hash: Some(policy_hash(b"version: STSv1\n")),
            policy_error: None,
            mx: Some(vec![
                "mx1.example.com".to_owned(),
                "mx2.example.com".to_owned(),
            ]),
            certificates: vec![CertExpiry {
                host: format!("mta-sts.{domain}"),
                not_after: started_at + 86_400,
            }],
        },
        drift: vec![Drift {
            domain: domain.to_owned(),
            kind: DriftKind::CertificateExpiring,
            key: format!("mta-sts.{domain}"),
            summary: "expires".to_owned(),
            detail: "renew it".to_owned(),
        }],
    }
}

/// Stores `run` with a report that says which it is.
async fn save(store: &Store, run: CheckRun) {
    let report = format!(r#"{{"domain":"{}","at":{}}}"#, run.domain, run.started_at);
    store.save_check_run(run, report).await.unwrap();
}

async fn runs_read_back_newest_first_and_paged(location: Location) {
    let store = Store::open(&location).await.unwrap();
    for at in [1000, 3000, 2000] {
        save(&store, new_run("a.example", at)).await;
    }
    // The same run again (a retried write) is kept once.
    save(&store, new_run("a.example", 2000)).await;
    let runs = store.check_runs("a.example", 0, 10).await.unwrap();
    let starts: Vec<i64> = runs.iter().map(|r| r.started_at).collect();
    assert_eq!(starts, [3000, 2000, 1000]);
    assert_eq!(
        runs[0],
        CheckRun {
            id: runs[0].id,
            ..new_run("a.example", 3000)
        }
    );
    let page: Vec<i64> = store
        .check_runs("a.example", 1, 1)
        .await
        .unwrap()
        .iter()
        .map(|r| r.started_at)
        .collect();
    assert_eq!(page, [2000]);
    assert!(
        store
            .check_runs("b.example", 0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A failed check: nothing known but why.
    let failed = CheckRun {
        incomplete: Some("the resolver did not answer".to_owned()),
        state: CheckState {
            policy_error: Some("timed out\0".to_owned()),
            ..CheckState::default()
        },
        drift: Vec::new(),
        ..new_run("a.example", 4000)
    };
    save(&store, failed).await;
    let latest = &store.check_runs("a.example", 0, 1).await.unwrap()[0];
    assert_eq!(
        latest.incomplete.as_deref(),
        Some("the resolver did not answer")
    );
    assert_eq!(latest.state.mx, None);
    assert_eq!(
        latest.state.policy_error.as_deref(),
        Some("timed out\u{FFFD}")
    );
    store.close().await;
}

async fn the_latest_run_of_each_domain_and_its_report(location: Location) {
    let store = Store::open(&location).await.unwrap();
    for (domain, at) in [("b.example", 10), ("a.example", 20), ("b.example", 30)] {
        save(&store, new_run(domain, at)).await;
    }
    let latest = store.latest_check_runs().await.unwrap();
    let seen: Vec<(&str, i64)> = latest
        .iter()
        .map(|r| (r.domain.as_str(), r.started_at))
        .collect();
    assert_eq!(seen, [("a.example", 20), ("b.example", 30)]);
    let report = store
        .check_report("b.example", latest[1].id)
        .await
        .unwrap()
        .expect("report");
    assert_eq!(report, r#"{"domain":"b.example","at":30}"#);
    // Another domain's id gives nothing.
    assert_eq!(
        store.check_report("a.example", latest[1].id).await.unwrap(),
        None
    );
    store.close().await;
}

async fn retention_keeps_the_latest_run_of_each_domain(location: Location) {
    let store = Store::open(&location).await.unwrap();
    for (domain, at) in [
        ("a.example", 100),
        ("a.example", 200),
        ("a.example", 300),
        ("b.example", 100),
    ] {
        save(&store, new_run(domain, at)).await;
    }
    assert_eq!(store.purge_check_runs(250).await.unwrap(), 2);
    let a: Vec<i64> = store
        .check_runs("a.example", 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.started_at)
        .collect();
    assert_eq!(a, [300]);
    // b.example's only run is old, and kept: the domain's latest state stays known.
    assert_eq!(store.check_runs("b.example", 0, 10).await.unwrap().len(), 1);
    assert_eq!(store.purge_check_runs(250).await.unwrap(), 0);
    store.close().await;
}
