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
