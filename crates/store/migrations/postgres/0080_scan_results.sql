-- The results of `mta-sts scan --database`: one row per domain checked, in one table that many
-- scanners (machines splitting a list with --shard, or scans on several days) write to.
-- Keep in step with the other backend's 0080_scan_results.sql. Times are UTC seconds.
CREATE TABLE scan_results (
    domain TEXT NOT NULL,
    checked_at BIGINT NOT NULL,
    -- Who scanned: host name and shard, so the rows of a split scan can be told apart.
    scanner TEXT NOT NULL,
    -- The sender verdict (`protected`, `mail-would-bounce`, ...) and the hygiene counts.
    status TEXT NOT NULL,
    errors BIGINT NOT NULL,
    warnings BIGINT NOT NULL,
    -- The whole report, as `check --json` gives it for the domain.
    report TEXT NOT NULL,
    PRIMARY KEY (domain, checked_at, scanner)
);
CREATE INDEX scan_results_status ON scan_results (status, checked_at);
