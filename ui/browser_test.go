package ui_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	fb "farebox"
	"farebox/ui/uitest"
)

// TestBrowser drives the dashboard in a real headless Chromium: a customer
// and the operator sign in, and what the pages show equals the API's
// answer for the same data; the grant form works, and is refused without
// its CSRF token; sign-out ends the session. Screenshots at 1280 and 390
// px are written as artifacts.
func TestBrowser(t *testing.T) {
	path := uitest.Chromium(t)
	e := newEnv(t)
	b := uitest.NewTab(t, path, e.URL)
	b.Small = true // the README's pictures

	// The sign-in: one field, submitted with Enter.
	b.Open("/", "#secret")
	if n := uitest.Eval[int](b, `document.querySelectorAll("form input:not([type=hidden])").length`); n != 1 {
		t.Fatalf("the sign-in form has %d fields; want 1", n)
	}
	if l := b.Text(`label[for=secret]`); l != "API key or admin token" {
		t.Fatalf("the field's label is %q", l)
	}
	b.Shot("signin")
	b.Do(chromedp.SendKeys(chromedp.CSS("#secret"), e.acmeKey+"\r"), chromedp.WaitVisible(chromedp.CSS(`[data-figure=available]`)))
	if loc := b.Location(); loc != "/ui/account" {
		t.Fatalf("after the customer's sign-in: at %s", loc)
	}
	if strings.Contains(uitest.Eval[string](b, `document.documentElement.outerHTML`), e.acmeKey) {
		t.Fatal("the page shows the key signed in with")
	}

	// The customer's figures equal the API's.
	var bal struct {
		Available, Held, Debt string
		Lots                  []struct{ ID, Source, Remaining, Amount string }
	}
	e.JSON("/api/v1/customers/acme/balance", &bal)
	for _, f := range []struct{ name, want string }{{"available", bal.Available}, {"held", bal.Held}, {"debt", bal.Debt}} {
		if got := uitest.Figure(b.Text(`[data-figure=` + f.name + `] .value`)); got != f.want {
			t.Errorf("%s on the page = %q; the API says %q", f.name, got, f.want)
		}
	}
	if n := uitest.Eval[int](b, `document.querySelectorAll("tr[data-lot]").length`); n != len(bal.Lots) || n < 3 {
		t.Errorf("the page lists %d lots; the API %d (want at least 3)", n, len(bal.Lots))
	}
	for _, l := range bal.Lots {
		row := `tr[data-lot="` + l.ID + `"] `
		if got := uitest.Figure(b.Text(row + `[data-col=remaining]`)); got != l.Remaining {
			t.Errorf("lot %s remaining on the page = %q; the API says %q", l.ID, got, l.Remaining)
		}
		if got := uitest.Figure(b.Text(row + `[data-col=amount]`)); got != l.Amount {
			t.Errorf("lot %s amount on the page = %q; the API says %q", l.ID, got, l.Amount)
		}
		if l.Source == "refund" && (!strings.Contains(b.Text(row+`.warn`), "expires in 3 days") || !strings.Contains(b.Text(`[data-expiring="`+l.ID+`"]`), "expire in 3 days, on 23 Nov 2026")) {
			t.Errorf("the refund lot (expiring 23 Nov, now %s) has no warning: %q", e.clock.Now().Format(time.DateOnly), b.Text(row))
		}
	}
	var econ struct {
		Totals struct {
			CreditsConsumed string `json:"credits_consumed"`
		}
	}
	e.JSON("/api/v1/reports/economics?customer=acme&group_by=day", &econ)
	if got := uitest.Figure(b.Text(`[data-figure=consumed] .value`)); got != econ.Totals.CreditsConsumed || got == "0" {
		t.Errorf("the 30-day total on the page = %q; the API's = %q", got, econ.Totals.CreditsConsumed)
	}
	var fc struct {
		Data []struct {
			DaysLeft  string    `json:"days_left"`
			RunsOutAt time.Time `json:"runs_out_at"`
		}
	}
	e.JSON("/api/v1/reports/forecast?customer=acme", &fc)
	if len(fc.Data) != 1 {
		t.Fatalf("forecast: %+v", fc)
	}
	if got := uitest.Eval[string](b, `document.querySelector("[data-days-left]").dataset.daysLeft`); got != fc.Data[0].DaysLeft {
		t.Errorf("days left on the page = %q; the API's = %q", got, fc.Data[0].DaysLeft)
	}
	if got := uitest.Eval[string](b, `document.querySelector("[data-runs-out]").dataset.runsOut`); got != fc.Data[0].RunsOutAt.Format(time.RFC3339) {
		t.Errorf("runs out on the page = %q; the API's = %s", got, fc.Data[0].RunsOutAt.Format(time.RFC3339))
	}
	if txt := b.Text(`[data-figure=forecast]`); !strings.Contains(txt, fc.Data[0].DaysLeft+" days") || !strings.Contains(txt, fc.Data[0].RunsOutAt.Format("2 Jan 2006")) {
		t.Errorf("the forecast reads %q", txt)
	}
	if bars := uitest.Eval[int](b, `document.querySelectorAll("svg.chart rect title").length`); bars < 10 {
		t.Errorf("the usage chart has %d bar segments; want one per model and day of usage", bars)
	}
	b.Shot("account")
	b.Open("/ui/account/requests", "table.requests")
	b.Shot("requests")

	// A key made on the page is shown once, and works.
	b.Open("/ui/account/keys", "#key-name")
	b.Do(chromedp.SendKeys(chromedp.CSS("#key-name"), "from the browser\r"), chromedp.WaitVisible(chromedp.CSS("#new-key")))
	secret := b.Text("#new-key")
	req, _ := http.NewRequest("GET", e.URL+"/v1/account/balance", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("the key made in the browser: %v %v", res, err)
	}
	b.Shot("keys")

	// Sign-out ends the session.
	b.Do(chromedp.Click(chromedp.CSS(`form[action="/ui/signout"] button`)), chromedp.WaitVisible(chromedp.CSS("#secret")))
	b.Open("/ui/account", "#secret")
	if loc := b.Location(); loc != "/" {
		t.Fatalf("after sign-out, /ui/account shows %s; want the sign-in", loc)
	}

	// The operator.
	b.Do(chromedp.SendKeys(chromedp.CSS("#secret"), adminToken+"\r"), chromedp.WaitVisible(chromedp.CSS(`[data-figure=revenue_usd]`)))
	if loc := b.Location(); loc != "/ui/admin" {
		t.Fatalf("after the operator's sign-in: at %s", loc)
	}
	var report struct {
		Totals map[string]any
		Rows   []map[string]any
	}
	e.JSON("/api/v1/reports/economics", &report)
	for _, k := range []string{"revenue_usd", "cost_usd", "margin_usd", "credits_consumed", "breakage_usd", "uncollected_usd", "partner_share_usd"} {
		if got := uitest.Figure(b.Text(`[data-figure=` + k + `] .value`)); got != report.Totals[k] {
			t.Errorf("%s on the page = %q; the API's total = %v", k, got, report.Totals[k])
		}
	}
	if got := uitest.Figure(b.Text(`[data-figure=margin_pct]`)); got != report.Totals["margin_pct"] {
		t.Errorf("margin %% on the page = %q; the API's = %v", got, report.Totals["margin_pct"])
	}
	if report.Totals["partner_share_usd"] == "0" || report.Totals["revenue_usd"] == "0" {
		t.Errorf("the data should have revenue and a partner share: %v", report.Totals)
	}
	for _, row := range report.Rows {
		sel := `table[data-table=customer] a[href="/ui/admin/customers/` + row["key"].(string) + `"]`
		got := uitest.Figure(uitest.Eval[string](b, `document.querySelector(`+uitest.JS(sel)+`).closest("tr").cells[4].textContent`))
		if got != row["margin_usd"] {
			t.Errorf("%s's margin in the table = %q; the API's = %v", row["key"], got, row["margin_usd"])
		}
	}
	// Sorting by a column (the script): margin, descending after two
	// clicks.
	b.Do(chromedp.Click(chromedp.CSS(`table[data-table=customer] th:nth-child(5)`)), chromedp.Click(chromedp.CSS(`table[data-table=customer] th:nth-child(5)`)))
	if first := b.Text(`table[data-table=customer] tbody tr:first-child td:first-child`); len(report.Rows) > 1 && first != topBy(report.Rows, "margin_usd") {
		t.Errorf("sorted by margin, descending, the first customer is %q; want %q", first, topBy(report.Rows, "margin_usd"))
	}
	b.Shot("economics")
	b.Open("/ui/admin/customers", "table")
	b.Shot("customers")

	// The grant form works…
	b.Open("/ui/admin/customers/acme", "#grant")
	before := len(bal.Lots)
	b.Do(chromedp.SendKeys(chromedp.CSS("#g-amount"), "123.456789"), chromedp.SetValue(chromedp.CSS("#g-source"), "promo"),
		chromedp.Click(chromedp.CSS(`#grant button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(".flash")))
	if flash := b.Text(".flash"); !strings.Contains(flash, "Granted 123.456789 credits") {
		t.Fatalf("after the grant: %q", flash)
	}
	e.JSON("/api/v1/customers/acme/balance", &bal)
	granted := false
	for _, l := range bal.Lots {
		granted = granted || (l.Amount == "123.456789" && l.Source == "promo")
	}
	if !granted || len(bal.Lots) != before+1 {
		t.Fatalf("after the grant the API lists %d lots (before %d): %+v", len(bal.Lots), before, bal.Lots)
	}
	if got := uitest.Figure(b.Text(`[data-figure=available] .value`)); got != bal.Available {
		t.Errorf("available on the customer's page after the grant = %q; the API's = %q", got, bal.Available)
	}
	b.Shot("customer")
	// …and is refused without its CSRF token.
	uitest.Eval[bool](b, `document.querySelector('#grant input[name=csrf]').remove(), true`)
	b.Do(chromedp.SendKeys(chromedp.CSS("#g-amount"), "5"), chromedp.Click(chromedp.CSS(`#grant button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(".error")))
	if msg := b.Text(".error"); !strings.Contains(msg, "CSRF") || !strings.Contains(b.Text("h1"), "403") {
		t.Fatalf("a grant without its CSRF token: %q / %q", b.Text("h1"), msg)
	}
	var after struct{ Lots []struct{ ID string } }
	e.JSON("/api/v1/customers/acme/balance", &after)
	if len(after.Lots) != len(bal.Lots) {
		t.Fatalf("the refused grant added a lot: %d lots, want %d", len(after.Lots), len(bal.Lots))
	}

	b.Open("/ui/admin/system", "[data-figure=journal_seq]")
	b.Do(chromedp.Click(chromedp.CSS(`form[action="/ui/admin/system/verify"] button`)), chromedp.WaitVisible(chromedp.CSS(".flash")))
	if v := b.Text(`[data-figure=verify] .value`); v != "consistent" {
		t.Errorf("verify from the dashboard: %q (%s)", v, b.Text(".flash"))
	}
	b.Shot("system")
	b.Do(chromedp.Click(chromedp.CSS(`form[action="/ui/signout"] button`)), chromedp.WaitVisible(chromedp.CSS("#secret")))
	b.Open("/ui/admin", "#secret")
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
