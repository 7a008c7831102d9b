//! A full `check` of one domain on the loopback lab: TXT, policy fetch over HTTPS, MX, two MX
//! hosts over SMTP + STARTTLS + certificate verification, TLS-RPT record.
//!
//! `cargo bench -p mta-sts-bench --bench check` prints the time of one check (median and best
//! of the runs). Real networks add their round trips; this measures our own cost.

use std::time::{Duration, Instant};

use mta_sts_check::{CheckOptions, SenderVerdict, analyze, gather};
use mta_sts_net::{Net, NetConfig};
use mta_sts_testnet::{Lab, Site, SmtpBehaviour, Zone};

const POLICY: &str =
    "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: mx2.example.com\nmax_age: 1209600\n";

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let lab = Lab::new();
        let web = lab.https([Site::policy("mta-sts.example.com", POLICY)]).await.unwrap();
        let mx1 = lab
            .smtp("mx1.example.com", SmtpBehaviour::starttls(lab.ca().issue(&["mx1.example.com"]).unwrap()))
            .await
            .unwrap();
        let mx2 = lab
            .smtp("mx2.example.com", SmtpBehaviour::starttls(lab.ca().issue(&["mx2.example.com"]).unwrap()))
            .await
            .unwrap();
        let dns = lab
            .dns([Zone::new("example.com")
                .txt("_mta-sts", &["v=STSv1; id=1"])
                .txt("_smtp._tls", &["v=TLSRPTv1; rua=mailto:tlsrpt@example.com"])
                .address("mta-sts", web.ip())
                .mx(10, "mx1.example.com")
                .mx(20, "mx2.example.com")
                .address("mx1", mx1.ip())
                .address("mx2", mx2.ip())])
            .await
            .unwrap();
        let net = Net::new(NetConfig {
            resolver: Some(dns.addr()),
            extra_roots: vec![lab.ca().root_der().clone()],
            https_port: lab.https_port().unwrap(),
            smtp_port: lab.smtp_port().unwrap(),
            ..NetConfig::default()
        })
        .unwrap();
        let runs = if quick { 1 } else { 50 };
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            let report = analyze(gather(&net, "example.com", CheckOptions::default()).await);
            times.push(start.elapsed());
            assert_eq!(report.sender, SenderVerdict::Protected, "{:?}", report.findings);
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        if !quick {
            println!(
                "full check, 1 domain, 2 MX (loopback): median {:.2} ms, best {:.2} ms over {runs} runs",
                ms(times[runs / 2]),
                ms(times[0])
            );
        }
    });
}
