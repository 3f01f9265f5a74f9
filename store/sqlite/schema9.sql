-- Migration 9: payments, automatic top-ups, thresholds, webhooks, key
-- budgets and the downgraded model.

-- The balance before and after each journaled op, which the journal's
-- followers read crossings of thresholds off; 0 for entries before them.
ALTER TABLE journal ADD COLUMN balance_before INTEGER NOT NULL DEFAULT 0;
ALTER TABLE journal ADD COLUMN balance_after  INTEGER NOT NULL DEFAULT 0;
-- Of an expiry, the credits of subscription lots it lapsed: the renewal
-- that follows replaces them, which followers judge its crossings by.
ALTER TABLE journal ADD COLUMN lapsed         INTEGER NOT NULL DEFAULT 0;

-- The model a request asked for, when the plan served it by a cheaper one.
ALTER TABLE usage_rows ADD COLUMN requested_model TEXT NOT NULL DEFAULT '';

CREATE TABLE customer_alerts (
    customer      TEXT PRIMARY KEY,
    low_balance   INTEGER NOT NULL,
    expiring_days INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE auto_topups (
    customer    TEXT PRIMARY KEY,
    threshold   INTEGER NOT NULL,
    credits     INTEGER NOT NULL,
    cooldown_ns INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- A customer's id at the payment provider and its saved payment method.
CREATE TABLE payers (
    customer       TEXT PRIMARY KEY,
    provider_id    TEXT NOT NULL,
    payment_method TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

-- Payments that became purchased lots (the grant is keyed by the id), and
-- what their refunds took back.
CREATE TABLE payments (
    id           TEXT PRIMARY KEY,
    customer     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    lot          TEXT NOT NULL,
    credits      INTEGER NOT NULL,
    paid_usd     INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    refunded_usd INTEGER NOT NULL DEFAULT 0,
    clawed_back  INTEGER NOT NULL DEFAULT 0,
    unrecovered  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Automatic top-ups, recorded before the provider is called: one per
-- customer and crossing of the threshold (the journal entry's seq).
CREATE TABLE topup_attempts (
    id          TEXT PRIMARY KEY,
    customer    TEXT NOT NULL,
    crossing    INTEGER NOT NULL,
    credits     INTEGER NOT NULL,
    amount_usd  INTEGER NOT NULL,
    status      TEXT NOT NULL,
    payment_id  TEXT NOT NULL DEFAULT '',
    error       TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    lease_until INTEGER NOT NULL DEFAULT 0,
    UNIQUE (customer, crossing)
);
CREATE INDEX topup_attempts_last ON topup_attempts (customer, created_at);
CREATE INDEX topup_attempts_status ON topup_attempts (status);

CREATE TABLE webhook_endpoints (
    id         TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    events     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- The outbox: events, each recorded once by its id, and one delivery per
-- endpoint that takes the event's type, delivered in seq order per
-- endpoint and customer.
CREATE TABLE webhook_events (
    seq        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    customer   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    data       TEXT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id           TEXT PRIMARY KEY,
    event        TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    customer     TEXT NOT NULL,
    ord          INTEGER NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    lease_until  INTEGER NOT NULL DEFAULT 0,
    last_status  INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT '',
    delivered_at INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    UNIQUE (event, endpoint)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at);
CREATE INDEX webhook_deliveries_line ON webhook_deliveries (endpoint, customer, status, ord);

CREATE TABLE webhook_attempts (
    delivery    TEXT NOT NULL,
    n           INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status_code INTEGER NOT NULL,
    error       TEXT NOT NULL,
    duration_us INTEGER NOT NULL,
    PRIMARY KEY (delivery, n)
) WITHOUT ROWID;

-- Where each journal follower is.
CREATE TABLE journal_cursors (
    name TEXT PRIMARY KEY,
    txn  INTEGER NOT NULL,
    seq  INTEGER NOT NULL
) WITHOUT ROWID;
