package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	fb "farebox"
	"farebox/ledger"
	"farebox/pricing"
	"farebox/routing"
	"farebox/simulator"
)

// recorder passes requests to next and keeps the headers of the last one.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	last http.Header
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.last = r.Header.Clone()
	rc.mu.Unlock()
	rc.next.ServeHTTP(w, r)
}

func (rc *recorder) header(name string) string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.last.Get(name)
}

// TestProtocolRules: the rules of the two new routes, each in its
// protocol's own error shape: what is billed after the exchange or per
// call is refused naming the field; state the provider keeps is refused
// unless the deployment allows it, and then held at the context window;
// max_tokens is required; anthropic-beta features outside the default
// list are refused unless the deployment allows them; anthropic-version
// is passed on (default 2023-06-01); the key is taken as x-api-key or
// Bearer; a model not served on a protocol is 404 in that protocol's
// shape; the model list takes Anthropic's shape on anthropic-version.
func TestProtocolRules(t *testing.T) {
	sim := &recorder{next: &simulator.Simulator{}}
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	g := &greedy{limits: pricing.Limits{Image: pricing.MaxImageTokens, ContextWindow: 1000}}
	greedySrv := httptest.NewServer(g)
	t.Cleanup(greedySrv.Close)
	cards := routing.CostCard{InputPerMTok: 150_000, OutputPerMTok: 600_000}
	simDep := func(model string, d routing.Deployment) *routing.Deployment {
		d.Name, d.Provider, d.Model, d.Upstream, d.BaseURL, d.ForwardHeaders, d.Cost = "sim/"+model, "sim", model, model, simSrv.URL+"/v1", simHeaders, cards
		if d.Type == "" {
			d.Type = routing.TypeSimulated
		}
		return &d
	}
	router, err := routing.NewRouter([]*routing.Deployment{
		simDep("gpt-4o-mini", routing.Deployment{}),
		simDep("chat-only", routing.Deployment{Type: routing.TypeOpenAI}),
		simDep("beta-model", routing.Deployment{AllowBetas: map[string]bool{"files-api-2025-04-14": true}}),
		simDep("text-embedding-3-small", routing.Deployment{Embeddings: true}),
		{Name: "greedy/stateful", Provider: "greedy", Type: routing.TypeOpenAI, Protocols: []string{routing.ProtoChat, routing.ProtoResponses},
			Model: "stateful", Upstream: "stateful", BaseURL: greedySrv.URL + "/v1", ProviderState: true, Limits: g.limits, Cost: cards},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, envOptions{router: router, prices: map[string]fb.Rates{
		"chat-only": testRates, "beta-model": testRates, "stateful": greedyRates}})
	key, _ := e.customer("acme", "100", nil)

	const (
		resp = `{"model":"gpt-4o-mini","input":"Hello"`
		msg  = `{"model":"gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":"Hello"}]`
	)
	for _, c := range []struct {
		name, path, key, body string
		hdr                   []string
		status                int
		// param is the OpenAI error's param; anthropic the Anthropic
		// error's type (its message names the field: contains).
		param, anthropic, contains string
	}{
		{"background is billed after the exchange", "/v1/responses", key, resp + `,"background":true}`, nil, 400, "background", "", ""},
		{"background false is nothing", "/v1/responses", key, resp + `,"background":false}`, nil, 200, "", "", ""},
		{"a hosted tool is billed per call", "/v1/responses", key, resp + `,"tools":[{"type":"file_search","vector_store_ids":["vs_1"]}]}`, nil, 400, "tools[0].type", "", ""},
		{"stored responses are kept by the provider", "/v1/responses", key, resp + `,"store":true}`, nil, 400, "store", "", ""},
		{"previous_response_id where not allowed", "/v1/responses", key, `{"model":"gpt-4o-mini","previous_response_id":"resp_1","input":"more"}`, nil, 400, "previous_response_id", "", ""},
		{"conversation where not allowed", "/v1/responses", key, `{"model":"gpt-4o-mini","conversation":"conv_1","input":"more"}`, nil, 400, "conversation", "", ""},
		{"a stored item where not allowed", "/v1/responses", key, `{"model":"gpt-4o-mini","input":[{"type":"item_reference","id":"msg_1"}]}`, nil, 400, "input[0]", "", ""},
		{"input is required without state", "/v1/responses", key, `{"model":"gpt-4o-mini"}`, nil, 400, "input", "", ""},
		{"a chat-only model is not on Responses", "/v1/responses", key, `{"model":"chat-only","input":"Hello"}`, nil, 404, "model", "", ""},
		{"an embedding model is not on Responses", "/v1/responses", key, `{"model":"text-embedding-3-small","input":"Hello"}`, nil, 404, "model", "", ""},

		{"max_tokens is required", "/v1/messages", key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}`, nil, 400, "", "invalid_request_error", "max_tokens"},
		{"a server tool is billed per call", "/v1/messages", key, msg + `,"tools":[{"type":"web_search_20250305","name":"web_search"}]}`, nil, 400, "", "invalid_request_error", "web_search_20250305"},
		{"mcp_servers run beyond tokens", "/v1/messages", key, msg + `,"mcp_servers":[{"type":"url","url":"https://x","name":"x"}]}`, nil, 400, "", "invalid_request_error", "mcp_servers"},
		{"an unknown beta", "/v1/messages", key, msg + `}`, []string{"anthropic-beta", "files-api-2025-04-14"}, 400, "", "invalid_request_error", "files-api-2025-04-14"},
		{"one unknown beta among known ones", "/v1/messages", key, msg + `}`, []string{"anthropic-beta", "prompt-caching-2024-07-31, computer-use-2025-01-24"}, 400, "", "invalid_request_error", "computer-use-2025-01-24"},
		{"a default beta", "/v1/messages", key, msg + `}`, []string{"anthropic-beta", "prompt-caching-2024-07-31"}, 200, "", "", ""},
		{"a beta the deployment allows", "/v1/messages", key, strings.Replace(msg, "gpt-4o-mini", "beta-model", 1) + `}`, []string{"anthropic-beta", "files-api-2025-04-14"}, 200, "", "", ""},
		{"the key as x-api-key", "/v1/messages", "", msg + `}`, []string{"x-api-key", key}, 200, "", "", ""},
		{"a bad key", "/v1/messages", "fbk_nope", msg + `}`, nil, 401, "", "authentication_error", ""},
		{"no key", "/v1/messages", "", msg + `}`, nil, 401, "", "authentication_error", ""},
		{"an unknown model", "/v1/messages", key, strings.Replace(msg, "gpt-4o-mini", "nope", 1) + `}`, nil, 404, "", "not_found_error", "nope"},
		{"an embedding model is not on Messages", "/v1/messages", key, strings.Replace(msg, "gpt-4o-mini", "text-embedding-3-small", 1) + `}`, nil, 404, "", "not_found_error", "text-embedding-3-small"},
		{"a chat-only model on Messages, by translation", "/v1/messages", key, strings.Replace(msg, "gpt-4o-mini", "chat-only", 1) + `}`, nil, 200, "", "", ""},
		{"count_tokens needs a Messages deployment", "/v1/messages/count_tokens", key, `{"model":"chat-only","messages":[{"role":"user","content":"Hello"}]}`, nil, 404, "", "not_found_error", "chat-only"},
		{"an upstream's refusal in Anthropic's shape", "/v1/messages", key, msg + `}`, []string{simulator.FaultHeader, "bogus"}, 400, "", "invalid_request_error", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := e.do("POST", c.path, c.key, c.body, c.hdr...)
			if a.status != c.status {
				t.Fatalf("status %d, want %d: %s", a.status, c.status, a.raw)
			}
			switch {
			case c.param != "":
				if a.get("error", "param") != c.param || a.get("error", "message") == "<missing>" {
					t.Errorf("error %s, want param %s", a.raw, c.param)
				}
			case c.anthropic != "":
				if a.get("type") != "error" || a.get("error", "type") != c.anthropic || !strings.Contains(a.get("error", "message"), c.contains) {
					t.Errorf("error %s, want Anthropic's shape, type %s, a message naming %q", a.raw, c.anthropic, c.contains)
				}
			}
		})
	}

	t.Run("anthropic-version passed on", func(t *testing.T) {
		for _, c := range []struct{ sent, want string }{{"", routing.DefaultAnthropicVersion}, {"2024-10-22", "2024-10-22"}} {
			hdr := []string{}
			if c.sent != "" {
				hdr = append(hdr, "anthropic-version", c.sent)
			}
			if a := e.do("POST", "/v1/messages", key, msg+`}`, hdr...); a.status != 200 {
				t.Fatalf("%d %s", a.status, a.raw)
			}
			if got := sim.header("anthropic-version"); got != c.want {
				t.Errorf("sent %q: the upstream got anthropic-version %q, want %q", c.sent, got, c.want)
			}
		}
		if a := e.do("POST", "/v1/messages", key, msg+`}`, "anthropic-beta", "prompt-caching-2024-07-31"); a.status != 200 || sim.header("anthropic-beta") != "prompt-caching-2024-07-31" {
			t.Errorf("anthropic-beta upstream %q: %d %s", sim.header("anthropic-beta"), a.status, a.raw)
		}
	})

	t.Run("provider state held at the context window", func(t *testing.T) {
		// greedy bills state it keeps as the whole window (1000 tokens)
		// of cached input and max_output_tokens of reasoning: at
		// greedyRates, 1.5 credits + 10 × 0.003 + 0.000005.
		body := `{"model":"stateful","previous_response_id":"resp_1","input":"more","max_output_tokens":10}`
		worst := mustAmount(t, "1.530005")
		short, _ := e.customer("short", (worst - 1).String(), nil)
		if a := e.do("POST", "/v1/responses", short, body); a.status != 402 {
			t.Errorf("a balance below the window's worst case: %d %s, want 402", a.status, a.raw)
		}
		enough, _ := e.customer("enough", worst.String(), nil)
		a := e.do("POST", "/v1/responses", enough, body)
		if a.status != 200 || a.get("usage", "cost") != worst.String() {
			t.Fatalf("%d cost %s, want 200 charged %s: %s", a.status, a.get("usage", "cost"), worst, a.raw)
		}
		if got := string(g.received()["previous_response_id"]); got != `"resp_1"` {
			t.Errorf("previous_response_id upstream %s", got)
		}
		for _, id := range []string{"short", "enough"} {
			if acct := e.account(id); acct.Uncollected != 0 || acct.Debt != 0 || ledger.Held(acct) != 0 {
				t.Errorf("%s: uncollected %s, debt %s, held %s", id, acct.Uncollected, acct.Debt, ledger.Held(acct))
			}
		}
		if e.gw.Stats().OverCaptures != 0 {
			t.Errorf("stats %+v: a capture above its hold", e.gw.Stats())
		}
	})

	t.Run("models in Anthropic's shape", func(t *testing.T) {
		a := e.do("GET", "/v1/models", key, "", "anthropic-version", "2023-06-01")
		if a.status != 200 || a.get("has_more") != "false" || a.get("object") != "<missing>" || a.get("first_id") == "null" {
			t.Fatalf("%d %s", a.status, a.raw)
		}
		for _, want := range []string{`"type":"model","id":"gpt-4o-mini"`, `"id":"chat-only","display_name":"chat-only"`, `"protocols":["chat","messages"]`} {
			if !strings.Contains(a.raw, want) {
				t.Errorf("no %s in %s", want, a.raw)
			}
		}
		if b := e.do("GET", "/v1/models", "fbk_nope", "", "anthropic-version", "2023-06-01"); b.status != 401 || b.get("error", "type") != "authentication_error" {
			t.Errorf("a bad key: %d %s", b.status, b.raw)
		}
		if o := e.do("GET", "/v1/models", key, ""); o.get("object") != "list" || !strings.Contains(o.raw, `"type":"embedding","protocols":["embeddings"]`) || !strings.Contains(o.raw, `"type":"chat","protocols":["chat","messages"]`) {
			t.Errorf("OpenAI's shape: %s", o.raw)
		}
	})
}

// TestMessagesErrorsAsChat: an error on /v1/messages has the status and
// headers it has on chat, in Anthropic's shape: a store that does not
// answer is 503 with Retry-After on both (overloaded_error on Messages).
func TestMessagesErrorsAsChat(t *testing.T) {
	var ds *downStore
	e := newEnvSim(t, envOptions{wrap: func(s fb.Store) fb.Store { ds = &downStore{Store: s}; return ds }})
	key, _ := e.customer("acme", "10", nil)
	ds.down.Store(true)
	chat := e.do("POST", "/v1/chat/completions", key, chatBody(false, false, ""))
	msg := e.do("POST", "/v1/messages", key, `{"model":"gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":"Hello"}]}`)
	if chat.status != 503 || chat.header.Get("Retry-After") == "" {
		t.Fatalf("chat: %d Retry-After %q: %s", chat.status, chat.header.Get("Retry-After"), chat.raw)
	}
	if msg.status != 503 || msg.header.Get("Retry-After") != chat.header.Get("Retry-After") || msg.get("type") != "error" || msg.get("error", "type") != "overloaded_error" {
		t.Errorf("messages: %d Retry-After %q: %s; want 503, Retry-After %q, overloaded_error", msg.status, msg.header.Get("Retry-After"), msg.raw, chat.header.Get("Retry-After"))
	}
}
