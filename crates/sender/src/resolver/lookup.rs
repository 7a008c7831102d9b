//! The resolver's decisions: what to answer for a domain from what is cached, when to ask DNS
//! and HTTPS again, and what a lookup changes in the cache.

use std::collections::HashMap;
use std::hash::RandomState;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};

use mta_sts_net::{DnsError, Net};
use mta_sts_policy::{Mode, Policy, StsRecord};
use mta_sts_store::{Store, StoreError};
use tokio::sync::watch;

use super::cache::{CachedPolicy, Clock, Dane, Entry, MemoryCache, Outcome, Rendered, UnixTime};
use super::config::{DaneReply, ResolverConfig, ZoneConfig};
use super::netstring::write_frame;
use super::persist;
use super::reply;
use super::request::split_request;

/// What the resolver answers for a domain in a zone, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The reply payload (before netstring framing).
    pub reply: Vec<u8>,
    /// Why, in words for the log and `query`.
    pub reason: String,
}

/// The policy resolver: the cache, the network, the rules. Cheap to clone; clones share all.
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    net: Net,
    pub(super) config: Arc<ResolverConfig>,
    pub(super) cache: MemoryCache,
    pub(super) clock: Clock,
    /// Lookups under way, by domain: a second request for the same domain waits for the
    /// first lookup instead of starting its own.
    in_flight: Mutex<HashMap<String, watch::Receiver<Option<Arc<Entry>>>>>,
    /// Where entries persist, if anywhere.
    pub(super) store: Option<Persistence>,
    /// Seeds the per-domain jitter of proactive refreshes.
    pub(super) jitter: RandomState,
    /// The number of each configured zone, by map name (0 is the default zone): the cache
    /// keeps each entry's rendered reply per zone number.
    zone_numbers: HashMap<String, usize>,
}

/// The store behind the memory cache.
#[derive(Debug)]
pub(super) struct Persistence {
    pub(super) store: Arc<Store>,
    /// False for `query`, which reads the cache and writes nothing.
    save: bool,
    /// The last purge applied to memory (see [`PolicyResolver::sync_purges`]).
    pub(super) last_purge: AtomicI64,
}

impl PolicyResolver {
    /// A resolver with an empty cache, in memory only.
    pub fn new(net: Net, config: Arc<ResolverConfig>, clock: Clock) -> Self {
        Self::build(net, config, clock, None)
    }

    /// A resolver whose cache persists in `store`: it starts with the entries stored there
    /// (a restart keeps every policy), reads there what memory does not hold (a cache shared by
    /// several resolvers on one PostgreSQL), and writes every lookup's outcome there — unless
    /// `save` is false (`query`: look, change nothing; nothing is loaded up front either).
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub async fn with_store(
        net: Net,
        config: Arc<ResolverConfig>,
        clock: Clock,
        store: Arc<Store>,
        save: bool,
    ) -> Result<Self, StoreError> {
        let last_purge = store.last_policy_purge().await?;
        let entries = if save {
            store.policy_entries().await?
        } else {
            Vec::new()
        };
        let resolver = Self::build(
            net,
            config,
            clock,
            Some(Persistence {
                store,
                save,
                last_purge: AtomicI64::new(last_purge),
            }),
        );
        for entry in entries.into_iter().filter_map(persist::from_stored) {
            resolver.inner.cache.put(Arc::new(entry));
        }
        if save {
            tracing::info!(
                entries = resolver.inner.cache.len(),
                "policy cache loaded from the store"
            );
        }
        Ok(resolver)
    }

    fn build(
        net: Net,
        config: Arc<ResolverConfig>,
        clock: Clock,
        store: Option<Persistence>,
    ) -> Self {
        let mut names: Vec<&String> = config.zones.keys().collect();
        names.sort();
        let zone_numbers = names
            .into_iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), i + 1))
            .collect();
        Self {
            inner: Arc::new(Inner {
                net,
                cache: MemoryCache::new(config.zones.len() + 1),
                config,
                clock,
                in_flight: Mutex::new(HashMap::new()),
                store,
                jitter: RandomState::new(),
                zone_numbers,
            }),
        }
    }

    /// The store the cache persists in, if any.
    pub fn store(&self) -> Option<&Arc<Store>> {
        self.inner.store.as_ref().map(|p| &p.store)
    }

    /// The entry of `domain`: from memory, else from the store (then kept in memory).
    pub async fn cached(&self, domain: &str) -> Option<Arc<Entry>> {
        if let Some(entry) = self.inner.cache.get(domain) {
            return Some(entry);
        }
        let persistence = self.inner.store.as_ref()?;
        match persistence.store.policy_entry(domain).await {
            Ok(stored) => {
                let entry = Arc::new(persist::from_stored(stored?)?);
                self.inner.cache.put(Arc::clone(&entry));
                Some(entry)
            }
            Err(error) => {
                tracing::warn!(domain, %error, "cannot read the policy cache in the store");
                None
            }
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ResolverConfig {
        &self.inner.config
    }

    /// The in-memory cache.
    pub fn cache(&self) -> &MemoryCache {
        &self.inner.cache
    }

    /// The clock the cache runs on.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Answers one socketmap request payload (`<map-name> <key>`): appends the reply to `out`
    /// as a netstring. A domain whose reply the cache holds for the zone costs a hash lookup
    /// and a copy: no allocation, no decision made again, no log line (the decision was logged
    /// when it was made).
    pub async fn answer(&self, payload: &[u8], out: &mut Vec<u8>) {
        if !self.answer_at_once(payload, out) {
            let (map, domain) = split_request(payload);
            if let Ok(domain) = domain {
                let number = self.zone_number(map);
                let zone = self.inner.config.zone(map);
                let decision = self.decide_in(&domain, zone, Some(number)).await;
                write_frame(&decision.reply, out);
            }
        }
    }

    /// [`PolicyResolver::answer`] for the requests answered without waiting: a key that is not
    /// a domain, or a domain whose reply the cache holds. Appends the reply and returns true;
    /// returns false (and appends nothing) when the answer needs a decision or a lookup.
    pub fn answer_at_once(&self, payload: &[u8], out: &mut Vec<u8>) -> bool {
        let (map, domain) = split_request(payload);
        match domain {
            Err(why) => {
                tracing::debug!(key = %escape(payload), "NOTFOUND: {}", why.as_str());
                write_frame(reply::NOT_FOUND, out);
                true
            }
            Ok(domain) => {
                let now = self.inner.clock.now();
                self.inner
                    .cache
                    .append_reply(&domain, self.zone_number(map), now, out)
            }
        }
    }

    fn zone_number(&self, map: &str) -> usize {
        self.inner.zone_numbers.get(map).copied().unwrap_or(0)
    }

    /// What the resolver answers for `domain` in `zone`, looking it up when the cache says so.
    pub async fn decide(&self, domain: &str, zone: &ZoneConfig) -> Decision {
        self.decide_in(domain, zone, None).await
    }

    /// [`PolicyResolver::decide`]; with the zone's number, a decision made from the cache is
    /// kept rendered in the cache for the requests that follow, while it holds.
    async fn decide_in(&self, domain: &str, zone: &ZoneConfig, number: Option<usize>) -> Decision {
        let now = self.inner.clock.now();
        let cached = self.cached(domain).await;
        let entry = match cached {
            Some(entry) if !self.lookup_due(&entry, now) => {
                let entry = self.with_dane(entry).await;
                let decision = self.decision(&entry, zone, now);
                if self.recheck_due(&entry, now) {
                    // Serve the valid policy now; confirm it with DNS in the background.
                    drop(self.start_lookup(domain, Some(Arc::clone(&entry))));
                } else if let Some(number) = number {
                    let mut framed = Vec::with_capacity(decision.reply.len() + 8);
                    write_frame(&decision.reply, &mut framed);
                    let rendered = Rendered {
                        framed: framed.into_boxed_slice(),
                        from: now,
                        until: self.answer_until(&entry, now),
                    };
                    self.inner.cache.keep_reply(&entry, number, rendered);
                }
                tracing::debug!(domain, reply = %escape(&decision.reply), "cached: {}", decision.reason);
                return decision;
            }
            prior => self.lookup(domain, prior).await,
        };
        let decision = self.decision(&entry, zone, self.inner.clock.now());
        tracing::info!(domain, reply = %escape(&decision.reply), "{}", decision.reason);
        decision
    }

    /// The answer `entry` gives in `zone` at `now`.
    pub fn decision(&self, entry: &Entry, zone: &ZoneConfig, now: UnixTime) -> Decision {
        if let Dane::Present(hosts) = &entry.dane {
            // RFC 8461 §2: MTA-STS never overrides DANE.
            let hosts = hosts.join(", ");
            return match zone.dane {
                DaneReply::Dane => Decision {
                    reply: reply::DANE.to_vec(),
                    reason: format!("DANE comes first: DNSSEC-validated TLSA records for {hosts}"),
                },
                DaneReply::Notfound => Decision {
                    reply: reply::NOT_FOUND.to_vec(),
                    reason: format!(
                        "DANE (DNSSEC-validated TLSA records for {hosts}) left to Postfix's \
                         own dane level (zone dane = \"notfound\")"
                    ),
                },
            };
        }
        let max_stale = self.inner.config.cache.max_stale;
        let Some(cached) = entry.usable_policy(now, max_stale) else {
            let reason = entry.outcome.describe();
            if zone.fail_closed && entry.outcome.policy_may_exist() {
                return Decision {
                    reply: reply::temp(&reason),
                    reason: format!("{reason}; nothing cached; the zone fails closed"),
                };
            }
            let reason = match (&entry.policy, &entry.outcome) {
                (Some(_), _) => format!("{reason}; the cached policy has expired"),
                (None, Outcome::NoRecord) => "no MTA-STS policy (no _mta-sts TXT record)".into(),
                (None, _) => format!("{reason}; no policy cached"),
            };
            return Decision {
                reply: reply::NOT_FOUND.to_vec(),
                reason,
            };
        };
        let source = if entry.outcome == Outcome::Valid {
            format!("policy id {}", cached.id)
        } else {
            format!(
                "cached policy id {} kept ({})",
                cached.id,
                entry.outcome.describe()
            )
        };
        match cached.policy.mode {
            Mode::Enforce => Decision {
                reply: reply::secure(&entry.domain, &cached.policy, zone),
                reason: format!("mode enforce, {source}"),
            },
            Mode::Testing if zone.strict_testing => Decision {
                reply: reply::secure(&entry.domain, &cached.policy, zone),
                reason: format!("mode testing treated as enforce (strict_testing), {source}"),
            },
            mode => Decision {
                reply: reply::NOT_FOUND.to_vec(),
                reason: format!("mode {mode}: TLS not required, {source}"),
            },
        }
    }

    /// True when the cache cannot answer for `entry` without a lookup first: no usable
    /// policy, and the last answer (none, or a failure) is old enough to ask again.
    pub fn lookup_due(&self, entry: &Entry, now: UnixTime) -> bool {
        if entry
            .usable_policy(now, self.inner.config.cache.max_stale)
            .is_some()
        {
            return false;
        }
        now.saturating_sub(entry.checked_at) >= self.wait_after(entry)
    }

    /// Until when the decision for `entry` made at `now` stays the same: the next check of
    /// the domain, or the end of its cached policy's use (`max_age`, `max_stale`).
    fn answer_until(&self, entry: &Entry, now: UnixTime) -> UnixTime {
        let next_check = entry.checked_at.saturating_add(self.wait_after(entry));
        let max_stale = self.inner.config.cache.max_stale;
        match entry.usable_policy(now, max_stale) {
            Some(policy) => {
                let stale_at = max_stale.map_or(UnixTime::MAX, |cap| {
                    policy
                        .confirmed_at
                        .saturating_add(UnixTime::try_from(cap).unwrap_or(UnixTime::MAX))
                });
                next_check.min(policy.expires_at()).min(stale_at)
            }
            None => next_check,
        }
    }

    /// True when a usable cached policy should be confirmed with DNS again.
    pub(super) fn recheck_due(&self, entry: &Entry, now: UnixTime) -> bool {
        now.saturating_sub(entry.checked_at) >= self.wait_after(entry)
    }

    pub(super) fn wait_after(&self, entry: &Entry) -> UnixTime {
        let cache = &self.inner.config.cache;
        let seconds = if entry.outcome.is_failure() {
            cache.retry_after_failure
        } else {
            cache.check_interval
        };
        UnixTime::try_from(seconds).unwrap_or(UnixTime::MAX)
    }

    /// Looks `domain` up (once, however many ask at the same time), updates the cache, and
    /// returns the new entry. `prior` is what was cached before.
    pub async fn lookup(&self, domain: &str, prior: Option<Arc<Entry>>) -> Arc<Entry> {
        let mut receiver = self.start_lookup(domain, prior.clone());
        let found = receiver
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|entry| entry.clone());
        match found {
            Some(entry) => entry,
            // The lookup task died: answer from what was there.
            None => prior.unwrap_or_else(|| {
                Arc::new(Entry {
                    domain: domain.to_owned(),
                    policy: None,
                    checked_at: self.inner.clock.now(),
                    outcome: Outcome::DnsFailed("the lookup was interrupted".into()),
                    dane: Dane::Unchecked,
                })
            }),
        }
    }

    /// Starts a lookup of `domain` unless one is under way, and returns where its entry will
    /// appear. The lookup runs in a task of its own, so a client that hangs up does not
    /// cancel it.
    fn start_lookup(
        &self,
        domain: &str,
        prior: Option<Arc<Entry>>,
    ) -> watch::Receiver<Option<Arc<Entry>>> {
        let mut in_flight = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(receiver) = in_flight.get(domain) {
            return receiver.clone();
        }
        let (sender, receiver) = watch::channel(None);
        in_flight.insert(domain.to_owned(), receiver.clone());
        let this = self.clone();
        let domain = domain.to_owned();
        tokio::spawn(async move {
            let entry = Arc::new(this.fetch(&domain, prior.as_deref()).await);
            // Saved before anyone is answered: an answer given survives a restart.
            this.save(&entry).await;
            this.inner.cache.put(Arc::clone(&entry));
            this.inner
                .in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&domain);
            sender.send_replace(Some(entry));
        });
        receiver
    }

    /// Writes `entry` to the store, if the cache persists; a store that fails is logged, and
    /// the resolver goes on from memory.
    async fn save(&self, entry: &Entry) {
        let Some(persistence) = self.inner.store.as_ref().filter(|p| p.save) else {
            return;
        };
        if let Err(error) = persistence
            .store
            .save_policy_entry(persist::to_stored(entry))
            .await
        {
            tracing::warn!(domain = entry.domain, %error, "cannot save the cached policy");
        }
    }

    /// `entry`, with DANE looked at first if it has not been (an entry read from the store:
    /// its policy may be answered from the cache, but never in place of DANE). The cached
    /// entry is completed too, unless a lookup or a purge replaced it meanwhile.
    pub async fn with_dane(&self, entry: Arc<Entry>) -> Arc<Entry> {
        if entry.dane != Dane::Unchecked {
            return entry;
        }
        let dane = self.dane(&entry.domain, &Dane::Unchecked).await;
        let completed = Arc::new(Entry {
            dane,
            ..(*entry).clone()
        });
        if self
            .inner
            .cache
            .get(&entry.domain)
            .is_some_and(|current| current.dane == Dane::Unchecked)
        {
            self.inner.cache.put(Arc::clone(&completed));
        }
        completed
    }

    /// One lookup: DANE (the MX hosts' TLSA records, with DNSSEC) and MTA-STS at once.
    async fn fetch(&self, domain: &str, prior: Option<&Entry>) -> Entry {
        let now = self.inner.clock.now();
        let prior_dane = prior.map_or(&Dane::Unchecked, |p| &p.dane);
        let ((policy, outcome), dane) = tokio::join!(
            self.fetch_sts(domain, prior, now),
            self.dane(domain, prior_dane)
        );
        Entry {
            domain: domain.to_owned(),
            policy,
            checked_at: now,
            outcome,
            dane,
        }
    }

    /// DANE for `domain` (RFC 7672 §2.2): present when the MX answer is DNSSEC-validated and
    /// at least one MX host (the domain itself without MX records) has validated TLSA records
    /// for port 25. When DNS fails, DANE seen before is kept: a failure never turns a DANE
    /// domain into an MTA-STS one.
    async fn dane(&self, domain: &str, prior: &Dane) -> Dane {
        let resolver = self.inner.net.resolver();
        let hosts = match resolver.mx_authenticated(domain).await {
            Ok(answer) if !answer.authentic => return Dane::Absent,
            Ok(answer) if answer.value.is_empty() => vec![domain.to_owned()],
            Ok(answer) => answer
                .value
                .into_iter()
                .filter(|mx| !mx.is_null())
                .map(|mx| mx.exchange)
                .take(MAX_DANE_HOSTS)
                .collect(),
            Err(DnsError::NoRecords { .. }) => return Dane::Absent,
            Err(error) => return dane_unknown(domain, prior, &error.to_string()),
        };
        let mut lookups = tokio::task::JoinSet::new();
        for host in hosts {
            let resolver = resolver.clone();
            lookups.spawn(async move {
                let found = resolver.tlsa_authenticated(&host, SMTP_PORT).await;
                (host, found)
            });
        }
        let mut secure = Vec::new();
        let mut failure = None;
        while let Some(joined) = lookups.join_next().await {
            match joined {
                Ok((host, Ok(answer))) if answer.authentic && !answer.value.is_empty() => {
                    secure.push(host);
                }
                Ok((_, Ok(_) | Err(DnsError::NoRecords { .. }))) => {}
                Ok((_, Err(error))) => failure = Some(error.to_string()),
                Err(error) => failure = Some(error.to_string()),
            }
        }
        if !secure.is_empty() {
            secure.sort();
            return Dane::Present(secure);
        }
        match failure {
            Some(reason) => dane_unknown(domain, prior, &reason),
            None => Dane::Absent,
        }
    }

    /// The MTA-STS half of a lookup, by RFC 8461 §3 and §5.1: the TXT record, then the policy
    /// when its id is new. A valid cached policy survives every failure, and a vanished TXT
    /// record.
    async fn fetch_sts(
        &self,
        domain: &str,
        prior: Option<&Entry>,
        now: UnixTime,
    ) -> (Option<CachedPolicy>, Outcome) {
        let max_stale = self.inner.config.cache.max_stale;
        let kept = prior.and_then(|p| p.usable_policy(now, max_stale)).cloned();
        let entry = |policy: Option<CachedPolicy>, outcome: Outcome| (policy, outcome);
        let net = &self.inner.net;
        let records = match net.resolver().txt(&format!("_mta-sts.{domain}")).await {
            Ok(records) => records,
            Err(error @ DnsError::NoRecords { .. }) => {
                tracing::debug!(domain, %error, "no _mta-sts record");
                return entry(kept, Outcome::NoRecord);
            }
            Err(error) => return entry(kept, Outcome::DnsFailed(error.to_string())),
        };
        let record = StsRecord::lint_rrset(&records);
        let Some(record) = record.value else {
            let reason = record
                .diagnostics
                .iter()
                .find(|d| d.is_error())
                .map_or_else(|| "no v=STSv1 record".to_owned(), |d| d.message.clone());
            return entry(kept, Outcome::InvalidRecord(reason));
        };
        if let Some(mut policy) = kept.clone().filter(|p| p.id == record.id) {
            policy.confirmed_at = now;
            return entry(Some(policy), Outcome::Valid);
        }
        let fetched = match net.fetch_policy(domain).await {
            Ok(fetched) => fetched,
            Err(error) => return entry(kept, Outcome::FetchFailed(error.to_string())),
        };
        let parsed = match Policy::parse(&fetched.body) {
            Ok(policy) => policy,
            Err(diagnostic) => {
                return entry(kept, Outcome::InvalidPolicy(diagnostic.message.clone()));
            }
        };
        let policy = CachedPolicy {
            id: record.id,
            body: String::from_utf8_lossy(&fetched.body).into_owned(),
            policy: parsed,
            fetched_at: now,
            confirmed_at: now,
        };
        entry(Some(policy), Outcome::Valid)
    }
}

/// The port whose TLSA records DANE for SMTP looks up (`_25._tcp.HOST`, RFC 7672 §2.2).
const SMTP_PORT: u16 = 25;
/// The MX hosts whose TLSA records are looked up, at most: a domain cannot make one lookup
/// cost more queries than this.
const MAX_DANE_HOSTS: usize = 10;

/// DANE when DNS could not say: what was known before, else absent (logged).
fn dane_unknown(domain: &str, prior: &Dane, reason: &str) -> Dane {
    tracing::warn!(domain, reason, "DANE lookup failed; keeping what was known");
    match prior {
        Dane::Present(_) => prior.clone(),
        Dane::Unchecked | Dane::Absent => Dane::Absent,
    }
}

/// Request and reply bytes for the log: printable ASCII as is, the rest escaped.
pub(crate) fn escape(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}
