// Package uitest is the dashboard's test support, shared by the tests of
// ui, ui/leasing, ui/billing and ui/campaigns: Farebox built from an
// app.Config and served on a loopback port (Start, Serve); the management
// API called with the admin token, each answer's status checked (Site);
// a person's browser minus the rendering, plain HTTP requests carrying the
// session cookie and the pages' CSRF tokens (Session); headless Chromium
// driving one tab, with screenshots at 1280 and 390 px into
// $FAREBOX_ARTIFACTS (Tab); and the reading of figures off pages
// (Figure, Plus, Between).
//
// It imports testing and fails the test it is given, so only tests import
// it, never the program: TestOnlyTestsImport keeps it so.
package uitest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"farebox/app"
)

// Server is Farebox (app.New: SQLite in cfg.DataDir unless cfg says
// otherwise) behind a real HTTP server on a loopback port.
type Server struct {
	App  *app.App
	URL  string
	hs   *httptest.Server
	once sync.Once
}

// Start builds the app from cfg and serves its handler. The caller closes
// it (Serve, for a test, closes it when the test ends).
func Start(cfg app.Config) (*Server, error) {
	a, err := app.New(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	hs := httptest.NewServer(a.Handler)
	return &Server{App: a, URL: hs.URL, hs: hs}, nil
}

// Close stops the HTTP server, then the app; closing again does nothing
// (a test that restarts the app closes it before its cleanup does).
func (s *Server) Close() {
	s.once.Do(func() {
		s.hs.Close()
		s.App.Close()
	})
}

// Serve is Start for t: an error fails t, and the server is closed when t
// ends.
func Serve(t testing.TB, cfg app.Config) *Server {
	t.Helper()
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Site calls a running Farebox at URL as its operator (the admin token)
// and as a customer's key, failing T on an unexpected answer. A test
// sharing a Site built by another sets T to itself on its copy.
type Site struct {
	T     testing.TB
	URL   string
	Token string // the admin token
}

// send sends req with the bearer secret (and a content type when it has
// a body) on c, and returns the answer with its body read; a transport
// error fails t.
func send(t testing.TB, c *http.Client, req *http.Request, secret, contentType string) (*http.Response, []byte) {
	t.Helper()
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

// API calls the management API with the admin token and returns the
// answer's body, failing unless its status is want.
func (s *Site) API(method, path, body string, want int) []byte {
	s.T.Helper()
	req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	contentType := ""
	if body != "" {
		contentType = "application/json"
	}
	res, b := send(s.T, http.DefaultClient, req, s.Token, contentType)
	if res.StatusCode != want {
		s.T.Fatalf("%s %s: %d %s; want %d", method, path, res.StatusCode, b, want)
	}
	return b
}

// Object is API with the answer decoded as a JSON object (nil when the
// answer is not one).
func (s *Site) Object(method, path, body string, want int) map[string]any {
	s.T.Helper()
	var m map[string]any
	json.Unmarshal(s.API(method, path, body, want), &m)
	return m
}

// Decode decodes a JSON answer into v, failing on a malformed one.
func (s *Site) Decode(b []byte, v any) {
	s.T.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		s.T.Fatal(err)
	}
}

// JSON GETs path, which must answer 200, into v.
func (s *Site) JSON(path string, v any) {
	s.T.Helper()
	s.Decode(s.API("GET", path, "", 200), v)
}

// Key makes an API key of customer (body is the request's JSON: its name,
// budget…) and returns its secret and id.
func (s *Site) Key(customer, body string) (secret, id string) {
	s.T.Helper()
	var k struct{ ID, Key string }
	s.Decode(s.API("POST", "/api/v1/customers/"+customer+"/keys", body, 201), &k)
	return k.Key, k.ID
}

// Events posts a batch of usage events (CloudEvents), every one of which
// must be accepted.
func (s *Site) Events(batch string) {
	s.T.Helper()
	req, _ := http.NewRequest("POST", s.URL+"/api/v1/events", strings.NewReader(batch))
	res, b := send(s.T, http.DefaultClient, req, s.Token, "application/cloudevents-batch+json")
	if res.StatusCode != 200 || strings.Contains(string(b), "rejected") {
		s.T.Fatalf("events: %d %s", res.StatusCode, b)
	}
}

// Chat sends one chat completion of model through the gateway with a
// customer's key, which must answer 200, and returns the answer.
func (s *Site) Chat(key, model, text string, maxTokens int) []byte {
	s.T.Helper()
	body := fmt.Sprintf(`{"model": %q, "max_tokens": %d, "messages": [{"role": "user", "content": %q}]}`, model, maxTokens, text)
	req, _ := http.NewRequest("POST", s.URL+"/v1/chat/completions", strings.NewReader(body))
	res, b := send(s.T, http.DefaultClient, req, key, "application/json")
	if res.StatusCode != 200 {
		s.T.Fatalf("chat %q: %d %s", text, res.StatusCode, b)
	}
	return b
}
