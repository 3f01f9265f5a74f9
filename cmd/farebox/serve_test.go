package main

import (
	"context"
	"database/sql"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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
	if len(tok) < 32 || strings.Count(s.stdout.String(), tok) != 1 {
		t.Fatalf("token %q printed %d times:\n%s", tok, strings.Count(s.stdout.String(), tok), s.stdout)
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
}

// authTransport replaces the Authorization header.
type authTransport string

func (a authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(a))
	return http.DefaultTransport.RoundTrip(r)
}

func TestEnvAndFlags(t *testing.T) {
	envDir, flagDir := t.TempDir(), t.TempDir()
	vars := map[string]string{"FAREBOX_DATA_DIR": envDir, "FAREBOX_ADDR": "127.0.0.1:0", "FAREBOX_ADMIN_TOKEN": testToken}
	s := mustServe(t, nil, vars)
	if _, err := os.Stat(filepath.Join(envDir, "farebox.db")); err != nil {
		t.Fatalf("FAREBOX_DATA_DIR ignored: %v", err)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		newClient(s.url).must(t, "GET", p, "", "", 200)
	}
	s.stop(t)
	// Flags override the environment.
	vars["FAREBOX_ADDR"] = "not an address"
	s = mustServe(t, []string{"--addr", "127.0.0.1:0", "--data-dir", flagDir}, vars)
	if _, err := os.Stat(filepath.Join(flagDir, "farebox.db")); err != nil {
		t.Fatalf("--data-dir ignored: %v", err)
	}
	s.stop(t)
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
	if err == nil || !strings.Contains(err.Error(), "in use by another farebox process") || exitCode(err) == 0 {
		t.Fatalf("second server on one data dir: %v", err)
	}
}

func TestDemo(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--addr", "127.0.0.1:0", "--data-dir", dir, "--demo"}
	vars := map[string]string{"FAREBOX_ADMIN_TOKEN": testToken}
	s := mustServe(t, args, vars)
	if !strings.Contains(s.stdout.String(), "curl -s http://") {
		t.Fatalf("no curl line:\n%s", s.stdout)
	}
	c := newClient(s.url)
	if b := c.must(t, "GET", "/api/v1/customers/demo/balance", "", "", 200); b["available"] != "1000" {
		t.Fatalf("demo balance %v", b)
	}
	h := c.must(t, "POST", "/api/v1/holds", `{"customer":"demo","amount":"1"}`, "", 201)
	c.must(t, "POST", "/api/v1/holds/"+h["id"].(string)+"/capture", "", "", 200)
	s.stop(t)
	// Seeding again changes nothing.
	s = mustServe(t, args, vars)
	if b := newClient(s.url).must(t, "GET", "/api/v1/customers/demo/balance", "", "", 200); b["available"] != "999" {
		t.Fatalf("demo balance after a second --demo start %v", b)
	}
}

// TestGracefulShutdown: cancelling serve's context lets requests in flight
// finish; every acknowledged op is durable.
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"FAREBOX_ADMIN_TOKEN": testToken}
	s := mustServe(t, []string{"--addr", "127.0.0.1:0", "--data-dir", dir}, vars)
	c := newClient(s.url)
	c.must(t, "POST", "/api/v1/customers", `{"id":"acme"}`, "", 201)
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := 0
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				st, _, err := c.call(context.Background(), "POST", "/api/v1/customers/acme/grants", `{"amount":"1"}`, "")
				if err != nil || st != 201 {
					return // shut down: refused or connection closed
				}
				mu.Lock()
				acked++
				mu.Unlock()
				_ = w
			}
		}()
	}
	time.Sleep(200 * time.Millisecond) // let the load run
	if err := s.stop(t); err != nil {
		t.Fatalf("run returned %v on graceful shutdown", err)
	}
	wg.Wait()
	if code, out := runVerify(t, dir); code != 0 {
		t.Fatalf("verify: %d\n%s", code, out)
	}
	d := snapshot(t, dir)
	if got := d.Accounts["acme"].Granted; int(got/1_000_000) < acked {
		t.Fatalf("%d grants acknowledged, %s credits stored", acked, got)
	}
	if acked == 0 {
		t.Fatal("no load ran")
	}
}

// TestSIGTERM: the real binary exits 0 on SIGTERM and what it acknowledged
// is there after a restart.
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
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "stopped") {
		t.Fatalf("no orderly stop in the log:\n%s", p.stderr)
	}
	if code, out := runVerify(t, dir); code != 0 {
		t.Fatalf("verify: %d\n%s", code, out)
	}
	p = startServe(t, dir)
	b := newClient(p.url).must(t, "GET", "/api/v1/customers/acme/balance", "", "", 200)
	if b["available"] != "8.5" || b["held"] != "0" {
		t.Fatalf("balance after restart %v", b)
	}
}

func TestVerifyExitCodes(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"FAREBOX_ADMIN_TOKEN": testToken}
	s := mustServe(t, []string{"--addr", "127.0.0.1:0", "--data-dir", dir}, vars)
	c := newClient(s.url)
	c.must(t, "POST", "/api/v1/customers", `{"id":"acme"}`, "", 201)
	c.must(t, "POST", "/api/v1/customers/acme/grants", `{"amount":"10"}`, "", 201)
	c.must(t, "POST", "/api/v1/holds", `{"customer":"acme","amount":"4"}`, "", 201)
	verify := func(args ...string) (int, string) {
		var out syncBuffer
		err := run(context.Background(), append([]string{"farebox", "ledger", "verify"}, args...), env(nil), &out, &out)
		if err != nil {
			return exitCode(err), out.String() + err.Error()
		}
		return 0, out.String()
	}
	// Live.
	if code, out := verify("--data-dir", dir); code != 0 || !strings.Contains(out, "ok:") {
		t.Fatalf("live verify: %d %s", code, out)
	}
	s.stop(t)
	if code, out := verify("--db", "sqlite://"+filepath.Join(dir, "farebox.db")); code != 0 {
		t.Fatalf("verify --db: %d %s", code, out)
	}
	if code, out := verify("--data-dir", filepath.Join(dir, "missing")); code != 2 {
		t.Fatalf("missing data dir: %d %s", code, out)
	}
	if code, out := verify("--bogus"); code != 2 {
		t.Fatalf("bad flag: %d %s", code, out)
	}
	// Tamper with a stored amount: exit 1 and the difference shown.
	db, err := sql.Open("sqlite", filepath.Join(dir, "farebox.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE accounts SET state = json_set(state, '$.lots[0].r', json_extract(state, '$.lots[0].r') + 1000000, '$.lots[0].a', json_extract(state, '$.lots[0].a') + 1000000, '$.g', json_extract(state, '$.g') + 1000000)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, out := verify("--data-dir", dir)
	if code != 1 || !strings.Contains(out, "MISMATCH") || !strings.Contains(out, "granted") {
		t.Fatalf("tampered data: %d %s", code, out)
	}
}

func TestUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"farebox"}, 2},
		{[]string{"farebox", "frobnicate"}, 2},
		{[]string{"farebox", "ledger"}, 2},
		{[]string{"farebox", "ledger", "fix"}, 2},
		{[]string{"farebox", "bench"}, 2},
		{[]string{"farebox", "help"}, 0},
		{[]string{"farebox", "--help"}, 0},
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
		if !strings.Contains(out.String()+errOut.String(), "farebox serve") && c.args[len(c.args)-1] != "bench" {
			t.Errorf("%v: no usage shown", c.args)
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
