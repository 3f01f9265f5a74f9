package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// serveLimits runs serve (--demo, so a customer key exists) with the
// server: section of a config file.
func serveLimits(t *testing.T, server string) (s *inproc, dir string) {
	t.Helper()
	dir = t.TempDir()
	cfg := filepath.Join(dir, "farebox.yaml")
	yaml := "server:\n" + server + `
providers:
  - name: sim
    type: simulated
    ttft: 10ms
    tokens_per_second: 20
    models:
      - model: gpt-4o-mini
        max_output_tokens: 4096
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s = mustServe(t, []string{"--addr", "127.0.0.1:0", "--data-dir", dir, "--config", cfg, "--demo"}, map[string]string{"FAREBOX_ADMIN_TOKEN": testToken})
	return s, dir
}

// dial opens a raw connection to the server, closed with the test.
func dial(t *testing.T, s *inproc) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// readAnswer reads one response within d; it returns the error when none
// came (the connection closed, or the deadline passed).
func readAnswer(c net.Conn, br *bufio.Reader, d time.Duration) (*http.Response, string, error) {
	c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

func errorType(body string) (typ, code string) {
	var e struct{ Error struct{ Type, Code string } }
	json.Unmarshal([]byte(body), &e)
	return e.Error.Type, e.Error.Code
}

// TestServerLimits probes the HTTP server's limits (security review,
// finding 9) with real sockets against run, with short limits configured.
func TestServerLimits(t *testing.T) {
	t.Run("withheld body", func(t *testing.T) {
		s, dir := serveLimits(t, "  body_timeout: 500ms\n")
		key, err := os.ReadFile(filepath.Join(dir, "demo-key"))
		if err != nil {
			t.Fatal(err)
		}
		for _, rt := range []struct{ path, auth string }{
			{"/api/v1/customers", testToken},                         // the management API's readBody
			{"/v1/chat/completions", strings.TrimSpace(string(key))}, // the gateway's
		} {
			c, br := dial(t, s)
			start := time.Now()
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: farebox\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\": ", rt.path, rt.auth)
			resp, body, err := readAnswer(c, br, 5*time.Second)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("%s: 100 bytes declared, 10 sent: no answer within 5 s (%v), want 408 after the 500ms body timeout", rt.path, err)
			}
			if typ, _ := errorType(body); resp.StatusCode != http.StatusRequestTimeout || typ != "request_timeout" {
				t.Fatalf("%s: got %d %s, want 408 request_timeout", rt.path, resp.StatusCode, body)
			}
			if took < 450*time.Millisecond {
				t.Fatalf("%s: 408 after %s, before the 500ms body timeout", rt.path, took)
			}
			t.Logf("%s: withheld body → %d after %s", rt.path, resp.StatusCode, took.Round(time.Millisecond))
		}
	})

	t.Run("stream outlives the body timeout", func(t *testing.T) {
		// The body deadline ends with the body: a response that streams
		// for three body timeouts runs to its end.
		s, dir := serveLimits(t, "  body_timeout: 500ms\n")
		key, _ := os.ReadFile(filepath.Join(dir, "demo-key"))
		req, _ := http.NewRequest("POST", s.url+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(key)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Farebox-Simulate-Tokens", "30") // 1.5 s at 20 tokens/s
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !strings.Contains(string(b), "data: [DONE]") {
			t.Fatalf("stream of 1.5 s with a 500ms body timeout: got %d, %v, %q; want 200 ending in [DONE]", resp.StatusCode, err, b)
		}
		if took := time.Since(start); took < time.Second {
			t.Fatalf("the stream took %s; the test wants one longer than the body timeout", took)
		}
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		s, _ := serveLimits(t, "  idle_timeout: 500ms\n")
		c, br := dial(t, s)
		fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: farebox\r\n\r\n")
		if resp, _, err := readAnswer(c, br, 5*time.Second); err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz: %v %v", resp, err)
		}
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := br.ReadByte()
		took := time.Since(start)
		if !errors.Is(err, io.EOF) {
			t.Fatalf("idle connection: got %v after %s, want it closed (EOF) after the 500ms idle timeout", err, took)
		}
		if took < 450*time.Millisecond {
			t.Fatalf("idle connection closed after %s, before the 500ms idle timeout", took)
		}
	})

	t.Run("oversized headers", func(t *testing.T) {
		s, _ := serveLimits(t, "") // the default: 64 KiB
		for _, tc := range []struct {
			size int
			want int
		}{{32 << 10, 200}, {80 << 10, http.StatusRequestHeaderFieldsTooLarge}} {
			c, br := dial(t, s)
			go fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: farebox\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", tc.size))
			resp, _, err := readAnswer(c, br, 5*time.Second)
			if err != nil {
				t.Fatalf("a %d KiB header: no answer (%v), want %d", tc.size>>10, err, tc.want)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("a %d KiB header: got %d, want %d", tc.size>>10, resp.StatusCode, tc.want)
			}
		}
	})

	t.Run("connection cap", func(t *testing.T) {
		s, _ := serveLimits(t, "  max_conns: 2\n")
		get := func(c net.Conn) { fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: farebox\r\n\r\n") }
		c1, br1 := dial(t, s)
		c2, br2 := dial(t, s)
		for _, c := range []struct {
			c  net.Conn
			br *bufio.Reader
		}{{c1, br1}, {c2, br2}} {
			get(c.c)
			if resp, _, err := readAnswer(c.c, c.br, 5*time.Second); err != nil || resp.StatusCode != 200 {
				t.Fatalf("a connection within the cap: %v %v", resp, err)
			}
		}
		// Both slots are taken by idle keep-alive connections: a third
		// connection waits, unserved.
		c3, br3 := dial(t, s)
		get(c3)
		if resp, _, err := readAnswer(c3, br3, 500*time.Millisecond); err == nil {
			t.Fatalf("a third connection with max_conns 2: got %d, want no answer while two are open", resp.StatusCode)
		} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Fatalf("a third connection with max_conns 2: got %v, want it waiting", err)
		}
		c1.Close()
		if resp, _, err := readAnswer(c3, br3, 5*time.Second); err != nil || resp.StatusCode != 200 {
			t.Fatalf("the waiting connection after one closed: got %v %v, want 200", resp, err)
		}
		// c2 is still served.
		get(c2)
		if resp, _, err := readAnswer(c2, br2, 5*time.Second); err != nil || resp.StatusCode != 200 {
			t.Fatalf("the second connection: %v %v", resp, err)
		}
	})

	t.Run("body budget", func(t *testing.T) {
		s, _ := serveLimits(t, "  body_budget: 1000\n")
		post := func(c net.Conn, length int, expect bool) {
			h := "POST /api/v1/customers HTTP/1.1\r\nHost: farebox\r\nAuthorization: Bearer " + testToken +
				"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(length) + "\r\n"
			if expect {
				h += "Expect: 100-continue\r\n"
			}
			io.WriteString(c, h+"\r\n")
		}
		body := func(id string, length int) string {
			b := `{"id":"` + id + `"`
			return b + strings.Repeat(" ", length-len(b)-1) + "}"
		}
		// c1 holds 800 bytes of the budget: its handler is reading a body
		// that is not all there (100 Continue says the handler has begun).
		c1, br1 := dial(t, s)
		post(c1, 800, true)
		if resp, _, err := readAnswer(c1, br1, 5*time.Second); err != nil || resp.StatusCode != 100 {
			t.Fatalf("want 100 Continue: %v %v", resp, err)
		}
		b1 := body("budget-1", 800)
		io.WriteString(c1, b1[:10])
		// 300 more would pass 1000: 503 at once, the body never asked for.
		c2, br2 := dial(t, s)
		post(c2, 300, true)
		resp, got, err := readAnswer(c2, br2, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if typ, code := errorType(got); resp.StatusCode != http.StatusServiceUnavailable || typ != "unavailable" || code != "server_busy" || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("past the body budget: got %d %v %s, want 503 unavailable/server_busy with Retry-After", resp.StatusCode, resp.Header, got)
		}
		// More than the whole budget can never be served: 413.
		c4, br4 := dial(t, s)
		post(c4, 2000, true)
		if resp, got, err := readAnswer(c4, br4, 5*time.Second); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("a body larger than the whole budget: got %v %s %v, want 413", resp, got, err)
		}
		// c1 finishes; its share is released and the next one fits.
		io.WriteString(c1, b1[10:])
		if resp, got, err := readAnswer(c1, br1, 5*time.Second); err != nil || resp.StatusCode != 201 {
			t.Fatalf("the request holding the budget: %v %s %v", resp, got, err)
		}
		c3, br3 := dial(t, s)
		post(c3, 300, false)
		io.WriteString(c3, body("budget-3", 300))
		if resp, got, err := readAnswer(c3, br3, 5*time.Second); err != nil || resp.StatusCode != 201 {
			t.Fatalf("after the budget was released: got %v %s %v, want 201", resp, got, err)
		}
	})
}
