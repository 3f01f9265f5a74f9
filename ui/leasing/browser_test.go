package leasing_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"farebox/ui/uitest"
)

// TestBrowser opens the leasing pages in a headless Chromium, operator
// and customer: the figures the browser shows equal the API's, the
// period links and a sorted column work, nothing is wider than a phone's
// screen; screenshots at 1280 and 390 px go to $FAREBOX_ARTIFACTS (else a
// temporary directory).
func TestBrowser(t *testing.T) {
	path := uitest.Chromium(t)
	e := newEnv(t)
	b := uitest.NewTab(t, path, e.URL)
	now := e.clock.Now()

	b.Open("/", "#secret")
	b.Do(chromedp.SendKeys(chromedp.CSS("#secret"), adminToken+"\r"), chromedp.WaitVisible(chromedp.CSS(`[data-figure=revenue_usd]`)))
	b.Do(chromedp.Click(chromedp.CSS(`header nav a[href="/ui/admin/pools"]`)), chromedp.WaitVisible(chromedp.CSS(`table[data-table=pools]`)))
	useQ, econQ := windowQueries(now, 30)
	var u utilization
	e.JSON("/api/v1/pools/h100-eu/utilization?"+useQ, &u)
	row := `document.querySelector('table[data-table=pools] a[href^="/ui/admin/pools/h100-eu"]').closest("tr")`
	if got := figure(uitest.Eval[string](b, row+`.cells[6].textContent`)); got != pct(u.UtilizationPct) {
		t.Errorf("h100-eu's utilization in the browser = %q; the API's = %q", got, pct(u.UtilizationPct))
	}
	var rep struct{ Rows []econRow }
	e.JSON("/api/v1/reports/economics?group_by=provider&"+econQ, &rep)
	for _, r := range rep.Rows {
		if r.Key == "h100-eu" {
			if got := figure(uitest.Eval[string](b, row+`.cells[9].textContent`)); got != r.RevenueUSD {
				t.Errorf("h100-eu's revenue in the browser = %q; the API's = %q", got, r.RevenueUSD)
			}
		}
	}
	// Sorted by GPUs, descending after two clicks: h100-eu (16) first.
	b.Do(chromedp.Click(chromedp.CSS(`table[data-table=pools] th:nth-child(3)`)), chromedp.Click(chromedp.CSS(`table[data-table=pools] th:nth-child(3)`)))
	if first := b.Text(`table[data-table=pools] tbody tr:first-child td:first-child`); first != "h100-eu" {
		t.Errorf("sorted by GPUs, descending, the first pool is %q", first)
	}
	b.Shot("pools")
	// On a phone each pool reads as label/value lines, nothing beyond the
	// table's box; at 1280 px it is the table, its header shown.
	const pools = `table[data-table=pools]`
	if !b.Fits(pools) || uitest.Eval[string](b, `getComputedStyle(document.querySelector("table[data-table=pools] thead")).display`) == "none" {
		t.Error("at 1280 px the pools table does not fit its box, or has no header")
	}
	b.Resize(390)
	if !b.Fits(pools) {
		t.Error("at 390 px the pools table's cells go beyond its box: a phone scrolls sideways to read them")
	}
	if got := b.Text(pools + ` td[data-label="Margin"]`); !strings.HasPrefix(got, "-$") {
		t.Errorf("at 390 px h100-eu's margin reads %q", got)
	}
	b.Resize(1280)

	b.Do(chromedp.Click(chromedp.CSS(`table[data-table=pools] a[href^="/ui/admin/pools/h100-eu"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-figure=sellable]`)))
	if got := figure(b.Text(`[data-figure=idle_gpu_hours] .value`)); got != u.IdleGPUHours {
		t.Errorf("idle GPU-hours in the browser = %q; the API's = %q", got, u.IdleGPUHours)
	}
	if n := uitest.Eval[int](b, `document.querySelectorAll("svg.chart.wide rect title").length`); n < 168 {
		t.Errorf("the availability chart has %d bar segments; want at least one per hour of 7 days", n)
	}
	b.Do(chromedp.Click(chromedp.CSS(`nav.links a[href$="days=7"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-figure=sellable]`)))
	useQ7, _ := windowQueries(now, 7)
	var u7 utilization
	e.JSON("/api/v1/pools/h100-eu/utilization?"+useQ7, &u7)
	if got := figure(b.Text(`[data-figure=utilization_pct] .value`)); got != pct(u7.UtilizationPct) || u7.UtilizationPct == nil || *u7.UtilizationPct == *u.UtilizationPct {
		t.Errorf("utilization over 7 days in the browser = %q; the API's = %v (30 days: %v)", got, pct(u7.UtilizationPct), pct(u.UtilizationPct))
	}
	b.Shot("pool")

	b.Open("/ui/admin/leases?state=all", `table[data-table=leases]`)
	var all struct{ Data []lease }
	e.JSON("/api/v1/leases?limit=50", &all) // the page's 50
	if n := uitest.Eval[int](b, `document.querySelectorAll("table[data-table=leases] tbody tr").length`); n != len(all.Data) {
		t.Errorf("the browser lists %d leases; the API %d", n, len(all.Data))
	}
	b.Shot("leases")
	// Nine or eleven columns: on a phone each lease reads as label/value lines.
	b.Resize(390)
	if !b.Fits(`table[data-table=leases]`) {
		t.Error("at 390 px the leases table's cells go beyond its box: a phone scrolls sideways to read them")
	}
	b.Resize(1280)
	b.Do(chromedp.Click(chromedp.CSS(`form[action="/ui/signout"] button`)), chromedp.WaitVisible(chromedp.CSS("#secret")))

	b.Do(chromedp.SendKeys(chromedp.CSS("#secret"), e.acmeKey+"\r"), chromedp.WaitVisible(chromedp.CSS(`[data-figure=available]`)))
	b.Do(chromedp.Click(chromedp.CSS(`header nav a[href="/ui/account/leases"]`)), chromedp.WaitVisible(chromedp.CSS(`table[data-table=holds]`)))
	var bal struct{ Held string }
	e.JSON("/api/v1/customers/acme/balance", &bal)
	if got := figure(b.Text(`[data-figure=held] .value`)); got != bal.Held {
		t.Errorf("acme's held in the browser = %q; the API's = %q", got, bal.Held)
	}
	if txt := b.Text("main"); !strings.Contains(txt, notLease) {
		t.Error("acme's API hold is not listed")
	}
	b.Do(chromedp.Click(chromedp.CSS(`nav.links a[href$="state=all"]`)), chromedp.WaitVisible(chromedp.CSS(`table[data-table=leases]`)))
	b.Shot("account-leases")
}
