package app

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	fb "farebox"
	"farebox/pricing"
	"farebox/routing"
	"farebox/simulator"
)

// Provider is an upstream of the config file (its providers: list): an
// OpenAI-compatible API, Anthropic's Messages API, Azure OpenAI, or the
// built-in simulator, and the models it serves.
type Provider struct {
	Name      string `yaml:"name"`
	Type      string `yaml:"type"`        // openai | anthropic | azure | simulated
	BaseURL   string `yaml:"base_url"`    // openai, anthropic (…/v1); azure: the resource's URL
	APIKeyEnv string `yaml:"api_key_env"` // the env var holding the provider's key
	// APIVersion is an azure provider's api-version (default
	// routing.DefaultAzureAPIVersion).
	APIVersion string `yaml:"api_version"`
	// Protocols an openai or azure provider's routes speak: chat (the
	// default), responses; embedding models speak embeddings.
	Protocols []string `yaml:"protocols"`
	// Hosting: provider (default) or self (an own server: image URLs
	// must be data: URLs, since it would fetch them inside the network).
	Hosting string `yaml:"hosting"`
	// simulated
	TTFT            string `yaml:"ttft"`
	TokensPerSecond int    `yaml:"tokens_per_second"`
	// Faults lets clients ask for simulated faults (X-Farebox-Simulate).
	Faults bool    `yaml:"faults"`
	Models []Model `yaml:"models"`
}

// Model is one model a provider serves, with what it costs and what
// bounds its bill there.
type Model struct {
	Model           string `yaml:"model"`
	Upstream        string `yaml:"upstream"`
	MaxOutputTokens int64  `yaml:"max_output_tokens"`
	Embeddings      *bool  `yaml:"embeddings"`
	Priority        int    `yaml:"priority"` // lower first; default 0
	Weight          int    `yaml:"weight"`   // among equals; default 1
	Cost            Cost   `yaml:"cost"`
	// What bounds the model's bill here beyond text (defaults: the
	// model's published limits, pricing.DefaultLimits).
	ImageTokens   *ImageTokens `yaml:"image_tokens"`
	ContextWindow int64        `yaml:"context_window"`
	ToolOverhead  int64        `yaml:"tool_overhead_tokens"`
	// CapField is the output cap sent when the client set none:
	// max_completion_tokens (default), max_tokens or both.
	CapField string `yaml:"cap_field"`
	// AllowFields are request fields forwarded beyond the default list.
	AllowFields []string `yaml:"allow_fields"`
	// AllowBetas are anthropic-beta features passed on beyond the
	// default list.
	AllowBetas []string `yaml:"allow_betas"`
	// ProviderState lets Responses requests name state the provider keeps
	// (previous_response_id, conversation): held at the context window.
	ProviderState bool `yaml:"provider_state"`
}

// ImageTokens bounds one image part, by detail.
type ImageTokens struct {
	Low  int64 `yaml:"low"`
	High int64 `yaml:"high"`
}

// Cost is what a model costs us: USD per 1M tokens, or an own GPU pool's
// cost (see routing.GPUCost).
type Cost struct {
	InputUSDPerMTok       string `yaml:"input_usd_per_mtok"`
	OutputUSDPerMTok      string `yaml:"output_usd_per_mtok"`
	CachedInputUSDPerMTok string `yaml:"cached_input_usd_per_mtok"`
	CacheWriteUSDPerMTok  string `yaml:"cache_write_usd_per_mtok"` // default 1.25 × input
	USDPerGPUHour         string `yaml:"usd_per_gpu_hour"`
	GPUs                  int64  `yaml:"gpus"`
	TokensPerSecond       int64  `yaml:"tokens_per_second"`
	Utilisation           string `yaml:"utilisation"` // 0 < u ≤ 1; default 1
}

// upstreams are the gateway's deployments and the in-process simulators
// serving the simulated ones.
type upstreams struct {
	router *routing.Router
	sims   []*http.Server
}

func (u *upstreams) close() error {
	var errs []error
	for _, s := range u.sims {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// buildUpstreams turns the providers into deployments, starting a
// simulator on a loopback port for each simulated provider, and adds the
// deployments given as they are (tests' own upstreams).
func buildUpstreams(providers []Provider, extra []*routing.Deployment, getenv func(string) string, log *slog.Logger) (*upstreams, error) {
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
		case routing.TypeOpenAI, routing.TypeAnthropic, routing.TypeAzure:
			if !strings.HasPrefix(p.BaseURL, "http://") && !strings.HasPrefix(p.BaseURL, "https://") {
				return nil, fmt.Errorf("%s: base_url %q must be an http(s) URL such as %s", where, p.BaseURL, exampleURL[p.Type])
			}
			baseURL = strings.TrimSuffix(p.BaseURL, "/")
			if p.APIKeyEnv != "" {
				if apiKey = getenv(p.APIKeyEnv); apiKey == "" {
					log.Warn("the provider's API key variable is empty", "provider", p.Name, "env", p.APIKeyEnv)
				}
			}
		case routing.TypeSimulated:
			sim := &simulator.Simulator{TokensPerSecond: p.TokensPerSecond}
			if p.TTFT != "" {
				if sim.TTFT, err = time.ParseDuration(p.TTFT); err != nil || sim.TTFT < 0 {
					return nil, fmt.Errorf("%s: ttft %q must be a duration such as 200ms", where, p.TTFT)
				}
			}
			for _, m := range p.Models {
				sim.Models = append(sim.Models, or(m.Upstream, m.Model))
			}
			addr, srv, err := simulator.ServeLoopback(sim)
			if err != nil {
				u.close()
				return nil, err
			}
			u.sims = append(u.sims, srv)
			baseURL = "http://" + addr + "/v1"
		default:
			return nil, fmt.Errorf("%s: type %q must be openai, anthropic, azure or simulated", where, p.Type)
		}
		if len(p.Protocols) > 0 && p.Type != routing.TypeOpenAI && p.Type != routing.TypeAzure {
			return nil, fmt.Errorf("%s: protocols is for openai and azure providers (anthropic speaks messages, simulated all)", where)
		}
		if p.APIVersion != "" && p.Type != routing.TypeAzure {
			return nil, fmt.Errorf("%s: api_version is for azure providers", where)
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
				Hosting:    p.Hosting, CapField: m.CapField, ToolOverhead: m.ToolOverhead,
				Limits: pricing.DefaultLimits(m.Model), APIVersion: p.APIVersion, ProviderState: m.ProviderState,
			}
			if m.Embeddings != nil {
				d.Embeddings = *m.Embeddings
			}
			for _, proto := range p.Protocols {
				if proto == routing.ProtoChat && d.Embeddings {
					proto = routing.ProtoEmbeddings
				}
				if proto == routing.ProtoResponses && d.Embeddings {
					continue
				}
				if !slices.Contains(d.Protocols, proto) {
					d.Protocols = append(d.Protocols, proto)
				}
			}
			if len(m.AllowBetas) > 0 {
				d.AllowBetas = map[string]bool{}
				for _, b := range m.AllowBetas {
					d.AllowBetas[b] = true
				}
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
			if p.Type == routing.TypeSimulated {
				// The length a client asks of a simulated answer is
				// harmless; a fault it asks for counts against the
				// deployment, so it passes only where faults are on.
				d.ForwardHeaders = []string{simulator.TokensHeader}
				if p.Faults {
					d.ForwardHeaders = append(d.ForwardHeaders, simulator.FaultHeader)
				}
			}
			if d.Cost, err = m.Cost.card(list[m.Model]); err != nil {
				return nil, fmt.Errorf("%s (%s): %w", mw, m.Model, err)
			}
			if m.Cost.USDPerGPUHour != "" {
				d.GPUs, d.TokensPerSecond = m.Cost.GPUs, m.Cost.TokensPerSecond
			}
			deps = append(deps, d)
		}
	}
	deps = append(deps, extra...)
	if u.router, err = routing.NewRouter(deps); err != nil {
		u.close()
		return nil, err
	}
	u.router.Rand = rand.IntN
	return u, nil
}

// card is the cost card of a model: the configured one, else the model's
// 2025 list price, else an error (an unknown cost would hide a loss).
func (c Cost) card(list *fb.Price) (routing.CostCard, error) {
	var card routing.CostCard
	if c.USDPerGPUHour != "" {
		if c.InputUSDPerMTok != "" || c.OutputUSDPerMTok != "" || c.CachedInputUSDPerMTok != "" || c.CacheWriteUSDPerMTok != "" {
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
	if c == (Cost{}) {
		if list == nil {
			return card, errors.New("no cost card, and the model is not in the built-in list prices: set cost.input_usd_per_mtok and cost.output_usd_per_mtok")
		}
		return routing.CostCard{InputPerMTok: fb.USD(list.InputPerMTok), OutputPerMTok: fb.USD(list.OutputPerMTok),
			CachedInputPerMTok: fb.USD(list.CachedInputPerMTok), CacheWritePerMTok: fb.USD(list.CacheWritePerMTok)}, nil
	}
	for _, f := range []struct {
		name, v string
		to      *fb.USD
	}{{"input_usd_per_mtok", c.InputUSDPerMTok, &card.InputPerMTok}, {"output_usd_per_mtok", c.OutputUSDPerMTok, &card.OutputPerMTok},
		{"cached_input_usd_per_mtok", c.CachedInputUSDPerMTok, &card.CachedInputPerMTok}, {"cache_write_usd_per_mtok", c.CacheWriteUSDPerMTok, &card.CacheWritePerMTok}} {
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
	if c.CacheWriteUSDPerMTok == "" {
		card.CacheWritePerMTok = fb.USD(pricing.CacheWriteFor(fb.Amount(card.InputPerMTok)))
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

// DemoProviders serve the demo's models from an in-process simulator.
var DemoProviders = []Provider{{
	Name: "simulator", Type: routing.TypeSimulated, TTFT: "100ms", TokensPerSecond: 50, Faults: true,
	Models: []Model{{Model: "gpt-4o-mini", MaxOutputTokens: 16384}, {Model: "text-embedding-3-small"}},
}}

// exampleURL is a base_url of each provider type, for errors.
var exampleURL = map[string]string{
	routing.TypeOpenAI:    "https://api.openai.com/v1",
	routing.TypeAnthropic: "https://api.anthropic.com/v1",
	routing.TypeAzure:     "https://NAME.openai.azure.com",
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
