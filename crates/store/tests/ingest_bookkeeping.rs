//! What `reports ingest` keeps beside the reports, on both backends: the DKIM check of each
//! report mail, and the hold for mail that is not signed when a signature is required.

use std::path::PathBuf;

use mta_sts_store::{
    DkimCheck, DkimResult, Ingested, Location, Origin, QuarantineCode, ReportFilter, Source, Store,
};

#[macro_use]
mod backends;

use backends::{Backend, run};

on_both_backends!(
    a_dkim_check_is_kept_with_the_raw_body_and_replaced_when_checked_again,
    unauthenticated_mail_is_held_raw_in_quarantine_and_not_parsed,
);

fn mail_fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tlsrpt/tests/fixtures/mail")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
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
