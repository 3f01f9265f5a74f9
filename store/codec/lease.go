package codec

import (
	"encoding/json"
	"fmt"

	fb "farebox"
)

// Pools and leases are stored as JSON documents beside the columns their
// queries use. A lease's row keeps its times in Unix nanoseconds, 0 for
// none (an open end, nothing due).

// LeaseColumns lists the columns of a lease row, in the order LeaseValues
// gives their values.
const LeaseColumns = "id, customer, pool, class, state, start_at, end_at, next_at, lease"

// LeaseValues returns a lease row's column values.
func LeaseValues(l *fb.Lease) ([]any, error) {
	b, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	return []any{l.ID, l.Customer, l.Pool, string(l.Class), string(l.State), Nanos(l.Start), Nanos(l.End), Nanos(l.NextAt), string(b)}, nil
}

// DecodeLease reads a lease document.
func DecodeLease(doc []byte) (*fb.Lease, error) {
	l := &fb.Lease{}
	if err := json.Unmarshal(doc, l); err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	return l, nil
}

// EncodePool is a pool's document.
func EncodePool(p *fb.Pool) (string, error) {
	b, err := json.Marshal(p)
	return string(b), err
}

// EncodePoolChanges is a transaction's changes of a pool's capacity as a
// row of its log: [[at, firm, spot], …], at in Unix nanoseconds.
func EncodePoolChanges(cs []fb.PoolChange) (string, error) {
	rows := make([][3]int64, len(cs))
	for i, c := range cs {
		rows[i] = [3]int64{Nanos(c.At), c.Firm, c.Spot}
	}
	b, err := json.Marshal(rows)
	return string(b), err
}

// DecodePoolChanges appends a log row's changes to out.
func DecodePoolChanges(out []fb.PoolChange, doc []byte) ([]fb.PoolChange, error) {
	var rows [][3]int64
	if err := json.Unmarshal(doc, &rows); err != nil {
		return out, fmt.Errorf("pool changes: %w", err)
	}
	for _, r := range rows {
		out = append(out, fb.PoolChange{At: FromNanos(r[0]), Firm: r[1], Spot: r[2]})
	}
	return out, nil
}

// DecodePool reads a pool document.
func DecodePool(doc []byte) (*fb.Pool, error) {
	p := &fb.Pool{}
	if err := json.Unmarshal(doc, p); err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	return p, nil
}
