package billing_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"farebox/notify"
	"farebox/ui/billing"
	"farebox/ui/uitest"
)

// TestWebhooksPages: the operator adds an endpoint with the form (CSRF
// checked), its secret shown on that answer only, the endpoint then the
// API's; a receiver that fails leaves deliveries whose page rows equal GET
// /api/v1/webhook-endpoints/{id}/deliveries (status, attempts, last status
// code); the retry button makes one due again, as the API's retry does,
// and it is delivered, signed with that secret; removing the endpoint
// removes it from the API. A customer's session is refused every page.
func TestWebhooksPages(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	var mu sync.Mutex
	down := true
	var got []string
	var signed [][2]string // signature, body
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		got = append(got, r.Header.Get("Farebox-Event-Type"))
		signed = append(signed, [2]string{r.Header.Get(notify.SignatureHeader), string(b)})
	}))
	defer recv.Close()

	op := e.SignedIn(adminToken)
	page := op.Page(billing.WebhooksPath)
	if !strings.Contains(page, `<a href="/ui/admin/webhooks" aria-current="page">Webhooks</a>`) || !strings.Contains(page, "No endpoints yet") {
		t.Fatal("the webhooks page is not in the operator's navigation, or not empty")
	}
	form := url.Values{"url": {recv.URL + "/hook"}, "events": {"balance.low", "balance.depleted"}}
	if res, _ := op.Do("POST", billing.WebhooksPath, form); res.StatusCode != http.StatusForbidden {
		t.Fatalf("the form without its CSRF token: %d, want 403", res.StatusCode)
	}
	if res, body := op.Post(billing.WebhooksPath, billing.WebhooksPath, url.Values{"url": {"ftp://x"}, "events": {"balance.low"}}); res.StatusCode != 400 || !strings.Contains(body, "url must be an http or https URL") {
		t.Fatalf("an ftp URL: %d, want 400", res.StatusCode)
	}
	res, page := op.Post(billing.WebhooksPath, billing.WebhooksPath, form)
	secret := uitest.Between(page, `<code class="secret" id="new-secret">`, "</code>")
	list := e.Object("GET", "/api/v1/webhook-endpoints", "", 200)["data"].([]any)
	if res.StatusCode != 200 || !strings.HasPrefix(secret, "whsec_") || len(list) != 1 {
		t.Fatalf("adding an endpoint: %d, secret %q, the API lists %d", res.StatusCode, secret, len(list))
	}
	ep := list[0].(map[string]any)
	id := ep["id"].(string)
	if ep["url"] != recv.URL+"/hook" || fmt.Sprint(ep["events"]) != "[balance.low balance.depleted]" {
		t.Fatalf("the API's endpoint %v", ep)
	}
	if strings.Contains(op.Page(billing.WebhooksPath), secret) {
		t.Fatal("the secret is shown again")
	}

	// Events while the receiver fails.
	if _, err := e.app.Notify.Follow(ctx); err != nil {
		t.Fatal(err)
	}
	e.API("POST", "/api/v1/customers", `{"id":"acme","name":"Acme"}`, 201)
	e.API("PUT", "/api/v1/customers/acme/alerts", `{"low_balance":"50"}`, 200)
	e.API("POST", "/api/v1/customers/acme/grants", `{"amount":"100","source":"promo"}`, 201)
	for _, amount := range []string{"60", "40"} { // low, then depleted
		h := e.Object("POST", "/api/v1/holds", `{"customer":"acme","amount":"`+amount+`"}`, 201)
		e.API("POST", "/api/v1/holds/"+h["id"].(string)+"/capture", `{}`, 200)
	}
	for range 2 {
		if _, err := e.app.Notify.Follow(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := e.app.Notify.Deliver(ctx); err != nil {
			t.Fatal(err)
		}
	}
	compare := func() (rows [][]string, api []any) {
		t.Helper()
		page := op.Page(billing.WebhooksPath + "/" + id)
		rows = table(t, page, "Deliveries, newest first")
		api = e.Object("GET", "/api/v1/webhook-endpoints/"+id+"/deliveries", "", 200)["data"].([]any)
		if len(rows) != len(api) {
			t.Fatalf("%d rows, the API %d deliveries", len(rows), len(api))
		}
		for i, x := range api {
			d := x.(map[string]any)
			code := "—"
			if c, ok := d["last_status_code"].(float64); ok {
				code = fmt.Sprintf("HTTP %d", int(c))
			} else if e, ok := d["last_error"].(string); ok {
				code = e
			}
			if r := rows[i]; r[0] != d["event"] || r[1] != d["type"] || r[2] != d["customer"] || r[3] != d["status"] || r[4] != fmt.Sprint(d["attempts"]) || r[5] != code {
				t.Fatalf("row %d %v; the API's %v", i, r, d)
			}
		}
		return rows, api
	}
	rows, api := compare()
	// balance.low failed with 503; balance.depleted waits behind it (in
	// order per customer).
	if len(rows) != 2 || rows[1][1] != "balance.low" || rows[1][3] != "pending" || rows[1][5] != "HTTP 503" || rows[0][1] != "balance.depleted" || rows[0][4] != "0" {
		t.Fatalf("deliveries while the receiver fails: %v", rows)
	}

	// The retry button of the first event (balance.low), the receiver up.
	mu.Lock()
	down = false
	mu.Unlock()
	low := api[1].(map[string]any)
	retry := billing.WebhooksPath + "/" + id + "/deliveries/" + low["id"].(string) + "/retry"
	if !strings.Contains(op.Page(billing.WebhooksPath+"/"+id), `action="`+retry+`"`) {
		t.Fatal("no retry button for the delivery")
	}
	if res, _ := op.Do("POST", retry, url.Values{}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("retry without its CSRF token: %d, want 403", res.StatusCode)
	}
	if res, _ := op.Post(billing.WebhooksPath+"/"+id, billing.WebhooksPath+"/other/deliveries/"+low["id"].(string)+"/retry", nil); res.StatusCode != http.StatusNotFound {
		t.Fatalf("retry under another endpoint: %d, want 404", res.StatusCode)
	}
	before := time.Now()
	if res, _ := op.Post(billing.WebhooksPath+"/"+id, retry, nil); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != billing.WebhooksPath+"/"+id {
		t.Fatalf("retry: %d to %s", res.StatusCode, res.Header.Get("Location"))
	}
	_, api = compare()
	next, _ := time.Parse(time.RFC3339Nano, api[1].(map[string]any)["next_attempt_at"].(string))
	if next.Before(before.Add(-time.Second)) || next.After(time.Now()) {
		t.Fatalf("after the retry the delivery is due at %s, want now", next)
	}
	if _, err := e.app.Notify.Deliver(ctx); err != nil {
		t.Fatal(err)
	}
	rows, _ = compare()
	mu.Lock()
	if len(got) != 2 || got[0] != "balance.low" || rows[0][3] != "succeeded" || rows[1][3] != "succeeded" {
		t.Fatalf("after the retry: received %v, rows %v; want both, balance.low first", got, rows)
	}
	for _, sb := range signed {
		if err := notify.Verify(secret, sb[0], []byte(sb[1]), time.Now(), 5*time.Minute); err != nil {
			t.Fatalf("a delivery's signature with the secret the page showed: %v", err)
		}
	}
	mu.Unlock()
	if w := table(t, op.Page(billing.WebhooksPath), "Endpoints"); len(w) != 1 || w[0][3] != "2" || w[0][4] != "0" || w[0][5] != "0" {
		t.Fatalf("the endpoints' table %v, want 2 delivered", w)
	}

	// A customer is refused every webhook page.
	e.API("POST", "/api/v1/customers/acme/keys", `{"name":"k"}`, 201)
	k, _ := e.Key("acme", `{"name":"k2"}`)
	cust := e.SignedIn(k)
	for _, p := range []string{billing.WebhooksPath, billing.WebhooksPath + "/" + id} {
		if res, _ := cust.Do("GET", p, nil); res.StatusCode != http.StatusForbidden {
			t.Fatalf("a customer on %s: %d, want 403", p, res.StatusCode)
		}
	}

	// Removed.
	if res, _ := op.Post(billing.WebhooksPath, billing.WebhooksPath+"/"+id+"/delete", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("remove: %d", res.StatusCode)
	}
	if list := e.Object("GET", "/api/v1/webhook-endpoints", "", 200)["data"].([]any); len(list) != 0 {
		t.Fatalf("after removing it the API lists %v", list)
	}
}
