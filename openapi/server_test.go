package openapi

// The document against the real server: every route is called, through
// real HTTP, on a SQLite store, a ledger engine and a simulated upstream,
// and every request and response is checked against the document. A
// schema too loose passes anything; this test is what tells a schema that
// is wrong.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	fb "farebox"
	"farebox/api"
	"farebox/app"
	"farebox/economics"
	"farebox/payments"
	"farebox/payments/stripemock"
	"farebox/routing"
	"farebox/simulator"
)

const testAdmin = "openapi-test-admin-token-0123456789"

type server struct {
	t   *testing.T
	doc *Doc
	url string
	app *app.App
	// seen counts the checked exchanges by operation and status.
	seen map[string]map[int]bool
	// loose: the next call's request is not checked (a batch of events
	// may hold invalid ones, which the server answers per event).
	loose bool
}

func newServer(t *testing.T) *server {
	t.Helper()
	sim := httptest.NewServer(&simulator.Simulator{})
	t.Cleanup(sim.Close)
	faults := []string{simulator.TokensHeader, simulator.FaultHeader}
	a, err := app.New(context.Background(), app.Config{DataDir: t.TempDir(), AdminToken: testAdmin,
		Economics: economics.Config{CreditsPerUSD: 100},
		Stripe:    payments.StripeConfig{SecretKey: stripemock.SecretKey, WebhookSecret: stripemock.WebhookSecret, APIBase: stripemock.Start(t)},
		Deployments: []*routing.Deployment{
			{Name: "sim/gpt-4o-mini", Provider: "sim", Type: routing.TypeSimulated, ForwardHeaders: faults, Model: "gpt-4o-mini",
				Upstream: "gpt-4o-mini", BaseURL: sim.URL + "/v1", MaxOutputTokens: 4096,
				Cost: routing.CostCard{InputPerMTok: 150_000, OutputPerMTok: 600_000, CachedInputPerMTok: 75_000}},
			{Name: "sim/text-embedding-3-small", Provider: "sim", Type: routing.TypeSimulated, ForwardHeaders: faults,
				Model: "text-embedding-3-small", Upstream: "text-embedding-3-small", BaseURL: sim.URL + "/v1", Embeddings: true},
		}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler)
	t.Cleanup(func() {
		hs.Close()
		a.Close()
	})
	return &server{t: t, doc: loadEmbedded(t), url: hs.URL, app: a, seen: map[string]map[int]bool{}}
}

// call sends a request with auth ("admin", a customer key, or ""), checks
// the request body when the answer is a success, checks the response
// always, and returns the status and the body decoded (nil for a stream).
func (s *server) call(method, path, auth, body string, want int, hdr ...string) (map[string]any, string) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	ct := "application/json"
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Content-Type") {
			ct = hdr[i+1]
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if body != "" {
		req.Header.Set("Content-Type", ct)
	}
	switch {
	case auth == "admin":
		req.Header.Set("Authorization", "Bearer "+testAdmin)
	case auth != "":
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	client := http.DefaultClient
	if strings.HasPrefix(path, "/s/") {
		// A click link redirects to the advertiser: the redirect is
		// what is checked, not followed.
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	if resp.StatusCode != want {
		s.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, want, b)
	}
	rct := resp.Header.Get("Content-Type")
	if err := s.doc.ValidateResponse(method, path, resp.StatusCode, rct, b); err != nil {
		s.t.Errorf("the response does not match the document: %v\nbody: %s", err, b)
	}
	if resp.StatusCode < 300 && !s.loose {
		if err := s.doc.ValidateRequest(method, path, ct, []byte(body)); err != nil {
			s.t.Errorf("a request the server took does not match the document: %v\nbody: %s", err, body)
		}
	}
	op, _, _ := s.doc.Match(method, path)
	if op != nil {
		if s.seen[op.String()] == nil {
			s.seen[op.String()] = map[int]bool{}
		}
		s.seen[op.String()][resp.StatusCode] = true
	}
	var out map[string]any
	if strings.HasPrefix(rct, "application/json") {
		if err := json.Unmarshal(b, &out); err != nil {
			s.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return out, string(b)
}

func str(m map[string]any, k string) string {
	v, _ := m[k].(string)
	return v
}

// TestServerResponsesMatchTheDocument calls every route the server has,
// successes and the errors each surface answers, and checks every request
// it took and every response against the document.
func TestServerResponsesMatchTheDocument(t *testing.T) {
	s := newServer(t)
	const A = "admin"

	// Operations.
	s.call("GET", "/healthz", "", "", 200)
	s.call("GET", "/readyz", "", "", 200)

	// Prices and plans.
	s.call("PUT", "/api/v1/prices/gpt-4o-mini", A, `{"input_per_mtok":"1000","output_per_mtok":"2000","cached_input_per_mtok":"1000","reasoning_per_mtok":"2000","effective_from":"2026-01-01T00:00:00Z"}`, 200)
	s.call("PUT", "/api/v1/prices/text-embedding-3-small", A, `{"input_per_mtok":1000,"effective_from":"2026-01-01T00:00:00Z"}`, 200)
	s.call("PUT", "/api/v1/prices/sora-1", A, `{"per_video_second":"0.5","effective_from":"2026-01-01T00:00:00Z"}`, 200)
	s.call("PUT", "/api/v1/prices/bad", A, `{"per_image":"0.0000001"}`, 400)
	s.call("GET", "/api/v1/prices", A, "", 200)
	plan := `{"id":"pro","name":"Pro","price_usd":"20","period":"month","credits":"2000","rollover_max":"500","overdraft_limit":"0","models":["*"],"rpm":600,"tpm":1000000}`
	s.call("POST", "/api/v1/plans", A, plan, 201)
	s.call("POST", "/api/v1/plans", A, plan, 200)
	s.call("POST", "/api/v1/plans", A, strings.Replace(plan, `"Pro"`, `"Other"`, 1), 409)
	s.call("POST", "/api/v1/plans", A, `{"id":"mini","models":["gpt-4o-mini"]}`, 201)
	s.call("POST", "/api/v1/plans", A, `{"id":"spare"}`, 201)
	s.call("POST", "/api/v1/plans", A, `{"id":"slow","rpm":1}`, 201)
	s.call("POST", "/api/v1/plans", A, `{"id":"x","credits":"1","price_usd":"-1"}`, 400)
	s.call("POST", "/api/v1/plans", "", plan, 401)
	s.call("POST", "/api/v1/plans", A, plan, 415, "Content-Type", "text/plain")
	s.call("GET", "/api/v1/plans", A, "", 200)
	s.call("GET", "/api/v1/plans/pro", A, "", 200)
	s.call("GET", "/api/v1/plans/nope", A, "", 404)
	s.call("DELETE", "/api/v1/plans/spare", A, "", 200)

	// Customers and subscriptions.
	c, _ := s.call("POST", "/api/v1/customers", A, `{"id":"acme","name":"Acme","plan":"pro"}`, 201)
	if str(c, "plan") != "pro" {
		t.Fatalf("customer: %v", c)
	}
	s.call("POST", "/api/v1/customers", A, `{"id":"acme","name":"Acme","plan":"pro"}`, 200)
	s.call("POST", "/api/v1/customers", A, `{"id":"acme","name":"Someone else"}`, 409)
	s.call("POST", "/api/v1/customers", A, `{"id":"ghost","plan":"nope"}`, 404)
	s.call("POST", "/api/v1/customers", A, `{"id":"a/b"}`, 400)
	s.call("POST", "/api/v1/customers", A, `{"id":"poor","name":"Poor"}`, 201)
	s.call("POST", "/api/v1/customers", A, `{"id":"mini-user","plan":"mini"}`, 201)
	s.call("POST", "/api/v1/customers", A, `{"id":"slow-user","plan":"slow"}`, 201)
	s.call("POST", "/api/v1/customers", A, `{}`, 201)
	s.call("GET", "/api/v1/customers?limit=2", A, "", 200)
	s.call("GET", "/api/v1/customers?limit=0", A, "", 400)
	s.call("GET", "/api/v1/customers/acme", A, "", 200)
	s.call("GET", "/api/v1/customers/poor", A, "", 200)
	s.call("GET", "/api/v1/customers/nobody", A, "", 404)
	s.call("DELETE", "/api/v1/plans/pro", A, "", 409)
	s.call("PUT", "/api/v1/customers/poor/subscription", A, `{"plan":"mini","effective":"now"}`, 200, "Idempotency-Key", "sub-1")
	s.call("PUT", "/api/v1/customers/poor/subscription", A, `{"plan":"pro","effective":"now"}`, 409, "Idempotency-Key", "sub-1")
	s.call("PUT", "/api/v1/customers/mini-user/subscription", A, `{"plan":"pro"}`, 200)
	s.call("PUT", "/api/v1/customers/nobody/subscription", A, `{"plan":"pro"}`, 404)

	// Credits and holds.
	s.call("POST", "/api/v1/customers/acme/grants", A, `{"amount":"100","paid_usd":"1"}`, 201, "Idempotency-Key", "order-1")
	s.call("POST", "/api/v1/customers/acme/grants", A, `{"amount":"101"}`, 409, "Idempotency-Key", "order-1")
	s.call("POST", "/api/v1/customers/acme/grants", A, `{"amount":0.5,"source":"promo","expires_at":"2030-01-01T00:00:00Z"}`, 201)
	s.call("POST", "/api/v1/customers/acme/grants", A, `{"amount":"1","amout":"1"}`, 400)
	s.call("POST", "/api/v1/customers/ghost/grants", A, `{"amount":"1"}`, 404)
	s.call("POST", "/api/v1/customers/acme/grants", A, `{"amount":"1","source":"`+strings.Repeat("a", api.MaxBodyBytes)+`"}`, 413)
	s.call("GET", "/api/v1/customers/acme/balance", A, "", 200)
	s.call("GET", "/api/v1/customers/a%20b/balance", A, "", 400)
	h, _ := s.call("POST", "/api/v1/holds", A, `{"customer":"acme","amount":"3","ttl_seconds":120}`, 201)
	hold := str(h, "id")
	s.call("GET", "/api/v1/holds/"+hold, A, "", 200)
	s.call("POST", "/api/v1/holds/"+hold+"/capture", A, `{"amount":"2.25"}`, 200)
	s.call("POST", "/api/v1/holds/"+hold+"/capture", A, `{"amount":"2.25"}`, 200)
	s.call("POST", "/api/v1/holds/"+hold+"/capture", A, `{"amount":"1"}`, 409)
	s.call("GET", "/api/v1/holds/"+hold, A, "", 200)
	h, _ = s.call("POST", "/api/v1/holds", A, `{"customer":"acme","amount":4,"allow_partial":true}`, 201, "Idempotency-Key", "job-7")
	s.call("POST", "/api/v1/holds/"+str(h, "id")+"/release", A, "", 200)
	s.call("POST", "/api/v1/holds/"+str(h, "id")+"/release", A, `{"amount":"1"}`, 400)
	h, _ = s.call("POST", "/api/v1/holds", A, `{"customer":"acme","amount":"1"}`, 201)
	s.call("POST", "/api/v1/holds/"+str(h, "id")+"/capture", A, ``, 200)
	h, _ = s.call("POST", "/api/v1/holds", A, `{"customer":"acme","amount":"1"}`, 201)
	s.call("POST", "/api/v1/holds/"+str(h, "id")+"/capture", A, `{"amount":"5","allow_over_capture":true}`, 200)
	s.call("POST", "/api/v1/holds", A, `{"customer":"poor","amount":"1000000"}`, 402)
	s.call("POST", "/api/v1/holds", A, `{"customer":"ghost","amount":"1"}`, 404)
	s.call("GET", "/api/v1/holds/hold_ghost", A, "", 404)
	s.call("POST", "/api/v1/holds/hold_ghost/capture", A, `{}`, 404)

	// Keys.
	k, _ := s.call("POST", "/api/v1/customers/acme/keys", A, `{"name":"ci"}`, 201)
	key := str(k, "key")
	k2, _ := s.call("POST", "/api/v1/customers/acme/keys", A, "", 201)
	s.call("DELETE", "/api/v1/keys/"+str(k2, "id"), A, "", 200)
	s.call("DELETE", "/api/v1/keys/"+str(k2, "id"), A, "", 200)
	s.call("DELETE", "/api/v1/keys/key_ghost", A, "", 404)
	s.call("GET", "/api/v1/customers/acme/keys", A, "", 200)
	s.call("GET", "/api/v1/customers/ghost/keys", A, "", 404)
	k, _ = s.call("POST", "/api/v1/customers/poor/keys", A, `{"name":"p"}`, 201)
	poorKey := str(k, "key")
	k, _ = s.call("POST", "/api/v1/customers/mini-user/keys", A, `{"name":"m"}`, 201)
	miniKey := str(k, "key")
	k, _ = s.call("POST", "/api/v1/customers/slow-user/keys", A, `{"name":"s"}`, 201)
	slowKey := str(k, "key")
	s.call("POST", "/api/v1/customers/slow-user/grants", A, `{"amount":"100"}`, 201)

	// Events.
	ev := func(id, subject, data string) string {
		return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"video-service","type":"usage","subject":%q,"time":"2026-11-23T10:00:00Z","data":%s}`, id, subject, data)
	}
	r, _ := s.call("POST", "/api/v1/events", A, ev("e1", "acme", `{"model":"sora-1","video_seconds":12}`), 200)
	if res, _ := r["results"].([]any); len(res) != 1 {
		t.Fatalf("events: %v", r)
	}
	s.loose = true
	s.call("POST", "/api/v1/events", A, "["+ev("e1", "acme", `{"model":"sora-1","video_seconds":12}`)+","+
		ev("e2", "acme", `{"model":"nope","input_tokens":1}`)+","+ev("e3", "ghost", `{"model":"sora-1","video_seconds":1}`)+","+
		ev("e4", "poor", `{"model":"sora-1","video_seconds":"1000000"}`)+","+`{"id":5}`+"]", 200, "Content-Type", "application/cloudevents-batch+json")
	s.loose = false
	s.call("POST", "/api/v1/events", A, ev("e9", "acme", `{"model":"sora-1"}`), 415, "Content-Type", "text/csv")
	s.call("POST", "/api/v1/events", A, `[]`, 400)

	// The gateway.
	s.call("GET", "/v1/models", key, "", 200)
	s.call("GET", "/v1/models", "", "", 401)
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}`
	a, _ := s.call("POST", "/v1/chat/completions", key, chat, 200)
	if u, _ := a["usage"].(map[string]any); str(u, "cost") == "" {
		t.Fatalf("chat completion without usage.cost: %v", a)
	}
	s.call("POST", "/v1/chat/completions", key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}],"stream":true,"stream_options":{"include_usage":true}}`, 200)
	s.call("POST", "/v1/chat/completions", key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}],"stream":true}`, 200)
	s.call("POST", "/v1/chat/completions", key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":5}`, 200, "X-Farebox-Simulate-Tokens", "50")
	s.call("POST", "/v1/chat/completions", key, chat, 200, "X-Farebox-Simulate", "no_usage")
	// The Responses and Messages protocols, stream and not, their errors
	// (Anthropic's shape on /v1/messages), count_tokens, and the
	// Anthropic-shaped model list.
	resp := `{"model":"gpt-4o-mini","input":"Hello"}`
	s.call("POST", "/v1/responses", key, resp, 200)
	s.call("POST", "/v1/responses", key, `{"model":"gpt-4o-mini","input":"Hello","stream":true}`, 200)
	s.call("POST", "/v1/responses", key, `{"model":"gpt-4o-mini","input":"Hello","stream":true,"max_output_tokens":5}`, 200, "X-Farebox-Simulate-Tokens", "50")
	s.call("POST", "/v1/responses", key, `{"model":"gpt-4o-mini","input":"Hello","tools":[{"type":"web_search"}]}`, 400)
	s.call("POST", "/v1/responses", "", resp, 401)
	s.call("POST", "/v1/responses", poorKey, resp, 402)
	msg := `{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"Hello"}]}`
	s.call("POST", "/v1/messages", key, msg, 200, "anthropic-version", "2023-06-01")
	s.call("POST", "/v1/messages", key, `{"model":"gpt-4o-mini","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"Hello"}]}`, 200)
	s.call("POST", "/v1/messages", key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}`, 400)
	s.call("POST", "/v1/messages", "", msg, 401)
	s.call("POST", "/v1/messages", poorKey, msg, 402)
	s.call("POST", "/v1/messages", key, `{"model":"nope","max_tokens":5,"messages":[{"role":"user","content":"Hello"}]}`, 404)
	s.call("POST", "/v1/messages/count_tokens", key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}`, 200)
	s.call("POST", "/v1/messages/count_tokens", key, `{"model":"nope","messages":[{"role":"user","content":"Hello"}]}`, 404)
	s.call("GET", "/v1/models", key, "", 200, "anthropic-version", "2023-06-01")
	_, raw := s.call("POST", "/v1/chat/completions", key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}],"stream":true}`, 200, "X-Farebox-Simulate", "disconnect")
	if !strings.Contains(raw, `"error":`) {
		t.Errorf("a stream the upstream broke off ends without an error event: %q", raw)
	}
	s.call("POST", "/v1/chat/completions", slowKey, chat, 200)
	s.call("POST", "/v1/chat/completions", slowKey, chat, 429)
	s.call("POST", "/v1/chat/completions", key, chat, 502, "X-Farebox-Simulate", "500")
	s.call("POST", "/v1/chat/completions", key, chat, 400, "X-Farebox-Simulate", "bogus") // the upstream's own refusal, relayed
	s.call("POST", "/v1/chat/completions", key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}],"audio":{}}`, 400)
	s.call("POST", "/v1/chat/completions", key, `{"model":"nope","messages":[{"role":"user","content":"x"}]}`, 404)
	s.call("POST", "/v1/chat/completions", key, chat, 415, "Content-Type", "text/plain")
	s.call("POST", "/v1/chat/completions", "fbk_nope", chat, 401)
	// A balance that pays for less than the minimum output: 402 after a
	// partial hold. Not a customer with nothing at all: the engine answers
	// that refused hold early and then also calls its lost callback
	// (ledger/engine.go, run: an early answer that was an error counts as
	// lost), so the gateway's 402 races the cancelled request and comes out
	// a 500 now and then.
	s.call("POST", "/api/v1/customers/poor/grants", A, `{"amount":"0.001"}`, 201)
	s.call("POST", "/v1/chat/completions", poorKey, chat, 402)
	s.call("POST", "/v1/embeddings", key, `{"model":"text-embedding-3-small","input":["a","b"]}`, 200)
	s.call("POST", "/v1/embeddings", key, `{"model":"text-embedding-3-small","input":"x"}`, 200, "X-Farebox-Simulate", "no_usage")
	s.call("POST", "/v1/embeddings", miniKey, `{"model":"text-embedding-3-small","input":"x"}`, 403)
	s.call("GET", "/v1/account/balance", key, "", 200)
	s.call("GET", "/v1/account/balance", "", "", 401)
	s.call("GET", "/v1/account/usage?group_by=day", key, "", 200)
	s.call("GET", "/v1/account/usage?customer=poor", key, "", 403)

	// Compute leasing.
	pool := `{"id":"h100-eu","gpu_type":"H100","region":"eu","gpus":16,"cost_usd_per_gpu_hour":"1.9","reserved_for_inference":4,"deployments":["sim/gpt-4o-mini"],"prices":{"on_demand":"250","reserved":"190","spot":"120"}}`
	s.call("POST", "/api/v1/pools", A, pool, 201)
	s.call("POST", "/api/v1/pools", A, pool, 200)
	s.call("POST", "/api/v1/pools", A, strings.Replace(pool, `"gpus":16`, `"gpus":8`, 1), 409)
	s.call("POST", "/api/v1/pools", A, `{"id":"x","gpus":0,"prices":{"on_demand":"1","reserved":"1","spot":"1"}}`, 400)
	s.call("GET", "/api/v1/pools", A, "", 200)
	s.call("GET", "/api/v1/pools/h100-eu", A, "", 200)
	s.call("GET", "/api/v1/pools/nope", A, "", 404)
	s.call("POST", "/api/v1/customers/acme/grants", A, `{"amount":"100000","paid_usd":"1000"}`, 201)
	at := func(d time.Duration) string { return time.Now().UTC().Truncate(time.Hour).Add(d).Format(time.RFC3339) }
	spot, _ := s.call("POST", "/api/v1/leases", A, `{"customer":"acme","pool":"h100-eu","gpus":6,"class":"spot"}`, 201)
	s.call("POST", "/api/v1/leases", A, `{"customer":"acme","pool":"h100-eu","gpus":8,"class":"reserved","start":"`+at(2*time.Hour)+`","end":"`+at(5*time.Hour)+`","idempotency_key":"r-1"}`, 201)
	s.call("POST", "/api/v1/leases", A, `{"customer":"acme","pool":"h100-eu","gpus":8,"class":"reserved","start":"`+at(2*time.Hour)+`","end":"`+at(5*time.Hour)+`","idempotency_key":"r-1"}`, 201)
	s.call("POST", "/api/v1/leases", A, `{"customer":"acme","pool":"h100-eu","gpus":5,"class":"on_demand","start":"`+at(3*time.Hour)+`"}`, 409)
	s.call("POST", "/api/v1/leases", A, `{"customer":"poor","pool":"h100-eu","gpus":1,"class":"on_demand"}`, 402)
	s.call("POST", "/api/v1/leases", A, `{"customer":"acme","pool":"h100-eu","gpus":1,"class":"reserved"}`, 400)
	s.call("PATCH", "/api/v1/pools/h100-eu", A, `{"gpus":10}`, 409)
	s.call("PATCH", "/api/v1/pools/h100-eu", A, `{"reserved_for_inference":2,"prices":{"spot":"100"}}`, 200)
	s.call("GET", "/api/v1/leases?state=active&limit=10", A, "", 200)
	s.call("GET", "/api/v1/leases?state=gone", A, "", 400)
	s.call("GET", "/api/v1/leases/"+str(spot, "id"), A, "", 200)
	s.call("GET", "/api/v1/leases/nope", A, "", 404)
	s.call("GET", "/api/v1/pools/h100-eu/availability", A, "", 200)
	s.call("GET", "/api/v1/pools/h100-eu/utilization", A, "", 200)
	s.call("GET", "/api/v1/pools/h100-eu/utilization?from=2026-01-01&to=2025-01-01", A, "", 400)
	s.call("POST", "/api/v1/leases/"+str(spot, "id")+"/end", A, "", 200)

	// Reports.
	s.call("GET", "/api/v1/usage?customer=acme&group_by=model", A, "", 200)
	s.call("GET", "/api/v1/usage?group_by=status", A, "", 200)
	s.call("GET", "/api/v1/usage?group_by=colour", A, "", 400)
	s.call("GET", "/api/v1/reports/economics", A, "", 200)
	s.call("GET", "/api/v1/reports/economics?group_by=model&from=2026-01-01&to=2099-01-01", A, "", 200)
	s.call("GET", "/api/v1/reports/economics?from=2026-01-01T10:00:00Z", A, "", 400)
	s.call("GET", "/api/v1/reports/forecast", A, "", 200)
	s.call("GET", "/api/v1/reports/forecast?customer=poor&days=30", A, "", 200)
	s.call("GET", "/api/v1/reports/forecast?customer=ghost", A, "", 404)
	s.call("GET", "/api/v1/reports/forecast?days=0", A, "", 400)
	s.call("GET", "/api/v1/deployments", A, "", 200)
	s.call("GET", "/api/v1/deployments", "", "", 401)

	// Payments, automatic top-ups, thresholds and webhooks.
	s.call("POST", "/api/v1/plans", A, `{"id":"down","downgrade":{"gpt-4o":"gpt-4o-mini"},"low_balance":"10","expiring_days":3}`, 201)
	s.call("POST", "/api/v1/plans", A, `{"id":"down2","downgrade":{"gpt-4o":"gpt-4o"}}`, 400)
	s.call("POST", "/api/v1/customers/acme/checkout", A, `{"credits":"1000","success_url":"https://example.com/paid","cancel_url":"https://example.com/cart"}`, 201)
	s.call("POST", "/api/v1/customers/acme/checkout", A, `{"credits":"0","success_url":"https://example.com/paid"}`, 400)
	s.call("POST", "/api/v1/customers/ghost/checkout", A, `{"credits":"10","success_url":"https://example.com/paid"}`, 404)
	payload, sig := stripemock.Event("evt_1", payments.EventCheckoutCompleted, map[string]any{"id": "cs_1", "client_reference_id": "acme", "payment_status": "paid",
		"currency": "usd", "amount_total": 1000, "payment_intent": "pi_1", "metadata": map[string]string{"credits": "1000"}})
	s.call("POST", "/webhooks/stripe", "", string(payload), 200, "Stripe-Signature", sig)
	s.call("POST", "/webhooks/stripe", "", string(payload), 400, "Stripe-Signature", "t=1,v1=00")
	s.call("PUT", "/api/v1/customers/acme/auto-topup", A, `{"threshold":"100","credits":"1000","cooldown":"1h"}`, 200)
	s.call("PUT", "/api/v1/customers/acme/auto-topup", A, `{"threshold":"0","credits":"1000"}`, 400)
	s.call("GET", "/api/v1/customers/acme/auto-topup", A, "", 200)
	// With an attempt made: the settings carry it.
	if err := s.app.Store.Advance(context.Background(), "openapi-test", fb.JournalCursor{}, fb.JournalCursor{Seq: 1}, nil,
		[]fb.TopupAttempt{{ID: "tu_1", Customer: "acme", Crossing: 1, Credits: 1000 * fb.Micro, Status: fb.TopupPending, CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}}); err != nil {
		t.Fatal(err)
	}
	if at, _ := s.call("GET", "/api/v1/customers/acme/auto-topup", A, "", 200); at["last_attempt"] == nil {
		t.Fatalf("auto-topup %v, want its last attempt", at)
	}
	s.call("DELETE", "/api/v1/customers/acme/auto-topup", A, "", 200)
	s.call("GET", "/api/v1/customers/acme/auto-topup", A, "", 404)
	s.call("DELETE", "/api/v1/customers/acme/auto-topup", A, "", 404)
	s.call("PUT", "/api/v1/customers/acme/alerts", A, `{"low_balance":"100","expiring_days":7}`, 200)
	s.call("PUT", "/api/v1/customers/acme/alerts", A, `{"expiring_days":-1}`, 400)
	s.call("GET", "/api/v1/customers/acme/alerts", A, "", 200)
	s.call("GET", "/api/v1/customers/ghost/alerts", A, "", 404)
	ep, _ := s.call("POST", "/api/v1/webhook-endpoints", A, `{"url":"http://127.0.0.1:1/hook","events":["*"]}`, 201)
	s.call("POST", "/api/v1/webhook-endpoints", A, `{"url":"http://127.0.0.1:1/hook","events":["balance.high"]}`, 400)
	s.call("POST", "/api/v1/webhook-endpoints", A, `{"url":"ftp://example.com","events":["balance.low"]}`, 400)
	s.call("GET", "/api/v1/webhook-endpoints", A, "", 200)
	// A key whose budget is spent: 402 key_budget_exceeded, and an event.
	k, _ = s.call("POST", "/api/v1/customers/acme/keys", A, `{"name":"b","budget":"0","budget_period":"day","rpm":60}`, 201)
	s.call("POST", "/api/v1/customers/acme/keys", A, `{"name":"b","budget_period":"week"}`, 400)
	s.call("POST", "/v1/chat/completions", str(k, "key"), chat, 402)
	s.call("GET", "/v1/account/balance", str(k, "key"), "", 200)
	dl, _ := s.call("GET", "/api/v1/webhook-endpoints/"+str(ep, "id")+"/deliveries", A, "", 200)
	ds, _ := dl["data"].([]any)
	if len(ds) != 1 {
		t.Fatalf("deliveries: %v, want key.budget_exceeded's", dl)
	}
	s.call("GET", "/api/v1/webhook-endpoints/we_ghost/deliveries", A, "", 404)
	s.call("POST", "/api/v1/webhook-deliveries/"+str(ds[0].(map[string]any), "id")+"/retry", A, "", 200)
	s.call("POST", "/api/v1/webhook-deliveries/wd_ghost/retry", A, "", 404)
	s.call("DELETE", "/api/v1/webhook-endpoints/"+str(ep, "id"), A, "", 200)
	s.call("DELETE", "/api/v1/webhook-endpoints/"+str(ep, "id"), A, "", 404)

	// Sponsored suggestions: an advertiser, a campaign, a free plan that
	// carries them, a decision moment's answers (stream and not) with a
	// suggestion, its link, the campaign's stats, an opt-out.
	s.call("POST", "/api/v1/advertisers", A, `{"id":"shop","name":"Shop"}`, 201)
	s.call("POST", "/api/v1/advertisers", A, `{"id":"shop","name":"Shop"}`, 200)
	s.call("POST", "/api/v1/advertisers", A, `{"id":"acme","name":"Acme"}`, 409)
	s.call("POST", "/api/v1/advertisers", A, `{"id":"a b"}`, 400)
	s.call("POST", "/api/v1/customers/shop/grants", A, `{"amount":"1000","paid_usd":"10"}`, 201)
	campaign := `{"id":"laptops","advertiser":"shop","topics":["laptops"],"phrases":["laptop","bærbar pc"],"title":"Laptops at Shop",` +
		`"text":"Every laptop, tested.","url":"https://shop.example/laptops","bid_per_impression":"0.5","bid_per_click":2,"daily_budget":"100",` +
		`"frequency_cap_per_user_per_day":5,"exclude_topics":[],"active":true}`
	s.call("POST", "/api/v1/campaigns", A, campaign, 201)
	s.call("POST", "/api/v1/campaigns", A, campaign, 200)
	s.call("POST", "/api/v1/campaigns", A, strings.Replace(campaign, `"100"`, `"200"`, 1), 409)
	s.call("POST", "/api/v1/campaigns", A, strings.Replace(campaign, `"shop"`, `"ghost"`, 1), 404)
	s.call("POST", "/api/v1/campaigns", A, strings.Replace(campaign, `"shop"`, `"acme"`, 1), 400)
	s.call("POST", "/api/v1/campaigns", A, `{"advertiser":"shop","topics":["tv"],"title":"TV","url":"https://shop.example/tv","daily_budget":10}`, 201)
	s.call("GET", "/api/v1/campaigns", A, "", 200)
	s.call("GET", "/api/v1/campaigns?advertiser=shop", A, "", 200)
	s.call("GET", "/api/v1/campaigns/laptops", A, "", 200)
	s.call("GET", "/api/v1/campaigns/ghost", A, "", 404)
	s.call("PATCH", "/api/v1/campaigns/laptops", A, `{"daily_budget":"150","active":true}`, 200)
	s.call("PATCH", "/api/v1/campaigns/laptops", A, `{"url":"no"}`, 400)
	s.call("PATCH", "/api/v1/campaigns/ghost", A, `{"active":false}`, 404)
	s.call("POST", "/api/v1/plans", A, `{"id":"free","sponsored":true}`, 201)
	s.call("POST", "/api/v1/customers", A, `{"id":"free-user","plan":"free"}`, 201)
	s.call("POST", "/api/v1/customers/free-user/grants", A, `{"amount":"100","source":"promo"}`, 201)
	k, _ = s.call("POST", "/api/v1/customers/free-user/keys", A, `{"name":"f"}`, 201)
	freeKey := str(k, "key")
	ask := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Which laptop should I buy for university?"}],"user":"u1"`
	a, _ = s.call("POST", "/v1/chat/completions", freeKey, ask+`}`, 200)
	sg, _ := a["farebox_suggestion"].(map[string]any)
	if sg == nil {
		t.Fatalf("a decision moment on a sponsored plan without a suggestion: %v", a)
	}
	_, raw = s.call("POST", "/v1/chat/completions", freeKey, ask+`,"stream":true,"stream_options":{"include_usage":true}}`, 200)
	if !strings.Contains(raw, `"farebox_suggestion":`) {
		t.Errorf("a stream without its suggestion: %q", raw)
	}
	s.call("POST", "/v1/chat/completions", freeKey, ask+`}`, 200, "X-Farebox-No-Suggestions", "1")
	link := str(sg, "url")
	s.call("GET", link[strings.Index(link, "/s/"):], "", "", 302)
	s.call("GET", link[strings.Index(link, "/s/"):], "", "", 302)
	s.call("GET", "/s/not-a-link", "", "", 404)
	st, _ := s.call("GET", "/api/v1/campaigns/laptops/stats?from=2026-01-01", A, "", 200)
	if st["clicks"] != 1.0 {
		t.Errorf("stats %v: want the click counted once", st)
	}
	s.call("GET", "/api/v1/campaigns/laptops/stats?from=soon", A, "", 400)
	s.call("GET", "/api/v1/reports/economics?group_by=plan", A, "", 200)
	s.call("GET", "/api/v1/reports/economics?group_by=product", A, "", 200)
	s.call("GET", "/api/v1/usage?group_by=product", A, "", 200)
	s.call("GET", "/api/v1/campaigns/ghost/stats", A, "", 404)
	s.call("PATCH", "/api/v1/customers/free-user", A, `{"sponsored_opt_out":true}`, 200)
	s.call("PATCH", "/api/v1/customers/free-user", A, `{"sponsored_opt_out":1}`, 400)
	s.call("PATCH", "/api/v1/customers/ghost", A, `{"sponsored_opt_out":true}`, 404)
	s.call("DELETE", "/api/v1/campaigns/laptops", A, "", 200)
	s.call("DELETE", "/api/v1/campaigns/laptops", A, "", 404)
	s.call("GET", link[strings.Index(link, "/s/"):], "", "", 404)

	// Every operation the server has today was called with a success.
	for _, op := range s.doc.Operations() {
		if op.Path == "/metrics" || op.Path == "/openapi.json" {
			continue // not routed yet
		}
		ok := false
		for st := range s.seen[op.String()] {
			ok = ok || st < 300 || st == http.StatusFound
		}
		if !ok {
			t.Errorf("%s was not called with a success", op)
		}
	}
}

// TestServerStreamMatchesTheDocument reads a stream whole and checks that
// each of its events is held to the chunk schema: the document must not
// accept a final usage chunk without cost.
func TestServerStreamMatchesTheDocument(t *testing.T) {
	s := newServer(t)
	s.call("PUT", "/api/v1/prices/gpt-4o-mini", "admin", `{"input_per_mtok":"1000","output_per_mtok":"2000","effective_from":"2026-01-01T00:00:00Z"}`, 200)
	s.call("POST", "/api/v1/customers", "admin", `{"id":"acme"}`, 201)
	s.call("POST", "/api/v1/customers/acme/grants", "admin", `{"amount":"100"}`, 201)
	k, _ := s.call("POST", "/api/v1/customers/acme/keys", "admin", `{"name":"ci"}`, 201)
	_, raw := s.call("POST", "/v1/chat/completions", str(k, "key"), `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}],"stream":true,"stream_options":{"include_usage":true}}`, 200)
	if !strings.Contains(raw, `"cost":`) || !strings.HasSuffix(raw, "data: [DONE]\n\n") {
		t.Fatalf("stream without a usage chunk with cost, or without [DONE]: %q", raw)
	}
	broken := bytes.Replace([]byte(raw), []byte(`"cost":`), []byte(`"kost":`), 1)
	err := s.doc.ValidateResponse("POST", "/v1/chat/completions", 200, "text/event-stream", broken)
	if err == nil || !strings.Contains(err.Error(), "event ") || !strings.Contains(err.Error(), "cost") {
		t.Fatalf("a usage chunk without cost: got %v, want an error naming the event and cost", err)
	}
}
