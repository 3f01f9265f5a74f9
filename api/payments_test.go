package api

import "testing"

// TestPaymentsOff: without a payment provider the payment routes answer
// 503 payments_not_configured, and the settings that need none still work.
func TestPaymentsOff(t *testing.T) {
	h := newHarness(t)
	h.expect(h.call("POST", "/api/v1/customers", `{"id":"acme","name":"Acme"}`), 201)
	for _, c := range []struct{ path, body string }{
		{"/api/v1/customers/acme/checkout", `{"credits":"1000","success_url":"https://example.com/ok"}`},
		{"/webhooks/stripe", `{}`},
	} {
		r := h.call("POST", c.path, c.body)
		if r.status != 503 || r.get("error", "code") != "payments_not_configured" {
			t.Errorf("POST %s: %d %s, want 503 payments_not_configured", c.path, r.status, r.raw)
		}
	}
	r := h.expect(h.call("PUT", "/api/v1/customers/acme/auto-topup", `{"threshold":"1.5","credits":"100"}`), 200)
	if r.get("threshold") != "1.5" || r.get("credits") != "100" || r.get("cooldown") != "1h" {
		t.Errorf("auto-topup: %s", r.raw)
	}
	for _, bad := range []struct{ body, param string }{
		{`{"threshold":"1","credits":"100","cooldown":"soon"}`, "cooldown"},
		{`{"threshold":"1"}`, "credits"},
		{`{"threshold":"-1","credits":"1"}`, "threshold"},
	} {
		if r := h.call("PUT", "/api/v1/customers/acme/auto-topup", bad.body); r.status != 400 || r.get("error", "param") != bad.param {
			t.Errorf("auto-topup %s: %d %s, want 400 naming %s", bad.body, r.status, r.raw, bad.param)
		}
	}
	if r := h.call("GET", "/api/v1/customers/acme/alerts", ""); r.get("source") != "none" {
		t.Errorf("alerts before any: %s", r.raw)
	}
}
