package gateway_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	fb "farebox"
	"farebox/fakeclock"
	"farebox/gateway"
	"farebox/ids"
	"farebox/keys"
	"farebox/ledger"
	"farebox/notify"
	"farebox/payments"
	"farebox/payments/stripemock"
	"farebox/pricing"
	"farebox/routing"
	"farebox/simulator"
)

const smallChat = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}],"max_tokens":16}`

// fire sends n chat requests at once on key and returns their answers.
func (e *env) fire(n int, key, body string) []answer {
	out := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = e.do("POST", "/v1/chat/completions", key, body, simulator.TokensHeader, "8")
		}()
	}
	wg.Wait()
	return out
}

// TestThresholdsOncePerCrossing: 500 concurrent gateway requests drive one
// customer through its auto top-up threshold and its balance.low threshold.
// Followers racing on the journal's cursor (as replicas would) and top-up
// runners racing on the attempts record exactly one attempt and make
// exactly one PaymentIntent, counted at a recorder in front of stripe-mock,
// and one balance.low; the credits arrive with the success webhook; a
// second crossing within the cooldown makes no payment, one after it does.
func TestThresholdsOncePerCrossing(t *testing.T) {
	rec := stripemock.NewRecorder(t, stripemock.Start(t))
	clk := fakeclock.New(time.Now().UTC())
	e := newEnvSim(t, envOptions{clock: clk, stripe: payments.StripeConfig{SecretKey: stripemock.SecretKey, WebhookSecret: stripemock.WebhookSecret, APIBase: rec.URL}})
	ctx := context.Background()
	key, _ := e.customer("acme", "100", nil)
	st := e.app.Store
	if err := st.PutPayer(ctx, fb.PayerProfile{Customer: "acme", ProviderID: "cus_acme", PaymentMethod: "pm_card_visa"}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutAutoTopup(ctx, fb.AutoTopup{Customer: "acme", Threshold: 95 * fb.Micro, Credits: 1000 * fb.Micro, Cooldown: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutAlerts(ctx, "acme", fb.Alerts{LowBalance: 97 * fb.Micro}); err != nil {
		t.Fatal(err)
	}
	recv := newReceiver(t)
	secret := e.endpoint(recv.url, notify.BalanceLow)
	// The followers start from the journal's end: make them start now.
	if _, err := e.app.Notify.Follow(ctx); err != nil {
		t.Fatal(err)
	}

	var spent fb.Amount
	for _, a := range e.fire(500, key, smallChat) {
		if a.status != 200 {
			t.Fatalf("a request: %d %s", a.status, a.raw)
		}
		c, _ := fb.ParseAmount(a.header.Get("X-Farebox-Cost"))
		spent += c
	}
	if spent < 5*fb.Micro {
		t.Fatalf("the requests spent %s: not through the thresholds (95 and 97 of 100)", spent)
	}
	race := func(f func(context.Context) (int, error)) {
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := f(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	race(e.app.Notify.Follow)
	race(e.app.Payments.Topups)
	if n := stripemock.PaymentIntents(rec.Seen()); n != 1 {
		t.Fatalf("%d PaymentIntents, want exactly 1 for one crossing", n)
	}
	var sent []stripemock.Request
	for _, r := range rec.Sent() {
		if r.Path == "/v1/payment_intents" {
			sent = append(sent, r)
		}
	}
	if len(sent) != 1 || sent[0].Form.Get("off_session") != "true" || sent[0].Form.Get("confirm") != "true" || sent[0].Form.Get("amount") != "1000" ||
		sent[0].Form.Get("payment_method") != "pm_card_visa" || sent[0].IdempotencyKey == "" {
		t.Fatalf("PaymentIntent requests %+v, want one off-session $10 payment with the saved card under an Idempotency-Key", sent)
	}
	race(e.app.Notify.Deliver)
	if got := recv.types(); got[notify.BalanceLow] != 1 {
		t.Fatalf("received %v, want balance.low once", got)
	}
	recv.verify(t, secret)

	// The credits arrive with the success webhook.
	attempt := sent[0].Form.Get("metadata[" + payments.MetaAttempt + "]")
	pi := map[string]any{"id": "pi_auto_1", "object": "payment_intent", "currency": "usd", "amount_received": 1000, "customer": "cus_acme",
		"metadata": map[string]string{payments.MetaCustomer: "acme", payments.MetaCredits: "1000", payments.MetaKind: fb.PaymentAutoTopup, payments.MetaAttempt: attempt}}
	payload, sig := stripemock.Event("evt_pi_1", payments.EventIntentSucceeded, pi)
	if a := e.do("POST", "/webhooks/stripe", "", string(payload), "Stripe-Signature", sig); a.status != 200 {
		t.Fatalf("the success webhook: %d %s", a.status, a.raw)
	}
	if got := e.available("acme"); got != 1100*fb.Micro-spent {
		t.Fatalf("available after the top-up %s, want %s", got, 1100*fb.Micro-spent)
	}
	if tu, err := st.Topup(ctx, attempt); err != nil || tu.Status != fb.TopupSucceeded {
		t.Fatalf("the attempt %+v %v, want succeeded", tu, err)
	}

	// Spent below the threshold again within the cooldown: no payment.
	crossAgain := func() {
		t.Helper()
		b := ledger.Unspent(e.account("acme"), clk.Now())
		if _, err := e.engine.Submit(ctx, fb.Op{Kind: fb.OpDebit, Customer: "acme", Amount: b - 90*fb.Micro}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.engine.Submit(ctx, fb.Op{Kind: fb.OpGrant, Customer: "acme", Amount: 100 * fb.Micro, Source: fb.SourcePromo}); err != nil {
			t.Fatal(err)
		}
		race(e.app.Notify.Follow)
		race(e.app.Payments.Topups)
	}
	clk.Advance(30 * time.Minute)
	crossAgain()
	if n := stripemock.PaymentIntents(rec.Seen()); n != 1 {
		t.Fatalf("%d PaymentIntents after a crossing within the cooldown, want still 1", n)
	}
	clk.Advance(time.Hour)
	crossAgain()
	if n := stripemock.PaymentIntents(rec.Seen()); n != 2 {
		t.Fatalf("%d PaymentIntents after a crossing past the cooldown, want 2", n)
	}
}

// TestKeyBudgetUnderConcurrency: 500 concurrent requests on a key whose
// budget pays for about 50: what it spent is at most its budget and
// exactly what its clients were charged; the requests it refused are 402
// key_budget_exceeded; requests one by one then spend it to within one
// request; the customer's other key is unaffected.
func TestKeyBudgetUnderConcurrency(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	ctx := context.Background()
	other, _ := e.customer("acme", "1000", nil)
	first := e.do("POST", "/v1/chat/completions", other, smallChat, simulator.TokensHeader, "8")
	if first.status != 200 {
		t.Fatalf("first request: %d %s", first.status, first.raw)
	}
	one, _ := fb.ParseAmount(first.header.Get("X-Farebox-Cost"))
	budget := 50 * one
	k, secret := keys.Mint("acme", "team", time.Now(), ids.New)
	k.Budget, k.BudgetPeriod = &budget, fb.BudgetDay
	if err := e.store.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	var spent fb.Amount
	ok, refused := 0, 0
	for _, a := range e.fire(500, secret, smallChat) {
		switch a.status {
		case 200:
			c, _ := fb.ParseAmount(a.header.Get("X-Farebox-Cost"))
			spent += c
			ok++
		case 402:
			if code := a.get("error", "code"); code != "key_budget_exceeded" {
				t.Fatalf("a refusal: %s, want key_budget_exceeded", a.raw)
			}
			refused++
		default:
			t.Fatalf("a request: %d %s", a.status, a.raw)
		}
	}
	acct := e.account("acme")
	bs := acct.Budgets["key:"+k.ID]
	t.Logf("budget %s (%s a request): at once %d served, %d refused, spent %s", budget, one, ok, refused, spent)
	if bs == nil || bs.Spent != spent || spent > budget || ok == 0 || refused == 0 {
		t.Fatalf("the key's budget spent %v, clients charged %s in %d requests (%d refused); want equal, at most %s", bs, spent, ok, refused, budget)
	}
	// At once, each request held its worst case; one after another, the
	// key spends the rest of its budget, to less than one request's hold.
	more := 0
	for {
		a := e.do("POST", "/v1/chat/completions", secret, smallChat, simulator.TokensHeader, "8")
		if a.status == 402 {
			break
		}
		if a.status != 200 || more > 100 {
			t.Fatalf("request %d after the burst: %d %s", more, a.status, a.raw)
		}
		c, _ := fb.ParseAmount(a.header.Get("X-Farebox-Cost"))
		spent += c
		more++
	}
	bs = e.account("acme").Budgets["key:"+k.ID]
	t.Logf("then %d more one by one: spent %s of %s", more, spent, budget)
	if bs.Spent != spent || spent > budget || budget-spent > budget/10 {
		t.Fatalf("after the requests one by one the budget spent %s, clients charged %s; want equal, at most %s and within a request of it", bs.Spent, spent, budget)
	}
	// The other key, without a budget, goes on.
	after := e.do("POST", "/v1/chat/completions", other, smallChat, simulator.TokensHeader, "8")
	if after.status != 200 {
		t.Fatalf("the customer's other key: %d %s", after.status, after.raw)
	}
	c, _ := fb.ParseAmount(after.header.Get("X-Farebox-Cost"))
	if got, want := ledger.Available(e.account("acme"), time.Now()), 1000*fb.Micro-one-spent-c; got != want {
		t.Fatalf("available %s, want %s", got, want)
	}
	// The key's own balance shows what its budget leaves.
	bal := e.do("GET", "/v1/account/balance", secret, "")
	if bal.get("key", "budget") != budget.String() || bal.get("key", "budget_remaining") != (budget-spent).String() || bal.get("key", "budget_period") != "day" {
		t.Fatalf("/v1/account/balance key: %s", bal.get("key"))
	}
}

// TestDowngradeWhenShort: a plan carrying {"gpt-4o": "gpt-4o-mini"}: a
// customer short of credit for gpt-4o is served by gpt-4o-mini, charged
// its price, named in the response's model and X-Farebox-Model, with the
// usage row keeping the model asked for, on the chat, Responses and
// Messages protocols; a customer who can pay is served gpt-4o; one who
// cannot pay either is refused.
func TestDowngradeWhenShort(t *testing.T) {
	sim := &simulator.Simulator{}
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	var deps []*routing.Deployment
	for _, m := range []string{"gpt-4o", "gpt-4o-mini"} {
		deps = append(deps, &routing.Deployment{Name: "sim/" + m, Provider: "sim", Type: routing.TypeSimulated, ForwardHeaders: simHeaders, Model: m, Upstream: m,
			BaseURL: simSrv.URL + "/v1", MaxOutputTokens: 4096, Cost: routing.CostCard{InputPerMTok: 150_000, OutputPerMTok: 600_000}})
	}
	router, err := routing.NewRouter(deps)
	if err != nil {
		t.Fatal(err)
	}
	big := fb.Rates{InputPerMTok: 100_000 * fb.Micro, OutputPerMTok: 200_000 * fb.Micro}
	e := newEnvWith(t, envOptions{router: router, prices: map[string]fb.Rates{"gpt-4o": big}})
	plan := func(id string) *fb.Plan {
		return &fb.Plan{ID: id, Name: id, Period: fb.PeriodMonth, Models: []string{"*"}, Downgrade: map[string]string{"gpt-4o": "gpt-4o-mini"}}
	}
	// gpt-4o's 16 output tokens cost 3.2 credits; gpt-4o-mini's request
	// about 0.1.
	short, _ := e.customer("short", "1", plan("p1"))
	rich, _ := e.customer("rich", "100", plan("p2"))
	broke, _ := e.customer("broke", "0.00001", plan("p3"))
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}],"max_tokens":16}`

	a := e.do("POST", "/v1/chat/completions", short, body, simulator.TokensHeader, "8")
	if a.status != 200 || a.get("model") != "gpt-4o-mini" || a.header.Get("X-Farebox-Model") != "gpt-4o-mini" {
		t.Fatalf("short of credit: %d model %s header %q: %s", a.status, a.get("model"), a.header.Get("X-Farebox-Model"), a.raw)
	}
	var u struct {
		Usage struct {
			Prompt     int64  `json:"prompt_tokens"`
			Completion int64  `json:"completion_tokens"`
			Cost       string `json:"cost"`
		} `json:"usage"`
	}
	json.Unmarshal([]byte(a.raw), &u)
	want, _ := pricing.Cost(testRates, fb.Quantities{InputTokens: u.Usage.Prompt, OutputTokens: u.Usage.Completion})
	if a.header.Get("X-Farebox-Cost") != want.String() || u.Usage.Cost != want.String() {
		t.Fatalf("charged %s (%s), want gpt-4o-mini's price %s", a.header.Get("X-Farebox-Cost"), u.Usage.Cost, want)
	}
	if got := e.available("short"); got != fb.Micro-want {
		t.Fatalf("available %s, want %s", got, fb.Micro-want)
	}

	if b := e.do("POST", "/v1/chat/completions", rich, body, simulator.TokensHeader, "8"); b.status != 200 || b.get("model") != "gpt-4o" || b.header.Get("X-Farebox-Model") != "gpt-4o" {
		t.Fatalf("who can pay: %d model %s header %q", b.status, b.get("model"), b.header.Get("X-Farebox-Model"))
	}
	if c := e.do("POST", "/v1/chat/completions", broke, body); c.status != 402 {
		t.Fatalf("who can pay neither: %d %s, want 402", c.status, c.raw)
	}

	// The same on the Responses and Messages protocols: served by
	// gpt-4o-mini, named so in the protocol's own model field.
	for _, p := range []struct{ path, body string }{
		{"/v1/responses", `{"model":"gpt-4o","input":"Hi","max_output_tokens":16}`},
		{"/v1/messages", `{"model":"gpt-4o","max_tokens":16,"messages":[{"role":"user","content":"Hi"}]}`},
	} {
		a := e.do("POST", p.path, short, p.body, simulator.TokensHeader, "8")
		if a.status != 200 || a.get("model") != "gpt-4o-mini" || a.header.Get("X-Farebox-Model") != "gpt-4o-mini" {
			t.Fatalf("%s short of credit: %d model %s header %q: %s", p.path, a.status, a.get("model"), a.header.Get("X-Farebox-Model"), a.raw)
		}
	}

	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.dir, "farebox.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT customer, model, requested_model, credits FROM usage_rows WHERE status = 'ok' ORDER BY customer, at, id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var c, m, rm string
		var cr int64
		rows.Scan(&c, &m, &rm, &cr)
		got = append(got, fmt.Sprintf("%s:%s:%s:%s", c, m, rm, fb.Amount(cr)))
	}
	if w := fmt.Sprintf("short:gpt-4o-mini:gpt-4o:%s", want); len(got) != 4 || got[1] != w || !strings.HasPrefix(got[0], "rich:gpt-4o::") ||
		!strings.HasPrefix(got[2], "short:gpt-4o-mini:gpt-4o:") || !strings.HasPrefix(got[3], "short:gpt-4o-mini:gpt-4o:") {
		t.Fatalf("usage rows %v, want rich's gpt-4o, %s, and short's Responses and Messages downgraded", got, w)
	}
}

// receiver is a webhook endpoint that records what it gets; while down
// it answers 503.
type receiver struct {
	url  string
	mu   sync.Mutex
	down bool
	got  []delivery
}

type delivery struct {
	sig  string
	body []byte
	ev   struct {
		ID   string          `json:"id"`
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.down {
			w.WriteHeader(503)
			return
		}
		d := delivery{sig: req.Header.Get(notify.SignatureHeader), body: b}
		json.Unmarshal(b, &d.ev)
		r.got = append(r.got, d)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func (r *receiver) types() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int{}
	for _, d := range r.got {
		m[d.ev.Type]++
	}
	return m
}

func (r *receiver) verify(t *testing.T, secret string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.got {
		if err := notify.Verify(secret, d.sig, d.body, time.Time{}, 0); err != nil {
			t.Fatalf("delivery %s: %v", d.ev.ID, err)
		}
	}
}

// endpoint adds a webhook endpoint through the API and returns its secret.
func (e *env) endpoint(url string, types ...string) string {
	e.t.Helper()
	ev, _ := json.Marshal(types)
	a := e.do("POST", "/api/v1/webhook-endpoints", adminToken, fmt.Sprintf(`{"url":%q,"events":%s}`, url, ev))
	if a.status != 201 {
		e.t.Fatalf("create endpoint: %d %s", a.status, a.raw)
	}
	return a.get("secret")
}

// TestKeyRPM: a key's own requests per minute, beside its plan's: past
// it 429 key_rate_limited with Retry-After; the customer's other key goes
// on.
func TestKeyRPM(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	other, _ := e.customer("acme", "100", nil)
	k, secret := keys.Mint("acme", "slow", time.Now(), ids.New)
	k.RPM = 2
	if err := e.store.CreateKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if a := e.do("POST", "/v1/chat/completions", secret, smallChat); a.status != 200 {
			t.Fatalf("request %d within the key's rpm: %d %s", i, a.status, a.raw)
		}
	}
	a := e.do("POST", "/v1/chat/completions", secret, smallChat)
	if a.status != 429 || a.get("error", "code") != "key_rate_limited" || a.header.Get("Retry-After") == "" {
		t.Fatalf("past the key's rpm: %d %s (Retry-After %q), want 429 key_rate_limited", a.status, a.raw, a.header.Get("Retry-After"))
	}
	if a := e.do("POST", "/v1/chat/completions", other, smallChat); a.status != 200 {
		t.Fatalf("the other key: %d %s", a.status, a.raw)
	}
}
