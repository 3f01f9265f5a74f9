package main

import (
	"bufio"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	fb "farebox"
)

// TestGatewayCrash kills `farebox serve` with SIGKILL while 40 requests
// (streams pacing their tokens, and plain ones) run through the gateway.
// After a restart on the same data: every request whose cost reached its
// client is charged; the streams the kill cut are charged what they had
// delivered (kept in the spool each second), never more than their
// clients received; nothing was spent that was not there, nothing stays
// held, and the journal replays to the stored state.
func TestGatewayCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a server")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "farebox.yaml")
	os.WriteFile(conf, []byte(`
providers:
  - name: sim
    type: simulated
    tokens_per_second: 40
    models:
      - model: gpt-4o-mini
`), 0o600)
	args := []string{"--data-dir", dir, "--config", conf}
	s := startServeArgs(t, args)
	c := newClient(s.url)
	c.must(t, "POST", "/api/v1/customers", `{"id":"acme","name":"Acme"}`, "", 201)
	c.must(t, "POST", "/api/v1/customers/acme/grants", `{"amount":"100","source":"purchase","paid_usd":"1"}`, "", 201)
	key := c.must(t, "POST", "/api/v1/customers/acme/keys", `{"name":"k"}`, "", 201)["key"].(string)

	var (
		mu    sync.Mutex
		acked fb.Amount // costs the clients received
		n     int
		cut   []int // tokens the cut streams received
		wg    sync.WaitGroup
	)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := i%2 == 0
			body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Tell me something."}],"max_tokens":500`
			if stream {
				body += `,"stream":true`
			}
			req, _ := http.NewRequest("POST", s.url+"/v1/chat/completions", strings.NewReader(body+"}"))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
			// Half are 4 tokens; the other half 400, which streams take 10 s
			// to send: those are cut by the kill, while plain ones are done.
			req.Header.Set("X-Farebox-Simulate-Tokens", []string{"4", "400"}[i%4/2])
			resp, err := c.http.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			cost := resp.Header.Get("X-Farebox-Cost")
			if stream {
				sc := bufio.NewScanner(resp.Body)
				deltas := 0
				for sc.Scan() {
					if strings.Contains(sc.Text(), `"content":`) {
						deltas++
					}
				}
				if sc.Err() != nil || resp.Trailer.Get("X-Farebox-Cost") == "" {
					mu.Lock()
					cut = append(cut, deltas)
					mu.Unlock()
					return
				}
				cost = resp.Trailer.Get("X-Farebox-Cost")
			}
			if resp.StatusCode != 200 || cost == "" {
				return
			}
			a, err := fb.ParseAmount(cost)
			if err != nil {
				t.Errorf("cost %q", cost)
				return
			}
			mu.Lock()
			acked += a
			n++
			mu.Unlock()
		}()
	}
	// Kill once the 30 that can finish have (the 10 long streams run on).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		done := n
		mu.Unlock()
		if done >= 30 || time.Now().After(deadline) {
			break
		}
	}
	// Let the long streams run on long enough for the spool to keep their
	// progress (written each second), then kill.
	time.Sleep(2500 * time.Millisecond)
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.wait()
	wg.Wait()
	if n != 30 {
		t.Fatalf("%d of 40 answered before the kill, want the 30 short ones", n)
	}
	if code, out := runVerify(t, dir); code != 0 {
		t.Fatalf("verify after the kill: %d\n%s", code, out)
	}
	s = startServeArgs(t, args)
	// The restarted server applies what the spool kept of the cut streams.
	var b map[string]any
	var charged, held fb.Amount
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b = newClient(s.url).must(t, "GET", "/api/v1/customers/acme/balance", "", "", 200)
		held = mustParse(t, b["held"])
		charged = fb.Amount(100*fb.Micro) - mustParse(t, b["available"]) - held
		if held == 0 || time.Now().After(deadline) {
			break
		}
	}
	// Each cut stream cost at most its prompt (11 tokens as the gateway
	// counts it) and what its client received, all at the default card's
	// output rate for gpt-4o-mini (60 credits per 1M tokens).
	var most fb.Amount
	for _, d := range cut {
		most += fb.Amount((11 + d + 1) * 60)
	}
	t.Logf("%d answered with costs %s before the kill, %d streams cut (received %v tokens); after it: charged %s, held %s", n, acked, len(cut), cut, charged, held)
	if held != 0 {
		t.Errorf("%s still held: the cut streams' delivered parts were not charged from the spool", held)
	}
	if charged <= acked {
		t.Errorf("charged %s, no more than the %s acknowledged: the cut streams' delivered parts were not charged", charged, acked)
	}
	if charged > acked+most {
		t.Errorf("charged %s, above the %s acknowledged plus the %s the cut streams delivered at most", charged, acked, most)
	}
	if mustParse(t, b["debt"]) != 0 || mustParse(t, b["uncollected"]) != 0 || charged > 100*fb.Micro {
		t.Errorf("balance after the crash: %v", b)
	}
	if code, out := runVerify(t, dir); code != 0 {
		t.Fatalf("verify after the restart: %d\n%s", code, out)
	}
}

func mustParse(t *testing.T, v any) fb.Amount {
	t.Helper()
	s, _ := v.(string)
	a, err := fb.ParseAmount(s)
	if err != nil {
		t.Fatalf("amount %v: %v", v, err)
	}
	return a
}
