//! A new admin's first steps: `policy new` cannot be tricked into extra lines, `lint` reads
//! what `dns records` prints, and every output says the same thing in the same words.

mod support;

use std::process::Output;

use support::{json, mta_sts, stderr, stdout, temp_file, with_stdin};

const GOOD: &str = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 604800\n";

#[test]
fn a_newline_in_mx_cannot_add_a_policy_line() {
    let out = mta_sts(&[
        "policy",
        "new",
        "--mode",
        "enforce",
        "--mx",
        "a.example.com\nmx: evil.example.org",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("error[control-character]"), "{err}");
    // The flag is named and the value shown escaped, in the message and the --> line.
    assert!(
        err.contains(r#"--mx "a.example.com\nmx: evil.example.org" contains a control character"#),
        "{err}"
    );
    assert!(
        err.contains(r"--> --mx a.example.com\nmx: evil.example.org"),
        "{err}"
    );
    assert!(!err.lines().any(|l| l.starts_with("mx:")), "{err}");
}

#[test]
fn a_control_character_in_max_age_is_an_error_too() {
    let out = mta_sts(&[
        "policy",
        "new",
        "--mode",
        "testing",
        "--mx",
        "mail.example.com",
        "--max-age",
        "86400\r\nmx: evil.example.org",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(
        err.contains(r#"--max-age "86400\r\nmx: evil.example.org""#),
        "{err}"
    );
    // Escape sequences never reach the terminal from an argument either.
    let out = mta_sts(&[
        "policy",
        "new",
        "--mode",
        "testing",
        "--mx",
        "a\u{1b}[31m.example",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr(&out).contains('\u{1b}'), "{}", stderr(&out));
}

#[test]
fn trailing_dot_on_mx_is_removed() {
    let out = mta_sts(&[
        "policy",
        "new",
        "--mode",
        "testing",
        "--mx",
        "mail.example.com.",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("mx: mail.example.com\r\n"),
        "{}",
        stdout(&out)
    );
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

#[test]
fn idn_mx_is_written_as_a_label_without_a_warning() {
    let out = mta_sts(&[
        "policy",
        "new",
        "--mode",
        "testing",
        "--mx",
        "mx.bücher.example",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("mx: mx.xn--bcher-kva.example\r\n"));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

/// `dns records` of GOOD; `file` is the policy's file name, one per test (tests run at once).
fn dns_records(file: &str, extra: &[&str]) -> Output {
    let path = temp_file(file, GOOD.as_bytes());
    let mut args = vec![
        "dns",
        "records",
        "--domain",
        "example.com",
        "--policy",
        path.to_str().unwrap(),
        "--rua",
        "https://r.example.com/tlsrpt",
    ];
    args.extend_from_slice(extra);
    mta_sts(&args)
}

#[test]
fn lint_accepts_the_zone_lines_dns_records_prints() {
    let out = dns_records("zone-lines.txt", &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with(';')).collect();
    assert_eq!(lines.len(), 2, "{text}");
    for (line, kind) in lines.iter().zip(["sts-record", "tlsrpt-record"]) {
        let out = mta_sts(&["lint", kind, "--json", line]);
        assert_eq!(out.status.code(), Some(0), "{line}: {}", stdout(&out));
        assert_eq!(json(&out)["valid"], true);
        // And from standard input, as a pipe from `dns records` gives it.
        let out = with_stdin(&["lint", kind, "-"], format!("{line}\n").as_bytes());
        assert_eq!(out.status.code(), Some(0), "{line}: {}", stdout(&out));
        assert!(stdout(&out).contains("valid record"), "{}", stdout(&out));
    }
}

#[test]
fn lint_reads_several_records_from_stdin_as_one_rrset() {
    let out = with_stdin(
        &["lint", "sts-record", "--json", "-"],
        b"v=STSv1; id=1\nv=STSv1; id=2\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(json(&out)["valid"], false);
    let out = with_stdin(&["lint", "tlsrpt-record", "-"], b"\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no record on standard input"));
}

#[test]
fn dns_records_json_gives_strings_without_quotes() {
    let out = dns_records("json.txt", &["--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    let tlsrpt = &v["records"][1];
    assert_eq!(
        tlsrpt["value"],
        "v=TLSRPTv1; rua=https://r.example.com/tlsrpt"
    );
    assert_eq!(
        tlsrpt["strings"],
        serde_json::json!(["v=TLSRPTv1; rua=https://r.example.com/tlsrpt"])
    );
    // The zone form keeps its quotes.
    let zone = stdout(&dns_records("json.txt", &[]));
    assert!(zone.contains("IN TXT \"v=TLSRPTv1; rua=https://r.example.com/tlsrpt\""));
}

#[test]
fn lint_json_on_a_missing_file_is_still_json() {
    let out = mta_sts(&["lint", "policy", "--json", "/nonexistent/mta-sts.txt"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(v["valid"], false);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("cannot read /nonexistent/mta-sts.txt"),
        "{v}"
    );
    assert_eq!(v["diagnostics"], serde_json::json!([]));
}

#[test]
fn diagnostics_of_a_garbage_file_are_capped() {
    // 4 KB of lines that are no policy at all: one finding per line.
    let garbage: String = (0..410).map(|i| format!("junk{i:04}\n")).collect();
    let path = temp_file("garbage.txt", garbage.as_bytes());
    let all = json(&mta_sts(&[
        "lint",
        "policy",
        "--json",
        path.to_str().unwrap(),
    ]));
    let total = all["diagnostics"].as_array().unwrap().len();
    assert!(total > 100, "{total}");
    let out = mta_sts(&["lint", "policy", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let shown = text.matches("  --> ").count();
    assert_eq!(shown, 20, "{text}");
    assert!(
        text.contains(&format!(
            "… and {} more (--json lists them all)",
            total - 20
        )),
        "{text}"
    );
}

#[test]
fn info_diagnostics_are_called_info_everywhere() {
    let path = temp_file(
        "unknown-key.txt",
        format!("{GOOD}colour: blue\n").as_bytes(),
    );
    let out = mta_sts(&["lint", "policy", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("info["), "{text}");
    assert!(text.contains("(1 info)"), "{text}");
    assert!(!text.contains("note"), "{text}");
}
