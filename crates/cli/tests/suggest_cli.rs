//! `mta-sts suggest` as a user runs it on the loopback lab: warnings before a step backwards,
//! and a non-zero exit when there is nothing safe to suggest.

mod support;

use std::process::Output;

use support::{lab_ca_file, lab_flags, run_beside_lab};

use mta_sts_testnet::{DnsHandle, HttpsHandle, Lab, Site, Zone};

struct Domain {
    lab: Lab,
    dns: DnsHandle,
    _web: HttpsHandle,
    ca_file: std::path::PathBuf,
}

async fn domain(policy: &str, mx: &[&str]) -> Domain {
    let lab = Lab::new();
    let web = lab
        .https([Site::policy("mta-sts.example.com", policy)])
        .await
        .unwrap();
    let mut zone = Zone::new("example.com")
        .address("mta-sts", web.ip())
        .txt("_mta-sts", &["v=STSv1; id=1"])
        .txt(
            "_smtp._tls",
            &["v=TLSRPTv1; rua=https://reports.example.com/tlsrpt"],
        );
    for host in mx {
        zone = zone.mx(10, host);
    }
    let dns = lab.dns([zone]).await.unwrap();
    let ca_file = lab_ca_file(&lab);
    Domain {
        lab,
        dns,
        _web: web,
        ca_file,
    }
}

impl Domain {
    /// Runs `mta-sts suggest example.com EXTRA...` against this lab, off the async runtime so
    /// the lab keeps serving.
    async fn suggest(&self, extra: &[&str]) -> Output {
        let mut args: Vec<String> = vec!["suggest".into(), "example.com".into()];
        args.extend(lab_flags(&self.lab, &self.dns, &self.ca_file));
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        run_beside_lab(args).await
    }
}

const ENFORCE: &str = "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 1209600\n";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_enforcing_domain_is_not_sent_back_to_testing() {
    let d = domain(ENFORCE, &["mx1.example.com", "mx2.example.com"]).await;
    let out = d.suggest(&[]).await;
    let text = text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("    mode: enforce"), "{text}");
    assert!(!text.contains("testing"), "{text}");
    assert!(text.contains("Publish the new policy first"), "{text}");
    // The https: intake published now is kept.
    assert!(
        text.contains("IN TXT \"v=TLSRPTv1; rua=https://reports.example.com/tlsrpt\""),
        "{text}"
    );
    assert!(!text.contains("mailto:tlsrpt@"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn asking_for_testing_on_an_enforcing_domain_prints_a_warning() {
    let d = domain(ENFORCE, &["mx1.example.com"]).await;
    let out = d.suggest(&["--mode", "testing"]).await;
    let text = text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("warning[lowers-protection]: this lowers protection"),
        "{text}"
    );
    assert!(text.contains("mode: enforce -> testing"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_domain_without_mx_records_exits_1_with_a_warning() {
    let d = domain(ENFORCE, &[]).await;
    let out = d.suggest(&[]).await;
    let text = text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("warning[no-mx]"), "{text}");
    assert!(!text.contains("mx: example.com"), "{text}");
    let out = d.suggest(&["--json"]).await;
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["usable"], false);
    assert_eq!(v["suggestion"]["warnings"][0]["code"], "no-mx");
}
