-- Drift alerts of `mta-sts serve` ([alerts]): one row per (domain, kind, key), open or cleared,
-- and one row per alert and channel for its last notification. The cool-down is counted from
-- `notified_at`, so it holds across a clear and a re-open and across restarts.
-- Keep in step with the other backend's 0110_alerts.sql. Times are UTC seconds.
CREATE TABLE alerts (
    domain TEXT NOT NULL,
    -- `mx_changed_policy_not`, `failure_rate_high`, ...
    kind TEXT NOT NULL,
    -- The identity within the kind: an MX host, a result type, a reporter ('' when none).
    alert_key TEXT NOT NULL,
    -- 1 while the condition holds, 0 once cleared.
    is_open BIGINT NOT NULL,
    summary TEXT NOT NULL,
    detail TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    -- When the current (or last) open period began.
    opened_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    cleared_at BIGINT,
    -- When a notification was last queued; NULL when never.
    notified_at BIGINT,
    PRIMARY KEY (domain, kind, alert_key)
);
CREATE INDEX alerts_open ON alerts (is_open, domain);
CREATE TABLE alert_deliveries (
    domain TEXT NOT NULL,
    kind TEXT NOT NULL,
    alert_key TEXT NOT NULL,
    -- `webhook` or `email`.
    channel TEXT NOT NULL,
    -- pending, sent, failed.
    status TEXT NOT NULL,
    queued_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_attempt_at BIGINT,
    last_error TEXT,
    PRIMARY KEY (domain, kind, alert_key, channel)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (status, next_attempt_at);
