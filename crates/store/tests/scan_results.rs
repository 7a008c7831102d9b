//! Results of `scan --database` on both backends: what is stored reads back, the same result
//! stored twice is kept once, and scanners writing at once lose nothing.

use mta_sts_store::{Location, ScanResult, Store};

#[macro_use]
mod backends;

use backends::{Backend, run};

on_both_backends!(
    results_read_back_and_a_repeat_is_kept_once,
    scanners_writing_at_once_lose_nothing,
);

fn result(domain: &str, checked_at: i64, scanner: &str) -> ScanResult {
    ScanResult {
        domain: domain.to_owned(),
        checked_at,
        scanner: scanner.to_owned(),
        status: "protected".to_owned(),
        errors: 0,
        warnings: 2,
        report: format!("{{\"domain\":\"{domain}\"}}"),
    }
}

async fn results_read_back_and_a_repeat_is_kept_once(location: Location) {
    let store = Store::open(&location).await.unwrap();
    let first = result("a.example", 1000, "scanner1 1/2");
    store.save_scan_result(first.clone()).await.unwrap();
    store.save_scan_result(first.clone()).await.unwrap();
    let later = result("a.example", 2000, "scanner1 1/2");
    store.save_scan_result(later.clone()).await.unwrap();
    assert_eq!(
        store.scan_results("a.example").await.unwrap(),
        vec![first, later]
    );
    assert!(store.scan_results("b.example").await.unwrap().is_empty());
    store.close().await;
}

async fn scanners_writing_at_once_lose_nothing(location: Location) {
    let first = Store::open(&location).await.unwrap();
    let second = Store::open(&location).await.unwrap();
    let writes = (0..200).map(|i| {
        let store = if i % 2 == 0 { &first } else { &second };
        store.save_scan_result(result(
            &format!("d{}.example", i / 2),
            1000,
            &format!("s{}", i % 2),
        ))
    });
    for outcome in futures_util::future::join_all(writes).await {
        outcome.unwrap();
    }
    for d in 0..100 {
        let rows = first.scan_results(&format!("d{d}.example")).await.unwrap();
        let scanners: Vec<&str> = rows.iter().map(|r| r.scanner.as_str()).collect();
        assert_eq!(scanners, ["s0", "s1"], "d{d}.example");
    }
    first.close().await;
    second.close().await;
}
