package compute_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	fb "farebox"
	"farebox/app"
	"farebox/fakeclock"
	"farebox/ledger"
	"farebox/routing"
)

const token = "compute-test-admin-token-0123456789abcdef"

type harness struct {
	t   *testing.T
	a   *app.App
	clk *fakeclock.Clock
	srv *httptest.Server
}

func newHarness(t *testing.T, t0 time.Time) *harness {
	t.Helper()
	clk := fakeclock.New(t0)
	a, err := app.New(context.Background(), app.Config{DataDir: t.TempDir(), AdminToken: token, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, a: a, clk: clk, srv: httptest.NewServer(a.Handler)}
	t.Cleanup(func() {
		h.srv.Close()
		a.Close()
	})
	return h
}

// call sends a management request and decodes the answer.
func (h *harness) call(method, path, body string) (int, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		h.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

func (h *harness) must(method, path, body string, want int) map[string]any {
	h.t.Helper()
	code, m := h.call(method, path, body)
	if code != want {
		h.t.Fatalf("%s %s: %d %v, want %d", method, path, code, m, want)
	}
	return m
}

// at moves the clock to t0+d and runs the lease job once, as App.Run's
// ticker would.
func (h *harness) at(t0 time.Time, d time.Duration) {
	h.t.Helper()
	h.clk.Set(t0.Add(d))
	if _, err := h.a.Compute.Tick(context.Background()); err != nil {
		h.t.Fatalf("tick at +%s: %v", d, err)
	}
}

func (h *harness) lease(id string) map[string]any {
	h.t.Helper()
	return h.must("GET", "/api/v1/leases/"+id, "", 200)
}

func (h *harness) check(what string, m map[string]any, want map[string]any) {
	h.t.Helper()
	for k, v := range want {
		if m[k] != v {
			h.t.Errorf("%s: %s = %v, want %v (%v)", what, k, m[k], v, m)
		}
	}
}

// TestBillingScenario: on an injected clock, a reserved lease, an
// on-demand lease extended three times, a spot lease pre-empted by the
// reserved one, and a lease ended by a refused hold: every credit held
// and charged, revenue and cost in the economics report to the
// micro-dollar, every state change in the journal, and the ledger's
// journal verifies.
func TestBillingScenario(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	h := newHarness(t, t0)
	h.must("POST", "/api/v1/pools", `{"id": "h100-eu", "gpu_type": "H100", "region": "eu", "gpus": 16, "cost_usd_per_gpu_hour": "1.9",
		"reserved_for_inference": 4, "prices": {"on_demand": "250", "reserved": "190", "spot": "120"}}`, 201)
	for _, c := range []struct{ id, credits, paid string }{{"acme", "100000", "1000"}, {"beta", "10000", "50"}, {"gamma", "5000", "50"}, {"delta", "600", "6"}} {
		h.must("POST", "/api/v1/customers", `{"id": "`+c.id+`"}`, 201)
		h.must("POST", "/api/v1/customers/"+c.id+"/grants", `{"amount": "`+c.credits+`", "paid_usd": "`+c.paid+`"}`, 201)
	}

	// gamma takes 8 idle GPUs as spot; beta 2 on demand; delta 1 on demand.
	spot := h.must("POST", "/api/v1/leases", `{"customer": "gamma", "pool": "h100-eu", "gpus": 8, "class": "spot"}`, 201)
	h.check("spot", spot, map[string]any{"state": "active", "held": "960", "charged": "0", "end": nil})
	od := h.must("POST", "/api/v1/leases", `{"customer": "beta", "pool": "h100-eu", "gpus": 2, "class": "on_demand", "idempotency_key": "od-1"}`, 201)
	h.check("on-demand", od, map[string]any{"state": "active", "held": "500"})
	poor := h.must("POST", "/api/v1/leases", `{"customer": "delta", "pool": "h100-eu", "gpus": 1, "class": "on_demand"}`, 201)
	h.check("delta", poor, map[string]any{"held": "250"})
	// The same booking again answers the same lease; another under its key is a conflict.
	if again := h.must("POST", "/api/v1/leases", `{"customer": "beta", "pool": "h100-eu", "gpus": 2, "class": "on_demand", "idempotency_key": "od-1"}`, 201); again["id"] != od["id"] {
		t.Fatalf("replayed booking %v, want lease %v", again["id"], od["id"])
	}
	h.must("POST", "/api/v1/leases", `{"customer": "beta", "pool": "h100-eu", "gpus": 3, "class": "on_demand", "idempotency_key": "od-1"}`, 409)

	// acme books 4 GPUs reserved from +1h to +5h: 11 firm GPUs would
	// not fit, 4 do, and need gamma's spot GPUs from +1h.
	_, m := h.call("POST", "/api/v1/leases", `{"customer": "acme", "pool": "h100-eu", "gpus": 10, "class": "reserved", "start": "2026-12-01T01:00:00Z", "end": "2026-12-01T05:00:00Z"}`)
	if e, _ := m["error"].(map[string]any); e["code"] != "no_capacity" || e["type"] != "conflict" || e["at"] != "2026-12-01T01:00:00Z" {
		t.Fatalf("10 reserved GPUs: %v, want no_capacity at 01:00", m)
	}
	res := h.must("POST", "/api/v1/leases", `{"customer": "acme", "pool": "h100-eu", "gpus": 4, "class": "reserved", "start": "2026-12-01T01:00:00Z", "end": "2026-12-01T05:00:00Z"}`, 201)
	h.check("reserved", res, map[string]any{"state": "scheduled", "held": "3040", "charged": "0"})
	h.check("spot, pre-empted", h.lease(spot["id"].(string)), map[string]any{"state": "active", "end": "2026-12-01T01:00:00Z", "reason": "preempted", "preempted_by": res["id"]})
	if b := h.must("GET", "/api/v1/customers/acme/balance", "", 200); b["held"] != "3040" || b["available"] != "96960" {
		t.Fatalf("acme's balance %v: the reserved window is held whole", b)
	}

	h.at(t0, 55*time.Minute) // beta and delta hold their second hours
	h.check("on-demand, renewed", h.lease(od["id"].(string)), map[string]any{"held": "1000", "charged": "0"})
	h.at(t0, time.Hour) // first hours captured; gamma pre-empted; acme starts
	h.check("spot", h.lease(spot["id"].(string)), map[string]any{"state": "preempted", "charged": "960", "held": "0"})
	h.check("reserved", h.lease(res["id"].(string)), map[string]any{"state": "active"})
	h.check("on-demand", h.lease(od["id"].(string)), map[string]any{"held": "500", "charged": "500"})
	h.at(t0, 115*time.Minute) // delta has 100 credits left: its next hold is refused
	h.check("delta", h.lease(poor["id"].(string)), map[string]any{"state": "active", "end": "2026-12-01T02:00:00Z", "reason": "insufficient_credits"})
	h.at(t0, 2*time.Hour)
	h.check("delta", h.lease(poor["id"].(string)), map[string]any{"state": "ended", "charged": "500", "held": "0"})
	h.at(t0, 175*time.Minute) // beta's fourth hour held: its third extension
	h.at(t0, 3*time.Hour)
	h.check("on-demand", h.lease(od["id"].(string)), map[string]any{"held": "500", "charged": "1500"})
	h.clk.Set(t0.Add(210 * time.Minute))
	ended := h.must("POST", "/api/v1/leases/"+od["id"].(string)+"/end", "", 200)
	h.check("on-demand, ended", ended, map[string]any{"state": "ended", "charged": "1750", "held": "0", "end": "2026-12-01T03:30:00Z", "reason": "requested"})
	h.at(t0, 5*time.Hour)
	h.check("reserved", h.lease(res["id"].(string)), map[string]any{"state": "ended", "charged": "3040", "held": "0"})

	for c, want := range map[string]string{"acme": "96960", "beta": "8250", "gamma": "4040", "delta": "100"} {
		if b := h.must("GET", "/api/v1/customers/"+c+"/balance", "", 200); b["available"] != want || b["held"] != "0" {
			t.Errorf("%s's balance %v, want %s available, none held", c, b, want)
		}
	}
	// Revenue is each customer's cost basis × credits; cost the GPU-hours
	// at $1.9: acme 16 GPU-h, beta 7, gamma 8, delta 2.
	rep := h.must("GET", "/api/v1/reports/economics?from=2026-12-01&to=2026-12-02&group_by=customer", "", 200)
	want := map[string][2]string{"acme": {"30.4", "30.4"}, "beta": {"8.75", "13.3"}, "gamma": {"9.6", "15.2"}, "delta": {"5", "3.8"}}
	rows := rep["rows"].([]any)
	if len(rows) != len(want) {
		t.Fatalf("economics rows %v", rows)
	}
	for _, r := range rows {
		r := r.(map[string]any)
		w := want[r["key"].(string)]
		if r["revenue_usd"] != w[0] || r["cost_usd"] != w[1] {
			t.Errorf("economics of %v: revenue %v cost %v, want %v", r["key"], r["revenue_usd"], r["cost_usd"], w)
		}
	}
	byProduct := h.must("GET", "/api/v1/reports/economics?from=2026-12-01&to=2026-12-02&group_by=product", "", 200)
	if rows := byProduct["rows"].([]any); len(rows) != 1 || rows[0].(map[string]any)["key"] != "lease" ||
		rows[0].(map[string]any)["revenue_usd"] != "53.75" || rows[0].(map[string]any)["cost_usd"] != "62.7" {
		t.Fatalf("economics by product %v: want one lease row, $53.75 revenue, $62.70 cost", rows)
	}

	// Every lease's start, end and pre-emption is a journal entry.
	events := map[string][]string{}
	rep2, err := ledger.Verify(context.Background(), h.a.Store)
	if err != nil || len(rep2.Problems) > 0 {
		t.Fatalf("ledger verify: %v %v", err, rep2.Problems)
	}
	if _, err := h.a.Store.Snapshot(context.Background(), func(e *fb.JournalEntry) error {
		if l := e.Op.Lease; l != nil && (l.Event == fb.LeaseStarted || l.Event == fb.LeaseEndedEv || l.Event == fb.LeasePreemptEv) {
			events[l.ID] = append(events[l.ID], l.Event)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[any]string{spot["id"]: "started preempted", od["id"]: "started ended", poor["id"]: "started ended", res["id"]: "started ended"} {
		if got := strings.Join(events[id.(string)], " "); got != want {
			t.Errorf("journal events of %v: %q, want %q", id, got, want)
		}
	}
}

// TestBillingEdges: a lease of 30 s pays the 60 s minimum; a scheduled
// lease ended before its start pays nothing (a reserved one its window,
// its GPUs free again at once); after three hours without the billing
// job an open lease is charged every second of them, its expired hold
// debited instead; spot leases inside the pool's notice are safe from a
// booking that would need them (no_capacity at the instant).
func TestBillingEdges(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	h := newHarness(t, t0)
	h.must("POST", "/api/v1/pools", `{"id": "a100", "gpus": 10, "cost_usd_per_gpu_hour": "1", "spot_notice_seconds": 600,
		"prices": {"on_demand": "360", "reserved": "100", "spot": "36"}}`, 201)
	h.must("POST", "/api/v1/customers", `{"id": "acme"}`, 201)
	h.must("POST", "/api/v1/customers/acme/grants", `{"amount": "100000", "paid_usd": "1000"}`, 201)
	book := func(body string) map[string]any {
		return h.must("POST", "/api/v1/leases", `{"customer": "acme", "pool": "a100", `+body+`}`, 201)
	}

	// 1 GPU at 360 credits an hour is 0.1 a second: 30 s pays 60 s.
	short := book(`"gpus": 1, "class": "on_demand"`)
	h.clk.Set(t0.Add(30 * time.Second))
	h.check("30 s", h.must("POST", "/api/v1/leases/"+short["id"].(string)+"/end", "", 200), map[string]any{"charged": "6", "state": "ended"})

	// Scheduled, ended before they start.
	od := book(`"gpus": 2, "class": "on_demand", "start": "2026-12-01T02:00:00Z"`)
	res := book(`"gpus": 2, "class": "reserved", "start": "2026-12-01T02:00:00Z", "end": "2026-12-01T04:00:00Z"`)
	h.check("scheduled on-demand", od, map[string]any{"state": "scheduled", "held": "720"})
	h.check("scheduled reserved", res, map[string]any{"held": "400"})
	h.check("never started", h.must("POST", "/api/v1/leases/"+od["id"].(string)+"/end", "", 200), map[string]any{"charged": "0", "held": "0", "state": "ended"})
	h.check("reserved, ended early", h.must("POST", "/api/v1/leases/"+res["id"].(string)+"/end", "", 200), map[string]any{"charged": "400", "held": "0", "state": "ended"})
	av := h.must("GET", "/api/v1/pools/a100/availability?from=2026-12-01T02:00:00Z&to=2026-12-01T03:00:00Z", "", 200)
	if hr := av["data"].([]any)[0].(map[string]any); hr["free_gpus"] != float64(10) {
		t.Fatalf("GPUs of the ended leases not free again: %v", hr)
	}

	// An open lease left three hours without the billing job (and its
	// first hold past its expiry): every second charged all the same.
	open := book(`"gpus": 1, "class": "on_demand"`) // from 00:00:30
	h.at(t0, 3*time.Hour+30*time.Second)
	got := h.lease(open["id"].(string))
	h.check("caught up", got, map[string]any{"charged": "1080", "state": "active", "billed_to": "2026-12-01T03:00:30Z"})
	if got["held"] != "360" {
		t.Fatalf("caught up without the next hour held: %v", got)
	}
	if b := h.must("GET", "/api/v1/customers/acme/balance", "", 200); b["held"] != "360" {
		t.Fatalf("balance %v", b)
	}
	debits := 0
	h.a.Store.Snapshot(context.Background(), func(e *fb.JournalEntry) error {
		if e.Op.Kind == fb.OpDebit && e.Op.Lease != nil && e.Op.Lease.ID == open["id"] {
			debits++
		}
		return nil
	})
	if debits != 1 {
		t.Fatalf("%d debits of the lease, want 1 (its first hold expired before its capture)", debits)
	}

	// Spot within the notice: a firm booking that needs it is refused
	// until the notice has run.
	h.clk.Set(t0.Add(4 * time.Hour))
	spot := book(`"gpus": 8, "class": "spot"`)
	_, m := h.call("POST", "/api/v1/leases", `{"customer": "acme", "pool": "a100", "gpus": 4, "class": "on_demand"}`)
	if e := m["error"].(map[string]any); e["code"] != "no_capacity" || e["at"] != "2026-12-01T04:00:00Z" {
		t.Fatalf("a firm booking inside the spot notice: %v", m)
	}
	late := book(`"gpus": 4, "class": "on_demand", "start": "2026-12-01T04:10:00Z"`)
	h.check("spot, pre-empted after its notice", h.lease(spot["id"].(string)), map[string]any{"end": "2026-12-01T04:10:00Z", "reason": "preempted", "preempted_by": late["id"]})
	if rep, err := ledger.Verify(context.Background(), h.a.Store); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("ledger verify: %v %v", err, rep.Problems)
	}
}

// TestUtilizationMeasuresInference: a pool's utilization shows own
// inference's measured use beside its reservation: the served tokens of
// the pool's deployments ÷ their throughput, times their GPUs.
func TestUtilizationMeasuresInference(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clk := fakeclock.New(t0)
	a, err := app.New(context.Background(), app.Config{DataDir: t.TempDir(), AdminToken: token, Clock: clk,
		Deployments: []*routing.Deployment{{Name: "gpu/llama", Provider: "gpu", Type: routing.TypeOpenAI, Model: "llama", Upstream: "llama",
			BaseURL: "http://127.0.0.1:1/v1", GPUs: 4, TokensPerSecond: 2000}}})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, a: a, clk: clk, srv: httptest.NewServer(a.Handler)}
	t.Cleanup(func() {
		h.srv.Close()
		a.Close()
	})
	h.must("POST", "/api/v1/pools", `{"id": "own", "gpus": 8, "reserved_for_inference": 4, "deployments": ["gpu/llama"],
		"prices": {"on_demand": "1", "reserved": "1", "spot": "1"}}`, 201)
	h.must("POST", "/api/v1/customers", `{"id": "acme"}`, 201)
	h.must("POST", "/api/v1/customers/acme/grants", `{"amount": "100"}`, 201)
	// 3.6M tokens served at 2,000 a second on 4 GPUs: 1,800 s on 4 GPUs, 2 GPU-hours.
	if _, err := a.Engine.Submit(context.Background(), fb.Op{Kind: fb.OpDebit, Customer: "acme", Amount: fb.Micro, Key: "u1",
		Usage: &fb.Usage{ID: "req-1", Source: "gateway", Customer: "acme", Model: "llama", Provider: "gpu", Deployment: "gpu/llama", At: t0.Add(time.Minute),
			Quantities: fb.Quantities{InputTokens: 3_000_000, OutputTokens: 600_000}, Credits: fb.Micro}}); err != nil {
		t.Fatal(err)
	}
	u := h.must("GET", "/api/v1/pools/own/utilization?from=2026-12-01T00:00:00Z&to=2026-12-01T01:00:00Z", "", 200)
	inf := u["inference"].(map[string]any)
	if inf["reserved_gpu_hours"] != "4" || inf["measured_gpu_hours"] != "2" || inf["utilization_pct"] != "50.00" {
		t.Fatalf("inference %v: want 4 GPU-hours reserved, 2 measured, 50%%", inf)
	}
}
