//! The network layer against the loopback internet of `mta-sts-testnet`: real DNS packets, real
//! TLS handshakes, real SMTP dialogues. One test binary, so it links once.

mod dns;
mod fetch;
mod smtp;

use std::time::Duration;

use mta_sts_net::{Net, NetConfig};
use mta_sts_testnet::{DnsHandle, Lab};

/// A short step timeout: every server here answers at once unless told not to.
const STEP_TIMEOUT: Duration = Duration::from_secs(3);

/// The client of `lab`: its DNS server, trusting its CA, on its ports.
fn net(lab: &Lab, dns: &DnsHandle) -> Net {
    Net::new(config(lab, dns)).unwrap()
}

fn config(lab: &Lab, dns: &DnsHandle) -> NetConfig {
    NetConfig {
        resolver: Some(dns.addr()),
        extra_roots: vec![lab.ca().root_der().clone()],
        // A lab without such servers yet: any port, nothing is reached there.
        https_port: lab.https_port().unwrap_or(9),
        smtp_port: lab.smtp_port().unwrap_or(9),
        timeout: STEP_TIMEOUT,
        fetch_timeout: Duration::from_secs(10),
        ehlo_name: "checker.example.org".to_owned(),
        ..NetConfig::default()
    }
}

#[tokio::test]
async fn ca_file_roots_are_trusted() {
    let lab = Lab::new();
    let web = lab
        .https([mta_sts_testnet::Site::policy(
            "mta-sts.example.com",
            "version: STSv1\nmode: none\nmax_age: 86400\n",
        )])
        .await
        .unwrap();
    let dns = lab
        .dns([mta_sts_testnet::Zone::new("example.com").address("mta-sts", web.ip())])
        .await
        .unwrap();
    let path = std::env::temp_dir().join(format!("mta-sts-net-ca-{}.pem", std::process::id()));
    std::fs::write(&path, lab.ca().root_pem()).unwrap();
    let mut config = config(&lab, &dns);
    config.extra_roots.clear();
    assert_eq!(config.add_ca_file(&path).unwrap(), 1);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(config.extra_roots, [lab.ca().root_der().clone()]);
    let net = Net::new(config).unwrap();
    net.fetch_policy("example.com").await.unwrap();
}

#[test]
fn ca_file_without_certificates_is_an_error() {
    let path = std::env::temp_dir().join(format!("mta-sts-net-empty-{}.pem", std::process::id()));
    std::fs::write(&path, "not a certificate\n").unwrap();
    let error = NetConfig::default().add_ca_file(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(error.to_string().contains("no PEM certificate"), "{error}");
    let missing = NetConfig::default()
        .add_ca_file("/nonexistent/ca.pem")
        .unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/ca.pem"),
        "{missing}"
    );
}

#[test]
fn defaults_are_production_values() {
    let config = NetConfig::default();
    assert_eq!((config.https_port, config.smtp_port), (443, 25));
    assert_eq!(config.resolver, None);
    assert_eq!(config.fetch_timeout, Duration::from_secs(60));
    assert!(config.user_agent.starts_with("mta-sts/"));
    assert!(!config.user_agent.contains("Mozilla"));
}
