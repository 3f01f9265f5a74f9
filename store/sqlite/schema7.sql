-- Migration 7: GPU pools and their leases (package compute). A pool and a
-- lease are JSON documents beside the columns queries use; times are Unix
-- nanoseconds (0: none). Each admission writes its lease row in the
-- transaction of its hold, so the lease's indexes are few and, but for the
-- one of what is due next, grow at their end (ids sort by creation time).
-- A lease booked under an idempotency key is found through the journal's
-- key, which the booking's hold op is recorded under.
CREATE TABLE pools (
    id   TEXT PRIMARY KEY,
    pool TEXT NOT NULL
) WITHOUT ROWID;

-- Each pool's capacity over time, as a log of changes: each transaction
-- that changes it appends one row at the pool's next rev, under the pool's
-- lock, holding its changes as a JSON array of [at, firm, spot]: from
-- instant at on, the GPUs in use by firm (reserved, on-demand) and spot
-- leases change by firm and spot. Rows land at the end of the index; the
-- capacity is their sum (a replica catches up by reading the rows after
-- the rev it has).
CREATE TABLE pool_changes (
    pool    TEXT NOT NULL,
    rev     INTEGER NOT NULL,
    changes TEXT NOT NULL,
    PRIMARY KEY (pool, rev)
) WITHOUT ROWID;

CREATE TABLE leases (
    id       TEXT    PRIMARY KEY,
    customer TEXT    NOT NULL,
    pool     TEXT    NOT NULL,
    class    TEXT    NOT NULL,
    state    TEXT    NOT NULL,
    start_at INTEGER NOT NULL,
    end_at   INTEGER NOT NULL,
    next_at  INTEGER NOT NULL,
    lease    TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX leases_due ON leases (next_at) WHERE next_at > 0;
CREATE INDEX leases_pool ON leases (pool, class, state);
CREATE INDEX leases_state ON leases (state);
