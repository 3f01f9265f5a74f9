package leasing_test

import (
	"context"
	"html"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/app"
	"farebox/fakeclock"
	"farebox/routing"
	"farebox/ui/uitest"
)

const adminToken = "leasing-ui-test-admin-token-0123456789abcdef"

var t0 = time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)

// env is Farebox on SQLite behind a real HTTP server, on a fake clock,
// after two days and two hours of leasing on two pools: h100-eu (16 GPUs,
// 4 kept for own inference, which served some tokens) and a100-us (8);
// acme, beta and gamma lease reserved, on-demand and spot GPUs, one spot
// lease pre-empted by a reserved one, beta's on-demand lease ended by a
// refused hold, acme's a100 lease ended on request and a reserved one
// still to come; acme also holds credit through the API.
//
// The tests share one env, built once (each billing step is a durable
// commit: seconds under the race detector): each reads it, and one adds
// leases of its own customer (delta) on a pool of its own (bulk), which
// the others leave out of what they compare.
type env struct {
	uitest.Site
	srv              *uitest.Server
	dir              string
	clock            *fakeclock.Clock
	acmeKey, betaKey string
	ids              map[string]string // the scenario's leases by name
}

var shared struct {
	once   sync.Once
	e      *env
	failed bool
}

func TestMain(m *testing.M) {
	code := m.Run()
	if e := shared.e; e != nil {
		e.srv.Close()
		os.RemoveAll(e.dir)
	}
	os.Exit(code)
}

// newEnv is the shared env, given to t.
func newEnv(t *testing.T) *env {
	t.Helper()
	shared.once.Do(func() {
		shared.failed = true // until build returns: a t.Fatal in it leaves it so
		shared.e = build(t)
		shared.failed = false
	})
	if shared.failed {
		t.Fatal("the scenario could not be built: see the first test's failure")
	}
	e := *shared.e
	e.T = t
	return &e
}

func build(t *testing.T) *env {
	t.Helper()
	dir, err := os.MkdirTemp("", "farebox-leasing-ui-")
	if err != nil {
		t.Fatal(err)
	}
	clock := fakeclock.New(t0)
	srv, err := uitest.Start(app.Config{DataDir: dir, AdminToken: adminToken, Clock: clock,
		Deployments: []*routing.Deployment{{Name: "gpu/llama", Provider: "gpu", Type: routing.TypeOpenAI, Model: "llama", Upstream: "llama",
			BaseURL: "http://127.0.0.1:1/v1", GPUs: 4, TokensPerSecond: 2000}}})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	a := srv.App
	e := &env{Site: uitest.Site{T: t, URL: srv.URL, Token: adminToken}, srv: srv, dir: dir, clock: clock, ids: map[string]string{}}
	shared.e = e // closed by TestMain, built or not
	e.API("POST", "/api/v1/pools", `{"id": "h100-eu", "gpu_type": "H100", "region": "eu", "gpus": 16, "cost_usd_per_gpu_hour": "1.9",
		"reserved_for_inference": 4, "deployments": ["gpu/llama"], "prices": {"on_demand": "250", "reserved": "190", "spot": "120"}}`, 201)
	e.API("POST", "/api/v1/pools", `{"id": "a100-us", "gpu_type": "A100", "region": "us", "gpus": 8, "cost_usd_per_gpu_hour": "1.1",
		"prices": {"on_demand": "150", "reserved": "100", "spot": "60"}}`, 201)
	e.API("PATCH", "/api/v1/pools/a100-us", `{"prices": {"on_demand": "160"}, "effective_from": "2026-11-30T00:00:00Z"}`, 200)
	for _, c := range []struct{ id, credits, paid string }{{"acme", "100000", "1000"}, {"beta", "10000", "50"}, {"gamma", "5000", "50"}} {
		e.API("POST", "/api/v1/customers", `{"id": "`+c.id+`"}`, 201)
		e.API("POST", "/api/v1/customers/"+c.id+"/grants", `{"amount": "`+c.credits+`", "paid_usd": "`+c.paid+`"}`, 201)
	}
	e.acmeKey, _ = e.Key("acme", `{"name": "dashboard"}`)
	e.betaKey, _ = e.Key("beta", `{"name": "dashboard"}`)

	book := func(name, body string) {
		var l struct{ ID string }
		e.Decode(e.API("POST", "/api/v1/leases", body, 201), &l)
		e.ids[name] = l.ID
	}
	book("gamma-spot", `{"customer": "gamma", "pool": "h100-eu", "gpus": 8, "class": "spot"}`)
	book("beta-od", `{"customer": "beta", "pool": "h100-eu", "gpus": 2, "class": "on_demand"}`)
	book("acme-res", `{"customer": "acme", "pool": "h100-eu", "gpus": 4, "class": "reserved", "start": "2026-11-29T01:00:00Z", "end": "2026-11-29T05:00:00Z"}`)
	book("acme-od", `{"customer": "acme", "pool": "a100-us", "gpus": 2, "class": "on_demand"}`)
	book("beta-spot", `{"customer": "beta", "pool": "a100-us", "gpus": 4, "class": "spot", "start": "2026-11-29T02:00:00Z"}`)
	book("acme-later", `{"customer": "acme", "pool": "a100-us", "gpus": 2, "class": "reserved", "start": "2026-12-02T10:00:00Z", "end": "2026-12-02T22:00:00Z"}`)
	book("gamma-a100", `{"customer": "gamma", "pool": "a100-us", "gpus": 1, "class": "on_demand", "start": "2026-11-30T20:00:00Z"}`)
	book("acme-h100", `{"customer": "acme", "pool": "h100-eu", "gpus": 1, "class": "on_demand", "start": "2026-11-30T12:00:00Z"}`)

	// Own inference on h100-eu: 3.6M tokens at 2,000 a second on 4 GPUs.
	if _, err := a.Engine.Submit(context.Background(), fb.Op{Kind: fb.OpDebit, Customer: "acme", Amount: 2 * fb.Micro, Key: "u1",
		Usage: &fb.Usage{ID: "req-1", Source: "gateway", Customer: "acme", Model: "llama", Provider: "gpu", Deployment: "gpu/llama", At: t0.Add(30 * time.Hour),
			Quantities: fb.Quantities{InputTokens: 3_000_000, OutputTokens: 600_000}, Credits: 2 * fb.Micro, CostUSD: 150_000}}); err != nil {
		t.Fatal(err)
	}
	// The billing job at the instants it has work for 50 hours: 5 minutes
	// before each hour (the next hour's holds) and on it (captures,
	// starts, ends); acme's a100 lease ends on request at +26h30m.
	tick := func(d time.Duration) {
		clock.Set(t0.Add(d))
		if _, err := a.Compute.Tick(context.Background()); err != nil {
			t.Fatalf("tick at +%s: %v", d, err)
		}
	}
	for h := time.Hour; h <= 50*time.Hour; h += time.Hour {
		tick(h - 5*time.Minute)
		tick(h)
		if h == 26*time.Hour {
			clock.Set(t0.Add(h + 30*time.Minute))
			e.API("POST", "/api/v1/leases/"+e.ids["acme-od"]+"/end", "", 200)
		}
	}
	e.API("POST", "/api/v1/holds", `{"customer": "acme", "amount": "3", "ttl_seconds": 600, "idempotency_key": "job-7"}`, 201)
	var beta struct{ State, Reason string }
	e.JSON("/api/v1/leases/"+e.ids["beta-od"], &beta)
	var gamma struct{ State, Reason string }
	e.JSON("/api/v1/leases/"+e.ids["gamma-spot"], &gamma)
	if beta.Reason != fb.ReasonInsufficientCredits || gamma.State != "preempted" {
		t.Fatalf("the scenario went otherwise: beta's on-demand lease %+v, gamma's spot lease %+v", beta, gamma)
	}
	return e
}

// figure is a shown amount as the API writes it: thousands separators,
// dollar and percent signs and units dropped.
func figure(s string) string {
	return uitest.Figure(strings.TrimSuffix(strings.TrimSpace(s), " GPU-h"))
}

var tags = regexp.MustCompile(`<[^>]*>`)

func text(s string) string {
	return strings.TrimSpace(html.UnescapeString(tags.ReplaceAllString(s, "")))
}

// card is the value of the card named figure on a page.
func card(t *testing.T, page, name string) string {
	t.Helper()
	re := regexp.MustCompile(`data-figure="` + regexp.QuoteMeta(name) + `"><div class="label">[^<]*</div><div class="value">([^<]*)</div>(?:<div class="note">([^<]*)</div>)?`)
	m := re.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no card %q on the page", name)
	}
	return html.UnescapeString(m[1])
}

var (
	rowRe  = regexp.MustCompile(`(?s)<tr>(.*?)</tr>`)
	cellRe = regexp.MustCompile(`(?s)<td[^>]*>(.*?)</td>`)
	headRe = regexp.MustCompile(`(?s)<th[^>]*>(.*?)</th>`)
)

// table is the rows of the table named name, each a map from its column's
// label to the cell's text.
func table(t *testing.T, page, name string) []map[string]string {
	t.Helper()
	i := strings.Index(page, `data-table="`+name+`"`)
	if i < 0 {
		t.Fatalf("no table %q on the page", name)
	}
	body := page[i:]
	body = body[:strings.Index(body, "</table>")]
	head, rows, _ := strings.Cut(body, "</thead>")
	var cols []string
	for _, m := range headRe.FindAllStringSubmatch(head, -1) {
		cols = append(cols, text(m[1]))
	}
	var out []map[string]string
	for _, r := range rowRe.FindAllStringSubmatch(rows, -1) {
		if strings.Contains(r[1], `class="empty"`) {
			continue
		}
		row := map[string]string{}
		for j, c := range cellRe.FindAllStringSubmatch(r[1], -1) {
			row[cols[j]] = text(c[1])
		}
		out = append(out, row)
	}
	return out
}

// find is the row whose column col reads key.
func find(t *testing.T, rows []map[string]string, col, key string) map[string]string {
	t.Helper()
	for _, r := range rows {
		if r[col] == key {
			return r
		}
	}
	t.Fatalf("no row with %s %q in %v", col, key, rows)
	return nil
}

func check(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s on the page = %q; the API's = %q", what, got, want)
	}
}

func day(tm time.Time) string { return tm.Format(time.DateOnly) }
