package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fb "farebox"
	"farebox/economics"
	"farebox/gateway"
	"farebox/routing"
	"farebox/simulator"
)

// shares are the revenue shares of the test servers: 20% of revenue on
// llama models is owed to meta.
var shares = []economics.Share{{Partner: "meta", Models: []string{"llama-*"}, Percent: 20 * fb.Micro}}

// upstream is a simulator that can be made to fail, counting requests.
type upstream struct {
	sim   simulator.Simulator
	fail  atomic.Bool
	calls atomic.Int64
	srv   *httptest.Server
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.calls.Add(1)
		if u.fail.Load() {
			http.Error(w, `{"error":{"message":"down","type":"server_error"}}`, http.StatusServiceUnavailable)
			return
		}
		u.sim.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// The cheapest healthy deployment takes the traffic; when it fails the
// next serves and the client sees no error; after its back-off it takes
// the traffic again; a stream that broke off after bytes reached the
// client is never retried.
func TestRoutingFallback(t *testing.T) {
	cheap, dear := newUpstream(t), newUpstream(t)
	clk := &fakeClock{t: time.Now().UTC()}
	router, err := routing.NewRouter([]*routing.Deployment{
		{Name: "dear/gpt-4o-mini", Provider: "dear", Type: routing.TypeSimulated, ForwardHeaders: simHeaders, Model: "gpt-4o-mini", Upstream: "gpt-4o-mini", BaseURL: dear.srv.URL + "/v1",
			Cost: routing.CostCard{InputPerMTok: 2 * fb.Micro, OutputPerMTok: 8 * fb.Micro, CachedInputPerMTok: 2 * fb.Micro}},
		{Name: "cheap/gpt-4o-mini", Provider: "cheap", Type: routing.TypeSimulated, ForwardHeaders: simHeaders, Model: "gpt-4o-mini", Upstream: "gpt-4o-mini", BaseURL: cheap.srv.URL + "/v1",
			Cost: routing.CostCard{InputPerMTok: fb.Micro / 10, OutputPerMTok: fb.Micro / 2, CachedInputPerMTok: fb.Micro / 10}},
	})
	if err != nil {
		t.Fatal(err)
	}
	router.Now = clk.Now
	e := newEnvRouter(t, gateway.Config{}, router, clk.Now)
	key, _ := e.customer("acme", "100", nil)
	send := func(stream bool, hdr ...string) answer {
		t.Helper()
		a := e.do("POST", "/v1/chat/completions", key, chatBody(stream, false, `,"max_tokens":50`), hdr...)
		if a.status != 200 {
			t.Fatalf("status %d: %s", a.status, a.raw)
		}
		return a
	}
	calls := func() (int64, int64) { return cheap.calls.Load(), dear.calls.Load() }

	for range 5 {
		send(false)
	}
	if c, d := calls(); c != 5 || d != 0 {
		t.Fatalf("healthy: cheap %d dear %d, want 5 0", c, d)
	}
	cheap.fail.Store(true)
	for range 5 {
		send(true) // each tries cheap first until it is taken out, then dear
	}
	if c, d := calls(); c != 5+3 || d != 5 {
		t.Fatalf("cheap failing: cheap %d dear %d, want 8 5 (3 failures take it out)", c, d)
	}
	rows, err := e.store.Usage(t.Context(), fb.UsageFilter{GroupBy: "deployment"})
	if err != nil || len(rows) != 2 || rows[0].Key != "cheap/gpt-4o-mini" || rows[0].Requests != 5 || rows[1].Key != "dear/gpt-4o-mini" || rows[1].Requests != 5 {
		t.Errorf("usage by deployment %+v %v", rows, err)
	}
	// Recovered, but still in its back-off: dear serves.
	cheap.fail.Store(false)
	send(false)
	if c, d := calls(); c != 8 || d != 6 {
		t.Fatalf("in back-off: cheap %d dear %d", c, d)
	}
	clk.Advance(5 * time.Second)
	for range 3 {
		send(false)
	}
	if c, d := calls(); c != 11 || d != 6 {
		t.Fatalf("after back-off: cheap %d dear %d, want 11 6", c, d)
	}
	// A stream that breaks off mid-way is not retried elsewhere.
	a := e.do("POST", "/v1/chat/completions", key, chatBody(true, false, ""), simulator.FaultHeader, "disconnect", simulator.TokensHeader, "20")
	if s := summarize(t, a.events); a.status != 200 || s.done || len(s.errors) != 1 {
		t.Fatalf("disconnect: %d %+v", a.status, s)
	}
	if c, d := calls(); c != 12 || d != 6 {
		t.Fatalf("a broken stream was retried: cheap %d dear %d", c, d)
	}
	// Every deployment down: the client gets 502 after at most 3 attempts
	// and is charged nothing.
	cheap.fail.Store(true)
	dear.fail.Store(true)
	before := e.account("acme").Charged
	if a := e.do("POST", "/v1/chat/completions", key, chatBody(false, false, "")); a.status != 502 {
		t.Fatalf("all down: %d %s", a.status, a.raw)
	}
	if e.account("acme").Charged != before {
		t.Error("a request nobody served was charged")
	}
}

// TestUpstreamRedirectNotFollowed: an upstream that answers a redirect is
// not followed, so neither the customer's request nor the provider's key
// reaches where it points (security review, finding 17); the 3xx is a
// failure of the deployment (its URL is wrong): 502, charged nothing.
func TestUpstreamRedirectNotFollowed(t *testing.T) {
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		(&simulator.Simulator{}).ServeHTTP(w, r)
	}))
	defer target.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	router, err := routing.NewRouter([]*routing.Deployment{
		{Name: "moved/gpt-4o-mini", Provider: "moved", Type: routing.TypeOpenAI, Model: "gpt-4o-mini", Upstream: "gpt-4o-mini", BaseURL: redirector.URL + "/v1", APIKey: "sk-provider",
			Cost: routing.CostCard{InputPerMTok: fb.Micro, OutputPerMTok: fb.Micro, CachedInputPerMTok: fb.Micro}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvRouter(t, gateway.Config{}, router, nil)
	key, _ := e.customer("acme", "100", nil)
	before := e.available("acme")
	for _, stream := range []bool{false, true} {
		a := e.do("POST", "/v1/chat/completions", key, chatBody(stream, false, `,"max_tokens":50`))
		if a.status != http.StatusBadGateway || a.get("error", "type") != "upstream_error" {
			t.Errorf("stream %v: got %d %s, want 502 upstream_error", stream, a.status, a.raw)
		}
		if loc := a.header.Get("Location"); loc != "" {
			t.Errorf("stream %v: the upstream's Location %q reached the client", stream, loc)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the redirect target was called %d times, want never", n)
	}
	if got := e.available("acme"); got != before {
		t.Fatalf("available after two redirected requests: got %s, want %s (nothing charged)", got, before)
	}
}
