package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fb "farebox"
	"farebox/gateway"
	"farebox/ledger"
	"farebox/pricing"
	"farebox/routing"
	"farebox/simulator"
)

// routerOf serves gpt-4o-mini from the given upstreams, in order.
func routerOf(t *testing.T, ds ...*routing.Deployment) *routing.Router {
	t.Helper()
	for i, d := range ds {
		if d.Name == "" {
			d.Name = fmt.Sprintf("up%d/gpt-4o-mini", i)
		}
		if d.Provider == "" {
			d.Provider = fmt.Sprintf("up%d", i)
		}
		if d.Type == "" {
			d.Type = routing.TypeOpenAI
		}
		d.Model, d.Upstream, d.Priority = "gpt-4o-mini", "gpt-4o-mini", i
	}
	r, err := routing.NewRouter(ds)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func serveUpstream(t *testing.T, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL + "/v1"
}

// TestLargeAnswerCharged: an answer larger than the gateway relays is
// not relayed, but the upstream did the work: the request is charged the
// usage at the answer's end (it was charged nothing).
func TestLargeAnswerCharged(t *testing.T) {
	lim := pricing.DefaultLimits("gpt-4o-mini")
	u := &greedy{limits: lim, pad: 4 << 10}
	e := greedyEnv(t, u, 100, gateway.Config{MaxAnswerBytes: 1 << 10}, lim, envOptions{})
	key, _ := e.customer("acme", "100", nil)
	a := e.do("POST", "/v1/chat/completions", key, chatBody(false, false, ""))
	if a.status != 502 || a.get("error", "code") != "upstream_too_large" {
		t.Fatalf("status %d %s, want 502 upstream_too_large", a.status, a.raw)
	}
	// 24 prompt tokens (cached, 1,500 a million), 100 of reasoning (3,000),
	// 5 micro-credits a request.
	want := fb.Amount(24*1500 + 100*3000 + 5)
	if got := e.account("acme").Charged; got != want {
		t.Errorf("charged %s, want %s (the usage the answer reported)", got, want)
	}
}

// slowUpstream answers a non-stream request after delay.
type slowUpstream struct {
	delay time.Duration
	greedy
}

func (s *slowUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	time.Sleep(s.delay)
	s.greedy.ServeHTTP(w, r)
}

// TestLongNonStream: a non-stream answer comes in one piece when it is
// done, so the first-byte timeout (for streams) does not cut it: it is
// bounded by the request's timeout.
func TestLongNonStream(t *testing.T) {
	u := &slowUpstream{delay: 400 * time.Millisecond, greedy: greedy{limits: pricing.DefaultLimits("gpt-4o-mini")}}
	r := routerOf(t, &routing.Deployment{BaseURL: serveUpstream(t, u), MaxOutputTokens: 100})
	e := newEnvWith(t, envOptions{cfg: gateway.Config{FirstByteTimeout: 100 * time.Millisecond, RequestTimeout: 5 * time.Second}, router: r})
	key, _ := e.customer("acme", "100", nil)
	if a := e.do("POST", "/v1/chat/completions", key, chatBody(false, false, "")); a.status != 200 {
		t.Fatalf("a 400 ms answer with a 100 ms first-byte timeout: %d %s", a.status, a.raw)
	}
	if st := r.Statuses()[0]; st.Failed != 0 || !st.Healthy {
		t.Errorf("the deployment was counted failing: %+v", st)
	}
}

// TestClientFaultsIgnored: a client's X-Farebox-Simulate reaches a
// simulated deployment only where the operator enabled faults, so no
// client can trip a deployment's breaker for every other tenant.
func TestClientFaultsIgnored(t *testing.T) {
	sim := serveUpstream(t, &simulator.Simulator{})
	r := routerOf(t, &routing.Deployment{Type: routing.TypeSimulated, BaseURL: sim})
	e := newEnvRouter(t, gateway.Config{}, r, nil)
	key, _ := e.customer("acme", "100", nil)
	for i := range 5 {
		if a := e.do("POST", "/v1/chat/completions", key, chatBody(false, false, ""), simulator.FaultHeader, "500"); a.status != 200 {
			t.Fatalf("request %d asking for a fault: %d %s", i, a.status, a.raw)
		}
	}
	if st := r.Statuses()[0]; st.Failed != 0 || !st.Healthy || st.Served != 5 {
		t.Errorf("deployment %+v, want 5 served and none failed", st)
	}
}

// TestUpstreamAuthRefusal: an upstream refusing the operator's own key
// (401/403) is a failure of the deployment, not the customer's business:
// the next deployment serves; with none left the customer gets 502
// upstream_error, never the provider's words (which quote the key), and
// the log has them.
func TestUpstreamAuthRefusal(t *testing.T) {
	for _, status := range []int{401, 403} {
		refusing := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, `{"error":{"message":"Incorrect API key provided: sk-proj-****wxyz.","type":"invalid_request_error","code":"invalid_api_key"}}`)
		})
		logs := &logBuffer{}
		good := &greedy{limits: pricing.DefaultLimits("gpt-4o-mini")}
		r := routerOf(t, &routing.Deployment{BaseURL: serveUpstream(t, refusing)}, &routing.Deployment{BaseURL: serveUpstream(t, good), MaxOutputTokens: 50})
		e := newEnvWith(t, envOptions{router: r, log: slog.New(slog.NewTextHandler(logs, nil))})
		key, _ := e.customer("acme", "100", nil)
		if a := e.do("POST", "/v1/chat/completions", key, chatBody(false, false, "")); a.status != 200 {
			t.Fatalf("%d upstream then a good one: %d %s", status, a.status, a.raw)
		}
		if st := r.Statuses(); st[0].Failed != 1 {
			t.Errorf("%d: the refusing deployment's failures %d, want 1", status, st[0].Failed)
		}
		only := routerOf(t, &routing.Deployment{BaseURL: serveUpstream(t, refusing)})
		e2 := newEnvWith(t, envOptions{router: only, log: slog.New(slog.NewTextHandler(logs, nil))})
		key2, _ := e2.customer("acme", "100", nil)
		a := e2.do("POST", "/v1/chat/completions", key2, chatBody(false, false, ""))
		if a.status != 502 || a.get("error", "type") != "upstream_error" || strings.Contains(a.raw, "sk-") || strings.Contains(a.raw, "API key") {
			t.Errorf("%d upstream alone: %d %s, want 502 upstream_error without the provider's words", status, a.status, a.raw)
		}
		if !strings.Contains(logs.String(), "sk-proj-****wxyz") {
			t.Errorf("%d: the log lacks the provider's answer: %s", status, logs.String())
		}
		if acct := e2.account("acme"); acct.Charged != 0 || ledger.Held(acct) != 0 {
			t.Errorf("%d: charged %s held %s", status, acct.Charged, ledger.Held(acct))
		}
	}
}

// TestForwardedFields: only fields that change nothing the hold does not
// bound are forwarded; anything else is refused with 400 naming it, never
// dropped — unless the operator allows it on the deployment. A
// self-hosted deployment takes images only as data: URLs.
func TestForwardedFields(t *testing.T) {
	u := &greedy{limits: pricing.DefaultLimits("gpt-4o-mini")}
	r := routerOf(t, &routing.Deployment{BaseURL: serveUpstream(t, u), MaxOutputTokens: 50})
	e := newEnvRouter(t, gateway.Config{}, r, nil)
	key, _ := e.customer("acme", "1000", nil)
	img := func(url string) string {
		return fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":%q,"detail":"low"}}]}]}`, url)
	}
	for _, c := range []struct {
		extra string
		param string // "" to be served
	}{
		{`,"service_tier":"priority"`, "service_tier"},
		{`,"service_tier":"auto"`, "service_tier"},
		{`,"service_tier":"default"`, ""},
		{`,"store":true`, "store"},
		{`,"store":false`, ""},
		{`,"modalities":["text","audio"]`, "modalities"},
		{`,"modalities":["text"]`, ""},
		{`,"audio":{"voice":"alloy","format":"wav"}`, "audio"},
		{`,"prediction":{"type":"content","content":"x"}`, "prediction"},
		{`,"web_search_options":{}`, "web_search_options"},
		{`,"made_up":1`, "made_up"},
		{`,"temperature":0.2,"top_p":1,"seed":3,"user":"u","stop":["x"],"metadata":{"a":"b"},"response_format":{"type":"json_object"},"reasoning_effort":"low","logprobs":true,"top_logprobs":2,"parallel_tool_calls":false`, ""},
	} {
		a := e.do("POST", "/v1/chat/completions", key, chatBody(false, false, c.extra))
		switch {
		case c.param == "" && a.status != 200:
			t.Errorf("%s: %d %s, want it served", c.extra, a.status, a.raw)
		case c.param != "" && (a.status != 400 || a.get("error", "param") != c.param):
			t.Errorf("%s: %d %s, want 400 naming %s", c.extra, a.status, a.raw, c.param)
		}
	}
	// The operator may allow a field on a deployment: it is forwarded.
	u2 := &greedy{limits: pricing.DefaultLimits("gpt-4o-mini")}
	r2 := routerOf(t, &routing.Deployment{BaseURL: serveUpstream(t, u2), MaxOutputTokens: 50, AllowFields: map[string]bool{"made_up": true}, Hosting: routing.HostingSelf})
	e2 := newEnvRouter(t, gateway.Config{}, r2, nil)
	key2, _ := e2.customer("acme", "1000", nil)
	if a := e2.do("POST", "/v1/chat/completions", key2, chatBody(false, false, `,"made_up":1`)); a.status != 200 || string(u2.received()["made_up"]) != "1" {
		t.Errorf("an allowed field: %d %s; upstream got %s", a.status, a.raw, u2.received()["made_up"])
	}
	// Self-hosted: an image URL it would fetch inside the network is
	// refused; a data: URL is served. A provider-hosted one fetches any.
	if a := e2.do("POST", "/v1/chat/completions", key2, img("http://10.0.0.1/admin")); a.status != 400 || a.get("error", "param") != "messages[0].content[0].image_url.url" {
		t.Errorf("a remote image URL to a self-hosted deployment: %d %s", a.status, a.raw)
	}
	if a := e2.do("POST", "/v1/chat/completions", key2, img("data:image/png;base64,iVBORw0KGgo=")); a.status != 200 {
		t.Errorf("a data: image URL to a self-hosted deployment: %d %s", a.status, a.raw)
	}
	if a := e.do("POST", "/v1/chat/completions", key, img("https://example.com/cat.png")); a.status != 200 {
		t.Errorf("a remote image URL to a provider: %d %s", a.status, a.raw)
	}
	// Embeddings take their own fields.
	if a := e.do("POST", "/v1/embeddings", key, `{"model":"text-embedding-3-small","input":"x","made_up":1}`); a.status != 400 && a.status != 404 {
		t.Errorf("an unknown embeddings field: %d %s", a.status, a.raw)
	}
}

// scripted is an upstream stream the test paces: each value sent on
// next is written as one event (a delta of that text; "" ends the stream
// with its usage). sent reports each event written.
type scripted struct {
	next  chan string
	sent  chan struct{}
	usage string // the usage chunk's object
	stop  chan struct{}
	once  sync.Once
}

func newScripted(t *testing.T, buffer int, usage string) *scripted {
	return &scripted{next: make(chan string, buffer), sent: make(chan struct{}, max(buffer, 1)), usage: usage, stop: make(chan struct{})}
}

// halt ends the stream, so that a failed test does not leave the gateway
// and the test's servers waiting on it: register it after the env.
func (s *scripted) halt() { s.once.Do(func() { close(s.stop) }) }

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	rc := http.NewResponseController(w)
	rc.Flush()
	for {
		var text string
		select {
		case t, ok := <-s.next:
			if !ok {
				return
			}
			text = t
		case <-s.stop:
			return
		}
		if text == "" {
			fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":%s}\n\ndata: [DONE]\n\n", s.usage)
			rc.Flush()
			s.sent <- struct{}{}
			return
		}
		b, _ := json.Marshal(text)
		if _, err := fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%s}}]}\n\n", b); err != nil {
			return
		}
		rc.Flush()
		s.sent <- struct{}{}
	}
}

// TestStreamHoldExtended: a stream running past its hold's first life
// (the request timeout and a minute) has its hold extended while it runs,
// so no sweep releases the credit under it; it settles as usual. Time is
// the test's clock.
func TestStreamHoldExtended(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	up := newScripted(t, 0, `{"prompt_tokens":11,"completion_tokens":3}`)
	r := routerOf(t, &routing.Deployment{BaseURL: serveUpstream(t, up), MaxOutputTokens: 100})
	e := newEnvWith(t, envOptions{router: r, now: clk.Now})
	t.Cleanup(up.halt)
	key, _ := e.customer("acme", "100", nil)
	done := make(chan answer, 1)
	go func() { done <- e.do("POST", "/v1/chat/completions", key, chatBody(true, true, "")) }()
	up.next <- " one"
	<-up.sent
	// The hold, once committed (it was answered before its commit).
	hold := func() *fb.Hold {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			for _, h := range e.account("acme").Holds {
				return h
			}
		}
		t.Fatal("no hold pending")
		return nil
	}
	first := hold().ExpiresAt
	clk.Advance(6 * time.Minute)
	up.next <- " two"
	<-up.sent
	for deadline := time.Now().Add(5 * time.Second); !hold().ExpiresAt.After(first); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the hold still expires at %s after the stream ran 6 minutes", first)
		}
	}
	// Past the hold's first expiry, a sweep leaves it alone.
	clk.Advance(6 * time.Minute)
	if _, err := e.engine.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h := hold(); h.Status != fb.HoldPending {
		t.Fatalf("hold %s after the sweep", h.Status)
	}
	up.next <- " three"
	<-up.sent
	up.next <- ""
	<-up.sent
	a := <-done
	if a.status != 200 || a.trailer.Get("X-Farebox-Cost") != cost(11, 3).String() {
		t.Fatalf("status %d, cost %q, want %s: %s", a.status, a.trailer.Get("X-Farebox-Cost"), cost(11, 3), a.raw)
	}
	acct := e.account("acme")
	if acct.Charged != cost(11, 3) || acct.Uncollected != 0 || ledger.Held(acct) != 0 {
		t.Errorf("charged %s uncollected %s held %s", acct.Charged, acct.Uncollected, ledger.Held(acct))
	}
}

// flood streams big deltas as fast as the client takes them, then its
// usage.
type flood struct{ deltas int }

func (f flood) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	big := strings.Repeat("x", 16<<10)
	for range f.deltas {
		if _, err := fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", big); err != nil {
			return
		}
	}
	fmt.Fprintf(w, "data: [DONE]\n\n")
}

// TestSlowReader: a client that stops reading a stream is a client that
// left. Its handler does not block for ever with its hold (which would
// expire and free the credit while the upstream still served it): a
// write past the write timeout ends the relay, and the request settles.
func TestSlowReader(t *testing.T) {
	r := routerOf(t, &routing.Deployment{BaseURL: serveUpstream(t, flood{deltas: 4000}), MaxOutputTokens: 1 << 30})
	e := newEnvWith(t, envOptions{router: r, cfg: gateway.Config{WriteTimeout: 300 * time.Millisecond, DrainTimeout: time.Second}})
	key, _ := e.customer("acme", "100000", nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := chatBody(true, false, "")
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", key, len(body), body)
	// Read the headers and one event, then read nothing more.
	rd := bufio.NewReader(conn)
	if line, err := rd.ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("status line %q %v", line, err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		a := e.account("acme")
		if ledger.Held(a) == 0 && a.Charged > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream to a client that stopped reading has not settled: held %s", ledger.Held(a))
		}
	}
	rows, err := e.store.Usage(context.Background(), fb.UsageFilter{Customer: "acme", GroupBy: "status"})
	if err != nil || len(rows) != 1 || rows[0].Key != gateway.StatusClientGone {
		t.Errorf("usage by status %+v %v, want one %s", rows, err, gateway.StatusClientGone)
	}
}

// TestStreamUsageAfterClientLeft: after the client left mid-stream, the
// gateway reads the upstream on to its usage and charges that — the
// provider's bill — not its own estimate of four bytes a token, which is
// low for scripts whose every character is a token.
func TestStreamUsageAfterClientLeft(t *testing.T) {
	up := newScripted(t, 64, `{"prompt_tokens":11,"completion_tokens":80}`)
	r := routerOf(t, &routing.Deployment{BaseURL: serveUpstream(t, up), MaxOutputTokens: 100})
	e := newEnvRouter(t, gateway.Config{}, r, nil)
	t.Cleanup(up.halt)
	key, _ := e.customer("acme", "100", nil)
	req, _ := http.NewRequest("POST", e.url+"/v1/chat/completions", strings.NewReader(chatBody(true, false, "")))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := e.client.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d %s", resp.StatusCode, b)
	}
	for range 5 {
		up.next <- "字字字字" // 12 bytes: 3 tokens by the estimate, 4 in fact
		<-up.sent
	}
	cancel()
	resp.Body.Close()
	for range 15 {
		up.next <- "字字字字"
	}
	up.next <- ""
	close(up.next)
	var rows []fb.UsageRow
	for deadline := time.Now().Add(10 * time.Second); len(rows) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not settled")
		}
		rows, _ = e.store.Usage(context.Background(), fb.UsageFilter{Customer: "acme", GroupBy: "status"})
	}
	acct := e.account("acme")
	if got, want := acct.Charged, cost(11, 80); got != want || ledger.Held(acct) != 0 || rows[0].Key != gateway.StatusClientGone {
		t.Errorf("charged %s (held %s, usage %+v), want %s: the upstream's usage, read after the client left", got, ledger.Held(acct), rows, want)
	}
}

// TestConcurrencyCapAndRateBeforeBody: a customer's requests in flight
// may be bounded (429 with Retry-After past it); and a request past the
// plan's requests per minute is refused before its body is read — a
// client that declares a body and never sends it is answered at once.
func TestConcurrencyCapAndRateBeforeBody(t *testing.T) {
	up := newScripted(t, 0, `{"prompt_tokens":1,"completion_tokens":1}`)
	r := routerOf(t, &routing.Deployment{BaseURL: serveUpstream(t, up), MaxOutputTokens: 100})
	e := newEnvRouter(t, gateway.Config{MaxConcurrentPerCustomer: 1}, r, nil)
	t.Cleanup(up.halt)
	key, _ := e.customer("acme", "100", nil)
	done := make(chan answer, 1)
	go func() { done <- e.do("POST", "/v1/chat/completions", key, chatBody(true, false, "")) }()
	up.next <- " a"
	<-up.sent
	a := e.do("POST", "/v1/chat/completions", key, chatBody(false, false, ""))
	if a.status != 429 || a.get("error", "code") != "concurrency_limited" || a.header.Get("Retry-After") == "" {
		t.Errorf("a second request at once: %d %s", a.status, a.raw)
	}
	up.next <- ""
	<-up.sent
	if a := <-done; a.status != 200 {
		t.Fatalf("first: %d %s", a.status, a.raw)
	}

	plan := &fb.Plan{ID: "slow", Name: "Slow", Period: fb.PeriodMonth, Models: []string{"*"}, RPM: 1}
	key2, _ := e.customer("slowpoke", "100", plan)
	go func() { up.next <- "" }()
	if a := e.do("POST", "/v1/chat/completions", key2, chatBody(true, false, "")); a.status != 200 {
		t.Fatalf("the minute's one request: %d %s", a.status, a.raw)
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", key2)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(line, "429") {
		t.Errorf("past the rate with a body never sent: %q %v, want 429 at once", line, err)
	}
}

// TestKeyLookupRacingRevocation: a key read just before its revocation and
// cached just after it must not come back as valid (finding 15).
func TestKeyLookupRacingRevocation(t *testing.T) {
	slow := &slowKeys{entered: make(chan struct{}), release: make(chan struct{})}
	e := newEnvWith(t, envOptions{wrap: func(s fb.Store) fb.Store { slow.Store = s; return slow }})
	key, id := e.customer("acme", "10", nil)
	slow.armed.Store(true)
	done := make(chan answer, 1)
	go func() { done <- e.do("GET", "/v1/account/balance", key, "") }()
	<-slow.entered // the lookup has read the key, not yet cached it
	req, _ := http.NewRequest("DELETE", e.url+"/api/v1/keys/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := e.client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	resp.Body.Close()
	close(slow.release)
	<-done
	if a := e.do("GET", "/v1/account/balance", key, ""); a.status != 401 {
		t.Errorf("the revoked key after a lookup that raced its revocation: %d %s", a.status, a.raw)
	}
}

// slowKeys, once armed, holds the next key lookup between reading and
// returning.
type slowKeys struct {
	fb.Store
	armed            atomic.Bool
	entered, release chan struct{}
}

func (s *slowKeys) KeyByHash(ctx context.Context, hash []byte) (fb.APIKey, error) {
	k, err := s.Store.KeyByHash(ctx, hash)
	if s.armed.CompareAndSwap(true, false) {
		close(s.entered)
		<-s.release
	}
	return k, err
}

// downStore is a store whose writes fail while down, as a database that
// stopped answering.
type downStore struct {
	fb.Store
	down atomic.Bool
}

func (s *downStore) Write(ctx context.Context, fn func(fb.WriteTx) error) error {
	if s.down.Load() {
		return fmt.Errorf("injected: the database does not answer")
	}
	return s.Store.Write(ctx, fn)
}

// TestStoreDownMidStream: the store stops answering in the middle of a
// stream and stays down two minutes (the test's clock), longer than a
// settlement may be retried. The stream is delivered; its charge waits in
// the spool and is applied, exactly, once the store is back.
func TestStoreDownMidStream(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	var ds *downStore
	up := newScripted(t, 0, `{"prompt_tokens":11,"completion_tokens":3}`)
	r := routerOf(t, &routing.Deployment{BaseURL: serveUpstream(t, up), MaxOutputTokens: 100})
	e := newEnvWith(t, envOptions{router: r, now: clk.Now, cfg: gateway.Config{SettleRetry: 200 * time.Millisecond},
		wrap: func(s fb.Store) fb.Store { ds = &downStore{Store: s}; return ds }})
	t.Cleanup(up.halt)
	key, _ := e.customer("acme", "100", nil)
	done := make(chan answer, 1)
	go func() { done <- e.do("POST", "/v1/chat/completions", key, chatBody(true, true, "")) }()
	for _, d := range []string{" one", " two", " three"} {
		up.next <- d
		<-up.sent
	}
	for deadline := time.Now().Add(5 * time.Second); len(e.account("acme").Holds) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the hold never committed")
		}
	}
	ds.down.Store(true)
	up.next <- ""
	<-up.sent
	a := <-done
	s := summarize(t, a.events)
	want := cost(11, 3)
	if a.status != 200 || s.deltas != 3 || !s.done || s.usage == nil || s.usage["cost"] != want.String() || s.usage["balance"] != nil {
		t.Fatalf("the stream: %d, %d deltas, done %v, usage %v; want it whole, costing %s, balance unknown (null)", a.status, s.deltas, s.done, s.usage, want)
	}
	if a.trailer.Get("X-Farebox-Cost") != want.String() {
		t.Errorf("trailer cost %q, want %s", a.trailer.Get("X-Farebox-Cost"), want)
	}
	if n := len(e.app.Spool.Pending()); n != 1 || e.gw.Stats().Spooled != 1 {
		t.Fatalf("%d settlements in the spool, stats %+v; want the one", n, e.gw.Stats())
	}
	clk.Advance(2 * time.Minute)
	if n, err := e.gw.SettleSpooled(context.Background()); err == nil || n != 0 {
		t.Fatalf("applied %d while the store is down (%v)", n, err)
	}
	ds.down.Store(false)
	if n, err := e.gw.SettleSpooled(context.Background()); err != nil || n != 1 {
		t.Fatalf("applied %d, %v; want the one", n, err)
	}
	acct := e.account("acme")
	if acct.Charged != want || acct.Uncollected != 0 || ledger.Held(acct) != 0 {
		t.Errorf("charged %s uncollected %s held %s; want %s, 0, 0", acct.Charged, acct.Uncollected, ledger.Held(acct), want)
	}
	if n := len(e.app.Spool.Pending()); n != 0 {
		t.Errorf("%d left in the spool", n)
	}
	rows, err := e.store.Usage(context.Background(), fb.UsageFilter{Customer: "acme", GroupBy: "status"})
	if err != nil || len(rows) != 1 || rows[0].Key != gateway.StatusOK || rows[0].Credits != want {
		t.Errorf("usage %+v %v, want one ok row of %s", rows, err, want)
	}
	rep, err := ledger.Verify(context.Background(), e.store)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %v", err, rep.Problems)
	}
}
