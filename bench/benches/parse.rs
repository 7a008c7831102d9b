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

/// Time of one call: the fastest of 31 samples of enough calls to take ~10 ms each. On a shared
/// virtual machine the minimum is the steadiest figure: noise only ever adds time.
fn time<F: FnMut()>(mut f: F) -> Duration {
    let mut batch = 1u32;
    loop {
        let start = Instant::now();
        for _ in 0..batch {
            f();
        }
        if start.elapsed() > Duration::from_millis(10) {
            break;
        }
        batch *= 2;
    }
    let mut samples: Vec<Duration> = (0..31)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                f();
            }
            start.elapsed() / batch
        })
        .collect();
    samples.sort();
    samples[0]
}

fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

fn main() {
    // `cargo test --benches` runs this with --bench absent: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    if quick {
        assert!(Policy::lint(POLICY).into_policy().is_some());
        for r in STS_RECORDS {
            assert!(StsRecord::parse(r.as_bytes()).is_ok());
            assert!(mail_auth::mta_sts::MtaSts::parse(r.as_bytes()).is_ok());
        }
        for r in TLSRPT_RECORDS {
            assert!(TlsRptRecord::parse(r.as_bytes()).is_ok());
            assert!(mail_auth::mta_sts::TlsRpt::parse(r.as_bytes()).is_ok());
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
        "policy parse+lint (3 mx)",
        ns(policy),
        "-",
        "-"
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

fn row(record: &str, ours: Duration, theirs: Duration) {
    let name: String = record.chars().take(44).collect();
    println!(
        "{name:<44} {:>12.1} {:>12.1} {:>7.2}x",
        ns(ours),
        ns(theirs),
        ns(theirs) / ns(ours)
    );
}
