-- Migration 8: cache writes (Anthropic's cache_creation_input_tokens),
-- priced at the rate card's cache_write_per_mtok. Rate cards are stored as
-- documents: a version without the rate reads as 1.25 × its input rate.
ALTER TABLE usage_rows ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0;
