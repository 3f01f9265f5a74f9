// Package gateway is the OpenAI-compatible proxy. For every request it
// authenticates the customer's key, checks the plan's entitlement and rate
// limits, holds the worst case the request could cost before it reaches a
// model (lowering max_tokens to what the balance pays for), forwards it,
// relays the answer (streams event by event), and settles what the request
// really cost from the upstream's usage, or from its own count where the
// upstream reported none. Handlers return errors; the api package maps them
// to HTTP.
package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	fb "farebox"
	"farebox/ledger"
	"farebox/plans"
	"farebox/pricing"
	"farebox/routing"
	"farebox/spool"
)

// Config tunes the gateway; zero fields take the defaults.
type Config struct {
	// MinOutputTokens: when the balance pays for fewer output tokens than
	// this (and than the client asked for), the request is refused with
	// 402 instead of being cut short. 16 when 0.
	MinOutputTokens int64
	// RequestTimeout bounds a non-stream request from hold to settlement,
	// the upstream's generation included, and is the life of a hold:
	// RequestTimeout plus a minute, extended while a stream runs. 10
	// minutes when 0.
	RequestTimeout time.Duration
	// FirstByteTimeout bounds a stream's wait for its response headers;
	// past it the next deployment is tried, or 504. 60 s when 0. (A
	// non-stream answer's headers come when it is done: RequestTimeout.)
	FirstByteTimeout time.Duration
	// StreamIdleTimeout bounds the wait for a stream's next event;
	// FirstByteTimeout when 0.
	StreamIdleTimeout time.Duration
	// StreamTimeout bounds a stream from hold to settlement. 1 hour when 0.
	StreamTimeout time.Duration
	// WriteTimeout bounds each write to the client: one that stops
	// reading is a client that left. 30 s when 0.
	WriteTimeout time.Duration
	// DrainTimeout bounds the reading of a stream after the client left
	// or the gateway ended it at the cap, for the usage the upstream
	// reports at its end. 30 s when 0.
	DrainTimeout time.Duration
	// MaxBodyBytes bounds a request body. 16 MiB when 0.
	MaxBodyBytes int64
	// MaxAnswerBytes bounds a non-stream answer the gateway relays. 64 MiB
	// when 0.
	MaxAnswerBytes int64
	// SettleRetry is how long a settlement is retried while the ledger is
	// unavailable before it is left to the spool. 30 s when 0.
	SettleRetry time.Duration
	// MaxConcurrentPerCustomer > 0 bounds a customer's requests in flight
	// (429 past it). 0: no bound.
	MaxConcurrentPerCustomer int
	// CacheTTL > 0 keeps keys and plans in memory that long. Only for a
	// process that makes every change to them (embedded SQLite), which
	// calls Forget after each; with several replicas each request reads
	// the store, so a key revoked anywhere fails at once everywhere.
	CacheTTL time.Duration
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.MinOutputTokens <= 0 {
		c.MinOutputTokens = 16
	}
	def(&c.RequestTimeout, 10*time.Minute)
	def(&c.FirstByteTimeout, 60*time.Second)
	def(&c.StreamIdleTimeout, c.FirstByteTimeout)
	def(&c.StreamTimeout, time.Hour)
	def(&c.WriteTimeout, 30*time.Second)
	def(&c.DrainTimeout, 30*time.Second)
	def(&c.SettleRetry, 30*time.Second)
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 16 << 20
	}
	if c.MaxAnswerBytes <= 0 {
		c.MaxAnswerBytes = 64 << 20
	}
	return c
}

// holdTTL is a hold's life: a request's timeout and a minute more, so it
// never expires under a running request; a stream extends it.
func (c Config) holdTTL() time.Duration { return c.RequestTimeout + time.Minute }

// Gateway holds what the proxy needs. Set the fields, then serve.
type Gateway struct {
	Store  fb.Store
	Ledger *ledger.Engine
	// Card returns the rate card in force (credits per token).
	Card   func(context.Context) (*pricing.Card, error)
	Router *routing.Router
	// Spool keeps settlements the ledger could not take (the store down,
	// the process killed mid-stream) until it can; nil: none are kept.
	Spool  *spool.Spool
	Config Config
	Now    func() time.Time
	NewID  func(prefix string) string
	Log    *slog.Logger

	once   sync.Once
	cfg    Config
	limits *limiter
	cache  *catalogCache // nil: no caching
	busy   concurrency
	stats  counters
	// spooled are the holds of this process's running streams whose
	// progress is in the spool: not the spool runner's to apply.
	spoolMu sync.Mutex
	spooled map[string]bool
}

// Stats counts what a gateway has seen that an operator must know of.
type Stats struct {
	// OverCaptures are requests that cost more than their hold: a hole in
	// the worst case, charged the hold only. Each is logged as an error.
	OverCaptures int64
	// OverCaptureCredits is what those requests cost beyond their holds.
	OverCaptureCredits fb.Amount
	// Spooled are settlements left to the spool; Unsettled those that
	// could not even be spooled.
	Spooled, Unsettled int64
}

type counters struct {
	overCaptures, overCredits, spooled, unsettled atomic.Int64
}

// Stats returns the gateway's counters.
func (g *Gateway) Stats() Stats {
	return Stats{
		OverCaptures: g.stats.overCaptures.Load(), OverCaptureCredits: fb.Amount(g.stats.overCredits.Load()),
		Spooled: g.stats.spooled.Load(), Unsettled: g.stats.unsettled.Load(),
	}
}

func (g *Gateway) setup() {
	g.once.Do(func() {
		g.cfg = g.Config.withDefaults()
		if g.Now == nil {
			g.Now = time.Now
		}
		if g.NewID == nil {
			g.NewID = ledger.RandomID
		}
		if g.Log == nil {
			g.Log = slog.New(slog.DiscardHandler)
		}
		if g.Router == nil {
			g.Router, _ = routing.NewRouter(nil)
		}
		g.limits = newLimiter()
		g.busy.m = map[string]int{}
		g.spooled = map[string]bool{}
		if g.cfg.CacheTTL > 0 {
			g.cache = &catalogCache{ttl: g.cfg.CacheTTL}
		}
	})
}

// concurrency counts each customer's requests in flight.
type concurrency struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *concurrency) acquire(customer string, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[customer] >= limit {
		return false
	}
	c.m[customer]++
	return true
}

func (c *concurrency) release(customer string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[customer]--; c.m[customer] <= 0 {
		delete(c.m, customer)
	}
}

// KeyPrefix starts every customer API key.
const KeyPrefix = "fbk_"

// HashKey is what is stored of a key.
func HashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// Authenticate finds the key a request carries (Authorization: Bearer, or
// x-api-key). Keys are read from the store on every request (or from a
// cache the revocation drops, see Config.CacheTTL), so a revoked key fails
// at once, on every replica.
func (g *Gateway) Authenticate(r *http.Request) (fb.APIKey, error) {
	key := r.Header.Get("x-api-key")
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		key = tok
	}
	if !strings.HasPrefix(key, KeyPrefix) {
		return fb.APIKey{}, fb.Errorf(fb.EInvalidAPIKey, "an API key (Authorization: Bearer fbk_…) is required")
	}
	g.setup()
	want := HashKey(key)
	k, err := g.lookupKey(r.Context(), want)
	if fb.ErrorType(err) == fb.ENotFound {
		return fb.APIKey{}, fb.Errorf(fb.EInvalidAPIKey, "the API key is not valid")
	}
	if err != nil {
		return fb.APIKey{}, err
	}
	if subtle.ConstantTimeCompare(k.Hash, want) != 1 || !k.RevokedAt.IsZero() {
		return fb.APIKey{}, fb.Errorf(fb.EInvalidAPIKey, "the API key is not valid")
	}
	return k, nil
}

// plan returns the customer's plan, or nil for a customer without one (who
// may use every priced model, without rate limits).
func (g *Gateway) plan(ctx context.Context, customer string) (*fb.Plan, error) {
	if g.cache == nil {
		return g.readPlan(ctx, customer)
	}
	now := g.Now()
	if p, ok := g.cache.plan(customer, now); ok {
		return p, nil
	}
	gen := g.cache.generation()
	p, err := g.readPlan(ctx, customer)
	if err == nil {
		g.cache.putPlan(customer, p, now, gen)
	}
	return p, err
}

func (g *Gateway) readPlan(ctx context.Context, customer string) (*fb.Plan, error) {
	sub, err := g.Store.Subscription(ctx, customer)
	if fb.ErrorType(err) == fb.ENotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p, err := g.Store.Plan(ctx, sub.Plan)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// entitled checks the plan allows model.
func entitled(p *fb.Plan, model string) error {
	if p != nil && !plans.Allows(*p, model) {
		return fb.Errorf(fb.EModelNotAllowed, "the plan %s does not include the model %s", p.ID, model).WithParam("model")
	}
	return nil
}

func readBody(r *http.Request, limit int64) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, fb.Errorf(fb.EUnsupportedMedia, "Content-Type must be application/json, got %q", ct)
		}
	}
	if r.ContentLength > limit {
		return nil, fb.Errorf(fb.ETooLarge, "the request body is %d bytes; the limit is %d", r.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, bodyError(err)
	}
	if int64(len(b)) > limit {
		return nil, fb.Errorf(fb.ETooLarge, "the request body is over the limit of %d bytes", limit)
	}
	return b, nil
}

// bodyError is the client's error for a body that could not be read: the
// server guard's own refusals (too many bodies in flight, too slow) as
// they are, a read deadline hit as 408, anything else as a bad request.
func bodyError(err error) error {
	var fe *fb.Error
	switch {
	case errors.As(err, &fe):
		return fe
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fb.Errorf(fb.ERequestTimeout, "the request body did not arrive in time")
	}
	return fb.Invalid("", "could not read the request body: %v", err)
}
