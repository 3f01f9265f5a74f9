package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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

// simConfig writes a config serving gpt-4o-mini from the built-in
// simulator.
func simConfig(t *testing.T, dir string) string {
	t.Helper()
	conf := filepath.Join(dir, "farebox.yaml")
	if err := os.WriteFile(conf, []byte(`
providers:
  - name: sim
    type: simulated
    models:
      - model: gpt-4o-mini
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf
}

// chats sends n chat completions at once on key and returns what they
// cost, failing on any answer but 200.
func chats(t *testing.T, base, key string, n int) fb.Amount {
	t.Helper()
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n}}
	var mu sync.Mutex
	var spent fb.Amount
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}],"max_tokens":16}`))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Farebox-Simulate-Tokens", "8")
			resp, err := hc.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("a chat completion: %d %s", resp.StatusCode, b)
				return
			}
			c, err := fb.ParseAmount(resp.Header.Get("X-Farebox-Cost"))
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			spent += c
			mu.Unlock()
		}()
	}
	wg.Wait()
	return spent
}

// TestTopupCrashBeforeStripe: 500 concurrent gateway requests on the real
// binary drive a customer through its auto top-up's threshold; the
// attempt is recorded, and Farebox is killed with SIGKILL while its call
// to Stripe has not reached Stripe (the network holds it). After a
// restart the attempt is made again under the same Idempotency-Key:
// Stripe gets exactly one PaymentIntent.
func TestTopupCrashBeforeStripe(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a server")
	}
	rec := stripemock.NewRecorder(t, stripemock.Start(t))
	rec.Hold(true)
	dir := t.TempDir()
	args := []string{"--data-dir", dir, "--config", simConfig(t, dir)}
	s := startServeArgs(t, args, stripeEnv(rec.URL)...)
	c := newClient(s.url)
	// 1 credit per 1,000 input tokens, 1 per 100 output: each request
	// costs about 0.09 credits, 500 of them about 45.
	c.must(t, "PUT", "/api/v1/prices/gpt-4o-mini", `{"input_per_mtok":"1000","output_per_mtok":"10000"}`, "", 200)
	c.must(t, "POST", "/api/v1/customers", `{"id":"acme","name":"Acme"}`, "", 201)
	c.must(t, "POST", "/api/v1/customers/acme/grants", `{"amount":"1000","source":"purchase","paid_usd":"10"}`, "", 201)
	key := c.must(t, "POST", "/api/v1/customers/acme/keys", `{"name":"k"}`, "", 201)["key"].(string)
	// A checkout's PaymentIntent saved the card.
	c.webhook(t, "evt_saved", payments.EventIntentSucceeded, map[string]any{"id": "pi_checkout", "object": "payment_intent", "currency": "usd", "customer": "cus_acme",
		"payment_method": "pm_card_visa", "metadata": map[string]string{payments.MetaCustomer: "acme", payments.MetaKind: fb.PaymentCheckout}})
	c.must(t, "PUT", "/api/v1/customers/acme/auto-topup", `{"threshold":"980","credits":"1000","cooldown":"1h"}`, "", 200)
	time.Sleep(1500 * time.Millisecond) // the follower's cursor is set before the crossing

	spent := chats(t, s.url, key, 500)
	if spent < 20*fb.Micro {
		t.Fatalf("500 requests spent %s: not through the threshold (980 of 1000)", spent)
	}
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

	s = startServeArgs(t, args, stripeEnv(rec.URL)...)
	for end := time.Now().Add(20 * time.Second); len(paymentIntentPosts(rec.Sent())) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the attempt was not made again after the restart\n%s", s.stderr)
		}
	}
	time.Sleep(2500 * time.Millisecond) // time for a wrong second attempt
	seen := paymentIntentPosts(rec.Seen())
	t.Logf("500 requests spent %s; PaymentIntent requests asked %d times (before and after the kill), %d reached stripe-mock", spent, len(seen), len(paymentIntentPosts(rec.Sent())))
	if n := stripemock.PaymentIntents(rec.Seen()); n != 1 || len(paymentIntentPosts(rec.Sent())) != 1 {
		t.Fatalf("Stripe would have made %d PaymentIntents (%d reached stripe-mock; %d asked: %+v), want 1", n, len(paymentIntentPosts(rec.Sent())), len(seen), seen)
	}
	if seen[0].IdempotencyKey == "" || seen[0].IdempotencyKey != seen[len(seen)-1].IdempotencyKey {
		t.Fatalf("the attempt's calls carried keys %q and %q, want one key", seen[0].IdempotencyKey, seen[len(seen)-1].IdempotencyKey)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.wait()
	if code, out := runVerify(t, dir); code != 0 {
		t.Fatalf("verify: %d\n%s", code, out)
	}
}

// TestWebhookAfterCrash: Farebox is killed with SIGKILL right after the
// commit that crossed a customer's balance.low threshold was answered;
// after a restart the event is delivered, signed. An attempt that reached
// the receiver before the kill is held unanswered until the process is
// dead (so the dead process never learnt of it), and is not counted: the
// event must come from the restarted one. Then a second crossing is
// delivered within seconds of its commit.
func TestWebhookAfterCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a server")
	}
	type delivery struct {
		sig  string
		body []byte
		at   time.Time
	}
	var (
		mu      sync.Mutex
		got     []delivery
		early   int
		dead    = make(chan struct{})
		isDead  bool
		pending sync.WaitGroup
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		if !isDead {
			early++
			pending.Add(1)
			mu.Unlock()
			defer pending.Done()
			<-dead // never answered to the process that sent it
			return
		}
		got = append(got, delivery{r.Header.Get(notify.SignatureHeader), b, time.Now()})
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
	mu.Lock()
	isDead = true
	mu.Unlock()
	close(dead)
	pending.Wait()

	s = startServe(t, dir)
	waitFor := func(n int) {
		t.Helper()
		for end := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			have := len(got)
			mu.Unlock()
			if have >= n {
				return
			}
			if time.Now().After(end) {
				t.Fatalf("%d deliveries after the restart, want %d\n%s", have, n, s.stderr)
			}
		}
	}
	waitFor(1)
	// A second crossing: back above, then below again.
	c = newClient(s.url)
	c.must(t, "POST", "/api/v1/customers/acme/grants", `{"amount":"100","source":"promo"}`, "", 201)
	h = c.must(t, "POST", "/api/v1/holds", `{"customer":"acme","amount":"100"}`, "", 201)
	c.must(t, "POST", "/api/v1/holds/"+h["id"].(string)+"/capture", `{}`, "", 200)
	committed := time.Now()
	waitFor(2)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d attempts reached the receiver before the kill; after the restart %d deliveries; the second crossing's %s after its commit", early, len(got), got[len(got)-1].at.Sub(committed).Round(time.Millisecond))
	if lag := got[len(got)-1].at.Sub(committed); lag > 5*time.Second {
		t.Fatalf("the second crossing was delivered %s after its commit, want within seconds", lag)
	}
	ids := map[string]bool{}
	for i, d := range got {
		if err := notify.Verify(ep["secret"].(string), d.sig, d.body, time.Now(), 5*time.Minute); err != nil {
			t.Fatal(err)
		}
		var ev struct {
			ID, Type string
			Data     map[string]any
		}
		json.Unmarshal(d.body, &ev)
		want := []string{"40", "40"}[min(i, 1)]
		if ev.Type != notify.BalanceLow || ev.Data["customer"] != "acme" || ev.Data["balance"] != want || ev.Data["threshold"] != "50" {
			t.Fatalf("delivered %s", d.body)
		}
		ids[ev.ID] = true
	}
	if len(ids) != 2 || len(got) != 2 {
		t.Fatalf("%d deliveries of %d events (%v), want the crossing before the kill and the one after, once each", len(got), len(ids), ids)
	}
}
