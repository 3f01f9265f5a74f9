// Package routing owns the upstreams the gateway forwards to: providers'
// deployments of each public model, what they cost us, what bounds their
// bill, their health, and the order a request tries them in (cheapest
// healthy first).
package routing

import (
	"fmt"
	"math/big"
	"net/http"
	"net/url"
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
	// CacheWritePerMTok is what a token written to the provider's prompt
	// cache costs (Anthropic: 1.25 × input).
	CacheWritePerMTok fb.USD `json:"cache_write_usd_per_mtok"`
}

// Cost is the provider cost of q: Σ tokens × rate, exact, rounded up once
// to the micro-dollar (the same arithmetic as pricing.Cost).
func (c CostCard) Cost(q fb.Quantities) (fb.USD, error) {
	n, err := pricing.Cost(fb.Rates{
		InputPerMTok:       fb.Amount(c.InputPerMTok),
		OutputPerMTok:      fb.Amount(c.OutputPerMTok),
		CachedInputPerMTok: fb.Amount(c.CachedInputPerMTok),
		ReasoningPerMTok:   fb.Amount(c.OutputPerMTok),
		CacheWritePerMTok:  fb.Amount(c.CacheWritePerMTok),
	}, fb.Quantities{
		InputTokens: q.InputTokens, OutputTokens: q.OutputTokens,
		CachedInputTokens: q.CachedInputTokens, ReasoningTokens: q.ReasoningTokens, CacheWriteTokens: q.CacheWriteTokens,
	})
	return fb.USD(n), err
}

// Hosting of a deployment.
const (
	HostingProvider = "provider"
	HostingSelf     = "self"
)

// Cap fields.
const (
	CapMaxCompletionTokens = "max_completion_tokens"
	CapMaxTokens           = "max_tokens"
	CapBoth                = "both"
)

// Provider types.
const (
	TypeOpenAI    = "openai"    // any OpenAI-compatible HTTP API
	TypeAnthropic = "anthropic" // Anthropic's Messages API
	TypeAzure     = "azure"     // Azure OpenAI: deployment URLs, api-version, api-key
	TypeSimulated = "simulated" // the built-in Simulator
)

// Protocols: the wire formats a client speaks to the gateway and a
// deployment speaks upstream.
const (
	ProtoChat       = "chat"       // OpenAI chat completions
	ProtoResponses  = "responses"  // OpenAI Responses
	ProtoMessages   = "messages"   // Anthropic Messages
	ProtoEmbeddings = "embeddings" // OpenAI embeddings
)

// DefaultAnthropicVersion is the anthropic-version sent when the client
// sends none.
const DefaultAnthropicVersion = "2023-06-01"

// DefaultAzureAPIVersion is the api-version of an azure deployment that
// names none.
const DefaultAzureAPIVersion = "2024-10-21"

// Deployment is one way to serve a public model: a provider's endpoint and
// the model's name there.
type Deployment struct {
	Name     string // provider/model, unique
	Provider string
	Type     string // TypeOpenAI, TypeAnthropic, TypeAzure or TypeSimulated
	Model    string // the public name clients ask for
	Upstream string // the name the provider knows it by
	// BaseURL is up to and including /v1, no trailing slash; of an azure
	// deployment, the resource's URL (https://NAME.openai.azure.com).
	BaseURL string
	// APIKey is sent as Authorization: Bearer (as x-api-key to anthropic,
	// api-key to azure); empty: none.
	APIKey string
	// Protocols are the wire formats the deployment speaks (ProtoChat, …),
	// set by NewRouter from its type when empty: openai and azure chat,
	// anthropic messages, simulated all three; embeddings for an
	// embedding model.
	Protocols []string
	// APIVersion is an azure deployment's api-version.
	APIVersion string
	// ProviderState lets Responses requests name state the provider keeps
	// (previous_response_id, conversation, stored items): their input is
	// unknown, so it is held at the context window. Refused when false.
	ProviderState bool
	// AllowBetas are anthropic-beta features passed on beyond the default
	// list (the operator vouches that the hold bounds them).
	AllowBetas map[string]bool
	Cost       CostCard
	// MaxOutputTokens caps a request that names no max_tokens.
	MaxOutputTokens int64
	// Embeddings marks an embedding model (served on /v1/embeddings).
	Embeddings bool
	// Priority: lower is tried first, before cost is compared. Weight
	// splits traffic between deployments of equal priority and cost (1
	// when 0).
	Priority int
	Weight   int
	// Client sends the requests; DefaultClient when nil. It must not
	// follow redirects (see NoRedirects).
	Client *http.Client

	// What the gateway must know to bound what the deployment bills.
	// Limits are the model's input limits here: the most one image part
	// and the whole prompt can be billed at (pricing.DefaultLimits when
	// the config says nothing).
	Limits pricing.Limits
	// ToolOverhead is the prompt tokens the provider adds when a request
	// carries tools (a hidden tool prompt); 0 for OpenAI-compatible ones,
	// whose tool definitions cost fewer tokens than their JSON has bytes.
	ToolOverhead int64
	// CapField is the output cap the gateway sets when the client set
	// none: max_completion_tokens (when ""), max_tokens, or "both". A cap
	// the client set is always overwritten, in every field it used.
	CapField string
	// AllowFields are request fields forwarded beyond the gateway's
	// default list (the operator vouches that the hold bounds them).
	AllowFields map[string]bool
	// Hosting is HostingProvider (the default: a provider fetches image
	// URLs on its own network) or HostingSelf (an own server, which would
	// fetch them inside the operator's network: only data: URLs).
	Hosting string
	// ForwardHeaders are headers of the client's request passed on to
	// this deployment (a simulator's controls, where the operator enabled
	// them); no other client header is.
	ForwardHeaders []string
	// GPUs and TokensPerSecond, of a deployment on own GPUs (a GPU cost),
	// are what it runs on and their throughput at full load: with its
	// served tokens, the GPU-time own inference used (compute's reports).
	GPUs, TokensPerSecond int64

	health health
}

// Speaks says whether d speaks protocol p natively.
func (d *Deployment) Speaks(p string) bool {
	for _, q := range d.Protocols {
		if q == p {
			return true
		}
	}
	return false
}

// Endpoint is the URL of d's route for protocol p: BaseURL plus the
// OpenAI or Anthropic path, or Azure's deployment URL with its
// api-version.
func (d *Deployment) Endpoint(p string) string {
	if d.Type == TypeAzure {
		v := url.QueryEscape(d.APIVersion)
		switch p {
		case ProtoResponses:
			return d.BaseURL + "/openai/responses?api-version=" + v
		case ProtoEmbeddings:
			return d.BaseURL + "/openai/deployments/" + url.PathEscape(d.Upstream) + "/embeddings?api-version=" + v
		}
		return d.BaseURL + "/openai/deployments/" + url.PathEscape(d.Upstream) + "/chat/completions?api-version=" + v
	}
	switch p {
	case ProtoResponses:
		return d.BaseURL + "/responses"
	case ProtoMessages:
		return d.BaseURL + "/messages"
	case ProtoEmbeddings:
		return d.BaseURL + "/embeddings"
	}
	return d.BaseURL + "/chat/completions"
}

// Authorize sets the provider key on an upstream request the way d's
// provider takes it.
func (d *Deployment) Authorize(h http.Header) {
	if d.APIKey == "" {
		return
	}
	switch d.Type {
	case TypeAzure:
		h.Set("api-key", d.APIKey)
	case TypeAnthropic:
		h.Set("x-api-key", d.APIKey)
	default:
		h.Set("Authorization", "Bearer "+d.APIKey)
	}
}

// DefaultMaxOutputTokens caps the output of a model whose limit is not
// configured.
const DefaultMaxOutputTokens = 4096

// DefaultClient is the upstream client: many idle connections per host,
// since a gateway sends all its traffic to a few hosts. Deadlines come from
// each request's context. It never follows a redirect: that would re-send
// the customer's request, and to the same host the provider's key, to
// wherever the upstream points; the gateway gets the 3xx itself, like any
// other answer that is not a success.
var DefaultClient = &http.Client{
	Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	},
	CheckRedirect: NoRedirects,
}

// NoRedirects is an http.Client's CheckRedirect that answers the redirect
// itself instead of following it; any client given to a Deployment should
// have it.
func NoRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// GPUCost turns an own GPU pool's cost into a per-token cost card:
//
//	USD per 1M tokens = USD per GPU-hour × GPUs × 10⁶ ÷ (tokens per second × 3600 × utilisation)
//
// where tokens per second is the pool's measured throughput (input and
// output tokens together) at full load and utilisation the share of the
// time it is busy (0 < u ≤ 1): an idle GPU costs the same. Input, cached
// and output tokens cost the same; the rate is rounded up to the
// micro-dollar.
func GPUCost(usdPerGPUHour fb.USD, gpus, tokensPerSecond int64, utilisation fb.Amount) (CostCard, error) {
	if usdPerGPUHour < 0 || gpus <= 0 || tokensPerSecond <= 0 || utilisation <= 0 || utilisation > fb.Micro {
		return CostCard{}, fmt.Errorf("a GPU cost needs usd_per_gpu_hour ≥ 0, gpus > 0, tokens_per_second > 0 and 0 < utilisation ≤ 1")
	}
	// utilisation is in millionths: × 10⁶ once more on top.
	n := new(big.Int).Mul(big.NewInt(int64(usdPerGPUHour)), big.NewInt(gpus))
	n.Mul(n, big.NewInt(fb.Micro*fb.Micro))
	d := new(big.Int).Mul(big.NewInt(tokensPerSecond*3600), big.NewInt(int64(utilisation)))
	n.Add(n, new(big.Int).Sub(d, big.NewInt(1)))
	n.Quo(n, d)
	if !n.IsInt64() {
		return CostCard{}, fb.ErrOverflow
	}
	r := fb.USD(n.Int64())
	return CostCard{InputPerMTok: r, OutputPerMTok: r, CachedInputPerMTok: r, CacheWritePerMTok: r}, nil
}
