package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	fb "farebox"
	"farebox/app"
	"farebox/economics"
	"farebox/gateway"
	"farebox/httpguard"
	"farebox/payments"
	"farebox/sponsored"
)

// fileConfig is the --config YAML file. Every field is optional.
type fileConfig struct {
	AdminToken string         `yaml:"admin_token"`
	Server     serverConfig   `yaml:"server"`
	Gateway    gatewayConfig  `yaml:"gateway"`
	Providers  []app.Provider `yaml:"providers"`
	// RevenueShares: percentages of revenue owed to partners, by model.
	RevenueShares []shareEntry    `yaml:"revenue_shares"`
	Dashboard     dashboardConfig `yaml:"dashboard"`
	Stripe        stripeConfig    `yaml:"stripe"`
	Sponsored     sponsoredConfig `yaml:"sponsored"`
}

// sponsoredConfig is the sponsored suggestions' section.
type sponsoredConfig struct {
	// PublicURL is the base of click links, as browsers reach this
	// server (https://farebox.example.com); unset: the address each
	// request came to.
	PublicURL string `yaml:"public_url"`
	// RelevanceThreshold (0 to 1, default 0.5) is how closely a message
	// must match a campaign's topics or phrases.
	RelevanceThreshold string `yaml:"relevance_threshold"`
	// DecisionThreshold (0 to 1) replaces the classifier's own.
	DecisionThreshold string `yaml:"decision_threshold"`
	// Refresh is how often campaigns are read again (other replicas'
	// changes); ClickTTL how long a click link is charged and followed.
	Refresh  string `yaml:"refresh"`
	ClickTTL string `yaml:"click_ttl"`
}

func (c sponsoredConfig) config() (sponsored.Config, error) {
	var out sponsored.Config
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return out, fmt.Errorf("sponsored.public_url %q must be an http or https URL of this server, without a path (https://farebox.example.com)", c.PublicURL)
		}
		out.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	}
	for _, f := range []struct {
		name, v string
		to      *float64
	}{{"relevance_threshold", c.RelevanceThreshold, &out.RelevanceThreshold}, {"decision_threshold", c.DecisionThreshold, &out.DecisionThreshold}} {
		if f.v == "" {
			continue
		}
		v, err := strconv.ParseFloat(f.v, 64)
		if err != nil || !(v > 0 && v <= 1) {
			return out, fmt.Errorf("sponsored.%s %q must be a number above 0 and at most 1", f.name, f.v)
		}
		*f.to = v
	}
	for _, f := range []struct {
		name, v string
		min     time.Duration
		to      *time.Duration
	}{{"refresh", c.Refresh, time.Second, &out.Refresh}, {"click_ttl", c.ClickTTL, time.Minute, &out.ClickTTL}} {
		if f.v == "" {
			continue
		}
		v, err := time.ParseDuration(f.v)
		if err != nil || v < f.min {
			return out, fmt.Errorf("sponsored.%s %q must be a duration of at least %s", f.name, f.v, f.min)
		}
		*f.to = v
	}
	return out, nil
}

// dashboardConfig is the web dashboard's section.
type dashboardConfig struct {
	// TopUpInstructions is what a customer's top-up panel says.
	TopUpInstructions string `yaml:"topup_instructions"`
	SessionTTL        string `yaml:"session_ttl"`
}

func (c dashboardConfig) config() (app.DashboardConfig, error) {
	d := app.DashboardConfig{TopUp: strings.TrimSpace(c.TopUpInstructions)}
	if c.SessionTTL != "" {
		v, err := time.ParseDuration(c.SessionTTL)
		if err != nil || v < time.Minute {
			return d, fmt.Errorf("dashboard.session_ttl %q must be a duration of at least 1m, such as 12h", c.SessionTTL)
		}
		d.SessionTTL = v
	}
	return d, nil
}

// stripeConfig is the config file's stripe: section; the environment's
// FAREBOX_STRIPE_* win over it.
type stripeConfig struct {
	SecretKey     string `yaml:"secret_key"`
	WebhookSecret string `yaml:"webhook_secret"`
	APIBase       string `yaml:"api_base"`
	// USDPerCredit is the price of a credit in USD (default 1 ÷
	// credits_per_usd).
	USDPerCredit string `yaml:"usd_per_credit"`
}

// payments resolves the Stripe settings and the price of a credit.
func (c stripeConfig) payments(getenv func(string) string) (payments.StripeConfig, fb.USD, error) {
	sc := payments.StripeConfig{
		SecretKey:     cmp(getenv("FAREBOX_STRIPE_SECRET_KEY"), c.SecretKey),
		WebhookSecret: cmp(getenv("FAREBOX_STRIPE_WEBHOOK_SECRET"), c.WebhookSecret),
		APIBase:       cmp(getenv("FAREBOX_STRIPE_API_BASE"), c.APIBase),
	}
	if (sc.SecretKey == "") != (sc.WebhookSecret == "") {
		return sc, 0, errors.New("stripe: set both the secret key (FAREBOX_STRIPE_SECRET_KEY) and the webhook secret (FAREBOX_STRIPE_WEBHOOK_SECRET), or neither")
	}
	var price fb.USD
	if c.USDPerCredit != "" {
		p, err := fb.ParseUSD(c.USDPerCredit)
		if err != nil || p <= 0 {
			return sc, 0, fmt.Errorf("stripe.usd_per_credit %q must be a positive amount of USD such as 0.01", c.USDPerCredit)
		}
		price = p
	}
	return sc, price, nil
}

type shareEntry struct {
	Partner string   `yaml:"partner"`
	Percent string   `yaml:"percent"`
	Models  []string `yaml:"models"`
}

// shares checks the revenue shares.
func (c fileConfig) shares() ([]economics.Share, error) {
	var out []economics.Share
	for i, e := range c.RevenueShares {
		sh, err := economics.ParseShare(e.Partner + ":" + e.Percent + ":" + strings.Join(e.Models, ","))
		if err != nil {
			return nil, fmt.Errorf("revenue_shares[%d]: %w", i, err)
		}
		out = append(out, sh)
	}
	return out, nil
}

// serverConfig is the HTTP server's limits (see httpguard.Limits); an
// unset or zero key takes the default.
type serverConfig struct {
	HeaderTimeout  string `yaml:"header_timeout"`
	BodyTimeout    string `yaml:"body_timeout"`
	IdleTimeout    string `yaml:"idle_timeout"`
	MaxHeaderBytes int    `yaml:"max_header_bytes"`
	MaxConns       int    `yaml:"max_conns"`
	BodyBudget     int64  `yaml:"body_budget"`
}

func (c serverConfig) limits() (httpguard.Limits, error) {
	l := httpguard.Limits{MaxHeaderBytes: c.MaxHeaderBytes, MaxConns: c.MaxConns, BodyBudget: c.BodyBudget}
	for _, d := range []struct {
		name, v string
		to      *time.Duration
	}{{"header_timeout", c.HeaderTimeout, &l.HeaderTimeout}, {"body_timeout", c.BodyTimeout, &l.BodyTimeout}, {"idle_timeout", c.IdleTimeout, &l.IdleTimeout}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil || v <= 0 {
			return l, fmt.Errorf("server.%s %q must be a duration such as 30s", d.name, d.v)
		}
		*d.to = v
	}
	if err := l.Validate(); err != nil {
		return l, fmt.Errorf("server.%w", err)
	}
	return l.WithDefaults(), nil
}

type gatewayConfig struct {
	MinOutputTokens          int64  `yaml:"min_output_tokens"`
	RequestTimeout           string `yaml:"request_timeout"`
	FirstByteTimeout         string `yaml:"first_byte_timeout"`
	StreamIdleTimeout        string `yaml:"stream_idle_timeout"`
	StreamTimeout            string `yaml:"stream_timeout"`
	WriteTimeout             string `yaml:"write_timeout"`
	DrainTimeout             string `yaml:"drain_timeout"`
	SettleRetry              string `yaml:"settle_retry"`
	MaxAnswerBytes           int64  `yaml:"max_answer_bytes"`
	MaxConcurrentPerCustomer int    `yaml:"max_concurrent_per_customer"`
}

// loadConfig reads a config file strictly: unknown keys are errors, with
// their line.
func loadConfig(path string) (fileConfig, error) {
	var c fileConfig
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("--config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("--config %s: %w", path, err)
	}
	return c, nil
}

func (c gatewayConfig) config() (gateway.Config, error) {
	g := gateway.Config{MinOutputTokens: c.MinOutputTokens, MaxConcurrentPerCustomer: c.MaxConcurrentPerCustomer, MaxAnswerBytes: c.MaxAnswerBytes}
	for _, d := range []struct {
		name, v string
		to      *time.Duration
	}{
		{"request_timeout", c.RequestTimeout, &g.RequestTimeout}, {"first_byte_timeout", c.FirstByteTimeout, &g.FirstByteTimeout},
		{"stream_idle_timeout", c.StreamIdleTimeout, &g.StreamIdleTimeout}, {"stream_timeout", c.StreamTimeout, &g.StreamTimeout},
		{"write_timeout", c.WriteTimeout, &g.WriteTimeout}, {"drain_timeout", c.DrainTimeout, &g.DrainTimeout},
		{"settle_retry", c.SettleRetry, &g.SettleRetry},
	} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil || v <= 0 {
			return g, fmt.Errorf("gateway.%s %q must be a duration such as 30s", d.name, d.v)
		}
		*d.to = v
	}
	if c.MinOutputTokens < 0 {
		return g, fmt.Errorf("gateway.min_output_tokens must not be negative")
	}
	if c.MaxAnswerBytes < 0 {
		return g, fmt.Errorf("gateway.max_answer_bytes must not be negative")
	}
	if c.MaxConcurrentPerCustomer < 0 {
		return g, fmt.Errorf("gateway.max_concurrent_per_customer must not be negative (0: no bound)")
	}
	return g, nil
}
