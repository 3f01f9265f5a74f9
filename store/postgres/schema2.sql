-- Version 2: plans, subscriptions, rate cards, API keys, metered events and
-- usage. Catalog rows are JSON documents beside the columns queries use.
CREATE TABLE plans (
    id   text PRIMARY KEY,
    plan text NOT NULL
);

CREATE TABLE subscriptions (
    customer   text PRIMARY KEY,
    plan       text NOT NULL,
    next_plan  text NOT NULL,
    period_end bigint NOT NULL,
    sub        text NOT NULL
);
CREATE INDEX subscriptions_due ON subscriptions (period_end);
CREATE INDEX subscriptions_plan ON subscriptions (plan);
CREATE INDEX subscriptions_next_plan ON subscriptions (next_plan);

CREATE TABLE prices (
    model          text NOT NULL,
    effective_from bigint NOT NULL,
    price          text NOT NULL,
    PRIMARY KEY (model, effective_from)
);

CREATE TABLE api_keys (
    id       text PRIMARY KEY,
    customer text NOT NULL,
    hash     bytea NOT NULL UNIQUE,
    api_key  text NOT NULL
);
CREATE INDEX api_keys_customer ON api_keys (customer);

-- Metered events' keys (source and id), global and kept forever, pointing
-- at the journal entry that debited them.
CREATE TABLE events (
    event_key text PRIMARY KEY,
    seq       bigint NOT NULL
);

-- One row per priced usage, written with the debit that paid for it.
CREATE TABLE usage_rows (
    id                  text NOT NULL,
    source              text NOT NULL,
    customer            text NOT NULL,
    model               text NOT NULL,
    provider            text NOT NULL,
    at                  bigint NOT NULL,
    day                 text NOT NULL,
    input_tokens        bigint NOT NULL,
    output_tokens       bigint NOT NULL,
    cached_input_tokens bigint NOT NULL,
    reasoning_tokens    bigint NOT NULL,
    images              bigint NOT NULL,
    audio_us            bigint NOT NULL,
    video_us            bigint NOT NULL,
    gpu_us              bigint NOT NULL,
    requests            bigint NOT NULL,
    credits             bigint NOT NULL,
    cost_usd            bigint NOT NULL
);
CREATE INDEX usage_at ON usage_rows (at);
CREATE INDEX usage_customer_at ON usage_rows (customer, at);
