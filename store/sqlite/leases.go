package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	fb "farebox"
	"farebox/store/codec"
	"farebox/store/sqlcat"
)

// The lease tables' part of a write transaction (farebox.LeaseTx). The
// writer connection is the only one: a pool needs no lock beyond it.

var leaseStatements = map[string]string{
	"pool":        `SELECT pool FROM pools WHERE id = ?`,
	"poolChanges": `SELECT changes FROM pool_changes WHERE pool = ? AND rev > ? ORDER BY rev`,
	"liveLeases":  `SELECT lease FROM leases WHERE pool = ? AND class = ? AND state IN ('scheduled', 'active')`,
	"leaseByID":   `SELECT lease FROM leases WHERE id = ?`,
	"insertPool":  `INSERT INTO pools (id, pool) VALUES (?, ?)`,
	"updatePool":  `UPDATE pools SET pool = ? WHERE id = ?`,
	"poolChange":  `INSERT INTO pool_changes (pool, rev, changes) VALUES (?, ?, ?)`,
	"saveLease": `INSERT INTO leases (` + codec.LeaseColumns + `) VALUES (?,?,?,?,?,?,?,?,?)
		ON CONFLICT (id) DO UPDATE SET state = excluded.state, start_at = excluded.start_at, end_at = excluded.end_at,
		next_at = excluded.next_at, lease = excluded.lease`,
}

func (t *writeTx) LockPools(ctx context.Context, ids []string) (map[string]*fb.Pool, error) {
	out := make(map[string]*fb.Pool, len(ids))
	st := t.stmt(ctx, "pool")
	for _, id := range ids {
		var doc []byte
		err := st.QueryRowContext(ctx, id).Scan(&doc)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		p, err := codec.DecodePool(doc)
		if err != nil {
			return nil, err
		}
		out[id] = p
	}
	return out, nil
}

func (t *writeTx) PoolChanges(ctx context.Context, pool string, after int64) ([]fb.PoolChange, error) {
	rows, err := t.stmt(ctx, "poolChanges").QueryContext(ctx, pool, after)
	if err != nil {
		return nil, err
	}
	return sqlcat.ScanPoolChanges(rows)
}

func (t *writeTx) LiveLeases(ctx context.Context, pool string, class fb.LeaseClass) ([]*fb.Lease, error) {
	rows, err := t.stmt(ctx, "liveLeases").QueryContext(ctx, pool, string(class))
	if err != nil {
		return nil, err
	}
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

func (t *writeTx) LeasesByID(ctx context.Context, ids []string) (map[string]*fb.Lease, error) {
	out := make(map[string]*fb.Lease, len(ids))
	st := t.stmt(ctx, "leaseByID")
	for _, id := range ids {
		var doc []byte
		err := st.QueryRowContext(ctx, id).Scan(&doc)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		l, err := codec.DecodeLease(doc)
		if err != nil {
			return nil, err
		}
		out[id] = l
	}
	return out, nil
}

func (t *writeTx) SavePool(ctx context.Context, p *fb.Pool, insert bool) error {
	doc, err := codec.EncodePool(p)
	if err != nil {
		return err
	}
	if insert {
		if _, err := t.stmt(ctx, "insertPool").ExecContext(ctx, p.ID, doc); err != nil {
			if isConstraint(err) {
				return fb.ErrPoolExists.New("pool %q already exists", p.ID)
			}
			return err
		}
		return nil
	}
	res, err := t.stmt(ctx, "updatePool").ExecContext(ctx, doc, p.ID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("save pool %s: %d rows, %v", p.ID, n, err)
	}
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
	if _, err := t.stmt(ctx, "poolChange").ExecContext(ctx, pool, rev, doc); err != nil {
		return fmt.Errorf("pool %s changes: %w", pool, err)
	}
	return nil
}

func (t *writeTx) ResetPoolChanges(ctx context.Context, pool string, rev int64, changes []fb.PoolChange) error {
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM pool_changes WHERE pool = ?`, pool); err != nil {
		return err
	}
	return t.AppendPoolChanges(ctx, pool, rev, changes)
}

func (t *writeTx) SaveLeases(ctx context.Context, ls []*fb.Lease) error {
	st := t.stmt(ctx, "saveLease")
	for _, l := range ls {
		vals, err := codec.LeaseValues(l)
		if err != nil {
			return err
		}
		if _, err := st.ExecContext(ctx, vals...); err != nil {
			return fmt.Errorf("save lease %s: %w", l.ID, err)
		}
	}
	return nil
}
