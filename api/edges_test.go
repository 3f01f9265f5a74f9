package api

// Tests of the security review's findings (issue 12) over HTTP.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fb "farebox"
	"farebox/ledger"
)

// TestCaptureAboveHoldNeedsOptIn (finding 14): a typo of 1000 on a hold of
// 1 is refused with 400 naming amount and takes nothing; the hold stays
// pending and is captured as meant; above the hold only with
// "allow_over_capture": true, the excess from available credit and the rest
// uncollected. A release takes no such flag.
func TestCaptureAboveHoldNeedsOptIn(t *testing.T) {
	h := newHarness(t)
	h.newCustomer("acme")
	h.grant("acme", `{"amount":"100"}`)
	hold := h.hold(`{"customer":"acme","amount":"1"}`).get("id")
	h.expectErr(h.call("POST", "/api/v1/holds/"+hold+"/capture", `{"amount":"1000"}`), 400, fb.EInvalid, fb.EInvalid, "amount")
	h.expectErr(h.call("POST", "/api/v1/holds/"+hold+"/capture", `{"amount":"1000","allow_over_capture":false}`), 400, fb.EInvalid, fb.EInvalid, "amount")
	h.expectBalance("acme", "99", "1")
	if g := h.expect(h.call("GET", "/api/v1/holds/"+hold, ""), 200); g.get("status") != "pending" {
		t.Fatalf("hold after the refused capture: got %s, want pending", g.raw)
	}
	c := h.expect(h.call("POST", "/api/v1/holds/"+hold+"/capture", `{"amount":"1"}`), 200)
	if c.get("captured") != "1" || c.get("uncollected") != "0" {
		t.Fatalf("capture of the hold: got %s, want captured 1", c.raw)
	}
	h.expectBalance("acme", "99", "0")

	hold2 := h.hold(`{"customer":"acme","amount":"1"}`).get("id")
	c = h.expect(h.call("POST", "/api/v1/holds/"+hold2+"/capture", `{"amount":"1000","allow_over_capture":true}`, "Idempotency-Key", "cap-2"), 200)
	if c.get("captured") != "1000" || c.get("released") != "0" || c.get("uncollected") != "901" {
		t.Fatalf("opted-in capture: got %s, want captured 1000, uncollected 901", c.raw)
	}
	// The same request replays; without the flag it is another request.
	again := h.expect(h.call("POST", "/api/v1/holds/"+hold2+"/capture", `{"amount":"1000","allow_over_capture":true}`, "Idempotency-Key", "cap-2"), 200)
	if again.raw != c.raw {
		t.Fatalf("replay: got %s, want %s", again.raw, c.raw)
	}
	h.expectErr(h.call("POST", "/api/v1/holds/"+hold2+"/capture", `{"amount":"1000"}`, "Idempotency-Key", "cap-2"), 409, fb.EIdempotencyConflict, "", "")
	h.expectBalance("acme", "0", "0")

	h.grant("acme", `{"amount":"5"}`)
	hold3 := h.hold(`{"customer":"acme","amount":"2"}`).get("id")
	h.expectErr(h.call("POST", "/api/v1/holds/"+hold3+"/release", `{"allow_over_capture":true}`), 400, fb.EInvalid, fb.EInvalid, "allow_over_capture")
	h.expectBalance("acme", "3", "2")
}

// TestIDsRefuseControlCharacters (finding 10): every path id, body id,
// query id and idempotency key with a NUL, another control character (C0,
// DEL, C1) or bytes that are not UTF-8 is a 400 naming the param, before
// it reaches a store (on PostgreSQL a NUL failed the whole ledger batch);
// customer ids keep their stricter rule; an unknown but valid id stays a
// 404.
func TestIDsRefuseControlCharacters(t *testing.T) {
	h := newHarness(t)
	h.newCustomer("acme")
	h.grant("acme", `{"amount":"10"}`)
	h.expect(h.call("POST", "/api/v1/plans", `{"id":"pro","price_usd":"1","credits":"10"}`), 201)
	hold := h.hold(`{"customer":"acme","amount":"1"}`).get("id")
	bad := []string{"%00", "%01", "%1F", "%7F", "%C2%85", "%FF"}
	for _, b := range bad {
		for _, tc := range []struct {
			method, path, body, param string
		}{
			{"GET", "/api/v1/customers/ac" + b + "me", "", "id"},
			{"POST", "/api/v1/customers/ac" + b + "me/grants", `{"amount":"1"}`, "id"},
			{"GET", "/api/v1/customers/ac" + b + "me/balance", "", "id"},
			{"PUT", "/api/v1/customers/ac" + b + "me/subscription", `{"plan":"pro"}`, "id"},
			{"POST", "/api/v1/customers/ac" + b + "me/keys", "", "id"},
			{"GET", "/api/v1/customers/ac" + b + "me/keys", "", "id"},
			{"GET", "/api/v1/holds/" + hold + b, "", "id"},
			{"POST", "/api/v1/holds/" + hold + b + "/capture", "", "id"},
			{"POST", "/api/v1/holds/" + hold + b + "/release", "", "id"},
			{"DELETE", "/api/v1/keys/key_" + b, "", "key_id"},
			{"GET", "/api/v1/plans/pro" + b, "", "id"},
			{"DELETE", "/api/v1/plans/pro" + b, "", "id"},
			{"PUT", "/api/v1/prices/gpt" + b, `{"input_per_mtok":"1"}`, "model"},
			{"GET", "/api/v1/customers?starting_after=a" + b, "", "starting_after"},
			{"GET", "/api/v1/usage?customer=ac" + b + "me", "", "customer"},
			{"GET", "/api/v1/reports/economics?customer=ac" + b + "me", "", "customer"},
			{"GET", "/api/v1/reports/forecast?customer=ac" + b + "me", "", "customer"},
		} {
			t.Run(tc.method+" "+tc.path, func(t *testing.T) {
				h := *h
				h.t = t
				h.expectErr(h.call(tc.method, tc.path, tc.body), 400, fb.EInvalid, fb.EInvalid, tc.param)
			})
		}
	}
	// Body ids and idempotency keys (JSON escapes a control character;
	// a header carries raw bytes).
	for _, tc := range []struct {
		method, path, body, param string
		hdr                       []string
	}{
		{"POST", "/api/v1/customers", `{"id":"a\u0000b"}`, "id", nil},
		{"POST", "/api/v1/customers", `{"id":"beta","name":"Beta\u0000"}`, "name", nil},
		{"POST", "/api/v1/customers", `{"id":"beta","plan":"pro\u0000"}`, "plan", nil},
		{"POST", "/api/v1/holds", `{"customer":"ac\u0000me","amount":"1"}`, "customer", nil},
		{"PUT", "/api/v1/customers/acme/subscription", `{"plan":"pro\u001f"}`, "plan", nil},
		{"POST", "/api/v1/plans", `{"id":"max","name":"M\u0085x","price_usd":"1","credits":"10"}`, "name", nil},
		{"POST", "/api/v1/customers/acme/keys", `{"name":"ci\u0000"}`, "name", nil},
		{"POST", "/api/v1/customers/acme/grants", `{"amount":"1","idempotency_key":"k\u0000"}`, "idempotency_key", nil},
		{"POST", "/api/v1/customers/acme/grants", `{"amount":"1","idempotency_key":"k\u0085"}`, "idempotency_key", nil},
		{"POST", "/api/v1/customers/acme/grants", `{"amount":"1"}`, "idempotency_key", []string{"Idempotency-Key", "k\xff"}},
		{"POST", "/api/v1/holds", `{"customer":"acme","amount":"1"}`, "idempotency_key", []string{"Idempotency-Key", "k\xc2\x85"}},
	} {
		t.Run(tc.method+" "+tc.path+" "+tc.body, func(t *testing.T) {
			h := *h
			h.t = t
			h.expectErr(h.call(tc.method, tc.path, tc.body, tc.hdr...), 400, fb.EInvalid, fb.EInvalid, tc.param)
		})
	}
	// Unknown but valid ids are still 404s; nothing above moved credit.
	for _, p := range []string{"/api/v1/customers/nobody", "/api/v1/holds/hold_nope", "/api/v1/plans/nope"} {
		h.expectErr(h.call("GET", p, ""), 404, fb.ENotFound, "", "")
	}
	h.expectErr(h.call("DELETE", "/api/v1/keys/key_nope", ""), 404, fb.ENotFound, "", "")
	h.expectBalance("acme", "9", "1")
	// A client's X-Request-Id that is not printable is replaced, not echoed.
	r := h.call("GET", "/api/v1/customers/acme", "", "X-Request-Id", "req-\xff")
	if got := r.header.Get("X-Request-Id"); got == "req-\xff" || got == "" {
		t.Fatalf("X-Request-Id: got %q, want a fresh id", got)
	}
}

// badEvent is a CloudEvent whose field is set to raw JSON (so control
// characters can be written as JSON escapes).
func badEvent(id, source, typ, subject string) string {
	return `{"specversion":"1.0","id":"` + id + `","source":"` + source + `","type":"` + typ + `","subject":"` + subject +
		`","time":"2026-11-23T09:00:00Z","data":{"model":"sora-1","video_seconds":1}}`
}

// TestEventsRefuseControlCharacters (findings 10 and 13): an event whose
// id, source, type or subject holds a control character is rejected with
// code invalid, naming the field, and the others of its batch are
// accepted. So 0x1f, which separates source and id in an event's key,
// occurs in neither, and (a\x1fb, c) and (a, b\x1fc) — one key before —
// are both refused instead of the second being a silent duplicate.
func TestEventsRefuseControlCharacters(t *testing.T) {
	h := newHarness(t)
	testEventsRefuseControlCharacters(t, h)
}

func testEventsRefuseControlCharacters(t *testing.T, h *harness) {
	h.expect(h.call("PUT", "/api/v1/prices/sora-1", `{"per_video_second":"0.5","effective_from":"2026-11-01T00:00:00Z"}`), 200)
	h.newCustomer("acme")
	h.grant("acme", `{"amount":"100"}`)
	cases := []struct {
		ev, field string // field "": accepted
	}{
		{badEvent("ok-1", "video", "usage", "acme"), ""},
		{badEvent(`e\u0000`, "video", "usage", "acme"), "id"},
		{badEvent("e2", `vid\u0000eo`, "usage", "acme"), "source"},
		{badEvent("e3", "video", `us\u0000age`, "acme"), "type"},
		{badEvent("e4", "video", "usage", `ac\u0000me`), "subject"},
		{badEvent("e5", "video", "usage", "ac me"), "subject"},
		{badEvent(`e6\u007f`, "video", "usage", "acme"), "id"},
		{badEvent("e7", `vi\u0085deo`, "usage", "acme"), "source"},
		{badEvent("c", `a\u001fb`, "usage", "acme"), "source"},
		{badEvent(`b\u001fc`, "a", "usage", "acme"), "id"},
		{`{"specversion":"1.0","id":"e8","source":"video","type":"usage","subject":"acme","data":{"model":"sora\u0000","video_seconds":1}}`, "data.model"},
		{badEvent("ok-2", "video", "usage", "acme"), ""},
	}
	var evs []string
	for _, c := range cases {
		evs = append(evs, c.ev)
	}
	res := results(t, h.expect(h.call("POST", "/api/v1/events", "["+strings.Join(evs, ",")+"]", "Content-Type", "application/cloudevents-batch+json"), 200))
	if len(res) != len(cases) {
		t.Fatalf("got %d results for %d events", len(res), len(cases))
	}
	for i, c := range cases {
		msg, _ := res[i]["message"].(string)
		switch {
		case c.field == "" && (res[i]["status"] != "accepted" || res[i]["cost"] != "0.5"):
			t.Errorf("event %d %s: got %v, want accepted costing 0.5", i, c.ev, res[i])
		case c.field != "" && (res[i]["status"] != "rejected" || res[i]["error"] != "invalid" || !strings.HasPrefix(msg, c.field+" ")):
			t.Errorf("event %d %s: got %v, want rejected, code invalid, naming %s", i, c.ev, res[i], c.field)
		}
	}
	h.expectBalance("acme", "99", "0")
}

// TestSubscriptionChangeIdempotent (finding 7): a "now" change sent twice
// granted two allowances (2000 → 4000). With an Idempotency-Key a retry
// answers the first response and grants nothing more, and the key with
// another body is 409 idempotency_conflict; without one, a "now" change to
// the plan the customer is already on is a no-op answering the
// subscription unchanged.
func TestSubscriptionChangeIdempotent(t *testing.T) {
	h := newHarness(t)
	h.expect(h.call("POST", "/api/v1/plans", `{"id":"basic","price_usd":"10","credits":"1000"}`), 201)
	h.expect(h.call("POST", "/api/v1/plans", `{"id":"pro","price_usd":"20","credits":"2000"}`), 201)
	h.expect(h.call("POST", "/api/v1/customers", `{"id":"acme","plan":"basic"}`), 201)
	h.expectBalance("acme", "1000", "0")
	path := "/api/v1/customers/acme/subscription"
	h.clk.Advance(time.Hour)
	first := h.expect(h.call("PUT", path, `{"plan":"pro","effective":"now"}`, "Idempotency-Key", "chg-1"), 200)
	if first.get("plan") != "pro" || first.get("current_period_start") != "2026-11-23T11:00:00Z" {
		t.Fatalf("change now: got %s, want pro from 11:00", first.raw)
	}
	h.expectBalance("acme", "3000", "0")
	for _, tc := range []struct{ body, key string }{
		{`{"plan":"pro","effective":"now"}`, "chg-1"},
		{`{"plan":"pro","effective":"now","idempotency_key":"chg-1"}`, ""},
		{`{"plan":"pro","effective":"now","idempotency_key":"chg-1"}`, "chg-1"},
	} {
		h.clk.Advance(time.Minute)
		r := h.expect(h.call("PUT", path, tc.body, "Idempotency-Key", tc.key), 200)
		if r.raw != first.raw {
			t.Fatalf("retry %s (key %q): got %s, want the first answer %s", tc.body, tc.key, r.raw, first.raw)
		}
	}
	h.expectBalance("acme", "3000", "0")
	h.expectErr(h.call("PUT", path, `{"plan":"basic","effective":"now"}`, "Idempotency-Key", "chg-1"), 409, fb.EIdempotencyConflict, fb.EIdempotencyConflict, "")
	h.expectErr(h.call("PUT", path, `{"plan":"pro"}`, "Idempotency-Key", "chg-1"), 409, fb.EIdempotencyConflict, fb.EIdempotencyConflict, "")
	h.expectErr(h.call("PUT", path, `{"plan":"pro","effective":"now","idempotency_key":"a"}`, "Idempotency-Key", "b"), 400, fb.EInvalid, fb.EInvalid, "idempotency_key")
	// Without a key: the plan it is on, now, is a no-op.
	again := h.expect(h.call("PUT", path, `{"plan":"pro","effective":"now"}`), 200)
	if again.raw != first.raw {
		t.Fatalf("change now to the current plan: got %s, want it unchanged %s", again.raw, first.raw)
	}
	h.expectBalance("acme", "3000", "0")
	// The same key for another customer is another request.
	h.expect(h.call("POST", "/api/v1/customers", `{"id":"beta","plan":"basic"}`), 201)
	b := h.expect(h.call("PUT", "/api/v1/customers/beta/subscription", `{"plan":"pro","effective":"now"}`, "Idempotency-Key", "chg-1"), 200)
	if b.get("customer") != "beta" || b.get("plan") != "pro" {
		t.Fatalf("beta: got %s", b.raw)
	}
	h.expectBalance("beta", "3000", "0")
	rep, err := ledger.Verify(context.Background(), h.store)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %v", err, rep.Problems)
	}
}

// flakySwaps fails the next n subscription writes, as a database that goes
// away between the allowance's grant and the subscription's write.
type flakySwaps struct {
	fb.Store
	n atomic.Int32
}

func (f *flakySwaps) SwapSubscription(ctx context.Context, old, sub fb.Subscription) error {
	if f.n.Add(-1) >= 0 {
		return errors.New("the subscription write failed")
	}
	return f.Store.SwapSubscription(ctx, old, sub)
}

// TestSubscriptionChangeRetryAfterPartialFailure (finding 7): the allowance
// was granted but the subscription's write failed (500); the retry with the
// same key, minutes later, finishes the change as of the first attempt and
// grants nothing twice.
func TestSubscriptionChangeRetryAfterPartialFailure(t *testing.T) {
	flaky := &flakySwaps{}
	h := newHarnessWrapped(t, func(s fb.Store) fb.Store { flaky.Store = s; return flaky })
	h.expect(h.call("POST", "/api/v1/plans", `{"id":"basic","price_usd":"10","credits":"1000"}`), 201)
	h.expect(h.call("POST", "/api/v1/plans", `{"id":"pro","price_usd":"20","credits":"2000"}`), 201)
	h.expect(h.call("POST", "/api/v1/customers", `{"id":"acme","plan":"basic"}`), 201)
	flaky.n.Store(1)
	path := "/api/v1/customers/acme/subscription"
	h.expectErr(h.call("PUT", path, `{"plan":"pro","effective":"now"}`, "Idempotency-Key", "chg-1"), 500, fb.EInternal, "", "")
	h.expectBalance("acme", "3000", "0") // granted, but still on basic
	if c := h.expect(h.call("GET", "/api/v1/customers/acme", ""), 200); c.get("plan") != "basic" {
		t.Fatalf("after the failed write: got %s, want basic", c.raw)
	}
	h.clk.Advance(5 * time.Minute)
	r := h.expect(h.call("PUT", path, `{"plan":"pro","effective":"now"}`, "Idempotency-Key", "chg-1"), 200)
	if r.get("plan") != "pro" || r.get("current_period_start") != "2026-11-23T10:00:00Z" {
		t.Fatalf("retry: got %s, want pro from the first attempt's 10:00", r.raw)
	}
	h.expectBalance("acme", "3000", "0")
	h.clk.Advance(time.Minute)
	if again := h.expect(h.call("PUT", path, `{"plan":"pro","effective":"now"}`, "Idempotency-Key", "chg-1"), 200); again.raw != r.raw {
		t.Fatalf("second retry: got %s, want %s", again.raw, r.raw)
	}
	h.expectBalance("acme", "3000", "0")
}

// flakyFinish fails the next n records of a keyed request's response.
type flakyFinish struct {
	fb.Store
	n atomic.Int32
}

func (f *flakyFinish) FinishRequest(ctx context.Context, customer, scope, key string, response []byte) error {
	if f.n.Add(-1) >= 0 {
		return errors.New("the response could not be recorded")
	}
	return f.Store.FinishRequest(ctx, customer, scope, key, response)
}

// TestSubscriptionChangeKeyedConcurrentAndUnrecorded (finding 7): the same
// keyed change sent 20 times at once grants once and answers one
// subscription; a change whose response could not be recorded (500) is
// answered by its retry, granting nothing more.
func TestSubscriptionChangeKeyedConcurrentAndUnrecorded(t *testing.T) {
	flaky := &flakyFinish{}
	h := newHarnessWrapped(t, func(s fb.Store) fb.Store { flaky.Store = s; return flaky })
	h.expect(h.call("POST", "/api/v1/plans", `{"id":"basic","price_usd":"10","credits":"1000"}`), 201)
	h.expect(h.call("POST", "/api/v1/plans", `{"id":"pro","price_usd":"20","credits":"2000","overdraft_limit":"5"}`), 201)
	h.expect(h.call("POST", "/api/v1/customers", `{"id":"acme","plan":"basic"}`), 201)
	h.expect(h.call("POST", "/api/v1/customers", `{"id":"beta","plan":"basic"}`), 201)
	const n = 20
	answers := make([]reply, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = h.call("PUT", "/api/v1/customers/acme/subscription", `{"plan":"pro","effective":"now"}`, "Idempotency-Key", "chg-1")
		}()
	}
	wg.Wait()
	for i, a := range answers {
		if a.status != 200 || a.raw != answers[0].raw || a.get("plan") != "pro" {
			t.Fatalf("answer %d: got %d %s, want 200 %s", i, a.status, a.raw, answers[0].raw)
		}
	}
	h.expectBalance("acme", "3005", "0")

	flaky.n.Store(1)
	path := "/api/v1/customers/beta/subscription"
	h.expectErr(h.call("PUT", path, `{"plan":"pro","effective":"now"}`, "Idempotency-Key", "chg-b"), 500, fb.EInternal, "", "")
	h.expectBalance("beta", "3005", "0")
	h.clk.Advance(time.Minute)
	r := h.expect(h.call("PUT", path, `{"plan":"pro","effective":"now"}`, "Idempotency-Key", "chg-b"), 200)
	if r.get("plan") != "pro" || r.get("current_period_start") != "2026-11-23T10:00:00Z" {
		t.Fatalf("retry: got %s, want pro from 10:00", r.raw)
	}
	h.clk.Advance(time.Minute)
	if again := h.expect(h.call("PUT", path, `{"plan":"pro","effective":"now"}`, "Idempotency-Key", "chg-b"), 200); again.raw != r.raw {
		t.Fatalf("second retry: got %s, want %s", again.raw, r.raw)
	}
	h.expectBalance("beta", "3005", "0")
}
