package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	fb "farebox"
	"farebox/notify"
)

// event is a delivered event's body.
type event struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Created time.Time       `json:"created"`
	Data    json.RawMessage `json:"data"`
}

func (r *receiver) events(t *testing.T, secret string) []event {
	t.Helper()
	var out []event
	for _, g := range r.all() {
		if err := notify.Verify(secret, g.sig, g.body, time.Time{}, 0); err != nil {
			t.Fatalf("event %s: %v", g.id, err)
		}
		var e event
		if err := json.Unmarshal(g.body, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func data(t *testing.T, e event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCreditsExpiring: a customer with expiring_days 3 hears of a lot with
// credit left 3 days before it expires, once however often the follower
// runs; not before, not for a lot already used up, not after the expiry.
func TestCreditsExpiring(t *testing.T) {
	f := newFixture(t)
	recv := newReceiver(t)
	secret := f.api("POST", "/api/v1/webhook-endpoints", fmt.Sprintf(`{"url":%q,"events":["credits.expiring"]}`, recv.url))["secret"].(string)
	f.round()
	f.api("POST", "/api/v1/customers", `{"id":"acme","name":"Acme"}`)
	f.api("PUT", "/api/v1/customers/acme/alerts", `{"expiring_days":3}`)
	expires := t0.Add(10 * 24 * time.Hour)
	f.api("POST", "/api/v1/customers/acme/grants", fmt.Sprintf(`{"amount":"40","source":"promo","expires_at":%q,"idempotency_key":"p1"}`, expires.Format(time.RFC3339)))
	// A second lot, expiring at the same time, used up before the warning.
	f.api("POST", "/api/v1/customers/acme/grants", fmt.Sprintf(`{"amount":"5","source":"promo","priority":0,"expires_at":%q,"idempotency_key":"p0"}`, expires.Add(-time.Hour).Format(time.RFC3339)))
	f.op(fb.Op{Kind: fb.OpDebit, Customer: "acme", Amount: 5 * fb.Micro})

	for day := 0; day < 14; day++ {
		for range 3 {
			f.round()
		}
		got := recv.events(t, secret)
		switch {
		case day < 7 && len(got) != 0:
			t.Fatalf("day %d, %s before the expiry: %d events, want none yet", day, expires.Sub(f.clk.Now()), len(got))
		case day >= 7 && len(got) != 1:
			t.Fatalf("day %d: %d events, want one credits.expiring", day, len(got))
		}
		f.clk.Advance(24 * time.Hour)
	}
	e := recv.events(t, secret)[0]
	d := data(t, e)
	if e.Type != notify.CreditsExpiring || d["customer"] != "acme" || d["remaining"] != "40" || d["days"] != 3.0 || d["expires_at"] != expires.Format(time.RFC3339) {
		t.Fatalf("credits.expiring %s %s, want acme's 40 credits expiring %s, 3 days ahead", e.Type, e.Data, expires.Format(time.RFC3339))
	}
	if want := t0.Add(7 * 24 * time.Hour); e.Created.Before(want) || e.Created.After(want.Add(24*time.Hour)) {
		t.Fatalf("raised at %s, want on the day 3 days before %s", e.Created, expires)
	}
}

// TestSubscriptionRenewed: a plan's first allowance is not a renewal; each
// period's next one raises subscription.renewed, once, with the plan,
// period and lot. The plan's default low_balance applies to its customer
// without alerts of its own. The old allowance's lapse at the period's end
// is replaced by the renewal: it is no crossing (no balance.low, no
// balance.depleted, no automatic top-up), whether the sweep or the renewal
// commits it.
func TestSubscriptionRenewed(t *testing.T) {
	f := newFixture(t)
	recv := newReceiver(t)
	secret := f.api("POST", "/api/v1/webhook-endpoints", fmt.Sprintf(`{"url":%q,"events":["subscription.renewed","balance.low","balance.depleted"]}`, recv.url))["secret"].(string)
	f.round()
	f.api("POST", "/api/v1/plans", `{"id":"pro","name":"Pro","price_usd":"20","period":"month","credits":"2000","models":["*"],"low_balance":"100"}`)
	f.api("POST", "/api/v1/customers", `{"id":"acme","name":"Acme","plan":"pro"}`)
	if a := f.api("GET", "/api/v1/customers/acme/alerts", ""); a["low_balance"] != "100" || a["source"] != "plan" {
		t.Fatalf("alerts %v, want the plan's low_balance 100", a)
	}
	ctx := context.Background()
	if err := f.a.Store.PutAutoTopup(ctx, fb.AutoTopup{Customer: "acme", Threshold: 80 * fb.Micro, Credits: 1000 * fb.Micro}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		f.round()
	}
	if got := recv.all(); len(got) != 0 {
		t.Fatalf("%d events after subscribing, want none (the first allowance is no renewal)", len(got))
	}
	f.op(fb.Op{Kind: fb.OpDebit, Customer: "acme", Amount: 1950 * fb.Micro}) // 50 left: below the plan's 100
	f.round()
	first, err := f.a.Store.LastTopup(ctx, "acme")
	if err != nil {
		t.Fatalf("no automatic top-up for the crossing: %v", err)
	}
	// Two period ends: the first renewal commits the old allowance's
	// lapse with its grant; at the second the sweep lapses it first.
	for i := range 2 {
		f.clk.Advance(31 * 24 * time.Hour)
		if i == 1 {
			if _, err := f.a.Engine.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			f.round()
		}
		if _, err := f.a.Plans.RenewDue(ctx); err != nil {
			t.Fatal(err)
		}
		f.round()
		f.round()
	}
	var renewed []event
	low, depleted := 0, 0
	for _, e := range recv.events(t, secret) {
		switch e.Type {
		case notify.SubscriptionRenew:
			renewed = append(renewed, e)
		case notify.BalanceLow:
			low++
		case notify.BalanceDepleted:
			depleted++
		}
	}
	if low != 1 || depleted != 0 {
		t.Fatalf("%d balance.low and %d balance.depleted, want 1 and 0 (the plan's default threshold, crossed once; the lapses at the period ends are renewed)", low, depleted)
	}
	if last, err := f.a.Store.LastTopup(ctx, "acme"); err != nil || last.ID != first.ID {
		t.Fatalf("the last automatic top-up %+v (%v), want still the crossing's %s", last, err, first.ID)
	}
	if len(renewed) != 2 {
		t.Fatalf("%d subscription.renewed, want 2 (two period ends)", len(renewed))
	}
	for i, e := range renewed {
		d := data(t, e)
		if d["customer"] != "acme" || d["plan"] != "pro" || d["credits"] != "2000" || d["lot"] == "" || d["period_start"] == nil || d["period_end"] == nil {
			t.Fatalf("renewal %d: %s", i, e.Data)
		}
	}
	if data(t, renewed[0])["period_end"] != data(t, renewed[1])["period_start"] {
		t.Fatalf("the renewals' periods do not follow each other: %s then %s", renewed[0].Data, renewed[1].Data)
	}
}

// TestLeaseEvents: the leasing work's journal entries raise lease.started
// (at a scheduled lease's start, or at booking for one starting now),
// lease.ended (ended early, or at its end) and lease.preempted (a spot
// lease pushed out by a smaller pool), once each, with the lease's pool,
// class, GPUs and window; booking, renewing and billing raise nothing.
func TestLeaseEvents(t *testing.T) {
	f := newFixture(t)
	recv := newReceiver(t)
	secret := f.api("POST", "/api/v1/webhook-endpoints", fmt.Sprintf(`{"url":%q,"events":["lease.started","lease.ended","lease.preempted"]}`, recv.url))["secret"].(string)
	f.round()
	f.api("POST", "/api/v1/customers", `{"id":"acme","name":"Acme"}`)
	f.api("POST", "/api/v1/customers/acme/grants", `{"amount":"100000","source":"purchase","paid_usd":"1000"}`)
	f.api("POST", "/api/v1/pools", `{"id":"h100","gpus":8,"spot_notice_seconds":0,"prices":{"on_demand":"100","reserved":"80","spot":"50"}}`)
	at := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }
	later := f.api("POST", "/api/v1/leases", `{"customer":"acme","pool":"h100","gpus":4,"class":"on_demand","start":"`+at(time.Hour)+`","end":"`+at(3*time.Hour)+`","idempotency_key":"l1"}`)
	now := f.api("POST", "/api/v1/leases", `{"customer":"acme","pool":"h100","gpus":2,"class":"on_demand","start":"`+at(0)+`","idempotency_key":"l2"}`)
	spot := f.api("POST", "/api/v1/leases", `{"customer":"acme","pool":"h100","gpus":2,"class":"spot","start":"`+at(0)+`","idempotency_key":"l3"}`)
	ctx := context.Background()
	tick := func() {
		t.Helper()
		if _, err := f.a.Compute.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		f.round()
	}
	tick()
	f.clk.Advance(30 * time.Minute)
	tick()
	f.api("POST", "/api/v1/leases/"+now["id"].(string)+"/end", ``)
	f.clk.Advance(45 * time.Minute) // the scheduled lease starts
	tick()
	f.api("PATCH", "/api/v1/pools/h100", `{"gpus":4}`) // the spot lease must go
	tick()
	f.clk.Advance(3 * time.Hour) // the scheduled lease ends
	for range 3 {
		tick()
	}
	got := map[string][]map[string]any{}
	for _, e := range recv.events(t, secret) {
		d := data(t, e)
		got[d["lease"].(string)] = append(got[d["lease"].(string)], map[string]any{"type": e.Type, "data": d})
	}
	types := func(id string) string {
		var out []string
		for _, g := range got[id] {
			out = append(out, g["type"].(string))
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct{ id, want string }{
		{now["id"].(string), "lease.started,lease.ended"},
		{later["id"].(string), "lease.started,lease.ended"},
		{spot["id"].(string), "lease.started,lease.preempted"},
	} {
		if got := types(c.id); got != c.want {
			t.Errorf("lease %s: events %s, want %s", c.id, got, c.want)
		}
	}
	first := got[later["id"].(string)][0]["data"].(map[string]any)
	if first["pool"] != "h100" || first["class"] != "on_demand" || first["gpus"] != 4.0 || first["customer"] != "acme" ||
		first["start"] != at(time.Hour) || first["end"] != at(3*time.Hour) || first["at"] != at(75*time.Minute) {
		t.Errorf("lease.started of the scheduled lease: %v", first)
	}
	if p := got[spot["id"].(string)]; len(p) == 2 && p[1]["data"].(map[string]any)["reason"] == nil {
		t.Errorf("lease.preempted without its reason: %v", p[1]["data"])
	}
}
