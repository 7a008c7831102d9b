-- Every distinct body of a report is kept: identity + content hash is unique, not the identity
-- alone, so a forged report cannot mask the real one. One body per identity is counted.
-- Keep in step with ../sqlite/0002_distinct_bodies.sql (SQLite must rebuild the tables to drop
-- a table constraint; the resulting schema is the same, checked by the store's tests).

ALTER TABLE reports DROP CONSTRAINT reports_organization_name_report_id_date_start_date_end_key;
-- SHA-256 (hex) of the report as the strict writer writes it; '' for rows stored before this
-- migration (the next delivery of the same identity fills it in).
ALTER TABLE reports ADD COLUMN content_sha256 TEXT NOT NULL DEFAULT '';
-- How far the sender is authenticated: 1 for DKIM-verified mail, 0 otherwise.
ALTER TABLE reports ADD COLUMN trust BIGINT NOT NULL DEFAULT 0;
-- 1 when another body with the same identity is stored.
ALTER TABLE reports ADD COLUMN conflict BIGINT NOT NULL DEFAULT 0;
-- 1 for the one body per identity that counts in sums.
ALTER TABLE reports ADD COLUMN counted BIGINT NOT NULL DEFAULT 1;
CREATE UNIQUE INDEX reports_body
    ON reports (organization_name, report_id, date_start, date_end, content_sha256);
CREATE UNIQUE INDEX reports_counted
    ON reports (organization_name, report_id, date_start, date_end) WHERE counted = 1;

-- Why a body is in quarantine, as a stable code beside the text (`unreadable`, `too-large`,
-- `unindexable`, `reader-failed`, `refused`, `manual`).
ALTER TABLE quarantine ADD COLUMN code TEXT NOT NULL DEFAULT 'unreadable';
