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
