//! What `reports ingest` keeps beside the reports, on both backends: the DKIM check of each
//! report mail, and the hold for mail that is not signed when a signature is required; and
//! `reports rebuild`, which derives the reports again from the raw bodies kept.

use std::path::PathBuf;

use mta_sts_store::{
    DkimCheck, DkimResult, Ingested, Location, Origin, QuarantineCode, RebuildStats, ReportFilter,
    Source, Store, StoreOptions,
};

#[macro_use]
mod backends;

use backends::{Backend, run};

on_both_backends!(
    a_dkim_check_is_kept_with_the_raw_body_and_replaced_when_checked_again,
    a_mail_and_its_dkim_check_are_committed_in_one_write,
    unauthenticated_mail_is_held_raw_in_quarantine_and_not_parsed,
    rebuild_derives_reports_again_and_releases_what_now_reads,
    rebuild_keeps_the_verified_body_of_an_identity_counted,
);

fn fixture(dir: &str, name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tlsrpt/tests/fixtures")
        .join(dir)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn mail_fixture(name: &str) -> Vec<u8> {
    fixture("mail", name)
}

async fn organizations(store: &Store) -> Vec<String> {
    let mut orgs: Vec<String> = store
        .list_reports(&ReportFilter::default())
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.organization_name)
        .collect();
    orgs.sort_unstable();
    orgs
}

async fn open(location: &Location) -> Store {
    Store::open(location).await.expect("open store")
}

async fn a_dkim_check_is_kept_with_the_raw_body_and_replaced_when_checked_again(
    location: Location,
) {
    let store = open(&location).await;
    let mail = mail_fixture("bare-tlsrpt-gzip.eml");
    let origin = Origin {
        source: Source::Mail,
        dkim_verified: true,
    };
    let outcome = store
        .ingest(origin, "message/rfc822", &mail)
        .await
        .expect("ingest");
    assert!(matches!(outcome, Ingested::Stored { .. }), "{outcome:?}");
    let raw = outcome.raw();
    assert_eq!(
        store.dkim(raw).await.expect("read"),
        None,
        "not yet checked"
    );
    let failed = DkimCheck {
        result: DkimResult::Fail,
        domain: Some("google.example".to_owned()),
        reason: Some("d=google.example: signature\0 mismatch".to_owned()),
    };
    store.record_dkim(raw, &failed).await.expect("record");
    let read = store.dkim(raw).await.expect("read").expect("recorded");
    assert_eq!(read.result, DkimResult::Fail);
    assert_eq!(read.domain.as_deref(), Some("google.example"));
    // NUL cannot be held as text by PostgreSQL: replaced, as everywhere in the store.
    assert_eq!(
        read.reason.as_deref(),
        Some("d=google.example: signature\u{FFFD} mismatch")
    );
    let passed = DkimCheck {
        result: DkimResult::Pass,
        domain: Some("google.example".to_owned()),
        reason: None,
    };
    store.record_dkim(raw, &passed).await.expect("record again");
    assert_eq!(store.dkim(raw).await.expect("read"), Some(passed));
    store.close().await;
}

/// `ingest_checked` writes the check with the body, in the group commit's multi-row path (many
/// mails at once) and alone: once it returns, the check is there, never only the report.
async fn a_mail_and_its_dkim_check_are_committed_in_one_write(location: Location) {
    let store = std::sync::Arc::new(open(&location).await);
    let mail = mail_fixture("bare-tlsrpt-gzip.eml");
    // Distinct bodies (a header of their own) of one report: one is stored, the rest are
    // duplicates of it, and every body has its own check.
    let checks: Vec<(Vec<u8>, DkimCheck)> = (0..24)
        .map(|n| {
            let mut body = format!("X-Copy: {n}\r\n").into_bytes();
            body.extend_from_slice(&mail);
            let check = DkimCheck {
                result: if n % 2 == 0 {
                    DkimResult::Pass
                } else {
                    DkimResult::Fail
                },
                domain: Some(format!("sender{n}.example")),
                reason: (n % 2 == 1).then(|| format!("copy {n}: body hash mismatch")),
            };
            (body, check)
        })
        .collect();
    let writes = checks.iter().cloned().map(|(body, check)| {
        let store = std::sync::Arc::clone(&store);
        tokio::spawn(async move {
            store
                .ingest_checked(Source::Mail, "message/rfc822", &body, &check)
                .await
                .expect("ingest")
        })
    });
    let mut outcomes = Vec::new();
    for write in writes {
        outcomes.push(write.await.expect("task"));
    }
    let stored = outcomes
        .iter()
        .filter(|o| matches!(o, Ingested::Stored { .. }))
        .count();
    assert_eq!(stored, 1, "{outcomes:?}");
    for ((_, check), outcome) in checks.iter().zip(&outcomes) {
        assert_eq!(
            store.dkim(outcome.raw()).await.expect("read").as_ref(),
            Some(check),
            "{outcome:?}"
        );
    }
    // The same bytes checked again: the new check replaces the old, in the same write.
    let (body, _) = &checks[0];
    let again = DkimCheck {
        result: DkimResult::None,
        domain: None,
        reason: None,
    };
    let outcome = store
        .ingest_checked(Source::Mail, "message/rfc822", body, &again)
        .await
        .expect("ingest again");
    assert_eq!(outcome.raw(), outcomes[0].raw());
    assert_eq!(store.dkim(outcome.raw()).await.expect("read"), Some(again));
    let stats = store.writer_stats();
    assert_eq!(stats.writes, 25, "{stats:?}");
    std::sync::Arc::into_inner(store)
        .expect("no other owner")
        .close()
        .await;
}

async fn unauthenticated_mail_is_held_raw_in_quarantine_and_not_parsed(location: Location) {
    let store = open(&location).await;
    let mail = mail_fixture("bare-tlsrpt-gzip.eml");
    let unsigned = DkimCheck {
        result: DkimResult::None,
        domain: None,
        reason: None,
    };
    let held = store
        .hold_unauthenticated(Source::Mail, "message/rfc822", &mail, &unsigned)
        .await
        .expect("hold");
    let Ingested::Quarantined { raw, reason } = &held else {
        panic!("{held:?}");
    };
    assert_eq!(reason, "DKIM is required and the mail is not signed");
    let kept = store.raw(*raw).await.expect("read").expect("raw body kept");
    assert_eq!(kept.bytes, mail);
    assert_eq!(store.dkim(*raw).await.expect("read"), Some(unsigned));
    let quarantine = store.list_quarantine().await.expect("quarantine");
    assert_eq!(quarantine.len(), 1);
    assert_eq!(quarantine[0].raw, *raw);
    assert_eq!(quarantine[0].code, QuarantineCode::DkimRequired);
    let reports = store
        .list_reports(&ReportFilter::default())
        .await
        .expect("list");
    assert!(reports.is_empty(), "{reports:?}");

    let forged = DkimCheck {
        result: DkimResult::Fail,
        domain: Some("google.example".to_owned()),
        reason: Some("d=google.example: body hash mismatch".to_owned()),
    };
    let other = mail_fixture("multipart-report-gzip.eml");
    let held = store
        .hold_unauthenticated(Source::Mail, "message/rfc822", &other, &forged)
        .await
        .expect("hold");
    let Ingested::Quarantined { reason, .. } = &held else {
        panic!("{held:?}");
    };
    assert_eq!(
        reason,
        "DKIM is required and no signature verified: d=google.example: body hash mismatch"
    );
    store.close().await;
}

async fn rebuild_derives_reports_again_and_releases_what_now_reads(location: Location) {
    let rfc_example = fixture("public", "parsedmarc__rfc8460.json");
    {
        // An older setup refused the RFC's example as too large.
        let small = StoreOptions {
            max_report_size: 100,
            ..StoreOptions::default()
        };
        let store = Store::open_with(&location, small).await.expect("open");
        let refused = store
            .ingest(Source::Https, "application/tlsrpt+json", &rfc_example)
            .await
            .expect("ingest");
        assert!(matches!(refused, Ingested::TooLarge { .. }), "{refused:?}");
        store.close().await;
    }
    let store = open(&location).await;
    let stored = store
        .ingest(
            Source::Mail,
            "message/rfc822",
            &fixture("public", "mox__microsoft.eml"),
        )
        .await
        .expect("ingest");
    assert!(matches!(stored, Ingested::Stored { .. }), "{stored:?}");
    let poison = store
        .ingest(
            Source::Mail,
            "message/rfc822",
            &mail_fixture("not-a-report.eml"),
        )
        .await
        .expect("ingest");
    // Held on purpose: a readable report put in quarantine by hand, and unsigned mail held
    // under --require-dkim. Neither leaves the quarantine.
    let by_hand = store
        .ingest_raw(
            Source::File,
            "application/tlsrpt+json",
            &fixture("public", "parsedmarc__mail.ru.json"),
        )
        .await
        .expect("raw");
    store
        .quarantine(by_hand, "held by the admin")
        .await
        .expect("hold");
    let unsigned = DkimCheck {
        result: DkimResult::None,
        domain: None,
        reason: None,
    };
    store
        .hold_unauthenticated(
            Source::Mail,
            "message/rfc822",
            &mail_fixture("bare-tlsrpt-gzip.eml"),
            &unsigned,
        )
        .await
        .expect("hold");
    let before = store
        .list_reports(&ReportFilter::default())
        .await
        .expect("list");

    let mut calls = 0;
    let stats = store.rebuild(|_| calls += 1).await.expect("rebuild");
    assert_eq!(
        stats,
        RebuildStats {
            rederived: 1,
            released: 1,
            unreadable: 1,
            held: 2,
        }
    );
    assert_eq!(calls, 3, "progress after each body read");
    assert_eq!(
        organizations(&store).await,
        ["Company-X", "Microsoft Corporation"]
    );
    let quarantine = store.list_quarantine().await.expect("quarantine");
    let mut left: Vec<_> = quarantine.iter().map(|q| (q.raw, q.code.clone())).collect();
    left.sort_by_key(|(raw, _)| *raw);
    assert_eq!(left.len(), 3, "{left:?}");
    assert_eq!(left[0], (poison.raw(), QuarantineCode::Unreadable));
    assert_eq!(left[1], (by_hand, QuarantineCode::Manual));
    assert_eq!(left[2].1, QuarantineCode::DkimRequired);
    assert_eq!(
        store.get_report(before[0].key).await.expect("get"),
        None,
        "keys of re-derived reports change"
    );

    // Again: nothing left to release, the same reports.
    let again = store.rebuild(|_| {}).await.expect("rebuild");
    assert_eq!(
        again,
        RebuildStats {
            rederived: 2,
            released: 0,
            unreadable: 1,
            held: 2,
        }
    );
    assert_eq!(
        organizations(&store).await,
        ["Company-X", "Microsoft Corporation"]
    );
    store.close().await;
}

async fn rebuild_keeps_the_verified_body_of_an_identity_counted(location: Location) {
    let store = open(&location).await;
    let real = fixture("public", "parsedmarc__rfc8460.json");
    let mut forged: serde_json::Value = serde_json::from_slice(&real).expect("JSON");
    forged["policies"][0]["summary"]["total-failure-session-count"] = 12_345.into();
    let forged = serde_json::to_vec(&forged).expect("JSON");
    let first = store
        .ingest(Source::Https, "application/tlsrpt+json", &forged)
        .await
        .expect("forged first");
    assert!(matches!(first, Ingested::Stored { .. }), "{first:?}");
    let verified = Origin {
        source: Source::Mail,
        dkim_verified: true,
    };
    let signed = store
        .ingest(verified, "application/tlsrpt+json", &real)
        .await
        .expect("verified");
    assert!(
        matches!(signed, Ingested::Conflict { counted: true, .. }),
        "{signed:?}"
    );
    assert_ne!(failed_of_the_counted_body(&store).await, 12_345);
    let stats = store.rebuild(|_| {}).await.expect("rebuild");
    assert_eq!(stats.rederived, 2);
    assert_ne!(
        failed_of_the_counted_body(&store).await,
        12_345,
        "the verified body still counts after a rebuild"
    );
    store.close().await;
}

/// The failed sessions of the one counted body of the only identity stored.
async fn failed_of_the_counted_body(store: &Store) -> u64 {
    let listed = store
        .list_reports(&ReportFilter::default())
        .await
        .expect("list");
    assert_eq!(listed.len(), 1, "one body per identity counts");
    listed[0].policies[0].failed
}
