package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	fb "farebox"
	"farebox/store/sqlite"
)

// op is one request a crash-test client sent, with what became of it.
type op struct {
	kind, customer, method, path, body, key string
	acked                                   bool // a 2xx answer came back
	answer                                  map[string]any
}

const (
	grantAmount   = fb.Amount(1_000_000)
	holdAmount    = "0.5"
	captureAmount = fb.Amount(300_000)
)

// load drives grants, holds, captures and releases from many clients until
// the server stops answering. It returns every op that got an answer or
// was in flight when the server died.
func load(t *testing.T, c *client, customers []string, round, workers int) []*op {
	var mu sync.Mutex
	var ops []*op
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(round), uint64(w)))
			// send reports false when the server is gone.
			send := func(o *op, okStatus ...int) bool {
				mu.Lock()
				ops = append(ops, o)
				mu.Unlock()
				st, body, err := c.call(context.Background(), o.method, o.path, o.body, o.key)
				if err != nil {
					return false // in flight when the server died
				}
				for _, s := range okStatus {
					if st == s {
						o.acked = st < 300
						o.answer = body
						return true
					}
				}
				t.Errorf("%s %s: unexpected %d %v", o.method, o.path, st, body)
				return false
			}
			for n := 0; ; n++ {
				cus := customers[rng.IntN(len(customers))]
				key := fmt.Sprintf("r%d-w%d-n%d", round, w, n)
				g := &op{kind: "grant", customer: cus, method: "POST", path: "/api/v1/customers/" + cus + "/grants", body: `{"amount":"1","source":"purchase","paid_usd":"0.01"}`, key: key + "-g"}
				if !send(g, 201) {
					return
				}
				h := &op{kind: "hold", customer: cus, method: "POST", path: "/api/v1/holds", body: `{"customer":"` + cus + `","amount":"` + holdAmount + `","ttl_seconds":3600}`, key: key + "-h"}
				if !send(h, 201, 402) {
					return
				}
				if !h.acked {
					continue
				}
				id, _ := h.answer["id"].(string)
				r := &op{kind: "release", customer: cus, method: "POST", path: "/api/v1/holds/" + id + "/release", key: key + "-r"}
				if n%2 == 0 {
					r = &op{kind: "capture", customer: cus, method: "POST", path: "/api/v1/holds/" + id + "/capture", body: `{"amount":"0.3"}`, key: key + "-c"}
				}
				if !send(r, 200) {
					return
				}
			}
		}()
	}
	wg.Wait()
	return ops
}

type totals struct{ granted, charged fb.Amount }

// snapshot reads the whole stored ledger beside the running server.
func snapshot(t *testing.T, dataDir string) *fb.Dump {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(dataDir, "farebox.db"), sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err := st.Snapshot(context.Background(), func(*fb.JournalEntry) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func str(m map[string]any, path ...string) string {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = mm[p]
	}
	s, _ := v.(string)
	return s
}

// TestCrashRecovery kills the server with SIGKILL under load, three times,
// and proves after each restart that every acknowledged op is there exactly
// once, that ops in flight were applied whole or not at all, and that the
// journal replays to exactly the stored state.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary under load")
	}
	dir := t.TempDir()
	p := startServe(t, dir)
	c := newClient(p.url)
	var customers []string
	for i := range 20 {
		id := fmt.Sprintf("crash-%02d", i)
		c.must(t, "POST", "/api/v1/customers", `{"id":"`+id+`"}`, "", 201)
		customers = append(customers, id)
	}
	applied := map[string]totals{} // what is certainly applied so far
	for round := 1; round <= 3; round++ {
		c = newClient(p.url)
		done := make(chan []*op)
		go func() { done <- load(t, c, customers, round, 32) }()
		time.Sleep(time.Duration(300+rand.IntN(500)) * time.Millisecond) // let load build up
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		ops := <-done
		p.wait()
		var acked, inflight int
		for _, o := range ops {
			if o.acked {
				acked++
			} else if o.answer == nil {
				inflight++
			}
		}
		t.Logf("round %d: %d ops acknowledged, %d in flight at SIGKILL", round, acked, inflight)
		if acked < 50 {
			t.Fatalf("round %d: only %d ops acknowledged before the kill; the load did not run", round, acked)
		}

		if code, out := runVerify(t, dir); code != 0 {
			t.Fatalf("round %d: verify on the stopped data: exit %d\n%s", round, code, out)
		}
		p = startServe(t, dir)
		c = newClient(p.url)
		if code, out := runVerify(t, dir); code != 0 {
			t.Fatalf("round %d: verify beside the live server: exit %d\n%s", round, code, out)
		}
		checkAcked(t, dir, ops, applied)
		checkHolds(t, c, ops)
		checkBalances(t, c, dir, customers)

		// Replaying every acknowledged op answers the same and changes nothing.
		before, beforeBal := snapshot(t, dir), balances(t, c, customers)
		replay(t, c, ops, true)
		after, afterBal := snapshot(t, dir), balances(t, c, customers)
		for _, cus := range customers {
			b, a := before.Accounts[cus], after.Accounts[cus]
			if a.Granted != b.Granted || a.Charged != b.Charged {
				t.Fatalf("%s: replaying acknowledged ops changed granted %s→%s charged %s→%s", cus, b.Granted, a.Granted, b.Charged, a.Charged)
			}
			if beforeBal[cus] != afterBal[cus] {
				t.Fatalf("%s: replaying acknowledged ops changed the balance %s → %s", cus, beforeBal[cus], afterBal[cus])
			}
		}
		// Retrying the ops that were in flight applies each exactly once:
		// afterwards the totals are exactly the sum of everything sent.
		replay(t, c, ops, false)
		for _, o := range ops {
			if o.answer == nil && !o.acked {
				continue // refused (402): nothing to count
			}
			tt := applied[o.customer]
			switch o.kind {
			case "grant":
				tt.granted += grantAmount
			case "capture":
				tt.charged += captureAmount
			}
			applied[o.customer] = tt
		}
		final := snapshot(t, dir)
		for _, cus := range customers {
			a := final.Accounts[cus]
			if a.Granted != applied[cus].granted || a.Charged != applied[cus].charged {
				t.Fatalf("%s after retries: granted %s charged %s, sent %s and %s", cus, a.Granted, a.Charged, applied[cus].granted, applied[cus].charged)
			}
		}
		checkBalances(t, c, dir, customers)
		if code, out := runVerify(t, dir); code != 0 {
			t.Fatalf("round %d: verify after retries: exit %d\n%s", round, code, out)
		}
	}
	// A clean stop after all that.
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("SIGTERM: exit %d\n%s", code, p.stderr)
	}
	if code, out := runVerify(t, dir); code != 0 {
		t.Fatalf("final verify: exit %d\n%s", code, out)
	}
}

// checkAcked proves every acknowledged op of the round is stored, and that
// the totals lie between what was acknowledged and what was sent.
func checkAcked(t *testing.T, dir string, ops []*op, applied map[string]totals) {
	t.Helper()
	d := snapshot(t, dir)
	lots := map[string]*fb.Lot{}
	holds := map[string]*fb.Hold{}
	for _, a := range d.Accounts {
		for _, l := range a.Lots {
			lots[l.ID] = l
		}
		for _, h := range a.Holds {
			holds[h.ID] = h
		}
		for _, h := range a.Closed {
			holds[h.ID] = h
		}
	}
	lo, hi := map[string]totals{}, map[string]totals{}
	for cus, tt := range applied {
		lo[cus], hi[cus] = tt, tt
	}
	for _, o := range ops {
		l, h := lo[o.customer], hi[o.customer]
		switch o.kind {
		case "grant":
			h.granted += grantAmount
			if o.acked {
				l.granted += grantAmount
				id := str(o.answer, "lot", "id")
				if lot := lots[id]; lot == nil || lot.Amount != grantAmount || lot.Customer != o.customer {
					t.Fatalf("acknowledged grant %s (lot %s) is not stored", o.key, id)
				}
			}
		case "hold":
			if o.acked {
				if hold := holds[str(o.answer, "id")]; hold == nil || hold.Customer != o.customer {
					t.Fatalf("acknowledged hold %s (%s) is not stored", o.key, str(o.answer, "id"))
				}
			}
		case "capture":
			h.charged += captureAmount
			if o.acked {
				l.charged += captureAmount
				hold := holds[str(o.answer, "id")]
				if hold == nil || hold.Status != fb.HoldCaptured || hold.Result == nil || hold.Result.Captured != captureAmount {
					t.Fatalf("acknowledged capture %s is not stored: %+v", o.key, hold)
				}
			}
		case "release":
			if o.acked {
				if hold := holds[str(o.answer, "id")]; hold == nil || hold.Status != fb.HoldReleased {
					t.Fatalf("acknowledged release %s is not stored: %+v", o.key, hold)
				}
			}
		}
		lo[o.customer], hi[o.customer] = l, h
	}
	for cus, a := range d.Accounts {
		var sum fb.Amount
		for _, l := range a.Lots {
			sum += l.Amount
		}
		if sum != a.Granted {
			t.Fatalf("%s: lots hold %s but %s was granted", cus, sum, a.Granted)
		}
		if _, ok := lo[cus]; !ok {
			continue
		}
		if a.Granted < lo[cus].granted || a.Granted > hi[cus].granted || a.Charged < lo[cus].charged || a.Charged > hi[cus].charged {
			t.Fatalf("%s: granted %s outside [%s, %s] or charged %s outside [%s, %s]",
				cus, a.Granted, lo[cus].granted, hi[cus].granted, a.Charged, lo[cus].charged, hi[cus].charged)
		}
	}
}

// replay resends ops with their keys, concurrently: the acknowledged ones
// (acked true) must answer exactly as before; the ones in flight (acked
// false) must now succeed.
func replay(t *testing.T, c *client, ops []*op, acked bool) {
	t.Helper()
	work := make(chan *op)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				st, body, err := c.call(context.Background(), o.method, o.path, o.body, o.key)
				if err != nil {
					t.Error(err)
					continue
				}
				if !acked {
					if st >= 300 && !(o.kind == "hold" && st == 402) {
						t.Errorf("retry of in-flight %s %s: %d %v", o.kind, o.key, st, body)
					}
					o.acked, o.answer = st < 300, body
					continue
				}
				same := st < 300
				switch o.kind {
				case "grant":
					same = same && str(body, "lot", "id") == str(o.answer, "lot", "id")
				case "hold":
					same = same && str(body, "id") == str(o.answer, "id")
				case "capture", "release":
					same = same && str(body, "captured") == str(o.answer, "captured") && str(body, "released") == str(o.answer, "released") && str(body, "status") == str(o.answer, "status")
				}
				if !same {
					t.Errorf("replay of acknowledged %s %s: %d %v, first answer %v", o.kind, o.key, st, body, o.answer)
				}
			}
		}()
	}
	for _, o := range ops {
		if o.acked == acked && (acked || o.answer == nil) {
			work <- o
		}
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// amountField parses the decimal string m[k].
func amountField(t *testing.T, m map[string]any, k string) fb.Amount {
	t.Helper()
	s, ok := m[k].(string)
	if !ok {
		t.Fatalf("%s is not a decimal string in %v", k, m)
	}
	a, err := fb.ParseAmount(s)
	if err != nil {
		t.Fatalf("%s = %q: %v", k, s, err)
	}
	return a
}

// balances reads each customer's available and held credit from the API.
func balances(t *testing.T, c *client, customers []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, cus := range customers {
		b := c.must(t, "GET", "/api/v1/customers/"+cus+"/balance", "", "", 200)
		out[cus] = fmt.Sprintf("available %s held %s, %d lots", str(b, "available"), str(b, "held"), len(b["lots"].([]any)))
	}
	return out
}

// checkBalances proves nothing is half-applied: in the balance endpoint
// every listed lot's amount is remaining + consumed + expired, the held
// total is what the lots hold and available is the rest of what remains;
// and over the whole account (the endpoint lists live lots only, so the
// totals of dead lots come from the store) granted = available + held +
// consumed + expired.
func checkBalances(t *testing.T, c *client, dir string, customers []string) {
	t.Helper()
	d := snapshot(t, dir)
	for _, cus := range customers {
		b := c.must(t, "GET", "/api/v1/customers/"+cus+"/balance", "", "", 200)
		available, held := amountField(t, b, "available"), amountField(t, b, "held")
		for _, k := range []string{"debt", "uncollected", "overdraft_limit"} {
			if v := amountField(t, b, k); v != 0 {
				t.Fatalf("%s: %s %s, want 0: %v", cus, k, v, b)
			}
		}
		var remaining, lotHeld, amount fb.Amount
		lots, _ := b["lots"].([]any)
		for _, x := range lots {
			l, _ := x.(map[string]any)
			a, r, h := amountField(t, l, "amount"), amountField(t, l, "remaining"), amountField(t, l, "held")
			cn, ex := amountField(t, l, "consumed"), amountField(t, l, "expired")
			if a != r+cn+ex || h < 0 || h > r || r <= 0 && h <= 0 {
				t.Fatalf("%s: lot half-applied: amount %s remaining %s held %s consumed %s expired %s", cus, a, r, h, cn, ex)
			}
			remaining += r
			lotHeld += h
			amount += a
		}
		if lotHeld != held || remaining-lotHeld != available {
			t.Fatalf("%s: available %s held %s, but the lots have %s remaining of which %s held", cus, available, held, remaining, lotHeld)
		}
		acc := d.Accounts[cus]
		if acc == nil {
			t.Fatalf("%s: no stored account", cus)
		}
		var liveAmount, consumed, expired fb.Amount
		for _, l := range acc.Lots {
			if l.Live() {
				liveAmount += l.Amount
			}
			consumed += l.Consumed
			expired += l.Expired
		}
		if liveAmount != amount {
			t.Fatalf("%s: the balance lists lots of %s, the store's live lots are %s", cus, amount, liveAmount)
		}
		if consumed != acc.Charged || expired != acc.Expired {
			t.Fatalf("%s: lots consumed %s expired %s, account charged %s expired %s", cus, consumed, expired, acc.Charged, acc.Expired)
		}
		if acc.Granted != available+held+consumed+expired {
			t.Fatalf("%s: granted %s != available %s + held %s + consumed %s + expired %s", cus, acc.Granted, available, held, consumed, expired)
		}
	}
}

// checkHolds reads every hold of the round through GET /api/v1/holds/{id}:
// an acknowledged hold is there with its customer and amount, pending or
// resolved; an acknowledged capture or release shows as such; a hold whose
// resolution was in flight is pending or resolved that way, nothing else.
func checkHolds(t *testing.T, c *client, ops []*op) {
	t.Helper()
	type want struct {
		customer string
		status   []string // allowed
		captured string
	}
	holds := map[string]*want{}
	for _, o := range ops {
		if o.kind == "hold" && o.acked {
			holds[str(o.answer, "id")] = &want{customer: o.customer, status: []string{"pending"}}
		}
	}
	for _, o := range ops {
		if o.kind != "capture" && o.kind != "release" {
			continue
		}
		id := strings.Split(strings.TrimPrefix(o.path, "/api/v1/holds/"), "/")[0]
		w := holds[id]
		if w == nil {
			t.Fatalf("%s %s of a hold never acknowledged", o.kind, o.key)
		}
		status := map[string]string{"capture": "captured", "release": "released"}[o.kind]
		if o.acked {
			w.status = []string{status}
		} else {
			w.status = append(w.status, status)
		}
		if o.kind == "capture" {
			w.captured = captureAmount.String()
		}
	}
	ids := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				w := holds[id]
				st, h, err := c.call(context.Background(), "GET", "/api/v1/holds/"+id, "", "")
				if err != nil || st != 200 {
					t.Errorf("acknowledged hold %s: %d %v %v", id, st, h, err)
					continue
				}
				got := str(h, "status")
				if str(h, "customer") != w.customer || str(h, "amount") != holdAmount || !slices.Contains(w.status, got) {
					t.Errorf("hold %s: %v, want customer %s amount %s status in %v", id, h, w.customer, holdAmount, w.status)
				}
				if got == "captured" && str(h, "captured") != w.captured {
					t.Errorf("hold %s captured %q, want %s", id, str(h, "captured"), w.captured)
				}
			}
		}()
	}
	for id := range holds {
		ids <- id
	}
	close(ids)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	n := map[string]int{}
	for _, w := range holds {
		n[strings.Join(w.status, "|")]++
	}
	t.Logf("%d acknowledged holds read back by id; by allowed status: %v", len(holds), n)
}
