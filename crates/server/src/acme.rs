//! Certificates for every `mta-sts.<domain>` from an ACME CA (RFC 8555), validated by
//! TLS-ALPN-01 (RFC 8737) on the HTTPS listeners themselves, so port 80 is never needed.
//!
//! The account and each certificate are kept in the state directory (`account.json`,
//! `<host>.crt`, `<host>.key`) so a restart does not order again. A certificate is renewed once
//! two thirds of its lifetime have passed; a failure is retried every few minutes while the old
//! certificate (if any) is still served.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::config::AcmeConfig;
use crate::tls::{CertResolver, certified_key};

/// Longest sleep between checks, so clock jumps and expiry are noticed.
const RECHECK: Duration = Duration::from_secs(12 * 3600);
/// Wait after a failed order before trying again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(300);
/// How long to wait for the CA to validate and to issue.
const ORDER_PATIENCE: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(120));

/// Why a certificate could not be obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeError {
    /// The ACME exchange failed (network, CA refusal, validation failure).
    #[error("ACME: {0}")]
    Protocol(#[from] instant_acme::Error),
    /// The state directory could not be read or written.
    #[error("{}: {source}", path.display())]
    State {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The CA answered, but not as expected.
    #[error("ACME order for {host}: {message}")]
    Order {
        /// The policy host.
        host: String,
        /// What happened.
        message: String,
    },
}

/// The account file: credentials are only valid for the directory they were made with.
#[derive(Serialize, Deserialize)]
struct SavedAccount {
    directory: String,
    credentials: AccountCredentials,
}

pub(crate) struct Acme {
    config: AcmeConfig,
    state_dir: PathBuf,
    resolver: Arc<CertResolver>,
}

impl Acme {
    pub(crate) fn new(config: AcmeConfig, state_dir: PathBuf, resolver: Arc<CertResolver>) -> Self {
        Acme {
            config,
            state_dir,
            resolver,
        }
    }

    /// Keeps a valid certificate for every host `hosts()` lists until `stop`; checks again when
    /// `changed` is notified (a reload).
    pub(crate) async fn run(
        self,
        hosts: impl Fn() -> Vec<String> + Send + 'static,
        changed: Arc<Notify>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut account = None;
        loop {
            let mut next_check = RECHECK;
            for host in hosts() {
                match self.ensure(&host, &mut account).await {
                    Ok(renew_in) => next_check = next_check.min(renew_in),
                    Err(error) => {
                        tracing::error!(%host, %error, "no certificate yet; retrying in 5 minutes");
                        next_check = next_check.min(RETRY_AFTER_FAILURE);
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(next_check) => {}
                () = changed.notified() => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Makes sure `host` has a certificate that need not be renewed yet; returns when it
    /// should be checked again.
    async fn ensure(
        &self,
        host: &str,
        account: &mut Option<Account>,
    ) -> Result<Duration, AcmeError> {
        if let Some(renew_in) = self.resolver.get(host).and_then(|key| renewal_due_in(&key)) {
            return Ok(renew_in);
        }
        if let Some(key) = self.load_saved(host)
            && let Some(renew_in) = renewal_due_in(&key)
            && names_host(&key, host, "the saved certificate")
        {
            self.resolver.insert(host, key);
            tracing::info!(%host, "certificate loaded from the ACME state directory");
            return Ok(renew_in);
        }
        let account = match account {
            Some(account) => account,
            None => account.insert(self.account().await?),
        };
        let (chain_pem, key_pem) = self.order(account, host).await?;
        let key = parse_pem(&chain_pem, &key_pem).ok_or_else(|| AcmeError::Order {
            host: host.to_owned(),
            message: "the CA sent a certificate that cannot be used with its key".into(),
        })?;
        if !names_host(&key, host, "the certificate the CA sent") {
            return Err(AcmeError::Order {
                host: host.to_owned(),
                message: "the CA sent a certificate for other names".into(),
            });
        }
        self.write_state(&format!("{host}.crt"), chain_pem.as_bytes())?;
        self.write_state(&format!("{host}.key"), key_pem.as_bytes())?;
        let renew_in = renewal_due_in(&key).unwrap_or(RETRY_AFTER_FAILURE);
        self.resolver.insert(host, key);
        tracing::info!(%host, "certificate obtained");
        Ok(renew_in)
    }

    fn load_saved(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        let chain = std::fs::read_to_string(self.state_dir.join(format!("{host}.crt"))).ok()?;
        let key = std::fs::read_to_string(self.state_dir.join(format!("{host}.key"))).ok()?;
        parse_pem(&chain, &key)
    }

    /// The ACME account: the saved one for this directory, or a new one (then saved).
    async fn account(&self) -> Result<Account, AcmeError> {
        // instant-acme builds its HTTPS client on rustls's process-wide provider: make it ring
        // (an error only means one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = || match &self.config.directory_ca {
            Some(ca) => Account::builder_with_root(ca),
            None => Account::builder(),
        };
        let path = self.state_dir.join("account.json");
        if let Ok(text) = std::fs::read_to_string(&path) {
            match serde_json::from_str::<SavedAccount>(&text) {
                Ok(saved) if saved.directory == self.config.directory => {
                    return Ok(builder()?.from_credentials(saved.credentials).await?);
                }
                Ok(_) => tracing::info!("ACME directory changed; creating a new account"),
                Err(error) => {
                    tracing::warn!(%error, path = %path.display(), "unreadable ACME account file; creating a new account")
                }
            }
        }
        let contact = format!("mailto:{}", self.config.email);
        let (account, credentials) = builder()?
            .create(
                &NewAccount {
                    contact: &[&contact],
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.config.directory.clone(),
                None,
            )
            .await?;
        let saved = SavedAccount {
            directory: self.config.directory.clone(),
            credentials,
        };
        let json = serde_json::to_vec_pretty(&saved).map_err(|e| AcmeError::State {
            path: path.clone(),
            source: e.into(),
        })?;
        self.write_state("account.json", &json)?;
        Ok(account)
    }

    /// Orders a certificate for `host` and answers its TLS-ALPN-01 challenge; returns the
    /// chain and key as PEM.
    async fn order(&self, account: &Account, host: &str) -> Result<(String, String), AcmeError> {
        let order_error = |message: String| AcmeError::Order {
            host: host.to_owned(),
            message,
        };
        let identifiers = [Identifier::Dns(host.to_owned())];
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                status => return Err(order_error(format!("authorization is {status:?}"))),
            }
            let mut challenge = authorization
                .challenge(ChallengeType::TlsAlpn01)
                .ok_or_else(|| order_error("the CA offers no tls-alpn-01 challenge".into()))?;
            let digest = challenge.key_authorization().digest();
            let challenge_key = challenge_certificate(host, digest.as_ref())
                .map_err(|e| order_error(format!("challenge certificate: {e}")))?;
            self.resolver.set_challenge(host, Some(challenge_key));
            challenge.set_ready().await?;
        }
        let status = order.poll_ready(&ORDER_PATIENCE).await;
        self.resolver.set_challenge(host, None);
        match status? {
            OrderStatus::Ready => {}
            status => {
                return Err(order_error(format!(
                    "order is {status:?} after validation (is {host} on this server's HTTPS port?)"
                )));
            }
        }
        let key = KeyPair::generate().map_err(|e| order_error(e.to_string()))?;
        let csr = CertificateParams::new(vec![host.to_owned()])
            .and_then(|params| params.serialize_request(&key))
            .map_err(|e| order_error(format!("certificate request: {e}")))?;
        order.finalize_csr(csr.der()).await?;
        let chain = order.poll_certificate(&ORDER_PATIENCE).await?;
        Ok((chain, key.serialize_pem()))
    }

    /// Writes a state file atomically (temporary file, then rename), readable by owner only.
    fn write_state(&self, name: &str, contents: &[u8]) -> Result<(), AcmeError> {
        let path = self.state_dir.join(name);
        let io_error = |source| AcmeError::State {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.state_dir).map_err(|source| AcmeError::State {
            path: self.state_dir.clone(),
            source,
        })?;
        let temporary = self.state_dir.join(format!(".{name}.tmp"));
        let mut file = open_private(&temporary).map_err(io_error)?;
        file.write_all(contents).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        std::fs::rename(&temporary, &path).map_err(io_error)?;
        Ok(())
    }
}

fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// The self-signed certificate that answers a TLS-ALPN-01 challenge (RFC 8737 §3).
fn challenge_certificate(host: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params = CertificateParams::new(vec![host.to_owned()]).map_err(|e| e.to_string())?;
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    // Not `certified_key`: its consistency check parses the certificate with webpki, which
    // refuses the critical acmeIdentifier extension this certificate exists to carry.
    let signing_key = crate::tls::crypto_provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing_key,
    )))
}

/// Whether `key`'s certificate names `host`, which senders check (RFC 8461 §3.3); when not,
/// says so with the names it has.
fn names_host(key: &CertifiedKey, host: &str, which: &str) -> bool {
    let leaf = key
        .end_entity_cert()
        .map(|leaf| leaf.as_ref())
        .unwrap_or_default();
    let Some(names) = crate::config::names_missing(leaf, host) else {
        return true;
    };
    tracing::warn!(%host, ?names, "{which} does not name {host}; not serving it");
    false
}

fn parse_pem(chain: &str, key: &str) -> Option<Arc<CertifiedKey>> {
    let chain = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).ok()?;
    certified_key(chain, key).ok()
}

/// How long until the certificate should be renewed (two thirds into its lifetime); `None`
/// when that is now or past, or the certificate cannot be read.
fn renewal_due_in(key: &CertifiedKey) -> Option<Duration> {
    let leaf = key.end_entity_cert().ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let validity = cert.validity();
    let not_before = validity.not_before.timestamp();
    let not_after = validity.not_after.timestamp();
    let renew_at = not_after - (not_after - not_before) / 3;
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()?;
    let remaining = u64::try_from(renew_at - now).ok()?;
    (remaining > 0).then(|| Duration::from_secs(remaining))
}
