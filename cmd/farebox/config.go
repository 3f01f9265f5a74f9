package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	fb "farebox"
	"farebox/economics"
	"farebox/gateway"
	"farebox/httpguard"
	"farebox/pricing"
	"farebox/routing"
)

// fileConfig is the --config YAML file. Every field is optional.
type fileConfig struct {
	AdminToken string          `yaml:"admin_token"`
	Server     serverConfig    `yaml:"server"`
	Gateway    gatewayConfig   `yaml:"gateway"`
	Providers  []providerEntry `yaml:"providers"`
	// RevenueShares: percentages of revenue owed to partners, by model.
	RevenueShares []shareEntry `yaml:"revenue_shares"`
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

type providerEntry struct {
	Name      string `yaml:"name"`
	Type      string `yaml:"type"`        // openai | simulated
	BaseURL   string `yaml:"base_url"`    // openai
	APIKeyEnv string `yaml:"api_key_env"` // openai: the env var holding the key
	// Hosting: provider (default) or self (an own server: image URLs
	// must be data: URLs, since it would fetch them inside the network).
	Hosting string `yaml:"hosting"`
	// simulated
	TTFT            string `yaml:"ttft"`
	TokensPerSecond int    `yaml:"tokens_per_second"`
	// Faults lets clients ask for simulated faults (X-Farebox-Simulate).
	Faults bool         `yaml:"faults"`
	Models []modelEntry `yaml:"models"`
}

type modelEntry struct {
	Model           string    `yaml:"model"`
	Upstream        string    `yaml:"upstream"`
	MaxOutputTokens int64     `yaml:"max_output_tokens"`
	Embeddings      *bool     `yaml:"embeddings"`
	Priority        int       `yaml:"priority"` // lower first; default 0
	Weight          int       `yaml:"weight"`   // among equals; default 1
	Cost            costEntry `yaml:"cost"`
	// What bounds the model's bill here beyond text (defaults: the
	// model's published limits, pricing.DefaultLimits).
	ImageTokens   *imageTokens `yaml:"image_tokens"`
	ContextWindow int64        `yaml:"context_window"`
	ToolOverhead  int64        `yaml:"tool_overhead_tokens"`
	// CapField is the output cap sent when the client set none:
	// max_completion_tokens (default), max_tokens or both.
	CapField string `yaml:"cap_field"`
	// AllowFields are request fields forwarded beyond the default list.
	AllowFields []string `yaml:"allow_fields"`
}

type imageTokens struct {
	Low  int64 `yaml:"low"`
	High int64 `yaml:"high"`
}

// costEntry is USD per 1M tokens, or an own GPU pool's cost (see
// routing.GPUCost).
type costEntry struct {
	InputUSDPerMTok       string `yaml:"input_usd_per_mtok"`
	OutputUSDPerMTok      string `yaml:"output_usd_per_mtok"`
	CachedInputUSDPerMTok string `yaml:"cached_input_usd_per_mtok"`
	USDPerGPUHour         string `yaml:"usd_per_gpu_hour"`
	GPUs                  int64  `yaml:"gpus"`
	TokensPerSecond       int64  `yaml:"tokens_per_second"`
	Utilisation           string `yaml:"utilisation"` // 0 < u ≤ 1; default 1
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

// upstreams are the gateway's deployments and the in-process simulators
// serving the simulated ones.
type upstreams struct {
	router *routing.Router
	sims   []*http.Server
}

func (u *upstreams) close() {
	for _, s := range u.sims {
		s.Close()
	}
}

// buildUpstreams turns the providers into deployments, starting a
// simulator on a loopback port for each simulated provider.
func buildUpstreams(providers []providerEntry, getenv func(string) string, log *slog.Logger) (*upstreams, error) {
	list, err := listPrices()
	if err != nil {
		return nil, err
	}
	u := &upstreams{}
	var deps []*routing.Deployment
	seen := map[string]bool{}
	for i, p := range providers {
		where := fmt.Sprintf("providers[%d]", i)
		if p.Name == "" {
			return nil, fmt.Errorf("%s: name is required", where)
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("%s: provider %q is configured twice", where, p.Name)
		}
		seen[p.Name] = true
		where = fmt.Sprintf("provider %q", p.Name)
		if len(p.Models) == 0 {
			return nil, fmt.Errorf("%s: no models", where)
		}
		if p.Faults && p.Type != routing.TypeSimulated {
			return nil, fmt.Errorf("%s: faults is for simulated providers only", where)
		}
		var baseURL, apiKey string
		switch p.Type {
		case routing.TypeOpenAI:
			if !strings.HasPrefix(p.BaseURL, "http://") && !strings.HasPrefix(p.BaseURL, "https://") {
				return nil, fmt.Errorf("%s: base_url %q must be an http(s) URL such as https://api.openai.com/v1", where, p.BaseURL)
			}
			baseURL = strings.TrimSuffix(p.BaseURL, "/")
			if p.APIKeyEnv != "" {
				if apiKey = getenv(p.APIKeyEnv); apiKey == "" {
					log.Warn("the provider's API key variable is empty", "provider", p.Name, "env", p.APIKeyEnv)
				}
			}
		case routing.TypeSimulated:
			sim := &routing.Simulator{TokensPerSecond: p.TokensPerSecond}
			if p.TTFT != "" {
				if sim.TTFT, err = time.ParseDuration(p.TTFT); err != nil || sim.TTFT < 0 {
					return nil, fmt.Errorf("%s: ttft %q must be a duration such as 200ms", where, p.TTFT)
				}
			}
			for _, m := range p.Models {
				sim.Models = append(sim.Models, or(m.Upstream, m.Model))
			}
			addr, srv, err := serveLoopback(sim)
			if err != nil {
				u.close()
				return nil, err
			}
			u.sims = append(u.sims, srv)
			baseURL = "http://" + addr + "/v1"
		default:
			return nil, fmt.Errorf("%s: type %q must be openai or simulated", where, p.Type)
		}
		for j, m := range p.Models {
			mw := fmt.Sprintf("%s models[%d]", where, j)
			if m.Model == "" {
				return nil, fmt.Errorf("%s: model is required", mw)
			}
			d := &routing.Deployment{
				Name: p.Name + "/" + m.Model, Provider: p.Name, Type: p.Type, Model: m.Model, Upstream: or(m.Upstream, m.Model),
				BaseURL: baseURL, APIKey: apiKey, MaxOutputTokens: m.MaxOutputTokens, Priority: m.Priority, Weight: m.Weight,
				Embeddings: strings.Contains(m.Model, "embedding"),
				Hosting:    p.Hosting, Faults: p.Faults && p.Type == routing.TypeSimulated, CapField: m.CapField, ToolOverhead: m.ToolOverhead,
				Limits: pricing.DefaultLimits(m.Model),
			}
			if m.ImageTokens != nil {
				d.Limits.Image = pricing.ImageTokens{Low: m.ImageTokens.Low, High: m.ImageTokens.High}
			}
			if m.ContextWindow != 0 {
				d.Limits.ContextWindow = m.ContextWindow
			}
			if len(m.AllowFields) > 0 {
				d.AllowFields = map[string]bool{}
				for _, f := range m.AllowFields {
					d.AllowFields[f] = true
				}
			}
			if m.Embeddings != nil {
				d.Embeddings = *m.Embeddings
			}
			if d.Cost, err = m.Cost.card(list[m.Model]); err != nil {
				return nil, fmt.Errorf("%s (%s): %w", mw, m.Model, err)
			}
			deps = append(deps, d)
		}
	}
	if u.router, err = routing.NewRouter(deps); err != nil {
		u.close()
		return nil, err
	}
	u.router.Rand = rand.IntN
	return u, nil
}

// card is the cost card of a model: the configured one, else the model's
// 2025 list price, else an error (an unknown cost would hide a loss).
func (c costEntry) card(list *fb.Price) (routing.CostCard, error) {
	var card routing.CostCard
	if c.USDPerGPUHour != "" {
		if c.InputUSDPerMTok != "" || c.OutputUSDPerMTok != "" || c.CachedInputUSDPerMTok != "" {
			return card, errors.New("cost: give either USD per 1M tokens or a GPU cost, not both")
		}
		usd, err := fb.ParseUSD(c.USDPerGPUHour)
		if err != nil {
			return card, fmt.Errorf("cost.usd_per_gpu_hour %q must be a dollar amount such as 1.9", c.USDPerGPUHour)
		}
		util := fb.Amount(fb.Micro)
		if c.Utilisation != "" {
			if util, err = fb.ParseAmount(c.Utilisation); err != nil {
				return card, fmt.Errorf("cost.utilisation %q must be a decimal such as 0.6", c.Utilisation)
			}
		}
		return routing.GPUCost(usd, c.GPUs, c.TokensPerSecond, util)
	}
	if c.GPUs != 0 || c.TokensPerSecond != 0 || c.Utilisation != "" {
		return card, errors.New("cost: gpus, tokens_per_second and utilisation need usd_per_gpu_hour")
	}
	if c == (costEntry{}) {
		if list == nil {
			return card, errors.New("no cost card, and the model is not in the built-in list prices: set cost.input_usd_per_mtok and cost.output_usd_per_mtok")
		}
		return routing.CostCard{InputPerMTok: fb.USD(list.InputPerMTok), OutputPerMTok: fb.USD(list.OutputPerMTok), CachedInputPerMTok: fb.USD(list.CachedInputPerMTok)}, nil
	}
	for _, f := range []struct {
		name, v string
		to      *fb.USD
	}{{"input_usd_per_mtok", c.InputUSDPerMTok, &card.InputPerMTok}, {"output_usd_per_mtok", c.OutputUSDPerMTok, &card.OutputPerMTok}, {"cached_input_usd_per_mtok", c.CachedInputUSDPerMTok, &card.CachedInputPerMTok}} {
		if f.v == "" {
			continue
		}
		v, err := fb.ParseUSD(f.v)
		if err != nil || v < 0 {
			return card, fmt.Errorf("cost.%s %q must be a non-negative dollar amount such as 0.15", f.name, f.v)
		}
		*f.to = v
	}
	if c.CachedInputUSDPerMTok == "" {
		card.CachedInputPerMTok = card.InputPerMTok
	}
	return card, nil
}

// listPrices are the built-in list prices in micro-dollars per 1M tokens
// (a card at one credit per dollar).
func listPrices() (map[string]*fb.Price, error) {
	ps, err := pricing.DefaultPrices(1, "1", pricing.DefaultEffective)
	if err != nil {
		return nil, err
	}
	m := make(map[string]*fb.Price, len(ps))
	for i := range ps {
		m[ps[i].Model] = &ps[i]
	}
	return m, nil
}

// serveLoopback serves h on a free loopback port: the in-process
// simulators, and the benchmarks' targets.
func serveLoopback(h http.Handler) (addr string, srv *http.Server, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listening on loopback: %w", err)
	}
	srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return ln.Addr().String(), srv, nil
}

// demoProviders serve the demo's models from an in-process simulator.
var demoProviders = []providerEntry{{
	Name: "simulator", Type: routing.TypeSimulated, TTFT: "100ms", TokensPerSecond: 50, Faults: true,
	Models: []modelEntry{{Model: "gpt-4o-mini", MaxOutputTokens: 16384}, {Model: "text-embedding-3-small"}},
}}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
