-- The sending side's TLS results (RFC 8460) and the reports built from them.
-- Keep in step with ../postgres/0060_collected.sql: same tables, columns and indexes.
-- Times are UTC seconds since the Unix epoch; days are `YYYY-MM-DD` (UTC).

-- Each committed interval of the collector, once: a commit retried after an uncertain outcome
-- finds its id here and adds nothing twice.
CREATE TABLE collected_intervals (
    id TEXT PRIMARY KEY,
    committed_at INTEGER NOT NULL,
    datagrams INTEGER NOT NULL,
    invalid INTEGER NOT NULL
);

-- Session counts per (day, policy domain, TLSRPT record, applied policy); `policy_key` is the
-- SHA-256 of the last three, so that long policy strings are not indexed.
CREATE TABLE collected_policies (
    day TEXT NOT NULL,
    policy_key TEXT NOT NULL,
    domain TEXT NOT NULL,
    tlsrpt_record TEXT NOT NULL,
    policy_type TEXT NOT NULL,
    policy_domain TEXT NOT NULL,
    -- JSON arrays of strings.
    policy_string TEXT NOT NULL,
    mx_host TEXT NOT NULL,
    successful INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    PRIMARY KEY (day, policy_key)
);

-- Failure counts per policy entry and failure detail (`detail_key` hashes its fields).
CREATE TABLE collected_failures (
    day TEXT NOT NULL,
    policy_key TEXT NOT NULL,
    detail_key TEXT NOT NULL,
    result_type TEXT NOT NULL,
    sending_mta_ip TEXT,
    receiving_mx_hostname TEXT,
    receiving_mx_helo TEXT,
    receiving_ip TEXT,
    additional_information TEXT,
    failure_reason_code TEXT,
    failed INTEGER NOT NULL,
    PRIMARY KEY (day, policy_key, detail_key)
);

-- Datagrams that could not be read, kept for inspection.
CREATE TABLE invalid_datagrams (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    reason TEXT NOT NULL
);

-- Reports built for delivery, one per (day, policy domain, TLSRPT record).
CREATE TABLE outgoing_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    day TEXT NOT NULL,
    domain TEXT NOT NULL,
    record_key TEXT NOT NULL,
    tlsrpt_record TEXT NOT NULL,
    report_id TEXT NOT NULL,
    json BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (day, domain, record_key)
);

-- One row per report and destination (a `rua` URI): what happened to it.
CREATE TABLE report_deliveries (
    report INTEGER NOT NULL REFERENCES outgoing_reports (id) ON DELETE CASCADE,
    destination TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_attempt_at INTEGER,
    last_error TEXT,
    PRIMARY KEY (report, destination)
);
CREATE INDEX report_deliveries_due ON report_deliveries (status, next_attempt_at);
