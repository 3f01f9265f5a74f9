-- Migration 9: payments, automatic top-ups, thresholds, webhooks, key
-- budgets and the downgraded model.

-- The balance before and after each journaled op, which the journal's
-- followers read crossings of thresholds off; 0 for entries before them.
ALTER TABLE journal ADD COLUMN balance_before bigint NOT NULL DEFAULT 0;
ALTER TABLE journal ADD COLUMN balance_after  bigint NOT NULL DEFAULT 0;
-- Of an expiry, the credits of subscription lots it lapsed: the renewal
-- that follows replaces them, which followers judge its crossings by.
ALTER TABLE journal ADD COLUMN lapsed         bigint NOT NULL DEFAULT 0;

-- The transaction that wrote each entry: replicas commit out of sequence
-- order, so followers read entries by (txn, seq), and only those of
-- transactions older than every one still running (pg_snapshot_xmin),
-- which no later commit can come before. 0 for entries before it.
ALTER TABLE journal ADD COLUMN txn bigint NOT NULL DEFAULT 0;
ALTER TABLE journal ALTER COLUMN txn SET DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX journal_txn ON journal (txn, seq);

-- The model a request asked for, when the plan served it by a cheaper one.
ALTER TABLE usage_rows ADD COLUMN requested_model text NOT NULL DEFAULT '';

CREATE TABLE customer_alerts (
    customer      text PRIMARY KEY,
    low_balance   bigint NOT NULL,
    expiring_days bigint NOT NULL
);

CREATE TABLE auto_topups (
    customer    text PRIMARY KEY,
    threshold   bigint NOT NULL,
    credits     bigint NOT NULL,
    cooldown_ns bigint NOT NULL,
    updated_at  bigint NOT NULL
);

-- A customer's id at the payment provider and its saved payment method.
CREATE TABLE payers (
    customer       text PRIMARY KEY,
    provider_id    text NOT NULL,
    payment_method text NOT NULL DEFAULT ''
);

-- Payments that became purchased lots (the grant is keyed by the id), and
-- what their refunds took back.
CREATE TABLE payments (
    id           text PRIMARY KEY,
    customer     text NOT NULL,
    kind         text NOT NULL,
    lot          text NOT NULL,
    credits      bigint NOT NULL,
    paid_usd     bigint NOT NULL,
    created_at   bigint NOT NULL,
    refunded_usd bigint NOT NULL DEFAULT 0,
    clawed_back  bigint NOT NULL DEFAULT 0,
    unrecovered  bigint NOT NULL DEFAULT 0
);

-- Automatic top-ups, recorded before the provider is called: one per
-- customer and crossing of the threshold (the journal entry's seq).
CREATE TABLE topup_attempts (
    id          text PRIMARY KEY,
    customer    text NOT NULL,
    crossing    bigint NOT NULL,
    credits     bigint NOT NULL,
    amount_usd  bigint NOT NULL,
    status      text NOT NULL,
    payment_id  text NOT NULL DEFAULT '',
    error       text NOT NULL DEFAULT '',
    created_at  bigint NOT NULL,
    updated_at  bigint NOT NULL,
    lease_until bigint NOT NULL DEFAULT 0,
    UNIQUE (customer, crossing)
);
CREATE INDEX topup_attempts_last ON topup_attempts (customer, created_at);
CREATE INDEX topup_attempts_status ON topup_attempts (status);

CREATE TABLE webhook_endpoints (
    id         text PRIMARY KEY,
    url        text NOT NULL,
    secret     text NOT NULL,
    events     text NOT NULL,
    created_at bigint NOT NULL
);

-- The outbox: events, each recorded once by its id, and one delivery per
-- endpoint that takes the event's type, delivered in seq order per
-- endpoint and customer.
CREATE TABLE webhook_events (
    seq        bigserial PRIMARY KEY,
    id         text NOT NULL UNIQUE,
    type       text NOT NULL,
    customer   text NOT NULL,
    created_at bigint NOT NULL,
    data       text NOT NULL
);

CREATE TABLE webhook_deliveries (
    id           text PRIMARY KEY,
    event        text NOT NULL,
    endpoint     text NOT NULL,
    customer     text NOT NULL,
    ord          bigint NOT NULL,
    status       text NOT NULL,
    attempts     bigint NOT NULL DEFAULT 0,
    next_at      bigint NOT NULL,
    lease_until  bigint NOT NULL DEFAULT 0,
    last_status  bigint NOT NULL DEFAULT 0,
    last_error   text NOT NULL DEFAULT '',
    delivered_at bigint NOT NULL DEFAULT 0,
    created_at   bigint NOT NULL,
    UNIQUE (event, endpoint)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at);
CREATE INDEX webhook_deliveries_line ON webhook_deliveries (endpoint, customer, status, ord);

CREATE TABLE webhook_attempts (
    delivery    text NOT NULL,
    n           bigint NOT NULL,
    at          bigint NOT NULL,
    status_code bigint NOT NULL,
    error       text NOT NULL,
    duration_us bigint NOT NULL,
    PRIMARY KEY (delivery, n)
);

-- Where each journal follower is.
CREATE TABLE journal_cursors (
    name text PRIMARY KEY,
    txn  bigint NOT NULL,
    seq  bigint NOT NULL
);
