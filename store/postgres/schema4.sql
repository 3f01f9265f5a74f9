-- Migration 4: management requests made under a client's idempotency key
-- that are not one ledger op (a subscription change): what was asked (its
-- fingerprint), when it was first tried, and its response once it finished.
-- Kept forever, like the ledger's keys.
CREATE TABLE keyed_requests (
    customer    text   NOT NULL,
    scope       text   NOT NULL,
    idem_key    text   NOT NULL,
    fingerprint text   NOT NULL,
    at          bigint NOT NULL,
    response    text,
    PRIMARY KEY (customer, scope, idem_key)
);
