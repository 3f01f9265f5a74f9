-- Farebox embedded schema. Times are Unix nanoseconds (0 = none), amounts
-- micro-credits or micro-dollars.
CREATE TABLE customers (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE accounts (
    customer           TEXT PRIMARY KEY,
    overdraft_limit    INTEGER NOT NULL DEFAULT 0,
    debt               INTEGER NOT NULL DEFAULT 0,
    overdraft_reserved INTEGER NOT NULL DEFAULT 0,
    uncollected        INTEGER NOT NULL DEFAULT 0,
    granted            INTEGER NOT NULL DEFAULT 0,
    charged            INTEGER NOT NULL DEFAULT 0,
    expired            INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE lots (
    id           TEXT PRIMARY KEY,
    customer     TEXT NOT NULL,
    source       TEXT NOT NULL,
    priority     INTEGER NOT NULL,
    amount       INTEGER NOT NULL,
    remaining    INTEGER NOT NULL,
    held         INTEGER NOT NULL,
    consumed     INTEGER NOT NULL,
    expired      INTEGER NOT NULL,
    effective_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    paid_usd     INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    live         INTEGER NOT NULL
);
CREATE INDEX lots_customer_live ON lots (customer) WHERE live = 1;
CREATE INDEX lots_due ON lots (expires_at) WHERE live = 1 AND expires_at > 0;

CREATE TABLE holds (
    id          TEXT PRIMARY KEY,
    customer    TEXT NOT NULL,
    amount      INTEGER NOT NULL,
    requested   INTEGER NOT NULL,
    overdraft   INTEGER NOT NULL,
    allocations TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    status      TEXT NOT NULL,
    resolved_at INTEGER NOT NULL,
    resolution  TEXT NOT NULL,
    result      TEXT NOT NULL
);
CREATE INDEX holds_pending ON holds (customer) WHERE status = 'pending';
CREATE INDEX holds_due ON holds (expires_at) WHERE status = 'pending';

-- The journal is append-only: every committed op with its answer. It is also
-- where idempotency keys live, kept forever.
CREATE TABLE journal (
    seq         INTEGER PRIMARY KEY,
    customer    TEXT NOT NULL,
    idem_key    TEXT,
    op          TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    result      TEXT NOT NULL
);
CREATE UNIQUE INDEX journal_key ON journal (customer, idem_key) WHERE idem_key IS NOT NULL;
CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
