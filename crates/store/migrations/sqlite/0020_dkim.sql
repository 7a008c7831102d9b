-- The DKIM check of each report mail (RFC 8460 §3 asks report mail to be signed): one row per
-- raw body that was checked. Keep in step with ../postgres/0020_dkim.sql.
CREATE TABLE raw_dkim (
    raw_id INTEGER PRIMARY KEY REFERENCES raw_reports (id) ON DELETE CASCADE,
    -- 'pass', 'fail' or 'none' (no signature).
    result TEXT NOT NULL,
    -- The signing domain (d=) of the signature that passed, else of the first one.
    domain TEXT,
    -- Why a signature failed, as the verifier said.
    reason TEXT,
    checked_at INTEGER NOT NULL
);
