package billing_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"farebox/ui/billing"
	"farebox/ui/uitest"
)

// TestBrowserPages drives the top-up, keys and webhooks pages in a real
// headless Chromium at 1280 and 390 px: their figures equal the API's,
// nothing is wider than the screen, the checkout button leaves for
// Stripe's page (the page's CSP lets the form's redirect go), and the
// retry button works. Screenshots go to $FAREBOX_ARTIFACTS.
func TestBrowserPages(t *testing.T) {
	path := uitest.Chromium(t)
	e := newEnv(t, true)
	ctx := context.Background()
	e.API("POST", "/api/v1/customers", `{"id":"acme","name":"Acme Corp"}`, 201)
	e.API("POST", "/api/v1/customers/acme/grants", `{"amount":"1250","source":"purchase","paid_usd":"12.5"}`, 201)
	key, _ := e.Key("acme", `{"name":"laptop"}`)
	e.Key("acme", `{"name":"ci","budget":"50","budget_period":"day","rpm":60}`)
	e.Key("acme", `{"name":"nightly batch","budget":"2000","budget_period":"month"}`)
	e.API("PUT", "/api/v1/customers/acme/auto-topup", `{"threshold":"1200","credits":"1000","cooldown":"1h"}`, 200)
	ep := e.Object("POST", "/api/v1/webhook-endpoints", `{"url":"http://127.0.0.1:9/farebox-hooks","events":["balance.low","topup.failed","key.budget_exceeded"]}`, 201)
	if _, err := e.app.Notify.Follow(ctx); err != nil {
		t.Fatal(err)
	}
	e.API("PUT", "/api/v1/customers/acme/alerts", `{"low_balance":"1225"}`, 200)
	h := e.Object("POST", "/api/v1/holds", `{"customer":"acme","amount":"60"}`, 201)
	e.API("POST", "/api/v1/holds/"+h["id"].(string)+"/capture", `{}`, 200)
	for range 2 {
		e.app.Notify.Follow(ctx)
		e.app.Notify.Deliver(ctx) // nothing listens at 127.0.0.1:9: failed attempts
		e.app.Payments.Topups(ctx)
	}

	b := uitest.NewTab(t, path, e.URL)

	b.Open("/", "#secret")
	b.Do(chromedp.SendKeys(chromedp.CSS("#secret"), key+"\r"), chromedp.WaitVisible(chromedp.CSS(`#buy`)))
	b.Shot("topup-overview")
	b.Open(billing.TopUpPath, "form")
	bal := e.Object("GET", "/api/v1/customers/acme/balance", "", 200)
	auto := e.Object("GET", "/api/v1/customers/acme/auto-topup", "", 200)
	if got := uitest.Figure(uitest.Eval[string](b, `[...document.querySelectorAll(".card")].find(c => c.querySelector(".label").textContent == "Available").querySelector(".value").textContent`)); got != bal["available"] {
		t.Errorf("available on the top-up page %q, the API's %q", got, bal["available"])
	}
	if got := uitest.Figure(uitest.Eval[string](b, `[...document.querySelectorAll(".card")].find(c => c.querySelector(".label").textContent == "Below").querySelector(".value").textContent`)); got != auto["threshold"] {
		t.Errorf("the threshold on the page %q, the API's %q", got, auto["threshold"])
	}
	b.Shot("topup")
	// The failed attempt's row: on a phone label/value lines, nothing
	// beyond its box, why it failed shown whole; at 1280 px a table.
	const last = `section:has(td[data-label]) table`
	if !b.Fits(last) || uitest.Eval[string](b, `getComputedStyle(document.querySelector("section:has(td[data-label]) thead")).display`) == "none" {
		t.Error("at 1280 px the last top-up's table does not fit its box, or has no header")
	}
	b.Resize(390)
	if !b.Fits(last) {
		t.Error("at 390 px the last top-up's cells go beyond its box: a phone scrolls sideways to read why it failed")
	}
	if got := b.Text(`td[data-label="Amount"]`); got != "$10, not charged" {
		t.Errorf("the failed attempt's amount reads %q; want $10, not charged", got)
	}
	b.Resize(1280)
	b.Open("/ui/account/keys", "table.keys")
	b.Shot("keys")

	// The checkout leaves for Stripe's page (unreachable here: no network),
	// rather than being stopped by the page's CSP.
	b.Open("/ui/account", "#buy")
	var navMu sync.Mutex
	var navigated []string
	if err := chromedp.Listen(b.Ctx, func(ev any) {
		if n, ok := ev.(*page.EventFrameNavigated); ok && n.Frame.ParentID == "" {
			navMu.Lock()
			navigated = append(navigated, n.Frame.URL+" "+n.Frame.UnreachableURL)
			navMu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	b.Do(chromedp.SendKeys(chromedp.CSS("#buy-credits"), "500"), chromedp.Click(chromedp.CSS(`#buy button`)))
	deadline := time.Now().Add(10 * time.Second)
	var at string
	for time.Now().Before(deadline) {
		at = uitest.Eval[string](b, `location.href`)
		if !strings.HasPrefix(at, e.URL) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if strings.HasPrefix(at, e.URL) {
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
	b.Do(chromedp.Navigate(e.URL + "/"))
	b.Open("/ui/account", "form .link")
	b.Do(chromedp.Click(chromedp.CSS(`.who form .link`)), chromedp.WaitVisible(chromedp.CSS("#secret")))
	b.Do(chromedp.SendKeys(chromedp.CSS("#secret"), adminToken+"\r"), chromedp.WaitVisible(chromedp.CSS(`main`)))
	b.Open(billing.WebhooksPath, "table")
	b.Shot("webhooks")
	b.Open(billing.WebhooksPath+"/"+ep["id"].(string), "table")
	ds := e.Object("GET", "/api/v1/webhook-endpoints/"+ep["id"].(string)+"/deliveries", "", 200)["data"].([]any)
	if n := uitest.Eval[int](b, `document.querySelectorAll("main table tbody tr").length`); n != len(ds) || n == 0 {
		t.Fatalf("%d delivery rows, the API %d", n, len(ds))
	}
	b.Shot("webhook-deliveries")
	b.Do(chromedp.Click(chromedp.CSS(`main table tbody tr button`)), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	if f := b.Text(".flash"); !strings.Contains(f, "is due again") {
		t.Fatalf("after the retry button: %q", f)
	}
}
