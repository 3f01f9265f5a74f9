package leasing_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds Debian's chromium: a missing one skips the browser test,
// except under CI, where it fails (as in package ui's browser test).
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

type tab struct {
	t   *testing.T
	ctx context.Context
	e   *env
	dir string
}

func (b *tab) run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatal(err)
	}
}

func evalJS[T any](b *tab, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return v
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	q, _ := json.Marshal(sel)
	return evalJS[string](b, `(document.querySelector(`+string(q)+`) || {textContent: ""}).textContent.trim()`)
}

func (b *tab) open(path, waitFor string) {
	b.t.Helper()
	b.run(chromedp.Navigate(b.e.url+path), chromedp.WaitVisible(chromedp.CSS(waitFor)))
}

// shot writes full-page screenshots at 1280 and 390 px wide, and fails a
// page wider than the screen (tables scroll in their own boxes).
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
		b.run(emulate, chromedp.Sleep(100*time.Millisecond))
		ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			b.t.Fatal(err)
		}
		if sw := evalJS[int64](b, `document.documentElement.scrollWidth`); sw > w.width {
			b.t.Errorf("%s at %d px: the page is %d px wide", name, w.width, sw)
		}
		if err := os.WriteFile(filepath.Join(b.dir, name+"-"+strconv.FormatInt(w.width, 10)+".png"), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.run(chromedp.EmulateViewport(1280, 900))
}

// TestBrowser opens the leasing pages in a headless Chromium, operator
// and customer: the figures the browser shows equal the API's, the
// period links and a sorted column work, nothing is wider than a phone's
// screen; screenshots at 1280 and 390 px go to $FAREBOX_ARTIFACTS (else a
// temporary directory).
func TestBrowser(t *testing.T) {
	path := chromium(t)
	e := newEnv(t)
	dir := os.Getenv("FAREBOX_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	b := &tab{t: t, ctx: ctx, e: e, dir: dir}
	now := e.clock.Now()

	b.open("/", "#secret")
	b.run(chromedp.SendKeys(chromedp.CSS("#secret"), adminToken+"\r"), chromedp.WaitVisible(chromedp.CSS(`[data-figure=revenue_usd]`)))
	b.run(chromedp.Click(chromedp.CSS(`header nav a[href="/ui/admin/pools"]`)), chromedp.WaitVisible(chromedp.CSS(`table[data-table=pools]`)))
	useQ, econQ := windowQueries(now, 30)
	var u utilization
	e.json("/api/v1/pools/h100-eu/utilization?"+useQ, &u)
	row := `document.querySelector('table[data-table=pools] a[href^="/ui/admin/pools/h100-eu"]').closest("tr")`
	if got := figure(evalJS[string](b, row+`.cells[6].textContent`)); got != pct(u.UtilizationPct) {
		t.Errorf("h100-eu's utilization in the browser = %q; the API's = %q", got, pct(u.UtilizationPct))
	}
	var rep struct{ Rows []econRow }
	e.json("/api/v1/reports/economics?group_by=provider&"+econQ, &rep)
	for _, r := range rep.Rows {
		if r.Key == "h100-eu" {
			if got := figure(evalJS[string](b, row+`.cells[9].textContent`)); got != r.RevenueUSD {
				t.Errorf("h100-eu's revenue in the browser = %q; the API's = %q", got, r.RevenueUSD)
			}
		}
	}
	// Sorted by GPUs, descending after two clicks: h100-eu (16) first.
	b.run(chromedp.Click(chromedp.CSS(`table[data-table=pools] th:nth-child(3)`)), chromedp.Click(chromedp.CSS(`table[data-table=pools] th:nth-child(3)`)))
	if first := b.text(`table[data-table=pools] tbody tr:first-child td:first-child`); first != "h100-eu" {
		t.Errorf("sorted by GPUs, descending, the first pool is %q", first)
	}
	b.shot("pools")

	b.run(chromedp.Click(chromedp.CSS(`table[data-table=pools] a[href^="/ui/admin/pools/h100-eu"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-figure=sellable]`)))
	if got := figure(b.text(`[data-figure=idle_gpu_hours] .value`)); got != u.IdleGPUHours {
		t.Errorf("idle GPU-hours in the browser = %q; the API's = %q", got, u.IdleGPUHours)
	}
	if n := evalJS[int](b, `document.querySelectorAll("svg.chart.wide rect title").length`); n < 168 {
		t.Errorf("the availability chart has %d bar segments; want at least one per hour of 7 days", n)
	}
	b.run(chromedp.Click(chromedp.CSS(`nav.links a[href$="days=7"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-figure=sellable]`)))
	useQ7, _ := windowQueries(now, 7)
	var u7 utilization
	e.json("/api/v1/pools/h100-eu/utilization?"+useQ7, &u7)
	if got := figure(b.text(`[data-figure=utilization_pct] .value`)); got != pct(u7.UtilizationPct) || u7.UtilizationPct == nil || *u7.UtilizationPct == *u.UtilizationPct {
		t.Errorf("utilization over 7 days in the browser = %q; the API's = %v (30 days: %v)", got, pct(u7.UtilizationPct), pct(u.UtilizationPct))
	}
	b.shot("pool")

	b.open("/ui/admin/leases?state=all", `table[data-table=leases]`)
	var all struct{ Data []lease }
	e.json("/api/v1/leases?limit=50", &all) // the page's 50
	if n := evalJS[int](b, `document.querySelectorAll("table[data-table=leases] tbody tr").length`); n != len(all.Data) {
		t.Errorf("the browser lists %d leases; the API %d", n, len(all.Data))
	}
	b.shot("leases")
	b.run(chromedp.Click(chromedp.CSS(`form[action="/ui/signout"] button`)), chromedp.WaitVisible(chromedp.CSS("#secret")))

	b.run(chromedp.SendKeys(chromedp.CSS("#secret"), e.acmeKey+"\r"), chromedp.WaitVisible(chromedp.CSS(`[data-figure=available]`)))
	b.run(chromedp.Click(chromedp.CSS(`header nav a[href="/ui/account/leases"]`)), chromedp.WaitVisible(chromedp.CSS(`table[data-table=holds]`)))
	var bal struct{ Held string }
	e.json("/api/v1/customers/acme/balance", &bal)
	if got := figure(b.text(`[data-figure=held] .value`)); got != bal.Held {
		t.Errorf("acme's held in the browser = %q; the API's = %q", got, bal.Held)
	}
	if txt := b.text("main"); !strings.Contains(txt, notLease) {
		t.Error("acme's API hold is not listed")
	}
	b.run(chromedp.Click(chromedp.CSS(`nav.links a[href$="state=all"]`)), chromedp.WaitVisible(chromedp.CSS(`table[data-table=leases]`)))
	b.shot("account-leases")
}
