package gateway

import (
	"context"
	"sync"
	"time"

	fb "farebox"
)

// catalogCache keeps keys and customers' plans in memory for a gateway
// whose process makes every change to them (embedded SQLite: one server).
// A change made through this process (a key revoked, a plan or
// subscription changed) drops the cache at once; TTL bounds what another
// writer (a renewal switching plans, someone at the database) can leave
// stale.
//
// A read that races a change must not put back what the change dropped (a
// key looked up just before its revocation, cached just after it): every
// drop moves the generation on, and a value read under an older generation
// is not cached.
type catalogCache struct {
	ttl   time.Duration
	mu    sync.Mutex
	gen   uint64
	keys  map[string]cachedKey // by hash
	plans map[string]cachedPlan
}

// generation is the cache's generation, read before a store lookup.
func (c *catalogCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

type cachedKey struct {
	key fb.APIKey
	at  time.Time
}

type cachedPlan struct {
	plan *fb.Plan
	at   time.Time
}

// maxCached bounds each map; past it the map starts afresh.
const maxCached = 100_000

func (c *catalogCache) key(hash string, now time.Time) (fb.APIKey, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.keys[hash]
	if !ok || now.Sub(k.at) >= c.ttl {
		return fb.APIKey{}, false
	}
	return k.key, true
}

func (c *catalogCache) putKey(hash string, k fb.APIKey, now time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return // read before a change that dropped it
	}
	if c.keys == nil || len(c.keys) >= maxCached {
		c.keys = map[string]cachedKey{}
	}
	c.keys[hash] = cachedKey{k, now}
}

func (c *catalogCache) plan(customer string, now time.Time) (*fb.Plan, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.plans[customer]
	if !ok || now.Sub(p.at) >= c.ttl {
		return nil, false
	}
	return p.plan, true
}

func (c *catalogCache) putPlan(customer string, p *fb.Plan, now time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.plans == nil || len(c.plans) >= maxCached {
		c.plans = map[string]cachedPlan{}
	}
	c.plans[customer] = cachedPlan{p, now}
}

func (c *catalogCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keys, c.plans = nil, nil
	c.gen++
}

// Forget drops what the gateway keeps in memory of keys and plans: call it
// after revoking a key or changing a plan or subscription, so the change
// takes effect at once.
func (g *Gateway) Forget() {
	g.setup()
	if g.cache != nil {
		g.cache.clear()
	}
}

// lookupKey is Store.KeyByHash through the cache.
func (g *Gateway) lookupKey(ctx context.Context, hash []byte) (fb.APIKey, error) {
	if g.cache == nil {
		return g.Store.KeyByHash(ctx, hash)
	}
	now := g.Now()
	if k, ok := g.cache.key(string(hash), now); ok {
		return k, nil
	}
	gen := g.cache.generation()
	k, err := g.Store.KeyByHash(ctx, hash)
	if err == nil {
		g.cache.putKey(string(hash), k, now, gen)
	}
	return k, err
}
