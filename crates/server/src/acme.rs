//! Certificates for every `mta-sts.<domain>` from an ACME CA (RFC 8555), validated by
//! TLS-ALPN-01 (RFC 8737) on the HTTPS listeners themselves, or by HTTP-01 on the plain HTTP
//! listeners (port 80, or behind a proxy that forwards `/.well-known/acme-challenge/`).
//!
//! The account and each certificate are kept in the state directory (`account.json`,
//! `<host>.crt`, `<host>.key`, owner-only) so a restart does not order again. A certificate is
//! renewed once two thirds of its lifetime have passed.
//!
//! Every host has its own task, so one whose validation stalls never holds up the others, and
//! every request to the CA has a time limit (`tls.acme.request_timeout`). After a failed order
//! a host waits before trying again, twice as long after each failure in a row (from
//! [`FIRST_RETRY`] up to [`LONGEST_RETRY`]), and never orders again while
//! [`FAILURES_PER_HOUR`] of its orders failed within the past hour: Let's Encrypt refuses a
//! hostname for an hour after 5 failed validations. The failure times are kept in the state
//! directory (`<host>.failures`), so a restart loop cannot exceed the limit either.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
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

use crate::config::{AcmeChallenge, AcmeConfig};
use crate::tls::{CertResolver, certified_key};

/// Longest sleep between checks, so clock jumps and expiry are noticed.
const RECHECK: Duration = Duration::from_secs(12 * 3600);
/// Wait after the first failed order of a host; doubled after each further failure in a row.
pub(crate) const FIRST_RETRY: Duration = Duration::from_secs(60);
/// The longest wait between two orders of a host that keep failing.
pub(crate) const LONGEST_RETRY: Duration = Duration::from_secs(6 * 3600);
/// Failed orders of a host within an hour after which it waits until the oldest is an hour
/// old: Let's Encrypt's failed-validation limit (5 per hostname per hour).
pub(crate) const FAILURES_PER_HOUR: usize = 5;
const HOUR: u64 = 3600;
/// How long to wait for the CA to validate and to issue (each poll is also a request with
/// the request timeout).
const ORDER_PATIENCE: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(120));
/// [`ORDER_PATIENCE`]'s timeout, for the time limit of a whole poll.
const ORDER_PATIENCE_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a certificate could not be obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeError {
    /// The ACME exchange failed (network, CA refusal, validation failure).
    #[error("ACME: {0}")]
    Protocol(#[from] instant_acme::Error),
    /// The CA did not answer in time.
    #[error("ACME: the CA did not answer within {} s ({what})", timeout.as_secs())]
    Timeout {
        /// The request that went unanswered.
        what: &'static str,
        /// The limit.
        timeout: Duration,
    },
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

/// The key authorizations of pending HTTP-01 challenges by token, served at
/// `/.well-known/acme-challenge/<token>` on every listener.
#[derive(Debug, Default)]
pub(crate) struct Http01Tokens {
    tokens: Mutex<HashMap<String, String>>,
}

impl Http01Tokens {
    /// The key authorization to answer for `token`, while its challenge is pending.
    pub(crate) fn get(&self, token: &str) -> Option<String> {
        self.lock().get(token).cloned()
    }

    fn set(&self, token: &str, key_authorization: Option<String>) {
        let mut tokens = self.lock();
        match key_authorization {
            Some(value) => tokens.insert(token.to_owned(), value),
            None => tokens.remove(token),
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) struct Acme {
    config: AcmeConfig,
    state_dir: PathBuf,
    resolver: Arc<CertResolver>,
    tokens: Arc<Http01Tokens>,
    /// The account, once made or loaded; shared by every host's task.
    account: tokio::sync::Mutex<Option<Account>>,
}

impl Acme {
    pub(crate) fn new(
        config: AcmeConfig,
        state_dir: PathBuf,
        resolver: Arc<CertResolver>,
        tokens: Arc<Http01Tokens>,
    ) -> Self {
        Acme {
            config,
            state_dir,
            resolver,
            tokens,
            account: tokio::sync::Mutex::new(None),
        }
    }

    /// Keeps a valid certificate for every host `hosts()` lists until `stop`, each host in a
    /// task of its own; looks at the list again when `changed` is notified (a reload).
    pub(crate) async fn run(
        self,
        hosts: impl Fn() -> Vec<String> + Send + 'static,
        changed: Arc<Notify>,
        mut stop: watch::Receiver<bool>,
    ) {
        let acme = Arc::new(self);
        let mut tasks: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            let wanted: HashSet<String> = hosts().into_iter().collect();
            tasks.retain(|host, task| {
                let keep = wanted.contains(host);
                if !keep {
                    task.abort();
                }
                keep
            });
            for host in wanted {
                tasks
                    .entry(host.clone())
                    .or_insert_with(|| tokio::spawn(Arc::clone(&acme).keep(host)));
            }
            tokio::select! {
                () = changed.notified() => {}
                _ = stop.changed() => break,
            }
        }
        for task in tasks.into_values() {
            task.abort();
        }
    }

    /// Keeps `host`'s certificate valid, forever: orders when there is none or it is due for
    /// renewal, and backs off after failures.
    async fn keep(self: Arc<Self>, host: String) {
        let mut backoff = Backoff::new(self.load_failures(&host));
        loop {
            let now = unix_now();
            let wait = match backoff.wait_before_order(now) {
                Some(wait) => wait,
                None => match self.ensure(&host).await {
                    Ok(renew_in) => {
                        // Only a change is written: a host that never failed has no file.
                        if backoff.succeeded() {
                            self.save_failures(&host, &backoff);
                        }
                        renew_in.min(RECHECK)
                    }
                    Err(error) => {
                        backoff.failed(unix_now());
                        self.save_failures(&host, &backoff);
                        let wait = backoff.wait_before_order(unix_now()).unwrap_or_default();
                        tracing::error!(
                            %host,
                            %error,
                            failures = backoff.in_a_row,
                            "no certificate; ordering again in {} s",
                            wait.as_secs()
                        );
                        wait
                    }
                },
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Makes sure `host` has a certificate that need not be renewed yet; returns when it
    /// should be checked again.
    async fn ensure(&self, host: &str) -> Result<Duration, AcmeError> {
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
        let account = self.account().await?;
        let (chain_pem, key_pem) = self.order(&account, host).await?;
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
        // The key first: a certificate file is never there without its key.
        self.write_state(&format!("{host}.key"), key_pem.as_bytes())?;
        self.write_state(&format!("{host}.crt"), chain_pem.as_bytes())?;
        let renew_in = renewal_due_in(&key).unwrap_or(FIRST_RETRY);
        self.resolver.insert(host, key);
        tracing::info!(%host, "certificate obtained");
        Ok(renew_in)
    }

    fn load_saved(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        let chain = std::fs::read_to_string(self.state_dir.join(format!("{host}.crt"))).ok()?;
        let key = std::fs::read_to_string(self.state_dir.join(format!("{host}.key"))).ok()?;
        parse_pem(&chain, &key)
    }

    /// `call`, given up after the request timeout.
    async fn call<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = Result<T, instant_acme::Error>>,
    ) -> Result<T, AcmeError> {
        self.within(what, self.config.request_timeout, call).await
    }

    /// `call`, given up after `timeout`.
    async fn within<T>(
        &self,
        what: &'static str,
        timeout: Duration,
        call: impl Future<Output = Result<T, instant_acme::Error>>,
    ) -> Result<T, AcmeError> {
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(AcmeError::Timeout { what, timeout }),
        }
    }

    /// The ACME account: the one already in use, the saved one for this directory, or a new
    /// one (then saved).
    async fn account(&self) -> Result<Account, AcmeError> {
        // One task makes the account; the others wait for it rather than make their own.
        let mut account = self.account.lock().await;
        if let Some(account) = account.as_ref() {
            return Ok(account.clone());
        }
        let made = self.load_or_create_account().await?;
        *account = Some(made.clone());
        Ok(made)
    }

    async fn load_or_create_account(&self) -> Result<Account, AcmeError> {
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
                    return self
                        .call("directory", builder()?.from_credentials(saved.credentials))
                        .await;
                }
                Ok(_) => tracing::info!("ACME directory changed; creating a new account"),
                Err(error) => {
                    tracing::warn!(%error, path = %path.display(), "unreadable ACME account file; creating a new account")
                }
            }
        }
        let contact = format!("mailto:{}", self.config.email);
        let (account, credentials) = self
            .call(
                "new account",
                builder()?.create(
                    &NewAccount {
                        contact: &[&contact],
                        terms_of_service_agreed: true,
                        only_return_existing: false,
                    },
                    self.config.directory.clone(),
                    None,
                ),
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

    /// Orders a certificate for `host` and answers its challenge; returns the chain and key
    /// as PEM. Whatever happens, the challenge answers are withdrawn afterwards.
    async fn order(&self, account: &Account, host: &str) -> Result<(String, String), AcmeError> {
        let mut tokens = Vec::new();
        let result = self.order_answering(account, host, &mut tokens).await;
        self.resolver.set_challenge(host, None);
        for token in tokens {
            self.tokens.set(&token, None);
        }
        result
    }

    async fn order_answering(
        &self,
        account: &Account,
        host: &str,
        tokens: &mut Vec<String>,
    ) -> Result<(String, String), AcmeError> {
        let order_error = |message: String| AcmeError::Order {
            host: host.to_owned(),
            message,
        };
        let identifiers = [Identifier::Dns(host.to_owned())];
        let mut order = self
            .call("new order", account.new_order(&NewOrder::new(&identifiers)))
            .await?;
        let challenge_type = match self.config.challenge {
            AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            AcmeChallenge::Http01 => ChallengeType::Http01,
        };
        let mut authorizations = order.authorizations();
        loop {
            let next = authorizations.next();
            let Some(authorization) = self
                .call("authorization", async { next.await.transpose() })
                .await?
            else {
                break;
            };
            let mut authorization = authorization;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                status => return Err(order_error(format!("authorization is {status:?}"))),
            }
            let mut challenge =
                authorization
                    .challenge(challenge_type.clone())
                    .ok_or_else(|| {
                        order_error(format!(
                            "the CA offers no {} challenge",
                            self.config.challenge
                        ))
                    })?;
            let key_authorization = challenge.key_authorization();
            match self.config.challenge {
                AcmeChallenge::TlsAlpn01 => {
                    let digest = key_authorization.digest();
                    let challenge_key = challenge_certificate(host, digest.as_ref())
                        .map_err(|e| order_error(format!("challenge certificate: {e}")))?;
                    self.resolver.set_challenge(host, Some(challenge_key));
                }
                AcmeChallenge::Http01 => {
                    let token = challenge.token.clone();
                    self.tokens
                        .set(&token, Some(key_authorization.as_str().to_owned()));
                    tokens.push(token);
                }
            }
            self.call("challenge ready", challenge.set_ready()).await?;
        }
        let status = self
            .within(
                "order status",
                ORDER_PATIENCE_TIMEOUT + self.config.request_timeout,
                order.poll_ready(&ORDER_PATIENCE),
            )
            .await?;
        match status {
            OrderStatus::Ready => {}
            status => {
                let how = match self.config.challenge {
                    AcmeChallenge::TlsAlpn01 => "on this server's HTTPS port",
                    AcmeChallenge::Http01 => {
                        "reaching this server's HTTP listener on port 80, directly or by a proxy"
                    }
                };
                return Err(order_error(format!(
                    "order is {status:?} after validation (is {host} {how}?)"
                )));
            }
        }
        let key = KeyPair::generate().map_err(|e| order_error(e.to_string()))?;
        let csr = CertificateParams::new(vec![host.to_owned()])
            .and_then(|params| params.serialize_request(&key))
            .map_err(|e| order_error(format!("certificate request: {e}")))?;
        self.call("finalize", order.finalize_csr(csr.der())).await?;
        let chain = self
            .within(
                "certificate",
                ORDER_PATIENCE_TIMEOUT + self.config.request_timeout,
                order.poll_certificate(&ORDER_PATIENCE),
            )
            .await?;
        Ok((chain, key.serialize_pem()))
    }

    /// The failure times saved for `host` (unreadable or missing: none).
    fn load_failures(&self, host: &str) -> Vec<u64> {
        std::fs::read_to_string(self.state_dir.join(format!("{host}.failures")))
            .map(|text| {
                text.lines()
                    .filter_map(|line| line.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn save_failures(&self, host: &str, backoff: &Backoff) {
        let text: String = backoff
            .failures
            .iter()
            .map(|time| format!("{time}\n"))
            .collect();
        if let Err(error) = self.write_state(&format!("{host}.failures"), text.as_bytes()) {
            tracing::warn!(%host, %error, "cannot save the ACME failure times");
        }
    }

    /// Writes a state file atomically (temporary file, then rename, then the directory
    /// flushed), readable by the owner only, in a directory only the owner can enter.
    fn write_state(&self, name: &str, contents: &[u8]) -> Result<(), AcmeError> {
        let path = self.state_dir.join(name);
        let io_error = |source| AcmeError::State {
            path: path.clone(),
            source,
        };
        let dir_error = |source| AcmeError::State {
            path: self.state_dir.clone(),
            source,
        };
        private_dir(&self.state_dir).map_err(dir_error)?;
        let temporary = self.state_dir.join(format!(".{name}.tmp"));
        let mut file = open_private(&temporary).map_err(io_error)?;
        file.write_all(contents).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        drop(file);
        std::fs::rename(&temporary, &path).map_err(io_error)?;
        // The rename is only durable once the directory is on disk too.
        std::fs::File::open(&self.state_dir)
            .and_then(|dir| dir.sync_all())
            .map_err(dir_error)?;
        Ok(())
    }
}

/// When a host may order again: exponential back-off over the failures in a row, and at most
/// [`FAILURES_PER_HOUR`] failures in any hour. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// Failures in a row, since the last success (at least those of the past hour).
    in_a_row: u32,
    /// When the last failures happened, oldest first (the past hour's, and the last one).
    failures: Vec<u64>,
}

impl Backoff {
    /// The state after the saved `failures` (Unix seconds).
    pub(crate) fn new(mut failures: Vec<u64>) -> Self {
        failures.sort_unstable();
        Backoff {
            in_a_row: u32::try_from(failures.len()).unwrap_or(u32::MAX),
            failures,
        }
    }

    pub(crate) fn failed(&mut self, now: u64) {
        self.in_a_row = self.in_a_row.saturating_add(1);
        self.failures.push(now);
        // Only the past hour counts toward the limit; the last failure dates the back-off.
        let last = self.failures.len() - 1;
        let mut index = 0;
        self.failures.retain(|&time| {
            let keep = time + HOUR > now || index == last;
            index += 1;
            keep
        });
    }

    /// Forgets the failures; true when there were any.
    pub(crate) fn succeeded(&mut self) -> bool {
        let had_failures = !self.failures.is_empty();
        self.in_a_row = 0;
        self.failures.clear();
        had_failures
    }

    /// How long to wait before the next order, `None` when it may be placed now.
    pub(crate) fn wait_before_order(&self, now: u64) -> Option<Duration> {
        let last = *self.failures.last()?;
        let exponent = self.in_a_row.saturating_sub(1).min(20);
        let backoff = FIRST_RETRY
            .saturating_mul(1 << exponent)
            .min(LONGEST_RETRY)
            .as_secs();
        let mut allowed_at = last.saturating_add(backoff);
        let recent: Vec<u64> = self
            .failures
            .iter()
            .copied()
            .filter(|&time| time + HOUR > now)
            .collect();
        if recent.len() >= FAILURES_PER_HOUR {
            // The oldest of the last FAILURES_PER_HOUR must leave the hour first.
            let oldest = recent[recent.len() - FAILURES_PER_HOUR];
            allowed_at = allowed_at.max(oldest + HOUR);
        }
        (allowed_at > now).then(|| Duration::from_secs(allowed_at - now))
    }
}

/// Creates `dir` (and its parents) when missing, and makes it owner-only (0700) whatever it was.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Opens `path` for writing, empty and owner-only (0600) even when it existed with other
/// permissions.
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
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
    let now = i64::try_from(unix_now()).ok()?;
    let remaining = u64::try_from(renew_at - now).ok()?;
    (remaining > 0).then(|| Duration::from_secs(remaining))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    #[test]
    fn a_host_without_failures_orders_at_once() {
        assert_eq!(Backoff::new(Vec::new()).wait_before_order(T0), None);
    }

    #[test]
    fn the_wait_doubles_after_each_failure_in_a_row() {
        let mut backoff = Backoff::new(Vec::new());
        let mut now = T0;
        let mut waits = Vec::new();
        for _ in 0..4 {
            backoff.failed(now);
            let wait = backoff.wait_before_order(now).unwrap();
            waits.push(wait.as_secs());
            now += wait.as_secs();
            assert_eq!(backoff.wait_before_order(now), None);
        }
        assert_eq!(waits, [60, 120, 240, 480]);
    }

    #[test]
    fn the_wait_never_exceeds_the_longest_retry() {
        let mut backoff = Backoff::new(Vec::new());
        for n in 0..40 {
            backoff.failed(T0 + n * 100_000);
        }
        let last = T0 + 39 * 100_000;
        assert_eq!(backoff.wait_before_order(last), Some(LONGEST_RETRY));
    }

    /// Let's Encrypt: 5 failed validations per hostname per hour. However the failures come,
    /// no sliding hour ever holds more than 5 orders that failed.
    #[test]
    fn no_hour_holds_more_than_five_failed_orders() {
        let mut backoff = Backoff::new(Vec::new());
        let mut now = T0;
        let mut orders = Vec::new();
        for _ in 0..30 {
            if let Some(wait) = backoff.wait_before_order(now) {
                now += wait.as_secs();
            }
            orders.push(now);
            backoff.failed(now);
        }
        for &start in &orders {
            let in_hour = orders
                .iter()
                .filter(|&&t| t >= start && t < start + HOUR)
                .count();
            assert!(
                in_hour <= FAILURES_PER_HOUR,
                "{in_hour} in the hour from {start}"
            );
        }
    }

    #[test]
    fn five_saved_failures_in_the_past_hour_hold_orders_until_the_oldest_is_an_hour_old() {
        // A restart loop: five failures a minute apart, read back from the state directory.
        let failures: Vec<u64> = (0..5).map(|n| T0 + n * 60).collect();
        let backoff = Backoff::new(failures);
        let now = T0 + 5 * 60;
        let wait = backoff.wait_before_order(now).unwrap();
        assert!(T0 + HOUR <= now + wait.as_secs(), "{wait:?}");
    }

    #[test]
    fn a_success_clears_the_back_off() {
        let mut backoff = Backoff::new(vec![T0, T0 + 60]);
        assert!(backoff.succeeded());
        assert!(!backoff.succeeded(), "nothing left to forget");
        assert_eq!(backoff.wait_before_order(T0 + 61), None);
        backoff.failed(T0 + 100);
        assert_eq!(
            backoff.wait_before_order(T0 + 100),
            Some(FIRST_RETRY),
            "the first failure after a success waits the shortest time"
        );
    }

    #[test]
    fn state_files_are_owner_only_even_when_they_existed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("acme");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A stale temporary file, world-readable.
        let stale = state.join(".h.key.tmp");
        std::fs::write(&stale, "old").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
        let acme = Acme::new(
            AcmeConfig {
                email: "a@example.com".into(),
                directory: "https://ca.invalid/dir".into(),
                directory_ca: None,
                state_dir: None,
                challenge: AcmeChallenge::TlsAlpn01,
                request_timeout: Duration::from_secs(1),
            },
            state.clone(),
            Arc::new(CertResolver::default()),
            Arc::new(Http01Tokens::default()),
        );
        acme.write_state("h.key", b"secret").unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join("h.key")), 0o600);
        assert_eq!(std::fs::read(state.join("h.key")).unwrap(), b"secret");
        assert!(!stale.exists(), "the temporary file was renamed");
        // A fresh state directory, parents included, is owner-only from the start.
        let nested = dir.path().join("new/acme");
        private_dir(&nested).unwrap();
        assert_eq!(mode(&nested), 0o700);
    }
}
