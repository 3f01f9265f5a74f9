-- Migration 6: the dashboard. Its sessions (a signed cookie names one;
-- signing out ends it here, so a copied cookie dies with it, on every
-- replica), and an index of the daily sums by customer and day, so a
-- customer's pages read their own days without walking every customer's.
CREATE TABLE sessions (
    id         text COLLATE "C" PRIMARY KEY,
    customer   text   NOT NULL,
    key_id     text   NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    ended_at   bigint NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE INDEX usage_daily_customer_day ON usage_daily (customer, day);
