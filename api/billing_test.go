package api

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/ledger"
)

// results returns the per-event results of an events reply.
func results(t *testing.T, r reply) []map[string]any {
	t.Helper()
	var body struct {
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.raw), &body); err != nil {
		t.Fatalf("events reply %s: %v", r.raw, err)
	}
	return body.Results
}

func event(id, subject, at, data string) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"video-service","type":"usage","subject":%q,"time":%q,"data":%s}`, id, subject, at, data)
}

// send posts one event and checks its status and cost.
func (h *harness) send(ev, status, cost string) {
	h.t.Helper()
	res := results(h.t, h.expect(h.call("POST", "/api/v1/events", ev), 200))
	if len(res) != 1 || res[0]["status"] != status || cost != "" && res[0]["cost"] != cost {
		h.t.Fatalf("event %s: %v, want %s costing %s", ev, res, status, cost)
	}
}

// lots returns "source:remaining/expires" of each live lot, in consumption
// order.
func (h *harness) lots(customer string) string {
	h.t.Helper()
	r := h.expect(h.call("GET", "/api/v1/customers/"+customer+"/balance", ""), 200)
	var b struct {
		Lots []lotJSON `json:"lots"`
	}
	if err := json.Unmarshal([]byte(r.raw), &b); err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, l := range b.Lots {
		exp := "never"
		if l.ExpiresAt != nil {
			exp = l.ExpiresAt.Format("01-02")
		}
		out = append(out, fmt.Sprintf("%s:%s/%s", l.Source, l.Remaining, exp))
	}
	return strings.Join(out, " ")
}

func (h *harness) expired(customer string) fb.Amount {
	h.t.Helper()
	a, err := h.store.Account(context.Background(), customer)
	if err != nil {
		h.t.Fatal(err)
	}
	return a.Expired
}

// TestBillingScenario follows one customer on a monthly plan through three
// renewals, with every number computed by hand: a $20 plan of 2000 credits
// rolling over at most 500, a 10-credit promo consumed first, a purchased
// top-up, events priced by the card in force at their time (one of them
// rounding up once), and the breakage of each period end.
func TestBillingScenario(t *testing.T) {
	h := newHarness(t) // the clock starts at 2026-11-23T10:00:00Z
	h.expect(h.call("PUT", "/api/v1/prices/sora-1", `{"per_video_second":"0.5","effective_from":"2026-11-01T00:00:00Z"}`), 200)
	h.expect(h.call("PUT", "/api/v1/prices/gpt-4o", `{"input_per_mtok":"250","output_per_mtok":"1000","cached_input_per_mtok":"125","reasoning_per_mtok":"1000","effective_from":"2026-11-01T00:00:00Z"}`), 200)
	h.expect(h.call("PUT", "/api/v1/prices/gpt-4o", `{"input_per_mtok":"200","output_per_mtok":"1000","effective_from":"2027-01-01T00:00:00Z"}`), 200)
	h.expect(h.call("PUT", "/api/v1/prices/tiny", `{"input_per_mtok":"0.5","cached_input_per_mtok":"0.5","effective_from":"2026-11-01T00:00:00Z"}`), 200)
	p := h.expect(h.call("POST", "/api/v1/plans", `{"id":"pro","name":"Pro","price_usd":"20","period":"month","credits":"2000","rollover_max":"500","overdraft_limit":"0","models":["*"],"rpm":600,"tpm":1000000}`), 201)
	if p.get("credits") != "2000" || p.get("price_usd") != "20" || p.get("rollover_max") != "500" {
		t.Fatalf("plan: %s", p.raw)
	}

	// Subscribed now: the first period's 2000 credits, $0.01 each, until
	// Dec 23 (with rollover to Jan 23).
	c := h.expect(h.call("POST", "/api/v1/customers", `{"id":"acme","name":"Acme","plan":"pro"}`), 201)
	if c.get("plan") != "pro" || c.get("subscription", "current_period_end") != "2026-12-23T10:00:00Z" {
		t.Fatalf("customer: %s", c.raw)
	}
	r := h.expect(h.call("GET", "/api/v1/customers/acme/balance", ""), 200)
	if r.get("available") != "2000" {
		t.Fatalf("balance: %s", r.raw)
	}
	var b struct {
		Lots []lotJSON `json:"lots"`
	}
	json.Unmarshal([]byte(r.raw), &b)
	if len(b.Lots) != 1 || b.Lots[0].Source != fb.SourceSubscription || b.Lots[0].PaidUSD != 20*fb.Micro || b.Lots[0].CostBasisUSD != 10_000 || b.Lots[0].Priority != 10 {
		t.Fatalf("allowance lot: %s", r.raw)
	}
	h.expect(h.call("POST", "/api/v1/customers/acme/grants", `{"amount":"10","source":"promo"}`), 201)

	// Events: the promo lot goes first.
	h.send(event("e1", "acme", "2026-11-24T00:00:00Z", `{"model":"sora-1","video_seconds":12}`), "accepted", "6")
	// 1000×250 + 500×1000 + 3×125 + 7×1000 per 1M = 0.757375, exactly.
	h.send(event("e2", "acme", "2026-11-24T00:00:01Z", `{"model":"gpt-4o","input_tokens":1000,"output_tokens":500,"cached_input_tokens":3,"reasoning_tokens":7}`), "accepted", "0.757375")
	// Half a micro-credit twice is one, rounded once (per term it would be two).
	h.send(event("e3", "acme", "2026-11-24T00:00:02Z", `{"model":"tiny","input_tokens":1,"cached_input_tokens":1}`), "accepted", "0.000001")
	if got, want := h.lots("acme"), "promo:3.242624/never subscription:2000/12-23"; got != want {
		t.Fatalf("lots %s, want %s", got, want)
	}
	// 200 s of video: the promo's last 3.242624, then 96.757376 of the plan.
	h.send(event("e4", "acme", "2026-11-25T00:00:00Z", `{"model":"sora-1","video_seconds":"200"}`), "accepted", "100")
	h.expect(h.call("POST", "/api/v1/customers/acme/grants", `{"amount":"100","source":"purchase","paid_usd":"1"}`), 201)
	if got, want := h.lots("acme"), "subscription:1903.242624/12-23 purchase:100/never"; got != want {
		t.Fatalf("lots %s, want %s", got, want)
	}

	// Renewal 1 at Dec 23: 500 of the 1903.242624 roll over to Jan 23, the
	// other 1403.242624 are breakage; the next 2000 arrive.
	renew := func(at string, want int) {
		t.Helper()
		h.clk.Set(day(at))
		n, err := h.srv.Plans.RenewDue(context.Background())
		if err != nil || n != want {
			t.Fatalf("renew at %s: %d, %v", at, n, err)
		}
		// Again, and from two callers at once: nothing more.
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if n, err := h.srv.Plans.RenewDue(context.Background()); err != nil || n != 0 {
					t.Errorf("renew again at %s: %d, %v", at, n, err)
				}
			}()
		}
		wg.Wait()
	}
	renew("2026-12-23T09:59:59Z", 0)
	renew("2026-12-23T10:00:00Z", 1)
	if got, want := h.lots("acme"), "subscription:500/01-23 subscription:2000/01-23 purchase:100/never"; got != want {
		t.Fatalf("after renewal 1: lots %s, want %s", got, want)
	}
	if got := h.expired("acme"); got != amt(t, "1403.242624") {
		t.Fatalf("breakage after renewal 1: %s", got)
	}
	// The rolled-over credit goes first (same expiry, older lot).
	h.send(event("e5", "acme", "2026-12-24T00:00:00Z", `{"model":"sora-1","video_seconds":1200}`), "accepted", "600")
	if got, want := h.lots("acme"), "subscription:1900/01-23 purchase:100/never"; got != want {
		t.Fatalf("lots %s, want %s", got, want)
	}

	// Renewal 2 at Jan 23: 500 of 1900 roll over, 1400 expire.
	renew("2027-01-23T10:00:00Z", 1)
	if got := h.expired("acme"); got != amt(t, "2803.242624") {
		t.Fatalf("breakage after renewal 2: %s", got)
	}
	// Priced by the card of Jan 5 (input 200/MTok): 0.2.
	h.send(event("e6", "acme", "2027-01-05T00:00:00Z", `{"model":"gpt-4o","input_tokens":1000}`), "accepted", "0.2")
	if got, want := h.lots("acme"), "subscription:499.8/02-23 subscription:2000/02-23 purchase:100/never"; got != want {
		t.Fatalf("lots %s, want %s", got, want)
	}

	// Renewal 3 at Feb 23: the rolled-over 499.8 expire, and 1500 of the
	// January allowance; 500 roll over.
	renew("2027-02-23T10:00:00Z", 1)
	if got := h.expired("acme"); got != amt(t, "4803.042624") {
		t.Fatalf("breakage after renewal 3: %s", got)
	}
	if got, want := h.lots("acme"), "subscription:500/03-23 subscription:2000/03-23 purchase:100/never"; got != want {
		t.Fatalf("lots %s, want %s", got, want)
	}
	h.expectBalance("acme", "2600", "0")
	s := h.expect(h.call("GET", "/api/v1/customers/acme", ""), 200)
	if s.get("subscription", "current_period_start") != "2027-02-23T10:00:00Z" || s.get("subscription", "current_period_end") != "2027-03-23T10:00:00Z" {
		t.Fatalf("subscription: %s", s.raw)
	}

	// Usage, by model: every event once, with its exact credits.
	u := h.expect(h.call("GET", "/api/v1/usage?customer=acme&group_by=model", ""), 200)
	want := `[{"key":"gpt-4o","requests":2,"input_tokens":2000,"output_tokens":500,"cached_input_tokens":3,"reasoning_tokens":7,"credits":"0.957375","cost_usd":"0"},` +
		`{"key":"sora-1","requests":3,"video_us":1412000000,"credits":"706","cost_usd":"0"},` +
		`{"key":"tiny","requests":1,"input_tokens":1,"cached_input_tokens":1,"credits":"0.000001","cost_usd":"0"}]`
	var rows struct {
		Rows []fb.UsageRow `json:"rows"`
	}
	if err := json.Unmarshal([]byte(u.raw), &rows); err != nil {
		t.Fatal(err)
	}
	if got := mustJSON(rows.Rows); got != want {
		t.Fatalf("usage:\n%s\nwant\n%s", got, want)
	}
	// Granted 2000 × 4 + 10 + 100 = 8110 = available 2600 + charged
	// 706.957376 + expired 4803.042624.
	a, err := h.store.Account(context.Background(), "acme")
	if err != nil || a.Granted != amt(t, "8110") || a.Charged != amt(t, "706.957376") {
		t.Fatalf("account: %+v %v", a, err)
	}
	rep, err := ledger.Verify(context.Background(), h.store)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %v", err, rep.Problems)
	}
}

func day(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func amt(t *testing.T, s string) fb.Amount {
	t.Helper()
	a, err := fb.ParseAmount(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestEventsExactlyOnce: 10,000 events sent twice, concurrently, over many
// connections, in batches of 100: each is debited once, the second sending
// reports duplicates, and the totals are exact.
func TestEventsExactlyOnce(t *testing.T) {
	h := newHarness(t)
	h.expect(h.call("PUT", "/api/v1/prices/sora-1", `{"per_video_second":"0.5","effective_from":"2026-11-01T00:00:00Z"}`), 200)
	h.newCustomer("acme")
	h.grant("acme", `{"amount":"100000"}`)
	const n, batch = 10_000, 100
	bodies := make([]string, 0, n/batch)
	for i := 0; i < n; i += batch {
		var evs []string
		for j := i; j < i+batch; j++ {
			evs = append(evs, event(fmt.Sprintf("evt-%d", j), "acme", "2026-11-23T09:00:00Z", `{"model":"sora-1","video_seconds":"0.000002"}`))
		}
		bodies = append(bodies, "["+strings.Join(evs, ",")+"]")
	}
	var mu sync.Mutex
	count := map[string]int{}
	var wg sync.WaitGroup
	for round := range 2 {
		for _, body := range bodies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := h.call("POST", "/api/v1/events", body, "Content-Type", "application/cloudevents-batch+json")
				if r.status != 200 {
					t.Errorf("round %d: %d %s", round, r.status, r.raw)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, res := range results(t, r) {
					count[res["status"].(string)]++
					if res["cost"] != "0.000001" {
						t.Errorf("cost %v", res)
					}
				}
			}()
		}
	}
	wg.Wait()
	if count["accepted"] != n || count["duplicate"] != n || len(count) != 2 {
		t.Fatalf("statuses %v, want %d accepted and %d duplicate", count, n, n)
	}
	// 10,000 × 0.000001 = 0.01 debited, once.
	h.expectBalance("acme", "99999.99", "0")
	u := h.expect(h.call("GET", "/api/v1/usage?group_by=customer", ""), 200)
	if !strings.Contains(u.raw, `"requests":10000`) || !strings.Contains(u.raw, `"credits":"0.01"`) {
		t.Fatalf("usage: %s", u.raw)
	}
}

// TestEventsBadInput: per-event errors never sink the batch; request
// errors are clear.
func TestEventsBadInput(t *testing.T) {
	h := newHarness(t)
	h.expect(h.call("PUT", "/api/v1/prices/gpt-4o", `{"input_per_mtok":"250","output_per_mtok":"1000","effective_from":"2026-11-01T00:00:00Z"}`), 200)
	h.newCustomer("acme")
	h.grant("acme", `{"amount":"1"}`)
	good := `{"model":"gpt-4o","input_tokens":1000}`
	cases := []struct {
		ev, code, msg string
	}{
		{event("", "acme", "2026-11-23T09:00:00Z", good), "invalid", "id"},
		{event("b1", "", "2026-11-23T09:00:00Z", good), "invalid", "subject"},
		{`{"specversion":"1.0","id":"b2","type":"usage","subject":"acme","data":` + good + `}`, "invalid", "source"},
		{`{"specversion":"0.3","id":"b3","source":"s","type":"usage","subject":"acme","data":` + good + `}`, "invalid", "specversion"},
		{event("b4", "acme", "2026-11-23T09:00:00Z", `{"model":"gpt-9","input_tokens":1}`), "unknown_model", "never free"},
		{event("b5", "acme", "2026-11-23T09:00:00Z", `{"model":"gpt-4o","input_tokens":-5}`), "invalid", "input_tokens"},
		{event("b6", "acme", "2026-11-23T09:00:00Z", `{"model":"gpt-4o","input_tokens":"many"}`), "invalid", "input_tokens"},
		{event("b7", "acme", "2026-11-23T09:00:00Z", `{"model":"gpt-4o","input_tokens":1.5}`), "invalid", "input_tokens"},
		{event("b8", "acme", "2026-11-23T09:00:00Z", `{"model":"gpt-4o","video_seconds":"0.0000001"}`), "invalid", "video_seconds"},
		{event("b9", "acme", "2026-11-23T09:00:00Z", `{"model":"gpt-4o","colour_tokens":1}`), "invalid", "colour_tokens"},
		{event("b10", "acme", "yesterday", good), "invalid", "time"},
		{event("b11", "nobody", "2026-11-23T09:00:00Z", good), "unknown_customer", "nobody"},
		{event("b12", "acme", "2026-11-23T09:00:00Z", `{"model":"gpt-4o","input_tokens":100000}`), "insufficient_credits", ""},
		{event("b13", "acme", "2026-11-23T09:00:00Z", `{"input_tokens":1}`), "invalid", "model"},
		{`"not an object"`, "invalid", "CloudEvent"},
		{event("b14", "acme", "2026-11-01T00:00:00Z", `{"model":"gpt-4o","input_tokens":1}`), "", ""}, // accepted: the card is in force
		{event("b15", "acme", "2026-10-31T23:59:59Z", `{"model":"gpt-4o","input_tokens":1}`), "unknown_model", "no price"},
	}
	var evs []string
	for _, c := range cases {
		evs = append(evs, c.ev)
	}
	evs = append(evs, event("ok", "acme", "2026-11-23T09:00:00Z", good))
	res := results(t, h.expect(h.call("POST", "/api/v1/events", "["+strings.Join(evs, ",")+"]"), 200))
	if len(res) != len(evs) {
		t.Fatalf("%d results for %d events", len(res), len(evs))
	}
	for i, c := range cases {
		if c.code == "" {
			if res[i]["status"] != "accepted" {
				t.Errorf("event %d: %v, want accepted", i, res[i])
			}
			continue
		}
		msg, _ := res[i]["message"].(string)
		if res[i]["status"] != "rejected" || res[i]["error"] != c.code || !strings.Contains(msg, c.msg) {
			t.Errorf("event %d (%s): %v, want rejected %s mentioning %q", i, c.ev, res[i], c.code, c.msg)
		}
	}
	if last := res[len(res)-1]; last["status"] != "accepted" || last["cost"] != "0.25" {
		t.Fatalf("the good event: %v", last)
	}
	// A rejected event does not use up its id: after a top-up, b12 passes.
	h.grant("acme", `{"amount":"1000"}`)
	h.send(cases[12].ev, "accepted", "25")
	// A used id with another payload → conflict; the same payload → duplicate.
	h.send(event("ok", "acme", "2026-11-23T09:00:00Z", `{"model":"gpt-4o","input_tokens":1001}`), "rejected", "")
	h.send(event("ok", "acme", "2026-11-23T09:00:00Z", `{"model":"gpt-4o","input_tokens":"1000"}`), "duplicate", "0.25")
	h.send(event("ok", "beta", "2026-11-23T09:00:00Z", good), "rejected", "")

	// Request errors.
	h.expectErr(h.call("POST", "/api/v1/events", event("x", "acme", "2026-11-23T09:00:00Z", good), "Content-Type", "text/plain"), 415, fb.EUnsupportedMedia, "", "")
	h.expectErr(h.call("POST", "/api/v1/events", event("x", "acme", "2026-11-23T09:00:00Z", good), "Content-Type", "application/cloudevents-batch+json"), 400, fb.EInvalid, "", "")
	h.expectErr(h.call("POST", "/api/v1/events", `[`), 400, fb.EInvalid, "", "")
	h.expectErr(h.call("POST", "/api/v1/events", `[]`), 400, fb.EInvalid, "", "")
	many := strings.Repeat(event("x", "acme", "2026-11-23T09:00:00Z", good)+",", 1001)
	h.expectErr(h.call("POST", "/api/v1/events", "["+strings.TrimSuffix(many, ",")+"]"), 413, fb.ETooLarge, "", "")
	huge := event("x", "acme", "2026-11-23T09:00:00Z", `{"model":"gpt-4o","input_tokens":1,"pad":"`+strings.Repeat("x", 5<<20)+`"}`)
	h.expectErr(h.call("POST", "/api/v1/events", huge), 413, fb.ETooLarge, "", "")
	h.expectBalance("acme", "975.74975", "0") // 1001 − 0.25 − 25 − 0.00025
}

// TestKeysAndPlans: a key is shown once, listed by prefix only, reads its
// own customer's usage only and fails at once when revoked; a plan in use
// cannot be deleted; a plan change waits for the period's end unless asked
// for now, which starts a new period with the new allowance and keeps what
// is left of the old one.
func TestKeysAndPlans(t *testing.T) {
	h := newHarness(t)
	h.expect(h.call("POST", "/api/v1/plans", `{"id":"pro","price_usd":"20","credits":"2000","overdraft_limit":"5"}`), 201)
	h.expect(h.call("POST", "/api/v1/plans", `{"id":"payg","price_usd":"0","credits":"0"}`), 201)
	h.expectErr(h.call("POST", "/api/v1/plans", `{"id":"bad","price_usd":"20","credits":"0"}`), 400, fb.EInvalid, "", "credits")
	h.expectErr(h.call("POST", "/api/v1/plans", `{"id":"bad","period":"fortnight"}`), 400, fb.EInvalid, "", "period")
	h.expectErr(h.call("POST", "/api/v1/customers", `{"id":"acme","plan":"gold"}`), 404, fb.ENotFound, "", "")
	h.expect(h.call("POST", "/api/v1/customers", `{"id":"acme","plan":"pro"}`), 201)
	h.expect(h.call("POST", "/api/v1/customers", `{"id":"beta","plan":"payg"}`), 201)
	h.expectBalance("beta", "0", "0") // pay-as-you-go: no lot
	r := h.expect(h.call("GET", "/api/v1/customers/acme/balance", ""), 200)
	if r.get("overdraft_limit") != "5" || r.get("available") != "2005" {
		t.Fatalf("acme on pro: %s", r.raw)
	}
	h.expectErr(h.call("DELETE", "/api/v1/plans/pro", ""), 409, fb.EConflict, "plan_in_use", "")

	k := h.expect(h.call("POST", "/api/v1/customers/acme/keys", `{"name":"ci"}`), 201)
	key := k.get("key")
	if !strings.HasPrefix(key, "fbk_") || len(key) < 36 || !strings.HasPrefix(key, k.get("prefix")) {
		t.Fatalf("key: %s", k.raw)
	}
	kb := h.expect(h.call("POST", "/api/v1/customers/beta/keys", ""), 201)
	list := h.expect(h.call("GET", "/api/v1/customers/acme/keys", ""), 200)
	if strings.Contains(list.raw, key) || !strings.Contains(list.raw, k.get("prefix")) {
		t.Fatalf("key list shows the secret or no prefix: %s", list.raw)
	}
	mine := h.expect(h.call("GET", "/v1/account/usage", "", "Authorization", "Bearer "+key), 200)
	if mine.get("customer") != "acme" {
		t.Fatalf("own usage: %s", mine.raw)
	}
	h.expect(h.call("GET", "/v1/account/usage", "", "Authorization", "", "x-api-key", kb.get("key")), 200)
	h.expectErr(h.call("GET", "/v1/account/usage?customer=beta", "", "Authorization", "Bearer "+key), 403, fb.EForbidden, "", "")
	h.expectErr(h.call("GET", "/v1/account/usage", "", "Authorization", "Bearer fbk_nope"), 401, fb.EInvalidAPIKey, "", "")
	h.expectErr(h.call("GET", "/v1/account/usage", "", "Authorization", "Bearer "+adminTok), 401, fb.EInvalidAPIKey, "", "")
	h.expect(h.call("DELETE", "/api/v1/keys/"+k.get("id"), ""), 200)
	h.expectErr(h.call("GET", "/v1/account/usage", "", "Authorization", "Bearer "+key), 401, fb.EInvalidAPIKey, "", "")

	// Period end: nothing changes until then.
	h.expect(h.call("PUT", "/api/v1/customers/acme/subscription", `{"plan":"payg"}`), 200)
	h.expectErr(h.call("DELETE", "/api/v1/plans/payg", ""), 409, fb.EConflict, "plan_in_use", "")
	h.expectBalance("acme", "2005", "0")
	h.clk.Set(day("2026-12-23T10:00:00Z"))
	if n, err := h.srv.Plans.RenewDue(context.Background()); err != nil || n != 2 { // acme and beta
		t.Fatalf("renew: %d %v", n, err)
	}
	c := h.expect(h.call("GET", "/api/v1/customers/acme", ""), 200)
	if c.get("plan") != "payg" || c.get("subscription", "current_period_end") != "2027-01-23T10:00:00Z" {
		t.Fatalf("after the period end: %s", c.raw)
	}
	h.expectBalance("acme", "0", "0") // the allowance expired, no new one, no overdraft
	h.expect(h.call("DELETE", "/api/v1/plans/pro", ""), 200)

	// Now: beta moves to a new plan at once and gets its allowance; its
	// top-up stays.
	h.expect(h.call("POST", "/api/v1/plans", `{"id":"pro2","price_usd":"10","credits":"500","period":"week"}`), 201)
	h.grant("beta", `{"amount":"7","paid_usd":"0.07"}`)
	s := h.expect(h.call("PUT", "/api/v1/customers/beta/subscription", `{"plan":"pro2","effective":"now"}`), 200)
	if s.get("plan") != "pro2" || s.get("current_period_start") != "2026-12-23T10:00:00Z" || s.get("current_period_end") != "2026-12-30T10:00:00Z" {
		t.Fatalf("change now: %s", s.raw)
	}
	h.expectBalance("beta", "507", "0")
	h.expectErr(h.call("PUT", "/api/v1/customers/beta/subscription", `{"plan":"pro2","effective":"tomorrow"}`), 400, fb.EInvalid, "", "effective")
	h.expectErr(h.call("PUT", "/api/v1/customers/nobody/subscription", `{"plan":"pro2"}`), 404, fb.ENotFound, "", "")
}
