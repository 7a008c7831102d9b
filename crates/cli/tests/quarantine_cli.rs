//! `mta-sts reports quarantine [list|show ID]`: what the store refused and why, with the
//! sender's text escaped.

mod support;

use std::path::{Path, PathBuf};

use support::{json, mta_sts, stderr, stdout, temp_dir};

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A store holding two poison bodies: JSON that is no report (with an escape sequence a
/// terminal would obey) and a mail whose gzip attachment is broken; and one good report.
fn store_with_poison(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    let files = dir.join("in");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(
        files.join("a-poison.json"),
        b"{\"organization-name\": \"\x1b[2Jevil\"}\n",
    )
    .unwrap();
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tlsrpt/tests/fixtures");
    std::fs::copy(
        fixtures.join("mail/broken-gzip.eml"),
        files.join("b-broken-gzip.eml"),
    )
    .unwrap();
    std::fs::copy(
        fixtures.join("public/parsedmarc__rfc8460.json"),
        files.join("c-good.json"),
    )
    .unwrap();
    let data = dir.join("data");
    let out = mta_sts(&["reports", "ingest", "--data-dir", s(&data), s(&files)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    data
}

/// The two entries of [`store_with_poison`]: the JSON file's and the mail's (the directory's
/// files are read in any order).
fn poison(entries: &[serde_json::Value]) -> [&serde_json::Value; 2] {
    let by_source = |source: &str| {
        entries
            .iter()
            .find(|e| e["source"] == source)
            .unwrap_or_else(|| panic!("{source} entry in {entries:?}"))
    };
    [by_source("file"), by_source("mail")]
}

fn quarantine(data: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["reports", "quarantine"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", s(data)]);
    mta_sts(&all)
}

#[test]
fn list_shows_each_refused_body_with_its_code_and_reason() {
    let data = store_with_poison("list");
    let listed = quarantine(&data, &["list", "--json"]);
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let entries = json(&listed);
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    // Oldest first.
    assert!(
        entries[0]["id"].as_i64() < entries[1]["id"].as_i64(),
        "{entries:?}"
    );
    let [json_body, mail] = poison(entries);
    assert_eq!(json_body["code"], "unreadable");
    assert!(
        json_body["reason"].as_str().unwrap().contains("not JSON"),
        "{entries:?}"
    );
    assert_eq!(mail["source"], "mail");
    assert!(
        mail["reason"].as_str().unwrap().contains("gzip"),
        "{entries:?}"
    );
    assert!(mail["size"].as_u64().unwrap() > 0);

    // `reports quarantine` alone is the list, as a table.
    let table = quarantine(&data, &[]);
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
    let text = stdout(&table);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].contains("ID") && lines[0].contains("REASON"),
        "{text}"
    );
    let first_id = entries[0]["id"].as_i64().unwrap().to_string();
    assert!(lines[1].trim_start().starts_with(&first_id), "{text}");
    assert!(lines[1].contains("unreadable"), "{text}");
    let file_row = lines
        .iter()
        .find(|l| l.contains(" file "))
        .expect("file row");
    assert!(file_row.contains("not JSON"), "{text}");

    // A cut list says so, on standard error.
    let cut = quarantine(&data, &["list", "--limit", "1", "--json"]);
    assert_eq!(json(&cut).as_array().unwrap().len(), 1);
    assert!(stderr(&cut).contains("first 1 entries"), "{}", stderr(&cut));
    assert!(stderr(&listed).is_empty(), "{}", stderr(&listed));
}

#[test]
fn show_prints_the_reason_and_the_body_escaped() {
    let data = store_with_poison("show");
    let entries = json(&quarantine(&data, &["list", "--json"]));
    let [json_body, mail] = poison(entries.as_array().unwrap());
    let id = json_body["id"].as_i64().unwrap().to_string();

    let shown = quarantine(&data, &["show", &id]);
    assert_eq!(shown.status.code(), Some(0), "{}", stderr(&shown));
    let text = stdout(&shown);
    assert!(
        text.starts_with(&format!("Body {id} in quarantine (unreadable)")),
        "{text}"
    );
    assert!(text.contains("not JSON: control character"), "{text}");
    // The escape sequence from the body is shown, not obeyed.
    assert!(!text.contains('\x1b'), "{text:?}");
    assert!(text.contains("\\u{1b}[2Jevil"), "{text}");

    let shown = json(&quarantine(&data, &["show", &id, "--json"]));
    assert_eq!(shown["id"].as_i64().unwrap().to_string(), id);
    assert_eq!(shown["code"], "unreadable");
    assert_eq!(
        shown["body_utf8"],
        "{\"organization-name\": \"\u{1b}[2Jevil\"}\n"
    );
    assert_eq!(shown["sha256"].as_str().unwrap().len(), 64);

    // --raw gives the bytes back exactly (standard output is a pipe here).
    let raw = quarantine(&data, &["show", &id, "--raw"]);
    assert_eq!(raw.status.code(), Some(0), "{}", stderr(&raw));
    assert_eq!(raw.stdout, b"{\"organization-name\": \"\x1b[2Jevil\"}\n");

    // The mail: not text worth showing whole, but its headers are text.
    let mail_id = mail["id"].as_i64().unwrap().to_string();
    let mail = quarantine(&data, &["show", &mail_id]);
    assert_eq!(mail.status.code(), Some(0), "{}", stderr(&mail));
    assert!(
        stdout(&mail).contains("message/rfc822"),
        "{}",
        stdout(&mail)
    );
}

#[test]
fn show_of_an_id_not_in_quarantine_fails_with_exit_2() {
    let data = store_with_poison("missing");
    let out = quarantine(&data, &["show", "9999"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no body with ID 9999 in quarantine"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn an_empty_quarantine_says_so() {
    let dir = temp_dir("empty");
    let data = dir.join("data");
    let good = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tlsrpt/tests/fixtures/public/parsedmarc__rfc8460.json");
    let out = mta_sts(&["reports", "ingest", "--data-dir", s(&data), s(&good)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listed = quarantine(&data, &[]);
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    assert_eq!(stdout(&listed), "nothing in quarantine\n");
    assert_eq!(json(&quarantine(&data, &["--json"])), serde_json::json!([]));
}

/// A database URL's password never reaches the terminal: not when the URL is refused, not when
/// the server cannot be reached (loopback port 1: nothing listens there).
#[test]
fn database_passwords_are_never_printed() {
    for url in [
        "mysql://app:s3cret@localhost/tlsrpt",
        "postgres://app:s3cret@127.0.0.1:1/tlsrpt",
        "postgres://app@127.0.0.1:1/tlsrpt?sslmode=disable&password=s3cret",
    ] {
        let out = mta_sts(&["reports", "quarantine", "--database", url]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{url}: {err}");
        assert!(!err.contains("s3cret"), "{url}: {err}");
        assert!(
            err.contains("***"),
            "{url}: the URL is named, redacted: {err}"
        );
    }
}
