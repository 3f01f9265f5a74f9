package codec

import (
	"encoding/json"
	"fmt"
	"time"

	fb "farebox"
)

// Dumper assembles a store's rows, read in one snapshot, into a farebox.Dump
// and records every disagreement between the state and the indexes that
// point into it (the hold rows, the lot-expiry rows) as a problem.
type Dumper struct {
	d        *fb.Dump
	holdRows map[string]bool
	expiries map[string]expiryRow
}

type expiryRow struct {
	customer string
	expires  int64
}

// NewDumper returns an empty Dumper.
func NewDumper() *Dumper {
	return &Dumper{
		d:        &fb.Dump{Accounts: map[string]*fb.Account{}},
		holdRows: map[string]bool{},
		expiries: map[string]expiryRow{},
	}
}

func (d *Dumper) problem(format string, args ...any) {
	d.d.Problems = append(d.d.Problems, fmt.Sprintf(format, args...))
}

// Account adds a stored account; call it for every account before the
// lots and holds.
func (d *Dumper) Account(customer string, state []byte) error {
	a, err := DecodeAccount(customer, state)
	if err != nil {
		return fmt.Errorf("account %s: %w", customer, err)
	}
	d.d.Accounts[customer] = a
	return nil
}

// DeadLot adds a lot that left its account's state.
func (d *Dumper) DeadLot(customer string, lot []byte) error {
	var ls LotState
	if err := json.Unmarshal(lot, &ls); err != nil {
		return fmt.Errorf("dead lot of %s: %w", customer, err)
	}
	a := d.d.Accounts[customer]
	if a == nil {
		d.problem("dead lot %s belongs to account %s, which has no stored state", ls.ID, customer)
		return nil
	}
	a.Lots = append(a.Lots, LotFromState(customer, &ls))
	return nil
}

// Hold adds a hold row: its indexed columns and the hold it stores.
func (d *Dumper) Hold(customer, id, status string, expires int64, hold []byte) error {
	var hs HoldState
	if err := json.Unmarshal(hold, &hs); err != nil {
		return fmt.Errorf("hold of %s: %w", customer, err)
	}
	h := HoldFromState(customer, &hs)
	d.holdRows[h.ID] = true
	// The columns index the row for lookups and the expiry sweep; they
	// must say what the row's hold says.
	if id != h.ID || status != string(h.Status) || expires != Nanos(h.ExpiresAt) {
		d.problem("hold %s: columns say id %s, status %s, expires_at %d; the row's hold says status %s, expires_at %d",
			h.ID, id, status, expires, h.Status, Nanos(h.ExpiresAt))
	}
	a := d.d.Accounts[customer]
	if a == nil {
		d.problem("hold %s belongs to account %s, which has no stored state", h.ID, customer)
		return nil
	}
	if h.Status == fb.HoldPending {
		// The account's state is authoritative for pending holds; the row
		// must agree with it.
		if in, ok := a.Holds[h.ID]; !ok {
			d.problem("hold %s is pending in the holds table but not in account %s", h.ID, customer)
		} else if b1, b2 := mustJSON(HoldToState(in)), mustJSON(HoldToState(h)); b1 != b2 {
			d.problem("hold %s: row %s, account state %s", h.ID, b2, b1)
		}
		return nil
	}
	if _, ok := a.Holds[h.ID]; ok {
		d.problem("hold %s is %s in the holds table but pending in account %s", h.ID, h.Status, customer)
	}
	a.Closed[h.ID] = h
	return nil
}

// LotExpiry adds a row of the lot-expiry index.
func (d *Dumper) LotExpiry(lot, customer string, expires int64) {
	d.expiries[lot] = expiryRow{customer, expires}
}

// Dump finishes the checks and returns the dump.
func (d *Dumper) Dump() *fb.Dump {
	for c, a := range d.d.Accounts {
		for id := range a.Holds {
			if !d.holdRows[id] {
				d.problem("account %s holds %s, which has no row in the holds table", c, id)
			}
		}
		// The expiry index has a row for exactly the lots with free credit
		// and an expiry, at that expiry.
		for _, l := range a.Lots {
			if l.ExpiresAt.IsZero() || l.Remaining <= l.Held {
				continue
			}
			r, ok := d.expiries[l.ID]
			switch {
			case !ok:
				d.problem("lot %s of %s has free credit expiring at %s but no expiry index row", l.ID, c, l.ExpiresAt.UTC().Format(time.RFC3339Nano))
			case r.customer != c || r.expires != Nanos(l.ExpiresAt):
				d.problem("lot %s: expiry index says %s at %d, the lot %s at %d", l.ID, r.customer, r.expires, c, Nanos(l.ExpiresAt))
			}
			delete(d.expiries, l.ID)
		}
	}
	for lot, r := range d.expiries {
		d.problem("expiry index row for lot %s of %s, which has no free credit to expire", lot, r.customer)
	}
	return d.d
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
