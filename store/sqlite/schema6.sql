-- Migration 6: the dashboard. Its sessions (a signed cookie names one;
-- signing out ends it here, so a copied cookie dies with it), and an index
-- of the daily sums by customer and day, so a customer's pages read their
-- own days without walking every customer's.
CREATE TABLE sessions (
    id         TEXT    PRIMARY KEY,
    customer   TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ended_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE INDEX usage_daily_customer_day ON usage_daily (customer, day);
