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
	"time"
	"unicode/utf8"

	fb "farebox"
	"farebox/app"
	"farebox/economics"
	"farebox/httpx"
	"farebox/ids"
	"farebox/keys"
	"farebox/pricing"
	"farebox/store/postgres"
)

type serveConfig struct {
	addr, dataDir, db string
	spoolDir          string
	logFormat         string
	logLevel          string
	debugAddr         string
	metricsAddr       string
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
	fs.StringVar(&c.logFormat, "log-format", envOr(getenv, "FAREBOX_LOG_FORMAT", "text"), "the log's format: text or json [FAREBOX_LOG_FORMAT]")
	fs.StringVar(&c.debugAddr, "debug-addr", getenv("FAREBOX_DEBUG_ADDR"), "serve Go's profiles (/debug/pprof/) on this address, such as 127.0.0.1:6060; off when empty [FAREBOX_DEBUG_ADDR]")
	fs.StringVar(&c.metricsAddr, "metrics-addr", getenv("FAREBOX_METRICS_ADDR"), "where GET /metrics is served: empty for the main address, off, or an address of its own [FAREBOX_METRICS_ADDR]")
	fs.StringVar(&c.logLevel, "log-level", envOr(getenv, "FAREBOX_LOG_LEVEL", "info"), "the least level logged: debug, info, warn or error [FAREBOX_LOG_LEVEL]")
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

// openStore opens the database a --db URL or data directory names (see
// app.OpenStore).
func openStore(ctx context.Context, dbURL, dataDir string, readOnly bool) (fb.Store, string, bool, error) {
	return app.OpenStore(ctx, dbURL, dataDir, readOnly)
}

// redact hides a database URL's passwords for errors and logs.
func redact(u string) string { return postgres.Redact(u) }

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := serveFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.logFormat, cfg.logLevel)
	if err != nil {
		return &exitError{2, err}
	}
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
	if postgres.IsURL(cfg.db) && getenv("FAREBOX_ADMIN_TOKEN") == "" {
		// Replicas must share one token: none is generated for them.
		return &exitError{2, errors.New("on PostgreSQL the admin token must be given (FAREBOX_ADMIN_TOKEN or admin_token in the config), the same for every replica")}
	}
	dash, err := file.Dashboard.config()
	if err != nil {
		return &exitError{2, err}
	}
	sp, err := file.Sponsored.config()
	if err != nil {
		return &exitError{2, fmt.Errorf("--config %s: %w", cfg.config, err)}
	}
	shares, err := file.shares()
	if err != nil {
		return &exitError{2, fmt.Errorf("--config %s: %w", cfg.config, err)}
	}
	stripe, usdPerCredit, err := file.Stripe.payments(getenv)
	if err != nil {
		return &exitError{2, err}
	}
	providers := file.Providers
	if len(providers) == 0 && cfg.demo {
		providers = app.DemoProviders
	}
	token, generated, err := adminToken(getenv, cfg.dataDir)
	if err != nil {
		return err
	}
	a, err := app.New(ctx, app.Config{
		DB: cfg.db, DataDir: cfg.dataDir, SpoolDir: cfg.spoolDir, AdminToken: token,
		Providers: providers, Getenv: getenv, Gateway: gwConfig, Server: limits,
		Economics:     economics.Config{CreditsPerUSD: cfg.creditsPerUSD, Shares: shares},
		CreditsPerUSD: cfg.creditsPerUSD, Markup: cfg.markup, Log: log, Drain: cfg.drain, DebugAddr: cfg.debugAddr, MetricsAddr: cfg.metricsAddr,
		Dashboard: dash,
		Stripe:    stripe, USDPerCredit: usdPerCredit, Sponsored: sp,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		a.Close()
		return err
	}
	log.Info("farebox started", "db", a.Where, "limits", limits.String())
	if generated {
		// Only where it is: stdout ends up in terminals' scrollback and
		// service logs, which are not as private as the file.
		fmt.Fprintf(stdout, "admin token generated: kept in %s (mode 0600)\n", filepath.Join(cfg.dataDir, "admin-token"))
	}
	if cfg.demo {
		key, err := seedDemo(ctx, a, cfg.dataDir)
		if err != nil {
			ln.Close()
			a.Close()
			return fmt.Errorf("seeding demo data: %w", err)
		}
		fmt.Fprintf(stdout, "demo: customer %q on plan %q, key %s (saved in %s); try\n"+
			"  curl -s http://%s/v1/chat/completions -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"model\": \"gpt-4o-mini\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'\n",
			demoCustomer, demoPlan.ID, key, filepath.Join(cfg.dataDir, "demo-key"), ln.Addr(), key)
		fmt.Fprintf(stdout, "dashboard: open http://%s/ and sign in with the demo key (the customer's pages) or the admin token (the operator's: FAREBOX_ADMIN_TOKEN, or the file %s)\n",
			ln.Addr(), filepath.Join(cfg.dataDir, "admin-token"))
	}
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())
	err = a.Run(ctx, ln)
	log.Info("stopped")
	return err
}

// newLogger is the server's log: text or JSON on w, from level on, each
// line of a request carrying its id.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
	return slog.New(httpx.LogHandler(h)), nil
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
	t := "fba_" + ids.Secret(40)
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
func seedDemo(ctx context.Context, a *app.App, dataDir string) (string, error) {
	store, e := a.Store, a.Engine
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
		if _, err := a.Plans.Subscribe(ctx, demoCustomer, demoPlan.ID); err != nil {
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
		if k, err := store.KeyByHash(ctx, keys.Hash(key)); err == nil && k.RevokedAt.IsZero() && k.Customer == demoCustomer {
			return key, nil
		}
	}
	k, key := keys.Mint(demoCustomer, "demo", e.Now(), ids.New)
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
