package billing_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"farebox/ui/billing"
)

// chromium finds Debian's chromium: a missing one skips the browser test,
// except under CI, where it fails.
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
	t.Skip("SKIPPED: chromium is not installed (apt-get install chromium); under CI=true this fails")
	return ""
}

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

func (b *tab) text(sel string) string {
	b.t.Helper()
	q, _ := json.Marshal(sel)
	return eval[string](b, `(document.querySelector(`+string(q)+`) || {textContent: ""}).textContent.trim()`)
}

func (b *tab) open(path, waitFor string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.e.url+path), chromedp.WaitVisible(chromedp.CSS(waitFor)))
}

// shot writes full-page screenshots at 1280 and 390 px wide, and fails
// when the page is wider than the screen.
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
		if sw := eval[int64](b, `document.documentElement.scrollWidth`); sw > w.width {
			b.t.Errorf("%s at %d px: the page is %d px wide", name, w.width, sw)
		}
		if err := os.WriteFile(filepath.Join(b.dir, name+"-"+strconv.FormatInt(w.width, 10)+".png"), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.do(chromedp.EmulateViewport(1280, 900))
}

// TestBrowserPages drives the top-up, keys and webhooks pages in a real
// headless Chromium at 1280 and 390 px: their figures equal the API's,
// nothing is wider than the screen, the checkout button leaves for
// Stripe's page (the page's CSP lets the form's redirect go), and the
// retry button works. Screenshots go to $FAREBOX_ARTIFACTS.
func TestBrowserPages(t *testing.T) {
	path := chromium(t)
	e := newEnv(t, true)
	dir := os.Getenv("FAREBOX_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	os.MkdirAll(dir, 0o755)
	t.Logf("screenshots in %s", dir)
	ctx := context.Background()
	e.api("POST", "/api/v1/customers", `{"id":"acme","name":"Acme Corp"}`, 201)
	e.api("POST", "/api/v1/customers/acme/grants", `{"amount":"1250","source":"purchase","paid_usd":"12.5"}`, 201)
	key, _ := e.key("acme", `{"name":"laptop"}`)
	e.key("acme", `{"name":"ci","budget":"50","budget_period":"day","rpm":60}`)
	e.key("acme", `{"name":"nightly batch","budget":"2000","budget_period":"month"}`)
	e.api("PUT", "/api/v1/customers/acme/auto-topup", `{"threshold":"1200","credits":"1000","cooldown":"1h"}`, 200)
	ep := e.api("POST", "/api/v1/webhook-endpoints", `{"url":"http://127.0.0.1:9/farebox-hooks","events":["balance.low","topup.failed","key.budget_exceeded"]}`, 201)
	if _, err := e.app.Notify.Follow(ctx); err != nil {
		t.Fatal(err)
	}
	e.api("PUT", "/api/v1/customers/acme/alerts", `{"low_balance":"1225"}`, 200)
	h := e.api("POST", "/api/v1/holds", `{"customer":"acme","amount":"60"}`, 201)
	e.api("POST", "/api/v1/holds/"+h["id"].(string)+"/capture", `{}`, 200)
	for range 2 {
		e.app.Notify.Follow(ctx)
		e.app.Notify.Deliver(ctx) // nothing listens at 127.0.0.1:9: failed attempts
		e.app.Payments.Topups(ctx)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatal(err)
	}
	b := &tab{t: t, ctx: bctx, e: e, dir: dir}

	b.open("/", "#secret")
	b.do(chromedp.SendKeys(chromedp.CSS("#secret"), key+"\r"), chromedp.WaitVisible(chromedp.CSS(`#buy`)))
	b.shot("topup-overview")
	b.open(billing.TopUpPath, "form")
	bal := e.api("GET", "/api/v1/customers/acme/balance", "", 200)
	auto := e.api("GET", "/api/v1/customers/acme/auto-topup", "", 200)
	if got := figure(eval[string](b, `[...document.querySelectorAll(".card")].find(c => c.querySelector(".label").textContent == "Available").querySelector(".value").textContent`)); got != bal["available"] {
		t.Errorf("available on the top-up page %q, the API's %q", got, bal["available"])
	}
	if got := figure(eval[string](b, `[...document.querySelectorAll(".card")].find(c => c.querySelector(".label").textContent == "Below").querySelector(".value").textContent`)); got != auto["threshold"] {
		t.Errorf("the threshold on the page %q, the API's %q", got, auto["threshold"])
	}
	b.shot("topup")
	b.open("/ui/account/keys", "table.keys")
	b.shot("keys")

	// The checkout leaves for Stripe's page (unreachable here: no network),
	// rather than being stopped by the page's CSP.
	b.open("/ui/account", "#buy")
	var navMu sync.Mutex
	var navigated []string
	if err := chromedp.Listen(bctx, func(ev any) {
		if n, ok := ev.(*page.EventFrameNavigated); ok && n.Frame.ParentID == "" {
			navMu.Lock()
			navigated = append(navigated, n.Frame.URL+" "+n.Frame.UnreachableURL)
			navMu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	b.do(chromedp.SendKeys(chromedp.CSS("#buy-credits"), "500"), chromedp.Click(chromedp.CSS(`#buy button`)))
	deadline := time.Now().Add(10 * time.Second)
	var at string
	for time.Now().Before(deadline) {
		at = eval[string](b, `location.href`)
		if !strings.HasPrefix(at, e.url) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if strings.HasPrefix(at, e.url) {
		t.Fatalf("after Buy credits the browser is still at %s: the redirect to the checkout was stopped", at)
	}
	var sessions []string
	for _, r := range e.rec.Sent() {
		if r.Path == "/v1/checkout/sessions" {
			sessions = append(sessions, r.Form.Get("metadata[credits]"))
		}
	}
	navMu.Lock()
	went := strings.Join(navigated, "; ")
	navMu.Unlock()
	t.Logf("after Buy credits the browser navigated: %s", went)
	if len(sessions) != 1 || sessions[0] != "500" || !strings.Contains(went, "https://checkout.stripe.com/") {
		t.Fatalf("checkout sessions %v; the browser went to %q: want the one session's page on checkout.stripe.com", sessions, went)
	}

	// The operator's webhooks.
	b.do(chromedp.Navigate(e.url + "/"))
	b.open("/ui/account", "form .link")
	b.do(chromedp.Click(chromedp.CSS(`.who form .link`)), chromedp.WaitVisible(chromedp.CSS("#secret")))
	b.do(chromedp.SendKeys(chromedp.CSS("#secret"), adminToken+"\r"), chromedp.WaitVisible(chromedp.CSS(`main`)))
	b.open(billing.WebhooksPath, "table")
	b.shot("webhooks")
	b.open(billing.WebhooksPath+"/"+ep["id"].(string), "table")
	ds := e.api("GET", "/api/v1/webhook-endpoints/"+ep["id"].(string)+"/deliveries", "", 200)["data"].([]any)
	if n := eval[int](b, `document.querySelectorAll("main table tbody tr").length`); n != len(ds) || n == 0 {
		t.Fatalf("%d delivery rows, the API %d", n, len(ds))
	}
	b.shot("webhook-deliveries")
	b.do(chromedp.Click(chromedp.CSS(`main table tbody tr button`)), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	if f := b.text(".flash"); !strings.Contains(f, "is due again") {
		t.Fatalf("after the retry button: %q", f)
	}
}
