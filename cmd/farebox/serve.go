package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	fb "farebox"
	"farebox/api"
	"farebox/economics"
	"farebox/gateway"
	"farebox/httpguard"
	"farebox/ledger"
	"farebox/plans"
	"farebox/pricing"
	"farebox/spool"
	"farebox/store/postgres"
	"farebox/store/sqlite"
)

type serveConfig struct {
	addr, dataDir, db string
	spoolDir          string
	config            string
	drain             time.Duration
	demo              bool
	creditsPerUSD     int64
	markup            string
}

func serveFlags(args []string, getenv func(string) string, stderr io.Writer) (serveConfig, error) {
	var c serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", envOr(getenv, "FAREBOX_ADDR", "127.0.0.1:8080"), "listen address (port 0 picks a free one) [FAREBOX_ADDR]")
	fs.StringVar(&c.dataDir, "data-dir", envOr(getenv, "FAREBOX_DATA_DIR", "./farebox-data"), "data directory [FAREBOX_DATA_DIR]")
	fs.StringVar(&c.db, "db", getenv("FAREBOX_DB"), "database URL, default sqlite://<data-dir>/farebox.db [FAREBOX_DB]")
	fs.StringVar(&c.config, "config", getenv("FAREBOX_CONFIG"), "YAML config file: providers, gateway limits [FAREBOX_CONFIG]")
	fs.StringVar(&c.spoolDir, "spool-dir", getenv("FAREBOX_SPOOL_DIR"), "where settlements the ledger could not take yet are kept, default the data directory; each replica needs its own [FAREBOX_SPOOL_DIR]")
	fs.DurationVar(&c.drain, "drain", 30*time.Second, "on SIGTERM, how long requests in flight may take to finish")
	fs.BoolVar(&c.demo, "demo", false, "seed a demo plan, customer, key and (without configured providers) a simulator (idempotent)")
	perUSD := fs.String("credits-per-usd", envOr(getenv, "FAREBOX_CREDITS_PER_USD", strconv.Itoa(pricing.DefaultCreditsPerUSD)), "credits one US dollar buys, for the default rate card [FAREBOX_CREDITS_PER_USD]")
	fs.StringVar(&c.markup, "markup", envOr(getenv, "FAREBOX_MARKUP", pricing.DefaultMarkup), "factor on providers' list prices in the default rate card, such as 1.25 [FAREBOX_MARKUP]")
	if err := parseFlags(fs, args); err != nil {
		return c, err
	}
	n, err := strconv.ParseInt(*perUSD, 10, 64)
	if err != nil || n < 1 {
		return c, &exitError{2, fmt.Errorf("--credits-per-usd %q must be a positive integer", *perUSD)}
	}
	if _, err := pricing.DefaultPrices(n, c.markup, pricing.DefaultEffective); err != nil {
		return c, &exitError{2, fmt.Errorf("--markup: %w", err)}
	}
	c.creditsPerUSD = n
	return c, nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// openStore opens the database a --db URL or data directory names. It
// reports whether this process is the store's only writer (SQLite), which
// lets the engine keep accounts in memory between batches.
func openStore(ctx context.Context, dbURL, dataDir string, readOnly bool) (store fb.Store, where string, soleWriter bool, err error) {
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
		return s, redact(dbURL), false, nil
	}
	return nil, "", false, fmt.Errorf("--db %q: want sqlite:///path or postgres://…", redact(dbURL))
}

// redact hides a database URL's passwords for errors and logs.
func redact(u string) string { return postgres.Redact(u) }

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := serveFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	file, err := loadConfig(cfg.config)
	if err != nil {
		return &exitError{2, err}
	}
	gwConfig, err := file.Gateway.config()
	if err != nil {
		return &exitError{2, fmt.Errorf("--config %s: %w", cfg.config, err)}
	}
	limits, err := file.Server.limits()
	if err != nil {
		return &exitError{2, fmt.Errorf("--config %s: %w", cfg.config, err)}
	}
	if file.AdminToken != "" && getenv("FAREBOX_ADMIN_TOKEN") == "" {
		getenv = withEnv(getenv, "FAREBOX_ADMIN_TOKEN", file.AdminToken)
	}
	if t := getenv("FAREBOX_ADMIN_TOKEN"); t != "" && utf8.RuneCountInString(t) < minAdminToken {
		return &exitError{2, fmt.Errorf("the admin token (FAREBOX_ADMIN_TOKEN or admin_token in the config) has %d characters; it must have at least %d (for example: openssl rand -base64 32)", utf8.RuneCountInString(t), minAdminToken)}
	}
	shares, err := file.shares()
	if err != nil {
		return &exitError{2, fmt.Errorf("--config %s: %w", cfg.config, err)}
	}
	providers := file.Providers
	if len(providers) == 0 && cfg.demo {
		providers = demoProviders
	}
	ups, err := buildUpstreams(providers, getenv, log)
	if err != nil {
		return &exitError{2, fmt.Errorf("--config %s: %w", cfg.config, err)}
	}
	defer ups.close()
	store, where, soleWriter, err := openStore(ctx, cfg.db, cfg.dataDir, false)
	if err != nil {
		return err
	}
	defer store.Close()
	token, generated, err := adminToken(getenv, cfg.dataDir)
	if err != nil {
		return err
	}
	engine := ledger.NewEngine(store, engineConfig(soleWriter, log))
	if err := seedPrices(ctx, store, cfg.creditsPerUSD, cfg.markup, log); err != nil {
		engine.Close()
		return err
	}
	srv := &api.Server{Store: store, Engine: engine, AdminToken: token, Log: log,
		Economics: economics.Config{CreditsPerUSD: cfg.creditsPerUSD, Shares: shares}}
	if soleWriter {
		// Every change to keys and plans passes through this process.
		gwConfig.CacheTTL = 10 * time.Second
	}
	spoolDir := cfg.spoolDir
	if spoolDir == "" {
		spoolDir = cfg.dataDir
	}
	sp, err := spool.Open(filepath.Join(spoolDir, "spool.log"))
	if err != nil {
		engine.Close()
		return err
	}
	defer sp.Close()
	srv.Gateway = &gateway.Gateway{Router: ups.router, Config: gwConfig, Log: log, Spool: sp}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		engine.Close()
		return err
	}
	// The guard runs before the routes: it refuses a body the server
	// cannot take before anything reads it.
	hs := limits.Server(httpguard.New(limits, srv.WriteError).Handler(srv.Handler()))
	served := make(chan error, 1)
	go func() { served <- hs.Serve(httpguard.Listener(ln, limits.MaxConns)) }()

	sweepCtx, stopSweep := context.WithCancel(context.Background())
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		var wg sync.WaitGroup
		wg.Go(func() { srv.Plans.Run(sweepCtx, time.Second) }) // renewals; idempotent across replicas
		wg.Go(func() { srv.Gateway.RunSpool(sweepCtx, time.Second) })
		sweep(sweepCtx, engine, log)
		wg.Wait()
	}()

	log.Info("farebox started", "db", where, "limits", limits.String())
	if generated {
		// Only where it is: stdout ends up in terminals' scrollback and
		// service logs, which are not as private as the file.
		fmt.Fprintf(stdout, "admin token generated: kept in %s (mode 0600)\n", filepath.Join(cfg.dataDir, "admin-token"))
	}
	if cfg.demo {
		key, err := seedDemo(ctx, store, engine, srv.Plans, cfg.dataDir)
		if err != nil {
			hs.Close()
			stopSweep()
			<-swept
			engine.Close()
			return fmt.Errorf("seeding demo data: %w", err)
		}
		fmt.Fprintf(stdout, "demo: customer %q on plan %q, key %s (saved in %s); try\n"+
			"  curl -s http://%s/v1/chat/completions -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"model\": \"gpt-4o-mini\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'\n",
			demoCustomer, demoPlan.ID, key, filepath.Join(cfg.dataDir, "demo-key"), ln.Addr(), key)
	}
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())

	select {
	case err := <-served:
		stopSweep()
		<-swept
		engine.Close()
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: draining requests", "timeout", cfg.drain)
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.drain)
	defer cancel()
	if err := hs.Shutdown(drainCtx); err != nil {
		log.Warn("drain timed out; closing connections", "err", err)
		hs.Close()
	}
	stopSweep()
	<-swept
	engine.Close() // finishes the batch in flight and everything queued
	log.Info("stopped")
	return nil
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

// sweep expires due holds and lots of idle accounts every second.
func sweep(ctx context.Context, e *ledger.Engine, log *slog.Logger) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := e.Sweep(ctx); err != nil && ctx.Err() == nil {
				log.Warn("expiry sweep failed", "err", err)
			}
		}
	}
}

// minAdminToken is the fewest characters an admin token may have: the
// token is all that guards the ledger, so it must not be guessable.
const minAdminToken = 32

// adminToken returns the admin token from the environment or the data
// directory, generating and saving one on first start.
func adminToken(getenv func(string) string, dataDir string) (string, bool, error) {
	if t := getenv("FAREBOX_ADMIN_TOKEN"); t != "" {
		return t, false, nil
	}
	path := filepath.Join(dataDir, "admin-token")
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			if n := utf8.RuneCountInString(t); n < minAdminToken {
				return "", false, &exitError{2, fmt.Errorf("%s holds an admin token of %d characters; it must have at least %d: remove the file to have one generated, or set FAREBOX_ADMIN_TOKEN", path, n, minAdminToken)}
			}
			return t, false, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", false, err
	}
	t := "fba_" + ledger.RandomBase62(40)
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", false, err
	}
	return t, true, nil
}

const demoCustomer = "demo"

var demoCredits = fb.Amount(1000 * fb.Micro)

// demoPlan is the demo's plan: $20 a month buys 2,000 credits, any model.
var demoPlan = fb.Plan{ID: "demo", Name: "Demo", PriceUSD: 20 * fb.Micro, Period: fb.PeriodMonth, Credits: 2000 * fb.Micro, Models: []string{"*"}, RPM: 600}

// seedDemo creates the demo plan, customer (subscribed, with promo credits
// too) and key once; later starts find them and change nothing. The key is
// kept in <data-dir>/demo-key, since only its hash is stored.
func seedDemo(ctx context.Context, store fb.Store, e *ledger.Engine, ps *plans.Service, dataDir string) (string, error) {
	p := demoPlan
	p.CreatedAt = e.Now().UTC()
	if err := store.CreatePlan(ctx, p); err != nil && fb.ErrorType(err) != fb.EConflict {
		return "", err
	}
	err := store.CreateCustomer(ctx, fb.Customer{ID: demoCustomer, Name: "Demo customer", CreatedAt: e.Now().UTC()})
	if err != nil && fb.ErrorType(err) != fb.EConflict {
		return "", err
	}
	if _, err := store.Subscription(ctx, demoCustomer); fb.ErrorType(err) == fb.ENotFound {
		if _, err := ps.Subscribe(ctx, demoCustomer, demoPlan.ID); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	if _, err := e.Submit(ctx, fb.Op{Kind: fb.OpGrant, Customer: demoCustomer, Key: "demo-seed", Amount: demoCredits, Source: fb.SourcePromo}); err != nil {
		return "", err
	}
	path := filepath.Join(dataDir, "demo-key")
	if b, err := os.ReadFile(path); err == nil {
		key := strings.TrimSpace(string(b))
		if k, err := store.KeyByHash(ctx, gateway.HashKey(key)); err == nil && k.RevokedAt.IsZero() && k.Customer == demoCustomer {
			return key, nil
		}
	}
	key := gateway.KeyPrefix + ledger.RandomBase62(40)
	k := fb.APIKey{ID: ledger.RandomID("key_"), Customer: demoCustomer, Name: "demo", Prefix: key[:len(gateway.KeyPrefix)+4], Hash: gateway.HashKey(key), CreatedAt: e.Now().UTC()}
	if err := store.CreateKey(ctx, k); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", err
	}
	return key, os.WriteFile(path, []byte(key+"\n"), 0o600)
}

// withEnv overlays one variable on getenv.
func withEnv(getenv func(string) string, key, value string) func(string) string {
	return func(k string) string {
		if k == key {
			return value
		}
		return getenv(k)
	}
}

// engineConfig tunes the engine to its store: a sole writer (SQLite) keeps
// accounts in memory and commits one batch at a time; replicas on
// PostgreSQL trust nothing in memory and keep several batches in flight,
// each locking its own accounts.
func engineConfig(soleWriter bool, log *slog.Logger) ledger.Config {
	if soleWriter {
		return ledger.Config{Cache: true, Logger: log}
	}
	return ledger.Config{Writers: 4, Logger: log}
}
