package compute_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/app"
	"farebox/fakeclock"
	"farebox/ledger"
	"farebox/store/postgres/pgtest"
)

// TestReplicasNeverOverbook: two Fareboxes on one PostgreSQL database, as
// two replicas, take concurrent random bookings (reserved, on-demand and
// spot, of whole minutes), early ends and pool resizes over HTTP, half on
// each. Counted again minute by minute from every stored lease, no minute
// of any window holds more than the pool has; every admitted lease holds
// its credit, every refusal names an instant, and the ledger verifies.
func TestReplicasNeverOverbook(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and two replicas")
	}
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	var urls []string
	var apps []*app.App
	for range 2 {
		a, err := app.New(context.Background(), app.Config{DB: url, DataDir: t.TempDir(), AdminToken: token})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(a.Handler)
		t.Cleanup(func() {
			srv.Close()
			a.Close()
		})
		apps, urls = append(apps, a), append(urls, srv.URL)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	call := func(i int, method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, urls[i%2]+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return 0, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	must := func(i int, method, path, body string, want int) map[string]any {
		code, m := call(i, method, path, body)
		if code != want {
			t.Fatalf("%s %s: %d %v, want %d", method, path, code, m, want)
		}
		return m
	}
	must(0, "POST", "/api/v1/pools", `{"id": "p", "gpus": 40, "reserved_for_inference": 4, "cost_usd_per_gpu_hour": "2", "prices": {"on_demand": "3", "reserved": "2", "spot": "1"}}`, 201)
	for c := range 8 {
		must(c, "POST", "/api/v1/customers", fmt.Sprintf(`{"id": "c%d"}`, c), 201)
		must(c+1, "POST", fmt.Sprintf("/api/v1/customers/c%d/grants", c), `{"amount": "1000000"}`, 201)
	}

	// Windows start at least an hour ahead, so every resize of the test
	// comes before all of them and the final pool bounds them all.
	base := time.Now().UTC().Truncate(time.Minute).Add(time.Hour)
	const minutes = 24 * 60
	var mu sync.Mutex
	admitted, refused, resized := 0, 0, 0
	var ids []string
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			for i := range 25 {
				r := w*100 + i
				switch k := rng.IntN(20); {
				case k == 0:
					gpus := 30 + rng.IntN(21)
					code, m := call(r, "PATCH", "/api/v1/pools/p", fmt.Sprintf(`{"gpus": %d, "reserved_for_inference": %d}`, gpus, 2+rng.IntN(7)))
					if code != 200 && !(code == 409 && errAt(m) != "") {
						t.Errorf("resize: %d %v", code, m)
					}
					mu.Lock()
					resized += map[bool]int{true: 1}[code == 200]
					mu.Unlock()
				case k == 1:
					mu.Lock()
					var id string
					if len(ids) > 0 {
						id = ids[rng.IntN(len(ids))]
					}
					mu.Unlock()
					if id != "" {
						if code, m := call(r, "POST", "/api/v1/leases/"+id+"/end", ""); code != 200 {
							t.Errorf("end: %d %v", code, m)
						}
					}
				default:
					class := []string{"reserved", "on_demand", "spot"}[rng.IntN(3)]
					start := base.Add(time.Duration(rng.IntN(minutes)) * time.Minute)
					end := `"end": "` + start.Add(time.Duration(1+rng.IntN(240))*time.Minute).Format(time.RFC3339) + `", `
					if class != "reserved" && rng.IntN(4) == 0 {
						end = ""
					}
					code, m := call(r, "POST", "/api/v1/leases", fmt.Sprintf(`{"customer": "c%d", "pool": "p", "gpus": %d, "class": %q, "start": %q, %s"idempotency_key": "k%d"}`,
						rng.IntN(8), 1+rng.IntN(8), class, start.Format(time.RFC3339), end, r))
					mu.Lock()
					switch {
					case code == 201:
						admitted++
						ids = append(ids, m["id"].(string))
					case code == 409 && errAt(m) != "":
						refused++
					default:
						t.Errorf("booking: %d %v", code, m)
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if admitted == 0 || refused == 0 || resized == 0 {
		t.Fatalf("%d admitted, %d refused, %d resized: the load tests too little", admitted, refused, resized)
	}

	// Count again, minute by minute, from every stored lease.
	p := must(0, "GET", "/api/v1/pools/p", "", 200)
	room := int(p["gpus"].(float64) - p["reserved_for_inference"].(float64))
	firm, spot := make([]int, minutes+700), make([]int, minutes+700)
	var held fb.Amount
	preempted := 0
	leases := must(1, "GET", "/api/v1/leases?pool=p&limit=1000", "", 200)["data"].([]any)
	if len(leases) != admitted {
		t.Fatalf("%d leases stored, %d admitted", len(leases), admitted)
	}
	for _, x := range leases {
		l := x.(map[string]any)
		from, _ := time.Parse(time.RFC3339, l["start"].(string))
		to := base.Add(time.Duration(len(firm)) * time.Minute)
		if e, ok := l["end"].(string); ok {
			to, _ = time.Parse(time.RFC3339, e)
		}
		gpus := int(l["gpus"].(float64))
		for m := int(from.Sub(base) / time.Minute); m < int(to.Sub(base)/time.Minute); m++ {
			if l["class"] == "spot" {
				spot[m] += gpus
			} else {
				firm[m] += gpus
			}
		}
		h, _ := fb.ParseAmount(l["held"].(string))
		held += h
		if l["reason"] == "preempted" {
			preempted++
		}
	}
	for m := range firm {
		if firm[m]+spot[m] > room {
			t.Fatalf("minute %d: %d firm + %d spot GPUs > %d leasable", m, firm[m], spot[m], room)
		}
	}
	var balances fb.Amount
	for c := range 8 {
		h, _ := fb.ParseAmount(must(c, "GET", fmt.Sprintf("/api/v1/customers/c%d/balance", c), "", 200)["held"].(string))
		balances += h
	}
	if balances != held {
		t.Fatalf("the leases hold %s, the balances %s", held, balances)
	}
	rep, err := ledger.Verify(context.Background(), apps[0].Store)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %v", err, rep.Problems)
	}
	t.Logf("%d admitted (%d spot leases pre-empted), %d refused, %d resizes over two replicas", admitted, preempted, refused, resized)
}

func errAt(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	if e["code"] != "no_capacity" {
		return ""
	}
	at, _ := e["at"].(string)
	return at
}

// TestReplicasBillOnce: two replicas' billing jobs on one PostgreSQL
// database run at the same instants over the same leases, at once: every
// hour is held and captured once, every lease starts and ends once, and
// the ledger verifies.
func TestReplicasBillOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and two replicas")
	}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	var hs []*harness
	for range 2 {
		clk := fakeclock.New(t0)
		a, err := app.New(context.Background(), app.Config{DB: url, DataDir: t.TempDir(), AdminToken: token, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		h := &harness{t: t, a: a, clk: clk, srv: httptest.NewServer(a.Handler)}
		t.Cleanup(func() {
			h.srv.Close()
			a.Close()
		})
		hs = append(hs, h)
	}
	hs[0].must("POST", "/api/v1/pools", `{"id": "p", "gpus": 64, "prices": {"on_demand": "10", "reserved": "5", "spot": "2"}}`, 201)
	hs[1].must("POST", "/api/v1/customers", `{"id": "acme"}`, 201)
	hs[0].must("POST", "/api/v1/customers/acme/grants", `{"amount": "100000"}`, 201)
	var ids []string
	for i := range 12 {
		class := []string{"on_demand", "spot", "reserved"}[i%3]
		l := hs[i%2].must("POST", "/api/v1/leases", fmt.Sprintf(`{"customer": "acme", "pool": "p", "gpus": 1, "class": %q, "start": "2026-12-01T00:30:00Z", "end": "2026-12-01T03:30:00Z"}`, class), 201)
		ids = append(ids, l["id"].(string))
	}
	for _, d := range []time.Duration{30 * time.Minute, 85 * time.Minute, 90 * time.Minute, 145 * time.Minute, 150 * time.Minute, 205 * time.Minute, 210 * time.Minute, 4 * time.Hour} {
		var wg sync.WaitGroup
		for _, h := range hs {
			h.clk.Set(t0.Add(d))
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := h.a.Compute.Tick(context.Background()); err != nil {
					t.Errorf("tick at +%s: %v", d, err)
				}
			}()
		}
		wg.Wait()
	}
	// Three hours of one GPU: 30 on demand, 6 spot, 15 reserved.
	want := map[string]string{"on_demand": "30", "spot": "6", "reserved": "15"}
	for _, id := range ids {
		l := hs[0].lease(id)
		if l["state"] != "ended" || l["charged"] != want[l["class"].(string)] || l["held"] != "0" {
			t.Errorf("lease %v", l)
		}
	}
	if b := hs[1].must("GET", "/api/v1/customers/acme/balance", "", 200); b["available"] != "99796" || b["held"] != "0" {
		t.Fatalf("balance %v: want 100000 less 4 × (30 + 6 + 15), nothing held", b)
	}
	events := map[string]int{}
	if _, err := hs[0].a.Store.Snapshot(context.Background(), func(e *fb.JournalEntry) error {
		if l := e.Op.Lease; l != nil && (l.Event == fb.LeaseStarted || l.Event == fb.LeaseEndedEv) {
			events[l.ID+" "+l.Event]++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if events[id+" started"] != 1 || events[id+" ended"] != 1 {
			t.Errorf("lease %s: started %d times, ended %d times", id, events[id+" started"], events[id+" ended"])
		}
	}
	if rep, err := ledger.Verify(context.Background(), hs[0].a.Store); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %v", err, rep.Problems)
	}
}
