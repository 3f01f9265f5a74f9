package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
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

		// Replaying every acknowledged op answers the same and changes nothing.
		before := snapshot(t, dir)
		replay(t, c, ops, true)
		after := snapshot(t, dir)
		for _, cus := range customers {
			b, a := before.Accounts[cus], after.Accounts[cus]
			if a.Granted != b.Granted || a.Charged != b.Charged {
				t.Fatalf("%s: replaying acknowledged ops changed granted %s→%s charged %s→%s", cus, b.Granted, a.Granted, b.Charged, a.Charged)
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
