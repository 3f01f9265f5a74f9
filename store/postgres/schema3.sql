-- Migration 3: what the gateway records of each request it settles.
ALTER TABLE usage_rows ADD COLUMN key_id     text    NOT NULL DEFAULT '';
ALTER TABLE usage_rows ADD COLUMN deployment text    NOT NULL DEFAULT '';
ALTER TABLE usage_rows ADD COLUMN latency_us bigint  NOT NULL DEFAULT 0;
ALTER TABLE usage_rows ADD COLUMN ttft_us    bigint  NOT NULL DEFAULT 0;
ALTER TABLE usage_rows ADD COLUMN status     text    NOT NULL DEFAULT '';
ALTER TABLE usage_rows ADD COLUMN revenue_usd bigint NOT NULL DEFAULT 0;
ALTER TABLE usage_rows ADD COLUMN uncollected bigint  NOT NULL DEFAULT 0;

-- Daily sums of usage rows and of breakage (model and provider ''),
-- kept by the transaction that writes them: reports read these.
CREATE TABLE usage_daily (
    day              text    NOT NULL,
    customer         text    NOT NULL,
    model            text    NOT NULL,
    provider         text    NOT NULL,
    requests         bigint  NOT NULL,
    credits          bigint  NOT NULL,
    revenue_usd      bigint  NOT NULL,
    cost_usd         bigint  NOT NULL,
    uncollected      bigint  NOT NULL,
    breakage_credits bigint  NOT NULL,
    breakage_usd     bigint  NOT NULL,
    PRIMARY KEY (day, customer, model, provider)
);
INSERT INTO usage_daily
SELECT day, customer, model, provider, count(*), sum(credits), 0, sum(cost_usd), 0, 0, 0
FROM usage_rows GROUP BY day, customer, model, provider;
