-- Version 2: plans, subscriptions, rate cards, API keys, metered events and
-- usage. Catalog rows are JSON documents beside the columns queries use.
CREATE TABLE plans (
    id   TEXT PRIMARY KEY,
    plan TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE subscriptions (
    customer   TEXT PRIMARY KEY,
    plan       TEXT NOT NULL,
    next_plan  TEXT NOT NULL,
    period_end INTEGER NOT NULL,
    sub        TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX subscriptions_due ON subscriptions (period_end);
CREATE INDEX subscriptions_plan ON subscriptions (plan);
CREATE INDEX subscriptions_next_plan ON subscriptions (next_plan);

CREATE TABLE prices (
    model          TEXT NOT NULL,
    effective_from INTEGER NOT NULL,
    price          TEXT NOT NULL,
    PRIMARY KEY (model, effective_from)
) WITHOUT ROWID;

CREATE TABLE api_keys (
    id       TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    hash     BLOB NOT NULL UNIQUE,
    api_key  TEXT NOT NULL
);
CREATE INDEX api_keys_customer ON api_keys (customer);

-- Metered events' keys (source and id), global and kept forever, pointing
-- at the journal entry that debited them.
CREATE TABLE events (
    event_key TEXT PRIMARY KEY,
    seq       INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per priced usage, written with the debit that paid for it.
CREATE TABLE usage_rows (
    id                  TEXT NOT NULL,
    source              TEXT NOT NULL,
    customer            TEXT NOT NULL,
    model               TEXT NOT NULL,
    provider            TEXT NOT NULL,
    at                  INTEGER NOT NULL,
    day                 TEXT NOT NULL,
    input_tokens        INTEGER NOT NULL,
    output_tokens       INTEGER NOT NULL,
    cached_input_tokens INTEGER NOT NULL,
    reasoning_tokens    INTEGER NOT NULL,
    images              INTEGER NOT NULL,
    audio_us            INTEGER NOT NULL,
    video_us            INTEGER NOT NULL,
    gpu_us              INTEGER NOT NULL,
    requests            INTEGER NOT NULL,
    credits             INTEGER NOT NULL,
    cost_usd            INTEGER NOT NULL
);
CREATE INDEX usage_at ON usage_rows (at);
CREATE INDEX usage_customer_at ON usage_rows (customer, at);
