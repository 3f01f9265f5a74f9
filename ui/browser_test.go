package ui_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	fb "farebox"
)

// chromium finds Debian's chromium: a missing one skips the browser test,
// except under CI, where it fails (like a missing PostgreSQL).
func chromium(t *testing.T) string {
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is missing (apt-get install chromium): the browser test cannot run")
	}
	t.Skip("chromium is not installed (apt-get install chromium)")
	return ""
}

// artifacts is where screenshots go: $FAREBOX_ARTIFACTS, else a temp dir.
func artifacts(t *testing.T) string {
	dir := os.Getenv("FAREBOX_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// tab drives one browser tab.
type tab struct {
	t   *testing.T
	ctx context.Context
	e   *env
	dir string
}

func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

func eval[T any](b *tab, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// text is the trimmed text of the first element sel matches ("" when none).
func (b *tab) text(sel string) string {
	b.t.Helper()
	q, _ := json.Marshal(sel)
	return eval[string](b, `(document.querySelector(`+string(q)+`) || {textContent: ""}).textContent.trim()`)
}

func (b *tab) location() string {
	b.t.Helper()
	return strings.TrimPrefix(eval[string](b, `location.href`), b.e.url)
}

func (b *tab) open(path, waitFor string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.e.url+path), chromedp.WaitVisible(chromedp.CSS(waitFor)))
}

// shot writes full-page screenshots of the page at 1280 and 390 px wide.
func (b *tab) shot(name string) {
	b.t.Helper()
	for _, w := range []struct {
		width, height int64
		mobile        bool
	}{{1280, 900, false}, {390, 844, true}} {
		emulate := chromedp.EmulateViewport(w.width, w.height)
		if w.mobile {
			emulate = chromedp.EmulateViewport(w.width, w.height, chromedp.EmulateMobile, chromedp.EmulatePortrait)
		}
		b.do(emulate, chromedp.Sleep(100*time.Millisecond))
		ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			b.t.Fatal(err)
		}
		// The layout must fit the width: no page wider than the screen
		// (tables and charts scroll inside their own boxes).
		if sw := eval[int64](b, `document.documentElement.scrollWidth`); sw > w.width {
			b.t.Errorf("%s at %d px: the page is %d px wide", name, w.width, sw)
		}
		path := filepath.Join(b.dir, name+"-"+itoa(w.width)+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	// And the top of the page at 1280 px, drawn at 0.6 scale: the small
	// pictures of the README (docs/img) are these.
	b.do(chromedp.EmulateViewport(1280, 760, chromedp.EmulateScale(0.6)), chromedp.Sleep(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	cancel()
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, name+"-small.png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.do(chromedp.EmulateViewport(1280, 900))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// figure is a displayed amount as the API writes it: thousands separators,
// the dollar sign and the percent sign dropped.
func figure(s string) string {
	return strings.NewReplacer(",", "", "$", "", "%", "").Replace(strings.TrimSpace(s))
}

// TestBrowser drives the dashboard in a real headless Chromium: a customer
// and the operator sign in, and what the pages show equals the API's
// answer for the same data; the grant form works, and is refused without
// its CSRF token; sign-out ends the session. Screenshots at 1280 and 390
// px are written as artifacts.
func TestBrowser(t *testing.T) {
	path := chromium(t)
	e := newEnv(t)
	dir := artifacts(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatal(err)
	}
	b := &tab{t: t, ctx: ctx, e: e, dir: dir}

	// The sign-in: one field, submitted with Enter.
	b.open("/", "#secret")
	if n := eval[int](b, `document.querySelectorAll("form input:not([type=hidden])").length`); n != 1 {
		t.Fatalf("the sign-in form has %d fields; want 1", n)
	}
	if l := b.text(`label[for=secret]`); l != "API key or admin token" {
		t.Fatalf("the field's label is %q", l)
	}
	b.shot("signin")
	b.do(chromedp.SendKeys(chromedp.CSS("#secret"), e.acmeKey+"\r"), chromedp.WaitVisible(chromedp.CSS(`[data-figure=available]`)))
	if loc := b.location(); loc != "/ui/account" {
		t.Fatalf("after the customer's sign-in: at %s", loc)
	}
	if strings.Contains(eval[string](b, `document.documentElement.outerHTML`), e.acmeKey) {
		t.Fatal("the page shows the key signed in with")
	}

	// The customer's figures equal the API's.
	var bal struct {
		Available, Held, Debt string
		Lots                  []struct{ ID, Source, Remaining, Amount string }
	}
	e.json("/api/v1/customers/acme/balance", &bal)
	for _, f := range []struct{ name, want string }{{"available", bal.Available}, {"held", bal.Held}, {"debt", bal.Debt}} {
		if got := figure(b.text(`[data-figure=` + f.name + `] .value`)); got != f.want {
			t.Errorf("%s on the page = %q; the API says %q", f.name, got, f.want)
		}
	}
	if n := eval[int](b, `document.querySelectorAll("tr[data-lot]").length`); n != len(bal.Lots) || n < 3 {
		t.Errorf("the page lists %d lots; the API %d (want at least 3)", n, len(bal.Lots))
	}
	for _, l := range bal.Lots {
		row := `tr[data-lot="` + l.ID + `"] `
		if got := figure(b.text(row + `[data-col=remaining]`)); got != l.Remaining {
			t.Errorf("lot %s remaining on the page = %q; the API says %q", l.ID, got, l.Remaining)
		}
		if got := figure(b.text(row + `[data-col=amount]`)); got != l.Amount {
			t.Errorf("lot %s amount on the page = %q; the API says %q", l.ID, got, l.Amount)
		}
		if l.Source == "refund" && (!strings.Contains(b.text(row+`.warn`), "expires in 3 days") || !strings.Contains(b.text(`[data-expiring="`+l.ID+`"]`), "expire in 3 days, on 23 Nov 2026")) {
			t.Errorf("the refund lot (expiring 23 Nov, now %s) has no warning: %q", e.clock.Now().Format(time.DateOnly), b.text(row))
		}
	}
	var econ struct {
		Totals struct {
			CreditsConsumed string `json:"credits_consumed"`
		}
	}
	e.json("/api/v1/reports/economics?customer=acme&group_by=day", &econ)
	if got := figure(b.text(`[data-figure=consumed] .value`)); got != econ.Totals.CreditsConsumed || got == "0" {
		t.Errorf("the 30-day total on the page = %q; the API's = %q", got, econ.Totals.CreditsConsumed)
	}
	var fc struct {
		Data []struct {
			DaysLeft  string    `json:"days_left"`
			RunsOutAt time.Time `json:"runs_out_at"`
		}
	}
	e.json("/api/v1/reports/forecast?customer=acme", &fc)
	if len(fc.Data) != 1 {
		t.Fatalf("forecast: %+v", fc)
	}
	if got := eval[string](b, `document.querySelector("[data-days-left]").dataset.daysLeft`); got != fc.Data[0].DaysLeft {
		t.Errorf("days left on the page = %q; the API's = %q", got, fc.Data[0].DaysLeft)
	}
	if got := eval[string](b, `document.querySelector("[data-runs-out]").dataset.runsOut`); got != fc.Data[0].RunsOutAt.Format(time.RFC3339) {
		t.Errorf("runs out on the page = %q; the API's = %s", got, fc.Data[0].RunsOutAt.Format(time.RFC3339))
	}
	if txt := b.text(`[data-figure=forecast]`); !strings.Contains(txt, fc.Data[0].DaysLeft+" days") || !strings.Contains(txt, fc.Data[0].RunsOutAt.Format("2 Jan 2006")) {
		t.Errorf("the forecast reads %q", txt)
	}
	if bars := eval[int](b, `document.querySelectorAll("svg.chart rect title").length`); bars < 10 {
		t.Errorf("the usage chart has %d bar segments; want one per model and day of usage", bars)
	}
	b.shot("account")
	b.open("/ui/account/requests", "table.requests")
	b.shot("requests")

	// A key made on the page is shown once, and works.
	b.open("/ui/account/keys", "#key-name")
	b.do(chromedp.SendKeys(chromedp.CSS("#key-name"), "from the browser\r"), chromedp.WaitVisible(chromedp.CSS("#new-key")))
	secret := b.text("#new-key")
	req, _ := http.NewRequest("GET", e.url+"/v1/account/balance", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("the key made in the browser: %v %v", res, err)
	}
	b.shot("keys")

	// Sign-out ends the session.
	b.do(chromedp.Click(chromedp.CSS(`form[action="/ui/signout"] button`)), chromedp.WaitVisible(chromedp.CSS("#secret")))
	b.open("/ui/account", "#secret")
	if loc := b.location(); loc != "/" {
		t.Fatalf("after sign-out, /ui/account shows %s; want the sign-in", loc)
	}

	// The operator.
	b.do(chromedp.SendKeys(chromedp.CSS("#secret"), adminToken+"\r"), chromedp.WaitVisible(chromedp.CSS(`[data-figure=revenue_usd]`)))
	if loc := b.location(); loc != "/ui/admin" {
		t.Fatalf("after the operator's sign-in: at %s", loc)
	}
	var report struct {
		Totals map[string]any
		Rows   []map[string]any
	}
	e.json("/api/v1/reports/economics", &report)
	for _, k := range []string{"revenue_usd", "cost_usd", "margin_usd", "credits_consumed", "breakage_usd", "uncollected_usd", "partner_share_usd"} {
		if got := figure(b.text(`[data-figure=` + k + `] .value`)); got != report.Totals[k] {
			t.Errorf("%s on the page = %q; the API's total = %v", k, got, report.Totals[k])
		}
	}
	if got := figure(b.text(`[data-figure=margin_pct]`)); got != report.Totals["margin_pct"] {
		t.Errorf("margin %% on the page = %q; the API's = %v", got, report.Totals["margin_pct"])
	}
	if report.Totals["partner_share_usd"] == "0" || report.Totals["revenue_usd"] == "0" {
		t.Errorf("the data should have revenue and a partner share: %v", report.Totals)
	}
	for _, row := range report.Rows {
		sel := `table[data-table=customer] a[href="/ui/admin/customers/` + row["key"].(string) + `"]`
		got := figure(eval[string](b, `document.querySelector(`+quote(sel)+`).closest("tr").cells[4].textContent`))
		if got != row["margin_usd"] {
			t.Errorf("%s's margin in the table = %q; the API's = %v", row["key"], got, row["margin_usd"])
		}
	}
	// Sorting by a column (the script): margin, descending after two
	// clicks.
	b.do(chromedp.Click(chromedp.CSS(`table[data-table=customer] th:nth-child(5)`)), chromedp.Click(chromedp.CSS(`table[data-table=customer] th:nth-child(5)`)))
	if first := b.text(`table[data-table=customer] tbody tr:first-child td:first-child`); len(report.Rows) > 1 && first != topBy(report.Rows, "margin_usd") {
		t.Errorf("sorted by margin, descending, the first customer is %q; want %q", first, topBy(report.Rows, "margin_usd"))
	}
	b.shot("economics")
	b.open("/ui/admin/customers", "table")
	b.shot("customers")

	// The grant form works…
	b.open("/ui/admin/customers/acme", "#grant")
	before := len(bal.Lots)
	b.do(chromedp.SendKeys(chromedp.CSS("#g-amount"), "123.456789"), chromedp.SetValue(chromedp.CSS("#g-source"), "promo"),
		chromedp.Click(chromedp.CSS(`#grant button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(".flash")))
	if flash := b.text(".flash"); !strings.Contains(flash, "Granted 123.456789 credits") {
		t.Fatalf("after the grant: %q", flash)
	}
	e.json("/api/v1/customers/acme/balance", &bal)
	granted := false
	for _, l := range bal.Lots {
		granted = granted || (l.Amount == "123.456789" && l.Source == "promo")
	}
	if !granted || len(bal.Lots) != before+1 {
		t.Fatalf("after the grant the API lists %d lots (before %d): %+v", len(bal.Lots), before, bal.Lots)
	}
	if got := figure(b.text(`[data-figure=available] .value`)); got != bal.Available {
		t.Errorf("available on the customer's page after the grant = %q; the API's = %q", got, bal.Available)
	}
	b.shot("customer")
	// …and is refused without its CSRF token.
	eval[bool](b, `document.querySelector('#grant input[name=csrf]').remove(), true`)
	b.do(chromedp.SendKeys(chromedp.CSS("#g-amount"), "5"), chromedp.Click(chromedp.CSS(`#grant button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(".error")))
	if msg := b.text(".error"); !strings.Contains(msg, "CSRF") || !strings.Contains(b.text("h1"), "403") {
		t.Fatalf("a grant without its CSRF token: %q / %q", b.text("h1"), msg)
	}
	var after struct{ Lots []struct{ ID string } }
	e.json("/api/v1/customers/acme/balance", &after)
	if len(after.Lots) != len(bal.Lots) {
		t.Fatalf("the refused grant added a lot: %d lots, want %d", len(after.Lots), len(bal.Lots))
	}

	b.open("/ui/admin/system", "[data-figure=journal_seq]")
	b.do(chromedp.Click(chromedp.CSS(`form[action="/ui/admin/system/verify"] button`)), chromedp.WaitVisible(chromedp.CSS(".flash")))
	if v := b.text(`[data-figure=verify] .value`); v != "consistent" {
		t.Errorf("verify from the dashboard: %q (%s)", v, b.text(".flash"))
	}
	b.shot("system")
	b.do(chromedp.Click(chromedp.CSS(`form[action="/ui/signout"] button`)), chromedp.WaitVisible(chromedp.CSS("#secret")))
	b.open("/ui/admin", "#secret")
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// topBy is the key of the row with the largest value of an amount field.
func topBy(rows []map[string]any, field string) string {
	best, key := "", ""
	for _, r := range rows {
		v := r[field].(string)
		if key == "" || amountLess(best, v) {
			best, key = v, r["key"].(string)
		}
	}
	return key
}

func amountLess(a, b string) bool {
	x, err := fb.ParseUSD(a)
	y, err2 := fb.ParseUSD(b)
	if err != nil || err2 != nil {
		panic("not amounts: " + a + ", " + b)
	}
	return x < y
}
