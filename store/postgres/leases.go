package postgres

import (
	"context"
	"fmt"

	fb "farebox"
	"farebox/store/codec"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The lease tables' part of a write transaction (farebox.LeaseTx). Pools
// are locked with SELECT … FOR UPDATE in sorted order, after the accounts
// the batch locked, so two replicas never admit past a pool's capacity
// together and never deadlock. Reads come before the transaction queues
// any write; writes are sent with the journal.

// LockPools locks the pools in sorted order until the transaction ends.
func (t *writeTx) LockPools(ctx context.Context, ids []string) (map[string]*fb.Pool, error) {
	rows, err := t.tx.Query(ctx, `SELECT pool FROM pools WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]*fb.Pool, len(ids))
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		p, err := codec.DecodePool(doc)
		if err != nil {
			return nil, err
		}
		out[p.ID] = p
	}
	return out, rows.Err()
}

func (t *writeTx) PoolChanges(ctx context.Context, pool string, after int64) ([]fb.PoolChange, error) {
	rows, err := t.tx.Query(ctx, `SELECT changes FROM pool_changes WHERE pool = $1 AND rev > $2 ORDER BY rev`, pool, after)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []fb.PoolChange
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		if out, err = codec.DecodePoolChanges(out, doc); err != nil {
			return nil, err
		}
	}
	return out, rows.Err()
}

func (t *writeTx) LiveLeases(ctx context.Context, pool string, class fb.LeaseClass) ([]*fb.Lease, error) {
	rows, err := t.tx.Query(ctx, `SELECT lease FROM leases WHERE pool = $1 AND class = $2 AND state IN ('scheduled', 'active')`, pool, string(class))
	if err != nil {
		return nil, err
	}
	return scanLeases(rows)
}

func (t *writeTx) LeasesByID(ctx context.Context, ids []string) (map[string]*fb.Lease, error) {
	rows, err := t.tx.Query(ctx, `SELECT lease FROM leases WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, err
	}
	ls, err := scanLeases(rows)
	out := make(map[string]*fb.Lease, len(ls))
	for _, l := range ls {
		out[l.ID] = l
	}
	return out, err
}

func scanLeases(rows pgx.Rows) ([]*fb.Lease, error) {
	defer rows.Close()
	var out []*fb.Lease
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		l, err := codec.DecodeLease(doc)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// SavePool queues the pool's insert or update. An insert of an id another
// replica took meanwhile fails the commit as refused (farebox.ErrRejected).
func (t *writeTx) SavePool(ctx context.Context, p *fb.Pool, insert bool) error {
	doc, err := codec.EncodePool(p)
	if err != nil {
		return err
	}
	if insert {
		var exists bool
		if err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pools WHERE id = $1)`, p.ID).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return fb.ErrPoolExists.New("pool %q already exists", p.ID)
		}
		t.batch.Queue(`INSERT INTO pools (id, pool) VALUES ($1, $2)`, p.ID, doc)
		return nil
	}
	id := p.ID
	t.batch.Queue(`UPDATE pools SET pool = $1 WHERE id = $2`, doc, p.ID).Exec(func(ct pgconn.CommandTag) error {
		if ct.RowsAffected() != 1 {
			return fmt.Errorf("save pool %s: %d rows", id, ct.RowsAffected())
		}
		return nil
	})
	return nil
}

func (t *writeTx) AppendPoolChanges(ctx context.Context, pool string, rev int64, changes []fb.PoolChange) error {
	if len(changes) == 0 {
		return nil
	}
	doc, err := codec.EncodePoolChanges(changes)
	if err != nil {
		return err
	}
	t.batch.Queue(`INSERT INTO pool_changes (pool, rev, changes) VALUES ($1, $2, $3)`, pool, rev, doc)
	return nil
}

func (t *writeTx) ResetPoolChanges(ctx context.Context, pool string, rev int64, changes []fb.PoolChange) error {
	t.batch.Queue(`DELETE FROM pool_changes WHERE pool = $1`, pool)
	return t.AppendPoolChanges(ctx, pool, rev, changes)
}

func (t *writeTx) SaveLeases(ctx context.Context, ls []*fb.Lease) error {
	for _, l := range ls {
		vals, err := codec.LeaseValues(l)
		if err != nil {
			return err
		}
		t.batch.Queue(`INSERT INTO leases (`+codec.LeaseColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
			ON CONFLICT (id) DO UPDATE SET state = excluded.state, start_at = excluded.start_at, end_at = excluded.end_at,
			next_at = excluded.next_at, lease = excluded.lease`, vals...)
	}
	return nil
}
