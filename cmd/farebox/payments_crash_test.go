package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	fb "farebox"
	"farebox/notify"
	"farebox/payments"
	"farebox/payments/stripemock"
)

// stripeEnv points serve at Stripe (a recorder in front of stripe-mock).
func stripeEnv(base string) []string {
	return []string{"FAREBOX_STRIPE_SECRET_KEY=" + stripemock.SecretKey, "FAREBOX_STRIPE_WEBHOOK_SECRET=" + stripemock.WebhookSecret, "FAREBOX_STRIPE_API_BASE=" + base}
}

// webhook posts a signed Stripe event to the server.
func (c *client) webhook(t *testing.T, id, typ string, object any) {
	t.Helper()
	payload, sig := stripemock.Event(id, typ, object)
	req, _ := http.NewRequest("POST", c.base+"/webhooks/stripe", strings.NewReader(string(payload)))
	req.Header.Set("Stripe-Signature", sig)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("webhook %s: %d", typ, resp.StatusCode)
	}
}

func paymentIntentPosts(reqs []stripemock.Request) []stripemock.Request {
	var out []stripemock.Request
	for _, r := range reqs {
		if r.Method == "POST" && r.Path == "/v1/payment_intents" {
			out = append(out, r)
		}
	}
	return out
}

// TestTopupCrashBeforeStripe: a commit takes the balance below the auto
// top-up's threshold; the attempt is recorded, and Farebox is killed with
// SIGKILL while its call to Stripe has not reached Stripe (the network
// holds it). After a restart the attempt is made again under the same
// Idempotency-Key: Stripe gets exactly one PaymentIntent.
func TestTopupCrashBeforeStripe(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a server")
	}
	rec := stripemock.NewRecorder(t, stripemock.Start(t))
	rec.Hold(true)
	dir := t.TempDir()
	s := startServe(t, dir, stripeEnv(rec.URL)...)
	c := newClient(s.url)
	c.must(t, "POST", "/api/v1/customers", `{"id":"acme","name":"Acme"}`, "", 201)
	c.must(t, "POST", "/api/v1/customers/acme/grants", `{"amount":"100","source":"purchase","paid_usd":"1"}`, "", 201)
	// A checkout's PaymentIntent saved the card.
	c.webhook(t, "evt_saved", payments.EventIntentSucceeded, map[string]any{"id": "pi_checkout", "object": "payment_intent", "currency": "usd", "customer": "cus_acme",
		"payment_method": "pm_card_visa", "metadata": map[string]string{payments.MetaCustomer: "acme", payments.MetaKind: fb.PaymentCheckout}})
	c.must(t, "PUT", "/api/v1/customers/acme/auto-topup", `{"threshold":"95","credits":"1000","cooldown":"1h"}`, "", 200)
	time.Sleep(1500 * time.Millisecond) // the follower's cursor is set before the crossing
	h := c.must(t, "POST", "/api/v1/holds", `{"customer":"acme","amount":"10"}`, "", 201)
	c.must(t, "POST", "/api/v1/holds/"+h["id"].(string)+"/capture", `{}`, "", 200)

	// The attempt is recorded, then Stripe is called: the call arrives,
	// held back, and the process dies.
	deadline := time.After(20 * time.Second)
	for arrived := false; !arrived; {
		select {
		case r := <-rec.Arrived():
			arrived = r.Path == "/v1/payment_intents"
		case <-deadline:
			t.Fatalf("no PaymentIntent was asked for\n%s", s.stderr)
		}
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.wait()
	if n := len(paymentIntentPosts(rec.Sent())); n != 0 {
		t.Fatalf("%d PaymentIntents reached stripe-mock before the kill, want 0", n)
	}
	rec.Hold(false)

	s = startServe(t, dir, stripeEnv(rec.URL)...)
	for end := time.Now().Add(20 * time.Second); len(paymentIntentPosts(rec.Sent())) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the attempt was not made again after the restart\n%s", s.stderr)
		}
	}
	time.Sleep(2500 * time.Millisecond) // time for a wrong second attempt
	seen := paymentIntentPosts(rec.Seen())
	if n := stripemock.PaymentIntents(rec.Seen()); n != 1 || len(paymentIntentPosts(rec.Sent())) != 1 {
		t.Fatalf("Stripe would have made %d PaymentIntents (%d reached stripe-mock; %d asked: %+v), want 1", n, len(paymentIntentPosts(rec.Sent())), len(seen), seen)
	}
	if seen[0].IdempotencyKey == "" || seen[0].IdempotencyKey != seen[len(seen)-1].IdempotencyKey {
		t.Fatalf("the attempt's calls carried keys %q and %q, want one key", seen[0].IdempotencyKey, seen[len(seen)-1].IdempotencyKey)
	}
	if code, out := runVerify(t, dir); code != 0 {
		t.Fatalf("verify: %d\n%s", code, out)
	}
}

// TestWebhookAfterCrash: Farebox is killed with SIGKILL right after the
// commit that crossed a customer's balance.low threshold was answered;
// after a restart the event is delivered, signed.
func TestWebhookAfterCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a server")
	}
	var mu sync.Mutex
	type delivery struct {
		sig  string
		body []byte
	}
	var got []delivery
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, delivery{r.Header.Get(notify.SignatureHeader), b})
		mu.Unlock()
	}))
	defer recv.Close()
	dir := t.TempDir()
	s := startServe(t, dir)
	c := newClient(s.url)
	ep := c.must(t, "POST", "/api/v1/webhook-endpoints", fmt.Sprintf(`{"url":%q,"events":["balance.low"]}`, recv.URL), "", 201)
	c.must(t, "POST", "/api/v1/customers", `{"id":"acme","name":"Acme"}`, "", 201)
	c.must(t, "PUT", "/api/v1/customers/acme/alerts", `{"low_balance":"50"}`, "", 200)
	c.must(t, "POST", "/api/v1/customers/acme/grants", `{"amount":"100","source":"purchase","paid_usd":"1"}`, "", 201)
	time.Sleep(1500 * time.Millisecond) // the follower's cursor is set before the crossing
	h := c.must(t, "POST", "/api/v1/holds", `{"customer":"acme","amount":"60"}`, "", 201)
	c.must(t, "POST", "/api/v1/holds/"+h["id"].(string)+"/capture", `{}`, "", 200)
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.wait()

	s = startServe(t, dir)
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("balance.low was not delivered after the restart\n%s", s.stderr)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	ids := map[string]bool{}
	for _, d := range got {
		if err := notify.Verify(ep["secret"].(string), d.sig, d.body, time.Now(), 5*time.Minute); err != nil {
			t.Fatal(err)
		}
		var ev struct {
			ID, Type string
			Data     map[string]any
		}
		json.Unmarshal(d.body, &ev)
		if ev.Type != notify.BalanceLow || ev.Data["customer"] != "acme" || ev.Data["balance"] != "40" || ev.Data["threshold"] != "50" {
			t.Fatalf("delivered %s", d.body)
		}
		ids[ev.ID] = true
	}
	if len(ids) != 1 {
		t.Fatalf("%d events delivered (%v), want one (a crash may only repeat it)", len(ids), ids)
	}
}
