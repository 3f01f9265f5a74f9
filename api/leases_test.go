package api

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestLeasesAPI: pools and leases over the API, every answer checked
// against the OpenAPI document: a pool made (again: the same), listed,
// changed (a shrink past a reserved lease is 409 no_capacity with the
// instant; spot leases are pre-empted instead); leases booked, refused
// with the first instant lacking GPUs, listed by state and paged, ended;
// the pool's utilization and availability; the 400s, 402 and 404s.
func TestLeasesAPI(t *testing.T) {
	h := newHarness(t)
	pool := `{"id": "h100-eu", "gpu_type": "H100", "region": "eu", "gpus": 16, "cost_usd_per_gpu_hour": "1.9", "reserved_for_inference": 4, "prices": {"on_demand": "250", "reserved": "190", "spot": "120"}}`
	p := h.expect(h.call("POST", "/api/v1/pools", pool), 201)
	if p.get("leasable_gpus") != "12" || p.get("prices", "spot") != "120" || p.get("cost_usd_per_gpu_hour") != "1.9" {
		t.Fatalf("pool %s", p.raw)
	}
	h.expect(h.call("POST", "/api/v1/pools", pool), 200)
	h.expectErr(h.call("POST", "/api/v1/pools", strings.Replace(pool, `"gpus": 16`, `"gpus": 8`, 1)), 409, "conflict", "pool_exists", "")
	for _, bad := range []struct{ body, param string }{
		{`{"id": "x", "gpus": 0, "prices": {"on_demand": "1", "reserved": "1", "spot": "1"}}`, "gpus"},
		{`{"id": "x", "gpus": 4, "reserved_for_inference": 5, "prices": {"on_demand": "1", "reserved": "1", "spot": "1"}}`, "reserved_for_inference"},
		{`{"id": "x", "gpus": 4, "prices": {"on_demand": "1", "reserved": "0", "spot": "1"}}`, "prices.reserved"},
		{`{"id": "x", "gpus": 4}`, "prices"},
		{`{"id": "x", "gpus": 4, "prices": {"on_demand": "1", "reserved": "1", "spot": "1", "gold": "2"}}`, "gold"},
	} {
		h.expectErr(h.call("POST", "/api/v1/pools", bad.body), 400, "invalid_request", "", bad.param)
	}
	if l := h.expect(h.call("GET", "/api/v1/pools", ""), 200); l.get("data", "0", "id") != "h100-eu" || l.get("data", "1", "id") != "<missing>" {
		t.Fatalf("pools %s", l.raw)
	}
	h.expect(h.call("GET", "/api/v1/pools/h100-eu", ""), 200)
	h.expectErr(h.call("GET", "/api/v1/pools/nope", ""), 404, "not_found", "", "")

	for _, c := range []string{"acme", "beta", "poor"} {
		h.expect(h.call("POST", "/api/v1/customers", `{"id": "`+c+`"}`), 201)
	}
	h.expect(h.call("POST", "/api/v1/customers/acme/grants", `{"amount": "100000", "paid_usd": "1000"}`), 201)
	h.expect(h.call("POST", "/api/v1/customers/beta/grants", `{"amount": "10000"}`), 201)
	h.expect(h.call("POST", "/api/v1/customers/poor/grants", `{"amount": "10"}`), 201)

	spot := h.expect(h.call("POST", "/api/v1/leases", `{"customer": "beta", "pool": "h100-eu", "gpus": 6, "class": "spot"}`), 201)
	if spot.get("state") != "active" || spot.get("end") != "<null>" || spot.get("held") != "720" {
		t.Fatalf("spot %s", spot.raw)
	}
	start := clockStart.Add(time.Hour).Format(time.RFC3339)
	end := clockStart.Add(3 * time.Hour).Format(time.RFC3339)
	res := h.expect(h.call("POST", "/api/v1/leases", `{"customer": "acme", "pool": "h100-eu", "gpus": 8, "class": "reserved", "start": "`+start+`", "end": "`+end+`"}`, "Idempotency-Key", "r-1"), 201)
	if res.get("state") != "scheduled" || res.get("held") != "3040" || res.get("idempotency_key") != "r-1" {
		t.Fatalf("reserved %s", res.raw)
	}
	// 8 firm + 6 spot of 12: the spot lease gives way, from the reserved start.
	if s := h.expect(h.call("GET", "/api/v1/leases/"+spot.get("id"), ""), 200); s.get("end") != start || s.get("reason") != "preempted" || s.get("preempted_by") != res.get("id") {
		t.Fatalf("pre-empted spot lease %s", s.raw)
	}
	// 5 more firm GPUs: none from the reserved start.
	full := h.expect(h.call("POST", "/api/v1/leases", `{"customer": "beta", "pool": "h100-eu", "gpus": 5, "class": "on_demand"}`), 409)
	if full.get("error", "type") != "conflict" || full.get("error", "code") != "no_capacity" || full.get("error", "at") != start || full.get("error", "param") != "<null>" {
		t.Fatalf("no capacity: %s", full.raw)
	}
	h.expectErr(h.call("POST", "/api/v1/leases", `{"customer": "poor", "pool": "h100-eu", "gpus": 1, "class": "on_demand"}`), 402, "insufficient_credits", "", "")
	h.expectErr(h.call("POST", "/api/v1/leases", `{"customer": "acme", "pool": "nope", "gpus": 1, "class": "on_demand"}`), 404, "not_found", "", "")
	h.expectErr(h.call("POST", "/api/v1/leases", `{"customer": "nobody", "pool": "h100-eu", "gpus": 1, "class": "on_demand"}`), 404, "not_found", "", "")
	for _, bad := range []struct{ body, param string }{
		{`{"customer": "acme", "pool": "h100-eu", "gpus": 1, "class": "gold"}`, "class"},
		{`{"customer": "acme", "pool": "h100-eu", "gpus": 1, "class": "reserved"}`, "end"},
		{`{"customer": "acme", "pool": "h100-eu", "gpus": 0, "class": "spot"}`, "gpus"},
		{`{"customer": "acme", "pool": "h100-eu", "gpus": 13, "class": "spot"}`, "gpus"},
		{`{"customer": "acme", "pool": "h100-eu", "gpus": 1, "class": "spot", "start": "` + end + `", "end": "` + start + `"}`, "end"},
		{`{"customer": "acme", "pool": "h100-eu", "gpus": 1, "class": "spot", "start": "2020-01-01T00:00:00Z"}`, "start"},
		{`{"customer": "acme", "pool": "h100-eu", "gpus": 1, "class": "spot", "start": "soon"}`, "start"},
	} {
		h.expectErr(h.call("POST", "/api/v1/leases", bad.body), 400, "invalid_request", "", bad.param)
	}
	// The same key and request: the same lease; another request: 409.
	if again := h.expect(h.call("POST", "/api/v1/leases", `{"customer": "acme", "pool": "h100-eu", "gpus": 8, "class": "reserved", "start": "`+start+`", "end": "`+end+`", "idempotency_key": "r-1"}`), 201); again.get("id") != res.get("id") {
		t.Fatalf("replay %s", again.raw)
	}
	h.expectErr(h.call("POST", "/api/v1/leases", `{"customer": "acme", "pool": "h100-eu", "gpus": 7, "class": "reserved", "start": "`+start+`", "end": "`+end+`", "idempotency_key": "r-1"}`), 409, "idempotency_conflict", "", "")

	// Shrinking the pool below the reserved lease: refused at its start.
	shrink := h.expect(h.call("PATCH", "/api/v1/pools/h100-eu", `{"gpus": 10}`), 409)
	if shrink.get("error", "code") != "no_capacity" || shrink.get("error", "at") != start {
		t.Fatalf("shrink: %s", shrink.raw)
	}
	if p := h.expect(h.call("PATCH", "/api/v1/pools/h100-eu", `{"prices": {"spot": "90"}}`), 200); p.get("prices", "spot") != "90" || p.get("prices", "on_demand") != "250" {
		t.Fatalf("new prices %s", p.raw)
	}
	h.expectErr(h.call("PATCH", "/api/v1/pools/h100-eu", `{"region": "us"}`), 400, "invalid_request", "", "gpu_type")

	list := h.expect(h.call("GET", "/api/v1/leases?state=active&pool=h100-eu", ""), 200)
	if list.get("data", "0", "id") != spot.get("id") || list.get("data", "1", "id") != "<missing>" {
		t.Fatalf("active leases %s", list.raw)
	}
	page := h.expect(h.call("GET", "/api/v1/leases?limit=1", ""), 200)
	if page.get("has_more") != "true" {
		t.Fatalf("page %s", page.raw)
	}
	h.expect(h.call("GET", "/api/v1/leases?customer=acme&starting_after="+page.get("data", "0", "id"), ""), 200)
	h.expectErr(h.call("GET", "/api/v1/leases?state=gone", ""), 400, "invalid_request", "", "state")

	av := h.expect(h.call("GET", "/api/v1/pools/h100-eu/availability?to="+clockStart.Add(4*time.Hour).Format(time.RFC3339), ""), 200)
	// This hour: 6 spot in use, 6 free; from the next, 8 reserved.
	if av.get("data", "0", "free_gpus") != "6" || av.get("data", "0", "leasable_gpus") != "12" || av.get("data", "1", "leasable_gpus") != "4" {
		t.Fatalf("availability %s", av.raw)
	}

	h.clk.Set(clockStart.Add(30 * time.Minute))
	ended := h.expect(h.call("POST", "/api/v1/leases/"+spot.get("id")+"/end", ""), 200)
	if ended.get("state") != "ended" || ended.get("charged") != "360" || ended.get("held") != "0" || ended.get("reason") != "requested" {
		t.Fatalf("ended %s", ended.raw)
	}
	h.expect(h.call("POST", "/api/v1/leases/"+spot.get("id")+"/end", "{}"), 200)
	h.expectErr(h.call("POST", "/api/v1/leases/nope/end", ""), 404, "not_found", "", "")

	u := h.expect(h.call("GET", "/api/v1/pools/h100-eu/utilization?from="+clockStart.Format(time.RFC3339)+"&to="+clockStart.Add(time.Hour).Format(time.RFC3339), ""), 200)
	// 6 GPUs for half an hour of 12 leasable for an hour: 25%.
	if u.get("allocated_gpu_hours") != "3" || u.get("utilization_pct") != "25.00" || u.get("available_gpu_hours") != "12" ||
		u.get("by_tenant", "0", "key") != "beta" || u.get("by_class", "0", "key") != "spot" || u.get("by_class", "0", "utilization_pct") != "25.00" {
		t.Fatalf("utilization %s", u.raw)
	}
	if _, err := h.srv.Compute.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
}
