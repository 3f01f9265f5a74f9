-- Migration 5: what a usage sells (product: '' for inference, lease, ads)
-- and the plan of the customer it is attributed to, for the economics
-- report by product and by plan. The daily sums gain both in their key.
ALTER TABLE usage_rows ADD COLUMN product TEXT NOT NULL DEFAULT '';
ALTER TABLE usage_rows ADD COLUMN plan    TEXT NOT NULL DEFAULT '';

CREATE TABLE usage_daily_v5 (
    day              TEXT    NOT NULL,
    customer         TEXT    NOT NULL,
    model            TEXT    NOT NULL,
    provider         TEXT    NOT NULL,
    product          TEXT    NOT NULL,
    plan             TEXT    NOT NULL,
    requests         INTEGER NOT NULL,
    credits          INTEGER NOT NULL,
    revenue_usd      INTEGER NOT NULL,
    cost_usd         INTEGER NOT NULL,
    uncollected      INTEGER NOT NULL,
    breakage_credits INTEGER NOT NULL,
    breakage_usd     INTEGER NOT NULL,
    PRIMARY KEY (day, customer, model, provider, product, plan)
);
INSERT INTO usage_daily_v5
SELECT day, customer, model, provider, '', '', requests, credits, revenue_usd, cost_usd, uncollected, breakage_credits, breakage_usd
FROM usage_daily;
DROP TABLE usage_daily;
ALTER TABLE usage_daily_v5 RENAME TO usage_daily;
