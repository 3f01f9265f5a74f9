-- Farebox embedded schema. Times are Unix nanoseconds (0 = none), amounts
-- micro-credits or micro-dollars.
CREATE TABLE customers (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- One row per account: its totals, live lots and pending holds as one JSON
-- document, so a batch rewrites each touched account once, on one page.
CREATE TABLE accounts (
    customer TEXT PRIMARY KEY,
    state    TEXT NOT NULL
) WITHOUT ROWID;

-- Lots that can no longer change (nothing remaining or held), moved out of
-- the account's state when they die.
CREATE TABLE dead_lots (
    id       TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    lot      TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX dead_lots_customer ON dead_lots (customer);

-- Lots with free credit and an expiry, for the expiry sweep.
CREATE TABLE lot_expiries (
    lot        TEXT PRIMARY KEY,
    customer   TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX lot_expiries_due ON lot_expiries (expires_at);

-- Every hold by id (ids sort by creation time, so inserts append). While a
-- hold is pending the account's state is authoritative; the row says whose
-- it is and when it expires, and keeps the resolution once it has one.
CREATE TABLE holds (
    id         TEXT PRIMARY KEY,
    customer   TEXT NOT NULL,
    status     TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    hold       TEXT NOT NULL
) WITHOUT ROWID;
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
