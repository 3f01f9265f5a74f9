package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"farebox/store/postgres"
	"farebox/store/postgres/pgtest"
)

// TestReplicas runs two `farebox serve` processes on one PostgreSQL
// database: concurrent holds alternating between them never overspend;
// when one is killed with SIGKILL mid-load the other keeps serving, nothing
// acknowledged is lost, and the holds the dead one left open expire and
// release.
func TestReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("runs PostgreSQL and two servers")
	}
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	reps := []*proc{
		startServeArgs(t, []string{"--db", url, "--data-dir", t.TempDir()}),
		startServeArgs(t, []string{"--db", url, "--data-dir", t.TempDir()}),
	}
	cs := []*client{newClient(reps[0].url), newClient(reps[1].url)}
	cs[0].must(t, "POST", "/api/v1/customers", `{"id":"acme"}`, "", 201)
	cs[1].must(t, "POST", "/api/v1/customers/acme/grants", `{"amount":"100"}`, "", 201)

	statuses := make([]int, 1000)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 100)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			st, body, err := cs[i%2].call(context.Background(), "POST", "/api/v1/holds", `{"customer":"acme","amount":"1","ttl_seconds":3600}`, fmt.Sprintf("h%d", i))
			if err != nil {
				t.Error(err)
				return
			}
			if st != 201 && st != 402 {
				t.Errorf("hold: %d %v", st, body)
			}
			statuses[i] = st
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for _, st := range statuses {
		count[st]++
	}
	if count[201] != 100 || count[402] != 900 {
		t.Fatalf("across two replicas: %v, want 100×201 and 900×402", count)
	}
	for _, c := range cs {
		if b := c.must(t, "GET", "/api/v1/customers/acme/balance", "", "", 200); b["available"] != "0" || b["held"] != "100" {
			t.Fatalf("balance %v", b)
		}
	}

	// Kill one replica under load.
	var customers []string
	for i := range 8 {
		id := fmt.Sprintf("k%d", i)
		cs[0].must(t, "POST", "/api/v1/customers", `{"id":"`+id+`"}`, "", 201)
		cs[0].must(t, "POST", "/api/v1/customers/"+id+"/grants", `{"amount":"1000"}`, "", 201)
		customers = append(customers, id)
	}
	var mu sync.Mutex
	var acked []*op
	var afterKill atomic.Int64
	killed := make(chan struct{})
	stop := make(chan struct{})
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := cs[w%2]
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				cus := customers[(w+n)%len(customers)]
				o := &op{kind: "hold", customer: cus, method: "POST", path: "/api/v1/holds",
					body: `{"customer":"` + cus + `","amount":"1","ttl_seconds":1}`, key: fmt.Sprintf("w%d-%d", w, n)}
				st, body, err := c.call(context.Background(), o.method, o.path, o.body, o.key)
				if err != nil {
					if w%2 == 0 {
						return // the killed replica
					}
					t.Error(err)
					return
				}
				if st != 201 {
					t.Errorf("hold on the live replica: %d %v", st, body)
					return
				}
				o.acked, o.answer = true, body
				mu.Lock()
				acked = append(acked, o)
				mu.Unlock()
				select {
				case <-killed:
					afterKill.Add(1)
				default:
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	reps[0].cmd.Process.Signal(syscall.SIGKILL)
	reps[0].wait()
	close(killed)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if afterKill.Load() == 0 {
		t.Fatal("the surviving replica served nothing after the kill")
	}
	t.Logf("%d holds acknowledged, %d by the survivor after the kill", len(acked), afterKill.Load())
	// Every acknowledged hold is there, whichever replica took it.
	st, err := postgres.Open(context.Background(), url, postgres.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, o := range acked {
		id := str(o.answer, "id")
		if h, err := st.Hold(context.Background(), id); err != nil || h.Customer != o.customer {
			t.Fatalf("acknowledged hold %s: %+v, %v", id, h, err)
		}
	}
	// The 1-second holds, the dead replica's included, expire and are
	// released in storage by the survivor's sweeper.
	deadline := time.Now().Add(20 * time.Second)
	for {
		pending := 0
		for _, cus := range customers {
			a, err := st.Account(context.Background(), cus)
			if err != nil {
				t.Fatal(err)
			}
			pending += len(a.Holds)
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d holds still pending 20 s after their TTL", pending)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, cus := range customers {
		if b := cs[1].must(t, "GET", "/api/v1/customers/"+cus+"/balance", "", "", 200); b["available"] != "1000" || b["held"] != "0" {
			t.Fatalf("%s after expiry: %v", cus, b)
		}
	}
	if code, out := runVerifyArgs(t, "--db", url); code != 0 {
		t.Fatalf("verify: %d\n%s", code, out)
	}
}

// TestPostgresRestart restarts PostgreSQL under load: requests fail closed
// with a clear 503 (never a 500, never free usage) and /readyz says so;
// afterwards they succeed again. Retrying every failed request with its
// key leaves exactly one hold per key.
func TestPostgresRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs PostgreSQL")
	}
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	p := startServeArgs(t, []string{"--db", url, "--data-dir", t.TempDir()})
	c := newClient(p.url)
	c.must(t, "POST", "/api/v1/customers", `{"id":"acme"}`, "", 201)
	c.must(t, "POST", "/api/v1/customers/acme/grants", `{"amount":"100000"}`, "", 201)

	var mu sync.Mutex
	var failed []string // keys answered 503
	var ok, unavailable atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d-%d", w, n)
				st, body, err := c.call(context.Background(), "POST", "/api/v1/holds", `{"customer":"acme","amount":"1","ttl_seconds":3600}`, key)
				switch {
				case err != nil:
					t.Error(err)
					return
				case st == 201:
					ok.Add(1)
				case st == 503:
					if e, _ := body["error"].(map[string]any); e["code"] != "store_unavailable" {
						t.Errorf("503 body %v", body)
					}
					unavailable.Add(1)
					mu.Lock()
					failed = append(failed, key)
					mu.Unlock()
					time.Sleep(50 * time.Millisecond) // a client backs off
				default:
					t.Errorf("hold during the restart: %d %v", st, body)
					return
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	pg.Stop(t)
	time.Sleep(300 * time.Millisecond)
	if st, _, _ := c.call(context.Background(), "GET", "/readyz", "", ""); st != 503 {
		t.Errorf("/readyz with PostgreSQL down: %d", st)
	}
	pg.Resume(t)
	before := ok.Load()
	deadline := time.Now().Add(20 * time.Second)
	for ok.Load() < before+100 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if unavailable.Load() == 0 || ok.Load() < before+100 {
		t.Fatalf("%d answered 503 while PostgreSQL was down, %d holds after it came back", unavailable.Load(), ok.Load()-before)
	}
	// Clients retry what failed, with the same keys.
	keys := make(chan string)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range keys {
				st, body, err := c.call(context.Background(), "POST", "/api/v1/holds", `{"customer":"acme","amount":"1","ttl_seconds":3600}`, key)
				if err != nil || st != 201 {
					t.Errorf("retry %s: %d %v %v", key, st, body, err)
				}
			}
		}()
	}
	for _, key := range failed {
		keys <- key
	}
	close(keys)
	wg.Wait()
	total := ok.Load() + int64(len(failed))
	b := c.must(t, "GET", "/api/v1/customers/acme/balance", "", "", 200)
	if b["held"] != fmt.Sprint(total) {
		t.Fatalf("held %v after %d distinct keys", b["held"], total)
	}
	c.must(t, "GET", "/readyz", "", "", 200)
	t.Logf("%d holds, %d answered 503 during the restart and were retried", total, len(failed))
	if code, out := runVerifyArgs(t, "--db", url); code != 0 {
		t.Fatalf("verify: %d\n%s", code, out)
	}
}

// TestReplicasEventsOnce: the same 500 events sent to both replicas at once
// (each event to both, concurrently): each is debited exactly once in all.
func TestReplicasEventsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs PostgreSQL and two servers")
	}
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	reps := []*proc{
		startServeArgs(t, []string{"--db", url, "--data-dir", t.TempDir()}),
		startServeArgs(t, []string{"--db", url, "--data-dir", t.TempDir()}),
	}
	cs := []*client{newClient(reps[0].url), newClient(reps[1].url)}
	cs[0].must(t, "POST", "/api/v1/customers", `{"id":"acme"}`, "", 201)
	cs[1].must(t, "POST", "/api/v1/customers/acme/grants", `{"amount":"1000"}`, "", 201)
	const n = 500
	var mu sync.Mutex
	count := map[string]int{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range 2 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ev := fmt.Sprintf(`{"specversion":"1.0","id":"evt-%d","source":"replicas","type":"usage","subject":"acme","data":{"model":"gpt-4o","input_tokens":4000}}`, i/2)
			for {
				st, body, err := cs[i%2].call(context.Background(), "POST", "/api/v1/events", ev, "")
				if err != nil {
					t.Error(err)
					return
				}
				if st == 503 { // two replicas raced on one event key: retry
					continue
				}
				res, _ := body["results"].([]any)
				if st != 200 || len(res) != 1 {
					t.Errorf("%d %v", st, body)
					return
				}
				r, _ := res[0].(map[string]any)
				mu.Lock()
				count[fmt.Sprint(r["status"])]++
				mu.Unlock()
				return
			}
		}()
	}
	wg.Wait()
	if count["accepted"] != n || count["duplicate"] != n {
		t.Fatalf("statuses %v, want %d accepted and %d duplicates", count, n, n)
	}
	// 500 × 4000 tokens × 250 credits per 1M = 500 credits, once.
	b := cs[0].must(t, "GET", "/api/v1/customers/acme/balance", "", "", 200)
	if b["available"] != "500" {
		t.Fatalf("available %v, want 500", b["available"])
	}
	if code, out := runVerifyArgs(t, "--db", url); code != 0 {
		t.Fatalf("verify: %d\n%s", code, out)
	}
}
