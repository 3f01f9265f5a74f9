-- Migration 10: the last verifications of the ledger (the dashboard's
-- ledger-health page shows the latest), kept across restarts; problems is
-- a JSON array of strings, error what kept a run from finishing ('' when
-- it finished). And on each row of the daily sums the transaction that
-- last changed it, indexed, so a replica that keeps the sums in memory
-- reads only the rows changed since the snapshot of its last read (rows
-- from before this migration: 0, older than every snapshot).
CREATE TABLE verifications (
    id       BIGSERIAL PRIMARY KEY,
    at       BIGINT NOT NULL,
    took_us  BIGINT NOT NULL,
    entries  BIGINT NOT NULL,
    accounts BIGINT NOT NULL,
    problems TEXT   NOT NULL,
    error    TEXT   NOT NULL
);
ALTER TABLE usage_daily ADD COLUMN last_xid xid8 NOT NULL DEFAULT '0';
CREATE INDEX usage_daily_changed ON usage_daily (last_xid);
