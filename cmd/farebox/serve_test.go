package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	fb "farebox"
	"farebox/app"
	"farebox/httpguard"
	"farebox/sponsored"
	_ "modernc.org/sqlite"
)

// inproc is run("serve") in this process.
type inproc struct {
	cancel context.CancelFunc
	done   chan error
	stdout *syncBuffer
	stderr *syncBuffer
	url    string
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// serveInProcess runs serve with args and env; it waits for the listening
// line, or returns the error run returned before that.
func serveInProcess(t *testing.T, args []string, vars map[string]string) (*inproc, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &inproc{cancel: cancel, done: make(chan error, 1), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	go func() {
		s.done <- run(ctx, append([]string{"farebox", "serve"}, args...), env(vars), s.stdout, s.stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	})
	re := regexp.MustCompile(`listening on (http://\S+)`)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(s.stdout.String()); m != nil {
			s.url = m[1]
			return s, nil
		}
		select {
		case err := <-s.done:
			s.done <- err // for the cleanup
			return nil, err
		case <-time.After(5 * time.Millisecond):
		}
	}
	t.Fatalf("serve did not start\nstdout: %s\nstderr: %s", s.stdout, s.stderr)
	return nil, nil
}

func mustServe(t *testing.T, args []string, vars map[string]string) *inproc {
	t.Helper()
	s, err := serveInProcess(t, args, vars)
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	return s
}

// stop cancels the server's context and returns what run returned.
func (s *inproc) stop(t *testing.T) error {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	return nil
}

func TestAdminTokenFile(t *testing.T) {
	dir := t.TempDir()
	s := mustServe(t, []string{"--addr", "127.0.0.1:0", "--data-dir", dir}, nil)
	path := filepath.Join(dir, "admin-token")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin-token mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	tok := strings.TrimSpace(string(b))
	// Where it is kept is printed, never the token itself (security
	// review, finding 16).
	if len(tok) < 32 {
		t.Fatalf("generated token %q: got %d characters, want at least 32", tok, len(tok))
	}
	if strings.Contains(s.stdout.String(), tok) {
		t.Fatalf("the generated token is printed on stdout, want only where it is kept:\n%s", s.stdout)
	}
	if !strings.Contains(s.stdout.String(), "admin token generated: kept in "+path+" (mode 0600)") {
		t.Fatalf("stdout does not say where the generated token is kept (%s):\n%s", path, s.stdout)
	}
	if strings.Contains(s.stderr.String(), tok) {
		t.Fatalf("token in the log:\n%s", s.stderr)
	}
	// Without a token, or with another one: 401 with the error body.
	resp, err := http.Get(s.url + "/api/v1/customers")
	if err != nil {
		t.Fatal(err)
	}
	eb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(eb), `"type":"unauthorized"`) {
		t.Fatalf("without a token: %d %s", resp.StatusCode, eb)
	}
	c := newClient(s.url)
	st, _, err := c.call(context.Background(), "GET", "/api/v1/customers", "", "")
	if err != nil || st != 401 {
		t.Fatalf("with the test token: %d, %v", st, err)
	}
	c.http.Transport = authTransport(tok)
	if st, _, err := c.call(context.Background(), "GET", "/api/v1/customers", "", ""); err != nil || st != 200 {
		t.Fatalf("with the generated token: %d, %v", st, err)
	}
	if err := s.stop(t); err != nil {
		t.Fatalf("graceful stop returned %v", err)
	}
	// The second start reads the same token and does not print it.
	s = mustServe(t, []string{"--addr", "127.0.0.1:0", "--data-dir", dir}, nil)
	if strings.Contains(s.stdout.String(), tok) {
		t.Fatalf("token printed again:\n%s", s.stdout)
	}
	c = newClient(s.url)
	c.http.Transport = authTransport(tok)
	if st, _, err := c.call(context.Background(), "GET", "/api/v1/customers", "", ""); err != nil || st != 200 {
		t.Fatalf("after restart: %d, %v", st, err)
	}
	// FAREBOX_ADMIN_TOKEN wins over the file.
	s.stop(t)
	s = mustServe(t, []string{"--addr", "127.0.0.1:0", "--data-dir", dir}, map[string]string{"FAREBOX_ADMIN_TOKEN": testToken})
	newClient(s.url).must(t, "GET", "/api/v1/customers", "", "", 200)
	c = newClient(s.url)
	c.http.Transport = authTransport(tok)
	if st, _, err := c.call(context.Background(), "GET", "/api/v1/customers", "", ""); err != nil || st != 401 {
		t.Fatalf("the file's token while FAREBOX_ADMIN_TOKEN is set: %d, %v", st, err)
	}
	if strings.Contains(s.stdout.String(), "admin token") {
		t.Fatalf("a token printed with FAREBOX_ADMIN_TOKEN set:\n%s", s.stdout)
	}
	if b2, _ := os.ReadFile(path); string(b2) != string(b) {
		t.Fatalf("admin-token rewritten: %q → %q", b, b2)
	}
}

// authTransport replaces the Authorization header.
type authTransport string

func (a authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(a))
	return http.DefaultTransport.RoundTrip(r)
}

// freeAddr returns a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestEnvAndFlags(t *testing.T) {
	envDir, flagDir := t.TempDir(), t.TempDir()
	addr := freeAddr(t)
	vars := map[string]string{"FAREBOX_DATA_DIR": envDir, "FAREBOX_ADDR": addr, "FAREBOX_ADMIN_TOKEN": testToken}
	s := mustServe(t, nil, vars)
	if s.url != "http://"+addr {
		t.Fatalf("FAREBOX_ADDR=%s ignored: %s", addr, s.url)
	}
	if _, err := os.Stat(filepath.Join(envDir, "farebox.db")); err != nil {
		t.Fatalf("FAREBOX_DATA_DIR ignored: %v", err)
	}
	for _, p := range []string{"/healthz", "/readyz"} { // no auth needed
		resp, err := http.Get(s.url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
	}
	s.stop(t)
	// Flags override the environment.
	vars["FAREBOX_ADDR"] = "not an address"
	s = mustServe(t, []string{"--addr", "127.0.0.1:0", "--data-dir", flagDir}, vars)
	if _, err := os.Stat(filepath.Join(flagDir, "farebox.db")); err != nil {
		t.Fatalf("--data-dir ignored: %v", err)
	}
	// The data is flagDir's: the customer made there is not in envDir.
	c := newClient(s.url)
	c.must(t, "POST", "/api/v1/customers", `{"id":"flagged"}`, "", 201)
	s.stop(t)
	s = mustServe(t, nil, map[string]string{"FAREBOX_DATA_DIR": envDir, "FAREBOX_ADDR": "127.0.0.1:0", "FAREBOX_ADMIN_TOKEN": testToken})
	newClient(s.url).must(t, "GET", "/api/v1/customers/flagged", "", "", 404)
	s.stop(t)
	// --addr wins over FAREBOX_ADDR.
	vars["FAREBOX_ADDR"] = "127.0.0.1:0"
	addr = freeAddr(t)
	s = mustServe(t, []string{"--addr", addr, "--data-dir", flagDir}, vars)
	if s.url != "http://"+addr {
		t.Fatalf("--addr %s ignored: %s", addr, s.url)
	}
	newClient(s.url).must(t, "GET", "/api/v1/customers/flagged", "", "", 200)
	s.stop(t)
	vars["FAREBOX_ADDR"] = "not an address"
	// A bad address is a clear error.
	_, err := serveInProcess(t, []string{"--data-dir", flagDir}, vars)
	if err == nil || exitCode(err) == 0 {
		t.Fatalf("bad FAREBOX_ADDR: %v", err)
	}
	_, err = serveInProcess(t, []string{"--bogus"}, vars)
	if exitCode(err) != 2 {
		t.Fatalf("bad flag: %v (exit %d)", err, exitCode(err))
	}
	_, err = serveInProcess(t, []string{"--db", "mysql://x", "--data-dir", flagDir}, vars)
	if err == nil || !strings.Contains(err.Error(), "sqlite") {
		t.Fatalf("bad --db: %v", err)
	}
}

func TestSecondServerRefused(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"FAREBOX_ADMIN_TOKEN": testToken}
	mustServe(t, []string{"--addr", "127.0.0.1:0", "--data-dir", dir}, vars)
	_, err := serveInProcess(t, []string{"--addr", "127.0.0.1:0", "--data-dir", dir}, vars)
	if err == nil || !strings.Contains(err.Error(), "in use by another farebox process") || !strings.Contains(err.Error(), "locked") || exitCode(err) == 0 {
		t.Fatalf("second server on one data dir: %v", err)
	}
	if testing.Short() {
		return
	}
	// The binary says so on stderr and exits non-zero, without listening.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), "serve", "--addr", "127.0.0.1:0", "--data-dir", dir)
	cmd.Env = append(os.Environ(), "FAREBOX_ADMIN_TOKEN="+testToken)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if _, ok := err.(*exec.ExitError); !ok || cmd.ProcessState.ExitCode() == 0 {
		t.Fatalf("second serve binary: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "in use by another farebox process") || strings.Contains(stdout.String(), "listening on") {
		t.Fatalf("second serve binary: exit %d\nstdout: %s\nstderr: %s", cmd.ProcessState.ExitCode(), stdout.String(), stderr.String())
	}
}

// TestDemo: serve --demo seeds a plan, a subscribed customer with promo
// credits too, a key and a simulator; the key it prints answers a chat
// completion at once, with its cost; a second start seeds nothing again.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--addr", "127.0.0.1:0", "--data-dir", dir, "--demo"}
	vars := map[string]string{"FAREBOX_ADMIN_TOKEN": testToken}
	s := mustServe(t, args, vars)
	b, err := os.ReadFile(filepath.Join(dir, "demo-key"))
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(b))
	if !strings.Contains(s.stdout.String(), "curl -s http://") || !strings.Contains(s.stdout.String(), key) {
		t.Fatalf("no curl line with the key:\n%s", s.stdout)
	}
	c := newClient(s.url)
	if b := c.must(t, "GET", "/api/v1/customers/demo/balance", "", "", 200); b["available"] != "3000" {
		t.Fatalf("demo balance %v (want 2000 of the plan and 1000 promo)", b)
	}
	// gpt-4o-mini is served on chat, Responses and Messages.
	call := func(path, body string) string {
		req, _ := http.NewRequest("POST", s.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(answer), `"cost":"`) {
			t.Fatalf("demo %s: %d %s", path, resp.StatusCode, answer)
		}
		return resp.Header.Get("X-Farebox-Cost")
	}
	var cost fb.Amount
	for _, r := range [][2]string{
		{"/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}`},
		{"/v1/responses", `{"model":"gpt-4o-mini","input":"Hello"}`},
		{"/v1/messages", `{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"Hello"}]}`},
	} {
		c, err := fb.ParseAmount(call(r[0], r[1]))
		if err != nil || c <= 0 {
			t.Fatalf("%s: cost %v %v", r[0], c, err)
		}
		cost += c
	}
	s.stop(t)
	// Seeding again changes nothing: same key, no second grant.
	s = mustServe(t, args, vars)
	if !strings.Contains(s.stdout.String(), key) {
		t.Fatalf("second start printed another key:\n%s", s.stdout)
	}
	want := fb.Amount(3000*fb.Micro) - cost
	if b := newClient(s.url).must(t, "GET", "/api/v1/customers/demo/balance", "", "", 200); b["available"] != want.String() {
		t.Fatalf("demo balance after a second --demo start %v, want %s", b["available"], want)
	}
}

// TestGracefulShutdown: cancelling serve's context stops new connections,
// waits for a request in flight (its body still arriving) to finish and be
// answered, then run returns nil; every acknowledged op is durable.
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"FAREBOX_ADMIN_TOKEN": testToken}
	s := mustServe(t, []string{"--addr", "127.0.0.1:0", "--data-dir", dir}, vars)
	c := newClient(s.url)
	c.must(t, "POST", "/api/v1/customers", `{"id":"acme"}`, "", 201)

	// Load from 16 clients until the server goes away.
	var wg sync.WaitGroup
	var acked atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				st, _, err := c.call(context.Background(), "POST", "/api/v1/customers/acme/grants", `{"amount":"1"}`, "")
				if err != nil || st != 201 {
					return // shut down: refused or connection closed
				}
				acked.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for acked.Load() < 50 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if acked.Load() < 50 {
		t.Fatalf("only %d grants acknowledged before the shutdown", acked.Load())
	}

	// A request in flight: its handler is reading a body that is only half
	// sent. Expect: 100-continue makes the server say when the handler
	// has started reading, so the shutdown surely begins after that.
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	body := `{"amount":"7","source":"purchase"}`
	head := "POST /api/v1/customers/acme/grants HTTP/1.1\r\nHost: farebox\r\nAuthorization: Bearer " + testToken +
		"\r\nContent-Type: application/json\r\nIdempotency-Key: slow-1\r\nExpect: 100-continue\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 100 {
		t.Fatalf("want 100 Continue: %v %v", resp, err)
	}
	if _, err := io.WriteString(conn, body[:10]); err != nil {
		t.Fatal(err)
	}

	s.cancel()
	// The listener closes: new connections are refused.
	for deadline := time.Now().Add(20 * time.Second); ; {
		nc, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
		if err != nil {
			break
		}
		nc.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections after the context was cancelled")
		}
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait() // the load has stopped
	select {
	case err := <-s.done:
		s.done <- err
		t.Fatalf("run returned %v with a request still in flight\nstderr: %s", err, s.stderr)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := io.WriteString(conn, body[10:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the request in flight got no answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || !strings.Contains(string(b), `"amount":"7"`) {
		t.Fatalf("the request in flight: %d %s", resp.StatusCode, b)
	}
	var lot struct{ Lot struct{ ID string } }
	json.Unmarshal(b, &lot)
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Fatalf("run returned %v on graceful shutdown", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after the last request finished")
	}

	if code, out := runVerify(t, dir); code != 0 {
		t.Fatalf("verify: %d\n%s", code, out)
	}
	d := snapshot(t, dir)
	want := fb.Amount(acked.Load()*1_000_000 + 7_000_000)
	if got := d.Accounts["acme"].Granted; got < want || got > want+16*1_000_000 {
		t.Fatalf("%d grants of 1 and one of 7 acknowledged, %s credits stored", acked.Load(), got)
	}
	var found bool
	for _, l := range d.Accounts["acme"].Lots {
		found = found || l.ID == lot.Lot.ID && l.Amount == 7_000_000
	}
	if !found {
		t.Fatalf("the lot %q answered in the drain is not stored", lot.Lot.ID)
	}
}

// TestSIGTERM: the real binary, under load from 8 clients, exits 0 on
// SIGTERM; what it acknowledged is there after a restart, each grant once.
func TestSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	dir := t.TempDir()
	p := startServe(t, dir)
	c := newClient(p.url)
	c.must(t, "POST", "/api/v1/customers", `{"id":"acme"}`, "", 201)
	c.must(t, "POST", "/api/v1/customers/acme/grants", `{"amount":"10"}`, "g1", 201)
	h := c.must(t, "POST", "/api/v1/holds", `{"customer":"acme","amount":"4","ttl_seconds":3600}`, "h1", 201)
	c.must(t, "POST", "/api/v1/holds/"+h["id"].(string)+"/capture", `{"amount":"1.5"}`, "c1", 200)

	var mu sync.Mutex
	acked := map[string]string{} // idempotency key → lot id
	var sent atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				key := fmt.Sprintf("load-%d-%d", w, n)
				sent.Add(1)
				st, b, err := c.call(context.Background(), "POST", "/api/v1/customers/acme/grants", `{"amount":"1"}`, key)
				if err != nil || st != 201 {
					return
				}
				mu.Lock()
				acked[key] = str(b, "lot", "id")
				mu.Unlock()
			}
		}()
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d grants acknowledged", n)
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, p.stderr)
	}
	wg.Wait()
	if !strings.Contains(p.stderr.String(), "stopped") {
		t.Fatalf("no orderly stop in the log:\n%s", p.stderr)
	}
	if code, out := runVerify(t, dir); code != 0 {
		t.Fatalf("verify: %d\n%s", code, out)
	}
	p = startServe(t, dir)
	c = newClient(p.url)
	b := c.must(t, "GET", "/api/v1/customers/acme/balance", "", "", 200)
	lo, hi := fb.Amount(8_500_000+int64(len(acked))*1_000_000), fb.Amount(8_500_000+sent.Load()*1_000_000)
	if got := amountField(t, b, "available"); got < lo || got > hi || b["held"] != "0" {
		t.Fatalf("balance after restart %v, want available in [%s, %s] and held 0", b, lo, hi)
	}
	// Every acknowledged grant is stored once: replayed, it answers the
	// same lot and the balance does not move.
	for key, lot := range acked {
		if got := str(c.must(t, "POST", "/api/v1/customers/acme/grants", `{"amount":"1"}`, key, 201), "lot", "id"); got != lot {
			t.Fatalf("replay of %s: lot %s, first answer %s", key, got, lot)
		}
	}
	if b2 := c.must(t, "GET", "/api/v1/customers/acme/balance", "", "", 200); b2["available"] != b["available"] {
		t.Fatalf("replaying acknowledged grants moved the balance %v → %v", b["available"], b2["available"])
	}
	t.Logf("%d grants acknowledged before SIGTERM, %d sent", len(acked), sent.Load())
}

// verifyInProcess runs `farebox ledger verify` through run and returns its
// exit code and output.
func verifyInProcess(args ...string) (int, string) {
	var out syncBuffer
	err := run(context.Background(), append([]string{"farebox", "ledger", "verify"}, args...), env(nil), &out, &out)
	if err != nil {
		return exitCode(err), out.String() + err.Error()
	}
	return 0, out.String()
}

// copyData copies a stopped server's database files into a new directory.
func copyData(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(filepath.Join(from, "farebox.db"+suffix))
		if os.IsNotExist(err) && suffix != "" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, "farebox.db"+suffix), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

func TestVerifyExitCodes(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"FAREBOX_ADMIN_TOKEN": testToken}
	s := mustServe(t, []string{"--addr", "127.0.0.1:0", "--data-dir", dir}, vars)
	c := newClient(s.url)
	c.must(t, "POST", "/api/v1/customers", `{"id":"acme"}`, "", 201)
	c.must(t, "POST", "/api/v1/customers/acme/grants", `{"amount":"10"}`, "", 201)
	c.must(t, "POST", "/api/v1/holds", `{"customer":"acme","amount":"4","ttl_seconds":3600}`, "", 201)
	// Live.
	if code, out := verifyInProcess("--data-dir", dir); code != 0 || !strings.Contains(out, "ok:") {
		t.Fatalf("live verify: %d %s", code, out)
	}
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	if code, out := verifyInProcess("--data-dir", dir); code != 0 || !strings.Contains(out, "ok:") {
		t.Fatalf("verify on stopped data: %d %s", code, out)
	}
	if code, out := verifyInProcess("--db", "sqlite://"+filepath.Join(dir, "farebox.db")); code != 0 {
		t.Fatalf("verify --db: %d %s", code, out)
	}
	missing := filepath.Join(dir, "missing")
	if code, out := verifyInProcess("--data-dir", missing); code != 2 {
		t.Fatalf("missing data dir: %d %s", code, out)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("verify created the missing data dir: %v", err)
	}
	if code, out := verifyInProcess("--bogus"); code != 2 {
		t.Fatalf("bad flag: %d %s", code, out)
	}

	// Tamper with a stored amount in the account's state JSON (see
	// store/codec: g granted, lots[].a amount, lots[].r remaining,
	// holds[].a reserved): exit 1 and the difference shown.
	for _, tc := range []struct {
		name, update, want string
	}{
		{"granted", `json_set(state, '$.lots[0].r', json_extract(state, '$.lots[0].r') + 1000000, '$.lots[0].a', json_extract(state, '$.lots[0].a') + 1000000, '$.g', json_extract(state, '$.g') + 1000000)`, "granted"},
		{"remaining", `json_set(state, '$.lots[0].r', json_extract(state, '$.lots[0].r') + 1)`, "MISMATCH"},
		{"hold", `json_set(state, '$.holds[0].a', json_extract(state, '$.holds[0].a') - 1000000)`, "MISMATCH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := copyData(t, dir)
			if code, out := verifyInProcess("--data-dir", d); code != 0 {
				t.Fatalf("copy before tampering: %d %s", code, out)
			}
			db, err := sql.Open("sqlite", filepath.Join(d, "farebox.db"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := db.Exec(`UPDATE accounts SET state = ` + tc.update + ` WHERE customer = 'acme'`)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				t.Fatalf("%d rows tampered with", n)
			}
			db.Close()
			code, out := verifyInProcess("--data-dir", d)
			if code != 1 || !strings.Contains(out, "MISMATCH") || !strings.Contains(out, "acme") || !strings.Contains(out, tc.want) {
				t.Fatalf("tampered data: exit %d\n%s", code, out)
			}
			t.Logf("verify on tampered data: exit 1\n%s", out)
			if testing.Short() {
				return
			}
			// The binary's exit codes are the same.
			if code, out := runVerify(t, d); code != 1 || !strings.Contains(out, "MISMATCH") {
				t.Fatalf("binary on tampered data: exit %d\n%s", code, out)
			}
		})
	}
	if testing.Short() {
		return
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"--data-dir", dir}, 0},
		{[]string{"--data-dir", missing}, 2},
		{[]string{"--bogus"}, 2},
	} {
		if code, out := runVerifyArgs(t, tc.args...); code != tc.code {
			t.Fatalf("binary ledger verify %v: exit %d, want %d\n%s", tc.args, code, tc.code, out)
		}
	}
}

// TestUsage: help prints the usage on stdout and exits 0; no command, an
// unknown one or a bad subcommand prints it on stderr and exits 2; so do bad
// serve flags and arguments. The binary maps them to the same exit codes.
func TestUsage(t *testing.T) {
	for _, c := range []struct {
		args  []string
		code  int
		usage bool // the usage text is shown
	}{
		{[]string{"farebox"}, 2, true},
		{[]string{"farebox", "frobnicate"}, 2, true},
		{[]string{"farebox", "ledger"}, 2, true},
		{[]string{"farebox", "ledger", "fix"}, 2, true},
		{[]string{"farebox", "bench"}, 2, false},
		{[]string{"farebox", "help"}, 0, true},
		{[]string{"farebox", "-h"}, 0, true},
		{[]string{"farebox", "--help"}, 0, true},
		{[]string{"farebox", "serve", "--bogus"}, 2, false},
		{[]string{"farebox", "serve", "extra"}, 2, false},
		{[]string{"farebox", "ledger", "verify", "extra"}, 2, false},
		{[]string{"farebox", "migrate", "extra"}, 2, false},
		{[]string{"farebox", "bench", "ledger", "extra"}, 2, false},
		{[]string{"farebox", "serve", "--drain", "soon"}, 2, false},
	} {
		var out, errOut syncBuffer
		err := run(context.Background(), c.args, env(nil), &out, &errOut)
		code := 0
		if err != nil {
			code = exitCode(err)
		}
		if code != c.code {
			t.Errorf("%v: exit %d, want %d (%v)", c.args, code, c.code, err)
		}
		shown := out.String()
		if c.code != 0 {
			shown = errOut.String()
			if out.String() != "" {
				t.Errorf("%v: wrote %q on stdout", c.args, out.String())
			}
		} else if errOut.String() != "" {
			t.Errorf("%v: wrote %q on stderr", c.args, errOut.String())
		}
		if c.usage && !strings.Contains(shown, "farebox serve") {
			t.Errorf("%v: no usage shown:\n%s", c.args, shown)
		}
	}
	if testing.Short() {
		return
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"frobnicate"}, 2, `farebox: unknown command "frobnicate"`},
		{[]string{}, 2, "farebox: no command given"},
		{[]string{"help"}, 0, "Usage:"},
	} {
		cmd := exec.Command(binary(t), c.args...)
		out, err := cmd.CombinedOutput()
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			t.Fatal(err)
		}
		if cmd.ProcessState.ExitCode() != c.code || !strings.Contains(string(out), c.want) {
			t.Errorf("farebox %v: exit %d, want %d with %q:\n%s", c.args, cmd.ProcessState.ExitCode(), c.code, c.want, out)
		}
	}
}

// TestBenchSmoke runs a tiny `farebox bench ledger` and checks its table.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("benchmark smoke test")
	}
	var out, errOut syncBuffer
	err := run(context.Background(), []string{"farebox", "bench", "ledger", "--duration", "200ms", "--customers", "50", "--callers", "1,8"}, env(nil), &out, &errOut)
	if err != nil {
		t.Fatalf("bench: %v\n%s%s", err, out.String(), errOut.String())
	}
	text := out.String()
	for _, want := range []string{"uniform, 50 customers", "one hot customer", "pairs/s", "p99 ack", "HTTP", "batching on vs off"} {
		if !strings.Contains(text, want) {
			t.Fatalf("bench output lacks %q:\n%s", want, text)
		}
	}
}

// TestBenchGatewayAndReportSmoke runs tiny `farebox bench gateway` and
// `farebox bench report` runs and checks their tables.
func TestBenchGatewayAndReportSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("benchmark smoke test")
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"gateway", "--duration", "100ms", "--rounds", "1", "--concurrency", "2", "--customers", "4", "--protocols", "chat,responses,messages"},
			[]string{"bare proxy", "farebox", "vs proxy", "stream", "responses", "messages", "ledger verified after the bench"}},
		{[]string{"report", "--rows", "3000", "--customers", "20", "--days", "3", "--runs", "1"},
			[]string{"3000 rows written", "customer", "provider", "baseline (raw rows)"}},
		{[]string{"leases", "--leases", "400", "--customers", "20", "--callers", "8", "--rounds", "2"},
			[]string{"median of 2 interleaved rounds", "admissions/s", "in-process", "HTTP", "batching on vs off (baseline)"}},
		{[]string{"ui", "--rows", "3000", "--customers", "20", "--days", "3", "--runs", "2"},
			[]string{"3000 rows written", "/ui/account", "/ui/admin/customers/cus-0000", "/ui/admin/system", "baseline"}},
	} {
		var out, errOut syncBuffer
		if err := run(context.Background(), append([]string{"farebox", "bench"}, c.args...), env(nil), &out, &errOut); err != nil {
			t.Fatalf("bench %s: %v\n%s%s", c.args[0], err, out.String(), errOut.String())
		}
		for _, w := range c.want {
			if !strings.Contains(out.String(), w) {
				t.Fatalf("bench %s output lacks %q:\n%s", c.args[0], w, out.String())
			}
		}
		// Farebox served requests in each protocol and mode. (The errors column is
		// not asserted: under a loaded CI machine the baseline reverse
		// proxy has been seen to lose one stream to a closed upstream
		// connection; the bench reports such errors, the gateway's own
		// tests assert its behaviour.)
		for _, line := range strings.Split(out.String(), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && (f[1] == "non-stream" || f[1] == "stream") && f[3] == "farebox" && (f[4] == "0" || f[4] == "NaN") {
				t.Errorf("farebox served nothing: %q", line)
			}
			// /metrics, scraped after the runs, counted every request the
			// bench got an answer to, and every batch the engine committed.
			var counted, answered, batches, committed int64
			if n, _ := fmt.Sscanf(line, "metrics: %d gateway requests counted by /metrics (the bench got %d answers); %d batches in the commit histogram (the engine committed %d)",
				&counted, &answered, &batches, &committed); n == 4 && (counted != answered || batches != committed || answered == 0) {
				t.Errorf("metrics disagree with the bench: %q", line)
			}
		}
		if c.args[0] == "gateway" && !strings.Contains(out.String(), "metrics: ") {
			t.Errorf("bench gateway printed no metrics line:\n%s", out.String())
		}
	}
}

// The example config file in the repository loads and builds as it is.
func TestExampleConfig(t *testing.T) {
	c, err := loadConfig(filepath.Join("..", "..", "farebox.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Gateway.config(); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Server.limits(); err != nil || got != (httpguard.Limits{}).WithDefaults() {
		t.Errorf("server limits of the example: got %+v, %v; want the defaults", got, err)
	}
	a, err := app.New(context.Background(), app.Config{DataDir: t.TempDir(), Providers: c.Providers})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if got := a.Router.Deployments("gpt-4o-mini"); len(got) != 2 || got[0].Provider != "local" || got[1].Provider != "simulator" {
		t.Errorf("gpt-4o-mini deployments %+v", got)
	}
	if got := a.Router.Deployments("text-embedding-3-small"); len(got) != 1 || !got[0].Embeddings || got[0].Cost.InputPerMTok != 20_000 {
		t.Errorf("embedding deployment %+v", got)
	}
	if got := a.Router.Deployments("llama-3.3-70b-instruct-turbo"); len(got) != 1 || got[0].Cost.OutputPerMTok != 2_222_223 {
		t.Errorf("GPU pool deployment %+v", got)
	}
	if sh, err := c.shares(); err != nil || len(sh) != 1 || sh[0].Percent != 20*fb.Micro {
		t.Errorf("revenue shares %+v %v", sh, err)
	}
	if sp, err := c.Sponsored.config(); err != nil || sp.PublicURL != "https://farebox.example.com" || sp.RelevanceThreshold != 0.5 || sp.ClickTTL != 7*24*time.Hour {
		t.Errorf("sponsored %+v %v", sp, err)
	}
	// Unknown keys are refused, with their line.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("gateway:\n  min_output_token: 3\n"), 0o600)
	if _, err := loadConfig(bad); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("unknown key: %v", err)
	}
}

// TestAdminTokenTooShort: a given admin token shorter than 32 characters
// (FAREBOX_ADMIN_TOKEN, admin_token in the config, or a hand-written
// admin-token file) is refused at start with exit 2 and a clear message
// (security review, finding 16); 32 are enough.
func TestAdminTokenTooShort(t *testing.T) {
	short := strings.Repeat("a", 31)
	cfgDir := t.TempDir()
	cfg := filepath.Join(cfgDir, "farebox.yaml")
	if err := os.WriteFile(cfg, []byte("admin_token: "+short+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fileDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(fileDir, "admin-token"), []byte(short+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"FAREBOX_ADMIN_TOKEN", []string{"--data-dir", t.TempDir()}, map[string]string{"FAREBOX_ADMIN_TOKEN": "fba_short"}, "at least 32"},
		{"admin_token", []string{"--data-dir", t.TempDir(), "--config", cfg}, nil, "at least 32"},
		{"admin-token file", []string{"--data-dir", fileDir}, nil, "admin-token holds an admin token of 31 characters"},
	} {
		_, err := serveInProcess(t, append([]string{"--addr", "127.0.0.1:0"}, tc.args...), tc.vars)
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s of 31 characters or fewer: got %v (exit %d), want exit 2 saying %q", tc.name, err, exitCode(err), tc.want)
		}
		if err != nil && strings.Contains(err.Error(), short) {
			t.Errorf("%s: the refused token is shown in the error: %v", tc.name, err)
		}
	}
	mustServe(t, []string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, map[string]string{"FAREBOX_ADMIN_TOKEN": strings.Repeat("b", 32)})
}

// TestDBURLPasswordHidden: a --db URL that cannot be used is named in the
// error, never with its password, whatever fails: the scheme, net/url's or
// pgx's parsing, or the connection (security review, finding 16).
func TestDBURLPasswordHidden(t *testing.T) {
	const secret = "s3cret"
	for _, u := range []string{
		"mysql://farebox:s3cretpw@db.example/farebox",
		"postgres://farebox:s3cretpw@127.0.0.1:1/farebox?sslmode=disable&connect_timeout=2",
		"postgresql://farebox:s3cretpw@127.0.0.1:notaport/farebox",
		"postgres://farebox@127.0.0.1:1/farebox?sslmode=disable&connect_timeout=2&password=s3cretpw",
		"postgres://farebox@127.0.0.1:1/farebox?sslmode=bogus&password=s3cretpw",
		"postgres://farebox:s3cret%zzpw@127.0.0.1:1/farebox",
		"postgres://farebox:s3cret\"pw@[::1/farebox",
		"postgres://farebox:s3cret pw@127.0.0.1:1/farebox?connect_timeout=x",
	} {
		var out syncBuffer
		for _, cmd := range [][]string{{"serve", "--addr", "127.0.0.1:0"}, {"ledger", "verify"}, {"migrate"}} {
			args := append(append([]string{"farebox"}, cmd...), "--db", u, "--data-dir", t.TempDir())
			err := run(context.Background(), args, env(map[string]string{"FAREBOX_ADMIN_TOKEN": testToken}), &out, &out)
			if err == nil {
				t.Fatalf("%v: started", args)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(out.String(), secret) {
				t.Errorf("farebox %s --db %s: the password is shown:\nerror: %v\noutput: %s", cmd[0], u, err, out.String())
			} else if !strings.Contains(err.Error(), "farebox") && !strings.Contains(err.Error(), "sqlite") {
				t.Errorf("farebox %s --db %s: got %q, want an error that names the database", cmd[0], u, err)
			}
		}
	}
}

// TestSponsoredConfig: the sponsored: section sets the click links' base
// and the thresholds; a bad value is refused at start with exit 2, naming
// the key.
func TestSponsoredConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(yaml string) string {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := loadConfig(write("sponsored:\n  public_url: https://fb.example.com/\n  decision_threshold: \"0.9\"\n  refresh: 2s\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Sponsored.config()
	if want := (sponsored.Config{PublicURL: "https://fb.example.com", DecisionThreshold: 0.9, Refresh: 2 * time.Second}); err != nil || got != want {
		t.Fatalf("sponsored: got %+v, %v; want %+v", got, err, want)
	}
	for yaml, want := range map[string]string{
		"sponsored:\n  public_url: fb.example.com\n":             "sponsored.public_url",
		"sponsored:\n  public_url: https://fb.example.com/s\n":   "sponsored.public_url",
		"sponsored:\n  public_url: https://u:p@fb.example.com\n": "sponsored.public_url",
		"sponsored:\n  relevance_threshold: \"1.5\"\n":           "sponsored.relevance_threshold",
		"sponsored:\n  decision_threshold: \"0\"\n":              "sponsored.decision_threshold",
		"sponsored:\n  refresh: 1ms\n":                           "sponsored.refresh",
		"sponsored:\n  click_ttl: forever\n":                     "sponsored.click_ttl",
		"sponsored:\n  public_link: https://fb.example.com\n":    "public_link",
	} {
		_, err := serveInProcess(t, []string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--config", write(yaml)}, map[string]string{"FAREBOX_ADMIN_TOKEN": testToken})
		if exitCode(err) != 2 || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v (exit %d), want exit 2 naming %s", yaml, err, exitCode(err), want)
		}
	}
}

// TestServerConfig: the server: section sets the limits; a bad value is
// refused at start with exit 2, naming the key.
func TestServerConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(yaml string) string {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := loadConfig(write("server:\n  body_timeout: 2s\n  max_conns: 10\n"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Server.limits()
	if want := (httpguard.Limits{BodyTimeout: 2 * time.Second, MaxConns: 10}).WithDefaults(); err != nil || l != want {
		t.Fatalf("limits: got %+v, %v; want %+v", l, err, want)
	}
	for yaml, want := range map[string]string{
		"server:\n  body_timeout: soon\n":   "server.body_timeout",
		"server:\n  idle_timeout: -1s\n":    "server.idle_timeout",
		"server:\n  max_conns: -1\n":        "server.max_conns",
		"server:\n  body_budget: -5\n":      "server.body_budget",
		"server:\n  max_header_bytes: -1\n": "server.max_header_bytes",
		"server:\n  read_timeout: 5s\n":     "read_timeout",
	} {
		_, err := serveInProcess(t, []string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--config", write(yaml)}, map[string]string{"FAREBOX_ADMIN_TOKEN": testToken})
		if exitCode(err) != 2 || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v (exit %d), want exit 2 naming %s", yaml, err, exitCode(err), want)
		}
	}
}
