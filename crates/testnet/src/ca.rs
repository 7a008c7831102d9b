//! A test certificate authority issuing good and deliberately bad server certificates.

use std::fmt;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use time::{Duration, OffsetDateTime};

/// The crypto provider every config of this crate uses, named explicitly so that a workspace
/// which also enables aws-lc-rs does not make rustls's process default ambiguous.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate authority for tests: a self-signed root and an intermediate signed by it.
///
/// Leaf certificates are signed by the intermediate and served with it, as public CAs do, so
/// that [`TestCa::issue_without_intermediate`] can show a client that does not fetch missing
/// intermediates. Trust [`TestCa::root_der`] (or use [`TestCa::root_store`]).
/// A second `TestCa` is an "untrusted CA" for a client that trusts only the first.
/// Cloning is cheap and yields the same CA.
#[derive(Clone)]
pub struct TestCa {
    /// Distinguishes CAs in certificate subjects, which makes handshake errors readable.
    name: String,
    root_der: CertificateDer<'static>,
    root_pem: String,
    intermediate_der: CertificateDer<'static>,
    intermediate: Arc<Issuer<'static, KeyPair>>,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Why building a certificate failed (an invalid DNS name, typically).
pub type CertificateError = rcgen::Error;

impl TestCa {
    /// A new CA whose subjects carry `name` ("Test Root CA", "Untrusted CA", ...).
    ///
    /// # Panics
    /// Only if key generation fails, which ring does not do for P-256.
    pub fn new(name: &str) -> Self {
        let mut root_params = ca_params(&format!("{name} root"));
        root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let root_key = new_key();
        let root_cert = root_params
            .self_signed(&root_key)
            .expect("a CA certificate without names is always valid");
        let root = Issuer::new(root_params, root_key);

        let mut intermediate_params = ca_params(&format!("{name} intermediate"));
        intermediate_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        intermediate_params.use_authority_key_identifier_extension = true;
        let intermediate_key = new_key();
        let intermediate_cert = intermediate_params
            .signed_by(&intermediate_key, &root)
            .expect("a CA certificate without names is always valid");

        Self {
            name: name.to_owned(),
            root_der: root_cert.der().clone(),
            root_pem: root_cert.pem(),
            intermediate_der: intermediate_cert.der().clone(),
            intermediate: Arc::new(Issuer::new(intermediate_params, intermediate_key)),
        }
    }

    /// The root certificate, DER encoded: what a client must trust.
    pub fn root_der(&self) -> &CertificateDer<'static> {
        &self.root_der
    }

    /// The root certificate, PEM encoded (for tools that read a CA file, such as Postfix).
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// A root store trusting only this CA.
    pub fn root_store(&self) -> RootCertStore {
        let mut store = RootCertStore::empty();
        store
            .add(self.root_der.clone())
            .expect("rcgen produces a parseable root certificate");
        store
    }

    /// A rustls client config trusting only this CA (TLS 1.2 and 1.3, ring provider).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        Arc::new(
            ClientConfig::builder_with_provider(crypto_provider())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(self.root_store())
                .with_no_client_auth(),
        )
    }

    /// A certificate valid now for `dns_names`, served with its intermediate.
    pub fn issue(&self, dns_names: &[&str]) -> Result<Identity, CertificateError> {
        self.issue_valid_between(dns_names, days_from_now(-1), days_from_now(30))
    }

    /// A certificate for `dns_names` that expired yesterday.
    pub fn issue_expired(&self, dns_names: &[&str]) -> Result<Identity, CertificateError> {
        self.issue_valid_between(dns_names, days_from_now(-30), days_from_now(-1))
    }

    /// A certificate for `dns_names` that becomes valid tomorrow.
    pub fn issue_not_yet_valid(&self, dns_names: &[&str]) -> Result<Identity, CertificateError> {
        self.issue_valid_between(dns_names, days_from_now(1), days_from_now(30))
    }

    /// A valid certificate for `dns_names` served without its intermediate, so a client cannot
    /// build a chain to the root.
    pub fn issue_without_intermediate(
        &self,
        dns_names: &[&str],
    ) -> Result<Identity, CertificateError> {
        let mut identity = self.issue(dns_names)?;
        identity.chain.truncate(1);
        Ok(identity)
    }

    /// A certificate for `dns_names` valid from `not_before` to `not_after`.
    pub fn issue_valid_between(
        &self,
        dns_names: &[&str],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Identity, CertificateError> {
        let mut params = leaf_params(dns_names)?;
        params.not_before = not_before;
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        let key = new_key();
        let leaf = params.signed_by(&key, &self.intermediate)?;
        Ok(Identity::new(
            vec![leaf.der().clone(), self.intermediate_der.clone()],
            &key,
        ))
    }
}

/// A self-signed leaf certificate for `dns_names`, trusted by nobody.
pub fn self_signed(dns_names: &[&str]) -> Result<Identity, CertificateError> {
    let params = leaf_params(dns_names)?;
    let key = new_key();
    let cert = params.self_signed(&key)?;
    Ok(Identity::new(vec![cert.der().clone()], &key))
}

/// A certificate chain and its private key: what a TLS server presents.
#[derive(Clone)]
pub struct Identity {
    /// Leaf first, then any intermediates, as sent in the TLS Certificate message.
    chain: Vec<CertificateDer<'static>>,
    /// PKCS#8 DER of the leaf's key.
    key_der: Arc<[u8]>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl Identity {
    fn new(chain: Vec<CertificateDer<'static>>, key: &KeyPair) -> Self {
        Self {
            chain,
            key_der: key.serialize_der().into(),
        }
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The leaf's private key.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.to_vec()))
    }

    /// The key and chain in the form a rustls certificate resolver returns.
    pub fn certified_key(&self) -> Arc<rustls::sign::CertifiedKey> {
        let provider = crypto_provider();
        let signing_key = provider
            .key_provider
            .load_private_key(self.private_key())
            .expect("ring loads the P-256 keys rcgen generates");
        Arc::new(rustls::sign::CertifiedKey::new(
            self.chain.clone(),
            signing_key,
        ))
    }

    /// A rustls server config presenting this identity to every client, with `alpn` protocols.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        let mut config = ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.private_key())
            .expect("ring loads the P-256 keys rcgen generates");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

fn new_key() -> KeyPair {
    KeyPair::generate().expect("ring generates P-256 keys")
}

fn days_from_now(days: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::days(days)
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params.not_before = days_from_now(-2);
    params.not_after = days_from_now(3650);
    params
}

fn leaf_params(dns_names: &[&str]) -> Result<CertificateParams, CertificateError> {
    let names: Vec<String> = dns_names.iter().map(|name| (*name).to_owned()).collect();
    let mut params = CertificateParams::new(names)?;
    if let Some(first) = dns_names.first() {
        params.distinguished_name.push(DnType::CommonName, *first);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = days_from_now(-1);
    params.not_after = days_from_now(30);
    Ok(params)
}
