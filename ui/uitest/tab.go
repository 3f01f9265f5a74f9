package uitest

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

// Chromium finds Debian's chromium ($CHROMIUM first): a missing one skips
// the browser test, except under CI, where it fails (like a missing
// PostgreSQL). A test calls it first, before building what it would drive.
func Chromium(t testing.TB) string {
	t.Helper()
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
	t.Skip("SKIPPED: chromium is not installed (apt-get install chromium); under CI=true this fails")
	return ""
}

// Artifacts is where screenshots go: $FAREBOX_ARTIFACTS, else a temporary
// directory of t.
func Artifacts(t testing.TB) string {
	t.Helper()
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

// Tab drives one tab of a headless Chromium at the site at URL, each step
// bounded by 20 seconds; any failure fails T.
type Tab struct {
	T   testing.TB
	Ctx context.Context // the tab's: for chromedp.Listen
	URL string
	Dir string // where Shot writes
	// Small makes Shot also write the top of the page at 1280 px drawn at
	// 0.6 scale (name-small.png): the README's pictures (docs/img).
	Small bool
}

// NewTab starts the Chromium at path (from Chromium) with one tab on the
// site at url, its screenshots in Artifacts; the browser ends with t.
func NewTab(t testing.TB, path, url string) *Tab {
	t.Helper()
	dir := Artifacts(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatal(err)
	}
	return &Tab{T: t, Ctx: ctx, URL: url, Dir: dir}
}

// Do runs steps.
func (b *Tab) Do(steps ...chromedp.Action[chromedp.Void]) {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.T.Fatal(err)
	}
}

// Eval is the value of the JavaScript expression js in the tab's page.
func Eval[T any](b *Tab, js string) T {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.T.Fatalf("%s: %v", js, err)
	}
	return v
}

// JS is s as a JavaScript string literal.
func JS(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// Text is the trimmed text of the first element sel matches ("" when
// none).
func (b *Tab) Text(sel string) string {
	b.T.Helper()
	return Eval[string](b, `(document.querySelector(`+JS(sel)+`) || {textContent: ""}).textContent.trim()`)
}

// Location is the page's address, without the site's.
func (b *Tab) Location() string {
	b.T.Helper()
	return strings.TrimPrefix(Eval[string](b, `location.href`), b.URL)
}

// Open goes to path and waits until waitFor (CSS) is visible.
func (b *Tab) Open(path, waitFor string) {
	b.T.Helper()
	b.Do(chromedp.Navigate(b.URL+path), chromedp.WaitVisible(chromedp.CSS(waitFor)))
}

// Resize emulates a screen of the width Shot draws at: 390 px wide a
// phone's (844 px high, mobile, portrait), another a desktop window's 900
// px high.
func (b *Tab) Resize(width int64) {
	b.T.Helper()
	emulate := chromedp.EmulateViewport(width, 900)
	if width == 390 {
		emulate = chromedp.EmulateViewport(width, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait)
	}
	b.Do(emulate, chromedp.Sleep(100*time.Millisecond))
}

// Fits reports whether every cell of the table sel matches lies within
// the table's box (its .scroll): nothing to scroll sideways to.
func (b *Tab) Fits(sel string) bool {
	b.T.Helper()
	return Eval[bool](b, `(() => { const t = document.querySelector(`+JS(sel)+`); if (!t) return false;
		const box = t.parentElement.getBoundingClientRect();
		return [...t.querySelectorAll("td")].every(c => { const r = c.getBoundingClientRect(); return r.left >= box.left - 0.5 && r.right <= box.right + 0.5; }); })()`)
}

// Shot writes full-page screenshots of the page at 1280 and 390 px wide
// (name-1280.png, name-390.png; the 390 as a phone) and fails a page
// wider than its screen; with Small, name-small.png too. The tab is left
// at 1280 by 900.
func (b *Tab) Shot(name string) {
	b.T.Helper()
	for _, width := range []int64{1280, 390} {
		b.Resize(width)
		ctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			b.T.Fatal(err)
		}
		// The layout must fit the width: no page wider than the screen
		// (tables and charts scroll inside their own boxes).
		if sw := Eval[int64](b, `document.documentElement.scrollWidth`); sw > width {
			b.T.Errorf("%s at %d px: the page is %d px wide", name, width, sw)
		}
		if err := os.WriteFile(filepath.Join(b.Dir, name+"-"+strconv.FormatInt(width, 10)+".png"), png, 0o644); err != nil {
			b.T.Fatal(err)
		}
	}
	if b.Small {
		b.Do(chromedp.EmulateViewport(1280, 760, chromedp.EmulateScale(0.6)), chromedp.Sleep(100*time.Millisecond))
		ctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		cancel()
		if err != nil {
			b.T.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(b.Dir, name+"-small.png"), png, 0o644); err != nil {
			b.T.Fatal(err)
		}
	}
	b.Resize(1280)
}
