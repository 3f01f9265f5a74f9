package metering

import (
	"context"
	"log/slog"
	"sync"
	"time"

	fb "farebox"
	"farebox/pricing"
)

// Cards keeps the rate card read from the store, refreshed when it is older
// than TTL (another replica may have changed it) and at once after a change
// made here.
type Cards struct {
	Store interface {
		Prices(ctx context.Context) ([]fb.Price, error)
	}
	TTL time.Duration // 2 s when zero
	Now func() time.Time
	Log *slog.Logger

	mu     sync.Mutex
	card   *pricing.Card
	loaded time.Time
}

// Load returns the current card, reading the store when it is stale.
func (c *Cards) Load(ctx context.Context) (*pricing.Card, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ttl := c.TTL
	if ttl == 0 {
		ttl = 2 * time.Second
	}
	now := time.Now()
	if c.card != nil && now.Sub(c.loaded) < ttl {
		return c.card, nil
	}
	prices, err := c.Store.Prices(ctx)
	if err != nil {
		return c.card, err
	}
	c.card, c.loaded = pricing.NewCard(prices), now
	return c.card, nil
}

// Card is Load for callers that cannot fail: when the store does not
// answer it keeps the last card it read (or an empty one, which prices
// nothing: every model is unknown, never free).
func (c *Cards) Card() *pricing.Card {
	card, err := c.Load(context.Background())
	if err != nil && c.Log != nil {
		c.Log.Warn("rate card not refreshed", "err", err)
	}
	if card == nil {
		return pricing.NewCard(nil)
	}
	return card
}

// Invalidate makes the next Load read the store.
func (c *Cards) Invalidate() {
	c.mu.Lock()
	c.card = nil
	c.mu.Unlock()
}
