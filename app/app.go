// Package app is Farebox's composition root: New builds every service once,
// with its dependencies given explicitly, and Run runs them together and
// stops them in reverse order. `farebox serve`, the benchmarks and the
// end-to-end tests all start Farebox through it; no other package builds a
// service or sets another's fields.
package app

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	fb "farebox"
	"farebox/api"
	"farebox/compute"
	"farebox/economics"
	"farebox/gateway"
	"farebox/httpguard"
	"farebox/httpx"
	"farebox/ids"
	"farebox/ledger"
	"farebox/metering"
	"farebox/metrics"
	"farebox/notify"
	"farebox/payments"
	"farebox/plans"
	"farebox/pricing"
	"farebox/routing"
	"farebox/sponsored"
	"farebox/spool"
	"farebox/store/cache"
	"farebox/store/postgres"
	"farebox/store/sqlite"
	"farebox/ui"
	"farebox/ui/billing"
	"farebox/ui/campaigns"
	"farebox/ui/leasing"
)

// Config is everything Farebox is started with. The zero value of a field
// is its default.
type Config struct {
	// DB names the database: sqlite:///path, postgres://… or
	// postgresql://…; "" is sqlite://<DataDir>/farebox.db.
	DB      string
	DataDir string
	// Store, when set, is used instead of opening DB (a test's store that
	// fails on purpose); SoleWriter says whether this process is its only
	// writer, as with SQLite. The app closes it.
	Store      fb.Store
	SoleWriter bool
	// SpoolDir holds the spool of settlements the ledger has not taken
	// yet; DataDir when "". Each replica needs its own.
	SpoolDir string
	// AdminToken guards the management API.
	AdminToken string
	// Providers are the config file's upstreams; Deployments are added as
	// they are (tests' own upstreams); Router, when set, is used instead
	// of a router of those (a test's own).
	Providers   []Provider
	Deployments []*routing.Deployment
	Router      *routing.Router
	// Getenv reads the providers' API keys; os.Getenv when nil.
	Getenv func(string) string

	Gateway   gateway.Config
	Sponsored sponsored.Config
	Server    httpguard.Limits
	Economics economics.Config
	// The default rate card, stored when the store has none: list prices
	// × CreditsPerUSD (100 when 0) × Markup ("1" when "").
	CreditsPerUSD int64
	Markup        string

	// Clock is time for every service and background job; the system's
	// when nil. NewID mints ids; ids.New when nil.
	Clock fb.Clock
	NewID func(prefix string) string
	Log   *slog.Logger
	// Every is the interval of the background jobs (expiry sweep,
	// renewals, spool); 1 s when 0.
	Every time.Duration
	// Drain is how long requests in flight may take to finish at
	// shutdown; 30 s when 0.
	Drain time.Duration
	// Engine, when set, tunes the ledger engine before it is built (tests,
	// benchmarks); the store decides the rest.
	Engine func(*ledger.Config)
	// DebugAddr, when set, serves Go's profiles (net/http/pprof) there:
	// opt-in, and never on the main address.
	DebugAddr string
	// MetricsAddr says where GET /metrics is served: "" on the main
	// address, "off" nowhere, or an address of its own.
	MetricsAddr string
	// Dashboard configures the web dashboard (package ui).
	Dashboard DashboardConfig
	// Stripe configures payments; without its keys they are off.
	// USDPerCredit prices a credit for checkouts and top-ups (1 ÷
	// CreditsPerUSD when 0).
	Stripe       payments.StripeConfig
	USDPerCredit fb.USD
	// Notify tunes the webhooks' deliveries (tests: retries, the client).
	Notify notify.Config
}

// DashboardConfig is the dashboard's part of the config.
type DashboardConfig struct {
	// TopUp is what the customer's top-up panel says (how to buy
	// credits), until payments offer a checkout.
	TopUp string
	// SessionTTL is how long a sign-in lasts; 12 hours when 0.
	SessionTTL time.Duration
}

// App is a running Farebox: its services, built once.
type App struct {
	Store   *cache.Store
	Engine  *ledger.Engine
	Plans   *plans.Service
	Meter   *metering.Service
	Router  *routing.Router
	Gateway *gateway.Gateway
	Compute *compute.Service
	// Sponsored places sponsored suggestions and keeps campaigns.
	Sponsored *sponsored.Service
	Payments  *payments.Service
	Notify    *notify.Service
	Spool     *spool.Spool
	Metrics   *metrics.Metrics
	// UI is the dashboard; features add their pages to it (UI.Register)
	// here, before its handler is built.
	UI *ui.UI
	// Handler serves the API, the gateway and health, within the
	// server's limits.
	Handler http.Handler
	// Where names the store, for the log (any password hidden).
	Where      string
	SoleWriter bool

	cfg     Config
	limits  httpguard.Limits
	debug   net.Listener
	metrics net.Listener   // MetricsAddr's own, when it has one
	closers []func() error // in the order of construction
	once    sync.Once
	closed  error
}

// New builds every service. On error it closes what it built.
func New(ctx context.Context, cfg Config) (a *App, err error) {
	if cfg.Clock == nil {
		cfg.Clock = fb.SystemClock
	}
	if cfg.NewID == nil {
		cfg.NewID = ids.New
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 30 * time.Second
	}
	if cfg.CreditsPerUSD == 0 {
		cfg.CreditsPerUSD = pricing.DefaultCreditsPerUSD
	}
	if cfg.Markup == "" {
		cfg.Markup = pricing.DefaultMarkup
	}
	if err := cfg.Server.Validate(); err != nil {
		return nil, err
	}
	a = &App{cfg: cfg, limits: cfg.Server.WithDefaults()}
	defer func() {
		if err != nil {
			a.Close()
			a = nil
		}
	}()
	log, now := cfg.Log, cfg.Clock.Now

	store, sole := cfg.Store, cfg.SoleWriter
	a.Where = "(given)"
	if store == nil {
		if store, a.Where, sole, err = OpenStore(ctx, cfg.DB, cfg.DataDir, false); err != nil {
			return a, err
		}
	}
	a.closers = append(a.closers, store.Close)
	a.SoleWriter = sole
	// Keys, plans and subscriptions are cached only where this process
	// makes every change to them; the daily sums the reports read are
	// kept in memory either way (by this process's writes, or by what
	// changed since each read).
	var ttl time.Duration
	if sole {
		ttl = 10 * time.Second
	}
	a.Store = cache.New(store, cache.Options{TTL: ttl, Now: now, Sums: true})

	if err := seedPrices(ctx, a.Store, cfg.CreditsPerUSD, cfg.Markup, log); err != nil {
		return a, err
	}

	ecfg := ledger.Config{Cache: true, Now: now, NewID: cfg.NewID, Logger: log}
	if !sole {
		// Replicas on PostgreSQL trust nothing in memory and keep several
		// batches in flight, each locking its own accounts.
		ecfg = ledger.Config{Writers: 4, Now: now, NewID: cfg.NewID, Logger: log}
	}
	a.Metrics = metrics.New(metrics.Options{Log: log})
	ecfg.Observer = a.Metrics
	if cfg.Engine != nil {
		cfg.Engine(&ecfg)
	}
	a.Engine = ledger.NewEngine(a.Store, ecfg)
	a.closers = append(a.closers, func() error { a.Engine.Close(); return nil })

	spoolDir := cfg.SpoolDir
	if spoolDir == "" {
		spoolDir = cfg.DataDir
	}
	if spoolDir == "" {
		return a, errors.New("app: a data directory or a spool directory is needed for the spool")
	}
	if a.Spool, err = spool.Open(filepath.Join(spoolDir, "spool.log")); err != nil {
		return a, err
	}
	a.closers = append(a.closers, a.Spool.Close)

	getenv := cfg.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	ups, err := buildUpstreams(cfg.Providers, cfg.Deployments, getenv, log)
	if err != nil {
		return a, err
	}
	a.closers = append(a.closers, ups.close)
	a.Router = ups.router
	if cfg.Router != nil {
		a.Router = cfg.Router
	}
	if a.Router.Now == nil {
		a.Router.Now = now
	}

	a.Plans = plans.New(a.Store, a.Engine, cfg.Clock, log)
	a.Meter = metering.New(a.Engine, a.Store, a.Store, now)
	ncfg := cfg.Notify
	ncfg.SoleWriter, ncfg.Metrics = sole, a.Metrics
	a.Notify = notify.New(a.Store, cfg.Clock, cfg.NewID, log, ncfg)
	var provider payments.Provider
	if cfg.Stripe.SecretKey != "" || cfg.Stripe.WebhookSecret != "" {
		st, err := payments.NewStripe(cfg.Stripe)
		if err != nil {
			return a, err
		}
		provider = st
	}
	usdPerCredit := cfg.USDPerCredit
	if usdPerCredit <= 0 {
		usdPerCredit = fb.USD(fb.Micro / cfg.CreditsPerUSD)
	}
	a.Payments = payments.New(provider, a.Store, a.Engine, a.Notify, cfg.Clock, log, payments.Config{USDPerCredit: usdPerCredit, Metrics: a.Metrics})
	// The key that signs sponsored click links is one for every replica:
	// the first to start stores it.
	linkKey, err := a.Store.Setting(ctx, "sponsored_link_key", sponsored.NewSecret())
	if err != nil {
		return a, fmt.Errorf("the sponsored links' key: %w", err)
	}
	secret, err := base64.RawStdEncoding.DecodeString(linkKey)
	if err != nil {
		return a, fmt.Errorf("the sponsored links' key in the store is not base64: %w", err)
	}
	if a.Sponsored, err = sponsored.New(sponsored.Deps{Store: a.Store, Ledger: a.Engine, Clock: cfg.Clock, Log: log, Metrics: a.Metrics, Secret: secret}, cfg.Sponsored); err != nil {
		return a, err
	}
	if err := a.Sponsored.Load(ctx); err != nil {
		return a, fmt.Errorf("loading the sponsored campaigns: %w", err)
	}
	a.Gateway = gateway.New(gateway.Deps{
		Catalog: a.Store, Ledger: a.Engine, Cards: a.Store, Router: a.Router, Spool: a.Spool, Metrics: a.Metrics, Alerts: a.Notify,
		Sponsor: a.Sponsored, Clock: cfg.Clock, NewID: cfg.NewID, Log: log,
	}, cfg.Gateway)
	a.Metrics.Gauges(metrics.Sources{
		Ledger:      a.ledgerStats,
		Deployments: a.deploymentStatuses,
		Gateway:     a.gatewayStats,
		Compute:     a.computeStats,
	})
	var onMain http.Handler
	switch cfg.MetricsAddr {
	case "":
		onMain = a.Metrics.Handler()
	case "off":
	default:
		if a.metrics, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return a, fmt.Errorf("the metrics address: %w", err)
		}
		a.closers = append(a.closers, func() error { a.metrics.Close(); return nil })
	}
	router := a.Router
	a.Compute = compute.New(compute.Deps{Store: a.Store, Ledger: a.Engine, Clock: cfg.Clock, NewID: cfg.NewID, Log: log,
		Serving: func(name string) (int64, int64, bool) {
			if d := router.Deployment(name); d != nil && d.TokensPerSecond > 0 {
				return d.GPUs, d.TokensPerSecond, true
			}
			return 0, 0, false
		}})
	if a.UI, err = ui.New(ui.Deps{
		Store: a.Store, Engine: a.Engine, Plans: a.Plans, Gateway: a.Gateway, Economics: cfg.Economics,
		AdminToken: cfg.AdminToken, Clock: cfg.Clock, NewID: cfg.NewID, Log: log,
		TopUp: cfg.Dashboard.TopUp, SessionTTL: cfg.Dashboard.SessionTTL, CanVerify: sole,
	}); err != nil {
		return a, err
	}
	// Other features' pages are registered with a.UI.Register here:
	// leasing's pools and leases; top-ups (with the checkout on the
	// overview) and webhooks.
	if err := leasing.Register(a.UI, leasing.Deps{Store: a.Store, Compute: a.Compute, Economics: cfg.Economics}); err != nil {
		return a, err
	}
	if err := billing.Register(a.UI, billing.Deps{Store: a.Store, Payments: a.Payments, Notify: a.Notify}); err != nil {
		return a, err
	}
	if err := campaigns.Register(a.UI, campaigns.Deps{Store: a.Store, Campaigns: a.Sponsored, Economics: cfg.Economics}); err != nil {
		return a, err
	}
	routes := api.NewServer(api.Deps{
		Store: a.Store, Engine: a.Engine, Plans: a.Plans, Meter: a.Meter, Cards: a.Store, Gateway: a.Gateway, Compute: a.Compute, Payments: a.Payments, Notify: a.Notify,
		Sponsored: a.Sponsored,
		Economics: cfg.Economics, AdminToken: cfg.AdminToken, Clock: cfg.Clock, NewID: cfg.NewID, Log: log,
		Middleware: a.Metrics.Middleware, Metrics: onMain, UI: a.UI.Handler(),
	})
	if cfg.DebugAddr != "" {
		if a.debug, err = net.Listen("tcp", cfg.DebugAddr); err != nil {
			return a, fmt.Errorf("the debug address: %w", err)
		}
		a.closers = append(a.closers, func() error { a.debug.Close(); return nil })
	}
	// The guard runs before the routes: it refuses a body the server
	// cannot take before anything reads it.
	a.Handler = httpguard.New(a.limits, func(w http.ResponseWriter, r *http.Request, err error) {
		httpx.WriteError(w, r, log, err)
	}).Handler(routes)
	return a, nil
}

// Run serves ln (when not nil) and runs the background jobs — the expiry
// sweep, the renewals, the spool, lease billing, the journal's follower
// (webhooks, alerts, auto top-ups), the top-ups' payments and the
// sponsored campaigns' reload — until ctx ends, then stops in reverse
// order: it stops accepting and lets requests in flight finish (Drain),
// stops the jobs, finishes the ledger's queue, and closes the spool, the
// upstreams and the store. It returns when everything has stopped.
func (a *App) Run(ctx context.Context, ln net.Listener) error {
	jobs, stopJobs := context.WithCancel(context.Background())
	defer stopJobs()
	g, jctx := errgroup.WithContext(jobs)
	g.Go(func() error { a.sweep(jctx); return nil })
	g.Go(func() error { a.Plans.Run(jctx, a.cfg.Every); return nil })
	g.Go(func() error { a.Gateway.RunSpool(jctx, a.cfg.Every); return nil })
	g.Go(func() error { a.UI.Run(jctx, time.Hour); return nil })
	g.Go(func() error { a.Compute.Run(jctx, a.cfg.Every); return nil })
	g.Go(func() error { a.Notify.Run(jctx, a.cfg.Every); return nil })
	g.Go(func() error { a.Payments.RunTopups(jctx, a.cfg.Every); return nil })
	g.Go(func() error { a.Sponsored.Run(jctx); return nil })
	g.Go(func() error {
		// The daily sums the default reports read (the last 30 days), into
		// memory before anyone asks: once, in the background.
		today := a.cfg.Clock.Now().UTC().Truncate(24 * time.Hour)
		if err := a.Store.Warm(jctx, today.AddDate(0, 0, -30), today.AddDate(0, 0, 1)); err != nil && jctx.Err() == nil {
			a.cfg.Log.Warn("reading the daily sums into memory failed; the reports read them when asked", "err", err)
		}
		return nil
	})

	if a.debug != nil {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		ds := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go ds.Serve(a.debug)
		defer ds.Close()
		a.cfg.Log.Info("profiles served", "addr", "http://"+a.debug.Addr().String()+"/debug/pprof/")
	}
	if a.metrics != nil {
		ms := &http.Server{Handler: a.Metrics.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go ms.Serve(a.metrics)
		defer ms.Close()
	}
	var hs *http.Server
	served := make(chan error, 1)
	if ln != nil {
		hs = a.limits.Server(a.Handler)
		go func() { served <- hs.Serve(httpguard.Listener(ln, a.limits.MaxConns)) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
		err = fmt.Errorf("serving: %w", err)
	}
	if hs != nil {
		a.cfg.Log.Info("shutting down: draining requests", "timeout", a.cfg.Drain)
		drain, cancel := context.WithTimeout(context.Background(), a.cfg.Drain)
		if serr := hs.Shutdown(drain); serr != nil {
			a.cfg.Log.Warn("drain timed out; closing connections", "err", serr)
			hs.Close()
		}
		cancel()
	}
	stopJobs()
	g.Wait()
	return errors.Join(err, a.Close())
}

// What the metrics read at each scrape.

func (a *App) ledgerStats() metrics.LedgerStats {
	s := a.Engine.Stats()
	return metrics.LedgerStats{Batches: s.Batches, Ops: s.Ops, Failed: s.Failed, LostHolds: s.Lost,
		QueuedOps: int64(a.Engine.Queued()), HoldsOpen: s.HoldsOpen}
}

func (a *App) deploymentStatuses() []metrics.DeploymentStatus {
	var out []metrics.DeploymentStatus
	for _, d := range a.Router.Statuses() {
		out = append(out, metrics.DeploymentStatus{Name: d.Name, Model: d.Model, Provider: d.Provider, Healthy: d.Healthy,
			Served: d.Served, Failed: d.Failed, TTFTEWMASeconds: d.TTFTEWMAMS / 1000})
	}
	return out
}

func (a *App) computeStats() metrics.ComputeStats {
	s := a.Compute.Stats()
	return metrics.ComputeStats{Admitted: s.Admitted, Refused: s.Refused, Preempted: s.Preempted, Reloads: s.Reloads, StepErrors: s.StepErrors}
}

func (a *App) gatewayStats() metrics.GatewayStats {
	s := a.Gateway.Stats()
	return metrics.GatewayStats{OverCaptures: s.OverCaptures, OverCaptureCredits: int64(s.OverCaptureCredits), Spooled: s.Spooled, Unsettled: s.Unsettled}
}

// MetricsAddr is where the metrics are served on an address of their own,
// "" when they are not.
func (a *App) MetricsAddr() string {
	if a.metrics == nil {
		return ""
	}
	return a.metrics.Addr().String()
}

// DebugAddr is where the profiles are served, "" when they are not.
func (a *App) DebugAddr() string {
	if a.debug == nil {
		return ""
	}
	return a.debug.Addr().String()
}

// sweep expires due holds and lots of idle accounts every interval.
func (a *App) sweep(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.cfg.Clock.After(a.cfg.Every):
		}
		if _, err := a.Engine.Sweep(ctx); err != nil && ctx.Err() == nil {
			a.cfg.Log.Warn("expiry sweep failed", "err", err)
		}
	}
}

// Close closes what New built, in reverse order, once: the ledger's queue
// is finished before the spool and the store close.
func (a *App) Close() error {
	a.once.Do(func() {
		var errs []error
		for i := len(a.closers) - 1; i >= 0; i-- {
			errs = append(errs, a.closers[i]())
		}
		a.closed = errors.Join(errs...)
	})
	return a.closed
}

// OpenStore opens the database a URL or data directory names. It reports
// whether this process is the store's only writer (SQLite), which lets the
// engine keep accounts in memory between batches, and where it is (for
// the log, any password hidden).
func OpenStore(ctx context.Context, dbURL, dataDir string, readOnly bool) (store fb.Store, where string, soleWriter bool, err error) {
	if dbURL == "" {
		dbURL = "sqlite://" + filepath.Join(dataDir, "farebox.db")
	}
	switch {
	case strings.HasPrefix(dbURL, "sqlite:"):
		path := sqlite.PathFromURL(dbURL)
		s, err := sqlite.Open(ctx, path, sqlite.Options{ReadOnly: readOnly})
		if err != nil {
			return nil, "", false, err
		}
		return s, "sqlite://" + path, true, nil
	case postgres.IsURL(dbURL):
		s, err := postgres.Open(ctx, dbURL, postgres.Options{ReadOnly: readOnly})
		if err != nil {
			return nil, "", false, err
		}
		return s, postgres.Redact(dbURL), false, nil
	}
	return nil, "", false, fmt.Errorf("--db %q: want sqlite:///path or postgres://…", postgres.Redact(dbURL))
}

// seedPrices stores the default rate card when the store has none, so a
// new install prices the listed models at once.
func seedPrices(ctx context.Context, store fb.Store, creditsPerUSD int64, markup string, log *slog.Logger) error {
	have, err := store.Prices(ctx)
	if err != nil || len(have) > 0 {
		return err
	}
	prices, err := pricing.DefaultPrices(creditsPerUSD, markup, pricing.DefaultEffective)
	if err != nil {
		return err
	}
	for _, p := range prices {
		if err := store.PutPrice(ctx, p); err != nil {
			return err
		}
	}
	log.Info("default rate card stored", "models", len(prices), "credits_per_usd", creditsPerUSD, "markup", markup)
	return nil
}
