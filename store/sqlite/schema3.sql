-- Migration 3: what the gateway records of each request it settles.
ALTER TABLE usage_rows ADD COLUMN key_id     TEXT    NOT NULL DEFAULT '';
ALTER TABLE usage_rows ADD COLUMN deployment TEXT    NOT NULL DEFAULT '';
ALTER TABLE usage_rows ADD COLUMN latency_us INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_rows ADD COLUMN ttft_us    INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_rows ADD COLUMN status     TEXT    NOT NULL DEFAULT '';
ALTER TABLE usage_rows ADD COLUMN revenue_usd INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_rows ADD COLUMN uncollected INTEGER NOT NULL DEFAULT 0;

-- Daily sums of usage rows and of breakage (model and provider ''),
-- kept by the transaction that writes them: reports read these.
CREATE TABLE usage_daily (
    day              TEXT    NOT NULL,
    customer         TEXT    NOT NULL,
    model            TEXT    NOT NULL,
    provider         TEXT    NOT NULL,
    requests         INTEGER NOT NULL,
    credits          INTEGER NOT NULL,
    revenue_usd      INTEGER NOT NULL,
    cost_usd         INTEGER NOT NULL,
    uncollected      INTEGER NOT NULL,
    breakage_credits INTEGER NOT NULL,
    breakage_usd     INTEGER NOT NULL,
    PRIMARY KEY (day, customer, model, provider)
);
INSERT INTO usage_daily
SELECT day, customer, model, provider, count(*), sum(credits), 0, sum(cost_usd), 0, 0, 0
FROM usage_rows GROUP BY day, customer, model, provider;
