package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	fb "farebox"
	"farebox/gateway"
	"farebox/pricing"
	"farebox/routing"
	"farebox/simulator"
)

// admin calls the management API with the admin token and decodes the
// answer; a status of 300 or more fails the test unless it is want.
func (e *env) admin(method, path, body string) map[string]any {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	if resp.StatusCode >= 300 {
		e.t.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, m)
	}
	return m
}

// sponsoredEnv is a Farebox with a free plan that carries sponsored
// suggestions, a customer "free" on it (promo credits: no revenue of its
// own), and an advertiser "shop" that bought 1,000 credits for $10 and
// runs a laptops campaign: 0.5 credits ($0.005) an impression, 2 ($0.02) a
// click.
func sponsoredEnv(t *testing.T, budget string, cap int) (*env, string) {
	t.Helper()
	e := newEnv(t, gateway.Config{})
	return e, sponsor(e, budget, cap)
}

// sponsor sets up sponsoredEnv's plan, customer, advertiser and campaign
// in e, and returns the free customer's key.
func sponsor(e *env, budget string, cap int) string {
	e.t.Helper()
	key, _ := e.customer("free", "100000", &fb.Plan{ID: "free", Name: "Free", Period: fb.PeriodMonth, Models: []string{"*"}, Sponsored: true})
	e.admin("POST", "/api/v1/advertisers", `{"id":"shop","name":"Shop"}`)
	e.admin("POST", "/api/v1/customers/shop/grants", `{"amount":"1000","source":"purchase","paid_usd":"10"}`)
	e.admin("POST", "/api/v1/campaigns", fmt.Sprintf(`{"id":"laptops","advertiser":"shop","topics":["laptops"],
		"phrases":["laptop","notebook","bærbar pc"],"title":"Laptops at Shop","text":"Every laptop, tested.",
		"url":"https://shop.example/laptops","bid_per_impression":"0.5","bid_per_click":"2","daily_budget":%q,
		"frequency_cap_per_user_per_day":%d}`, budget, cap))
	return key
}

const laptopQuestion = "Which laptop should I buy for university?"

func askBody(text string, stream, usage bool, extra string) string {
	b, _ := json.Marshal(text)
	body := `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":` + string(b) + `}]`
	if stream {
		body += `,"stream":true`
	}
	if usage {
		body += `,"stream_options":{"include_usage":true}`
	}
	return body + extra + "}"
}

// suggestionOf is a response's suggestion: the non-stream body's
// farebox_suggestion, or the one chunk of a stream that carries one (which
// must be the last before [DONE]).
func suggestionOf(t *testing.T, a answer) map[string]any {
	t.Helper()
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.raw)
	}
	if a.events == nil {
		s, _ := a.body[gateway.SuggestionField].(map[string]any)
		return s
	}
	var found map[string]any
	model := "" // the stream's, as its first chunk names it
	for i, ev := range a.events {
		if ev == "[DONE]" {
			continue
		}
		var c map[string]any
		if err := json.Unmarshal([]byte(ev), &c); err != nil {
			t.Fatalf("event %q: %v", ev, err)
		}
		if model == "" {
			model, _ = c["model"].(string)
		}
		s, ok := c[gateway.SuggestionField].(map[string]any)
		if !ok {
			continue
		}
		if found != nil {
			t.Fatal("two suggestions in one stream")
		}
		if i != len(a.events)-2 || a.events[len(a.events)-1] != "[DONE]" {
			t.Errorf("the suggestion is event %d of %d, want the last before [DONE]", i, len(a.events))
		}
		if c["object"] != "chat.completion.chunk" || c["id"] == "" || c["model"] != model || c["created"] == nil {
			t.Errorf("suggestion chunk %s is not shaped like a chunk", ev)
		}
		if ch, ok := c["choices"].([]any); !ok || len(ch) != 0 {
			t.Errorf("suggestion chunk %s has choices", ev)
		}
		found = s
	}
	return found
}

func (e *env) stats(campaign string) map[string]any {
	e.t.Helper()
	return e.admin("GET", "/api/v1/campaigns/"+campaign+"/stats", "")
}

// charged is a campaign's stats once it has charged impressions: an
// impression is charged just after its response reached the client, so the
// client may read it a moment before the charge commits.
func (e *env) charged(campaign string, impressions int) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := e.stats(campaign)
		if st["impressions"] == float64(impressions) || time.Now().After(deadline) {
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSponsoredSuggestion: a decision moment on a sponsored plan carries
// one labelled suggestion beside the model's answer, stream or not, and is
// charged once delivered; other requests carry none.
func TestSponsoredSuggestion(t *testing.T) {
	e, key := sponsoredEnv(t, "100", 0)
	for _, tc := range []struct {
		name          string
		stream, usage bool
	}{{"non-stream", false, false}, {"stream", true, false}, {"stream with usage", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.do("POST", "/v1/chat/completions", key, askBody(laptopQuestion, tc.stream, tc.usage, ""), simulator.TokensHeader, "8")
			s := suggestionOf(t, a)
			if s == nil {
				t.Fatalf("no suggestion: %s", a.raw)
			}
			if s["label"] != "Sponsored" || s["title"] != "Laptops at Shop" || s["text"] != "Every laptop, tested." ||
				!strings.HasPrefix(s["id"].(string), "sug_") || !strings.HasPrefix(s["url"].(string), e.url+"/s/") || len(s) != 5 {
				t.Errorf("suggestion %v", s)
			}
			// Never inside the model's text.
			if strings.Contains(a.raw[:strings.Index(a.raw, gateway.SuggestionField)], "Laptops at Shop") {
				t.Error("the suggestion's text is inside the model's answer")
			}
			if tc.usage {
				if sum := summarize(t, a.events); sum.usage == nil || sum.usage["cost"] == nil {
					t.Errorf("the usage chunk is missing beside the suggestion")
				}
			}
		})
	}
	if st := e.charged("laptops", 3); st["impressions"] != 3.0 || st["spend"] != "1.5" {
		t.Errorf("after 3 suggestions: %v", st)
	}
	// No suggestion: not a decision moment; opted out by header; the
	// embeddings; a last user message about something else.
	for _, body := range []string{askBody("Explain how a laptop battery works.", false, false, ""), askBody("Write a poem about autumn.", true, false, ""),
		askBody("Which hotel should I book in Rome?", false, false, "")} {
		if s := suggestionOf(t, e.do("POST", "/v1/chat/completions", key, body)); s != nil {
			t.Errorf("a suggestion on %s", body)
		}
	}
	if s := suggestionOf(t, e.do("POST", "/v1/chat/completions", key, askBody(laptopQuestion, false, false, ""), gateway.NoSuggestionsHeader, "1")); s != nil {
		t.Error("a suggestion on a request that opted out")
	}
	// The decision is on the last user message only.
	earlier := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Which laptop should I buy?"},{"role":"assistant","content":"A ThinkPad."},{"role":"user","content":"Thanks! Now write a haiku about rain."}]}`
	if s := suggestionOf(t, e.do("POST", "/v1/chat/completions", key, earlier)); s != nil {
		t.Error("a suggestion on an earlier message's decision")
	}
	e.admin("PATCH", "/api/v1/customers/free", `{"sponsored_opt_out":true}`)
	if s := suggestionOf(t, e.do("POST", "/v1/chat/completions", key, askBody(laptopQuestion, false, false, ""))); s != nil {
		t.Error("a suggestion for a customer who opted out")
	}
	// A plan without sponsored suggestions.
	other, _ := e.customer("pro", "1000", &fb.Plan{ID: "pro", Name: "Pro", Period: fb.PeriodMonth, Models: []string{"*"}})
	if s := suggestionOf(t, e.do("POST", "/v1/chat/completions", other, askBody(laptopQuestion, false, false, ""))); s != nil {
		t.Error("a suggestion on a plan without them")
	}
	if st := e.stats("laptops"); st["impressions"] != 3.0 {
		t.Errorf("requests without a suggestion were charged: %v", st)
	}
}

// TestSponsoredNotDelivered: a response that fails carries no suggestion
// and charges none: the held bid is released.
func TestSponsoredNotDelivered(t *testing.T) {
	e, key := sponsoredEnv(t, "100", 0)
	for _, fault := range []string{"500", "disconnect", "malformed"} {
		for _, stream := range []bool{false, true} {
			a := e.do("POST", "/v1/chat/completions", key, askBody(laptopQuestion, stream, false, ""), simulator.FaultHeader, fault)
			if strings.Contains(a.raw, gateway.SuggestionField) {
				t.Errorf("fault %s, stream %v: a suggestion in %s", fault, stream, a.raw)
			}
		}
	}
	// The holds of the placements that were not shown are released
	// before their requests end.
	if got := e.available("shop"); got != 1000*fb.Micro {
		t.Errorf("advertiser's available %s after failed responses, want 1000 (nothing charged, nothing held)", got)
	}
	if st := e.stats("laptops"); st["impressions"] != 0.0 {
		t.Errorf("failed responses were charged: %v", st)
	}
}

// TestSponsoredBudgetUnderConcurrency: 1,000 concurrent decision-moment
// requests against a campaign whose daily budget pays for 100 impressions:
// exactly 100 responses carry a suggestion and exactly 100 are charged.
func TestSponsoredBudgetUnderConcurrency(t *testing.T) {
	e, key := sponsoredEnv(t, "50", 0)
	var with, without atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 200) // open connections at once
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			a := e.do("POST", "/v1/chat/completions", key, askBody(laptopQuestion, i%2 == 1, false, fmt.Sprintf(`,"user":"u%d"`, i)), simulator.TokensHeader, "4")
			if suggestionOf(t, a) != nil {
				with.Add(1)
			} else {
				without.Add(1)
			}
		}()
	}
	wg.Wait()
	st := e.charged("laptops", 100)
	t.Logf("1000 concurrent decision moments, budget for 100: %d with a suggestion, %d without; charged %v impressions for %v; advertiser has %s left",
		with.Load(), without.Load(), st["impressions"], st["spend"], e.available("shop"))
	if with.Load() != 100 || st["impressions"] != 100.0 || st["spend"] != "50" || e.available("shop") != 950*fb.Micro {
		t.Errorf("want exactly 100 suggestions charged 50 credits, 950 left")
	}
}

// TestSponsoredFrequencyCap: one end user (the request's user field, else
// its key) sees a campaign at most its cap a day, however many requests
// run at once.
func TestSponsoredFrequencyCap(t *testing.T) {
	e, key := sponsoredEnv(t, "100", 2)
	count := func(n int, extra string) int64 {
		var with atomic.Int64
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if suggestionOf(t, e.do("POST", "/v1/chat/completions", key, askBody(laptopQuestion, false, false, extra))) != nil {
					with.Add(1)
				}
			}()
		}
		wg.Wait()
		return with.Load()
	}
	if got := count(30, `,"user":"alice"`); got != 2 {
		t.Errorf("alice: %d suggestions of 30 concurrent requests, want the cap, 2", got)
	}
	if got := count(10, `,"user":"bob"`); got != 2 {
		t.Errorf("bob: %d suggestions, want 2", got)
	}
	if got := count(10, ""); got != 2 {
		t.Errorf("requests without a user (counted by key): %d suggestions, want 2", got)
	}
	if st := e.charged("laptops", 6); st["impressions"] != 6.0 {
		t.Errorf("charged %v impressions, want 6", st["impressions"])
	}
}

// TestSponsoredClickOnce: following a suggestion's link redirects to the
// advertiser and charges the bid per click once, however often.
func TestSponsoredClickOnce(t *testing.T) {
	e, key := sponsoredEnv(t, "100", 0)
	s := suggestionOf(t, e.do("POST", "/v1/chat/completions", key, askBody(laptopQuestion, false, false, "")))
	if s == nil {
		t.Fatal("no suggestion")
	}
	link := s["url"].(string)
	noFollow := &http.Client{Transport: e.client.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := noFollow.Get(link)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 302 || resp.Header.Get("Location") != "https://shop.example/laptops" {
				t.Errorf("GET %s: %d to %q", link, resp.StatusCode, resp.Header.Get("Location"))
			}
		}()
	}
	wg.Wait()
	st := e.charged("laptops", 1)
	if st["impressions"] != 1.0 || st["clicks"] != 1.0 || st["spend"] != "2.5" || e.available("shop") != 997_500_000 {
		t.Errorf("after 10 follows: %v, advertiser %s; want 1 impression, 1 click, 2.5 spent", st, e.available("shop"))
	}
	u, _ := url.Parse(link)
	resp, err := noFollow.Get(e.url + u.Path + "x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("an altered link: %d, want 404", resp.StatusCode)
	}
}

// TestSponsoredEconomics: the economics report shows the free tier's ad
// revenue beside its inference cost, to the micro-dollar, counted once:
// under the advertiser by customer, under the free plan by plan.
//
// Each request: prompt p tokens (pricing.PromptTokens of the system and
// user messages), 10 output tokens; the deployment's cost card is $0.15 in
// and $0.60 out per 1M tokens, so a request costs ⌈0.15p + 6⌉ µ$. The free
// customer's credits are promo (revenue $0). The advertiser's credits cost
// $0.01 each: an impression (0.5) earns 5,000 µ$, a click (2) 20,000 µ$.
func TestSponsoredEconomics(t *testing.T) {
	e, key := sponsoredEnv(t, "100", 0)
	var costs int64
	for i, text := range []string{laptopQuestion, "Welke laptop moet ik kopen voor mijn studie?", "Hvilken bærbar pc bør jeg kjøpe?",
		"Explain TCP slow start.", "Write a poem about autumn."} {
		a := e.do("POST", "/v1/chat/completions", key, askBody(text, i == 1, false, ""), simulator.TokensHeader, "10")
		if (suggestionOf(t, a) != nil) != (i < 3) {
			t.Fatalf("request %d (%q): suggestion %v, want %v", i, text, suggestionOf(t, a) != nil, i < 3)
		}
		if i == 0 {
			link := suggestionOf(t, a)["url"].(string)
			noFollow := &http.Client{Transport: e.client.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := noFollow.Get(link)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		p := promptTokensOf("You are helpful.", text)
		costs += (150_000*p + 600_000*10 + fb.Micro - 1) / fb.Micro
	}
	e.charged("laptops", 3)
	const adRevenue = 3*5_000 + 20_000
	day := time.Now().UTC().Format(time.DateOnly)
	report := func(groupBy string) map[string]map[string]any {
		r := e.admin("GET", "/api/v1/reports/economics?group_by="+groupBy+"&from="+day+"&to="+time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly), "")
		rows := map[string]map[string]any{}
		for _, row := range r["rows"].([]any) {
			m := row.(map[string]any)
			rows[m["key"].(string)] = m
		}
		rows["total"] = r["totals"].(map[string]any)
		return rows
	}
	usd := func(micros int64) string { return fb.USD(micros).String() }
	byPlan := report("plan")
	t.Logf("by plan, the free tier: revenue %v, cost %v, margin %v", byPlan["free"]["revenue_usd"], byPlan["free"]["cost_usd"], byPlan["free"]["margin_usd"])
	if r := byPlan["free"]; r["revenue_usd"] != usd(adRevenue) || r["cost_usd"] != usd(costs) || r["margin_usd"] != usd(adRevenue-costs) {
		t.Errorf("the free plan's row %v; want revenue %s (ads), cost %s (inference)", r, usd(adRevenue), usd(costs))
	}
	byCustomer := report("customer")
	if r := byCustomer["shop"]; r["revenue_usd"] != usd(adRevenue) || r["cost_usd"] != "0" || r["credits_consumed"] != "3.5" {
		t.Errorf("the advertiser's row %v; want revenue %s, 3.5 credits", r, usd(adRevenue))
	}
	if r := byCustomer["free"]; r["revenue_usd"] != "0" || r["cost_usd"] != usd(costs) {
		t.Errorf("the free customer's row %v; want no revenue (promo), cost %s", r, usd(costs))
	}
	byProduct := report("product")
	if r := byProduct["ads"]; r["revenue_usd"] != usd(adRevenue) || r["cost_usd"] != "0" {
		t.Errorf("the ads row %v", r)
	}
	if r := byProduct["inference"]; r["revenue_usd"] != "0" || r["cost_usd"] != usd(costs) {
		t.Errorf("the inference row %v", r)
	}
	for _, rows := range []map[string]map[string]any{byPlan, byCustomer, byProduct} {
		if rows["total"]["revenue_usd"] != usd(adRevenue) || rows["total"]["cost_usd"] != usd(costs) {
			t.Errorf("totals %v: ad revenue counted other than once", rows["total"])
		}
	}
	if st := e.stats("laptops"); st["impressions"] != 3.0 || st["clicks"] != 1.0 || st["spend"] != "3.5" {
		t.Errorf("campaign stats %v", st)
	}
}

func promptTokensOf(texts ...string) int64 { return pricing.PromptTokens(texts) }

// TestSponsoredOpenAISDK: the official SDK parses answers with and
// without a suggestion, streamed and not; the suggestion is read from the
// fields it does not know.
func TestSponsoredOpenAISDK(t *testing.T) {
	e, key := sponsoredEnv(t, "100", 0)
	client := openai.NewClient(option.WithBaseURL(e.url+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0),
		option.WithHTTPClient(e.client), option.WithHeader(simulator.TokensHeader, "6"))
	ctx := context.Background()
	params := func(text string) openai.ChatCompletionNewParams {
		return openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)}}
	}
	suggestion := func(raw string) map[string]any {
		if raw == "" {
			return nil
		}
		var s map[string]any
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			t.Fatalf("farebox_suggestion %q: %v", raw, err)
		}
		return s
	}
	for _, tc := range []struct {
		text string
		want bool
	}{{laptopQuestion, true}, {"Write a poem about autumn.", false}} {
		t.Run(fmt.Sprintf("non-stream, suggestion %v", tc.want), func(t *testing.T) {
			c, err := client.Chat.Completions.New(ctx, params(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Choices) != 1 || c.Choices[0].Message.Content == "" || c.Usage.CompletionTokens != 6 {
				t.Errorf("completion %+v", c)
			}
			s := suggestion(c.JSON.ExtraFields[gateway.SuggestionField].Raw())
			if (s != nil) != tc.want || tc.want && s["label"] != "Sponsored" {
				t.Errorf("suggestion %v, want one: %v", s, tc.want)
			}
		})
		for _, usage := range []bool{false, true} {
			t.Run(fmt.Sprintf("stream (usage %v), suggestion %v", usage, tc.want), func(t *testing.T) {
				p := params(tc.text)
				if usage {
					p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
				}
				st := client.Chat.Completions.NewStreaming(ctx, p)
				acc := openai.ChatCompletionAccumulator{}
				var found []map[string]any
				for st.Next() {
					ch := st.Current()
					acc.AddChunk(ch)
					if f, ok := ch.JSON.ExtraFields[gateway.SuggestionField]; ok {
						found = append(found, suggestion(f.Raw()))
					}
				}
				if err := st.Err(); err != nil {
					t.Fatal(err)
				}
				if len(acc.Choices) != 1 || strings.Count(acc.Choices[0].Message.Content, " ") != 6 {
					t.Errorf("streamed text %+v", acc.Choices)
				}
				if usage && acc.Usage.CompletionTokens != 6 {
					t.Errorf("usage %+v", acc.Usage)
				}
				if tc.want && (len(found) != 1 || found[0]["label"] != "Sponsored") || !tc.want && len(found) != 0 {
					t.Errorf("suggestions in the stream %v, want one: %v", found, tc.want)
				}
			})
		}
	}
	if st := e.charged("laptops", 3); st["impressions"] != 3.0 {
		t.Errorf("impressions %v, want 3", st["impressions"])
	}
}

// TestSponsoredProtocols: a chat completion carries its suggestion
// whatever protocol its deployment speaks (here an Anthropic one, through
// the translation), stream and not; the Responses and Messages protocols
// carry none, a decision moment or not.
func TestSponsoredProtocols(t *testing.T) {
	sim := &simulator.Simulator{}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cards := routing.CostCard{InputPerMTok: 3_000_000, OutputPerMTok: 15_000_000}
	router, err := routing.NewRouter([]*routing.Deployment{
		{Name: "anthropic/claude-x", Provider: "anthropic", Type: routing.TypeAnthropic, Model: "claude-x", Upstream: "claude-x-up", BaseURL: srv.URL + "/v1", APIKey: "sk-ant", ForwardHeaders: simHeaders, Cost: cards},
		{Name: "sim/native", Provider: "sim", Type: routing.TypeSimulated, Model: "native", Upstream: "native", BaseURL: srv.URL + "/v1", ForwardHeaders: simHeaders, Cost: cards},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, envOptions{router: router, prices: map[string]fb.Rates{"claude-x": testRates, "native": testRates}})
	key := sponsor(e, "100", 0)
	chat := func(stream bool) string {
		return strings.Replace(askBody(laptopQuestion, stream, stream, ""), `"gpt-4o-mini"`, `"claude-x"`, 1)
	}
	for _, stream := range []bool{false, true} {
		a := e.do("POST", "/v1/chat/completions", key, chat(stream), simulator.TokensHeader, "5")
		s := suggestionOf(t, a)
		if s == nil || s["label"] != "Sponsored" || s["title"] != "Laptops at Shop" {
			t.Errorf("chat to an anthropic deployment, stream %v: suggestion %v in %s", stream, s, a.raw)
		}
	}
	q, _ := json.Marshal(laptopQuestion)
	for _, c := range []struct{ path, body string }{
		{"/v1/responses", `{"model":"native","input":` + string(q) + `}`},
		{"/v1/responses", `{"model":"native","input":` + string(q) + `,"stream":true}`},
		{"/v1/messages", `{"model":"native","max_tokens":100,"messages":[{"role":"user","content":` + string(q) + `}]}`},
		{"/v1/messages", `{"model":"native","max_tokens":100,"messages":[{"role":"user","content":` + string(q) + `}],"stream":true}`},
	} {
		a := e.do("POST", c.path, key, c.body, simulator.TokensHeader, "5")
		if a.status != 200 || strings.Contains(a.raw, gateway.SuggestionField) {
			t.Errorf("POST %s %s: %d, a suggestion in %s", c.path, c.body, a.status, a.raw)
		}
	}
	if st := e.charged("laptops", 2); st["impressions"] != 2.0 {
		t.Errorf("impressions %v, want the two chats'", st["impressions"])
	}
}
