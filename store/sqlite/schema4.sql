-- Migration 4: management requests made under a client's idempotency key
-- that are not one ledger op (a subscription change): what was asked (its
-- fingerprint), when it was first tried, and its response once it finished.
-- Kept forever, like the ledger's keys.
CREATE TABLE keyed_requests (
    customer    TEXT    NOT NULL,
    scope       TEXT    NOT NULL,
    idem_key    TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    response    TEXT,
    PRIMARY KEY (customer, scope, idem_key)
) WITHOUT ROWID;
