//! Parse speed: our policy linter, and our TXT record parsers side by side with `mail-auth`.
//!
//! `cargo bench -p mta-sts-bench` prints one row per case: nanoseconds per parse for us and
//! for mail-auth, and the ratio (mail-auth time / our time: above 1 means we are faster).

use std::hint::black_box;
use std::time::{Duration, Instant};

use mail_auth::common::parse::TxtRecordParser;
use mta_sts_policy::{Policy, StsRecord};
use mta_sts_tlsrpt::TlsRptRecord;

/// A policy as providers publish it: version first, three mx lines, CRLF.
const POLICY: &[u8] = b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n";

const STS_RECORDS: &[&str] = &[
    "v=STSv1; id=20160831085700Z;",
    "v=STSv1; id=20190429T010101",
];
const TLSRPT_RECORDS: &[&str] = &[
    "v=TLSRPTv1;rua=mailto:reports@example.com",
    "v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt",
    "v=TLSRPTv1; rua=mailto:tlsrpt@example.com,https://tlsrpt.example.com/v1",
];

/// Nanoseconds per call: the fastest of 501 samples of enough calls to take ~200 µs each. On a
/// shared virtual machine the minimum is the steadiest figure (noise only ever adds time), and
/// samples this short often run without being preempted even when other work keeps the cores
/// busy.
fn time<F: FnMut()>(mut f: F) -> f64 {
    let mut batch = 1u32;
    loop {
        let start = Instant::now();
        for _ in 0..batch {
            f();
        }
        if start.elapsed() > Duration::from_micros(200) {
            break;
        }
        batch *= 2;
    }
    (0..501)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                f();
            }
            start.elapsed().as_secs_f64() * 1e9 / f64::from(batch)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    // `cargo test --benches` runs this with --bench absent: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    if quick {
        assert!(Policy::lint(POLICY).into_policy().is_some());
        // Each case is valid and both parsers read the same from it.
        for r in STS_RECORDS {
            let ours = StsRecord::parse(r.as_bytes()).unwrap();
            let theirs = mail_auth::mta_sts::MtaSts::parse(r.as_bytes()).unwrap();
            assert_eq!(ours.id, theirs.id, "{r}");
        }
        for r in TLSRPT_RECORDS {
            // Both read the same destinations (mail-auth drops the "mailto:").
            let ours = TlsRptRecord::parse(r.as_bytes()).unwrap();
            let theirs = mail_auth::mta_sts::TlsRpt::parse(r.as_bytes()).unwrap();
            let theirs: Vec<&str> = theirs
                .rua
                .iter()
                .map(|uri| match uri {
                    mail_auth::mta_sts::ReportUri::Mail(address) => address.as_str(),
                    mail_auth::mta_sts::ReportUri::Http(url) => url.as_str(),
                })
                .collect();
            let ours: Vec<&str> = ours
                .rua
                .iter()
                .map(|uri| uri.as_str().trim_start_matches("mailto:"))
                .collect();
            assert_eq!(ours, theirs, "{r}");
        }
        return;
    }

    println!(
        "{:<44} {:>12} {:>12} {:>8}",
        "case", "ours ns", "mail-auth ns", "ratio"
    );
    let policy = time(|| {
        black_box(Policy::lint(black_box(POLICY)).into_policy());
    });
    println!(
        "{:<44} {:>12.1} {:>12} {:>8}",
        "policy parse+lint (3 mx)", policy, "-", "-"
    );

    for r in STS_RECORDS {
        let ours = time(|| {
            let _ = black_box(StsRecord::parse(black_box(r.as_bytes())));
        });
        let theirs = time(|| {
            let _ = black_box(mail_auth::mta_sts::MtaSts::parse(black_box(r.as_bytes())));
        });
        row(r, ours, theirs);
    }
    for r in TLSRPT_RECORDS {
        let ours = time(|| {
            let _ = black_box(TlsRptRecord::parse(black_box(r.as_bytes())));
        });
        let theirs = time(|| {
            let _ = black_box(mail_auth::mta_sts::TlsRpt::parse(black_box(r.as_bytes())));
        });
        row(r, ours, theirs);
    }
}

fn row(record: &str, ours: f64, theirs: f64) {
    let name: String = record.chars().take(44).collect();
    println!(
        "{name:<44} {ours:>12.1} {theirs:>12.1} {:>7.2}x",
        theirs / ours
    );
}
