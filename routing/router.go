package routing

import (
	"fmt"
	"slices"
	"sync"
	"time"

	fb "farebox"
	"farebox/pricing"
)

// Router knows every deployment of every public model, their health and
// latency, and orders them for each request: cheapest healthy first.
type Router struct {
	byModel map[string][]*Deployment
	// Policy of passive health checks.
	FailuresToTrip int           // consecutive failures that take a deployment out; 3 when 0
	BackOff        time.Duration // its first time out, doubled on each failure after it (to MaxBackOff); 5 s when 0
	MaxBackOff     time.Duration // 60 s when 0
	// MaxAttempts bounds the deployments one request tries; 3 when 0.
	MaxAttempts int
	Now         func() time.Time
	// Rand returns a number in [0, n), to split traffic by weight.
	Rand func(n int) int

	mu sync.Mutex // guards every deployment's health and Rand
}

// health is what the router has seen of a deployment.
type health struct {
	failures  int           // consecutive
	downUntil time.Time     // skipped until then
	backOff   time.Duration // the current time out
	ewma      time.Duration // time to first byte, exponentially weighted (α = 0.2)
	served    int64
	failed    int64
}

// NewRouter checks the deployments and indexes them by public model.
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
		case d.MaxOutputTokens < 0 || d.Weight < 0 || d.Cost.InputPerMTok < 0 || d.Cost.OutputPerMTok < 0 || d.Cost.CachedInputPerMTok < 0:
			return nil, fmt.Errorf("routing: deployment %q has a negative limit, weight or cost", d.Name)
		}
		switch d.Hosting {
		case "":
			d.Hosting = HostingProvider
		case HostingProvider, HostingSelf:
		default:
			return nil, fmt.Errorf("routing: deployment %q: hosting %q must be provider or self", d.Name, d.Hosting)
		}
		switch d.Type {
		case TypeOpenAI, TypeAnthropic, TypeAzure, TypeSimulated:
		case "":
			d.Type = TypeOpenAI
		default:
			return nil, fmt.Errorf("routing: deployment %q: type %q must be openai, anthropic, azure or simulated", d.Name, d.Type)
		}
		if len(d.Protocols) == 0 {
			d.Protocols = defaultProtocols(d)
		}
		for _, p := range d.Protocols {
			switch {
			case p == ProtoEmbeddings && !d.Embeddings, p != ProtoEmbeddings && d.Embeddings:
				return nil, fmt.Errorf("routing: deployment %q: an embedding model speaks embeddings only; a chat model chat, responses or messages", d.Name)
			case p == ProtoMessages && (d.Type == TypeOpenAI || d.Type == TypeAzure), p != ProtoMessages && d.Type == TypeAnthropic:
				return nil, fmt.Errorf("routing: deployment %q: a %s deployment does not speak %s", d.Name, d.Type, p)
			case p != ProtoChat && p != ProtoResponses && p != ProtoMessages && p != ProtoEmbeddings:
				return nil, fmt.Errorf("routing: deployment %q: protocol %q must be chat, responses, messages or embeddings", d.Name, p)
			}
		}
		if d.Type == TypeAzure && d.APIVersion == "" {
			d.APIVersion = DefaultAzureAPIVersion
		}
		if d.ToolOverhead == 0 && d.Speaks(ProtoMessages) {
			d.ToolOverhead = pricing.ToolOverhead(d.Model)
		}
		switch d.CapField {
		case "":
			d.CapField = CapMaxCompletionTokens
		case CapMaxCompletionTokens, CapMaxTokens, CapBoth:
		default:
			return nil, fmt.Errorf("routing: deployment %q: cap_field %q must be max_completion_tokens, max_tokens or both", d.Name, d.CapField)
		}
		if d.Limits == (pricing.Limits{}) {
			d.Limits = pricing.DefaultLimits(d.Model)
		}
		if d.Limits.Image.Low < 0 || d.Limits.Image.High < 0 || d.Limits.ContextWindow < 0 || d.ToolOverhead < 0 {
			return nil, fmt.Errorf("routing: deployment %q has a negative image bound, context window or tool overhead", d.Name)
		}
		names[d.Name] = true
		if d.MaxOutputTokens == 0 {
			d.MaxOutputTokens = DefaultMaxOutputTokens
		}
		if d.Weight == 0 {
			d.Weight = 1
		}
		if d.Client == nil {
			d.Client = DefaultClient
		}
		r.byModel[d.Model] = append(r.byModel[d.Model], d)
	}
	return r, nil
}

// defaultProtocols are what a deployment of its type speaks when the
// config says nothing.
func defaultProtocols(d *Deployment) []string {
	switch {
	case d.Embeddings:
		return []string{ProtoEmbeddings}
	case d.Type == TypeAnthropic:
		return []string{ProtoMessages}
	case d.Type == TypeSimulated:
		return []string{ProtoChat, ProtoResponses, ProtoMessages}
	}
	return []string{ProtoChat}
}

func (r *Router) defaults() (trip int, backOff, maxBackOff time.Duration, attempts int, now time.Time) {
	trip, backOff, maxBackOff, attempts = r.FailuresToTrip, r.BackOff, r.MaxBackOff, r.MaxAttempts
	if trip <= 0 {
		trip = 3
	}
	if backOff <= 0 {
		backOff = 5 * time.Second
	}
	if maxBackOff <= 0 {
		maxBackOff = 60 * time.Second
	}
	if attempts <= 0 {
		attempts = 3
	}
	if r.Now != nil {
		now = r.Now()
	} else {
		now = time.Now()
	}
	return
}

// Deployments returns the deployments of a public model, in config order.
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

// Order lists the deployments a request for model tries, at most
// MaxAttempts, of those can accepts (all when nil): healthy ones before
// those in back-off (tried only when no healthy one is left), then by
// priority, then by the estimated cost of this request (cost(d)), then,
// among equals, in a random order weighted by Weight.
func (r *Router) Order(model string, q fb.Quantities, can func(*Deployment) bool) []*Deployment {
	ds := r.byModel[model]
	if can != nil {
		ds = slices.DeleteFunc(slices.Clone(ds), func(d *Deployment) bool { return !can(d) })
	}
	if len(ds) == 0 {
		return nil
	}
	_, _, _, attempts, now := r.defaults()
	type cand struct {
		d    *Deployment
		down bool
		cost fb.USD
		key  int // weighted random tie-break
	}
	cs := make([]cand, len(ds))
	for i, d := range ds { // costs outside the lock: they need no state
		c, err := d.Cost.Cost(q)
		if err != nil {
			c = 1<<63 - 1
		}
		cs[i] = cand{d: d, cost: c}
	}
	r.mu.Lock()
	for i := range cs {
		cs[i].down = now.Before(cs[i].d.health.downUntil)
		cs[i].key = r.weighted(cs[i].d.Weight)
	}
	r.mu.Unlock()
	slices.SortStableFunc(cs, func(a, b cand) int {
		switch {
		case a.down != b.down:
			if a.down {
				return 1
			}
			return -1
		case a.d.Priority != b.d.Priority:
			return a.d.Priority - b.d.Priority
		case a.cost != b.cost:
			if a.cost < b.cost {
				return -1
			}
			return 1
		}
		return b.key - a.key
	})
	out := make([]*Deployment, 0, min(attempts, len(cs)))
	for _, c := range cs[:min(attempts, len(cs))] {
		out = append(out, c.d)
	}
	return out
}

// weighted draws a sort key: the larger of weight draws, so a deployment
// of weight w comes first among equals about w times as often as one of
// weight 1 (for two of them: w/(w+1) … close enough, and cheap).
func (r *Router) weighted(w int) int {
	rnd := r.Rand
	if rnd == nil {
		return 0
	}
	best := 0
	for range min(w, 100) {
		best = max(best, rnd(1<<30))
	}
	return best
}

// Success records that d answered, its first byte after ttft.
func (r *Router) Success(d *Deployment, ttft time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := &d.health
	h.failures, h.downUntil, h.backOff = 0, time.Time{}, 0
	h.served++
	if h.ewma == 0 {
		h.ewma = ttft
	} else {
		h.ewma += (ttft - h.ewma) / 5
	}
}

// Failure records that d failed before delivering anything; past
// FailuresToTrip in a row it is skipped for a back-off that doubles with
// each failure after it. A deployment whose back-off ran out is tried
// again; one more failure sends it back at once.
func (r *Router) Failure(d *Deployment) {
	trip, backOff, maxBackOff, _, now := r.defaults()
	r.mu.Lock()
	defer r.mu.Unlock()
	h := &d.health
	h.failures++
	h.failed++
	if h.failures < trip {
		return
	}
	if h.backOff == 0 {
		h.backOff = backOff
	} else {
		h.backOff = min(2*h.backOff, maxBackOff)
	}
	h.downUntil = now.Add(h.backOff)
}

// Status is a deployment's health as the router sees it.
type Status struct {
	Name       string    `json:"name"`
	Model      string    `json:"model"`
	Provider   string    `json:"provider"`
	Priority   int       `json:"priority"`
	Weight     int       `json:"weight"`
	Cost       CostCard  `json:"cost"`
	Healthy    bool      `json:"healthy"`
	DownUntil  time.Time `json:"down_until,omitzero"`
	Failures   int       `json:"consecutive_failures"`
	TTFTEWMAMS float64   `json:"ttft_ewma_ms"`
	Served     int64     `json:"served"`
	Failed     int64     `json:"failed"`
}

// Deployment finds a deployment by name, nil when there is none.
func (r *Router) Deployment(name string) *Deployment {
	for _, ds := range r.byModel {
		for _, d := range ds {
			if d.Name == name {
				return d
			}
		}
	}
	return nil
}

// Statuses lists every deployment's health, by model then config order.
func (r *Router) Statuses() []Status {
	_, _, _, _, now := r.defaults()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []Status{}
	for _, m := range r.Models() {
		for _, d := range r.byModel[m] {
			h := d.health
			out = append(out, Status{Name: d.Name, Model: d.Model, Provider: d.Provider, Priority: d.Priority, Weight: d.Weight, Cost: d.Cost,
				Healthy: !now.Before(h.downUntil), DownUntil: h.downUntil, Failures: h.failures,
				TTFTEWMAMS: float64(h.ewma) / float64(time.Millisecond), Served: h.served, Failed: h.failed})
		}
	}
	return out
}
