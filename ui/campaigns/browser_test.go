package campaigns_test

import (
	"context"
	"encoding/json"
	"fmt"
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

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestBrowserCampaigns drives the campaign pages in headless Chromium: the
// advertiser's and the operator's, their figures equal to the API's, every
// page fitting 1280 and 390 px (screenshots as artifacts).
func TestBrowserCampaigns(t *testing.T) {
	path := chromium(t)
	e := newSponsoredEnv(t)
	dir := artifacts(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	b := &tab{t: t, ctx: ctx, e: e.env, dir: dir}
	from, to := e.today.AddDate(0, 0, -29), e.today.AddDate(0, 0, 1)

	b.open("/", "#secret")
	b.do(chromedp.SendKeys(chromedp.CSS("#secret"), e.shopKey+"\r"), chromedp.WaitVisible(chromedp.CSS(`[data-figure=available]`)))
	b.do(chromedp.Click(chromedp.CSS(`nav a[href="/ui/account/campaigns"]`)), chromedp.WaitVisible(chromedp.CSS(`table[data-table=campaigns]`)))
	st := e.stats("laptops", from, to)
	cell := func(table, key, col string) string {
		sel := `table[data-table=` + table + `] a[href^="` + key + `"]`
		return figure(eval[string](b, `document.querySelector(`+quote(sel)+`).closest("tr").querySelector("[data-col=`+col+`]").textContent`))
	}
	if got := cell("campaigns", "/ui/account/campaigns/laptops", "spend"); got != st.Spend {
		t.Errorf("laptops' spend in the advertiser's table = %q; the API's = %q", got, st.Spend)
	}
	b.shot("advertiser-campaigns")
	b.do(chromedp.Click(chromedp.CSS(`a[href^="/ui/account/campaigns/laptops"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-figure=spent_today]`)))
	if got := figure(b.text(`[data-figure=impressions] .value`)); got != fmt.Sprint(st.Impressions) {
		t.Errorf("laptops' impressions on its page = %q; the API's = %d", got, st.Impressions)
	}
	b.shot("advertiser-campaign")
	b.do(chromedp.Click(chromedp.CSS(`form[action="/ui/signout"] button`)), chromedp.WaitVisible(chromedp.CSS("#secret")))

	b.do(chromedp.SendKeys(chromedp.CSS("#secret"), adminToken+"\r"), chromedp.WaitVisible(chromedp.CSS(`[data-figure=revenue_usd]`)))
	b.do(chromedp.Click(chromedp.CSS(`nav a[href="/ui/admin/campaigns"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-figure=ad_revenue_usd]`)))
	var r struct{ Rows []map[string]any }
	e.json("/api/v1/reports/economics?group_by=product&from="+from.Format(time.DateOnly)+"&to="+to.Format(time.DateOnly), &r)
	for _, row := range r.Rows {
		if row["key"] == "ads" {
			if got := figure(b.text(`[data-figure=ad_revenue_usd] .value`)); got != row["revenue_usd"] {
				t.Errorf("ad revenue on the page = %q; the API's = %v", got, row["revenue_usd"])
			}
		}
	}
	b.shot("operator-campaigns")
	b.do(chromedp.Click(chromedp.CSS(`table[data-table=campaigns] a[href^="/ui/admin/campaigns/laptops"]`)), chromedp.WaitVisible(chromedp.CSS(`form[action="/ui/admin/campaigns/laptops/active"]`)))
	b.do(chromedp.SetValue(chromedp.CSS("#f-status"), "paused"), chromedp.Click(chromedp.CSS(`form[action="/ui/admin/campaigns/laptops/active"] button`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")))
	if flash := b.text(".flash"); flash != "Campaign laptops is paused." {
		t.Errorf("after the pause: %q", flash)
	}
	b.shot("operator-campaign")
}
