// Package stripemock is for tests: it starts stripe-mock (Stripe's official
// API mock) on a free port, puts a recorder in front of it that counts
// what Farebox asks Stripe for, and signs webhook events with a test
// secret the way Stripe does. Without stripe-mock installed (go install
// github.com/stripe/stripe-mock@v0.203.0) a test skips, unless CI=true,
// where it fails.
package stripemock

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"
)

// Secrets the tests configure Farebox with.
const (
	SecretKey     = "sk_test_farebox"
	WebhookSecret = "whsec_test_farebox"
)

// Binary finds stripe-mock: STRIPE_MOCK, PATH, then Go's bin directory.
func Binary() (string, error) {
	if p := os.Getenv("STRIPE_MOCK"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("STRIPE_MOCK=%s: %w", p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p, nil
	}
	var dirs []string
	if gb := os.Getenv("GOBIN"); gb != "" {
		dirs = append(dirs, gb)
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "stripe-mock")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("stripe-mock not found (go install github.com/stripe/stripe-mock@v0.203.0)")
}

// Start starts stripe-mock for the test and returns its URL; it stops
// when the test ends.
func Start(t testing.TB) string {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("stripe-mock is required under CI=true (.ci/run installs it): %v", err)
		}
		t.Skipf("SKIPPED: this test needs stripe-mock, which is not installed: %v; under CI=true it fails instead", err)
	}
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:", "-https-addr", "127.0.0.1:")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "Listening for HTTP at address: "); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatal("stripe-mock did not start")
	}
	return ""
}

// Request is one request the recorder saw.
type Request struct {
	Method, Path, IdempotencyKey string
	Form                         url.Values
}

// Recorder is a proxy in front of stripe-mock that records every request,
// and can hold requests back (as a network that never delivers them).
type Recorder struct {
	URL string

	mu       sync.Mutex
	seen     []Request
	sent     []Request // forwarded to stripe-mock
	holding  bool
	arrived  chan Request
	srv      *httptest.Server
	upstream *httputil.ReverseProxy
}

// NewRecorder starts a recorder in front of the stripe-mock at target.
func NewRecorder(t testing.TB, target string) *Recorder {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	r := &Recorder{arrived: make(chan Request, 1024), upstream: httputil.NewSingleHostReverseProxy(u)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = r.srv.URL
	t.Cleanup(func() {
		r.Hold(false)
		r.srv.CloseClientConnections()
		r.srv.Close()
	})
	return r
}

func (r *Recorder) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	req.Body = io.NopCloser(strings.NewReader(string(body)))
	form, _ := url.ParseQuery(string(body))
	rec := Request{Method: req.Method, Path: req.URL.Path, IdempotencyKey: req.Header.Get("Idempotency-Key"), Form: form}
	r.mu.Lock()
	r.seen = append(r.seen, rec)
	holding := r.holding
	r.mu.Unlock()
	select {
	case r.arrived <- rec:
	default:
	}
	if holding {
		// Never answered: the caller is killed waiting, and stripe-mock
		// never hears of it.
		<-req.Context().Done()
		return
	}
	r.mu.Lock()
	r.sent = append(r.sent, rec)
	r.mu.Unlock()
	req.ContentLength = int64(len(body))
	r.upstream.ServeHTTP(w, req)
}

// Hold makes the recorder hold requests back (true) or forward them.
func (r *Recorder) Hold(on bool) {
	r.mu.Lock()
	r.holding = on
	r.mu.Unlock()
}

// Arrived is told of each request as it arrives.
func (r *Recorder) Arrived() <-chan Request { return r.arrived }

// Seen are the requests that arrived; Sent those forwarded to stripe-mock.
func (r *Recorder) Seen() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.seen...)
}
func (r *Recorder) Sent() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.sent...)
}

// PaymentIntents counts the PaymentIntents Stripe would have made of reqs:
// one per idempotency key (Stripe answers a repeated key with the first
// PaymentIntent), each request without a key its own.
func PaymentIntents(reqs []Request) int {
	keys := map[string]bool{}
	n := 0
	for _, r := range reqs {
		if r.Method != http.MethodPost || r.Path != "/v1/payment_intents" {
			continue
		}
		if r.IdempotencyKey == "" {
			n++
		} else if !keys[r.IdempotencyKey] {
			keys[r.IdempotencyKey] = true
			n++
		}
	}
	return n
}

// Event is a Stripe event of typ about object, signed with WebhookSecret at
// now (the real clock: stripe-go checks the tolerance on it): its payload
// and its Stripe-Signature header. api_version is an old one on purpose:
// Farebox accepts any.
func Event(id, typ string, object any) (payload []byte, signature string) {
	return EventSigned(id, typ, object, WebhookSecret, time.Now())
}

// EventSigned is Event with another secret or time (forged or stale ones).
func EventSigned(id, typ string, object any, secret string, at time.Time) ([]byte, string) {
	payload, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "type": typ, "api_version": "2020-08-27", "created": at.Unix(),
		"livemode": false, "pending_webhooks": 1, "data": map[string]any{"object": object},
	})
	if err != nil {
		panic(err)
	}
	sig := webhook.ComputeSignature(at, payload, secret)
	return payload, fmt.Sprintf("t=%d,v1=%x", at.Unix(), sig)
}
