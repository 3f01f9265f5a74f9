-- Migration 3: what the gateway records of each request it settles.
ALTER TABLE usage_rows ADD COLUMN key_id     TEXT    NOT NULL DEFAULT '';
ALTER TABLE usage_rows ADD COLUMN deployment TEXT    NOT NULL DEFAULT '';
ALTER TABLE usage_rows ADD COLUMN latency_us INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_rows ADD COLUMN ttft_us    INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_rows ADD COLUMN status     TEXT    NOT NULL DEFAULT '';
