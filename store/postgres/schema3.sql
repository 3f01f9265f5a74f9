-- Migration 3: what the gateway records of each request it settles.
ALTER TABLE usage_rows ADD COLUMN key_id     text    NOT NULL DEFAULT '';
ALTER TABLE usage_rows ADD COLUMN deployment text    NOT NULL DEFAULT '';
ALTER TABLE usage_rows ADD COLUMN latency_us bigint  NOT NULL DEFAULT 0;
ALTER TABLE usage_rows ADD COLUMN ttft_us    bigint  NOT NULL DEFAULT 0;
ALTER TABLE usage_rows ADD COLUMN status     text    NOT NULL DEFAULT '';
