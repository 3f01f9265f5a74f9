package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	fb "farebox"
	"farebox/gateway"
	"farebox/pricing"
	"farebox/routing"
	"farebox/simulator"
)

// TestGoldenEconomics: a week of traffic through the gateway and the
// simulator, with injected time, from three customers — one on promo
// credits only, one on a $20 plan, one buying top-ups — to two providers at
// different costs and an own GPU pool. Every figure of the economics report
// is checked against a hand computation (in the comments), to the
// micro-dollar, and totals against the sum of rows.
//
// Prices (credits per 1M tokens): gpt-4o-mini 1000 in / 2000 out,
// claude-sonnet-4 3000 / 15000, llama-3.3-70b 500 / 500. Every prompt is 11
// tokens (pricing.PromptTokens of "Say something short.").
//
//	gpt-4o-mini,  100 out: 11×0.001 + 100×0.002  = 0.211 credits; cost (openai $0.15/$0.60)  ⌈61.65⌉ = 62 µ$
//	claude,       100 out: 11×0.003 + 100×0.015  = 1.533 credits; cost (anthropic $3/$15)     1533 µ$
//	llama,        200 out: 11×0.0005 + 200×0.0005 = 0.1055 credits; cost (GPU pool: $2/GPU-h × 8
//	              ÷ (4000 tok/s × 3600 × 0.5) = $2.222223/1M) ⌈211 × 2.222223⌉ = 469 µ$
func TestGoldenEconomics(t *testing.T) {
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC) // day 0
	clk := &fakeClock{t: start.Add(-time.Hour)}
	sim := httptest.NewServer(&simulator.Simulator{})
	t.Cleanup(sim.Close)
	gpu, err := routing.GPUCost(2*fb.Micro, 8, 4000, fb.Micro/2)
	if err != nil {
		t.Fatal(err)
	}
	dep := func(provider, model string, cost routing.CostCard) *routing.Deployment {
		return &routing.Deployment{Name: provider + "/" + model, Provider: provider, Type: routing.TypeSimulated, ForwardHeaders: simHeaders, Model: model, Upstream: model, BaseURL: sim.URL + "/v1", Cost: cost}
	}
	router, err := routing.NewRouter([]*routing.Deployment{
		dep("openai", "gpt-4o-mini", routing.CostCard{InputPerMTok: 150_000, OutputPerMTok: 600_000, CachedInputPerMTok: 75_000}),
		dep("anthropic", "claude-sonnet-4", routing.CostCard{InputPerMTok: 3 * fb.Micro, OutputPerMTok: 15 * fb.Micro, CachedInputPerMTok: 300_000}),
		dep("gpu-pool", "llama-3.3-70b", gpu),
	})
	if err != nil {
		t.Fatal(err)
	}
	router.Now = clk.Now
	e := newEnvRouter(t, gateway.Config{}, router, clk.Now)
	ctx := context.Background()
	for m, r := range map[string][2]fb.Amount{"gpt-4o-mini": {1000, 2000}, "claude-sonnet-4": {3000, 15000}, "llama-3.3-70b": {500, 500}} {
		rates := fb.Rates{InputPerMTok: r[0] * fb.Micro, OutputPerMTok: r[1] * fb.Micro, CachedInputPerMTok: r[0] * fb.Micro, ReasoningPerMTok: r[1] * fb.Micro}
		if err := e.store.PutPrice(ctx, fb.Price{Model: m, Rates: rates, EffectiveFrom: pricing.DefaultEffective, CreatedAt: pricing.DefaultEffective}); err != nil {
			t.Fatal(err)
		}
	}
	admin := func(method, path, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, m)
		}
		return m
	}
	// promo: 10 promo credits expiring on day 5.
	promoKey, _ := e.customer("promo", "", nil)
	admin("POST", "/api/v1/customers/promo/grants", `{"amount":"10","source":"promo","expires_at":"2026-11-07T00:00:00Z"}`)
	// planned: $20 a month for 2,000 credits, from day 0 ($0.01 a credit).
	admin("POST", "/api/v1/plans", `{"id":"pro","name":"Pro","price_usd":"20","credits":"2000","period":"month","models":["*"]}`)
	clk.Advance(time.Hour) // day 0, 00:00
	admin("POST", "/api/v1/customers", `{"id":"planned","name":"Planned","plan":"pro"}`)
	plannedKey := e.key("planned")
	// topup: 5 credits for $0.06 expiring on day 4 ($0.012 a credit), and
	// 100 for $1 that never expire ($0.01); same priority, so the expiring
	// lot goes first.
	topupKey, _ := e.customer("topup", "", nil)
	admin("POST", "/api/v1/customers/topup/grants", `{"amount":"5","source":"purchase","paid_usd":"0.06","expires_at":"2026-11-06T00:00:00Z"}`)
	admin("POST", "/api/v1/customers/topup/grants", `{"amount":"100","source":"purchase","paid_usd":"1"}`)

	chat := func(key, model string, tokens int) {
		t.Helper()
		body := `{"model":"` + model + `","messages":[{"role":"user","content":"Say something short."}],"max_tokens":200}`
		a := e.do("POST", "/v1/chat/completions", key, body, simulator.TokensHeader, itoa(tokens))
		if a.status != 200 {
			t.Fatalf("%s at %s: %d %s", model, clk.Now(), a.status, a.raw)
		}
	}
	for day := range 7 {
		clk.t = start.AddDate(0, 0, day).Add(12 * time.Hour)
		if day < 5 { // promo: 2 × gpt-4o-mini a day while its credits last
			chat(promoKey, "gpt-4o-mini", 100)
			chat(promoKey, "gpt-4o-mini", 100)
		}
		chat(plannedKey, "claude-sonnet-4", 100)
		chat(plannedKey, "gpt-4o-mini", 100)
		for range 3 {
			chat(topupKey, "llama-3.3-70b", 200)
		}
		if day == 5 {
			// The promo lot expired at 00:00; the sweep records it.
			if _, err := e.engine.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	clk.t = start.AddDate(0, 0, 7)

	type row struct{ key, req, rev, cost, margin, pct, credits, brk, brkCredits, unc, share string }
	check := func(groupBy string, want []row) {
		t.Helper()
		rep := admin("GET", "/api/v1/reports/economics?from=2026-11-02&to=2026-11-09&group_by="+groupBy, "")
		rows, _ := rep["rows"].([]any)
		got := func(m map[string]any) row {
			pct := "null"
			if p, ok := m["margin_pct"].(string); ok {
				pct = p
			}
			return row{m["key"].(string), itoa(int(m["requests"].(float64))), m["revenue_usd"].(string), m["cost_usd"].(string), m["margin_usd"].(string),
				pct, m["credits_consumed"].(string), m["breakage_usd"].(string), m["breakage_credits"].(string), m["uncollected_usd"].(string), m["partner_share_usd"].(string)}
		}
		if len(rows) != len(want)-1 {
			t.Fatalf("%s: %d rows, want %d: %v", groupBy, len(rows), len(want)-1, rep)
		}
		for i, w := range want[:len(want)-1] {
			if g := got(rows[i].(map[string]any)); g != w {
				t.Errorf("%s row %d:\n got %+v\nwant %+v", groupBy, i, g, w)
			}
		}
		if g := got(rep["totals"].(map[string]any)); g != want[len(want)-1] {
			t.Errorf("%s totals:\n got %+v\nwant %+v", groupBy, g, want[len(want)-1])
		}
	}
	// By customer.
	//   promo:   10 requests × 0.211 = 2.11 credits, revenue 0 (promo), cost 10 × 62 = 620 µ$,
	//            breakage 10 − 2.11 = 7.89 credits worth $0.
	//   planned: 7 × (1.533 + 0.211) = 12.208 credits at $0.01: revenue 7 × (15330 + 2110) = 122080 µ$,
	//            cost 7 × (1533 + 62) = 11165 µ$, margin 110915 µ$ = 90.85%.
	//   topup:   21 × 0.1055 = 2.2155 credits: days 0-3 from the $0.012 lot, 12 × 1266 µ$ = 15192;
	//            days 4-6 from the $0.01 lot, 9 × 1055 µ$ = 9495; revenue 24687 µ$; cost 21 × 469 = 9849;
	//            margin 14838 = 60.10%; the $0.012 lot's 5 − 1.266 = 3.734 credits expired on day 4:
	//            breakage 60000 − 15192 = 44808 µ$; meta's 20% of llama revenue: ⌊4937.4⌋ = 4937 µ$.
	check("customer", []row{
		{"planned", "14", "0.12208", "0.011165", "0.110915", "90.85", "12.208", "0", "0", "0", "0"},
		{"promo", "10", "0", "0.00062", "-0.00062", "null", "2.11", "0", "7.89", "0", "0"},
		{"topup", "21", "0.024687", "0.009849", "0.014838", "60.10", "2.2155", "0.044808", "3.734", "0", "0.004937"},
		{"total", "45", "0.146767", "0.021634", "0.125133", "85.26", "16.5335", "0.044808", "11.624", "0", "0.004937"},
	})
	// By model: breakage belongs to customers and days, not models.
	//   claude: 7 requests, 10.731 credits, revenue 107310, cost 10731, margin 96579 (90.00%).
	//   gpt-4o-mini: 17 requests, 3.587 credits, revenue 7 × 2110 = 14770, cost 17 × 62 = 1054, 92.86%.
	//   llama: as topup's.
	check("model", []row{
		{"claude-sonnet-4", "7", "0.10731", "0.010731", "0.096579", "90.00", "10.731", "0", "0", "0", "0"},
		{"gpt-4o-mini", "17", "0.01477", "0.001054", "0.013716", "92.86", "3.587", "0", "0", "0", "0"},
		{"llama-3.3-70b", "21", "0.024687", "0.009849", "0.014838", "60.10", "2.2155", "0", "0", "0", "0.004937"},
		{"total", "45", "0.146767", "0.021634", "0.125133", "85.26", "16.5335", "0", "0", "0", "0.004937"},
	})
	check("provider", []row{
		{"anthropic", "7", "0.10731", "0.010731", "0.096579", "90.00", "10.731", "0", "0", "0", "0"},
		{"gpu-pool", "21", "0.024687", "0.009849", "0.014838", "60.10", "2.2155", "0", "0", "0", "0.004937"},
		{"openai", "17", "0.01477", "0.001054", "0.013716", "92.86", "3.587", "0", "0", "0", "0"},
		{"total", "45", "0.146767", "0.021634", "0.125133", "85.26", "16.5335", "0", "0", "0", "0.004937"},
	})
	// By day: days 0-3 alike (promo 2 gpt, planned claude + gpt, topup 3 llama from the $0.012 lot):
	//   revenue 15330 + 2110 + 3 × 1266 = 21238, cost 2 × 62 + 1533 + 62 + 3 × 469 = 3126,
	//   credits 0.422 + 1.744 + 0.3165 = 2.4825, meta ⌊0.2 × 3798⌋ = 759.
	// Day 4: topup from the $0.01 lot, 3 × 1055: revenue 20605, meta ⌊0.2 × 3165⌋ = 633, and the
	//   $0.012 lot's breakage 44808.
	// Day 5: no promo traffic (cost 3002, credits 2.0605), promo's 7.89 credits expire ($0).
	// Day 6: as day 5 without breakage.
	// Meta's share is rounded once, on the whole llama revenue: ⌊4937.4⌋ = 4937 µ$, as by
	// customer. Its rows get ⌊759.6⌋ = 759 (days 0-3) and 633 (days 4-6), 4935 in all; the 2 µ$
	// left go to the largest remainders (0.6, days 0-3), the first days among equals: days 0 and 1.
	d03 := row{"", "7", "0.021238", "0.003126", "0.018112", "85.28", "2.4825", "0", "0", "0", "0.000759"}
	var byDay []row
	for day := range 4 {
		r := d03
		r.key = start.AddDate(0, 0, day).Format(time.DateOnly)
		if day < 2 {
			r.share = "0.00076"
		}
		byDay = append(byDay, r)
	}
	byDay = append(byDay,
		row{"2026-11-06", "7", "0.020605", "0.003126", "0.017479", "84.83", "2.4825", "0.044808", "3.734", "0", "0.000633"},
		row{"2026-11-07", "5", "0.020605", "0.003002", "0.017603", "85.43", "2.0605", "0", "7.89", "0", "0.000633"},
		row{"2026-11-08", "5", "0.020605", "0.003002", "0.017603", "85.43", "2.0605", "0", "0", "0", "0.000633"},
		row{"total", "45", "0.146767", "0.021634", "0.125133", "85.26", "16.5335", "0.044808", "11.624", "0", "0.004937"},
	)
	check("day", byDay)

	// Forecast: at midnight its window is the 7 whole days before (and
	// today's nothing so far): planned burned 12.208 credits in 7 days,
	// 1.744 a day; its 1987.792 left last 1987.792 × 7 ÷ 12.208 = 1139.78… days.
	f := admin("GET", "/api/v1/reports/forecast?customer=planned", "")
	fc := f["data"].([]any)[0].(map[string]any)
	if fc["burn_per_day"] != "1.744" || fc["available"] != "1987.792" || fc["days_left"] != "1139.78" {
		t.Errorf("forecast %v", fc)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// key creates a key for an existing customer through the API.
func (e *env) key(customer string) string {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.url+"/api/v1/customers/"+customer+"/keys", strings.NewReader(`{"name":"k"}`))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	k, _ := m["key"].(string)
	if k == "" {
		e.t.Fatalf("create key: %d %v", resp.StatusCode, m)
	}
	return k
}
