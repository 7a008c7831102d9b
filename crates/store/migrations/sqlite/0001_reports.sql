-- TLS reports: raw bodies first, parsed rows derived from them (they can be rebuilt).
-- Keep in step with ../postgres/0001_reports.sql: same tables, columns and indexes.
-- Times are UTC seconds since the Unix epoch.

CREATE TABLE raw_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at INTEGER NOT NULL,
    source TEXT NOT NULL,
    content_type TEXT NOT NULL,
    bytes BLOB NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL
);
-- The same body delivered twice is kept once.
CREATE UNIQUE INDEX raw_reports_sha256 ON raw_reports (sha256);

CREATE TABLE reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    raw_id INTEGER NOT NULL REFERENCES raw_reports (id) ON DELETE CASCADE,
    organization_name TEXT NOT NULL,
    report_id TEXT NOT NULL,
    date_start INTEGER NOT NULL,
    date_end INTEGER NOT NULL,
    contact_info TEXT,
    -- The report's identity (RFC 8460 §4.4): a second delivery changes nothing.
    UNIQUE (organization_name, report_id, date_start, date_end)
);
CREATE INDEX reports_date_start ON reports (date_start, id);
CREATE INDEX reports_date_end ON reports (date_end);
CREATE INDEX reports_raw_id ON reports (raw_id);

CREATE TABLE report_policies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    report INTEGER NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    policy_type TEXT NOT NULL,
    policy_domain TEXT NOT NULL,
    -- JSON arrays of strings.
    policy_string TEXT NOT NULL,
    mx_host TEXT NOT NULL,
    successful_sessions INTEGER NOT NULL,
    failed_sessions INTEGER NOT NULL
);
CREATE INDEX report_policies_report ON report_policies (report);
-- Listing by domain compares lowercased names without a trailing dot.
CREATE INDEX report_policies_domain ON report_policies (rtrim(lower(policy_domain), '.'), report);

CREATE TABLE failure_details (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    policy INTEGER NOT NULL REFERENCES report_policies (id) ON DELETE CASCADE,
    result_type TEXT NOT NULL,
    sending_mta_ip TEXT,
    receiving_mx_hostname TEXT,
    receiving_mx_helo TEXT,
    receiving_ip TEXT,
    failed_session_count INTEGER NOT NULL,
    additional_information TEXT,
    failure_reason_code TEXT
);
CREATE INDEX failure_details_policy ON failure_details (policy);

CREATE TABLE report_warnings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    report INTEGER NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX report_warnings_report ON report_warnings (report);

CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    raw_id INTEGER NOT NULL UNIQUE REFERENCES raw_reports (id) ON DELETE CASCADE,
    reason TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
