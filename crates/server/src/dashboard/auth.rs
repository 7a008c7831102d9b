//! Who may see the dashboard, the API and `/metrics`: users from `[[dashboard.user]]` with
//! argon2 password hashes, API tokens from `[[dashboard.token]]` (their SHA-256 in the config),
//! sessions in memory behind a `Secure; HttpOnly; SameSite=Strict` cookie, a CSRF token per
//! session for every action, and failed logins rate-limited per address and per user name.
//!
//! What a request may see is decided here and only here: [`Viewer::scope`] is the set of
//! domains every query of the request is made with.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use http::HeaderMap;
use http::header;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::config::ConfigError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "mta_sts_session";
/// The cookie that ties a login form to the browser that asked for it.
pub(crate) const LOGIN_COOKIE: &str = "mta_sts_login";
/// Default session lifetime (`dashboard.session_hours`).
pub const DEFAULT_SESSION_HOURS: u64 = 12;
/// Failed logins allowed per address, and per user name, within [`LOGIN_WINDOW`].
pub const MAX_FAILED_LOGINS: u32 = 5;
/// See [`MAX_FAILED_LOGINS`].
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Open sessions kept at most; the oldest go first.
const MAX_SESSIONS: usize = 10_000;
/// Addresses and names whose failures are remembered at most (a flood of addresses must not
/// grow memory without bound).
const MAX_TRACKED: usize = 100_000;
/// Password checks run at once: argon2 takes tens of milliseconds of CPU each.
const VERIFY_SLOTS: usize = 2;

/// `[dashboard]`: who may log in. No users and no tokens: the dashboard, API and metrics are
/// off (404), never open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DashboardConfig {
    /// `[[dashboard.user]]`.
    pub users: Vec<User>,
    /// `[[dashboard.token]]`.
    pub tokens: Vec<ApiToken>,
    /// How long a session lasts after login.
    pub session_lifetime: Duration,
}

impl DashboardConfig {
    /// Whether the dashboard is served at all.
    pub fn enabled(&self) -> bool {
        !self.users.is_empty() || !self.tokens.is_empty()
    }
}

/// A dashboard user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The login name.
    pub name: String,
    /// The argon2 hash in PHC form, as `mta-sts passwd` prints it.
    pub password_hash: String,
    /// The domains the user may see; `None`: all.
    pub domains: Option<BTreeSet<String>>,
}

/// An API bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// What it is for (shown in the log).
    pub name: String,
    /// SHA-256 of the token, lowercase hex, as `mta-sts passwd --token` prints it.
    pub sha256: String,
    /// The domains it may see; `None`: all.
    pub domains: Option<BTreeSet<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDashboard {
    #[serde(default)]
    user: Vec<RawUser>,
    #[serde(default)]
    token: Vec<RawToken>,
    session_hours: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: String,
    password_hash: String,
    domains: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    sha256: String,
    domains: Option<Vec<String>>,
}

/// Checks `[dashboard]` against the configured `domains` (normalized names) and the intake
/// path, which must not be one of the dashboard's.
pub(crate) fn check_config(
    raw: RawDashboard,
    domains: &[String],
    intake_path: &str,
) -> Result<DashboardConfig, ConfigError> {
    let field = |field: String, message: String| ConfigError::Field { field, message };
    let known: BTreeSet<&str> = domains.iter().map(String::as_str).collect();
    let restrict = |at: &str, list: Option<Vec<String>>| -> Result<_, ConfigError> {
        let Some(list) = list else { return Ok(None) };
        let mut set = BTreeSet::new();
        for name in list {
            let normal = name.trim_end_matches('.').to_ascii_lowercase();
            if !known.contains(normal.as_str()) {
                return Err(field(
                    format!("{at}.domains"),
                    format!("{name:?} is not a configured [[domain]]; list only served domains"),
                ));
            }
            set.insert(normal);
        }
        Ok(Some(set))
    };
    let mut names = BTreeSet::new();
    let mut users = Vec::new();
    for (index, user) in raw.user.into_iter().enumerate() {
        let at = format!("dashboard.user[{index}]");
        if user.name.is_empty() || user.name.chars().any(char::is_control) {
            return Err(field(
                format!("{at}.name"),
                "must be a non-empty name without control characters".into(),
            ));
        }
        if !names.insert(user.name.clone()) {
            return Err(field(
                format!("{at}.name"),
                format!("{:?} is listed twice", user.name),
            ));
        }
        let parsed = PasswordHash::new(&user.password_hash).map_err(|error| {
            field(
                format!("{at}.password_hash"),
                format!("not an argon2 hash ({error}); make one with `mta-sts passwd`"),
            )
        })?;
        if !parsed.algorithm.as_str().starts_with("argon2") {
            return Err(field(
                format!("{at}.password_hash"),
                format!(
                    "{} is not argon2; make one with `mta-sts passwd`",
                    parsed.algorithm
                ),
            ));
        }
        users.push(User {
            domains: restrict(&at, user.domains)?,
            name: user.name,
            password_hash: user.password_hash,
        });
    }
    let mut tokens = Vec::new();
    for (index, token) in raw.token.into_iter().enumerate() {
        let at = format!("dashboard.token[{index}]");
        let hex = token.sha256.to_ascii_lowercase();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(field(
                format!("{at}.sha256"),
                "must be 64 hex digits: the SHA-256 `mta-sts passwd --token` prints".into(),
            ));
        }
        tokens.push(ApiToken {
            domains: restrict(&at, token.domains)?,
            name: token.name,
            sha256: hex,
        });
    }
    let hours = raw.session_hours.unwrap_or(DEFAULT_SESSION_HOURS);
    if hours == 0 || hours > 24 * 30 {
        return Err(field(
            "dashboard.session_hours".into(),
            "must be between 1 and 720".into(),
        ));
    }
    let config = DashboardConfig {
        users,
        tokens,
        session_lifetime: Duration::from_secs(hours * 3600),
    };
    let taken = super::PATHS
        .iter()
        .chain([&super::METRICS_PATH])
        .find(|&&path| {
            intake_path == path || (path != "/" && intake_path.starts_with(&format!("{path}/")))
        });
    if config.enabled()
        && let Some(path) = taken
    {
        return Err(field(
            "intake.path".into(),
            format!(
                "{intake_path:?} is taken by the dashboard ({path}); choose another, such as \"/tlsrpt\""
            ),
        ));
    }
    Ok(config)
}

/// The argon2id hash (PHC string) of `password`, for `password_hash` in the config.
///
/// # Errors
/// When the system has no randomness for the salt, or argon2 refuses the input.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt_bytes = random_bytes::<16>().ok_or("no system randomness for the salt")?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

/// A new API token and its SHA-256 (hex) for `sha256` in the config.
///
/// # Errors
/// When the system has no randomness.
pub fn new_api_token() -> Result<(String, String), String> {
    let bytes = random_bytes::<32>().ok_or("no system randomness for the token")?;
    let token = format!("mtasts_{}", hex(&bytes));
    let digest = hex(&Sha256::digest(token.as_bytes()));
    Ok((token, digest))
}

fn random_bytes<const N: usize>() -> Option<[u8; N]> {
    let mut bytes = [0u8; N];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(bytes)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Who is asking, and what they may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Viewer {
    /// User or token name.
    pub name: String,
    /// The domains they may see; `None`: all.
    allowed: Option<BTreeSet<String>>,
    /// The session's CSRF token (none for bearer tokens, which make no form posts).
    pub csrf: Option<String>,
}

impl Viewer {
    /// Of `configured` (normalized names), the domains this viewer may see: what every query
    /// of the request is made with.
    pub fn scope(&self, configured: &[String]) -> Vec<String> {
        configured
            .iter()
            .filter(|d| self.allowed.as_ref().is_none_or(|set| set.contains(*d)))
            .cloned()
            .collect()
    }

    /// Whether this viewer sees every domain (and so the quarantine, whose bodies have no
    /// domain one could check).
    pub fn sees_everything(&self) -> bool {
        self.allowed.is_none()
    }
}

struct Session {
    user: String,
    csrf: String,
    expires: Instant,
}

#[derive(Default)]
struct Failures {
    by_ip: HashMap<IpAddr, (u32, Instant)>,
    by_user: HashMap<String, (u32, Instant)>,
}

/// Why a login was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LoginError {
    /// Wrong name or password.
    Wrong,
    /// Too many failures; try again after this long.
    Throttled(Duration),
}

/// Users, tokens and open sessions.
pub(crate) struct Auth {
    users: HashMap<String, User>,
    tokens: Vec<ApiToken>,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<Failures>,
    verify_slots: Semaphore,
    lifetime: Duration,
    /// A hash to verify against for unknown names, so they take as long as known ones.
    decoy: String,
}

impl Auth {
    pub fn new(config: &DashboardConfig) -> Auth {
        Auth {
            users: config
                .users
                .iter()
                .map(|u| (u.name.clone(), u.clone()))
                .collect(),
            tokens: config.tokens.clone(),
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(Failures::default()),
            verify_slots: Semaphore::new(VERIFY_SLOTS),
            lifetime: config.session_lifetime,
            decoy: hash_password("decoy password for unknown users").unwrap_or_default(),
        }
    }

    /// The viewer of a request: a valid bearer token, or a live session cookie.
    pub fn viewer(&self, headers: &HeaderMap) -> Option<Viewer> {
        if let Some(token) = bearer(headers) {
            let digest = hex(&Sha256::digest(token.as_bytes()));
            let token = self.tokens.iter().find(|t| t.sha256 == digest)?;
            return Some(Viewer {
                name: token.name.clone(),
                allowed: token.domains.clone(),
                csrf: None,
            });
        }
        let id = cookie(headers, SESSION_COOKIE)?;
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let session = sessions.get(id)?;
        if session.expires <= Instant::now() {
            sessions.remove(id);
            return None;
        }
        let user = self.users.get(&session.user)?;
        Some(Viewer {
            name: user.name.clone(),
            allowed: user.domains.clone(),
            csrf: Some(session.csrf.clone()),
        })
    }

    /// Checks a name and password; on success opens a session and returns its id.
    pub async fn login(
        &self,
        ip: IpAddr,
        name: &str,
        password: &str,
    ) -> Result<String, LoginError> {
        if let Some(wait) = self.throttled(ip, name) {
            return Err(LoginError::Throttled(wait));
        }
        let hash = self
            .users
            .get(name)
            .map_or_else(|| self.decoy.clone(), |u| u.password_hash.clone());
        let known = self.users.contains_key(name);
        let password = password.to_owned();
        let ok = {
            let _slot = self.verify_slots.acquire().await.ok();
            tokio::task::spawn_blocking(move || {
                PasswordHash::new(&hash).is_ok_and(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
            })
            .await
            .unwrap_or(false)
        };
        if !(ok && known) {
            self.record_failure(ip, name);
            return Err(LoginError::Wrong);
        }
        self.clear_failures(ip, name);
        let id = hex(&random_bytes::<32>().ok_or(LoginError::Wrong)?);
        let csrf = hex(&random_bytes::<32>().ok_or(LoginError::Wrong)?);
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            id.clone(),
            Session {
                user: name.to_owned(),
                csrf,
                expires: now + self.lifetime,
            },
        );
        Ok(id)
    }

    /// Ends the session of `headers`, if any.
    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            self.sessions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(id);
        }
    }

    /// The session lifetime, for the cookie's `Max-Age`.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn throttled(&self, ip: IpAddr, name: &str) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let wait = |entry: Option<&(u32, Instant)>| {
            entry
                .filter(|(n, since)| *n >= MAX_FAILED_LOGINS && now < *since + LOGIN_WINDOW)
                .map(|(_, since)| *since + LOGIN_WINDOW - now)
        };
        wait(failures.by_ip.get(&ip)).or_else(|| wait(failures.by_user.get(name)))
    }

    fn record_failure(&self, ip: IpAddr, name: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let Failures { by_ip, by_user } = &mut *failures;
        bump(by_ip, ip, now);
        // Names that are no user are tracked too, but under one key: a flood of made-up
        // names then cannot grow the table.
        let key = if self.users.contains_key(name) {
            name.to_owned()
        } else {
            String::new()
        };
        bump(by_user, key, now);
    }

    fn clear_failures(&self, ip: IpAddr, name: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures.by_ip.remove(&ip);
        failures.by_user.remove(name);
    }
}

fn bump<K: std::hash::Hash + Eq>(map: &mut HashMap<K, (u32, Instant)>, key: K, now: Instant) {
    if map.len() >= MAX_TRACKED {
        map.retain(|_, (_, since)| now < *since + LOGIN_WINDOW);
        if map.len() >= MAX_TRACKED {
            map.clear();
        }
    }
    let entry = map.entry(key).or_insert((0, now));
    if now >= entry.1 + LOGIN_WINDOW {
        *entry = (0, now);
    }
    entry.0 = entry.0.saturating_add(1);
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A random value for a form's CSRF field and its cookie.
pub(crate) fn form_token() -> Option<String> {
    random_bytes::<16>().map(|b| hex(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_with(domains: Option<&[&str]>) -> Auth {
        let domains = domains.map(|d| d.iter().map(|s| (*s).to_owned()).collect());
        Auth::new(&DashboardConfig {
            users: vec![User {
                name: "alice".into(),
                password_hash: hash_password("correct horse").expect("hash"),
                domains,
            }],
            tokens: Vec::new(),
            session_lifetime: Duration::from_secs(60),
        })
    }

    fn with_cookie(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("other=1; {SESSION_COOKIE}={id}");
        headers.insert(header::COOKIE, value.parse().expect("header"));
        headers
    }

    #[tokio::test]
    async fn a_right_password_opens_a_session_and_a_wrong_one_does_not() {
        let auth = auth_with(None);
        let ip = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(
            auth.login(ip, "alice", "wrong").await,
            Err(LoginError::Wrong)
        );
        assert_eq!(
            auth.login(ip, "mallory", "correct horse").await,
            Err(LoginError::Wrong)
        );
        let id = auth
            .login(ip, "alice", "correct horse")
            .await
            .expect("login");
        let viewer = auth.viewer(&with_cookie(&id)).expect("session");
        assert_eq!(viewer.name, "alice");
        assert!(viewer.csrf.is_some());
        assert!(auth.viewer(&with_cookie("0000")).is_none());
        auth.logout(&with_cookie(&id));
        assert!(auth.viewer(&with_cookie(&id)).is_none());
    }

    #[tokio::test]
    async fn failed_logins_are_throttled_even_with_the_right_password() {
        let auth = auth_with(None);
        let ip = IpAddr::from([127, 0, 0, 2]);
        for _ in 0..MAX_FAILED_LOGINS {
            assert_eq!(
                auth.login(ip, "alice", "nope").await,
                Err(LoginError::Wrong)
            );
        }
        assert!(matches!(
            auth.login(ip, "alice", "correct horse").await,
            Err(LoginError::Throttled(_))
        ));
        // The name is throttled from other addresses too.
        let elsewhere = IpAddr::from([127, 0, 0, 3]);
        assert!(matches!(
            auth.login(elsewhere, "alice", "correct horse").await,
            Err(LoginError::Throttled(_))
        ));
    }

    #[tokio::test]
    async fn a_restricted_user_scope_is_the_intersection() {
        let auth = auth_with(Some(&["a.example"]));
        let ip = IpAddr::from([127, 0, 0, 4]);
        let id = auth
            .login(ip, "alice", "correct horse")
            .await
            .expect("login");
        let viewer = auth.viewer(&with_cookie(&id)).expect("session");
        let configured = ["a.example".to_owned(), "b.example".to_owned()];
        assert_eq!(viewer.scope(&configured), ["a.example".to_owned()]);
        assert!(!viewer.sees_everything());
    }

    #[test]
    fn a_bearer_token_is_known_by_its_hash() {
        let (token, sha256) = new_api_token().expect("token");
        let auth = Auth::new(&DashboardConfig {
            users: Vec::new(),
            tokens: vec![ApiToken {
                name: "grafana".into(),
                sha256,
                domains: None,
            }],
            session_lifetime: Duration::from_secs(60),
        });
        let mut headers = HeaderMap::new();
        let value = format!("Bearer {token}");
        headers.insert(header::AUTHORIZATION, value.parse().expect("header"));
        assert_eq!(
            auth.viewer(&headers).map(|v| v.name),
            Some("grafana".into())
        );
        headers.insert(
            header::AUTHORIZATION,
            "Bearer mtasts_00".parse().expect("header"),
        );
        assert!(auth.viewer(&headers).is_none());
    }
}
