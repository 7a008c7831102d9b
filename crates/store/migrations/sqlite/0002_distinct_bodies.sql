-- Every distinct body of a report is kept: identity + content hash is unique, not the identity
-- alone, so a forged report cannot mask the real one. One body per identity is counted.
-- Keep in step with ../postgres/0002_distinct_bodies.sql. SQLite cannot drop a table
-- constraint, so `reports` and the tables that refer to it are rebuilt: new tables are filled,
-- the old ones dropped children first (so no cascade deletes anything), and the new ones
-- renamed, which also renames the references to them.

CREATE TABLE reports_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    raw_id INTEGER NOT NULL REFERENCES raw_reports (id) ON DELETE CASCADE,
    organization_name TEXT NOT NULL,
    report_id TEXT NOT NULL,
    date_start INTEGER NOT NULL,
    date_end INTEGER NOT NULL,
    contact_info TEXT,
    -- SHA-256 (hex) of the report as the strict writer writes it; '' for rows stored before
    -- this migration (the next delivery of the same identity fills it in).
    content_sha256 TEXT NOT NULL DEFAULT '',
    -- How far the sender is authenticated: 1 for DKIM-verified mail, 0 otherwise.
    trust INTEGER NOT NULL DEFAULT 0,
    -- 1 when another body with the same identity is stored.
    conflict INTEGER NOT NULL DEFAULT 0,
    -- 1 for the one body per identity that counts in sums.
    counted INTEGER NOT NULL DEFAULT 1
);
INSERT INTO reports_new (id, raw_id, organization_name, report_id, date_start, date_end,
    contact_info)
    SELECT id, raw_id, organization_name, report_id, date_start, date_end, contact_info
    FROM reports;

CREATE TABLE report_policies_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    report INTEGER NOT NULL REFERENCES reports_new (id) ON DELETE CASCADE,
    policy_type TEXT NOT NULL,
    policy_domain TEXT NOT NULL,
    policy_string TEXT NOT NULL,
    mx_host TEXT NOT NULL,
    successful_sessions INTEGER NOT NULL,
    failed_sessions INTEGER NOT NULL
);
INSERT INTO report_policies_new SELECT * FROM report_policies;

CREATE TABLE failure_details_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    policy INTEGER NOT NULL REFERENCES report_policies_new (id) ON DELETE CASCADE,
    result_type TEXT NOT NULL,
    sending_mta_ip TEXT,
    receiving_mx_hostname TEXT,
    receiving_mx_helo TEXT,
    receiving_ip TEXT,
    failed_session_count INTEGER NOT NULL,
    additional_information TEXT,
    failure_reason_code TEXT
);
INSERT INTO failure_details_new SELECT * FROM failure_details;

CREATE TABLE report_warnings_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    report INTEGER NOT NULL REFERENCES reports_new (id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    message TEXT NOT NULL
);
INSERT INTO report_warnings_new SELECT * FROM report_warnings;

DROP TABLE failure_details;
DROP TABLE report_warnings;
DROP TABLE report_policies;
DROP TABLE reports;
ALTER TABLE reports_new RENAME TO reports;
ALTER TABLE report_policies_new RENAME TO report_policies;
ALTER TABLE failure_details_new RENAME TO failure_details;
ALTER TABLE report_warnings_new RENAME TO report_warnings;

CREATE INDEX reports_date_start ON reports (date_start, id);
CREATE INDEX reports_date_end ON reports (date_end);
CREATE INDEX reports_raw_id ON reports (raw_id);
CREATE UNIQUE INDEX reports_body
    ON reports (organization_name, report_id, date_start, date_end, content_sha256);
CREATE UNIQUE INDEX reports_counted
    ON reports (organization_name, report_id, date_start, date_end) WHERE counted = 1;
CREATE INDEX report_policies_report ON report_policies (report);
CREATE INDEX report_policies_domain ON report_policies (rtrim(lower(policy_domain), '.'), report);
CREATE INDEX failure_details_policy ON failure_details (policy);
CREATE INDEX report_warnings_report ON report_warnings (report);

-- Why a body is in quarantine, as a stable code beside the text (`unreadable`, `too-large`,
-- `unindexable`, `reader-failed`, `refused`, `manual`).
ALTER TABLE quarantine ADD COLUMN code TEXT NOT NULL DEFAULT 'unreadable';
