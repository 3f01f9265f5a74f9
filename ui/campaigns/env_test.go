package campaigns_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	fb "farebox"
	"farebox/app"
	"farebox/fakeclock"
)

const adminToken = "campaigns-ui-test-admin-token-0123456789abc"

var start = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)

// env is Farebox on SQLite behind a real HTTP server, on a fake clock,
// with a simulated gpt-4o-mini and a customer acme on plan pro (bought
// credits, a key, a few requests): the customer side's non-advertiser.
type env struct {
	t       *testing.T
	url     string
	app     *app.App
	clock   *fakeclock.Clock
	acmeKey string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clock := fakeclock.New(start)
	a, err := app.New(context.Background(), app.Config{DataDir: t.TempDir(), AdminToken: adminToken, Clock: clock,
		Providers: []app.Provider{{Name: "sim", Type: "simulated", Models: []app.Model{{Model: "gpt-4o-mini", MaxOutputTokens: 16384}}}}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler)
	t.Cleanup(func() {
		hs.Close()
		a.Close()
	})
	e := &env{t: t, url: hs.URL, app: a, clock: clock}
	e.api("POST", "/api/v1/plans", `{"id": "pro", "name": "Pro", "price_usd": "20", "period": "month", "credits": "2000", "models": ["*"]}`, 201)
	e.api("POST", "/api/v1/customers", `{"id": "acme", "name": "Acme Corp", "plan": "pro"}`, 201)
	e.api("POST", "/api/v1/customers/acme/grants", `{"amount": "500", "source": "purchase", "paid_usd": "5", "idempotency_key": "buy-1"}`, 201)
	e.acmeKey, _ = e.key("acme", "laptop")
	for i := range 3 {
		e.chat(e.acmeKey, fmt.Sprintf("Which laptop should I buy? (question %d)", i))
	}
	return e
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

func (e *env) json(path string, v any) {
	e.t.Helper()
	if err := json.Unmarshal(e.api("GET", path, "", 200), v); err != nil {
		e.t.Fatal(err)
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

// chat sends one chat completion through the gateway.
func (e *env) chat(key, text string) {
	e.t.Helper()
	body := fmt.Sprintf(`{"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": %q}]}`, text)
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

// browser is a plain HTTP client with a cookie jar that does not follow
// redirects: a person's browser, minus the rendering.
type browser struct {
	t *testing.T
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
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

// figure is a displayed amount as the API writes it: thousands separators,
// the dollar sign and the percent sign dropped.
func figure(s string) string {
	return strings.NewReplacer(",", "", "$", "", "%", "").Replace(strings.TrimSpace(s))
}

// plus adds two amounts of credits as the API writes them.
func plus(t *testing.T, a, b string) string {
	t.Helper()
	x, err := fb.ParseAmount(a)
	y, err2 := fb.ParseAmount(b)
	if err != nil || err2 != nil {
		t.Fatalf("not amounts: %q, %q", a, b)
	}
	return (x + y).String()
}
