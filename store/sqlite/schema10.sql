-- Migration 10: the last verifications of the ledger run from the
-- dashboard (its ledger-health page shows the latest), kept across
-- restarts. problems is a JSON array of strings; error is what kept a
-- run from finishing ('' when it finished).
CREATE TABLE verifications (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    took_us  INTEGER NOT NULL,
    entries  INTEGER NOT NULL,
    accounts INTEGER NOT NULL,
    problems TEXT    NOT NULL,
    error    TEXT    NOT NULL
);
