package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/gateway"
	"farebox/ledger"
	"farebox/pricing"
	"farebox/routing"
)

// greedyRates price what greedy reports at its dearest: cached input and
// reasoning above input and output, and something per request.
var greedyRates = fb.Rates{InputPerMTok: 1000 * fb.Micro, CachedInputPerMTok: 1500 * fb.Micro, OutputPerMTok: 2000 * fb.Micro, ReasoningPerMTok: 3000 * fb.Micro, PerRequest: 5}

// greedyEnv is an env whose gpt-4o-mini is served by u alone, with an
// output limit of maxOut, at greedyRates.
func greedyEnv(t *testing.T, u *greedy, maxOut int64, cfg gateway.Config, limits pricing.Limits, o envOptions) *env {
	t.Helper()
	up := httptest.NewServer(u)
	t.Cleanup(up.Close)
	router, err := routing.NewRouter([]*routing.Deployment{{Name: "greedy/gpt-4o-mini", Provider: "greedy", Type: routing.TypeOpenAI,
		Model: "gpt-4o-mini", Upstream: "gpt-4o-mini-up", BaseURL: up.URL + "/v1", MaxOutputTokens: maxOut, Limits: limits,
		Cost: routing.CostCard{InputPerMTok: 150_000, OutputPerMTok: 600_000}}})
	if err != nil {
		t.Fatal(err)
	}
	o.cfg, o.router = cfg, router
	o.prices = map[string]fb.Rates{"gpt-4o-mini": greedyRates}
	return newEnvWith(t, o)
}

// shape draws a random chat request: text in several scripts, image parts
// of every detail (data: and remote URLs), audio and files, tools, no cap
// field or either or both, n, stream or not. bad reports a part type the
// gateway must refuse.
func shape(rng *rand.Rand) (body string, bad bool) {
	words := []string{"hello", "world", "漢字", "テスト", "🙂", "ø", "naïve", `"q"`, "tab\t", "x"}
	text := func() string {
		var b strings.Builder
		for range rng.IntN(40) {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		return b.String()
	}
	str := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	var msgs []string
	for range 1 + rng.IntN(4) {
		role := []string{"system", "user", "assistant", "user"}[rng.IntN(4)]
		if rng.IntN(3) == 0 {
			msgs = append(msgs, fmt.Sprintf(`{"role":%q,"content":%s}`, role, str(text())))
			continue
		}
		var parts []string
		for range 1 + rng.IntN(4) {
			switch rng.IntN(9) {
			case 0, 1:
				parts = append(parts, fmt.Sprintf(`{"type":"text","text":%s}`, str(text())))
			case 2, 3, 4:
				detail := []string{"", `,"detail":"low"`, `,"detail":"high"`, `,"detail":"auto"`}[rng.IntN(4)]
				url := []string{"data:image/png;base64,iVBORw0KGgo=", "https://example.com/cat.png"}[rng.IntN(2)]
				parts = append(parts, fmt.Sprintf(`{"type":"image_url","image_url":{"url":%q%s}}`, url, detail))
			case 5:
				data := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, rng.IntN(3000)))
				parts = append(parts, fmt.Sprintf(`{"type":"input_audio","input_audio":{"data":%q,"format":"wav"}}`, data))
			case 6:
				parts = append(parts, `{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0="}}`)
			case 7:
				parts = append(parts, fmt.Sprintf(`{"type":"refusal","refusal":%s}`, str(text())))
			default:
				if rng.IntN(4) == 0 {
					parts = append(parts, `{"type":"video_url","video_url":{"url":"https://example.com/v.mp4"}}`)
					bad = true
				} else {
					parts = append(parts, fmt.Sprintf(`{"type":"text","text":%s}`, str(text())))
				}
			}
		}
		msgs = append(msgs, fmt.Sprintf(`{"role":%q,"content":[%s]}`, role, strings.Join(parts, ",")))
	}
	b := `{"model":"gpt-4o-mini","messages":[` + strings.Join(msgs, ",") + `]`
	switch rng.IntN(4) {
	case 1:
		b += fmt.Sprintf(`,"max_tokens":%d`, 1+rng.IntN(200))
	case 2:
		b += fmt.Sprintf(`,"max_completion_tokens":%d`, 1+rng.IntN(200))
	case 3:
		b += fmt.Sprintf(`,"max_tokens":%d,"max_completion_tokens":%d`, 1+rng.IntN(200), 1+rng.IntN(200))
	}
	if n := rng.IntN(4); n > 0 {
		b += fmt.Sprintf(`,"n":%d`, n)
	}
	if rng.IntN(4) == 0 {
		b += `,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string"}}}}}]`
	}
	if rng.IntN(2) == 0 {
		b += `,"stream":true`
		if rng.IntN(2) == 0 {
			b += `,"stream_options":{"include_usage":true}`
		}
	}
	return b + "}", bad
}

// TestWorstCaseHoldsEveryShape is the gateway's promise as a property: for
// random request shapes, sent concurrently by customers with random
// balances, against an upstream that bills the most its answer allows,
// no request is charged above its hold — nothing is uncollected, no debt,
// nothing left held, no capture above a hold counted — every charge
// announced is the one taken, and the ledger verifies.
func TestWorstCaseHoldsEveryShape(t *testing.T) {
	lim := pricing.DefaultLimits("gpt-4o-mini")
	u := &greedy{limits: lim}
	e := greedyEnv(t, u, 64, gateway.Config{}, lim, envOptions{})
	holdsEveryShape(t, e, "/v1/chat/completions", shape, 50, 1)
}

// holdsEveryShape is the property over the request shapes shape draws
// for path: 8 customers with random balances (drawn from seed) each send
// each requests at once; a shape marked bad must be refused (400); then
// nothing is uncollected, in debt or left held, no capture is above its
// hold, the ledger charged exactly what the answers announced, and it
// verifies.
func holdsEveryShape(t *testing.T, e *env, path string, shape func(*rand.Rand) (string, bool), each int, seed uint64) {
	t.Helper()
	const workers = 8
	var (
		mu        sync.Mutex
		announced fb.Amount
		statuses  = map[int]int{}
	)
	keys := make([]string, workers)
	var granted fb.Amount
	rng0 := rand.New(rand.NewPCG(seed, seed+1))
	for w := range workers {
		credits := []string{"0.05", "5", "300", "3000", "30000"}[rng0.IntN(5)]
		keys[w], _ = e.customer(fmt.Sprintf("c%d", w), credits, nil)
		granted += mustAmount(t, credits)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 98+seed))
			for range each {
				body, bad := shape(rng)
				a := e.do("POST", path, keys[w], body)
				mu.Lock()
				statuses[a.status]++
				mu.Unlock()
				switch {
				case bad && a.status != 400:
					t.Errorf("a part that cannot be bounded was not refused: %d %s for %s", a.status, a.raw, body)
				case a.status == 200:
					c := a.header.Get("X-Farebox-Cost")
					if c == "" {
						c = a.trailer.Get("X-Farebox-Cost")
					}
					mu.Lock()
					announced += mustAmount(t, c)
					mu.Unlock()
				case a.status != 400 && a.status != 402:
					t.Errorf("status %d: %s", a.status, a.raw)
				}
			}
		})
	}
	wg.Wait()
	var charged, left fb.Amount
	for w := range workers {
		acct := e.account(fmt.Sprintf("c%d", w))
		if acct.Uncollected != 0 || acct.Debt != 0 || ledger.Held(acct) != 0 {
			t.Errorf("c%d: uncollected %s, debt %s, held %s; want all 0", w, acct.Uncollected, acct.Debt, ledger.Held(acct))
		}
		charged += acct.Charged
		left += ledger.Available(acct, time.Now())
	}
	if st := e.gw.Stats(); st.OverCaptures != 0 {
		t.Errorf("%d requests cost more than their holds (by %s)", st.OverCaptures, st.OverCaptureCredits)
	}
	if charged != announced || charged+left != granted {
		t.Errorf("charged %s, announced %s; charged + left %s, granted %s", charged, announced, charged+left, granted)
	}
	if statuses[200] < workers*each/5 {
		t.Errorf("only %d of %d requests served: the property was hardly tried (%v)", statuses[200], workers*each, statuses)
	}
	t.Logf("statuses %v; charged %s of %s", statuses, charged, granted)
	rep, err := ledger.Verify(context.Background(), e.store)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %v", err, rep.Problems)
	}
}

// price puts a later version of model's card, in force from now on.
func (e *env) price(model string, r fb.Rates) {
	e.t.Helper()
	if err := e.store.PutPrice(context.Background(), fb.Price{Model: model, Rates: r, EffectiveFrom: pricing.DefaultEffective.Add(time.Hour), CreatedAt: time.Now()}); err != nil {
		e.t.Fatal(err)
	}
}

// listRates is gpt-4o-mini's 2025 list price at 100 credits a dollar.
var listRates = fb.Rates{InputPerMTok: 15 * fb.Micro, CachedInputPerMTok: 7_500_000, OutputPerMTok: 60 * fb.Micro, ReasoningPerMTok: 60 * fb.Micro}

func imageBody(n int, detail string) string {
	parts := []string{`{"type":"text","text":"What is in these?"}`}
	for range n {
		parts = append(parts, fmt.Sprintf(`{"type":"image_url","image_url":{"url":"https://example.com/big.png","detail":%q}}`, detail))
	}
	return `{"model":"gpt-4o-mini","messages":[{"role":"user","content":[` + strings.Join(parts, ",") + `]}]}`
}

// TestImagesHeldAtTheirMost is the review's reproduction: a balance of 0.5
// credits and ten image parts to gpt-4o-mini, whose provider bills 48,169
// tokens for each at high detail. Held at 2,000 tokens an image, the
// request ran and 6.73 credits went uncollected; held at the model's most
// it is refused. At low detail (2,833 each) it fits, and is charged
// within its hold.
func TestImagesHeldAtTheirMost(t *testing.T) {
	lim := pricing.DefaultLimits("gpt-4o-mini")
	u := &greedy{limits: lim}
	e := greedyEnv(t, u, 4096, gateway.Config{}, lim, envOptions{})
	e.price("gpt-4o-mini", listRates)
	key, _ := e.customer("acme", "0.5", nil)
	for _, detail := range []string{"high", "auto"} {
		a := e.do("POST", "/v1/chat/completions", key, imageBody(10, detail))
		if a.status != 402 {
			t.Errorf("10 images at %s detail on 0.5 credits: %d %s, want 402", detail, a.status, a.raw)
		}
	}
	a := e.do("POST", "/v1/chat/completions", key, imageBody(10, "low"))
	if a.status != 200 {
		t.Fatalf("10 images at low detail: %d %s", a.status, a.raw)
	}
	acct := e.account("acme")
	if acct.Uncollected != 0 || acct.Debt != 0 || acct.Charged != mustAmount(t, a.get("usage", "cost")) || acct.Charged > mustAmount(t, "0.5") {
		t.Errorf("charged %s, uncollected %s, debt %s; want the announced cost %s, within the 0.5 held", acct.Charged, acct.Uncollected, acct.Debt, a.get("usage", "cost"))
	}
	if got, want := a.get("usage", "prompt_tokens"), fmt.Sprint(4+len("What is in these?")+10*2833); got != want {
		t.Errorf("billed prompt %s, want %s (10 images at 2,833)", got, want)
	}
	// A part of a type the gateway cannot bound is refused, naming it.
	bad := e.do("POST", "/v1/chat/completions", key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"video_url","video_url":{"url":"x"}}]}]}`)
	if bad.status != 400 || bad.get("error", "param") != "messages[0].content[0].type" {
		t.Errorf("an unknown part type: %d %s", bad.status, bad.raw)
	}
	if e.gw.Stats().OverCaptures != 0 {
		t.Errorf("over-captures: %+v", e.gw.Stats())
	}
}

// TestFilesHeldAtTheContextWindow: a file's tokens are the provider's to
// count, so a file part is held at the whole context window — or refused
// where the window is not configured.
func TestFilesHeldAtTheContextWindow(t *testing.T) {
	file := `{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-abc"}}]}]}`
	noWindow := pricing.Limits{Image: pricing.MaxImageTokens}
	u := &greedy{limits: pricing.Limits{Image: pricing.MaxImageTokens, ContextWindow: 1000}}
	e := greedyEnv(t, u, 4096, gateway.Config{}, noWindow, envOptions{})
	key, _ := e.customer("acme", "100", nil)
	if a := e.do("POST", "/v1/chat/completions", key, file); a.status != 400 || a.get("error", "param") != "messages[0].content[0]" {
		t.Errorf("a file without a context window: %d %s", a.status, a.raw)
	}
	e2 := greedyEnv(t, u, 4096, gateway.Config{}, u.limits, envOptions{})
	key2, _ := e2.customer("acme", "100", nil)
	// 1,000 tokens of input at the dearest input rate (1,500 a million),
	// 10 of output at 3,000, and 5 micro-credits: 1.535005.
	a := e2.do("POST", "/v1/chat/completions", key2, file)
	if a.status != 200 {
		t.Fatalf("a file with a context window of 1,000: %d %s", a.status, a.raw)
	}
	if got, want := a.get("usage", "cost"), "1.530005"; got != want {
		t.Errorf("cost %s, want %s: the window's 1,000 tokens cached and 10 of reasoning", got, want)
	}
	if acct := e2.account("acme"); acct.Uncollected != 0 || e2.gw.Stats().OverCaptures != 0 {
		t.Errorf("uncollected %s, stats %+v", acct.Uncollected, e2.gw.Stats())
	}
}

// TestCapFields: with both max_tokens and max_completion_tokens, and n > 1,
// the cap the balance pays for is written into both (an upstream may
// honour either); the client's own caps, when smaller, stay.
func TestCapFields(t *testing.T) {
	lim := pricing.DefaultLimits("gpt-4o-mini")
	u := &greedy{limits: lim}
	e := greedyEnv(t, u, 16384, gateway.Config{}, lim, envOptions{})
	e.price("gpt-4o-mini", listRates)
	key, _ := e.customer("acme", "0.1", nil)
	body := `{"model":"gpt-4o-mini","n":2,"max_tokens":1637,"max_completion_tokens":16001,"messages":[{"role":"user","content":"Write a long story."}]}`
	for _, stream := range []bool{false, true} {
		b := body
		if stream {
			b = strings.Replace(b, `"n":2`, `"n":2,"stream":true`, 1)
		}
		a := e.do("POST", "/v1/chat/completions", key, b)
		if a.status != 200 {
			t.Fatalf("status %d %s", a.status, a.raw)
		}
		got := u.received()
		if string(got["max_tokens"]) != string(got["max_completion_tokens"]) || string(got["max_tokens"]) == "1637" {
			t.Errorf("stream=%v: upstream got max_tokens %s and max_completion_tokens %s; want both the held cap", stream, got["max_tokens"], got["max_completion_tokens"])
		}
		acct := e.account("acme")
		if acct.Uncollected != 0 || acct.Debt != 0 {
			t.Errorf("stream=%v: uncollected %s debt %s", stream, acct.Uncollected, acct.Debt)
		}
		if _, err := e.engine.Submit(context.Background(), fb.Op{Kind: fb.OpGrant, Customer: "acme", Amount: acct.Charged, Source: fb.SourcePromo}); err != nil {
			t.Fatal(err)
		}
	}
	// A balance that pays for everything keeps the client's own caps.
	key2, _ := e.customer("rich", "10000", nil)
	if a := e.do("POST", "/v1/chat/completions", key2, `{"model":"gpt-4o-mini","max_tokens":7,"max_completion_tokens":9,"messages":[{"role":"user","content":"x"}]}`); a.status != 200 {
		t.Fatalf("rich: %d %s", a.status, a.raw)
	}
	if got := u.received(); string(got["max_tokens"]) != "7" || string(got["max_completion_tokens"]) != "7" {
		t.Errorf("rich: upstream got max_tokens %s max_completion_tokens %s; want the smaller, 7, in both", got["max_tokens"], got["max_completion_tokens"])
	}
	// Without a cap field the deployment's own is sent.
	if a := e.do("POST", "/v1/chat/completions", key2, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]}`); a.status != 200 {
		t.Fatalf("no cap: %d %s", a.status, a.raw)
	}
	if got := u.received(); string(got["max_completion_tokens"]) != "16384" || got["max_tokens"] != nil {
		t.Errorf("no cap: upstream got max_tokens %s max_completion_tokens %s; want only max_completion_tokens 16384", got["max_tokens"], got["max_completion_tokens"])
	}
	if e.gw.Stats().OverCaptures != 0 {
		t.Errorf("over-captures: %+v", e.gw.Stats())
	}
}

// logBuffer is a concurrency-safe log destination for tests.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestOverCaptureCounted: an upstream that bills past the cap it was sent
// is a hole the worst case cannot see. The request is charged its hold
// and no more, and the excess is counted and logged with the request id.
func TestOverCaptureCounted(t *testing.T) {
	lim := pricing.DefaultLimits("gpt-4o-mini")
	u := &greedy{limits: lim, ignoreCap: 100_000}
	logs := &logBuffer{}
	e := greedyEnv(t, u, 100, gateway.Config{}, lim, envOptions{log: slog.New(slog.NewJSONHandler(logs, nil))})
	key, _ := e.customer("acme", "1000", nil)
	for _, stream := range []bool{false, true} {
		a := e.do("POST", "/v1/chat/completions", key, chatBody(stream, stream, ""), "X-Request-Id", fmt.Sprintf("req-over-%v", stream))
		if a.status != 200 {
			t.Fatalf("status %d %s", a.status, a.raw)
		}
		if !strings.Contains(logs.String(), fmt.Sprintf(`"request_id":"req-over-%v"`, stream)) {
			t.Errorf("stream=%v: no error log naming the request: %s", stream, logs.String())
		}
	}
	st := e.gw.Stats()
	acct := e.account("acme")
	if st.OverCaptures != 2 || st.OverCaptureCredits <= 0 {
		t.Errorf("stats %+v, want 2 over-captures", st)
	}
	if acct.Uncollected != 0 || acct.Debt != 0 {
		t.Errorf("uncollected %s debt %s; the excess must not be charged", acct.Uncollected, acct.Debt)
	}
}
