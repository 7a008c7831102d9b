//! Server certificates chosen by SNI, from PEM files or ACME, and the rustls server config.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::{CertFiles, Config};

/// The ALPN protocol of ACME TLS-ALPN-01 challenges (RFC 8737).
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Why a certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The key does not fit the certificate, or is of a kind rustls cannot sign with.
    #[error("{} and {}: {message}", cert.display(), key.display())]
    KeyMismatch {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// What rustls said.
        message: String,
    },
}

/// The rustls provider of every TLS config here: ring, named explicitly so that no other
/// provider compiled into the binary makes the process default ambiguous.
pub(crate) fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads a certificate chain and key from PEM files into what rustls serves.
///
/// # Errors
/// [`TlsError`] naming the file at fault.
pub fn load_cert_files(files: &CertFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let file_error = |path: &Path, message: String| TlsError::File {
        path: path.to_owned(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(&files.cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_error(
            &files.cert,
            "no CERTIFICATE block in this PEM file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| file_error(&files.key, format!("no usable private key: {e}")))?;
    certified_key(chain, key).map_err(|message| TlsError::KeyMismatch {
        cert: files.cert.clone(),
        key: files.key.clone(),
        message,
    })
}

/// A chain and key checked to belong together.
pub(crate) fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, String> {
    CertifiedKey::from_der(chain, key, &crypto_provider())
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// The certificates of every policy host, by SNI name, from [`Config`]'s files.
///
/// # Errors
/// The first file that cannot be loaded.
pub(crate) fn load_config_certs(
    config: &Config,
) -> Result<HashMap<String, Arc<CertifiedKey>>, TlsError> {
    // Domains often share one certificate: load each pair of files once.
    let mut loaded: HashMap<&CertFiles, Arc<CertifiedKey>> = HashMap::new();
    let mut certs = HashMap::new();
    for domain in config.domains() {
        let Some(files) = domain.cert_files() else {
            continue;
        };
        let key = match loaded.get(files) {
            Some(key) => key.clone(),
            None => {
                let key = load_cert_files(files)?;
                loaded.insert(files, key.clone());
                key
            }
        };
        certs.insert(domain.policy_host(), key);
    }
    Ok(certs)
}

/// Chooses the certificate by SNI: the policy host's certificate, or during an ACME
/// TLS-ALPN-01 validation (ALPN `acme-tls/1`) the challenge certificate.
#[derive(Debug, Default)]
pub(crate) struct CertResolver {
    /// Serving certificates by lowercase host name; swapped whole on reload or renewal.
    certs: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
    /// TLS-ALPN-01 challenge certificates by host name, present only while a validation runs.
    challenges: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl CertResolver {
    pub(crate) fn replace_all(&self, certs: HashMap<String, Arc<CertifiedKey>>) {
        self.certs.store(Arc::new(certs));
    }

    pub(crate) fn insert(&self, host: &str, key: Arc<CertifiedKey>) {
        self.certs.rcu(|certs| {
            let mut certs = HashMap::clone(certs);
            certs.insert(host.to_owned(), key.clone());
            certs
        });
    }

    pub(crate) fn get(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        self.certs.load().get(host).cloned()
    }

    pub(crate) fn set_challenge(&self, host: &str, key: Option<Arc<CertifiedKey>>) {
        let mut challenges = self
            .challenges
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match key {
            Some(key) => challenges.insert(host.to_owned(), key),
            None => challenges.remove(host),
        };
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let host = hello.server_name()?.to_ascii_lowercase();
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            return self
                .challenges
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&host)
                .cloned();
        }
        self.get(&host)
    }
}

/// The server config of the HTTPS listeners: HTTP/1.1, plus `acme-tls/1` for ACME validations.
pub(crate) fn server_config(resolver: Arc<CertResolver>, acme: bool) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if acme {
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    Arc::new(config)
}
