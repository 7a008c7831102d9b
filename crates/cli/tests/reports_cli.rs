//! `mta-sts reports ingest` as a user and an MTA run it: a folder of real report mails and
//! files, one mail piped in as Postfix's `mailbox_command` would, a Maildir and an mbox.

mod support;

use std::path::{Path, PathBuf};

use support::{json, mta_sts, stderr, stdout, temp_dir, with_stdin};

fn fixtures(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tlsrpt/tests/fixtures")
        .join(dir)
}

fn fixture(dir: &str, name: &str) -> Vec<u8> {
    std::fs::read(fixtures(dir).join(name)).unwrap()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `reports ingest --data-dir DATA --json SOURCES...`.
fn ingest_json(data: &Path, sources: &[&str]) -> std::process::Output {
    let mut args = vec![
        "reports",
        "ingest",
        "--no-dkim",
        "--data-dir",
        s(data),
        "--json",
    ];
    args.extend_from_slice(sources);
    mta_sts(&args)
}

/// `reports COMMAND --data-dir DATA ARGS...`.
fn reports(command: &str, data: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["reports", command, "--data-dir", s(data)];
    all.extend_from_slice(args);
    mta_sts(&all)
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
    // are skipped. 18 distinct reports, plus one more body: mail-auth's rpt01.eml carries the
    // report of rpt01.json with its additional-information mangled, a different body with the
    // same identity, kept as a conflict (listings count one). The rest are the same reports
    // again (a mail and its JSON, a forwarded copy); 4 poison bodies (not a report, broken
    // gzip, two bombs).
    assert_eq!(counts(&out), [31, 19, 8, 4, 3, 0]);
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
    let list = reports("list", &data, &["--json"]);
    assert_eq!(json(&list).as_array().unwrap().len(), 18);
}

#[test]
fn the_summary_line_counts_what_happened() {
    let dir = temp_dir("summary-line");
    let out = mta_sts(&[
        "reports",
        "ingest",
        "--no-dkim",
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
    let args = [
        "reports",
        "ingest",
        "--no-dkim",
        "--data-dir",
        s(&data),
        "-",
    ];
    let mail = fixture("public", "parsedmarc__google.com_smtp_tls_report.eml");
    let first = with_stdin(&args, &mail);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(stdout(&first), "message: stored\n");
    let second = with_stdin(&args, &mail);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(stdout(&second), "message: duplicate (stored before)\n");
    let list = reports("list", &data, &["--json"]);
    assert_eq!(json(&list).as_array().unwrap().len(), 1);
}

#[test]
fn as_an_mda_a_poison_mail_is_quarantined_and_exit_is_0() {
    let dir = temp_dir("mda-poison");
    let out = with_stdin(
        &[
            "reports",
            "ingest",
            "--no-dkim",
            "--data-dir",
            s(&dir.join("data")),
            "-",
        ],
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
            "--no-dkim",
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
            "--no-dkim",
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
        "--no-dkim",
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

/// A daily report from `org` for example.org on day `day` (0 = 2024-03-01) with `ok`
/// successful sessions and, when `failed` > 0, that many `certificate-expired` failures at
/// mx2.example.org.
fn daily_report(org: &str, day: u32, ok: u64, failed: u64) -> String {
    let date = format!("2024-03-{:02}", day + 1);
    let details = if failed > 0 {
        format!(
            r#", "failure-details": [{{"result-type": "certificate-expired",
                "sending-mta-ip": "192.0.2.1", "receiving-mx-hostname": "mx2.example.org",
                "receiving-ip": "198.51.100.2", "failed-session-count": {failed}}}]"#
        )
    } else {
        String::new()
    };
    format!(
        r#"{{"organization-name": "{org}", "report-id": "{org}-{date}",
          "date-range": {{"start-datetime": "{date}T00:00:00Z", "end-datetime": "{date}T23:59:59Z"}},
          "contact-info": "tls@{org}",
          "policies": [{{"policy": {{"policy-type": "sts", "policy-domain": "example.org",
              "policy-string": ["version: STSv1", "mode: testing", "mx: *.example.org", "max_age: 86400"],
              "mx-host": ["*.example.org"]}},
            "summary": {{"total-successful-session-count": {ok}, "total-failure-session-count": {failed}}}
            {details}}}]}}"#
    )
}

/// A store with 14 days of reports from two reporters; `broken` adds failures at one MX.
fn readiness_store(name: &str, broken: bool) -> PathBuf {
    let dir = temp_dir(name);
    let files = dir.join("reports");
    std::fs::create_dir_all(&files).unwrap();
    for day in 0..14 {
        for org in ["a.example", "b.example"] {
            let failed = if broken && org == "b.example" && day == 13 {
                5
            } else {
                0
            };
            let json = daily_report(org, day, 100, failed);
            std::fs::write(files.join(format!("{org}-{day}.json")), json).unwrap();
        }
    }
    let data = dir.join("data");
    let out = ingest_json(&data, &[s(&files)]);
    assert_eq!(counts(&out), [28, 28, 0, 0, 0, 0], "{}", stderr(&out));
    data
}

#[test]
fn summary_counts_sts_and_tlsa_for_the_same_sessions_once_and_flags_excess_details() {
    let dir = temp_dir("summary");
    let data = dir.join("data");
    let out = ingest_json(
        &data,
        &[
            s(&fixtures("public").join("dmarc-report-viewer__microsoft.json")),
            s(&fixtures("public").join("parsedmarc__mail.ru.json")),
        ],
    );
    assert_eq!(counts(&out)[1], 2);
    let summary = reports("summary", &data, &["--json"]);
    assert_eq!(summary.status.code(), Some(0), "{}", stderr(&summary));
    let groups = json(&summary)["groups"].clone();
    // Microsoft: 2 sessions under sts and the same 2 under tlsa.
    let random = &groups[1];
    assert_eq!(random["key"], "random.net");
    assert_eq!(random["sessions"], 2);
    // Mail.ru: a failure total of 1, details adding up to 2: as reported, flagged.
    let mailru = &groups[0];
    assert_eq!(mailru["key"], "example.com");
    assert_eq!(mailru["failed"], 1);
    assert_eq!(mailru["failure_types"]["sts-policy-fetch-error"], 2);
    assert_eq!(mailru["details_exceed_total"], 1);
    let table = reports("summary", &data, &[]);
    assert!(
        stdout(&table)
            .contains("[details exceed the failure total in 1 reports; shown as reported]"),
        "{}",
        stdout(&table)
    );
}

#[test]
fn summary_by_mx_and_by_day_over_a_period() {
    let data = readiness_store("summary-by", true);
    let by_mx = reports("summary", &data, &["--by", "mx", "--json"]);
    let groups = json(&by_mx)["groups"].clone();
    assert_eq!(groups.as_array().unwrap().len(), 1);
    assert_eq!(groups[0]["key"], "mx2.example.org");
    assert_eq!(groups[0]["failed"], 5);
    assert_eq!(groups[0]["successful"], serde_json::Value::Null);
    let by_day = reports(
        "summary",
        &data,
        &[
            "--by",
            "day",
            "--since",
            "2024-03-10",
            "--until",
            "2024-03-12",
            "--json",
        ],
    );
    let days: Vec<_> = json(&by_day)["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap().to_owned(),
                g["sessions"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        days,
        [
            ("2024-03-10".to_owned(), 200),
            ("2024-03-11".to_owned(), 200)
        ]
    );
    let bad = reports("summary", &data, &["--since", "last week"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("\"last week\" is not a time"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn export_has_one_row_per_policy_and_failure_detail() {
    let data = readiness_store("export", true);
    let csv = reports("export", &data, &["--format", "csv"]);
    assert_eq!(csv.status.code(), Some(0), "{}", stderr(&csv));
    let text = stdout(&csv);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 28);
    assert!(lines[0].starts_with("report,organization_name,report_id,date_start"));
    let failing: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("certificate-expired"))
        .collect();
    assert_eq!(failing.len(), 1);
    assert!(
        failing[0].contains(",mx2.example.org,198.51.100.2,5,"),
        "{}",
        failing[0]
    );
    let jsonl = reports("export", &data, &["--format", "jsonl"]);
    assert_eq!(stdout(&jsonl).lines().count(), 28);
    let array = reports("export", &data, &["--json"]);
    assert_eq!(json(&array).as_array().unwrap().len(), 28);
}

#[test]
fn readiness_is_ready_after_two_clean_weeks_from_two_reporters() {
    let data = readiness_store("ready", false);
    let out = reports(
        "readiness",
        &data,
        &["example.org", "--since", "2024-01-01", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j = json(&out);
    assert_eq!(j["verdict"], "ready");
    assert_eq!(j["days"], 14);
    assert_eq!(j["reporters"]["a.example"], 14);
    assert_eq!(j["total"]["sessions"], 2800);
}

#[test]
fn readiness_names_the_mx_to_fix_first() {
    let data = readiness_store("not-yet", true);
    let out = reports(
        "readiness",
        &data,
        &["example.org", "--since", "2024-01-01"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "verdict: not yet: fix mx2.example.org: 5 failed sessions (certificate-expired); \
             senders would refuse it under enforce first"
        ),
        "{text}"
    );
}

#[test]
fn readiness_without_enough_data_says_how_much_there_is() {
    let dir = temp_dir("not-enough");
    let data = dir.join("data");
    let file = dir.join("one.json");
    std::fs::write(&file, daily_report("a.example", 0, 10, 0)).unwrap();
    ingest_json(&data, &[s(&file)]);
    let out = reports(
        "readiness",
        &data,
        &["example.org", "--since", "2024-01-01", "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        json(&out)["verdict_text"],
        "not enough data: 1 days, 1 reporters"
    );
}

#[test]
fn a_reporter_that_stopped_sending_is_named() {
    let dir = temp_dir("stopped");
    let files = dir.join("reports");
    std::fs::create_dir_all(&files).unwrap();
    for day in 0..10 {
        std::fs::write(
            files.join(format!("a{day}.json")),
            daily_report("a.example", day, 1, 0),
        )
        .unwrap();
    }
    std::fs::write(files.join("b.json"), daily_report("b.example", 2, 1, 0)).unwrap();
    let data = dir.join("data");
    ingest_json(&data, &[s(&files)]);
    let out = reports(
        "readiness",
        &data,
        &["example.org", "--since", "2024-01-01", "--json"],
    );
    assert_eq!(
        json(&out)["stopped_reporters"],
        serde_json::json!({"b.example": "2024-03-03"})
    );
}

/// `mail` with CRLF line ends, as it travels over SMTP.
fn crlf(mail: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(mail)
        .replace("\r\n", "\n")
        .replace('\n', "\r\n")
        .into_bytes()
}

/// `mail` signed with a new Ed25519 key by `domain` under `selector`, and the key's TXT record.
fn dkim_signed(mail: &[u8], domain: &str, selector: &str) -> (Vec<u8>, String) {
    use base64::Engine;
    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::common::headers::HeaderWriter;
    use mail_auth::dkim::DkimSigner;
    let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
    let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
    let record = format!(
        "v=DKIM1; k=ed25519; p={}",
        base64::engine::general_purpose::STANDARD.encode(key.public_key())
    );
    let signature = DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(["From", "To", "Date", "Subject", "Message-ID"])
        .sign(mail)
        .unwrap();
    ([signature.to_header().as_bytes(), mail].concat(), record)
}

#[tokio::test(flavor = "multi_thread")]
async fn dkim_is_checked_through_the_given_dns_and_require_dkim_quarantines_what_does_not_pass() {
    use mta_sts_testnet::{DnsServer, Zone};
    let dir = temp_dir("dkim");
    let mails = dir.join("mails");
    std::fs::create_dir_all(&mails).unwrap();
    // Signed by the reporter, with its key published: pass.
    let (google, google_key) = dkim_signed(
        &crlf(&fixture("mail", "bare-tlsrpt-gzip.eml")),
        "google.example",
        "rpt",
    );
    std::fs::write(mails.join("1-signed.eml"), &google).unwrap();
    // Signed, then a signed header changed on the way: fail.
    let (microsoft, microsoft_key) = dkim_signed(
        &crlf(&fixture("mail", "bare-tlsrpt-json-qp.eml")),
        "microsoft.example",
        "s1",
    );
    let tampered = String::from_utf8(microsoft)
        .unwrap()
        .replace("01:00:00 +0000", "02:00:00 +0000");
    std::fs::write(mails.join("2-tampered.eml"), tampered).unwrap();
    // Signed with a key that is not published: fail.
    let (orphan, _) = dkim_signed(
        &crlf(&fixture("mail", "multipart-report-gzip.eml")),
        "google.example",
        "gone",
    );
    std::fs::write(mails.join("3-no-key.eml"), orphan).unwrap();
    // Not signed: none.
    std::fs::write(
        mails.join("4-unsigned.eml"),
        fixture("mail", "application-gzip.eml"),
    )
    .unwrap();
    let dns = DnsServer::new([
        Zone::new("google.example").txt("rpt._domainkey", &[&google_key]),
        Zone::new("microsoft.example").txt("s1._domainkey", &[&microsoft_key]),
    ])
    .start()
    .await
    .unwrap();
    let resolver = dns.addr().to_string();
    let run = |data: &Path, extra: &[&str]| {
        let mut args: Vec<String> = ["reports", "ingest", "--json", "--resolver", &resolver]
            .map(str::to_owned)
            .into();
        args.extend(["--data-dir".to_owned(), s(data).to_owned()]);
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args.push(s(&mails).to_owned());
        support::run_beside_lab(args)
    };

    let out = run(&dir.join("open"), &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j = json(&out);
    assert_eq!(
        (
            j["dkim"]["pass"].as_u64(),
            j["dkim"]["fail"].as_u64(),
            j["dkim"]["none"].as_u64()
        ),
        (Some(1), Some(2), Some(1)),
        "{j}"
    );
    // Without --require-dkim every report is stored (the signed and the multipart mail carry
    // the same report: one is a duplicate).
    assert_eq!(counts(&out), [4, 3, 1, 0, 0, 0], "{j}");
    let asked: Vec<String> = dns
        .queries()
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    for key in [
        "rpt._domainkey.google.example.",
        "s1._domainkey.microsoft.example.",
        "gone._domainkey.google.example.",
    ] {
        assert!(asked.iter().any(|n| n == key), "{key} not asked: {asked:?}");
    }

    let out = run(&dir.join("strict"), &["--require-dkim"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(counts(&out), [4, 1, 0, 3, 0, 0], "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("4-unsigned.eml: quarantined: DKIM is required and the mail is not signed"),
        "{err}"
    );
    assert!(
        err.contains("2-tampered.eml: quarantined: DKIM is required and no signature verified: d=microsoft.example"),
        "{err}"
    );
    assert!(
        err.contains("3-no-key.eml: quarantined: DKIM is required and no signature verified: d=google.example"),
        "{err}"
    );
    let listed = json(&reports("list", &dir.join("strict"), &["--json"]));
    let orgs: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["organization_name"].as_str().unwrap())
        .collect();
    assert_eq!(orgs, ["Google Inc."], "{listed}");
    dns.shutdown().await;
}

#[test]
fn rebuild_derives_the_stored_reports_again_and_keeps_poison_in_quarantine() {
    let dir = temp_dir("rebuild");
    let data = dir.join("data");
    let out = ingest_json(
        &data,
        &[
            s(&fixtures("public").join("mox__google-example.eml")),
            s(&fixtures("mail").join("broken-gzip.eml")),
        ],
    );
    assert_eq!(counts(&out), [2, 1, 0, 1, 0, 0]);
    let out = reports("rebuild", &data, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        json(&out),
        serde_json::json!({"rederived": 1, "released": 0, "unreadable": 1, "held": 0})
    );
    let out = reports("rebuild", &data, &[]);
    assert_eq!(
        stdout(&out),
        "1 reports derived again, 0 released from quarantine, 1 still unreadable, 0 held on \
         purpose (manual, dkim-required)\n"
    );
    let list = reports("list", &data, &["--json"]);
    assert_eq!(json(&list).as_array().unwrap().len(), 1);
}

/// example.org in a lab: its policy (`testing`, `mx: *.example.org`) and records, and one MX
/// whose certificate is valid or expired.
async fn example_org_lab(
    lab: &mta_sts_testnet::Lab,
    expired: bool,
) -> (
    mta_sts_testnet::HttpsHandle,
    mta_sts_testnet::SmtpHandle,
    mta_sts_testnet::DnsHandle,
) {
    use mta_sts_testnet::{Site, SmtpBehaviour, Zone};
    let policy = "version: STSv1\nmode: testing\nmx: *.example.org\nmax_age: 86400\n";
    let web = lab
        .https([Site::policy("mta-sts.example.org", policy)])
        .await
        .unwrap();
    let host = "mx1.example.org";
    let identity = if expired {
        lab.ca().issue_expired(&[host]).unwrap()
    } else {
        lab.ca().issue(&[host]).unwrap()
    };
    let mx = lab
        .smtp(host, SmtpBehaviour::starttls(identity))
        .await
        .unwrap();
    let zone = Zone::new("example.org")
        .address("mta-sts", web.ip())
        .mx(10, host)
        .address("mx1", mx.ip())
        .txt("_mta-sts", &["v=STSv1; id=1"])
        .txt("_smtp._tls", &["v=TLSRPTv1; rua=mailto:tlsrpt@example.org"]);
    let dns = lab.dns([zone]).await.unwrap();
    (web, mx, dns)
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_live_lets_the_live_state_count_in_the_verdict() {
    let data = readiness_store("live", false);
    for expired in [false, true] {
        let lab = mta_sts_testnet::Lab::new();
        let (_web, _mx, dns) = example_org_lab(&lab, expired).await;
        let ca_file = support::lab_ca_file(&lab);
        let mut args: Vec<String> = ["reports", "readiness", "example.org", "--since"]
            .map(String::from)
            .to_vec();
        args.extend(["2024-01-01".into(), "--json".into(), "--live".into()]);
        args.extend(support::lab_flags(&lab, &dns, &ca_file));
        args.extend(["--data-dir".into(), data.display().to_string()]);
        let out = support::run_beside_lab(args).await;
        let j = json(&out);
        assert!(j["live"]["incomplete"].is_null(), "{j}");
        if expired {
            // Two clean weeks of reports, but the MX would be refused under enforce today.
            assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
            assert_eq!(j["verdict"], "not-yet", "{j}");
            let fix = j["fix_first"].as_str().unwrap();
            assert!(fix.contains("live check"), "{fix}");
            assert!(fix.contains("mx1.example.org"), "{fix}");
        } else {
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            assert_eq!(j["verdict"], "ready", "{j}");
            assert_eq!(j["live"]["errors"], serde_json::json!([]), "{j}");
        }
    }
}
