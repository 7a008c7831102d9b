//! The `mta-sts` binary as a user runs it: exit codes, human and JSON output.

mod support;

use std::process::Stdio;

use support::{bin, json, mta_sts, stdout, temp_file, with_stdin};

const GOOD: &str =
    "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 604800\n";

#[test]
fn lint_policy_valid_exits_0_with_json_shape() {
    let path = temp_file("good.txt", GOOD.as_bytes());
    let out = mta_sts(&["lint", "policy", "--json", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["valid"], true);
    assert_eq!(v["diagnostics"].as_array().unwrap().len(), 0);
    assert_eq!(v["parsed"]["mode"], "enforce");
    assert_eq!(v["parsed"]["max_age"], 604800);
    assert_eq!(
        v["parsed"]["mx"],
        serde_json::json!(["mail.example.com", "*.example.net"])
    );
}

#[test]
fn lint_policy_invalid_exits_1_with_located_diagnostics() {
    let out = with_stdin(
        &["lint", "policy", "--json", "-"],
        b"version: STSv1\nmode: enforce\nmx: a.example.com\nmax_age: +1\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["valid"], false);
    let d = &v["diagnostics"][0];
    assert_eq!(d["code"], "invalid-max-age");
    assert_eq!(d["severity"], "error");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(4), Some(10))
    );
    assert_eq!(d["rfc"], "RFC 8461 §3.2");
    assert!(d["hint"].as_str().unwrap().contains("digits"));
}

#[test]
fn lint_policy_human_output_points_at_the_problem() {
    let out = with_stdin(
        &["lint", "policy", "-"],
        b"version: STSv1\nmode: Enforce\nmx: a.example.com\nmax_age: 86400\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("error[invalid-mode]"), "{text}");
    assert!(text.contains("<stdin>:2:7"), "{text}");
    assert!(text.contains("2 | mode: Enforce\n  |       ^"), "{text}");
    assert!(!text.contains('\x1b'), "no colour when piped");
}

#[test]
fn warnings_alone_keep_exit_0() {
    let out = with_stdin(
        &["lint", "policy", "-"],
        b"mode: testing\nversion: STSv1\nmx: a.example.com\nmax_age: 604800\n",
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("warning[version-not-first]"));
}

#[test]
fn garbage_huge_and_non_utf8_input_get_diagnostics_not_panics() {
    let garbage: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for input in [
        garbage,
        vec![b'a'; 10 * 1024 * 1024],
        b"version: STSv1\n\xc3\x28\n".to_vec(),
    ] {
        let out = with_stdin(&["lint", "policy", "--json", "-"], &input);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(json(&out)["valid"], false);
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn missing_file_is_an_io_error_exit_2() {
    let out = mta_sts(&["lint", "policy", "/nonexistent/mta-sts.txt"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/mta-sts.txt"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(mta_sts(&["lint"]).status.code(), Some(2));
    assert_eq!(
        mta_sts(&["policy", "new", "--mode", "strict"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn lint_sts_record() {
    let out = mta_sts(&[
        "lint",
        "sts-record",
        "--json",
        "v=STSv1; id=20160831085700Z;",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["parsed"]["id"], "20160831085700Z");

    let out = mta_sts(&["lint", "sts-record", "--json", "v=STSv1; id=2016-08-31"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["diagnostics"][0]["code"], "invalid-id");
}

#[test]
fn lint_sts_record_zone_form_and_rrset() {
    let out = mta_sts(&["lint", "sts-record", "--json", r#""v=STSv1; " "id=abc""#]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(json(&out)["parsed"]["id"], "abc");

    let out = mta_sts(&[
        "lint",
        "sts-record",
        "--json",
        "v=STSv1; id=1",
        "v=STSv1; id=2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["diagnostics"][0]["code"], "multiple-records");

    let out = mta_sts(&[
        "lint",
        "sts-record",
        "--json",
        "v=spf1 -all",
        "v=STSv1; id=2",
    ]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn lint_tlsrpt_record() {
    let out = mta_sts(&[
        "lint",
        "tlsrpt-record",
        "--json",
        "v=TLSRPTv1; rua=mailto:a@example.com,https://r.example.com/x",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["parsed"]["rua"][1]["scheme"], "https");

    let out = mta_sts(&[
        "lint",
        "tlsrpt-record",
        "v=TLSRPTv1; rua=mailto:a@example.com!10m",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("rua-unencoded-char"));
}

#[test]
fn policy_new_writes_canonical_policy_that_lints_clean() {
    let out = mta_sts(&[
        "policy",
        "new",
        "--mode",
        "testing",
        "--mx",
        "Mail.Example.com",
        "--mx",
        "*.example.net",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let body = stdout(&out);
    assert_eq!(
        body,
        "version: STSv1\r\nmode: testing\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n"
    );
    let path = temp_file("new.txt", body.as_bytes());
    let out = mta_sts(&["lint", "policy", "--json", path.to_str().unwrap()]);
    assert_eq!(json(&out)["diagnostics"], serde_json::json!([]));
}

#[test]
fn policy_new_to_file() {
    let path = temp_file("out.txt", b"");
    let out = mta_sts(&[
        "policy",
        "new",
        "--mode",
        "enforce",
        "--mx",
        "mx.example.com",
        "--max-age",
        "31557600",
        "-o",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let body = std::fs::read_to_string(&path).unwrap();
    assert!(body.ends_with("max_age: 31557600\r\n"));
}

#[test]
fn policy_new_refuses_invalid_input_with_the_diagnostic() {
    let out = mta_sts(&[
        "policy",
        "new",
        "--mode",
        "enforce",
        "--mx",
        "mail.example.com:25",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error[mx-port]") && err.contains("--mx mail.example.com:25"),
        "{err}"
    );

    let out = mta_sts(&["policy", "new", "--mode", "enforce"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing-mx"));

    let out = mta_sts(&[
        "policy",
        "new",
        "--mode",
        "testing",
        "--mx",
        "a.example.com",
        "--max-age",
        "99999999999",
    ]);
    assert_eq!(out.status.code(), Some(1));

    let out = mta_sts(&["policy", "new", "--mode", "none"]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn policy_match_reports_each_host() {
    let path = temp_file("match.txt", GOOD.as_bytes());
    let p = path.to_str().unwrap();
    let out = mta_sts(&[
        "policy",
        "match",
        "--json",
        p,
        "MAIL.example.com.",
        "mx1.example.net",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["all_covered"], true);
    assert_eq!(v["hosts"][0]["pattern"], "mail.example.com");
    assert_eq!(v["hosts"][1]["pattern"], "*.example.net");

    let out = mta_sts(&["policy", "match", p, "a.b.example.net", "example.net"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("a.b.example.net  not covered"), "{text}");
}

#[test]
fn policy_match_with_invalid_policy_covers_nothing() {
    let path = temp_file(
        "bad-match.txt",
        b"version: STSv1\nmode: enforce\nmx: a.example.com\n",
    );
    let out = mta_sts(&[
        "policy",
        "match",
        "--json",
        path.to_str().unwrap(),
        "a.example.com",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["policy_valid"], false);
    assert_eq!(v["hosts"][0]["covered"], false);
}

#[test]
fn dns_records_id_follows_the_policy_content() {
    let a = temp_file("dns-a.txt", GOOD.as_bytes());
    let b = temp_file("dns-b.txt", GOOD.replace("604800", "604801").as_bytes());
    let id = |path: &std::path::Path| {
        let out = mta_sts(&[
            "dns",
            "records",
            "--domain",
            "example.com",
            "--policy",
            path.to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert_eq!(out.status.code(), Some(0));
        let v = json(&out);
        v["policy_id"].as_str().unwrap().to_owned()
    };
    let (id_a, id_a2, id_b) = (id(&a), id(&a), id(&b));
    assert_eq!(id_a, id_a2);
    assert_ne!(id_a, id_b);
    assert!((1..=32).contains(&id_a.len()) && id_a.bytes().all(|c| c.is_ascii_alphanumeric()));
}

#[test]
fn dns_records_zone_lines_lint_clean() {
    let path = temp_file("dns-zone.txt", GOOD.as_bytes());
    let out = mta_sts(&[
        "dns",
        "records",
        "--domain",
        "example.com",
        "--policy",
        path.to_str().unwrap(),
        "--rua",
        "mailto:tls@example.com",
        "--rua",
        "https://r.example.com/tlsrpt",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with(';')).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("_mta-sts.example.com. 3600 IN TXT \"v=STSv1; id="));
    assert_eq!(
        lines[1],
        "_smtp._tls.example.com. 3600 IN TXT \"v=TLSRPTv1; rua=mailto:tls@example.com,https://r.example.com/tlsrpt\""
    );
    for (line, kind) in lines.iter().zip(["sts-record", "tlsrpt-record"]) {
        let value = line.split_once(" IN TXT ").unwrap().1;
        let out = mta_sts(&["lint", kind, value]);
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    }
}

#[test]
fn dns_records_refuses_invalid_policy_and_rua() {
    let bad = temp_file("dns-bad.txt", b"version: STSv1\nmode: enforce\n");
    let out = mta_sts(&[
        "dns",
        "records",
        "--domain",
        "example.com",
        "--policy",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let good = temp_file("dns-good.txt", GOOD.as_bytes());
    let out = mta_sts(&[
        "dns",
        "records",
        "--domain",
        "example.com",
        "--policy",
        good.to_str().unwrap(),
        "--rua",
        "http://x.example.com/",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rua http://x.example.com/"));
}

#[test]
fn record_arguments_that_are_not_utf8_get_a_diagnostic() {
    use std::os::unix::ffi::OsStrExt;
    let arg = std::ffi::OsStr::from_bytes(b"v=STSv1; id=\xff");
    let out = bin()
        .args(["lint", "sts-record", "--json"])
        .arg(arg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["diagnostics"][0]["code"], "non-ascii");
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let bad = b"version: STSv1\nmode: Enforce\nmx: a.example.com\nmax_age: 86400\n";
    let out = with_stdin(&["--color", "always", "lint", "policy", "-"], bad);
    assert!(stdout(&out).contains("\x1b[1;31merror"), "{}", stdout(&out));
    let out = with_stdin(&["lint", "policy", "-"], bad);
    assert!(!stdout(&out).contains('\x1b'), "piped output has no colour");
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    // 6,000 unknown keys: a valid policy whose JSON (every key under "parsed") is far larger
    // than a pipe's buffer, so the writer is still writing when the reader goes away.
    let keys: String = (0..6_000).map(|i| format!("x{i:04}: y\n")).collect();
    let body = format!("{GOOD}{keys}");
    assert!(body.len() < 64 * 1024);
    let path = temp_file("long.txt", body.as_bytes());
    let mut child = bin()
        .args(["lint", "policy", "--json", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one chunk, then close the pipe, as `| head -c 10` does.
    let mut first = [0u8; 10];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn policy_new_reports_an_invalid_mx_once() {
    let out = mta_sts(&[
        "policy",
        "new",
        "--mode",
        "enforce",
        "--mx",
        "mail.example.com:25",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mx-port") && !err.contains("missing-mx"),
        "{err}"
    );
}
