package api

// Tests of the security review's findings (issue 12) over HTTP.

import (
	"testing"

	fb "farebox"
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
