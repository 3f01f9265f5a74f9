package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/app"
	"farebox/fakeclock"
	"farebox/notify"
)

const token = "notify-test-admin-token-0123456789ab"

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// receiver records the deliveries it takes; while down it answers 503.
type receiver struct {
	mu   sync.Mutex
	down bool
	got  []got
	url  string
}

type got struct {
	at   time.Time // the signature's
	sig  string
	body []byte
	id   string
	typ  string
	cust string
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.down {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var ev struct {
			ID, Type string
			Data     struct{ Customer string }
		}
		json.Unmarshal(b, &ev)
		r.got = append(r.got, got{sig: req.Header.Get(notify.SignatureHeader), body: b, id: ev.ID, typ: ev.Type, cust: ev.Data.Customer})
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func (r *receiver) set(down bool) { r.mu.Lock(); r.down = down; r.mu.Unlock() }
func (r *receiver) all() []got    { r.mu.Lock(); defer r.mu.Unlock(); return append([]got(nil), r.got...) }

type fixture struct {
	t   *testing.T
	a   *app.App
	clk *fakeclock.Clock
	url string
}

func newFixture(t *testing.T) *fixture {
	clk := fakeclock.New(t0)
	a, err := app.New(context.Background(), app.Config{DataDir: t.TempDir(), AdminToken: token, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler)
	t.Cleanup(func() { hs.Close(); a.Close() })
	return &fixture{t: t, a: a, clk: clk, url: hs.URL}
}

func (f *fixture) api(method, path, body string) map[string]any {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &m)
	if resp.StatusCode >= 300 {
		f.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return m
}

func (f *fixture) op(op fb.Op) {
	f.t.Helper()
	if _, err := f.a.Engine.Submit(context.Background(), op); err != nil {
		f.t.Fatal(err)
	}
}

// round is one tick of the background job: follow, deliver.
func (f *fixture) round() {
	f.t.Helper()
	ctx := context.Background()
	if _, err := f.a.Notify.Follow(ctx); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.a.Notify.Deliver(ctx); err != nil {
		f.t.Fatal(err)
	}
}

// seqOf is the journal seq an event was derived from (its id says it).
func seqOf(id string) int64 {
	parts := strings.Split(id, "_")
	n, _ := strconv.ParseInt(parts[1], 10, 64)
	return n
}

// TestReceiverDownForAnHour: events of two customers pile up while their
// receiver answers 503 for an hour of the injected clock; once it is back,
// every event arrives exactly once, in order per customer, each signature
// valid, and the delivery log has the failed attempts and their status.
func TestReceiverDownForAnHour(t *testing.T) {
	f := newFixture(t)
	recv := newReceiver(t)
	recv.set(true)
	created := f.api("POST", "/api/v1/webhook-endpoints", fmt.Sprintf(`{"url":%q,"events":["balance.low","balance.depleted","topup.succeeded"]}`, recv.url))
	secret, endpoint := created["secret"].(string), created["id"].(string)
	f.round() // the follower starts here
	for _, c := range []string{"acme", "bolt"} {
		f.api("POST", "/api/v1/customers", fmt.Sprintf(`{"id":%q,"name":%q}`, c, c))
		f.api("PUT", "/api/v1/customers/"+c+"/alerts", `{"low_balance":"50"}`)
	}
	cr := func(n int64) fb.Amount { return fb.Amount(n * fb.Micro) }
	want := map[string]int{}
	for _, c := range []string{"acme", "bolt"} {
		f.op(fb.Op{Kind: fb.OpGrant, Customer: c, Amount: cr(100), Source: fb.SourcePromo})
	}
	for _, c := range []string{"acme", "bolt"} {
		f.op(fb.Op{Kind: fb.OpDebit, Customer: c, Amount: cr(60)})                                                                   // 40: low
		f.op(fb.Op{Kind: fb.OpGrant, Customer: c, Amount: cr(100), Source: fb.SourcePurchase, Key: fb.PaymentKeyPrefix + "pi_" + c}) // 140: top-up
		f.op(fb.Op{Kind: fb.OpDebit, Customer: c, Amount: cr(100)})                                                                  // 40: low again
		f.op(fb.Op{Kind: fb.OpDebit, Customer: c, Amount: cr(40)})                                                                   // 0: depleted
		want[c] = 4
	}
	for range 60 {
		f.round()
		f.clk.Advance(time.Minute)
	}
	if n := len(recv.all()); n != 0 {
		t.Fatalf("%d deliveries taken while the receiver was down", n)
	}
	recv.set(false)
	for i := 0; i < 120 && len(recv.all()) < 8; i++ {
		f.round()
		f.clk.Advance(time.Minute)
	}
	all := recv.all()
	seen := map[string]bool{}
	last := map[string]int64{}
	count := map[string]int{}
	types := map[string]int{}
	for _, g := range all {
		if seen[g.id] {
			t.Fatalf("event %s delivered twice", g.id)
		}
		seen[g.id] = true
		if err := notify.Verify(secret, g.sig, g.body, time.Time{}, 0); err != nil {
			t.Fatalf("event %s: %v", g.id, err)
		}
		if s := seqOf(g.id); s <= last[g.cust] {
			t.Fatalf("%s's events out of order: %s after seq %d", g.cust, g.id, last[g.cust])
		} else {
			last[g.cust] = s
		}
		count[g.cust]++
		types[g.typ]++
	}
	if count["acme"] != want["acme"] || count["bolt"] != want["bolt"] || types[notify.BalanceLow] != 4 || types[notify.BalanceDepleted] != 2 || types[notify.TopupSucceeded] != 2 {
		t.Fatalf("received %v by customer, %v by type; want 4 each: 2 balance.low, 1 topup.succeeded, 1 balance.depleted", count, types)
	}
	log := f.api("GET", "/api/v1/webhook-endpoints/"+endpoint+"/deliveries", "")["data"].([]any)
	if len(log) != 8 {
		t.Fatalf("delivery log of %d, want 8", len(log))
	}
	for _, x := range log {
		d := x.(map[string]any)
		if d["status"] != "succeeded" || d["last_status_code"] != 200.0 {
			t.Fatalf("delivery %v, want succeeded with 200", d)
		}
	}
	first := log[len(log)-1].(map[string]any)
	if first["attempts"].(float64) < 3 {
		t.Fatalf("the first event's delivery took %v attempts; it was retried through the hour", first["attempts"])
	}
	_, attempts, err := f.a.Store.Delivery(context.Background(), first["id"].(string))
	if err != nil || attempts[0].StatusCode != 503 || attempts[len(attempts)-1].StatusCode != 200 {
		t.Fatalf("attempts %+v %v: want 503s, then 200", attempts, err)
	}
}

// TestRetriesForThreeDaysThenManual: a receiver that never comes back is
// tried with back-off for 3 days, then given up; a manual retry sends the
// delivery again at once.
func TestRetriesForThreeDaysThenManual(t *testing.T) {
	f := newFixture(t)
	recv := newReceiver(t)
	recv.set(true)
	created := f.api("POST", "/api/v1/webhook-endpoints", fmt.Sprintf(`{"url":%q,"events":["balance.depleted"]}`, recv.url))
	f.round()
	f.api("POST", "/api/v1/customers", `{"id":"acme","name":"Acme"}`)
	f.op(fb.Op{Kind: fb.OpGrant, Customer: "acme", Amount: 5 * fb.Micro, Source: fb.SourcePromo})
	f.op(fb.Op{Kind: fb.OpDebit, Customer: "acme", Amount: 5 * fb.Micro})
	var d map[string]any
	for range 80 {
		f.round()
		f.clk.Advance(time.Hour)
		d = f.api("GET", "/api/v1/webhook-endpoints/"+created["id"].(string)+"/deliveries", "")["data"].([]any)[0].(map[string]any)
		if d["status"] == "failed" {
			break
		}
	}
	if d["status"] != "failed" || d["attempts"].(float64) < 5 || d["last_status_code"] != 503.0 {
		t.Fatalf("after 3 days down: %v, want failed after its attempts", d)
	}
	recv.set(false)
	r := f.api("POST", "/api/v1/webhook-deliveries/"+d["id"].(string)+"/retry", "")
	if r["status"] != "pending" {
		t.Fatalf("retry: %v", r)
	}
	f.round()
	if g := recv.all(); len(g) != 1 || g[0].typ != notify.BalanceDepleted {
		t.Fatalf("after the manual retry the receiver got %v", g)
	}
}

// TestBalanceLowOncePerCrossingConcurrent: 200 concurrent debits take a
// balance through its threshold: one balance.low, whatever the batching.
func TestBalanceLowOncePerCrossingConcurrent(t *testing.T) {
	f := newFixture(t)
	recv := newReceiver(t)
	f.api("POST", "/api/v1/webhook-endpoints", fmt.Sprintf(`{"url":%q,"events":["balance.low"]}`, recv.url))
	f.round()
	f.api("POST", "/api/v1/customers", `{"id":"acme","name":"Acme"}`)
	f.api("PUT", "/api/v1/customers/acme/alerts", `{"low_balance":"50"}`)
	f.op(fb.Op{Kind: fb.OpGrant, Customer: "acme", Amount: 100 * fb.Micro, Source: fb.SourcePromo})
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.a.Engine.Submit(context.Background(), fb.Op{Kind: fb.OpDebit, Customer: "acme", Amount: 3 * fb.Micro / 10, Key: fmt.Sprint("d", i)})
		}()
	}
	wg.Wait()
	f.round()
	f.round()
	if g := recv.all(); len(g) != 1 || g[0].typ != notify.BalanceLow {
		t.Fatalf("received %d events, want one balance.low", len(g))
	}
}
