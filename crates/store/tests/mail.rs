//! Report mails through the store's one ingest path: the whole message is the raw body
//! (`message/rfc822`), read by the mail reader; the report's identity makes the same report
//! by mail and by HTTPS, or mailed twice, one report.

use std::path::PathBuf;

use mta_sts_store::{Ingested, Location, ReportFilter, Source, Store};

fn fixture(dir: &str, name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tlsrpt/tests/fixtures")
        .join(dir)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(&Location::DataDirectory(dir.path().join("data")))
        .await
        .expect("open store");
    (dir, store)
}

#[tokio::test]
async fn a_mail_ingested_twice_is_stored_once() {
    let (_dir, store) = open().await;
    let mail = fixture("public", "mail-auth__rpt01.eml");
    let first = store
        .ingest(Source::Mail, "message/rfc822", &mail)
        .await
        .unwrap();
    let Ingested::Stored { report, .. } = first else {
        panic!("{first:?}");
    };
    let again = store
        .ingest(Source::Mail, "message/rfc822", &mail)
        .await
        .unwrap();
    assert_eq!(
        again,
        Ingested::Duplicate {
            raw: first.raw(),
            report
        }
    );
    assert_eq!(
        store
            .list_reports(&ReportFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
    let raw = store.raw(first.raw()).await.unwrap().unwrap();
    assert_eq!(raw.bytes, mail, "the whole message is kept");
    assert_eq!(raw.source, "mail");
    store.close().await;
}

#[tokio::test]
async fn the_same_report_by_mail_and_by_https_is_stored_once() {
    let (_dir, store) = open().await;
    let by_mail = store
        .ingest(
            Source::Mail,
            "message/rfc822",
            &fixture("public", "mail-auth__rpt01.eml"),
        )
        .await
        .unwrap();
    let by_https = store
        .ingest(
            Source::Https,
            "application/tlsrpt+json",
            &fixture("public", "mail-auth__rpt01.json"),
        )
        .await
        .unwrap();
    let (Ingested::Stored { report, .. }, Ingested::Duplicate { report: again, .. }) =
        (&by_mail, &by_https)
    else {
        panic!("{by_mail:?} then {by_https:?}");
    };
    assert_eq!(report, again);
    store.close().await;
}

#[tokio::test]
async fn a_poison_mail_is_quarantined_with_its_reason_and_the_next_is_stored() {
    let (_dir, store) = open().await;
    let poison = store
        .ingest(
            Source::Mail,
            "message/rfc822",
            &fixture("mail", "not-a-report.eml"),
        )
        .await
        .unwrap();
    let Ingested::Quarantined { reason, .. } = &poison else {
        panic!("{poison:?}");
    };
    assert_eq!(
        reason,
        "mail is not a TLS report: no part is a TLS report (parts: text/plain)"
    );
    let next = store
        .ingest(
            Source::Mail,
            "message/rfc822",
            &fixture("mail", "bare-tlsrpt-gzip.eml"),
        )
        .await
        .unwrap();
    assert!(matches!(next, Ingested::Stored { .. }), "{next:?}");
    let quarantine = store.list_quarantine().await.unwrap();
    assert_eq!(quarantine.len(), 1);
    assert_eq!(quarantine[0].raw, poison.raw());
    store.close().await;
}

#[tokio::test]
async fn a_gzip_bomb_in_a_mail_is_refused_as_too_large() {
    let (_dir, store) = open().await;
    let outcome = store
        .ingest(
            Source::Mail,
            "message/rfc822",
            &fixture("mail", "gzip-bomb.eml"),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, Ingested::TooLarge { .. }), "{outcome:?}");
    store.close().await;
}

/// A mail the MIME parser fails on (fuzz target `tlsrpt_mail`) is kept raw in quarantine with
/// its reason, and the next mail is stored.
#[tokio::test]
async fn a_mail_the_mime_parser_fails_on_is_kept_in_quarantine() {
    let (_dir, store) = open().await;
    let bytes = fixture("mail-regressions", "mail-parser-invalid-part-id.eml");
    let outcome = store
        .ingest(Source::Mail, "message/rfc822", &bytes)
        .await
        .unwrap();
    let Ingested::Quarantined { raw, reason } = &outcome else {
        panic!("{outcome:?}");
    };
    if cfg!(debug_assertions) {
        assert_eq!(
            reason,
            "mail is not a TLS report: its MIME structure could not be parsed (the MIME parser \
             failed on it)"
        );
    }
    assert_eq!(store.raw(*raw).await.unwrap().unwrap().bytes, bytes);
    let next = store
        .ingest(
            Source::Mail,
            "message/rfc822",
            &fixture("mail", "bare-tlsrpt-gzip.eml"),
        )
        .await
        .unwrap();
    assert!(matches!(next, Ingested::Stored { .. }), "{next:?}");
    store.close().await;
}
