package routing

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	fb "farebox"
	"farebox/pricing"
)

// CostCard is what a deployment costs us, in USD per 1M tokens (held in
// micro-dollars). Reasoning tokens cost the output rate.
type CostCard struct {
	InputPerMTok       fb.USD `json:"input_usd_per_mtok"`
	OutputPerMTok      fb.USD `json:"output_usd_per_mtok"`
	CachedInputPerMTok fb.USD `json:"cached_input_usd_per_mtok"`
}

// Cost is the provider cost of q: Σ tokens × rate, exact, rounded up once
// to the micro-dollar (the same arithmetic as pricing.Cost).
func (c CostCard) Cost(q fb.Quantities) (fb.USD, error) {
	n, err := pricing.Cost(fb.Rates{
		InputPerMTok:       fb.Amount(c.InputPerMTok),
		OutputPerMTok:      fb.Amount(c.OutputPerMTok),
		CachedInputPerMTok: fb.Amount(c.CachedInputPerMTok),
		ReasoningPerMTok:   fb.Amount(c.OutputPerMTok),
	}, fb.Quantities{
		InputTokens: q.InputTokens, OutputTokens: q.OutputTokens,
		CachedInputTokens: q.CachedInputTokens, ReasoningTokens: q.ReasoningTokens,
	})
	return fb.USD(n), err
}

// Provider types.
const (
	TypeOpenAI    = "openai"    // any OpenAI-compatible HTTP API
	TypeSimulated = "simulated" // the built-in Simulator
)

// Deployment is one way to serve a public model: a provider's endpoint and
// the model's name there.
type Deployment struct {
	Name     string // provider/model, unique
	Provider string
	Type     string // TypeOpenAI or TypeSimulated
	Model    string // the public name clients ask for
	Upstream string // the name the provider knows it by
	BaseURL  string // up to and including /v1, no trailing slash
	APIKey   string // sent as Authorization: Bearer; empty: none
	Cost     CostCard
	// MaxOutputTokens caps a request that names no max_tokens.
	MaxOutputTokens int64
	// Embeddings marks an embedding model (served on /v1/embeddings).
	Embeddings bool
	Client     *http.Client
}

// DefaultMaxOutputTokens caps the output of a model whose limit is not
// configured.
const DefaultMaxOutputTokens = 4096

// Router knows every deployment of every public model.
type Router struct {
	byModel map[string][]*Deployment
}

// NewRouter checks the deployments and indexes them by public model, in
// the given order of preference.
func NewRouter(ds []*Deployment) (*Router, error) {
	r := &Router{byModel: map[string][]*Deployment{}}
	names := map[string]bool{}
	for _, d := range ds {
		switch {
		case d.Name == "" || d.Model == "" || d.Upstream == "":
			return nil, fmt.Errorf("routing: deployment %q needs a name, a model and an upstream model", d.Name)
		case names[d.Name]:
			return nil, fmt.Errorf("routing: deployment %q is configured twice", d.Name)
		case d.BaseURL == "":
			return nil, fmt.Errorf("routing: deployment %q has no base URL", d.Name)
		case d.MaxOutputTokens < 0 || d.Cost.InputPerMTok < 0 || d.Cost.OutputPerMTok < 0 || d.Cost.CachedInputPerMTok < 0:
			return nil, fmt.Errorf("routing: deployment %q has a negative limit or cost", d.Name)
		}
		names[d.Name] = true
		if d.MaxOutputTokens == 0 {
			d.MaxOutputTokens = DefaultMaxOutputTokens
		}
		if d.Client == nil {
			d.Client = DefaultClient
		}
		r.byModel[d.Model] = append(r.byModel[d.Model], d)
	}
	return r, nil
}

// Deployments returns the deployments of a public model, preferred first.
func (r *Router) Deployments(model string) []*Deployment {
	return r.byModel[model]
}

// Models lists the public models, sorted.
func (r *Router) Models() []string {
	ms := make([]string, 0, len(r.byModel))
	for m := range r.byModel {
		ms = append(ms, m)
	}
	slices.Sort(ms)
	return ms
}

// DefaultClient is the upstream client: many idle connections per host,
// since a gateway sends all its traffic to a few hosts. Deadlines come from
// each request's context.
var DefaultClient = &http.Client{Transport: &http.Transport{
	Proxy:               nil, // upstreams are named in the config; no environment proxy
	MaxIdleConns:        1024,
	MaxIdleConnsPerHost: 512,
	IdleConnTimeout:     90 * time.Second,
	ForceAttemptHTTP2:   false,
}}
