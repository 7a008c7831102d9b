-- The place of a policy in its report (0, 1, ...), so that policies inserted many rows at a time
-- are matched to their failure details by (report, ordinal) rather than by the order in which
-- the database returns new rows, which neither backend promises. Rows stored before keep 0;
-- reads order by (ordinal, id). Keep in step with ../postgres/0003_policy_ordinal.sql.
ALTER TABLE report_policies ADD COLUMN ordinal INTEGER NOT NULL DEFAULT 0;
