package api

// Fuzz targets for the request decoders. Each takes a raw body (and an
// Idempotency-Key header) and checks that the decoder never panics, refuses
// only with an invalid_request *farebox.Error, and accepts only in-range,
// exact amounts that survive String() and parsing again. Each also builds a
// body around a fuzzed amount string and compares the decoder with
// farebox.ParseAmount, the one definition of an amount.
//
// The names end in Body because parse_fuzz_test.go already has
// FuzzParseCustomer, FuzzParseGrant, FuzzParseHold and FuzzParseResolve.

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	fb "farebox"
	"farebox/ledger"
)

// fuzzBodies are valid and invalid bodies for every decoder.
var fuzzBodies = []string{
	// valid
	`{"id":"acme","name":"Acme"}`,
	`{"name":"no id"}`,
	`{}`,
	`{"amount":"100"}`,
	`{"amount":"0.5","source":"promo"}`,
	`{"amount":0.000001}`,
	`{"amount":"2305843009213.693952"}`,
	`{"amount":"500","source":"purchase","paid_usd":"5","priority":10,"expires_at":"2027-01-01T00:00:00Z","idempotency_key":"order-991"}`,
	`{"amount":"1","effective_at":"2026-11-01T00:00:00Z","expires_at":"2026-12-01T00:00:00.5Z"}`,
	`{"customer":"acme","amount":"3","ttl_seconds":60,"allow_partial":false,"idempotency_key":"job-7"}`,
	`{"customer":"acme","amount":3,"ttl_seconds":86400,"allow_partial":true}`,
	`{"amount":"2.25"}`,
	`{"amount":"0"}`,
	`{"idempotency_key":"k"}`,
	` {"amount":"1"} `,
	`{"amount":"\u0031"}`,
	// invalid
	``, ` `, `null`, `[]`, `"x"`, `1`, `{`, `}`, `{"amount":}`, `{"amount":"1"}{}`, `{"amount":"1"} x`,
	`{"amount":true}`, `{"amount":{}}`, `{"amount":[]}`, `{"amount":null}`, `{"amount":""}`,
	`{"amount":"1e3"}`, `{"amount":1e3}`, `{"amount":"+1"}`, `{"amount":" 1"}`, `{"amount":"1."}`, `{"amount":".5"}`,
	`{"amount":"NaN"}`, `{"amount":"Infinity"}`, `{"amount":"-1"}`, `{"amount":-0}`, `{"amount":"1.0000001"}`,
	`{"amount":"9223372036854.775807"}`, `{"amount":"9223372036854.775808"}`, `{"amount":"9223372036855"}`,
	`{"amount":"000000000000000000000000001"}`, `{"amount":99999999999999999999999}`,
	`{"amount":"1","extra":1}`, `{"AMOUNT":"1"}`, `{"amount":"1","amount":"2"}`,
	`{"amount":"1","source":"gift"}`, `{"amount":"1","priority":"x"}`, `{"amount":"1","priority":1001}`,
	`{"amount":"1","paid_usd":"-1"}`, `{"amount":"1","source":"promo","paid_usd":"0.01"}`,
	`{"amount":"1","expires_at":"tomorrow"}`, `{"amount":"1","effective_at":"2027-01-01T00:00:00Z","expires_at":"2026-01-01T00:00:00Z"}`,
	`{"customer":"","amount":"1"}`, `{"customer":"a b","amount":"1"}`, `{"customer":"acme","amount":"1","ttl_seconds":0}`,
	`{"customer":"acme","amount":"1","ttl_seconds":86401}`, `{"customer":"acme","amount":"1","ttl_seconds":1.5}`,
	`{"customer":"acme","amount":"1","allow_partial":"yes"}`, `{"id":"x/y"}`, `{"id":7}`,
	`{"amount":"1","idempotency_key":"a` + "\\u0000" + `"}`,
}

// fuzzAmounts are amount texts for the built bodies.
var fuzzAmounts = []string{"1", "0", "0.5", "-1", "1.000000", "1.0000001", "1e3", "+1", " 1", "", "NaN",
	"2305843009213.693952", "2305843009213.693953", "9223372036854.775807", "9223372036854.775808", "00012.5", "-0", "1.", ".5", "١"}

var fuzzKeys = []string{"", "order-1", "a\x00b", "a\x7fb", strings.Repeat("k", 255), strings.Repeat("k", 256), "é"}

// wantInvalid checks a refusal: an *farebox.Error of type invalid_request
// with a message.
func wantInvalid(t *testing.T, err error) *fb.Error {
	t.Helper()
	var fe *fb.Error
	if !errors.As(err, &fe) {
		t.Fatalf("refused with %T %v, want a *farebox.Error", err, err)
	}
	if fe.Type != fb.EInvalid || fe.Code != fb.EInvalid || strings.TrimSpace(fe.Message) == "" {
		t.Fatalf("refused with %#v, want invalid_request with a message", fe)
	}
	return fe
}

// wantExact checks an accepted amount: in [0, limit] and the same after
// String() and ParseAmount.
func wantExact(t *testing.T, name string, a fb.Amount, limit fb.Amount) {
	t.Helper()
	if a < 0 || a > limit {
		t.Fatalf("%s %d is out of [0, %d]", name, a, limit)
	}
	back, err := fb.ParseAmount(a.String())
	if err != nil || back != a {
		t.Fatalf("%s %d formats as %q which parses as %d, %v", name, a, a.String(), back, err)
	}
}

func wantExactUSD(t *testing.T, name string, u fb.USD) {
	t.Helper()
	if u < 0 {
		t.Fatalf("%s %d is negative", name, u)
	}
	back, err := fb.ParseUSD(u.String())
	if err != nil || back != u {
		t.Fatalf("%s %d formats as %q which parses as %d, %v", name, u, u.String(), back, err)
	}
}

// validKey reports whether the decoders should take k as an idempotency key.
func validKey(k string) bool {
	return len(k) <= 255 && printable(k)
}

// printable is the rule for keys and names, stated on its own: UTF-8
// without C0, DEL or C1 control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c >= 0x7f && c < 0xa0 {
			return false
		}
	}
	return true
}

// wantKey checks the key an accepted op carries against the header key.
func wantKey(t *testing.T, op fb.Op, header string) {
	t.Helper()
	if header != "" && op.Key != header {
		t.Fatalf("op key %q, header key %q", op.Key, header)
	}
	if !validKey(op.Key) {
		t.Fatalf("accepted key %q", op.Key)
	}
}

// amountBodies returns JSON texts of amt as a value: always as a JSON
// string (when amt is valid UTF-8, so that JSON carries it exactly) and as
// a JSON number when amt is one.
func amountBodies(amt string) []string {
	var out []string
	if utf8.ValidString(amt) {
		b, _ := json.Marshal(amt)
		out = append(out, string(b))
	}
	if amt != "" && amt == strings.TrimSpace(amt) && (amt[0] == '-' || amt[0] >= '0' && amt[0] <= '9') {
		var n json.Number
		if json.Unmarshal([]byte(amt), &n) == nil && string(n) == amt {
			out = append(out, amt)
		}
	}
	return out
}

func FuzzParseCustomerBody(f *testing.F) {
	for _, b := range fuzzBodies {
		f.Add(b, "acme", "Acme")
	}
	f.Add(`{}`, "", "")
	f.Add(`{}`, "a b", "x")
	f.Add(`{}`, strings.Repeat("a", 64), strings.Repeat("n", 200))
	f.Add(`{}`, strings.Repeat("a", 65), strings.Repeat("n", 201))
	f.Add(`{}`, "é", "é")
	f.Fuzz(func(t *testing.T, body, id, name string) {
		req, err := parseCustomer([]byte(body))
		if err != nil {
			wantInvalid(t, err)
		} else {
			if req.ID != "" && validID("id", req.ID) != nil {
				t.Fatalf("accepted id %q", req.ID)
			}
			if len(req.Name) > 200 || !printable(req.Name) {
				t.Fatalf("accepted the name %q", req.Name)
			}
		}

		// A body built from id and name is accepted exactly when they are valid.
		if !utf8.ValidString(id) || !utf8.ValidString(name) {
			return
		}
		built, _ := json.Marshal(map[string]string{"id": id, "name": name})
		req, err = parseCustomer(built)
		ok := (id == "" || validID("id", id) == nil) && len(name) <= 200 && printable(name)
		if !ok {
			fe := wantInvalid(t, err)
			if fe.Param != "id" && fe.Param != "name" {
				t.Fatalf("refused %s naming %q", built, fe.Param)
			}
			return
		}
		if err != nil {
			t.Fatalf("refused %s: %v", built, err)
		}
		if req.ID != id || req.Name != name {
			t.Fatalf("%s parsed as %+v", built, req)
		}
	})
}

func FuzzParseGrantBody(f *testing.F) {
	for i, b := range fuzzBodies {
		f.Add(b, fuzzKeys[i%len(fuzzKeys)], fuzzAmounts[i%len(fuzzAmounts)])
	}
	for _, a := range fuzzAmounts {
		f.Add(`{}`, "", a)
	}
	f.Add(`{"amount":"1","idempotency_key":"a"}`, "b", "1")
	f.Fuzz(func(t *testing.T, body, key, amt string) {
		op, err := parseGrant([]byte(body), "acme", key)
		if err != nil {
			wantInvalid(t, err)
		} else {
			if op.Kind != fb.OpGrant || op.Customer != "acme" || op.Amount <= 0 || !op.Source.Valid() {
				t.Fatalf("accepted %+v from %q", op, body)
			}
			if op.Priority < 0 || op.Priority > 1000 {
				t.Fatalf("accepted priority %d", op.Priority)
			}
			if op.Source == fb.SourcePromo && op.PaidUSD != 0 {
				t.Fatalf("accepted a paid promo: %+v", op)
			}
			if !op.ExpiresAt.IsZero() && !op.EffectiveAt.IsZero() && !op.ExpiresAt.After(op.EffectiveAt) {
				t.Fatalf("accepted expiry before effect: %+v", op)
			}
			wantExact(t, "amount", op.Amount, fb.MaxTotal)
			wantExactUSD(t, "paid_usd", op.PaidUSD)
			wantKey(t, op, key)
			if err := ledger.Validate(&op); err != nil {
				t.Fatalf("accepted an op the ledger refuses: %v", err)
			}
		}

		// Built bodies agree with ParseAmount and with the key rules.
		want, perr := fb.ParseAmount(amt)
		for _, v := range amountBodies(amt) {
			built := `{"amount":` + v + `}`
			op, err := parseGrant([]byte(built), "acme", key)
			switch {
			case perr != nil || want <= 0:
				if fe := wantInvalid(t, err); fe.Param != "amount" {
					t.Fatalf("%s refused naming %q, want amount", built, fe.Param)
				}
			case !validKey(key):
				// The key is checked before the ledger's bound on amounts.
				if fe := wantInvalid(t, err); fe.Param != "idempotency_key" {
					t.Fatalf("key %q refused naming %q", key, fe.Param)
				}
			case want > fb.MaxTotal:
				if fe := wantInvalid(t, err); fe.Param != "amount" {
					t.Fatalf("%s refused naming %q, want amount", built, fe.Param)
				}
			case err != nil:
				t.Fatalf("%s refused: %v", built, err)
			case op.Amount != want || op.Key != key || op.Source != fb.SourcePurchase || op.Priority != 20 || op.PaidUSD != 0:
				t.Fatalf("%s with key %q parsed as %+v, want amount %d", built, key, op, want)
			}
		}
	})
}

func FuzzParseHoldBody(f *testing.F) {
	for i, b := range fuzzBodies {
		f.Add(b, fuzzKeys[i%len(fuzzKeys)], fuzzAmounts[i%len(fuzzAmounts)])
	}
	for _, a := range fuzzAmounts {
		f.Add(`{"customer":"acme"}`, "", a)
	}
	f.Fuzz(func(t *testing.T, body, key, amt string) {
		op, err := parseHold([]byte(body), key)
		if err != nil {
			wantInvalid(t, err)
		} else {
			if op.Kind != fb.OpHold || validID("customer", op.Customer) != nil || op.Amount <= 0 {
				t.Fatalf("accepted %+v from %q", op, body)
			}
			if op.TTL < time.Second || op.TTL > ledger.MaxHoldTTL || op.TTL%time.Second != 0 {
				t.Fatalf("accepted TTL %v", op.TTL)
			}
			wantExact(t, "amount", op.Amount, fb.MaxTotal)
			wantKey(t, op, key)
			if err := ledger.Validate(&op); err != nil {
				t.Fatalf("accepted an op the ledger refuses: %v", err)
			}
		}

		want, perr := fb.ParseAmount(amt)
		for _, v := range amountBodies(amt) {
			built := `{"customer":"acme","amount":` + v + `}`
			op, err := parseHold([]byte(built), key)
			switch {
			case perr != nil || want <= 0:
				if fe := wantInvalid(t, err); fe.Param != "amount" {
					t.Fatalf("%s refused naming %q, want amount", built, fe.Param)
				}
			case !validKey(key):
				// The key is checked before the ledger's bound on amounts.
				if fe := wantInvalid(t, err); fe.Param != "idempotency_key" {
					t.Fatalf("key %q refused naming %q", key, fe.Param)
				}
			case want > fb.MaxTotal:
				if fe := wantInvalid(t, err); fe.Param != "amount" {
					t.Fatalf("%s refused naming %q, want amount", built, fe.Param)
				}
			case err != nil:
				t.Fatalf("%s refused: %v", built, err)
			case op.Amount != want || op.Customer != "acme" || op.TTL != ledger.DefaultHoldTTL || op.AllowPartial || op.Key != key:
				t.Fatalf("%s parsed as %+v, want amount %d", built, op, want)
			}
		}
	})
}

func FuzzParseResolveBody(f *testing.F) {
	for i, b := range fuzzBodies {
		f.Add(b, fuzzKeys[i%len(fuzzKeys)], fuzzAmounts[i%len(fuzzAmounts)], i%2 == 0)
	}
	for _, a := range fuzzAmounts {
		f.Add(``, "", a, true)
		f.Add(``, "", a, false)
	}
	f.Fuzz(func(t *testing.T, body, key, amt string, capture bool) {
		op, err := parseResolve([]byte(body), "hold_1", key, capture)
		if err != nil {
			wantInvalid(t, err)
		} else {
			if op.HoldID != "hold_1" {
				t.Fatalf("accepted %+v", op)
			}
			if capture {
				if op.Kind != fb.OpCapture || (op.Full && op.Amount != 0) {
					t.Fatalf("accepted capture %+v from %q", op, body)
				}
			} else if op.Kind != fb.OpRelease || op.Amount != 0 || op.Full {
				t.Fatalf("accepted release %+v from %q", op, body)
			}
			wantExact(t, "amount", op.Amount, fb.MaxTotal)
			wantKey(t, op, key)
			if err := ledger.Validate(&op); err != nil {
				t.Fatalf("accepted an op the ledger refuses: %v", err)
			}
		}

		want, perr := fb.ParseAmount(amt)
		for _, v := range amountBodies(amt) {
			built := `{"amount":` + v + `}`
			op, err := parseResolve([]byte(built), "hold_1", key, capture)
			switch {
			case !capture || perr != nil || want < 0:
				if fe := wantInvalid(t, err); fe.Param != "amount" {
					t.Fatalf("%s refused naming %q, want amount", built, fe.Param)
				}
			case !validKey(key):
				// The key is checked before the ledger's bound on amounts.
				if fe := wantInvalid(t, err); fe.Param != "idempotency_key" {
					t.Fatalf("key %q refused naming %q", key, fe.Param)
				}
			case want > fb.MaxTotal:
				if fe := wantInvalid(t, err); fe.Param != "amount" {
					t.Fatalf("%s refused naming %q, want amount", built, fe.Param)
				}
			case err != nil:
				t.Fatalf("%s refused: %v", built, err)
			case op.Amount != want || op.Full || op.Kind != fb.OpCapture || op.Key != key:
				t.Fatalf("%s parsed as %+v, want amount %d", built, op, want)
			}
		}
	})
}
