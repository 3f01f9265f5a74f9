package sqlcat

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

	fb "farebox"
	"farebox/store/codec"
)

// The committed reads of pools and leases (farebox.Leasing). Their writes
// are made in the ledger's transactions, by each driver's write
// transaction.

var _ fb.Leasing = (*Catalog)(nil)

// Pool reads one pool.
func (c *Catalog) Pool(ctx context.Context, id string) (*fb.Pool, error) {
	var doc string
	err := c.R.QueryRowContext(ctx, c.q(`SELECT pool FROM pools WHERE id = ?`), id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("pool", id)
	}
	if err != nil {
		return nil, err
	}
	return codec.DecodePool([]byte(doc))
}

// Pools lists the pools by id.
func (c *Catalog) Pools(ctx context.Context) ([]*fb.Pool, error) {
	return list(ctx, c.R, c.q(`SELECT pool FROM pools ORDER BY id`), func(doc string) (*fb.Pool, error) {
		return codec.DecodePool([]byte(doc))
	})
}

// PoolCapacity reads a pool and its change log in one snapshot (the log
// may be rewritten meanwhile: read apart, the two might not agree).
func (c *Catalog) PoolCapacity(ctx context.Context, id string) (*fb.Pool, []fb.PoolChange, error) {
	var opts *sql.TxOptions
	if c.Dollar {
		// PostgreSQL's default isolation gives each statement its own
		// snapshot; SQLite's read transaction is one snapshot already.
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	tx, err := c.R.BeginTx(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback()
	var doc string
	err = tx.QueryRowContext(ctx, c.q(`SELECT pool FROM pools WHERE id = ?`), id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, notFound("pool", id)
	}
	if err != nil {
		return nil, nil, err
	}
	p, err := codec.DecodePool([]byte(doc))
	if err != nil {
		return nil, nil, err
	}
	rows, err := tx.QueryContext(ctx, c.q(`SELECT changes FROM pool_changes WHERE pool = ? ORDER BY rev`), id)
	if err != nil {
		return nil, nil, err
	}
	changes, err := ScanPoolChanges(rows)
	return p, changes, err
}

// ScanPoolChanges reads rows of a pool's change log, in order, and closes
// them.
func ScanPoolChanges(rows *sql.Rows) ([]fb.PoolChange, error) {
	defer rows.Close()
	var out []fb.PoolChange
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var err error
		if out, err = codec.DecodePoolChanges(out, doc); err != nil {
			return nil, err
		}
	}
	return out, rows.Err()
}

// Lease reads one lease.
func (c *Catalog) Lease(ctx context.Context, id string) (*fb.Lease, error) {
	return c.oneLease(ctx, `SELECT lease FROM leases WHERE id = ?`, "no lease "+id, id)
}

// LeaseByKey finds the lease booked by the op journaled under a
// customer's idempotency key.
func (c *Catalog) LeaseByKey(ctx context.Context, customer, key string) (*fb.Lease, error) {
	var doc string
	err := c.R.QueryRowContext(ctx, c.q(`SELECT op FROM journal WHERE customer = ? AND idem_key = ?`), customer, key).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fb.Errorf(fb.ENotFound, "no lease of %s under that key", customer)
	}
	if err != nil {
		return nil, err
	}
	var op fb.Op
	if err := json.Unmarshal([]byte(doc), &op); err != nil {
		return nil, err
	}
	if op.Lease == nil {
		return nil, fb.Errorf(fb.ENotFound, "no lease of %s under that key", customer)
	}
	return c.Lease(ctx, op.Lease.ID)
}

func (c *Catalog) oneLease(ctx context.Context, q, missing string, args ...any) (*fb.Lease, error) {
	var doc string
	err := c.R.QueryRowContext(ctx, c.q(q), args...).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fb.Errorf(fb.ENotFound, "%s", missing)
	}
	if err != nil {
		return nil, err
	}
	return codec.DecodeLease([]byte(doc))
}

// Leases lists the leases f selects, by id.
func (c *Catalog) Leases(ctx context.Context, f fb.LeaseFilter) ([]*fb.Lease, error) {
	var where []string
	var args []any
	for _, w := range []struct{ col, v string }{{"customer", f.Customer}, {"pool", f.Pool}, {"state", string(f.State)}} {
		if w.v != "" {
			where, args = append(where, w.col+" = ?"), append(args, w.v)
		}
	}
	if !f.To.IsZero() {
		where, args = append(where, "start_at < ?"), append(args, codec.Nanos(f.To))
	}
	if !f.From.IsZero() {
		where, args = append(where, "(end_at = 0 OR end_at > ?)"), append(args, codec.Nanos(f.From))
	}
	if f.After != "" {
		where, args = append(where, "id > ?"), append(args, f.After)
	}
	q := `SELECT lease FROM leases`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	return list(ctx, c.R, c.q(q), func(doc string) (*fb.Lease, error) { return codec.DecodeLease([]byte(doc)) }, args...)
}

// DueLeases lists leases with something due at or before now.
func (c *Catalog) DueLeases(ctx context.Context, now time.Time, limit int) ([]*fb.Lease, error) {
	return list(ctx, c.R, c.q(`SELECT lease FROM leases WHERE next_at > 0 AND next_at <= ? ORDER BY next_at LIMIT ?`),
		func(doc string) (*fb.Lease, error) { return codec.DecodeLease([]byte(doc)) }, codec.Nanos(now), limit)
}
