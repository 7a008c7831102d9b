//! The names used by most domains (MX hosts, MX providers) in bounded memory, whatever the
//! number of distinct names: a Space-Saving table of [`RANK_TABLE_SIZE`] names (Metwally,
//! Agrawal, El Abbadi, "Efficient computation of frequent and top-k elements in data
//! streams", 2005) and a HyperLogLog estimate of how many distinct names there were.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher as _, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;

use serde::Serialize;

/// Names a ranking keeps. While no more distinct names are seen every count is exact; past
/// it, the least counted name gives way to the new one, and any name used by more than
/// `domains / RANK_TABLE_SIZE` domains is still kept, its count over by at most that much.
pub const RANK_TABLE_SIZE: usize = 10_000;

/// HyperLogLog registers (2^12: 4 KiB, a standard error of about 1.6 %).
const REGISTERS_LOG2: u32 = 12;
const REGISTERS: usize = 1 << REGISTERS_LOG2;

/// One name of a [`Ranking`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ranked {
    /// The MX host or provider.
    pub name: String,
    /// Domains that use it. When `error` is not 0, an upper bound: the true count is at
    /// least `domains - error`.
    pub domains: u64,
    /// Of those, domains whose check found it failing (refused under `enforce`, or would
    /// be under `testing`). When `error` is not 0, a lower bound, under by at most `error`.
    pub failing: u64,
    /// How far `domains` and `failing` may be off: the count of the name this one replaced
    /// in the table (0: exact).
    pub error: u64,
}

/// The names used by most domains, most first (ties by name).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranking {
    /// Distinct names seen: exact unless `approximate`, then estimated (about 1.6 % off).
    pub distinct: u64,
    /// More distinct names were seen than the [`RANK_TABLE_SIZE`] kept: the counts of
    /// `top` are within their `error`.
    pub approximate: bool,
    /// Distinct names not kept (estimated; 0 unless `approximate`).
    pub dropped: u64,
    /// The names used by most domains.
    pub top: Vec<Ranked>,
}

/// A name's counts in the table.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    domains: u64,
    failing: u64,
    error: u64,
}

/// Counts domains by name in at most [`RANK_TABLE_SIZE`] entries (or the capacity given).
#[derive(Debug, Clone)]
pub(crate) struct TopCounter {
    capacity: usize,
    counts: HashMap<Arc<str>, Counts>,
    /// The names by count, so the least counted is found at once.
    by_count: BTreeSet<(u64, Arc<str>)>,
    /// Names that gave way to others.
    evictions: u64,
    distinct: Distinct,
}

impl Default for TopCounter {
    fn default() -> Self {
        Self::with_capacity(RANK_TABLE_SIZE)
    }
}

impl TopCounter {
    /// A table of at most `capacity` names (at least 1).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            counts: HashMap::new(),
            by_count: BTreeSet::new(),
            evictions: 0,
            distinct: Distinct::default(),
        }
    }

    /// One domain uses `name`; `failing` when its check found it failing.
    pub(crate) fn add(&mut self, name: &str, failing: bool) {
        self.distinct.add(name);
        if let Some((key, counts)) = self.counts.get_key_value(name) {
            let (key, mut counts) = (Arc::clone(key), *counts);
            self.by_count.remove(&(counts.domains, Arc::clone(&key)));
            counts.domains += 1;
            counts.failing += u64::from(failing);
            self.by_count.insert((counts.domains, Arc::clone(&key)));
            self.counts.insert(key, counts);
            return;
        }
        let mut counts = Counts {
            domains: 1,
            failing: u64::from(failing),
            error: 0,
        };
        if self.counts.len() >= self.capacity
            && let Some((least, gone)) = self.by_count.pop_first()
        {
            // Space-Saving: the newcomer takes the least counted place and its count, which
            // may all have been its own (so the count is an upper bound, off by that much).
            self.counts.remove(&gone);
            self.evictions += 1;
            counts.domains += least;
            counts.error = least;
        }
        let key: Arc<str> = Arc::from(name);
        self.by_count.insert((counts.domains, Arc::clone(&key)));
        self.counts.insert(key, counts);
    }

    /// Names kept now (never more than the capacity).
    #[cfg(test)]
    pub(crate) fn kept(&self) -> usize {
        self.counts.len()
    }

    /// The `top` names used by most domains.
    pub(crate) fn ranking(&self, top: usize) -> Ranking {
        let mut ranked: Vec<Ranked> = self
            .counts
            .iter()
            .map(|(name, c)| Ranked {
                name: name.to_string(),
                domains: c.domains,
                failing: c.failing,
                error: c.error,
            })
            .collect();
        ranked.sort_by(|a, b| b.domains.cmp(&a.domains).then(a.name.cmp(&b.name)));
        ranked.truncate(top);
        let kept = self.counts.len() as u64;
        let approximate = self.evictions > 0;
        // Without evictions the table holds every name; with them, at least one more than
        // it keeps was seen, whatever the estimate says.
        let distinct = if approximate {
            self.distinct.estimate().max(kept + 1)
        } else {
            kept
        };
        Ranking {
            distinct,
            approximate,
            dropped: distinct - kept,
            top: ranked,
        }
    }
}

/// A HyperLogLog count of distinct names (Flajolet et al. 2007, with linear counting for
/// small counts).
#[derive(Clone)]
struct Distinct {
    registers: Box<[u8]>,
}

impl Default for Distinct {
    fn default() -> Self {
        Self {
            registers: vec![0; REGISTERS].into_boxed_slice(),
        }
    }
}

impl std::fmt::Debug for Distinct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distinct")
            .field("estimate", &self.estimate())
            .finish()
    }
}

impl Distinct {
    fn add(&mut self, name: &str) {
        // SipHash with fixed keys: the same name always lands in the same register.
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(name);
        let index = (hash >> (64 - REGISTERS_LOG2)) as usize;
        let rest = hash << REGISTERS_LOG2;
        // The position of the first 1 bit in what is left (a run of zeros is rare).
        let rank = (rest.leading_zeros() + 1).min(64 - REGISTERS_LOG2 + 1) as u8;
        if let Some(register) = self.registers.get_mut(index) {
            *register = (*register).max(rank);
        }
    }

    fn estimate(&self) -> u64 {
        let m = REGISTERS as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self
            .registers
            .iter()
            .map(|r| 2f64.powi(-i32::from(*r)))
            .sum();
        let raw = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|r| **r == 0).count();
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        estimate.round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_while_the_table_holds_every_name() {
        let mut counter = TopCounter::with_capacity(4);
        for (name, n) in [("a", 3), ("b", 1), ("c", 2)] {
            for i in 0..n {
                counter.add(name, i == 0);
            }
        }
        let ranking = counter.ranking(10);
        assert!(!ranking.approximate);
        assert_eq!((ranking.distinct, ranking.dropped), (3, 0));
        let top: Vec<(&str, u64, u64, u64)> = ranking
            .top
            .iter()
            .map(|r| (r.name.as_str(), r.domains, r.failing, r.error))
            .collect();
        assert_eq!(top, [("a", 3, 1, 0), ("c", 2, 1, 0), ("b", 1, 1, 0)]);
    }

    #[test]
    fn a_newcomer_takes_the_least_counted_place_with_its_count_as_the_error() {
        let mut counter = TopCounter::with_capacity(2);
        for name in ["a", "a", "a", "b", "c"] {
            counter.add(name, false);
        }
        // c replaced b (count 1): c's count 2 is an upper bound, off by at most 1.
        let ranking = counter.ranking(10);
        assert_eq!(counter.kept(), 2);
        assert!(ranking.approximate);
        assert_eq!((ranking.distinct, ranking.dropped), (3, 1));
        let c = ranking.top.iter().find(|r| r.name == "c").unwrap();
        assert_eq!((c.domains, c.error), (2, 1));
        assert!(!ranking.top.iter().any(|r| r.name == "b"));
    }

    #[test]
    fn distinct_names_are_estimated_within_a_few_percent() {
        let mut distinct = Distinct::default();
        for i in 0..100_000 {
            distinct.add(&format!("mx{i}.example"));
            // A name seen again does not count again.
            distinct.add(&format!("mx{}.example", i / 2));
        }
        let estimate = distinct.estimate() as f64;
        assert!((95_000.0..105_000.0).contains(&estimate), "{estimate}");
        let mut few = Distinct::default();
        for i in 0..50 {
            few.add(&format!("mx{}.example", i % 10));
        }
        assert_eq!(few.estimate(), 10);
    }
}
