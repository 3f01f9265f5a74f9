package app_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	fb "farebox"
	"farebox/app"
	"farebox/fakeclock"
	"farebox/ledger"
	"farebox/store/postgres/pgtest"
)

const token = "app-test-admin-token-0123456789abcdef"

// started is an app running on a loopback listener, on its own clock.
type started struct {
	a    *app.App
	clk  *fakeclock.Clock
	url  string
	stop context.CancelFunc
	done chan error
}

func start(t *testing.T, t0 time.Time) *started {
	t.Helper()
	clk := fakeclock.New(t0)
	a, err := app.New(context.Background(), app.Config{
		DataDir: t.TempDir(), AdminToken: token, Clock: clk, Providers: app.DemoProviders,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &started{a: a, clk: clk, url: "http://" + ln.Addr().String(), stop: stop, done: make(chan error, 1)}
	go func() { s.done <- a.Run(ctx, ln) }()
	return s
}

func (s *started) call(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls cond for a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestTwoAppsInOneProcess: two Fareboxes run side by side in one process,
// each on its own fake clock; their background jobs run on those clocks
// (a hold expires, a subscription renews, with no request to make it
// happen); shut down, they leave no goroutine running.
func TestTwoAppsInOneProcess(t *testing.T) {
	defer goleak.VerifyNone(t)
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	apps := []*started{start(t, t0), start(t, t0.Add(time.Hour))}
	for i, s := range apps {
		cust := fmt.Sprintf("acme%d", i)
		if code, body := s.call(t, "POST", "/api/v1/plans", `{"id":"daily","price_usd":"1","period":"day","credits":"100"}`); code != 201 {
			t.Fatalf("plan: %d %s", code, body)
		}
		if code, body := s.call(t, "POST", "/api/v1/customers", `{"id":"`+cust+`","plan":"daily"}`); code != 201 {
			t.Fatalf("customer: %d %s", code, body)
		}
		if code, body := s.call(t, "POST", "/api/v1/holds", `{"customer":"`+cust+`","amount":"30","ttl_seconds":60}`); code != 201 {
			t.Fatalf("hold: %d %s", code, body)
		}
		account := func() *fb.Account {
			a, err := s.a.Store.Account(context.Background(), cust)
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
		if len(account().Holds) != 1 {
			t.Fatal("no hold")
		}
		// The sweep runs on the app's clock: past the hold's TTL it
		// releases it, though nobody touches the account.
		s.clk.Advance(61 * time.Second)
		waitFor(t, "the sweep to expire the hold", func() bool {
			s.clk.Advance(time.Second)
			return len(account().Holds) == 0
		})
		// Renewal runs on it too: a day on, the next allowance.
		s.clk.Advance(24 * time.Hour)
		waitFor(t, "the renewal", func() bool {
			s.clk.Advance(time.Second)
			return account().Granted == 200*fb.Micro
		})
		if got := ledger.Available(account(), s.clk.Now()); got != 100*fb.Micro {
			t.Errorf("app %d: available %s after the renewal, want 100 (the first day's expired)", i, got)
		}
	}
	for i, s := range apps {
		s.stop()
		if err := <-s.done; err != nil {
			t.Errorf("app %d stopped with %v", i, err)
		}
		if err := s.a.Close(); err != nil {
			t.Errorf("closing app %d again: %v", i, err)
		}
	}
}

// TestNewFailsClean: an app that cannot be built (a bad database URL)
// answers the error and leaves nothing open.
func TestNewFailsClean(t *testing.T) {
	defer goleak.VerifyNone(t)
	_, err := app.New(context.Background(), app.Config{DB: "mysql://u:secret@h/db", DataDir: t.TempDir()})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("got %v, want an error without the password", err)
	}
	_, err = app.New(context.Background(), app.Config{DataDir: t.TempDir(), Providers: []app.Provider{{Name: "x", Type: "nonsense", Models: []app.Model{{Model: "m"}}}}})
	if err == nil {
		t.Fatal("a provider of an unknown type was accepted")
	}
}

// TestDebugAddr: the profiles are served on the debug address only, when
// asked for.
func TestDebugAddr(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, err := app.New(context.Background(), app.Config{DataDir: t.TempDir(), AdminToken: token, DebugAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, ln) }()
	c := &http.Client{Transport: &http.Transport{}}
	get := func(url string) int {
		for i := 0; ; i++ {
			resp, err := c.Get(url)
			if err != nil {
				if i < 100 {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
	}
	if got := get("http://" + a.DebugAddr() + "/debug/pprof/"); got != 200 {
		t.Errorf("profiles on the debug address: %d", got)
	}
	if got := get("http://" + ln.Addr().String() + "/debug/pprof/"); got != 404 {
		t.Errorf("profiles on the main address: %d, want 404", got)
	}
	c.CloseIdleConnections()
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestDailySumsInMemory: the reports read the daily sums from memory on
// both engines — kept by the process's own writes on the embedded store,
// by what changed since each read on PostgreSQL.
func TestDailySumsInMemory(t *testing.T) {
	ctx := context.Background()
	a, err := app.New(ctx, app.Config{DataDir: t.TempDir(), AdminToken: token, Providers: app.DemoProviders})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if got := a.Store.SumsKept(); got != "writes" {
		t.Errorf("on SQLite the daily sums are kept by %q; want writes", got)
	}
	pg := pgtest.Start(t)
	b, err := app.New(ctx, app.Config{DB: pg.NewDatabase(t), DataDir: t.TempDir(), AdminToken: token, Providers: app.DemoProviders})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := b.Store.SumsKept(); got != "changes" {
		t.Errorf("on PostgreSQL the daily sums are kept by %q; want changes", got)
	}
}
