//! Keeping the cache fresh without waiting for mail: cached policies are confirmed before they
//! expire (RFC 8461 §5.1, "proactively"), purges recorded in the store by `resolver purge` are
//! applied, and entries that hold nothing a new lookup would not find are dropped.

use std::hash::BuildHasher as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mta_sts_store::StoreError;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::cache::{Entry, UnixTime};
use super::lookup::PolicyResolver;

/// What one maintenance round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// Entries dropped from memory by purges recorded in the store.
    pub purged: usize,
    /// Cached policies looked up again before they expire.
    pub refreshed: usize,
    /// Entries dropped from memory that had no usable policy.
    pub evicted: usize,
}

/// How many maintenance rounds go between two prunings of the store.
const ROUNDS_PER_PRUNE: u64 = 720;

impl PolicyResolver {
    /// Runs [`PolicyResolver::maintain`] every `cache.sync_interval` seconds until the returned
    /// task is aborted (or the runtime stops).
    pub fn spawn_maintenance(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let period = Duration::from_secs(this.inner.config.cache.sync_interval.max(1));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for round in 0_u64.. {
                ticks.tick().await;
                let done = this.maintain().await;
                if done != Maintenance::default() {
                    tracing::debug!(
                        purged = done.purged,
                        refreshed = done.refreshed,
                        evicted = done.evicted,
                        "cache maintenance"
                    );
                }
                if round % ROUNDS_PER_PRUNE == ROUNDS_PER_PRUNE - 1 {
                    this.prune_store().await;
                }
            }
        })
    }

    /// One round: purges, then proactive refreshes (awaited), then eviction.
    pub async fn maintain(&self) -> Maintenance {
        let purged = match self.sync_purges().await {
            Ok(purged) => purged,
            Err(error) => {
                tracing::warn!(%error, "cannot read the purges recorded in the store");
                0
            }
        };
        let refreshed = self.refresh_due().await;
        let evicted = self.evict();
        Maintenance {
            purged,
            refreshed,
            evicted,
        }
    }

    /// Drops from memory what `resolver purge` has purged from the store since the last call;
    /// returns how many entries went.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub async fn sync_purges(&self) -> Result<usize, StoreError> {
        let Some(persistence) = self.inner.store.as_ref() else {
            return Ok(0);
        };
        let after = persistence.last_purge.load(Ordering::SeqCst);
        let purges = persistence.store.policy_purges_after(after).await?;
        let mut dropped = 0;
        for purge in &purges {
            match &purge.domain {
                Some(domain) => dropped += usize::from(self.inner.cache.remove(domain)),
                None => dropped += self.inner.cache.clear(),
            }
            tracing::info!(
                domain = purge.domain.as_deref().unwrap_or("*"),
                "purged from the cache"
            );
            persistence.last_purge.fetch_max(purge.id, Ordering::SeqCst);
        }
        Ok(dropped)
    }

    /// Looks up again, in the background of mail, every cached policy that is due (see
    /// [`PolicyResolver::refresh_due_at`]), at most `cache.refresh_concurrency` at once, and
    /// returns once all are done with how many there were.
    pub async fn refresh_due(&self) -> usize {
        let now = self.inner.clock.now();
        let due: Vec<Arc<Entry>> = self
            .inner
            .cache
            .snapshot()
            .into_iter()
            .filter(|entry| self.refresh_due_at(entry, now))
            .collect();
        let permits = Arc::new(Semaphore::new(
            self.inner.config.cache.refresh_concurrency.max(1),
        ));
        let mut lookups = JoinSet::new();
        for entry in &due {
            let (this, permits, entry) = (self.clone(), Arc::clone(&permits), Arc::clone(entry));
            lookups.spawn(async move {
                // The semaphore is never closed.
                let _permit = permits.acquire_owned().await;
                let domain = entry.domain.clone();
                let updated = this.lookup(&domain, Some(entry)).await;
                tracing::info!(
                    domain,
                    outcome = updated.outcome.describe(),
                    "proactive refresh"
                );
            });
        }
        while lookups.join_next().await.is_some() {}
        due.len()
    }

    /// True when `entry` holds a usable policy that should be confirmed now, before anyone
    /// asks: unconfirmed for `cache.refresh_interval` (or half its `max_age`, when shorter),
    /// plus a per-domain jitter of up to a tenth of that, so that policies fetched together
    /// are not refreshed together — and not within the wait after the last lookup (5 minutes
    /// after a failure).
    pub fn refresh_due_at(&self, entry: &Entry, now: UnixTime) -> bool {
        let config = &self.inner.config.cache;
        let Some(policy) = entry.usable_policy(now, config.max_stale) else {
            return false;
        };
        if !self.recheck_due(entry, now) {
            return false;
        }
        let lead = config
            .refresh_interval
            .min(u64::from(policy.policy.max_age) / 2)
            .max(1);
        let jitter = self.inner.jitter.hash_one(&entry.domain) % (lead / 10).max(1);
        let wait = UnixTime::try_from(lead + jitter).unwrap_or(UnixTime::MAX);
        now.saturating_sub(policy.confirmed_at) >= wait
    }

    /// Drops from memory the entries without a usable policy whose wait before a new lookup
    /// has passed: the next request looks the domain up anyway. Returns how many went.
    pub fn evict(&self) -> usize {
        let now = self.inner.clock.now();
        let mut evicted = 0;
        for entry in self.inner.cache.snapshot() {
            let max_stale = self.inner.config.cache.max_stale;
            if entry.usable_policy(now, max_stale).is_none() && self.lookup_due(&entry, now) {
                evicted += usize::from(self.inner.cache.remove(&entry.domain));
            }
        }
        evicted
    }

    /// Deletes from the store the entries [`PolicyResolver::evict`] drops from memory.
    async fn prune_store(&self) {
        let Some(persistence) = self.inner.store.as_ref() else {
            return;
        };
        let cache = &self.inner.config.cache;
        let wait = cache.check_interval.max(cache.retry_after_failure);
        let before = self
            .inner
            .clock
            .now()
            .saturating_sub(UnixTime::try_from(wait).unwrap_or(UnixTime::MAX));
        match persistence.store.prune_policy_entries(before).await {
            Ok(pruned) if pruned > 0 => tracing::debug!(pruned, "pruned the policy cache"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot prune the policy cache"),
        }
    }
}
