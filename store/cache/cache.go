// Package cache is the catalog's caching decorator: a farebox.Store whose
// reads of API keys, subscriptions, plans, customers and the rate card are answered
// from memory, and whose own writes drop what they change, so no caller
// has to remember to. Every service of a process reads and writes the
// catalog through one Store, so a revocation, a plan change or a renewal
// takes effect at once in that process.
//
// Keys, subscriptions, plans and customers are cached only for a process that makes
// every change to them (embedded SQLite: TTL > 0); with several replicas
// each read goes to the database, so a key revoked on one fails at once on
// all. The rate card is cached in every process for CardTTL (another
// replica's price change is seen within it), refreshed by one reader at a
// time while the others keep the card they have.
//
// For the sole writer it also keeps the daily sums of the days the reports
// have read, exact: its Write adds to them what each transaction adds to
// the database, so the economics reports fold memory, not SQL (sums.go).
package cache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	fb "farebox"
	"farebox/pricing"
)

// Options tune a Store.
type Options struct {
	// TTL > 0 caches keys, subscriptions and plans that long: only for a
	// process that is the catalog's only writer.
	TTL time.Duration
	// CardTTL is how long the rate card is kept before it is read again;
	// 2 s when 0.
	CardTTL time.Duration
	// Now is the clock the TTLs run on; time.Now when nil.
	Now func() time.Time
	// Sums keeps the daily sums of the days the reports read in memory,
	// exact (see sums.go): kept by this process's writes when TTL > 0
	// (it makes every write), else by the store's marks of what changed
	// when it keeps them (PostgreSQL); else not kept.
	Sums bool
}

// Store decorates a farebox.Store with the cache.
type Store struct {
	fb.Store
	opts Options

	// A read that races a change must not put back what the change
	// dropped (a key looked up just before its revocation, cached just
	// after it): every drop moves the generation on, and a value read
	// under an older generation is not cached.
	mu        sync.Mutex
	gen       uint64
	keys      map[string]entry[fb.APIKey] // by hash
	subs      map[string]entry[fb.Subscription]
	plans     map[string]entry[fb.Plan]
	customers map[string]entry[fb.Customer]

	sums *sums // nil unless Options.Sums

	card    atomic.Pointer[cardEntry]
	cardGen atomic.Uint64
	flight  singleflight.Group
}

var _ fb.Store = (*Store)(nil)

// entry is a cached read: a value, or the not-found error it answered
// (most customers of a gateway may have no plan: that is worth caching).
type entry[T any] struct {
	v   T
	err error
	at  time.Time
}

type cardEntry struct {
	card *pricing.Card
	at   time.Time
	gen  uint64
}

// maxEntries bounds each map; past it the map starts afresh.
const maxEntries = 100_000

// New returns s decorated.
func New(s fb.Store, opts Options) *Store {
	if opts.CardTTL <= 0 {
		opts.CardTTL = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Store{Store: s, opts: opts}
	if opts.Sums {
		if opts.TTL > 0 {
			c.sums = newSums(nil)
		} else if t, ok := s.(changeTracker); ok {
			c.sums = newSums(t)
		}
	}
	return c
}

// cached reads key of m through read, caching what it answers (a value or
// a not-found) for the TTL.
func cached[T any](s *Store, m *map[string]entry[T], key string, read func() (T, error)) (T, error) {
	if s.opts.TTL <= 0 {
		return read()
	}
	now := s.opts.Now()
	s.mu.Lock()
	e, ok := (*m)[key]
	gen := s.gen
	s.mu.Unlock()
	if ok && now.Sub(e.at) < s.opts.TTL {
		return e.v, e.err
	}
	v, err := read()
	if err != nil && fb.ErrorType(err) != fb.ENotFound {
		return v, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen == s.gen {
		if *m == nil || len(*m) >= maxEntries {
			*m = map[string]entry[T]{}
		}
		(*m)[key] = entry[T]{v, err, now}
	}
	return v, err
}

// drop forgets the cached keys, subscriptions and plans.
func (s *Store) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.keys, s.subs, s.plans, s.customers = nil, nil, nil, nil
}

// KeyByHash is the store's, cached.
func (s *Store) KeyByHash(ctx context.Context, hash []byte) (fb.APIKey, error) {
	return cached(s, &s.keys, string(hash), func() (fb.APIKey, error) { return s.Store.KeyByHash(ctx, hash) })
}

// Subscription is the store's, cached.
func (s *Store) Subscription(ctx context.Context, customer string) (fb.Subscription, error) {
	return cached(s, &s.subs, customer, func() (fb.Subscription, error) { return s.Store.Subscription(ctx, customer) })
}

// Plan is the store's, cached.
func (s *Store) Plan(ctx context.Context, id string) (fb.Plan, error) {
	return cached(s, &s.plans, id, func() (fb.Plan, error) { return s.Store.Plan(ctx, id) })
}

// Customer is the store's, cached (the gateway reads a customer's opt-out
// of sponsored suggestions on every request of a sponsored plan).
func (s *Store) Customer(ctx context.Context, id string) (fb.Customer, error) {
	return cached(s, &s.customers, id, func() (fb.Customer, error) { return s.Store.Customer(ctx, id) })
}

// The writes: each drops the cache after it, whatever it answered (a
// failed write may still have changed something).

// CreateCustomer is the store's.
func (s *Store) CreateCustomer(ctx context.Context, c fb.Customer) error {
	defer s.drop()
	return s.Store.CreateCustomer(ctx, c)
}

// CreateCustomers is the store's.
func (s *Store) CreateCustomers(ctx context.Context, cs []fb.Customer) error {
	defer s.drop()
	return s.Store.CreateCustomers(ctx, cs)
}

// SetSponsoredOptOut is the store's: the opt-out holds at once.
func (s *Store) SetSponsoredOptOut(ctx context.Context, id string, optOut bool) (fb.Customer, error) {
	defer s.drop()
	return s.Store.SetSponsoredOptOut(ctx, id, optOut)
}

// CreateKey is the store's.
func (s *Store) CreateKey(ctx context.Context, k fb.APIKey) error {
	defer s.drop()
	return s.Store.CreateKey(ctx, k)
}

// RevokeKey is the store's: the key fails at once.
func (s *Store) RevokeKey(ctx context.Context, id string, at time.Time) (fb.APIKey, error) {
	defer s.drop()
	return s.Store.RevokeKey(ctx, id, at)
}

// CreatePlan is the store's.
func (s *Store) CreatePlan(ctx context.Context, p fb.Plan) error {
	defer s.drop()
	return s.Store.CreatePlan(ctx, p)
}

// DeletePlan is the store's.
func (s *Store) DeletePlan(ctx context.Context, id string) error {
	defer s.drop()
	return s.Store.DeletePlan(ctx, id)
}

// PutSubscription is the store's.
func (s *Store) PutSubscription(ctx context.Context, sub fb.Subscription) error {
	defer s.drop()
	return s.Store.PutSubscription(ctx, sub)
}

// SwapSubscription is the store's (a renewal's or a change's).
func (s *Store) SwapSubscription(ctx context.Context, old, sub fb.Subscription) error {
	defer s.drop()
	return s.Store.SwapSubscription(ctx, old, sub)
}

// PutPrice is the store's; the next Card reads the card again.
func (s *Store) PutPrice(ctx context.Context, p fb.Price) error {
	defer s.cardGen.Add(1)
	return s.Store.PutPrice(ctx, p)
}

// cardReadTimeout bounds one read of the rate card.
const cardReadTimeout = 5 * time.Second

// Card returns the rate card in force, read from the store when the one
// kept is older than CardTTL or a price changed here since. One caller
// reads it while the others wait for that read (not for a lock held
// across the database); when the read fails, the card kept is answered.
func (s *Store) Card(ctx context.Context) (*pricing.Card, error) {
	c := s.card.Load()
	if c != nil && c.gen == s.cardGen.Load() && s.opts.Now().Sub(c.at) < s.opts.CardTTL {
		return c.card, nil
	}
	ch := s.flight.DoChan("card", func() (any, error) {
		gen := s.cardGen.Load()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cardReadTimeout)
		defer cancel()
		prices, err := s.Store.Prices(rctx)
		if err != nil {
			return nil, err
		}
		card := pricing.NewCard(prices)
		s.card.Store(&cardEntry{card: card, at: s.opts.Now(), gen: gen})
		return card, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			if c != nil {
				return c.card, nil
			}
			if fb.ErrorType(r.Err) == fb.EInternal {
				// No card to fall back on and the database did not
				// answer in time: the store is unavailable (503), which
				// a client may retry, not an internal error.
				return nil, fmt.Errorf("%w: %w", fb.ErrStoreUnavailable.New("the rate card could not be read; retry shortly"), r.Err)
			}
			return nil, r.Err
		}
		return r.Val.(*pricing.Card), nil
	case <-ctx.Done():
		if c != nil {
			return c.card, nil
		}
		return nil, ctx.Err()
	}
}
