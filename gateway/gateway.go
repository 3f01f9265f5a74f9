// Package gateway is the OpenAI-compatible proxy. For every request it
// authenticates the customer's key, checks the plan's entitlement and rate
// limits, holds the worst case the request could cost before it reaches a
// model (lowering max_tokens to what the balance pays for), forwards it,
// relays the answer (streams event by event), and settles what the request
// really cost from the upstream's usage, or from its own count where the
// upstream reported none. On a plan with sponsored suggestions, a decision
// moment's answer may carry one beside the model's (package sponsored
// decides and charges it; sponsor.go adds it). Handlers return errors; the
// api package maps them to HTTP.
package gateway

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	fb "farebox"
	"farebox/keys"
	"farebox/plans"
	"farebox/pricing"
	"farebox/routing"
	"farebox/sponsored"
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

// Catalog is what the gateway reads of keys, subscriptions and plans (the
// store, through its cache).
type Catalog interface {
	KeyByHash(ctx context.Context, hash []byte) (fb.APIKey, error)
	Subscription(ctx context.Context, customer string) (fb.Subscription, error)
	Plan(ctx context.Context, id string) (fb.Plan, error)
}

// Ledger applies the gateway's ops: holds (answered before their commit,
// see ledger.Engine.Reserve), captures, releases, extensions.
type Ledger interface {
	Submit(ctx context.Context, op fb.Op) (fb.Result, error)
	Reserve(ctx context.Context, op fb.Op, lost func()) (fb.Result, error)
}

// Cards gives the rate card in force (credits per token).
type Cards interface {
	Card(ctx context.Context) (*pricing.Card, error)
}

// Observer is told of every settled request and failed upstream attempt
// (the metrics).
type Observer interface {
	ObserveRequest(model, deployment, status string, ttft, latency time.Duration)
	ObserveUpstreamError(deployment, kind string)
}

// Alerter is told when a key's budget refuses a request (the notify
// service: key.budget_exceeded).
type Alerter interface {
	BudgetExceeded(ctx context.Context, k fb.APIKey, at time.Time)
}

// Sponsor places sponsored suggestions (package sponsored): Place answers
// a placement held for a response, or nil.
type Sponsor interface {
	Place(ctx context.Context, a sponsored.Ask) *sponsored.Placement
}

// Deps are what a Gateway works with. Spool, Metrics, Alerts and Sponsor
// may be nil: then a settlement the ledger cannot take is only logged,
// nothing is observed, no one is told of budgets refusing requests, and no
// response carries a suggestion.
type Deps struct {
	Catalog Catalog
	Ledger  Ledger
	Cards   Cards
	Router  *routing.Router
	Spool   *spool.Spool
	Metrics Observer
	Alerts  Alerter
	Sponsor Sponsor
	Clock   fb.Clock
	NewID   func(prefix string) string
	Log     *slog.Logger
}

// Gateway is the proxy. Make one with New.
type Gateway struct {
	catalog   Catalog
	ledger    Ledger
	cards     Cards
	router    *routing.Router
	spool     *spool.Spool
	obs       Observer
	alerts    Alerter
	sponsorer Sponsor
	clock     fb.Clock
	newID     func(prefix string) string
	log       *slog.Logger
	cfg       Config

	limits *limiter
	busy   concurrency
	stats  counters
	// spooled are the holds of this process's running streams whose
	// progress is in the spool: not the spool runner's to apply.
	spoolMu sync.Mutex
	spooled map[string]bool
}

// New returns a gateway over d, tuned by cfg (zero fields take their
// defaults).
func New(d Deps, cfg Config) *Gateway {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = noObserver{}
	}
	return &Gateway{
		catalog: d.Catalog, ledger: d.Ledger, cards: d.Cards, router: d.Router, spool: d.Spool, obs: d.Metrics, alerts: d.Alerts, sponsorer: d.Sponsor,
		clock: d.Clock, newID: d.NewID, log: d.Log, cfg: cfg.withDefaults(),
		limits: newLimiter(), busy: concurrency{m: map[string]int{}}, spooled: map[string]bool{},
	}
}

type noObserver struct{}

func (noObserver) ObserveRequest(string, string, string, time.Duration, time.Duration) {}
func (noObserver) ObserveUpstreamError(string, string)                                 {}

// Router is the gateway's router (the deployments and their health).
func (g *Gateway) Router() *routing.Router { return g.router }

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

// Authenticate finds the key a request carries (Authorization: Bearer, or
// x-api-key). Keys are read through the catalog, whose cache (kept only by
// a sole writer) a revocation drops, so a revoked key fails at once, on
// every replica.
func (g *Gateway) Authenticate(r *http.Request) (fb.APIKey, error) {
	key := r.Header.Get("x-api-key")
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		key = tok
	}
	if !strings.HasPrefix(key, keys.Prefix) {
		return fb.APIKey{}, fb.Errorf(fb.EInvalidAPIKey, "an API key (Authorization: Bearer fbk_…) is required")
	}
	return g.AuthenticateKey(r.Context(), key)
}

// AuthenticateKey finds the live key whose secret is key (the dashboard's
// sign-in checks a key with it too).
func (g *Gateway) AuthenticateKey(ctx context.Context, key string) (fb.APIKey, error) {
	if !strings.HasPrefix(key, keys.Prefix) {
		return fb.APIKey{}, fb.Errorf(fb.EInvalidAPIKey, "the API key is not valid")
	}
	want := keys.Hash(key)
	k, err := g.catalog.KeyByHash(ctx, want)
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
	sub, err := g.catalog.Subscription(ctx, customer)
	if fb.ErrorType(err) == fb.ENotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p, err := g.catalog.Plan(ctx, sub.Plan)
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
