-- Farebox on PostgreSQL, version 1. Times are Unix nanoseconds (0 = none),
-- amounts micro-credits or micro-dollars, state documents the JSON of
-- store/codec, the same as on SQLite.
CREATE TABLE customers (
    id         text COLLATE "C" PRIMARY KEY,
    name       text NOT NULL,
    created_at bigint NOT NULL
);

-- One row per account: totals, live lots and pending holds. A batch locks
-- the rows it touches (SELECT … FOR UPDATE, in sorted order) so replicas
-- never apply ops to one account at once.
CREATE TABLE accounts (
    customer text PRIMARY KEY,
    state    text NOT NULL
);

CREATE TABLE dead_lots (
    id       text PRIMARY KEY,
    customer text NOT NULL,
    lot      text NOT NULL
);
CREATE INDEX dead_lots_customer ON dead_lots (customer);

CREATE TABLE lot_expiries (
    lot        text PRIMARY KEY,
    customer   text NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX lot_expiries_due ON lot_expiries (expires_at);

CREATE TABLE holds (
    id         text PRIMARY KEY,
    customer   text NOT NULL,
    status     text NOT NULL,
    expires_at bigint NOT NULL,
    hold       text NOT NULL
);
CREATE INDEX holds_due ON holds (expires_at) WHERE status = 'pending';

-- Append-only: every committed op with its answer, and the idempotency keys.
CREATE TABLE journal (
    seq         bigserial PRIMARY KEY,
    customer    text NOT NULL,
    idem_key    text,
    op          text NOT NULL,
    fingerprint text NOT NULL,
    result      text NOT NULL
);
CREATE UNIQUE INDEX journal_key ON journal (customer, idem_key) WHERE idem_key IS NOT NULL;
CREATE FUNCTION journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the journal is append-only';
END $$;
CREATE TRIGGER journal_no_update BEFORE UPDATE OR DELETE ON journal
    FOR EACH ROW EXECUTE FUNCTION journal_append_only();
CREATE TRIGGER journal_no_truncate BEFORE TRUNCATE ON journal
    FOR EACH STATEMENT EXECUTE FUNCTION journal_append_only();
