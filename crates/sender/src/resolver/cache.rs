//! What the resolver knows about each domain: the last valid policy (RFC 8461 §3.3, §5.1) and
//! the outcome of the last look at DNS and HTTPS, in memory behind one lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use mta_sts_policy::Policy;
use serde::Serialize;

/// Unix seconds, the unit of every time in the cache.
pub type UnixTime = i64;

/// A valid policy, as fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPolicy {
    /// The `id` of the `_mta-sts` TXT record it was fetched under.
    pub id: String,
    /// The policy body as served.
    pub body: String,
    /// The body, parsed.
    pub policy: Policy,
    /// When it was fetched.
    pub fetched_at: UnixTime,
    /// When it was last confirmed: fetched, or its id seen unchanged in DNS.
    pub confirmed_at: UnixTime,
}

impl CachedPolicy {
    /// When it expires: `max_age` after it was last confirmed.
    pub fn expires_at(&self) -> UnixTime {
        self.confirmed_at
            .saturating_add(UnixTime::from(self.policy.max_age))
    }
}

/// The outcome of the last lookup of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    /// A policy was fetched, or the cached one confirmed by an unchanged id.
    Valid,
    /// No `_mta-sts` TXT record (NXDOMAIN or NODATA).
    NoRecord,
    /// TXT records exist, but none is a valid `v=STSv1` record.
    InvalidRecord(String),
    /// The TXT lookup failed (SERVFAIL, timeout, ...).
    DnsFailed(String),
    /// The policy could not be fetched over HTTPS.
    FetchFailed(String),
    /// The policy was fetched but is not valid.
    InvalidPolicy(String),
}

impl Outcome {
    /// True for lookups that failed rather than answered: they are retried only after
    /// [`CacheConfig::retry_after_failure`](super::CacheConfig::retry_after_failure).
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Self::DnsFailed(_) | Self::FetchFailed(_) | Self::InvalidPolicy(_)
        )
    }

    /// True when the domain says it has a policy, or might: a fail-closed zone then answers
    /// `TEMP` rather than `NOTFOUND ` when nothing usable is cached.
    pub fn policy_may_exist(&self) -> bool {
        self.is_failure()
    }

    /// The outcome's name, as stored and in `query --json`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::NoRecord => "no_record",
            Self::InvalidRecord(_) => "invalid_record",
            Self::DnsFailed(_) => "dns_failed",
            Self::FetchFailed(_) => "fetch_failed",
            Self::InvalidPolicy(_) => "invalid_policy",
        }
    }

    /// The reason of a failed or invalid lookup.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::Valid | Self::NoRecord => None,
            Self::InvalidRecord(reason)
            | Self::DnsFailed(reason)
            | Self::FetchFailed(reason)
            | Self::InvalidPolicy(reason) => Some(reason),
        }
    }

    /// The outcome named `kind` (see [`Outcome::kind`]) with `detail`; `None` for an unknown
    /// name.
    pub fn from_parts(kind: &str, detail: Option<String>) -> Option<Self> {
        let detail = || detail.clone().unwrap_or_default();
        Some(match kind {
            "valid" => Self::Valid,
            "no_record" => Self::NoRecord,
            "invalid_record" => Self::InvalidRecord(detail()),
            "dns_failed" => Self::DnsFailed(detail()),
            "fetch_failed" => Self::FetchFailed(detail()),
            "invalid_policy" => Self::InvalidPolicy(detail()),
            _ => return None,
        })
    }

    /// Words for logs and `query`.
    pub fn describe(&self) -> String {
        match self {
            Self::Valid => "policy valid".to_owned(),
            Self::NoRecord => "no _mta-sts TXT record".to_owned(),
            Self::InvalidRecord(reason) => format!("invalid _mta-sts TXT record: {reason}"),
            Self::DnsFailed(reason) => format!("TXT lookup failed: {reason}"),
            Self::FetchFailed(reason) => format!("policy fetch failed: {reason}"),
            Self::InvalidPolicy(reason) => format!("invalid policy: {reason}"),
        }
    }
}

/// What DNSSEC says about DANE for a domain's MX hosts (RFC 7672), which comes before MTA-STS
/// (RFC 8461 §2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Dane {
    /// Not looked at yet (an entry read from the store): the next request looks first.
    #[default]
    Unchecked,
    /// No DANE: the MX answer is not DNSSEC-validated, or no MX host has validated TLSA
    /// records.
    Absent,
    /// These MX hosts (from a validated MX answer) have DNSSEC-validated TLSA records for SMTP.
    Present(Vec<String>),
}

impl Dane {
    /// The state's name, as `query --json` shows it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unchecked => "unchecked",
            Self::Absent => "absent",
            Self::Present(_) => "present",
        }
    }
}

/// Everything known about one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The domain (lowercase A-labels).
    pub domain: String,
    /// The last valid policy, while it may still be used.
    pub policy: Option<CachedPolicy>,
    /// When DNS (and HTTPS) was last asked.
    pub checked_at: UnixTime,
    /// What that last lookup found.
    pub outcome: Outcome,
    /// DANE for the domain's MX hosts, as the last lookup found it.
    pub dane: Dane,
}

impl Entry {
    /// The cached policy if it may be used at `now`: not past its `max_age`, nor unconfirmed
    /// for longer than `max_stale`.
    pub fn usable_policy(&self, now: UnixTime, max_stale: Option<u64>) -> Option<&CachedPolicy> {
        self.policy.as_ref().filter(|p| {
            now < p.expires_at()
                && max_stale.is_none_or(|cap| {
                    now.saturating_sub(p.confirmed_at)
                        < UnixTime::try_from(cap).unwrap_or(UnixTime::MAX)
                })
        })
    }
}

/// The time source: the system clock, or one a test moves by hand.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that stands at `start` until [`Clock::advance`] moves it.
    pub fn manual(start: UnixTime) -> Self {
        Self(Some(Arc::new(AtomicI64::new(start))))
    }

    /// Moves a manual clock forward (no effect on the system clock).
    pub fn advance(&self, seconds: i64) {
        if let Some(now) = &self.0 {
            now.fetch_add(seconds, Ordering::SeqCst);
        }
    }

    /// The current time.
    pub fn now(&self) -> UnixTime {
        match &self.0 {
            Some(now) => now.load(Ordering::SeqCst),
            None => SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
                UnixTime::try_from(d.as_secs()).unwrap_or(UnixTime::MAX)
            }),
        }
    }
}

/// A reply rendered once for an entry in one zone, as a netstring ready to write, and the
/// times between which it is the answer: from when it was rendered until the next lookup or
/// check of the domain is due or its policy stops being usable, whichever comes first.
#[derive(Debug)]
pub(super) struct Rendered {
    pub(super) framed: Box<[u8]>,
    pub(super) from: UnixTime,
    pub(super) until: UnixTime,
}

/// One domain in memory: its entry and, per zone, the reply once a request has rendered it.
/// A new entry comes in a new slot, so a reply never outlives the entry it was rendered from.
#[derive(Debug)]
struct Slot {
    entry: Arc<Entry>,
    replies: Box<[OnceLock<Rendered>]>,
}

/// The entries, by domain. Reads take a shared lock for the time of one hash lookup.
#[derive(Debug)]
pub struct MemoryCache {
    entries: RwLock<HashMap<String, Slot>>,
    /// How many zones replies are kept for (see [`MemoryCache::append_reply`]).
    zones: usize,
}

impl MemoryCache {
    /// An empty cache that keeps rendered replies for `zones` zones.
    pub(super) fn new(zones: usize) -> Self {
        Self {
            entries: RwLock::default(),
            zones,
        }
    }

    /// The entry of `domain`.
    pub fn get(&self, domain: &str) -> Option<Arc<Entry>> {
        self.read().get(domain).map(|slot| Arc::clone(&slot.entry))
    }

    /// Stores `entry`, replacing the one of its domain (and the replies rendered from it).
    pub fn put(&self, entry: Arc<Entry>) {
        let slot = Slot {
            replies: (0..self.zones).map(|_| OnceLock::new()).collect(),
            entry,
        };
        self.write().insert(slot.entry.domain.clone(), slot);
    }

    /// Appends to `out` the reply rendered for `domain` in zone number `zone`, when there is
    /// one and it is the answer at `now`; false when the request needs the full decision.
    pub(super) fn append_reply(
        &self,
        domain: &str,
        zone: usize,
        now: UnixTime,
        out: &mut Vec<u8>,
    ) -> bool {
        let entries = self.read();
        let rendered = entries
            .get(domain)
            .and_then(|slot| slot.replies.get(zone)?.get())
            .filter(|rendered| rendered.from <= now && now < rendered.until);
        if let Some(rendered) = rendered {
            out.extend_from_slice(&rendered.framed);
        }
        rendered.is_some()
    }

    /// Keeps `rendered` as the reply of `entry` in zone number `zone`, unless the cache holds
    /// another entry for its domain by now, or a reply for that zone already.
    pub(super) fn keep_reply(&self, entry: &Arc<Entry>, zone: usize, rendered: Rendered) {
        let entries = self.read();
        if let Some(slot) = entries
            .get(&entry.domain)
            .filter(|slot| Arc::ptr_eq(&slot.entry, entry))
            && let Some(reply) = slot.replies.get(zone)
        {
            let _ = reply.set(rendered);
        }
    }

    /// Removes `domain`; true when it was there.
    pub fn remove(&self, domain: &str) -> bool {
        self.write().remove(domain).is_some()
    }

    /// Removes every entry and says how many there were.
    pub fn clear(&self) -> usize {
        let mut entries = self.write();
        let count = entries.len();
        entries.clear();
        count
    }

    /// Every entry (a snapshot).
    pub fn snapshot(&self) -> Vec<Arc<Entry>> {
        self.read()
            .values()
            .map(|slot| Arc::clone(&slot.entry))
            .collect()
    }

    /// How many domains are cached.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Slot>> {
        // A panic while holding the lock cannot leave the map half-updated (every update is
        // one insert or remove), so a poisoned lock is still good to use.
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Slot>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }
}
