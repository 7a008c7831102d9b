//! `mta-sts reports ingest` as a user and an MTA run it: a folder of real report mails and
//! files, one mail piped in as Postfix's `mailbox_command` would, a Maildir and an mbox.

mod support;

use std::path::{Path, PathBuf};

use support::{json, mta_sts, stderr, stdout, with_stdin};

fn fixtures(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tlsrpt/tests/fixtures")
        .join(dir)
}

fn fixture(dir: &str, name: &str) -> Vec<u8> {
    std::fs::read(fixtures(dir).join(name)).unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mta-sts-reports-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `reports ingest --data-dir DATA --json SOURCES...`.
fn ingest_json(data: &Path, sources: &[&str]) -> std::process::Output {
    let mut args = vec!["reports", "ingest", "--data-dir", s(data), "--json"];
    args.extend_from_slice(sources);
    mta_sts(&args)
}

/// The counts of an `ingest --json` run.
fn counts(out: &std::process::Output) -> [u64; 6] {
    let j = json(out);
    [
        "read",
        "stored",
        "duplicates",
        "quarantined",
        "skipped",
        "unreadable",
    ]
    .map(|key| j[key].as_u64().unwrap_or_else(|| panic!("{key} in {j}")))
}

#[test]
fn a_folder_of_report_mails_and_files_is_ingested_and_poison_is_quarantined() {
    let dir = temp_dir("folder");
    let data = dir.join("data");
    let public = fixtures("public");
    let mail = fixtures("mail");
    let out = ingest_json(&data, &[s(&public), s(&mail)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // 18 public samples and 13 of the project's (12 mails, 1 zip); the READMEs and make.py
    // are skipped. 18 distinct reports; the rest are the same reports again (a mail and its
    // JSON, a forwarded copy); 4 poison bodies (not a report, broken gzip, two bombs).
    assert_eq!(counts(&out), [31, 18, 9, 4, 3, 0]);
    for poison in [
        "not-a-report.eml",
        "broken-gzip.eml",
        "gzip-bomb.eml",
        "zip-bomb.eml",
    ] {
        assert!(
            stderr(&out).contains(poison),
            "{poison} named: {}",
            stderr(&out)
        );
    }
    // Again: everything is a duplicate or already in quarantine; nothing new is stored.
    let again = ingest_json(&data, &[s(&public), s(&mail)]);
    assert_eq!(counts(&again), [31, 0, 27, 4, 3, 0]);
    let list = mta_sts(&["reports", "list", "--data-dir", s(&data), "--json"]);
    assert_eq!(json(&list).as_array().unwrap().len(), 18);
}

#[test]
fn the_summary_line_counts_what_happened() {
    let dir = temp_dir("summary-line");
    let out = mta_sts(&[
        "reports",
        "ingest",
        "--data-dir",
        s(&dir.join("data")),
        s(&fixtures("mail").join("bare-tlsrpt-gzip.eml")),
        s(&fixtures("mail").join("not-a-report.eml")),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "2 read: 1 stored, 0 duplicates, 1 quarantined, 0 skipped, 0 unreadable\n"
    );
}

#[test]
fn as_an_mda_a_mail_is_stored_once_and_exit_is_0() {
    let dir = temp_dir("mda");
    let data = dir.join("data");
    let args = ["reports", "ingest", "--data-dir", s(&data), "-"];
    let mail = fixture("public", "parsedmarc__google.com_smtp_tls_report.eml");
    let first = with_stdin(&args, &mail);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(stdout(&first), "message: stored\n");
    let second = with_stdin(&args, &mail);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(stdout(&second), "message: duplicate (stored before)\n");
    let list = mta_sts(&["reports", "list", "--data-dir", s(&data), "--json"]);
    assert_eq!(json(&list).as_array().unwrap().len(), 1);
}

#[test]
fn as_an_mda_a_poison_mail_is_quarantined_and_exit_is_0() {
    let dir = temp_dir("mda-poison");
    let out = with_stdin(
        &["reports", "ingest", "--data-dir", s(&dir.join("data")), "-"],
        &fixture("mail", "broken-gzip.eml"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "message: quarantined (kept, see `mta-sts reports list`)\n"
    );
    assert!(
        stderr(&out).contains("cannot be decompressed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn as_an_mda_a_store_that_cannot_be_reached_exits_75() {
    // Nothing listens on port 1 of the loopback address: the connection is refused.
    let out = with_stdin(
        &[
            "reports",
            "ingest",
            "--database",
            "postgres://postgres@127.0.0.1:1/reports",
            "-",
        ],
        &fixture("mail", "bare-tlsrpt-gzip.eml"),
    );
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exit 75 asks the MTA to retry"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_data_directory_that_cannot_be_created_exits_75() {
    let dir = temp_dir("mda-no-dir");
    let blocker = dir.join("file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let out = with_stdin(
        &[
            "reports",
            "ingest",
            "--data-dir",
            s(&blocker.join("data")),
            "-",
        ],
        &fixture("mail", "bare-tlsrpt-gzip.eml"),
    );
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn maildir_messages_are_marked_seen_poison_moves_to_quarantine_and_a_rerun_skips_them() {
    let dir = temp_dir("maildir");
    let data = dir.join("data");
    let maildir = dir.join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let new = maildir.join("new");
    std::fs::write(
        new.join("1.a.host"),
        fixture("public", "mox__microsoft.eml"),
    )
    .unwrap();
    std::fs::write(new.join("2.b.host"), fixture("mail", "not-a-report.eml")).unwrap();
    std::fs::write(
        maildir.join("cur/3.c.host:2,F"),
        fixture("mail", "application-zip.eml"),
    )
    .unwrap();
    // Already seen: not read again.
    std::fs::write(maildir.join("cur/4.d.host:2,S"), b"not a report, but seen").unwrap();

    let source = format!("maildir:{}", s(&maildir));
    let out = ingest_json(&data, &[&source]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(counts(&out), [3, 2, 0, 1, 0, 0]);
    assert_eq!(files(&new), Vec::<String>::new());
    assert_eq!(
        files(&maildir.join("cur")),
        ["1.a.host:2,S", "3.c.host:2,FS", "4.d.host:2,S"]
    );
    let quarantine = maildir.join(".Quarantine/cur");
    assert_eq!(files(&quarantine), ["2.b.host:2,S"]);
    let moved = std::fs::read_to_string(quarantine.join("2.b.host:2,S")).unwrap();
    assert!(
        moved.starts_with(
            "X-MTA-STS-Quarantine: mail is not a TLS report: no part is a TLS report \
             (parts: text/plain)\r\nFrom: someone@example.org"
        ),
        "{moved}"
    );

    let rerun = ingest_json(&data, &[&source]);
    assert_eq!(counts(&rerun), [0, 0, 0, 0, 0, 0]);
}

#[test]
fn mbox_messages_are_each_ingested_and_a_rerun_finds_them_stored() {
    let dir = temp_dir("mbox");
    let data = dir.join("data");
    let mut mbox = Vec::new();
    for (dir, name) in [
        ("public", "mox__google-example.eml"),
        ("mail", "not-a-report.eml"),
        ("mail", "bare-tlsrpt-json-qp.eml"),
    ] {
        mbox.extend_from_slice(b"From MAILER-DAEMON Wed Jan 10 01:00:00 2024\n");
        let text = String::from_utf8(fixture(dir, name))
            .unwrap()
            .replace("\r\n", "\n");
        mbox.extend_from_slice(text.as_bytes());
        mbox.extend_from_slice(b"\n");
    }
    let path = dir.join("reports.mbox");
    std::fs::write(&path, mbox).unwrap();
    let source = format!("mbox:{}", s(&path));
    let out = ingest_json(&data, &[&source]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(counts(&out), [3, 2, 0, 1, 0, 0]);
    let rerun = ingest_json(&data, &[&source]);
    assert_eq!(counts(&rerun), [3, 0, 2, 1, 0, 0]);
}

#[test]
fn a_missing_file_is_named_and_the_rest_goes_on() {
    let dir = temp_dir("missing");
    let out = mta_sts(&[
        "reports",
        "ingest",
        "--data-dir",
        s(&dir.join("data")),
        "--json",
        s(&dir.join("nope.json")),
        s(&fixtures("public").join("parsedmarc__rfc8460.json")),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(counts(&out), [1, 1, 0, 0, 0, 1]);
    assert!(stderr(&out).contains("nope.json"), "{}", stderr(&out));
}
