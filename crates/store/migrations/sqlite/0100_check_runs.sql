-- The scheduled checks of `mta-sts serve`: one row per check of a configured domain, kept for
-- `[checks] retention`. Keep in step with the other backend's 0100_check_runs.sql (only the id
-- column differs). Times are UTC seconds; lists are JSON arrays.
CREATE TABLE check_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    domain TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    -- The sender verdict's status (`protected`, `testing`, ...) and its sentence.
    verdict TEXT NOT NULL,
    summary TEXT NOT NULL,
    -- Why the check could not be completed (the resolver did not answer, ...); NULL when it was.
    incomplete TEXT,
    errors BIGINT NOT NULL,
    warnings BIGINT NOT NULL,
    -- What drift is judged on: the TXT record's id, the policy's mode, SHA-256 of the policy
    -- body, why the fetch failed, the MX host names (NULL when the lookup failed), and
    -- [{"host", "not_after"}] of the policy host's and every MX host's certificate.
    policy_id TEXT,
    policy_mode TEXT,
    policy_hash TEXT,
    policy_error TEXT,
    mx TEXT,
    certificates TEXT NOT NULL,
    -- [{"kind", "key", "summary", "detail"}]: what drifted since the run before.
    drift TEXT NOT NULL,
    -- The whole report, as `check --json` gives it for the domain.
    report TEXT NOT NULL,
    UNIQUE (domain, started_at)
);
CREATE INDEX check_runs_started ON check_runs (started_at);
