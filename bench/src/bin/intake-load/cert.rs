//! `intake-load gen-cert DIR`: a test CA and a server certificate for the benchmark's server.

use std::path::Path;

use anyhow::Context as _;
use mta_sts_testnet::TestCa;

/// The name the server certificate is for, and the SNI the load generator sends.
pub const SERVER_NAME: &str = "mta-sts.example.com";

/// Writes `ca.pem` (the root to trust), `cert.pem` (leaf and intermediate) and `key.pem` for
/// [`SERVER_NAME`] into `dir`, creating it.
pub fn generate(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca = TestCa::new("intake-load");
    let identity = ca
        .issue(&[SERVER_NAME])
        .context("cannot issue the server certificate")?;
    let chain: String = identity
        .chain()
        .iter()
        .map(|der| pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec())))
        .collect();
    let key = pem::encode(&pem::Pem::new(
        "PRIVATE KEY",
        identity.private_key().secret_der().to_vec(),
    ));
    for (name, text) in [
        ("ca.pem", ca.root_pem()),
        ("cert.pem", &chain),
        ("key.pem", &key),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
