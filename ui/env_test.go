package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/app"
	"farebox/economics"
	"farebox/fakeclock"
)

const adminToken = "ui-test-admin-token-0123456789abcdefghij"

// env is Farebox on SQLite behind a real HTTP server, its clock fake, with
// two customers: acme (on plan pro, with a promo lot soon used up, a
// refund lot expiring in 3 days and a purchase, and ten days of metered usage on two models) and beta.
type env struct {
	t                 *testing.T
	url               string
	app               *app.App
	clock             *fakeclock.Clock
	logs              *syncBuffer
	dir               string // the data directory
	stop              func()
	acmeKey, acmeID   string // the key's secret and id
	betaKey, betaID   string
	acmeKey2, acmeID2 string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var start = time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC)

// providers: two simulated deployments of gpt-4o-mini (the cheaper one
// first), answering at once.
var providers = []app.Provider{
	{Name: "sim-a", Type: "simulated", Models: []app.Model{{Model: "gpt-4o-mini", MaxOutputTokens: 16384}}},
	{Name: "sim-b", Type: "simulated", Models: []app.Model{{Model: "gpt-4o-mini", MaxOutputTokens: 16384, Priority: 1}}},
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, clock: fakeclock.New(start), logs: &syncBuffer{}, dir: t.TempDir()}
	e.start()
	e.api("POST", "/api/v1/plans", `{"id": "pro", "name": "Pro", "price_usd": "20", "period": "month", "credits": "2000", "models": ["*"]}`, 201)
	e.api("POST", "/api/v1/plans", `{"id": "team", "name": "Team", "price_usd": "100", "period": "month", "credits": "12000", "models": ["*"]}`, 201)
	e.api("POST", "/api/v1/customers", `{"id": "acme", "name": "Acme Corp", "plan": "pro"}`, 201)
	e.api("POST", "/api/v1/customers", `{"id": "beta", "name": "Beta Ltd"}`, 201)
	e.api("POST", "/api/v1/customers/acme/grants", `{"amount": "5", "source": "promo", "expires_at": "2026-11-23T09:00:00Z", "idempotency_key": "promo-1"}`, 201)
	e.api("POST", "/api/v1/customers/acme/grants", `{"amount": "50", "source": "refund", "priority": 30, "paid_usd": "0.5", "expires_at": "2026-11-23T09:00:00Z", "idempotency_key": "refund-1"}`, 201)
	e.api("POST", "/api/v1/customers/acme/grants", `{"amount": "500", "source": "purchase", "paid_usd": "5", "idempotency_key": "buy-1"}`, 201)
	e.api("POST", "/api/v1/customers/beta/grants", `{"amount": "777.5", "source": "purchase", "paid_usd": "7.775", "idempotency_key": "buy-b"}`, 201)
	e.acmeKey, e.acmeID = e.key("acme", "laptop")
	e.acmeKey2, e.acmeID2 = e.key("acme", "ci")
	e.betaKey, e.betaID = e.key("beta", "prod")
	// Ten days of usage, a batch a day, moving the clock.
	for d := range 10 {
		var evs []string
		for i := range 3 + d%4 {
			model := "gpt-4o"
			if i%2 == 1 {
				model = "gpt-4o-mini"
			}
			evs = append(evs, fmt.Sprintf(`{"specversion": "1.0", "id": "a-%d-%d", "source": "app", "type": "usage", "subject": "acme", "data": {"model": %q, "input_tokens": %d, "output_tokens": %d}}`,
				d, i, model, 1000+d*137+i, 200+d*31))
		}
		evs = append(evs, fmt.Sprintf(`{"specversion": "1.0", "id": "b-%d", "source": "app", "type": "usage", "subject": "beta", "data": {"model": "gpt-4o", "input_tokens": 5000, "output_tokens": 900}}`, d))
		e.events("[" + strings.Join(evs, ",") + "]")
		for i := range 2 {
			e.chat(e.acmeKey, fmt.Sprintf("Day %d, question %d: how are my credits doing?", d, i))
		}
		e.clock.Advance(24 * time.Hour)
	}
	return e
}

// econConfig values uncollected credit and gives a partner 10% of gpt-4o.
var econConfig = economics.Config{CreditsPerUSD: 100, Shares: []economics.Share{{Partner: "openai-partner", Models: []string{"gpt-4o"}, Percent: 10 * fb.Micro}}}

// start starts Farebox on the env's data directory and clock.
func (e *env) start() {
	e.t.Helper()
	a, err := app.New(context.Background(), app.Config{
		DataDir: e.dir, AdminToken: adminToken, Clock: e.clock, Providers: providers,
		Log:       slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Economics: econConfig,
		Dashboard: app.DashboardConfig{TopUp: "Email billing@example.com to buy credits."},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler)
	stopped := false
	e.stop = func() {
		if !stopped {
			stopped = true
			hs.Close()
			a.Close()
		}
	}
	e.t.Cleanup(e.stop)
	e.url, e.app = hs.URL, a
}

// restart stops Farebox and starts it again on the same data.
func (e *env) restart() {
	e.t.Helper()
	e.stop()
	e.start()
}

func (e *env) api(method, path, body string, want int) []byte {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		e.t.Fatalf("%s %s: %d %s; want %d", method, path, res.StatusCode, b, want)
	}
	return b
}

func (e *env) events(batch string) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.url+"/api/v1/events", strings.NewReader(batch))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/cloudevents-batch+json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || strings.Contains(string(b), "rejected") {
		e.t.Fatalf("events: %d %s", res.StatusCode, b)
	}
}

// chat sends one chat completion through the gateway.
func (e *env) chat(key, text string) {
	e.t.Helper()
	body := fmt.Sprintf(`{"model": "gpt-4o-mini", "max_tokens": 200, "messages": [{"role": "user", "content": %q}]}`, text)
	req, _ := http.NewRequest("POST", e.url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		e.t.Fatalf("chat: %d %s", res.StatusCode, b)
	}
}

func (e *env) key(customer, name string) (secret, id string) {
	e.t.Helper()
	var k struct{ ID, Key string }
	if err := json.Unmarshal(e.api("POST", "/api/v1/customers/"+customer+"/keys", `{"name": "`+name+`"}`, 201), &k); err != nil {
		e.t.Fatal(err)
	}
	return k.Key, k.ID
}

func (e *env) json(path string, v any) {
	e.t.Helper()
	if err := json.Unmarshal(e.api("GET", path, "", 200), v); err != nil {
		e.t.Fatal(err)
	}
}

// browser is a plain HTTP client with a cookie jar that does not follow
// redirects: a person's browser, minus the rendering.
type browser struct {
	t   *testing.T
	e   *env
	c   *http.Client
	jar *cookiejar.Jar
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, e: e, jar: jar, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.e.url+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res, string(out)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the CSRF token of the page at path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	res, page := b.do("GET", path, nil)
	m := csrfField.FindStringSubmatch(page)
	if res.StatusCode != 200 || m == nil {
		b.t.Fatalf("GET %s: %d, no CSRF token in the page", path, res.StatusCode)
	}
	return m[1]
}

// signIn signs in with secret and says where it was sent.
func (b *browser) signIn(secret string) (int, string) {
	b.t.Helper()
	tok := b.csrf("/")
	res, _ := b.do("POST", "/ui/signin", url.Values{"csrf": {tok}, "secret": {secret}})
	return res.StatusCode, res.Header.Get("Location")
}
