package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/app"
	"farebox/ids"
	"farebox/keys"
	"farebox/ledger"
	"farebox/pricing"
	"farebox/routing"
	"farebox/simulator"
	"farebox/store/postgres/pgtest"
)

// TestZeroOverspendReplicas: two gateways, each with its own pool and
// engine on one PostgreSQL database (two replicas), take 300 concurrent
// requests, alternating, half streaming, from one customer whose credits
// pay for about 30. The ledger charged exactly what the responses
// announced, never more than the grant, nothing stays held, and it
// verifies.
func TestZeroOverspendReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("runs PostgreSQL")
	}
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	ctx := context.Background()
	sim := httptest.NewServer(&simulator.Simulator{})
	t.Cleanup(sim.Close)
	var urls []string
	var apps []*app.App
	for range 2 {
		a, err := app.New(ctx, app.Config{DB: url, DataDir: t.TempDir(), AdminToken: adminToken, Deployments: []*routing.Deployment{{Name: "sim/gpt-4o-mini", Provider: "sim", Type: routing.TypeSimulated,
			Model: "gpt-4o-mini", Upstream: "gpt-4o-mini", BaseURL: sim.URL + "/v1", ForwardHeaders: []string{simulator.TokensHeader}}}})
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(a.Handler)
		t.Cleanup(func() { hs.Close(); a.Close() })
		urls = append(urls, hs.URL)
		apps = append(apps, a)
	}
	first := apps[0].Store
	if err := first.PutPrice(ctx, fb.Price{Model: "gpt-4o-mini", Rates: testRates, EffectiveFrom: pricing.DefaultEffective, CreatedAt: pricing.DefaultEffective}); err != nil {
		t.Fatal(err)
	}
	if err := first.CreateCustomer(ctx, fb.Customer{ID: "acme", Name: "acme", CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	per := cost(promptTokens, 40)
	grant := per * 30
	if _, err := apps[0].Engine.Submit(ctx, fb.Op{Kind: fb.OpGrant, Customer: "acme", Amount: grant, Source: fb.SourcePurchase, PaidUSD: 1 * fb.Micro}); err != nil {
		t.Fatal(err)
	}
	k, key := keys.Mint("acme", "k", time.Now(), ids.New)
	if err := first.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}}}
	var (
		mu       sync.Mutex
		paid     fb.Amount
		statuses = map[int]int{}
		wg       sync.WaitGroup
	)
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := i%2 == 0
			r := *e
			r.url = urls[i%2]
			a := r.do("POST", "/v1/chat/completions", key, chatBody(stream, false, `,"max_tokens":64`), simulator.TokensHeader, "40")
			var charged fb.Amount
			switch {
			case a.status == 200 && stream:
				charged = mustAmount(t, a.trailer.Get("X-Farebox-Cost"))
			case a.status == 200:
				charged = mustAmount(t, a.header.Get("X-Farebox-Cost"))
				n, _ := strconv.ParseInt(a.get("usage", "completion_tokens"), 10, 64)
				if charged != cost(promptTokens, n) {
					t.Errorf("answer of %d tokens charged %s", n, charged)
				}
			case a.status == 402:
			default:
				t.Errorf("unexpected %d: %s", a.status, a.raw)
			}
			mu.Lock()
			statuses[a.status]++
			paid += charged
			mu.Unlock()
		}()
	}
	wg.Wait()
	acct, err := first.Account(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("statuses %v, paid %s of %s", statuses, paid, grant)
	if acct.Charged != paid || acct.Charged > grant || acct.Uncollected != 0 || acct.Debt != 0 || ledger.Held(acct) != 0 {
		t.Errorf("charged %s (responses say %s) of %s, uncollected %s, debt %s, held %s", acct.Charged, paid, grant, acct.Uncollected, acct.Debt, ledger.Held(acct))
	}
	body := chatBody(true, false, `,"max_tokens":64`)
	worst, least := cost(int64(len(body)), 64), cost(int64(len(body)), 16)
	if floor := int((grant - least) / worst); statuses[200] < floor {
		t.Errorf("only %d admitted; the grant pays for %d at their worst case (see TestZeroOverspend)", statuses[200], floor)
	}
	rows, err := first.Usage(ctx, fb.UsageFilter{Customer: "acme", GroupBy: "customer"})
	if err != nil || len(rows) != 1 || rows[0].Credits != paid {
		t.Errorf("usage rows %+v %v", rows, err)
	}
	econ, err := first.Economics(ctx, fb.EconFilter{GroupBy: "customer"})
	if err != nil || len(econ) != 1 || econ[0].Credits != paid {
		t.Errorf("daily sums %+v %v", econ, err)
	}
	rep, err := ledger.Verify(ctx, first)
	if err != nil || len(rep.Problems) > 0 {
		t.Errorf("verify: %v %v", err, rep.Problems)
	}
}
