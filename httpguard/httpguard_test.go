package httpguard

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	fb "farebox"
)

// writeErr stands in for the API's error table.
func writeErr(w http.ResponseWriter, r *http.Request, err error) {
	status := map[string]int{fb.EUnavailable: 503, fb.ERequestTimeout: 408, fb.ETooLarge: 413}[fb.ErrorType(err)]
	if status == 0 {
		status = 500
	}
	w.WriteHeader(status)
	fmt.Fprint(w, fb.ErrorCode(err))
}

// serve runs h behind a Guard with l on a real socket.
func serve(t *testing.T, l Limits, h http.HandlerFunc) (*Guard, string) {
	t.Helper()
	g := New(l, writeErr)
	srv := httptest.NewServer(g.Handler(h))
	t.Cleanup(srv.Close)
	return g, strings.TrimPrefix(srv.URL, "http://")
}

// readAll is the handlers' body reading: an error a guard made is answered
// with its status.
func readAll(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var fe *fb.Error
		if !errors.As(err, &fe) {
			err = fmt.Errorf("not a farebox error: %w", err)
		}
		writeErr(w, r, err)
		return nil, false
	}
	return b, true
}

func TestBodyTimeout(t *testing.T) {
	_, addr := serve(t, Limits{BodyTimeout: 200 * time.Millisecond}, func(w http.ResponseWriter, r *http.Request) {
		if b, ok := readAll(w, r); ok {
			fmt.Fprintf(w, "%d bytes", len(b))
		}
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprint(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("withheld body: no answer (%v), want 408", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 408 || string(b) != fb.ERequestTimeout {
		t.Fatalf("withheld body: got %d %q, want 408 %s", resp.StatusCode, b, fb.ERequestTimeout)
	}
	if took := time.Since(start); took < 180*time.Millisecond || took > 3*time.Second {
		t.Fatalf("408 after %s, want about 200ms", took)
	}
}

// TestDeadlineEndsWithBody: once the body is in, the handler may run far
// longer than the body timeout, its context alive, streaming its answer.
func TestDeadlineEndsWithBody(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		_, addr := serve(t, Limits{BodyTimeout: 100 * time.Millisecond}, func(w http.ResponseWriter, r *http.Request) {
			if _, ok := readAll(w, r); !ok {
				return
			}
			for i := range 5 { // 500ms: five body timeouts
				fmt.Fprintf(w, "tick %d\n", i)
				http.NewResponseController(w).Flush()
				select {
				case <-r.Context().Done():
					fmt.Fprintf(w, "context ended: %v\n", r.Context().Err())
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
			fmt.Fprint(w, "done\n")
		})
		var body io.Reader = strings.NewReader(`{"hello": "world"}`)
		if chunked {
			body = io.MultiReader(body) // no length known: sent chunked
		}
		resp, err := http.Post("http://"+addr+"/", "application/json", body)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !strings.HasSuffix(string(b), "tick 4\ndone\n") {
			t.Fatalf("chunked %v: got %q, %v; want five ticks and done", chunked, b, err)
		}
	}
}

func TestBodyBudget(t *testing.T) {
	entered, proceed := make(chan struct{}), make(chan struct{})
	g, addr := serve(t, Limits{BodyBudget: 100}, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			entered <- struct{}{}
			<-proceed
		}
		if b, ok := readAll(w, r); ok {
			fmt.Fprintf(w, "%d bytes", len(b))
		}
	})
	post := func(path string, body io.Reader) (int, string) {
		t.Helper()
		resp, err := http.Post("http://"+addr+path, "text/plain", body)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	// A failure below must not leave the held handler blocked: the
	// server's Close waits for it.
	var once sync.Once
	release := func() { once.Do(func() { close(proceed) }) }
	t.Cleanup(release)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if st, b := post("/hold", strings.NewReader(strings.Repeat("h", 60))); st != 200 {
			t.Errorf("the request holding 60 bytes: got %d %s, want 200", st, b)
		}
	}()
	<-entered
	if got := g.InFlight(); got != 60 {
		t.Fatalf("in flight with one body of 60: got %d, want 60", got)
	}
	if st, b := post("/", strings.NewReader(strings.Repeat("x", 50))); st != 503 || b != "server_busy" {
		t.Fatalf("50 bytes past a budget of 100 with 60 held: got %d %q, want 503 server_busy", st, b)
	}
	if st, b := post("/", strings.NewReader(strings.Repeat("x", 40))); st != 200 || b != "40 bytes" {
		t.Fatalf("40 bytes within the budget: got %d %q, want 200", st, b)
	}
	// A body of unknown length is counted as it is read.
	if st, b := post("/", io.MultiReader(strings.NewReader(strings.Repeat("c", 70)))); st != 503 || b != "server_busy" {
		t.Fatalf("a chunked body of 70 with 60 held: got %d %q, want 503 server_busy", st, b)
	}
	if st, b := post("/", strings.NewReader(strings.Repeat("x", 101))); st != 413 {
		t.Fatalf("a body larger than the whole budget: got %d %q, want 413", st, b)
	}
	release()
	wg.Wait()
	if got := g.InFlight(); got != 0 {
		t.Fatalf("in flight after every handler returned: got %d, want 0", got)
	}
	if st, b := post("/", io.MultiReader(strings.NewReader(strings.Repeat("c", 100)))); st != 200 || b != "100 bytes" {
		t.Fatalf("a chunked body of the whole budget once it is free: got %d %q, want 200", st, b)
	}
	if got := g.InFlight(); got != 0 {
		t.Fatalf("in flight after a chunked body: got %d, want 0", got)
	}
}

func TestListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := Listener(inner, 2)
	defer ln.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	next := func(d time.Duration) net.Conn {
		select {
		case c := <-accepted:
			return c
		case <-time.After(d):
			return nil
		}
	}
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	a, b := next(5*time.Second), next(5*time.Second)
	if a == nil || b == nil {
		t.Fatal("two connections within a cap of 2 were not accepted")
	}
	if c := next(200 * time.Millisecond); c != nil {
		t.Fatal("a third connection was accepted with a cap of 2 and two open")
	}
	// Closing one twice frees one slot, not two.
	a.Close()
	a.Close()
	third := next(5 * time.Second)
	if third == nil {
		t.Fatal("the waiting connection was not accepted after one closed")
	}
	if _, err := net.Dial("tcp", inner.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if c := next(200 * time.Millisecond); c != nil {
		t.Fatal("a connection was accepted past the cap: a double Close freed two slots")
	}
	// Closing the listener ends the Accept waiting for a slot.
	ln.Close()
	select {
	case _, ok := <-accepted:
		if ok {
			t.Fatal("accepted a connection after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waiting for a slot after the listener closed")
	}
	b.Close()
	third.Close()
}

func TestLimitsDefaults(t *testing.T) {
	got := Limits{}.WithDefaults()
	want := Limits{HeaderTimeout: 10 * time.Second, BodyTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: 64 << 10, MaxConns: 4096, BodyBudget: 256 << 20}
	if got != want {
		t.Fatalf("defaults: got %+v, want %+v", got, want)
	}
	if err := (Limits{MaxConns: -1}).Validate(); err == nil {
		t.Fatal("a negative max_conns was accepted")
	}
	s := Limits{}.Server(http.NotFoundHandler())
	if s.ReadTimeout != 0 || s.IdleTimeout != 120*time.Second || s.MaxHeaderBytes != 64<<10 || s.ReadHeaderTimeout != 10*time.Second {
		t.Fatalf("server: ReadTimeout %s (want 0), IdleTimeout %s, MaxHeaderBytes %d, ReadHeaderTimeout %s",
			s.ReadTimeout, s.IdleTimeout, s.MaxHeaderBytes, s.ReadHeaderTimeout)
	}
}
