package billing_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"farebox/payments/stripemock"
	"farebox/ui/billing"
	"farebox/ui/uitest"
)

// TestTopUpPage: with Stripe configured, the overview's top-up panel is a
// checkout form instead of the operator's instructions, and the top-up
// page shows the balance and price the API has, and the automatic
// top-up's settings and last attempt exactly as GET
// /api/v1/customers/{id}/auto-topup answers them. Its forms (CSRF on
// each) set and turn off the automatic top-up with the API's rules, and
// the checkout creates a Checkout Session at Stripe for the customer and
// answers a page that sends the browser on to it. A session whose key has a budget sees the page but may not
// change the automatic top-up.
func TestTopUpPage(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	e.API("POST", "/api/v1/customers", `{"id":"acme","name":"Acme"}`, 201)
	e.API("POST", "/api/v1/customers/acme/grants", `{"amount":"500","source":"purchase","paid_usd":"5"}`, 201)
	key, _ := e.Key("acme", `{"name":"owner"}`)
	team, _ := e.Key("acme", `{"name":"team","budget":"5","budget_period":"day"}`)
	b := e.SignedIn(key)

	overview := b.Page("/ui/account")
	if !strings.Contains(overview, `action="`+billing.CheckoutPath+`"`) || strings.Contains(overview, "Email billing@example.com") ||
		!strings.Contains(overview, `href="`+billing.TopUpPath+`"`) {
		t.Fatalf("the overview's top-up panel is not the checkout:\n%s", uitest.Between(overview, `id="topup"`, "</section>"))
	}

	page := b.Page(billing.TopUpPath)
	bal := e.Object("GET", "/api/v1/customers/acme/balance", "", 200)
	c := cards(page)
	if uitest.Figure(c["Available"]) != bal["available"] || c["Price of a credit"] != "$0.01" || c["Automatic top-up"] != "off" || c["Saved card"] != "none yet" {
		t.Fatalf("top-up page cards %v; want available %v, $0.01 a credit, off, no card", c, bal["available"])
	}
	if !strings.Contains(page, `<a href="/ui/account/topup" aria-current="page">Top up</a>`) {
		t.Error("the top-up page is not in the customer's navigation")
	}

	// The automatic top-up's form: refused without its CSRF token, and
	// with a bad figure; then set, its figures the API's.
	if res, _ := b.Do("POST", billing.TopUpPath+"/auto", url.Values{"threshold": {"100"}, "credits": {"1000"}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("the form without its CSRF token: %d, want 403", res.StatusCode)
	}
	if res, body := b.Post(billing.TopUpPath, billing.TopUpPath+"/auto", url.Values{"threshold": {"0"}, "credits": {"1000"}}); res.StatusCode != 400 || !strings.Contains(body, "threshold must be a positive amount") {
		t.Fatalf("threshold 0: %d, want 400 naming threshold", res.StatusCode)
	}
	e.API("GET", "/api/v1/customers/acme/auto-topup", "", 404)
	if res, _ := b.Post(billing.TopUpPath, billing.TopUpPath+"/auto", url.Values{"threshold": {"480"}, "credits": {"1000"}, "cooldown": {"30m"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("setting the automatic top-up: %d", res.StatusCode)
	}
	auto := e.Object("GET", "/api/v1/customers/acme/auto-topup", "", 200)
	page = b.Page(billing.TopUpPath)
	c = cards(page)
	if c["Automatic top-up"] != "on" || uitest.Figure(c["Below"]) != auto["threshold"] || uitest.Figure(c["Buys"]) != auto["credits"] || c["At most once every"] != auto["cooldown"] ||
		auto["threshold"] != "480" || auto["cooldown"] != "30m" || !strings.Contains(page, "Automatic top-up on: 1,000 credits whenever the balance falls below 480.") {
		t.Fatalf("after the form: cards %v, API %v", c, auto)
	}

	// A purchase saves the card; a crossing makes an attempt, shown as the
	// API shows it.
	pi, sig := stripemock.Event("evt_saved", "payment_intent.succeeded", map[string]any{"id": "pi_checkout", "object": "payment_intent", "currency": "usd",
		"customer": "cus_acme", "payment_method": "pm_card_visa", "metadata": map[string]string{"farebox_customer": "acme", "farebox_kind": "checkout"}})
	req, _ := http.NewRequest("POST", e.URL+"/webhooks/stripe", strings.NewReader(string(pi)))
	req.Header.Set("Stripe-Signature", sig)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("webhook: %v %v", res, err)
	}
	if _, err := e.app.Notify.Follow(ctx); err != nil {
		t.Fatal(err)
	}
	h := e.Object("POST", "/api/v1/holds", `{"customer":"acme","amount":"30"}`, 201)
	e.API("POST", "/api/v1/holds/"+h["id"].(string)+"/capture", `{}`, 200)
	if _, err := e.app.Notify.Follow(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.app.Payments.Topups(ctx); err != nil {
		t.Fatal(err)
	}
	last := e.Object("GET", "/api/v1/customers/acme/auto-topup", "", 200)["last_attempt"].(map[string]any)
	page = b.Page(billing.TopUpPath)
	rows := table(t, page, "Last automatic top-up")
	if len(rows) != 1 || uitest.Figure(rows[0][1]) != last["credits"] || uitest.Figure(rows[0][2]) != last["amount_usd"] || rows[0][3] != last["status"] ||
		last["status"] != "requested" || last["amount_usd"] != "10" || cards(page)["Saved card"] != "saved" {
		t.Fatalf("last attempt row %v, API %v", rows, last)
	}

	// The checkout: a Checkout Session at Stripe for acme's 250 credits,
	// and the browser sent there.
	if res, _ := b.Do("POST", billing.CheckoutPath, url.Values{"credits": {"250"}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("the checkout without its CSRF token: %d, want 403", res.StatusCode)
	}
	res, page := b.Post("/ui/account", billing.CheckoutPath, url.Values{"credits": {"250"}})
	loc := html.UnescapeString(uitest.Between(page, `<a href="`, `" id="leave">`))
	var created []stripemock.Request
	for _, r := range e.rec.Sent() {
		if r.Path == "/v1/checkout/sessions" {
			created = append(created, r)
		}
	}
	if res.StatusCode != 200 || !strings.HasPrefix(loc, "https://") || len(created) != 1 ||
		!strings.Contains(page, `<meta http-equiv="refresh" content="0;url=`+html.EscapeString(loc)+`">`) {
		t.Fatalf("checkout: %d to %q, %d sessions created; want a page that goes on to the one session's page at once\n%s", res.StatusCode, loc, len(created), page)
	}
	if f := created[0].Form; f.Get("client_reference_id") != "acme" || f.Get("metadata[credits]") != "250" || f.Get("line_items[0][price_data][unit_amount]") != "250" ||
		f.Get("success_url") != e.URL+billing.TopUpPath+"?checkout=done" || f.Get("cancel_url") != e.URL+billing.TopUpPath+"?checkout=cancelled" {
		t.Fatalf("the session asked of Stripe: %v", f)
	}
	u, _ := url.Parse(loc)
	if !strings.Contains(page, "Taking you to <strong>"+u.Host+"</strong>") {
		t.Fatalf("the page does not say where it goes (%s)", u.Host)
	}
	if !strings.Contains(b.Page(billing.TopUpPath+"?checkout=done"), "Your payment is being confirmed") {
		t.Error("the page Stripe sends the customer back to does not say the payment is being confirmed")
	}

	// A key with a budget: sees, cannot change.
	tb := e.SignedIn(team)
	page = tb.Page(billing.TopUpPath)
	if strings.Contains(page, `action="`+billing.TopUpPath+`/auto"`) || !strings.Contains(page, "only a key without one may change automatic top-ups") {
		t.Fatal("a budgeted key's session is offered the automatic top-up's form")
	}
	if res, _ := tb.Post(billing.TopUpPath, billing.TopUpPath+"/auto/off", nil); res.StatusCode != http.StatusForbidden {
		t.Fatalf("a budgeted key turning automatic top-ups off: %d, want 403", res.StatusCode)
	}
	e.API("GET", "/api/v1/customers/acme/auto-topup", "", 200)

	// Off, by the owner's key.
	if res, _ := b.Post(billing.TopUpPath, billing.TopUpPath+"/auto/off", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("turning it off: %d", res.StatusCode)
	}
	e.API("GET", "/api/v1/customers/acme/auto-topup", "", 404)
	if c := cards(b.Page(billing.TopUpPath)); c["Automatic top-up"] != "off" {
		t.Fatalf("after turning it off: %v", c)
	}
}

// TestTopUpWithoutProvider: without a payment provider the overview keeps
// the operator's instructions and there is no top-up page.
func TestTopUpWithoutProvider(t *testing.T) {
	e := newEnv(t, false)
	e.API("POST", "/api/v1/customers", `{"id":"acme","name":"Acme"}`, 201)
	key, _ := e.Key("acme", `{"name":"owner"}`)
	b := e.SignedIn(key)
	overview := b.Page("/ui/account")
	if !strings.Contains(overview, "Email billing@example.com to buy credits.") || strings.Contains(overview, billing.CheckoutPath) || strings.Contains(overview, ">Top up</a>") {
		t.Fatalf("without payments the top-up panel is:\n%s", uitest.Between(overview, `id="topup"`, "</section>"))
	}
	if res, _ := b.Do("GET", billing.TopUpPath, nil); res.StatusCode != http.StatusNotFound {
		t.Fatalf("the top-up page without payments: %d, want 404", res.StatusCode)
	}
}

// TestTopUpFailedAttempt: an automatic top-up that failed before it was
// priced (no saved card: the API's amount_usd is 0) shows on the top-up
// page the price it was to charge and that it was not charged, beside
// why it failed; on a phone the row reads as label/value lines.
func TestTopUpFailedAttempt(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	e.API("POST", "/api/v1/customers", `{"id":"acme","name":"Acme"}`, 201)
	e.API("POST", "/api/v1/customers/acme/grants", `{"amount":"1250","source":"purchase","paid_usd":"12.5"}`, 201)
	key, _ := e.Key("acme", `{"name":"owner"}`)
	e.API("PUT", "/api/v1/customers/acme/auto-topup", `{"threshold":"1200","credits":"1000","cooldown":"1h"}`, 200)
	if _, err := e.app.Notify.Follow(ctx); err != nil { // the balance above the threshold
		t.Fatal(err)
	}
	h := e.Object("POST", "/api/v1/holds", `{"customer":"acme","amount":"60"}`, 201)
	e.API("POST", "/api/v1/holds/"+h["id"].(string)+"/capture", `{}`, 200)
	if _, err := e.app.Notify.Follow(ctx); err != nil { // the crossing: an attempt
		t.Fatal(err)
	}
	if _, err := e.app.Payments.Topups(ctx); err != nil {
		t.Fatal(err)
	}
	last := e.Object("GET", "/api/v1/customers/acme/auto-topup", "", 200)["last_attempt"].(map[string]any)
	if last["status"] != "failed" || last["amount_usd"] != "0" || last["credits"] != "1000" || last["error"] == "" {
		t.Fatalf("the attempt: %v; want a failed one of 1000 credits, nothing charged", last)
	}
	page := e.SignedIn(key).Page(billing.TopUpPath)
	rows := table(t, page, "Last automatic top-up")
	want := []string{"1,000", "$10, not charged", "failed", last["error"].(string)} // 1,000 credits at $0.01
	if len(rows) != 1 || len(rows[0]) != 5 || !slices.Equal(rows[0][1:], want) {
		t.Fatalf("the last attempt's row %q; want %q after its time", rows, want)
	}
	if !strings.Contains(page, `data-label="Why it failed"`) {
		t.Error("the last attempt's cells carry no labels for a phone's layout")
	}
}
