package billing_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"farebox/app"
	"farebox/payments"
	"farebox/payments/stripemock"
)

const adminToken = "billing-ui-test-admin-token-0123456789abcdef"

// env is Farebox on SQLite behind a real HTTP server, with Stripe at a
// recorder in front of stripe-mock (rec nil: no payment provider).
type env struct {
	t   *testing.T
	url string
	app *app.App
	rec *stripemock.Recorder
}

func newEnv(t *testing.T, withStripe bool) *env {
	t.Helper()
	cfg := app.Config{DataDir: t.TempDir(), AdminToken: adminToken, CreditsPerUSD: 100,
		Dashboard: app.DashboardConfig{TopUp: "Email billing@example.com to buy credits."}}
	e := &env{t: t}
	if withStripe {
		e.rec = stripemock.NewRecorder(t, stripemock.Start(t))
		cfg.Stripe = payments.StripeConfig{SecretKey: stripemock.SecretKey, WebhookSecret: stripemock.WebhookSecret, APIBase: e.rec.URL}
	}
	a, err := app.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler)
	t.Cleanup(func() {
		hs.Close()
		a.Close()
	})
	e.url, e.app = hs.URL, a
	return e
}

// api calls the management API with the admin token and decodes the
// answer, failing unless its status is want.
func (e *env) api(method, path, body string, want int) map[string]any {
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
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

func (e *env) key(customer, body string) (secret, id string) {
	e.t.Helper()
	k := e.api("POST", "/api/v1/customers/"+customer+"/keys", body, 201)
	return k["key"].(string), k["id"].(string)
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects.
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

// page GETs a page that must answer 200.
func (b *browser) page(path string) string {
	b.t.Helper()
	res, page := b.do("GET", path, nil)
	if res.StatusCode != 200 {
		b.t.Fatalf("GET %s: %d\n%s", path, res.StatusCode, page)
	}
	return page
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) csrf(path string) string {
	b.t.Helper()
	m := csrfField.FindStringSubmatch(b.page(path))
	if m == nil {
		b.t.Fatalf("GET %s: no CSRF token in the page", path)
	}
	return m[1]
}

// post submits a form of the page at from (with its CSRF token) to path.
func (b *browser) post(from, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", b.csrf(from))
	return b.do("POST", path, form)
}

func (b *browser) signIn(secret string) {
	b.t.Helper()
	_, signin := b.do("GET", "/", nil)
	m := csrfField.FindStringSubmatch(signin)
	if m == nil {
		b.t.Fatal("no sign-in form")
	}
	res, _ := b.do("POST", "/ui/signin", url.Values{"csrf": {m[1]}, "secret": {secret}})
	if res.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("sign-in: %d", res.StatusCode)
	}
}

var (
	tableRe = regexp.MustCompile(`(?s)<section><h2>([^<]*)</h2>\s*<div class="scroll"><table[^>]*>(.*?)</table>`)
	rowRe   = regexp.MustCompile(`(?s)<tr>(.*?)</tr>`)
	cellRe  = regexp.MustCompile(`(?s)<td[^>]*>(.*?)</td>`)
	tagRe   = regexp.MustCompile(`<[^>]+>`)
	cardRe  = regexp.MustCompile(`(?s)<div class="card"><div class="label">([^<]*)</div><div class="value">([^<]*)</div>`)
)

// table is the rows of the page's table titled title, each cell's text.
func table(t *testing.T, page, title string) [][]string {
	t.Helper()
	for _, m := range tableRe.FindAllStringSubmatch(page, -1) {
		if html.UnescapeString(m[1]) != title {
			continue
		}
		var rows [][]string
		body := m[2][strings.Index(m[2], "<tbody>"):]
		for _, r := range rowRe.FindAllStringSubmatch(body, -1) {
			var cells []string
			for _, c := range cellRe.FindAllStringSubmatch(r[1], -1) {
				cells = append(cells, strings.TrimSpace(html.UnescapeString(tagRe.ReplaceAllString(c[1], ""))))
			}
			rows = append(rows, cells)
		}
		return rows
	}
	t.Fatalf("no table %q in the page", title)
	return nil
}

// cards are the page's figures by label (the last of a label wins).
func cards(page string) map[string]string {
	out := map[string]string{}
	for _, m := range cardRe.FindAllStringSubmatch(page, -1) {
		out[html.UnescapeString(m[1])] = html.UnescapeString(m[2])
	}
	return out
}

// figure is a shown amount as the API writes it: separators and the
// dollar sign dropped.
func figure(s string) string {
	return strings.NewReplacer(",", "", "$", "").Replace(strings.TrimSpace(s))
}
