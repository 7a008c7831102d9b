//! The cache's entries as the store keeps them, and back.

use mta_sts_policy::Policy;
use mta_sts_store::{PolicyEntry, StoredPolicy};

use super::cache::{CachedPolicy, Dane, Entry, Outcome};

/// `entry` as the store keeps it.
pub(crate) fn to_stored(entry: &Entry) -> PolicyEntry {
    PolicyEntry {
        domain: entry.domain.clone(),
        checked_at: entry.checked_at,
        outcome: entry.outcome.kind().to_owned(),
        outcome_detail: entry.outcome.detail().map(str::to_owned),
        policy: entry.policy.as_ref().map(|policy| StoredPolicy {
            id: policy.id.clone(),
            body: policy.body.clone(),
            fetched_at: policy.fetched_at,
            confirmed_at: policy.confirmed_at,
            expires_at: policy.expires_at(),
        }),
    }
}

/// The entry the store kept. A policy that no longer parses (written by another version, or
/// altered in the database) is dropped, as is an entry whose outcome this version cannot name:
/// a new lookup then finds what is true now. DANE is not stored: it is
/// [`Dane::Unchecked`], so the first request looks at DNSSEC again before answering
/// ([`PolicyResolver::with_dane`](super::PolicyResolver::with_dane)).
pub(crate) fn from_stored(stored: PolicyEntry) -> Option<Entry> {
    let outcome = Outcome::from_parts(&stored.outcome, stored.outcome_detail)?;
    let policy = stored.policy.and_then(|policy| {
        let parsed = Policy::parse(policy.body.as_bytes()).ok()?;
        Some(CachedPolicy {
            id: policy.id,
            body: policy.body,
            policy: parsed,
            fetched_at: policy.fetched_at,
            confirmed_at: policy.confirmed_at,
        })
    });
    Some(Entry {
        domain: stored.domain,
        policy,
        checked_at: stored.checked_at,
        outcome,
        dane: Dane::Unchecked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_as_it_was_stored() {
        let body = "version: STSv1\nmode: enforce\nmx: mx.a.example\nmax_age: 86400\n";
        let entry = Entry {
            domain: "a.example".into(),
            policy: Some(CachedPolicy {
                id: "20240101".into(),
                body: body.into(),
                policy: Policy::parse(body.as_bytes()).unwrap(),
                fetched_at: 100,
                confirmed_at: 200,
            }),
            checked_at: 300,
            outcome: Outcome::FetchFailed("connection refused".into()),
            dane: Dane::Unchecked,
        };
        let stored = to_stored(&entry);
        assert_eq!(stored.policy.as_ref().unwrap().expires_at, 200 + 86400);
        assert_eq!(from_stored(stored), Some(entry));
    }

    #[test]
    fn an_unreadable_policy_or_outcome_is_dropped() {
        let mut stored = PolicyEntry {
            domain: "a.example".into(),
            checked_at: 1,
            outcome: "valid".into(),
            outcome_detail: None,
            policy: Some(StoredPolicy {
                id: "1".into(),
                body: "not a policy".into(),
                fetched_at: 1,
                confirmed_at: 1,
                expires_at: 2,
            }),
        };
        assert_eq!(from_stored(stored.clone()).unwrap().policy, None);
        stored.outcome = "from_the_future".into();
        assert_eq!(from_stored(stored), None);
    }
}
