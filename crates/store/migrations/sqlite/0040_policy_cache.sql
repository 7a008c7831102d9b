-- The resolver's MTA-STS policy cache (RFC 8461 §3.3, §5.1), shared by every resolver that
-- uses this store. Keep in step with ../postgres/0040_policy_cache.sql.
-- Times are UTC seconds since the Unix epoch.

-- One row per domain: the last lookup's outcome and, while it may be used, the last valid
-- policy (`policy_id` is NULL when there is none).
CREATE TABLE policy_cache (
    domain TEXT PRIMARY KEY,
    checked_at INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    outcome_detail TEXT,
    policy_id TEXT,
    policy_body TEXT,
    fetched_at INTEGER,
    confirmed_at INTEGER,
    expires_at INTEGER
);

-- Each purge (`resolver purge`), so that running resolvers drop the same entries from memory:
-- `domain` is NULL for a purge of everything.
CREATE TABLE policy_cache_purges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    domain TEXT,
    purged_at INTEGER NOT NULL
);
