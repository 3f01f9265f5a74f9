package cache

import (
	"context"
	"errors"
	"testing"
	"time"

	fb "farebox"
)

// pricesStore is a store whose Prices answers err, or one price.
type pricesStore struct {
	fb.Store
	err error
}

func (p *pricesStore) Prices(context.Context) ([]fb.Price, error) {
	if p.err != nil {
		return nil, p.err
	}
	return []fb.Price{{Model: "m", EffectiveFrom: time.Unix(0, 0)}}, nil
}

// TestCardUnavailable: a rate card that cannot be read is the store being
// unavailable (503, retry) when no card was read before, and the card kept
// otherwise — never an internal error on every metered request.
func TestCardUnavailable(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1000, 0)
	st := &pricesStore{err: errors.New("database is locked")}
	c := New(st, Options{Now: func() time.Time { return now }})
	card, err := c.Card(ctx)
	if card != nil || fb.ErrorType(err) != fb.EUnavailable || !errors.Is(err, fb.ErrStoreUnavailable) {
		t.Fatalf("first read failing: card %v, err %v (type %q), want none and store_unavailable", card, err, fb.ErrorType(err))
	}
	st.err = nil
	if card, err = c.Card(ctx); card == nil || err != nil {
		t.Fatalf("read again: %v %v", card, err)
	}
	st.err = errors.New("database is locked")
	now = now.Add(time.Hour) // past the TTL: read again, which fails
	if got, err := c.Card(ctx); got != card || err != nil {
		t.Fatalf("a failing read with a card kept: %v %v, want the kept card", got, err)
	}
}
