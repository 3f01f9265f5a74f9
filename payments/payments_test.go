package payments_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/app"
	"farebox/ledger"
	"farebox/payments"
	"farebox/payments/stripemock"
)

const token = "payments-test-admin-token-0123456789"

// farebox is the app on SQLite with Stripe at a recorder in front of
// stripe-mock.
type farebox struct {
	t   *testing.T
	a   *app.App
	url string
	rec *stripemock.Recorder
}

func start(t *testing.T) *farebox {
	t.Helper()
	rec := stripemock.NewRecorder(t, stripemock.Start(t))
	a, err := app.New(context.Background(), app.Config{
		DataDir: t.TempDir(), AdminToken: token,
		Stripe: payments.StripeConfig{SecretKey: stripemock.SecretKey, WebhookSecret: stripemock.WebhookSecret, APIBase: rec.URL},
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler)
	t.Cleanup(func() { hs.Close(); a.Close() })
	return &farebox{t: t, a: a, url: hs.URL, rec: rec}
}

func (f *farebox) do(method, path, body string, header ...string) (int, map[string]any) {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func (f *farebox) must(method, path, body string, want int) map[string]any {
	f.t.Helper()
	got, m := f.do(method, path, body)
	if got != want {
		f.t.Fatalf("%s %s: %d %v, want %d", method, path, got, m, want)
	}
	return m
}

// webhook posts a Stripe event as Stripe would.
func (f *farebox) webhook(payload []byte, sig string) (int, map[string]any) {
	f.t.Helper()
	return f.do("POST", "/webhooks/stripe", string(payload), "Stripe-Signature", sig)
}

func (f *farebox) balance(c string) (available string, lots []any) {
	m := f.must("GET", "/api/v1/customers/"+c+"/balance", "", 200)
	lots, _ = m["lots"].([]any)
	return m["available"].(string), lots
}

func session(pi string, credits string, cents int) map[string]any {
	return map[string]any{"id": "cs_" + pi, "object": "checkout.session", "client_reference_id": "acme", "payment_status": "paid",
		"currency": "usd", "amount_total": cents, "payment_intent": pi, "customer": "cus_acme", "metadata": map[string]string{"credits": credits}}
}

// TestPaymentsEndToEnd: a checkout against stripe-mock, its webhook signed
// with the test secret grants the credits once — delivered again five
// times at once it grants nothing more; a forged or stale signature is 400
// and changes nothing; refunds take back the unspent part of the lot pro
// rata (what was spent stays spent, and is reported); the economics
// report shows the revenue of what was spent; the journal replays.
func TestPaymentsEndToEnd(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	f.must("POST", "/api/v1/customers", `{"id":"acme","name":"Acme"}`, 201)

	sess := f.must("POST", "/api/v1/customers/acme/checkout", `{"credits":"1000","success_url":"https://example.com/paid"}`, 201)
	if id, _ := sess["id"].(string); !strings.HasPrefix(id, "cs_") || sess["url"] == nil {
		t.Fatalf("checkout session %v, want a cs_ id and a url", sess)
	}
	var created *stripemock.Request
	for _, r := range f.rec.Sent() {
		if r.Path == "/v1/checkout/sessions" {
			r := r
			created = &r
		}
	}
	if created == nil || created.Form.Get("client_reference_id") != "acme" || created.Form.Get("metadata[credits]") != "1000" ||
		created.Form.Get("line_items[0][price_data][unit_amount]") != "1000" || created.Form.Get("customer") == "" {
		t.Fatalf("the session asked of Stripe: %+v", created)
	}

	payload, sig := stripemock.Event("evt_1", "checkout.session.completed", session("pi_1", "1000", 1000))
	if st, m := f.webhook(payload, sig); st != 200 {
		t.Fatalf("webhook: %d %v", st, m)
	}
	if av, lots := f.balance("acme"); av != "1000" || len(lots) != 1 || lots[0].(map[string]any)["paid_usd"] != "10" || lots[0].(map[string]any)["source"] != "purchase" {
		t.Fatalf("after the checkout: available %s, lots %v; want 1000 in one purchased lot paid $10", av, lots)
	}

	// The same event delivered five times at once grants nothing more.
	var wg sync.WaitGroup
	codes := make([]int, 5)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = f.webhook(payload, sig)
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("repeated delivery %d: %d, want 200", i, c)
		}
	}
	if av, lots := f.balance("acme"); av != "1000" || len(lots) != 1 {
		t.Fatalf("after 5 repeated deliveries: available %s in %d lots, want 1000 in 1", av, len(lots))
	}

	// Forged and stale signatures: 400, nothing granted.
	other, _ := stripemock.Event("evt_2", "checkout.session.completed", session("pi_2", "5000", 5000))
	_, forged := stripemock.EventSigned("evt_2", "checkout.session.completed", session("pi_2", "5000", 5000), "whsec_someone_else", time.Now())
	stalePayload, stale := stripemock.EventSigned("evt_3", "checkout.session.completed", session("pi_3", "5000", 5000), stripemock.WebhookSecret, time.Now().Add(-10*time.Minute))
	for _, bad := range []struct {
		name    string
		payload []byte
		sig     string
	}{{"forged", other, forged}, {"stale", stalePayload, stale}, {"unsigned", other, ""}, {"tampered", []byte(strings.Replace(string(payload), `"1000"`, `"9000"`, 1)), sig}} {
		if st, m := f.webhook(bad.payload, bad.sig); st != 400 {
			t.Errorf("%s signature: %d %v, want 400", bad.name, st, m)
		}
	}
	if av, _ := f.balance("acme"); av != "1000" {
		t.Fatalf("after bad signatures: available %s, want 1000", av)
	}

	// 300 are spent; then half the payment is refunded, then all of it.
	h := f.must("POST", "/api/v1/holds", `{"customer":"acme","amount":"300"}`, 201)
	f.must("POST", "/api/v1/holds/"+h["id"].(string)+"/capture", `{}`, 200)
	refund := func(id string, refunded int) {
		t.Helper()
		p, s := stripemock.Event(id, "charge.refunded", map[string]any{"id": "ch_1", "object": "charge", "payment_intent": "pi_1",
			"amount": 1000, "amount_refunded": refunded, "currency": "usd"})
		if st, m := f.webhook(p, s); st != 200 {
			t.Fatalf("refund webhook: %d %v", st, m)
		}
	}
	refund("evt_r1", 500) // half: 500 of the 700 unspent
	if av, _ := f.balance("acme"); av != "200" {
		t.Fatalf("after refunding half: available %s, want 200", av)
	}
	refund("evt_r1", 500) // the same event again: nothing more
	refund("evt_r2", 1000)
	if av, lots := f.balance("acme"); av != "0" || len(lots) != 0 {
		t.Fatalf("after refunding all: available %s, lots %v; want 0 and none", av, lots)
	}
	pay, err := f.a.Store.Payment(ctx, "pi_1")
	if err != nil {
		t.Fatal(err)
	}
	if pay.ClawedBack != 700*fb.Micro || pay.Unrecovered != 300*fb.Micro || pay.RefundedUSD != 10*fb.Micro {
		t.Fatalf("payment after the refunds: %+v; want 700 clawed back, 300 spent (unrecovered), $10 refunded", pay)
	}

	// The economics report shows the revenue of the 300 spent: $3.
	day := time.Now().UTC().Format(time.DateOnly)
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	rep := f.must("GET", "/api/v1/reports/economics?group_by=customer&from="+day+"&to="+tomorrow, "", 200)
	rows := rep["rows"].([]any)
	if len(rows) != 1 || rows[0].(map[string]any)["key"] != "acme" || rows[0].(map[string]any)["revenue_usd"] != "3" {
		t.Fatalf("economics rows %v, want acme with revenue 3", rows)
	}
	if r, err := ledger.Verify(ctx, f.a.Store); err != nil || len(r.Problems) > 0 {
		t.Fatalf("verify: %v %v", err, r.Problems)
	}
}

// TestAutoTopupWebhooks: an automatic top-up's PaymentIntent, once it
// succeeds, grants its credits once; its failure records the attempt
// failed; events Farebox did not set metadata on are answered and ignored.
func TestAutoTopupWebhooks(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	f.must("POST", "/api/v1/customers", `{"id":"acme","name":"Acme"}`, 201)
	pi := map[string]any{"id": "pi_auto", "object": "payment_intent", "currency": "usd", "amount_received": 500, "customer": "cus_acme", "payment_method": "pm_card",
		"metadata": map[string]string{payments.MetaCustomer: "acme", payments.MetaCredits: "500", payments.MetaKind: fb.PaymentAutoTopup}}
	for range 3 {
		p, s := stripemock.Event("evt_pi", payments.EventIntentSucceeded, pi)
		if st, m := f.webhook(p, s); st != 200 {
			t.Fatalf("payment_intent.succeeded: %d %v", st, m)
		}
	}
	if av, lots := f.balance("acme"); av != "500" || len(lots) != 1 {
		t.Fatalf("after the top-up's success (3 deliveries): available %s in %d lots, want 500 in 1", av, len(lots))
	}
	if p, err := f.a.Store.Payer(ctx, "acme"); err != nil || p.PaymentMethod != "pm_card" || p.ProviderID != "cus_acme" {
		t.Fatalf("payer after the success: %+v %v", p, err)
	}
	foreign, fsig := stripemock.Event("evt_x", payments.EventIntentSucceeded, map[string]any{"id": "pi_x", "amount_received": 99999, "currency": "usd"})
	unused, usig := stripemock.Event("evt_y", "customer.created", map[string]any{"id": "cus_y"})
	for _, e := range [][2]string{{string(foreign), fsig}, {string(unused), usig}} {
		if st, _ := f.webhook([]byte(e[0]), e[1]); st != 200 {
			t.Fatalf("an event Farebox does not use: %d, want 200", st)
		}
	}
	if av, _ := f.balance("acme"); av != "500" {
		t.Fatalf("after foreign events: available %s, want 500", av)
	}
}

// TestTopupFailed: an automatic top-up that cannot be made (no payment
// profile) and one whose PaymentIntent fails at Stripe are recorded
// failed, grant nothing, and raise topup.failed once each, delivered
// signed to the endpoint that takes it, with the attempt and the reason.
func TestTopupFailed(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	var mu sync.Mutex
	var got []map[string]any
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ev map[string]any
		json.Unmarshal(b, &ev)
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	}))
	defer recv.Close()
	f.must("POST", "/api/v1/webhook-endpoints", `{"url":"`+recv.URL+`","events":["topup.failed"]}`, 201)
	if _, err := f.a.Notify.Follow(ctx); err != nil { // the follower starts here
		t.Fatal(err)
	}
	for _, c := range []string{"nocard", "declined"} {
		f.must("POST", "/api/v1/customers", `{"id":"`+c+`","name":"`+c+`"}`, 201)
		f.must("PUT", "/api/v1/customers/"+c+"/auto-topup", `{"threshold":"50","credits":"500"}`, 200)
		f.must("POST", "/api/v1/customers/"+c+"/grants", `{"amount":"100","source":"promo"}`, 201)
	}
	if err := f.a.Store.PutPayer(ctx, fb.PayerProfile{Customer: "declined", ProviderID: "cus_declined", PaymentMethod: "pm_card_chargeDeclined"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"nocard", "declined"} {
		h := f.must("POST", "/api/v1/holds", `{"customer":"`+c+`","amount":"60"}`, 201)
		f.must("POST", "/api/v1/holds/"+h["id"].(string)+"/capture", `{}`, 200)
	}
	if _, err := f.a.Notify.Follow(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Payments.Topups(ctx); err != nil {
		t.Fatal(err)
	}
	nocard, err := f.a.Store.LastTopup(ctx, "nocard")
	if err != nil || nocard.Status != fb.TopupFailed || !strings.Contains(nocard.Error, "payment profile") {
		t.Fatalf("the top-up without a payment profile: %+v %v, want failed", nocard, err)
	}
	declined, err := f.a.Store.LastTopup(ctx, "declined")
	if err != nil || declined.Status != fb.TopupRequested || declined.PaymentID == "" {
		t.Fatalf("the top-up with a card: %+v %v, want requested", declined, err)
	}
	// Stripe says the payment failed (twice: a retried delivery).
	pi := map[string]any{"id": declined.PaymentID, "object": "payment_intent", "currency": "usd", "customer": "cus_declined",
		"last_payment_error": map[string]any{"code": "card_declined", "decline_code": "insufficient_funds"},
		"metadata":           map[string]string{payments.MetaCustomer: "declined", payments.MetaCredits: "500", payments.MetaKind: fb.PaymentAutoTopup, payments.MetaAttempt: declined.ID}}
	for range 2 {
		p, s := stripemock.Event("evt_failed", payments.EventIntentFailed, pi)
		if st, m := f.webhook(p, s); st != 200 {
			t.Fatalf("payment_intent.payment_failed: %d %v", st, m)
		}
	}
	if tu, err := f.a.Store.Topup(ctx, declined.ID); err != nil || tu.Status != fb.TopupFailed || tu.Error != "card_declined (insufficient_funds)" {
		t.Fatalf("after the failure webhook: %+v %v", tu, err)
	}
	for _, c := range []string{"nocard", "declined"} {
		if av, _ := f.balance(c); av != "40" {
			t.Fatalf("%s's balance %s, want 40: a failed top-up grants nothing", c, av)
		}
	}
	for range 3 {
		if _, err := f.a.Notify.Deliver(ctx); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	byCustomer := map[string]map[string]any{}
	for _, ev := range got {
		if ev["type"] != "topup.failed" {
			t.Fatalf("delivered %v", ev)
		}
		d := ev["data"].(map[string]any)
		if byCustomer[d["customer"].(string)] != nil {
			t.Fatalf("topup.failed of %s delivered twice", d["customer"])
		}
		byCustomer[d["customer"].(string)] = d
	}
	if len(byCustomer) != 2 || byCustomer["nocard"]["attempt"] != nocard.ID || byCustomer["declined"]["attempt"] != declined.ID ||
		byCustomer["declined"]["error"] != "card_declined (insufficient_funds)" || byCustomer["declined"]["credits"] != "500" {
		t.Fatalf("topup.failed events %v", byCustomer)
	}
}
