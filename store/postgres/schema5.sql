-- Migration 5: what a usage sells (product: '' for inference, lease, ads)
-- and the plan of the customer it is attributed to, for the economics
-- report by product and by plan. The daily sums gain both in their key.
ALTER TABLE usage_rows ADD COLUMN product text NOT NULL DEFAULT '';
ALTER TABLE usage_rows ADD COLUMN plan    text NOT NULL DEFAULT '';
ALTER TABLE usage_daily ADD COLUMN product text NOT NULL DEFAULT '';
ALTER TABLE usage_daily ADD COLUMN plan    text NOT NULL DEFAULT '';
ALTER TABLE usage_daily DROP CONSTRAINT usage_daily_pkey;
ALTER TABLE usage_daily ADD PRIMARY KEY (day, customer, model, provider, product, plan);
