package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/app"
	"farebox/economics"
	"farebox/fakeclock"
	"farebox/gateway"
	"farebox/ids"
	"farebox/keys"
	"farebox/ledger"
	"farebox/payments"
	"farebox/pricing"
	"farebox/routing"
	"farebox/simulator"
	"farebox/store/sqlite"
	"farebox/testlog"
)

const adminToken = "fba_test"

// Test prices, in micro-credits per token: input 1,000, output 2,000.
var testRates = fb.Rates{InputPerMTok: 1000 * fb.Micro, OutputPerMTok: 2000 * fb.Micro, CachedInputPerMTok: 1000 * fb.Micro, ReasoningPerMTok: 2000 * fb.Micro}

// env is a Farebox (SQLite, real engine, real HTTP) in front of a
// simulator, started as the app starts it.
type env struct {
	t      *testing.T
	url    string
	app    *app.App
	store  fb.Store
	engine *ledger.Engine
	gw     *gateway.Gateway
	sim    *simulator.Simulator
	client *http.Client
	dir    string // the data directory
}

// simHeaders are the simulator's controls, forwarded to a test's
// simulated deployments (faults on).
var simHeaders = []string{simulator.TokensHeader, simulator.FaultHeader}

func newEnv(t *testing.T, cfg gateway.Config) *env {
	t.Helper()
	return newEnvSim(t, envOptions{cfg: cfg})
}

// newEnvSim is an env of o whose models are served by a simulator.
func newEnvSim(t *testing.T, o envOptions) *env {
	t.Helper()
	sim := &simulator.Simulator{}
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	router, err := routing.NewRouter([]*routing.Deployment{
		{Name: "sim/gpt-4o-mini", Provider: "sim", Type: routing.TypeSimulated, ForwardHeaders: simHeaders, Model: "gpt-4o-mini", Upstream: "gpt-4o-mini", BaseURL: simSrv.URL + "/v1", MaxOutputTokens: 4096,
			Cost: routing.CostCard{InputPerMTok: 150_000, OutputPerMTok: 600_000, CachedInputPerMTok: 75_000}},
		{Name: "sim/text-embedding-3-small", Provider: "sim", Type: routing.TypeSimulated, ForwardHeaders: simHeaders, Model: "text-embedding-3-small", Upstream: "text-embedding-3-small", BaseURL: simSrv.URL + "/v1", Embeddings: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	o.router = router
	e := newEnvWith(t, o)
	e.sim = sim
	return e
}

// newEnvRouter is an env whose gateway routes with router; now, when set,
// is the clock of the ledger and the gateway.
func newEnvRouter(t *testing.T, cfg gateway.Config, router *routing.Router, now func() time.Time) *env {
	t.Helper()
	return newEnvWith(t, envOptions{cfg: cfg, router: router, now: now})
}

// envOptions shape an env: the gateway's config and router, the clock,
// a wrapper of the store (to fail it), the log, and whether this process
// is the store's only writer (it then caches keys and plans; the default).
type envOptions struct {
	cfg      gateway.Config
	router   *routing.Router
	now      func() time.Time
	wrap     func(fb.Store) fb.Store
	log      *slog.Logger
	replicas bool // not the only writer: nothing cached
	// prices, by model, besides testRates for the two test models.
	prices map[string]fb.Rates
	// clock, when set, is every service's clock (now is ignored then);
	// stripe configures payments.
	clock  fb.Clock
	stripe payments.StripeConfig
}

func newEnvWith(t *testing.T, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "farebox.db"), sqlite.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	prices := map[string]fb.Rates{"gpt-4o-mini": testRates, "text-embedding-3-small": testRates}
	for m, r := range o.prices {
		prices[m] = r
	}
	for m, r := range prices {
		if err := st.PutPrice(ctx, fb.Price{Model: m, Rates: r, EffectiveFrom: pricing.DefaultEffective, CreatedAt: pricing.DefaultEffective}); err != nil {
			t.Fatal(err)
		}
	}
	var through fb.Store = st
	if o.wrap != nil {
		through = o.wrap(st)
	}
	var clock fb.Clock = fb.SystemClock
	if o.now != nil {
		clock = fakeclock.Func(o.now)
	}
	if o.log == nil {
		o.log = testlog.New(t)
	}
	if o.clock != nil {
		clock = o.clock
	}
	a, err := app.New(ctx, app.Config{
		Store: through, SoleWriter: !o.replicas, DataDir: dir, AdminToken: adminToken, Router: o.router,
		Gateway: o.cfg, Economics: economics.Config{CreditsPerUSD: 100, Shares: shares}, Clock: clock, Log: o.log,
		Stripe: o.stripe,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler)
	tr := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		hs.Close()
		a.Close()
	})
	return &env{t: t, url: hs.URL, app: a, store: a.Store, engine: a.Engine, gw: a.Gateway, client: &http.Client{Transport: tr}, dir: dir}
}

// customer creates a customer with credits (promo, never expiring) and a
// key, optionally on a plan.
func (e *env) customer(id string, credits string, plan *fb.Plan) (key string, keyID string) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.store.CreateCustomer(ctx, fb.Customer{ID: id, Name: id, CreatedAt: time.Now().UTC()}); err != nil {
		e.t.Fatal(err)
	}
	if plan != nil {
		plan.CreatedAt = time.Now().UTC()
		if err := e.store.CreatePlan(ctx, *plan); err != nil {
			e.t.Fatal(err)
		}
		now := time.Now().UTC()
		if err := e.store.PutSubscription(ctx, fb.Subscription{Customer: id, Plan: plan.ID, Anchor: now, PeriodStart: now, PeriodEnd: now.AddDate(0, 1, 0), UpdatedAt: now}); err != nil {
			e.t.Fatal(err)
		}
	}
	if credits != "" {
		amt, err := fb.ParseAmount(credits)
		if err != nil {
			e.t.Fatal(err)
		}
		if _, err := e.engine.Submit(ctx, fb.Op{Kind: fb.OpGrant, Customer: id, Amount: amt, Source: fb.SourcePromo}); err != nil {
			e.t.Fatal(err)
		}
	}
	k, key := keys.Mint(id, "test", time.Now(), ids.New)
	keyID = k.ID
	if err := e.store.CreateKey(ctx, k); err != nil {
		e.t.Fatal(err)
	}
	return key, keyID
}

// account is the customer's ledger state now.
func (e *env) account(id string) *fb.Account {
	e.t.Helper()
	a, err := e.store.Account(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *env) available(id string) fb.Amount {
	return ledger.Available(e.account(id), time.Now())
}

// answer is a gateway response, read to the end.
type answer struct {
	status  int
	header  http.Header
	trailer http.Header
	body    map[string]any
	events  []string // a stream's data payloads, [DONE] included
	raw     string
	readErr error
}

func (e *env) do(method, path, key, body string, hdr ...string) answer {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		rd := bufio.NewReader(resp.Body)
		var raw strings.Builder
		for {
			line, err := rd.ReadString('\n')
			raw.WriteString(line)
			if p, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "data: "); ok {
				a.events = append(a.events, p)
			}
			if err != nil {
				if err != io.EOF {
					a.readErr = err
				}
				break
			}
		}
		a.raw = raw.String()
	} else {
		b, err := io.ReadAll(resp.Body)
		a.readErr = err
		a.raw = string(b)
		_ = json.Unmarshal(b, &a.body)
	}
	a.trailer = resp.Trailer
	return a
}

func (a answer) get(keys ...string) string {
	var v any = a.body
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return "<missing>"
		}
		if v, ok = m[k]; !ok {
			return "<missing>"
		}
	}
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return "null"
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// streamUsage sums a stream's content deltas and returns its usage chunk.
type streamSummary struct {
	deltas int
	text   string
	usage  map[string]any
	finish []string
	errors []map[string]any
	done   bool
}

func summarize(t *testing.T, events []string) streamSummary {
	t.Helper()
	var s streamSummary
	for _, ev := range events {
		if ev == "[DONE]" {
			s.done = true
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage map[string]any `json:"usage"`
			Error map[string]any `json:"error"`
		}
		if err := json.Unmarshal([]byte(ev), &c); err != nil {
			t.Fatalf("stream event is not JSON: %q", ev)
		}
		for _, ch := range c.Choices {
			if ch.Delta.Content != "" {
				s.deltas++
				s.text += ch.Delta.Content
			}
			if ch.FinishReason != nil {
				s.finish = append(s.finish, *ch.FinishReason)
			}
		}
		if c.Usage != nil {
			s.usage = c.Usage
		}
		if c.Error != nil {
			s.errors = append(s.errors, c.Error)
		}
	}
	return s
}

// cost is the price of prompt and completion tokens at testRates.
func cost(prompt, completion int64) fb.Amount {
	return fb.Amount(prompt*1000 + completion*2000)
}

func chatBody(stream, usage bool, extra string) string {
	b := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say something short."}]`
	if stream {
		b += `,"stream":true`
	}
	if usage {
		b += `,"stream_options":{"include_usage":true}`
	}
	return b + extra + "}"
}

// promptTokens of chatBody's one message, as the simulator counts them.
var promptTokens = pricing.PromptTokens([]string{"Say something short."})

func mustAmount(t *testing.T, s string) fb.Amount {
	t.Helper()
	a, err := fb.ParseAmount(s)
	if err != nil {
		t.Fatalf("amount %q: %v", s, err)
	}
	return a
}

func TestChatNonStream(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	key, _ := e.customer("acme", "100", nil)
	a := e.do("POST", "/v1/chat/completions", key, chatBody(false, false, ""), simulator.TokensHeader, "30")
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.raw)
	}
	want := cost(promptTokens, 30)
	if got := a.get("usage", "cost"); got != want.String() {
		t.Errorf("usage.cost = %s, want %s", got, want)
	}
	if a.header.Get("X-Farebox-Cost") != want.String() {
		t.Errorf("X-Farebox-Cost = %q, want %s", a.header.Get("X-Farebox-Cost"), want)
	}
	left := mustAmount(t, "100") - want
	if a.get("usage", "balance") != left.String() || a.header.Get("X-Farebox-Balance") != left.String() {
		t.Errorf("balance %s / %s, want %s", a.get("usage", "balance"), a.header.Get("X-Farebox-Balance"), left)
	}
	if a.header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
	if a.get("usage", "completion_tokens") != "30" || a.get("model") != "gpt-4o-mini" || a.get("object") != "chat.completion" {
		t.Errorf("body passed on wrong: %s", a.raw)
	}
	acct := e.account("acme")
	if acct.Charged != want || ledger.Held(acct) != 0 {
		t.Errorf("charged %s held %s, want %s and 0", acct.Charged, ledger.Held(acct), want)
	}
	rows, err := e.store.Usage(context.Background(), fb.UsageFilter{Customer: "acme", GroupBy: "provider"})
	if err != nil || len(rows) != 1 || rows[0].Key != "sim" || rows[0].Credits != want || rows[0].OutputTokens != 30 || rows[0].CostUSD == 0 {
		t.Errorf("usage rows %+v (%v)", rows, err)
	}
}

func TestChatStream(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	key, _ := e.customer("acme", "100", nil)
	for _, asked := range []bool{false, true} {
		t.Run(fmt.Sprintf("include_usage=%v", asked), func(t *testing.T) {
			before := e.available("acme")
			a := e.do("POST", "/v1/chat/completions", key, chatBody(true, asked, ""), simulator.TokensHeader, "25")
			if a.status != 200 || a.readErr != nil {
				t.Fatalf("status %d err %v: %s", a.status, a.readErr, a.raw)
			}
			s := summarize(t, a.events)
			if s.deltas != 25 || !s.done || len(s.errors) > 0 {
				t.Fatalf("deltas %d done %v errors %v", s.deltas, s.done, s.errors)
			}
			want := cost(promptTokens, 25)
			if asked {
				if s.usage == nil || s.usage["cost"] != want.String() || s.usage["balance"] != (before-want).String() || s.usage["completion_tokens"] != float64(25) {
					t.Errorf("usage chunk %v, want cost %s balance %s", s.usage, want, before-want)
				}
			} else if s.usage != nil {
				t.Errorf("a usage chunk the client did not ask for: %v", s.usage)
			}
			if a.trailer.Get("X-Farebox-Cost") != want.String() || a.trailer.Get("X-Farebox-Balance") != (before-want).String() {
				t.Errorf("trailers %v, want cost %s", a.trailer, want)
			}
			if got := e.available("acme"); got != before-want {
				t.Errorf("available %s, want %s", got, before-want)
			}
		})
	}
}

func TestEmbeddingsAndModels(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	key, _ := e.customer("acme", "10", nil)
	a := e.do("POST", "/v1/embeddings", key, `{"model":"text-embedding-3-small","input":["hello world","abc"]}`)
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.raw)
	}
	want := cost(pricing.CountTokens("hello world")+pricing.CountTokens("abc"), 0)
	if a.get("usage", "cost") != want.String() {
		t.Errorf("cost %s, want %s", a.get("usage", "cost"), want)
	}
	m := e.do("GET", "/v1/models", key, "")
	if m.status != 200 || !strings.Contains(m.raw, `"id":"gpt-4o-mini"`) || !strings.Contains(m.raw, `"input_per_mtok":"1000"`) {
		t.Errorf("models: %d %s", m.status, m.raw)
	}
	// A chat on an embedding model is not served.
	bad := e.do("POST", "/v1/chat/completions", key, `{"model":"text-embedding-3-small","messages":[{"role":"user","content":"x"}]}`)
	if bad.status != 404 || bad.get("error", "code") != "model_not_found" {
		t.Errorf("chat on an embedding model: %d %s", bad.status, bad.raw)
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	key, _ := e.customer("acme", "10", nil)
	for _, c := range []struct {
		name, body string
		status     int
		param      string
	}{
		{"not json", `{`, 400, ""},
		{"no model", `{"messages":[{"role":"user","content":"x"}]}`, 400, "model"},
		{"no messages", `{"model":"gpt-4o-mini"}`, 400, "messages"},
		{"empty messages", `{"model":"gpt-4o-mini","messages":[]}`, 400, "messages"},
		{"bad max_tokens", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_tokens":0}`, 400, "max_tokens"},
		{"bad n", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"n":0}`, 400, "n"},
		{"unknown model", `{"model":"nope","messages":[{"role":"user","content":"x"}]}`, 404, "model"},
	} {
		a := e.do("POST", "/v1/chat/completions", key, c.body)
		if a.status != c.status || (c.param != "" && a.get("error", "param") != c.param) {
			t.Errorf("%s: %d %s", c.name, a.status, a.raw)
		}
	}
	if a := e.do("POST", "/v1/chat/completions", "", chatBody(false, false, "")); a.status != 401 || a.get("error", "type") != "invalid_api_key" {
		t.Errorf("no key: %d %s", a.status, a.raw)
	}
	if a := e.do("POST", "/v1/chat/completions", "fbk_"+strings.Repeat("x", 40), chatBody(false, false, "")); a.status != 401 {
		t.Errorf("unknown key: %d %s", a.status, a.raw)
	}
	if acct := e.account("acme"); acct.Charged != 0 || ledger.Held(acct) != 0 {
		t.Errorf("bad requests charged %s, held %s", acct.Charged, ledger.Held(acct))
	}
}

// The balance pays for fewer output tokens than asked: max_tokens is
// lowered to what it pays for; below the minimum, 402.
func TestMaxTokensLowered(t *testing.T) {
	e := newEnv(t, gateway.Config{MinOutputTokens: 16})
	body := chatBody(false, false, `,"max_tokens":1000`)
	in := int64(len(body))
	// Enough for the input bound and exactly 100 output tokens.
	credits := fb.Amount(in*1000 + 100*2000)
	key, _ := e.customer("acme", credits.String(), nil)
	a := e.do("POST", "/v1/chat/completions", key, body, simulator.TokensHeader, "500")
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.raw)
	}
	if a.get("usage", "completion_tokens") != "100" || !strings.Contains(a.raw, `"finish_reason":"length"`) {
		t.Errorf("want 100 tokens cut at length, got %s", a.raw)
	}
	want := cost(promptTokens, 100)
	if a.get("usage", "cost") != want.String() || e.account("acme").Charged != want {
		t.Errorf("cost %s charged %s, want %s", a.get("usage", "cost"), e.account("acme").Charged, want)
	}
	// What is left pays for fewer than 16 output tokens after the input.
	e2 := newEnv(t, gateway.Config{MinOutputTokens: 16})
	key2, _ := e2.customer("poor", fb.Amount(in*1000+15*2000).String(), nil)
	a = e2.do("POST", "/v1/chat/completions", key2, body)
	if a.status != 402 || a.get("error", "type") != "insufficient_credits" {
		t.Fatalf("want 402, got %d %s", a.status, a.raw)
	}
	if acct := e2.account("poor"); acct.Charged != 0 || ledger.Held(acct) != 0 {
		t.Errorf("a refused request charged %s held %s", acct.Charged, ledger.Held(acct))
	}
	// A cap above the model's limit (4096 here) is lowered to it, not held.
	e3 := newEnv(t, gateway.Config{})
	key3, _ := e3.customer("rich", "1000", nil)
	a3 := e3.do("POST", "/v1/chat/completions", key3, chatBody(false, false, `,"max_tokens":1000000000000`), simulator.TokensHeader, "5000")
	if a3.status != 200 || a3.get("usage", "completion_tokens") != "4096" || !strings.Contains(a3.raw, `"finish_reason":"length"`) {
		t.Errorf("a cap above the model's limit: %d %.300s", a3.status, a3.raw)
	}
	// A client asking for fewer tokens than the minimum is served.
	a = e2.do("POST", "/v1/chat/completions", key2, chatBody(false, false, `,"max_tokens":8`))
	if a.status != 200 {
		t.Errorf("max_tokens 8 under the minimum but affordable: %d %s", a.status, a.raw)
	}
}

func TestEntitlementAndRateLimits(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	plan := &fb.Plan{ID: "chat-only", Name: "Chat only", Period: fb.PeriodMonth, Models: []string{"gpt-4o*"}, RPM: 3}
	key, _ := e.customer("acme", "10", plan)
	if a := e.do("POST", "/v1/embeddings", key, `{"model":"text-embedding-3-small","input":"x"}`); a.status != 403 || a.get("error", "type") != "model_not_allowed" {
		t.Errorf("embeddings outside the plan: %d %s", a.status, a.raw)
	}
	m := e.do("GET", "/v1/models", key, "")
	if strings.Contains(m.raw, "text-embedding-3-small") || !strings.Contains(m.raw, "gpt-4o-mini") {
		t.Errorf("models of the plan: %s", m.raw)
	}
	// Requests per minute are counted before the body is read, so that a
	// client past its rate costs no reading: the refused embeddings
	// request was one of the minute's 3.
	for i := range 2 {
		if a := e.do("POST", "/v1/chat/completions", key, chatBody(false, false, "")); a.status != 200 {
			t.Fatalf("request %d: %d %s", i, a.status, a.raw)
		}
	}
	a := e.do("POST", "/v1/chat/completions", key, chatBody(false, false, ""))
	if a.status != 429 || a.get("error", "type") != "rate_limited" {
		t.Fatalf("the 4th request in a minute at 3 rpm: %d %s", a.status, a.raw)
	}
	if ra, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After %q", a.header.Get("Retry-After"))
	}
}

func TestIsolationAndRevocation(t *testing.T) {
	for _, replicas := range []bool{true, false} {
		t.Run(fmt.Sprintf("cached=%v", !replicas), func(t *testing.T) { testIsolation(t, replicas) })
	}
}

// testIsolation runs with the catalog cache (a sole writer) and without
// (one of several replicas): a revocation through the API takes effect at
// once either way.
func testIsolation(t *testing.T, replicas bool) {
	e := newEnvSim(t, envOptions{replicas: replicas})
	keyA, idA := e.customer("a", "10", nil)
	keyB, _ := e.customer("b", "10", nil)
	if a := e.do("POST", "/v1/chat/completions", keyA, chatBody(false, false, "")); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	if e.account("b").Charged != 0 || e.account("a").Charged == 0 {
		t.Error("a's request charged the wrong customer")
	}
	bal := e.do("GET", "/v1/account/balance", keyB, "")
	if bal.status != 200 || bal.get("customer") != "b" || bal.get("available") != "10" {
		t.Errorf("b's balance: %s", bal.raw)
	}
	if u := e.do("GET", "/v1/account/usage?customer=a", keyB, ""); u.status != 403 {
		t.Errorf("b reading a's usage: %d %s", u.status, u.raw)
	}
	req, _ := http.NewRequest("DELETE", e.url+"/api/v1/keys/"+idA, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := e.client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	resp.Body.Close()
	if a := e.do("POST", "/v1/chat/completions", keyA, chatBody(false, false, "")); a.status != 401 {
		t.Errorf("revoked key: %d %s", a.status, a.raw)
	}
	if a := e.do("GET", "/v1/account/balance", keyA, ""); a.status != 401 {
		t.Errorf("revoked key reading its balance: %d", a.status)
	}
}

// Each fault of the simulator: what the client gets and what is charged.
func TestFaults(t *testing.T) {
	e := newEnv(t, gateway.Config{FirstByteTimeout: time.Second, RequestTimeout: 2 * time.Second})
	key, _ := e.customer("acme", "100", nil)
	full, half := cost(promptTokens, 40), cost(promptTokens, 20)
	for _, c := range []struct {
		fault  string
		stream bool
		status int
		code   string // error code: of the body, or of a stream's error event
		charge fb.Amount
		done   bool // a stream ends with [DONE]
		deltas int
	}{
		{"500", false, 502, "upstream_error", 0, false, 0},
		{"500", true, 502, "upstream_error", 0, false, 0},
		{"429", false, 429, "upstream_rate_limited", 0, false, 0},
		{"429", true, 429, "upstream_rate_limited", 0, false, 0},
		{"hang", false, 504, "upstream_timeout", 0, false, 0},
		{"hang", true, 504, "upstream_timeout", 0, false, 0},
		{"disconnect", false, 502, "upstream_unreachable", 0, false, 0},
		{"disconnect", true, 200, "upstream_disconnected", half, false, 20},
		{"no_usage", false, 200, "", full, false, 0},
		{"no_usage", true, 200, "", full, true, 40},
		{"malformed", false, 502, "upstream_malformed", 0, false, 0},
		{"malformed", true, 200, "upstream_malformed", half, false, 20},
	} {
		name := fmt.Sprintf("%s/stream=%v", c.fault, c.stream)
		t.Run(name, func(t *testing.T) {
			before := e.account("acme").Charged
			a := e.do("POST", "/v1/chat/completions", key, chatBody(c.stream, c.stream, ""), simulator.FaultHeader, c.fault, simulator.TokensHeader, "40")
			if a.status != c.status {
				t.Fatalf("status %d, want %d: %s", a.status, c.status, a.raw)
			}
			switch {
			case c.status != 200:
				if a.get("error", "code") != c.code {
					t.Errorf("error code %q, want %q: %s", a.get("error", "code"), c.code, a.raw)
				}
				if c.status == 429 && a.header.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
			case c.stream:
				s := summarize(t, a.events)
				if s.deltas != c.deltas || s.done != c.done {
					t.Errorf("deltas %d done %v, want %d %v", s.deltas, s.done, c.deltas, c.done)
				}
				if c.code != "" && (len(s.errors) != 1 || s.errors[0]["code"] != c.code) {
					t.Errorf("error events %v, want one %s", s.errors, c.code)
				}
				if c.code == "" && (s.usage == nil || s.usage["cost"] != c.charge.String()) {
					t.Errorf("usage chunk %v, want cost %s", s.usage, c.charge)
				}
				if a.trailer.Get("X-Farebox-Cost") != c.charge.String() {
					t.Errorf("trailer cost %q, want %s", a.trailer.Get("X-Farebox-Cost"), c.charge)
				}
			default:
				if c.fault == "no_usage" {
					// Without usage the gateway counts the text it passed on.
					var body struct {
						Choices []struct {
							Message struct{ Content string } `json:"message"`
						} `json:"choices"`
					}
					_ = json.Unmarshal([]byte(a.raw), &body)
					n := pricing.CountTokens(body.Choices[0].Message.Content)
					c.charge = cost(promptTokens, n)
					if a.get("usage", "completion_tokens") != strconv.FormatInt(n, 10) {
						t.Errorf("usage.completion_tokens %s, want the gateway's count %d", a.get("usage", "completion_tokens"), n)
					}
				}
				if a.get("usage", "cost") != c.charge.String() {
					t.Errorf("usage.cost %s, want %s", a.get("usage", "cost"), c.charge)
				}
			}
			acct := e.account("acme")
			if got := acct.Charged - before; got != c.charge {
				t.Errorf("charged %s, want %s", got, c.charge)
			}
			if ledger.Held(acct) != 0 {
				t.Errorf("%s still held after the request", ledger.Held(acct))
			}
		})
	}
}

// Zero overspend: 500 concurrent requests, half streaming, from a customer
// whose credits pay for about 50. Whatever the interleaving, the sum
// captured never exceeds the grant, every admitted request was charged
// exactly its usage, and the ledger verifies. Then again with faults.
func TestZeroOverspend(t *testing.T) {
	for _, faults := range []bool{false, true} {
		t.Run(fmt.Sprintf("faults=%v", faults), func(t *testing.T) {
			// No fault here hangs, so the timeouts are only a bound on a
			// loaded machine (the race detector, a parallel CI): generous,
			// so a slow simulator is not mistaken for a gateway fault.
			e := newEnv(t, gateway.Config{FirstByteTimeout: 30 * time.Second, RequestTimeout: 60 * time.Second})
			per := cost(promptTokens, 40)
			grant := per * 50
			key, _ := e.customer("acme", grant.String(), nil)
			modes := []string{"", "", "", "500", "429", "disconnect", "no_usage", "malformed"}
			var (
				mu       sync.Mutex
				paid     fb.Amount
				admitted int
				statuses = map[int]int{}
				wg       sync.WaitGroup
			)
			for i := range 500 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					stream := i%2 == 0
					hdr := []string{simulator.TokensHeader, "40"}
					if faults {
						if m := modes[i%len(modes)]; m != "" {
							hdr = append(hdr, simulator.FaultHeader, m)
						}
					}
					a := e.do("POST", "/v1/chat/completions", key, chatBody(stream, stream && i%4 == 0, `,"max_tokens":64`), hdr...)
					var charged fb.Amount
					switch {
					case a.status == 200 && stream:
						charged = mustAmount(t, a.trailer.Get("X-Farebox-Cost"))
						s := summarize(t, a.events)
						if s.done && len(s.errors) == 0 && charged != cost(promptTokens, int64(s.deltas)) {
							t.Errorf("stream of %d tokens charged %s", s.deltas, charged)
						}
					case a.status == 200:
						charged = mustAmount(t, a.header.Get("X-Farebox-Cost"))
						n, _ := strconv.ParseInt(a.get("usage", "completion_tokens"), 10, 64)
						if charged != cost(promptTokens, n) {
							t.Errorf("answer of %d tokens charged %s", n, charged)
						}
					case a.status == 402, faults && (a.status == 502 || a.status == 429):
					default:
						t.Errorf("unexpected %d: %s", a.status, a.raw)
					}
					mu.Lock()
					statuses[a.status]++
					paid += charged
					if a.status == 200 {
						admitted++
					}
					mu.Unlock()
				}()
			}
			wg.Wait()
			acct := e.account("acme")
			t.Logf("statuses %v, admitted %d, paid %s of %s", statuses, admitted, paid, grant)
			if acct.Charged != paid {
				t.Errorf("the ledger charged %s, the responses say %s", acct.Charged, paid)
			}
			if acct.Charged > grant || acct.Uncollected != 0 || acct.Debt != 0 {
				t.Errorf("overspent: charged %s of %s, uncollected %s, debt %s", acct.Charged, grant, acct.Uncollected, acct.Debt)
			}
			if ledger.Held(acct) != 0 {
				t.Errorf("%s still held", ledger.Held(acct))
			}
			// Holds are of the worst case, so while many requests run at
			// once the credits reserved exceed those spent. A request is
			// refused (402) only when what is left pays for less than
			// its input and 16 output tokens; by then every credit but
			// that is held or spent, each request at most its worst case.
			// So at least (grant − minimum) ÷ worst got past the ledger
			// (served, or failed upstream and released).
			body := chatBody(true, true, `,"max_tokens":64`)
			worst, least := cost(int64(len(body)), 64), cost(int64(len(body)), 16)
			if floor := int((grant - least) / worst); len(statuses) > 0 && 500-statuses[402] < floor {
				t.Errorf("only %d got past the ledger; the grant pays for %d at their worst case", 500-statuses[402], floor)
			}
			rows, err := e.store.Usage(context.Background(), fb.UsageFilter{Customer: "acme", GroupBy: "customer"})
			if err != nil || len(rows) != 1 || rows[0].Credits != paid {
				t.Errorf("usage rows %+v (%v), want credits %s", rows, err, paid)
			}
			rep, err := ledger.Verify(context.Background(), e.store)
			if err != nil || len(rep.Problems) > 0 {
				t.Errorf("ledger verify: %v %+v", err, rep)
			}
		})
	}
}

// A plan change through the API takes effect at once, with the catalog
// cached.
func TestPlanChangeTakesEffect(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	key, _ := e.customer("acme", "10", &fb.Plan{ID: "chat", Name: "Chat", Period: fb.PeriodMonth, Models: []string{"gpt-4o*"}})
	if err := e.store.CreatePlan(context.Background(), fb.Plan{ID: "all", Name: "All", Period: fb.PeriodMonth, Models: []string{"*"}, CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	embed := `{"model":"text-embedding-3-small","input":"x"}`
	if a := e.do("POST", "/v1/embeddings", key, embed); a.status != 403 {
		t.Fatalf("before: %d %s", a.status, a.raw)
	}
	req, _ := http.NewRequest("PUT", e.url+"/api/v1/customers/acme/subscription", strings.NewReader(`{"plan":"all","effective":"now"}`))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("change plan: %v %v", resp, err)
	}
	resp.Body.Close()
	if a := e.do("POST", "/v1/embeddings", key, embed); a.status != 200 {
		t.Fatalf("after the change: %d %s", a.status, a.raw)
	}
}
