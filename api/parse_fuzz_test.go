package api

import (
	"errors"
	"testing"

	fb "farebox"
	"farebox/ledger"
)

// The request decoders never panic, refuse only with invalid_request, and
// whatever they accept is an op the ledger's own validation accepts, with
// exact amounts that survive formatting and parsing again.

func checkRefusal(t *testing.T, err error) {
	t.Helper()
	var fe *fb.Error
	if !errors.As(err, &fe) || fe.Type != fb.EInvalid || fe.Message == "" {
		t.Fatalf("refused with %#v, want an invalid_request error with a message", err)
	}
}

func checkOp(t *testing.T, op fb.Op) {
	t.Helper()
	if err := ledger.Validate(&op); err != nil {
		t.Fatalf("accepted an op the ledger refuses: %+v: %v", op, err)
	}
	if op.Amount < 0 || op.Amount > fb.MaxTotal {
		t.Fatalf("amount %d out of range", op.Amount)
	}
	if back, err := fb.ParseAmount(op.Amount.String()); err != nil || back != op.Amount {
		t.Fatalf("amount %d does not round-trip: %v", op.Amount, err)
	}
	if len(op.Key) > 255 {
		t.Fatalf("key of %d bytes accepted", len(op.Key))
	}
}

var seeds = []string{
	``, `{}`, `[]`, `null`, `{"amount":"1"}`, `{"amount":1.5}`, `{"amount":"1.0000001"}`, `{"amount":"1e3"}`,
	`{"amount":true}`, `{"amount":"9223372036855"}`, `{"amount":"-1"}`, `{"amount":"1","source":"promo","paid_usd":"0"}`,
	`{"amount":"1","expires_at":"2030-01-01T00:00:00Z","effective_at":"2029-01-01T00:00:00Z"}`,
	`{"amount":"1","priority":7,"idempotency_key":"k"}`, `{"customer":"acme","amount":"2","ttl_seconds":30,"allow_partial":true}`,
	`{"customer":"bad id","amount":"2"}`, `{"id":"acme","name":"Acme"}`, `{"amount":"1"} x`, `{"amount":"1","x":1}`,
	`{"amount":"0.000001"}`, `{"amount":""}`, `{"amount":null}`,
}

func FuzzParseCustomer(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req, err := parseCustomer([]byte(body))
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if req.ID != "" {
			if err := validID("id", req.ID); err != nil {
				t.Fatalf("accepted id %q", req.ID)
			}
		}
		if len(req.Name) > 200 {
			t.Fatalf("accepted a name of %d bytes", len(req.Name))
		}
	})
}

func FuzzParseGrant(f *testing.F) {
	for _, s := range seeds {
		f.Add(s, "")
	}
	f.Add(`{"amount":"1"}`, "key-1")
	f.Add(`{"amount":"1","idempotency_key":"a"}`, "b")
	f.Fuzz(func(t *testing.T, body, key string) {
		op, err := parseGrant([]byte(body), "acme", key)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if op.Kind != fb.OpGrant || op.Customer != "acme" || op.Amount <= 0 || !op.Source.Valid() || op.PaidUSD < 0 {
			t.Fatalf("accepted %+v", op)
		}
		if op.Source == fb.SourcePromo && op.PaidUSD != 0 {
			t.Fatalf("a paid promo: %+v", op)
		}
		checkOp(t, op)
	})
}

func FuzzParseHold(f *testing.F) {
	for _, s := range seeds {
		f.Add(s, "")
	}
	f.Add(`{"customer":"acme","amount":"1"}`, "key-1")
	f.Fuzz(func(t *testing.T, body, key string) {
		op, err := parseHold([]byte(body), key)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if op.Kind != fb.OpHold || op.Amount <= 0 || op.TTL <= 0 || op.TTL > ledger.MaxHoldTTL || validID("customer", op.Customer) != nil {
			t.Fatalf("accepted %+v", op)
		}
		checkOp(t, op)
	})
}

func FuzzParseResolve(f *testing.F) {
	for _, s := range seeds {
		f.Add(s, "", true)
		f.Add(s, "", false)
	}
	f.Fuzz(func(t *testing.T, body, key string, capture bool) {
		op, err := parseResolve([]byte(body), "hold_1", key, capture)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if op.HoldID != "hold_1" || (capture && op.Kind != fb.OpCapture) || (!capture && (op.Kind != fb.OpRelease || op.Amount != 0)) {
			t.Fatalf("accepted %+v", op)
		}
		if op.Full && op.Amount != 0 {
			t.Fatalf("a full capture with an amount: %+v", op)
		}
		checkOp(t, op)
	})
}
