package ui_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"farebox/ui/uitest"
)

// TestCustomerSessionIsConfined: a customer's session sees its own
// customer only — every /ui/admin URL is 403 (known or not, GET or POST),
// another customer's key cannot be revoked (404), and a query naming
// another customer changes nothing.
func TestCustomerSessionIsConfined(t *testing.T) {
	e := newEnv(t)
	b := e.Browser()
	if code, to := b.SignIn(e.acmeKey); code != http.StatusSeeOther || to != "/ui/account" {
		t.Fatalf("sign-in with acme's key: %d to %q; want 303 to /ui/account", code, to)
	}
	tok := b.CSRF("/ui/account")
	var before struct{ Available string }
	e.JSON("/api/v1/customers/beta/balance", &before)
	for _, tc := range []struct {
		method, path string
	}{
		{"GET", "/ui/admin"}, {"GET", "/ui/admin/"}, {"GET", "/ui/admin/customers"}, {"GET", "/ui/admin/customers/beta"},
		{"GET", "/ui/admin/customers/acme"}, {"GET", "/ui/admin/system"}, {"GET", "/ui/admin/no-such-page"},
		{"POST", "/ui/admin/customers/beta/grant"}, {"POST", "/ui/admin/customers/acme/grant"}, {"POST", "/ui/admin/system/verify"},
	} {
		form := url.Values{"csrf": {tok}, "amount": {"1000"}, "source": {"promo"}, "idempotency_key": {"steal"}}
		if tc.method == "GET" {
			form = nil
		}
		res, page := b.Do(tc.method, tc.path, form)
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s as a customer: %d; want 403", tc.method, tc.path, res.StatusCode)
		}
		if strings.Contains(page, "Beta Ltd") || strings.Contains(page, "777.5") {
			t.Errorf("%s %s as a customer shows beta's data", tc.method, tc.path)
		}
	}
	// Nothing was granted by those posts.
	var bal struct{ Available string }
	e.JSON("/api/v1/customers/beta/balance", &bal)
	if bal.Available != before.Available {
		t.Fatalf("beta's available after acme's attempts = %s, want %s", bal.Available, before.Available)
	}

	res, _ := b.Do("POST", "/ui/account/keys/"+e.betaID+"/revoke", url.Values{"csrf": {tok}})
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("acme revoking beta's key: %d; want 404", res.StatusCode)
	}
	var ks struct {
		Data []struct {
			ID        string `json:"id"`
			RevokedAt string `json:"revoked_at"`
		}
	}
	e.JSON("/api/v1/customers/beta/keys", &ks)
	if len(ks.Data) != 1 || ks.Data[0].RevokedAt != "" {
		t.Fatalf("beta's keys after acme's attempt: %+v; want one, live", ks.Data)
	}

	for _, path := range []string{"/ui/account?customer=beta", "/ui/account/requests?customer=beta", "/ui/account/keys?customer=beta"} {
		res, page := b.Do("GET", path, nil)
		if res.StatusCode != 200 || strings.Contains(page, "Beta Ltd") || strings.Contains(page, "777.5") || strings.Contains(page, e.betaID) {
			t.Errorf("GET %s: %d, or beta's data in the page", path, res.StatusCode)
		}
	}
	// A cursor of the requests list cannot reach past the session's own
	// rows either: the customer is the session's, whatever the page.
	res, page := b.Do("GET", "/ui/account/requests?before=9999999999999999999_x", nil)
	if res.StatusCode != http.StatusBadRequest || strings.Contains(page, "b-1") {
		t.Errorf("a cursor out of range: %d", res.StatusCode)
	}
}

// TestSessions: the cookie's attributes and the page's headers; a form
// without its CSRF token is refused and does nothing; sign-out ends the
// session in the store (the same cookie, replayed, is signed out too); a
// revoked key's session ends; neither the key nor the admin token is ever
// in a URL, a page after sign-in, or a log line.
func TestSessions(t *testing.T) {
	e := newEnv(t)
	op := e.Browser()
	if code, to := op.SignIn("wrong-" + adminToken); code != http.StatusUnauthorized || to != "" {
		t.Fatalf("a wrong token: %d to %q; want 401 and the form again", code, to)
	}
	tok := op.CSRF("/")
	res, _ := op.Do("POST", "/ui/signin", url.Values{"csrf": {tok}, "secret": {adminToken}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/admin" {
		t.Fatalf("operator sign-in: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "farebox_session" && c.Value != "" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Secure || cookie.Path != "/" {
		t.Fatalf("session cookie: %+v; want HttpOnly, SameSite=Strict, Path /, not Secure over plain HTTP", cookie)
	}
	if strings.Contains(cookie.Value, adminToken) {
		t.Fatal("the session cookie carries the admin token")
	}
	res, page := op.Do("GET", "/ui/admin", nil)
	if res.StatusCode != 200 {
		t.Fatalf("GET /ui/admin: %d", res.StatusCode)
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(page, adminToken) {
		t.Error("the operator's page shows the admin token")
	}

	// The grant form: refused without its token, and with another's.
	grant := url.Values{"amount": {"250"}, "source": {"promo"}, "idempotency_key": {"g-1"}}
	if res, _ := op.Do("POST", "/ui/admin/customers/beta/grant", grant); res.StatusCode != http.StatusForbidden {
		t.Errorf("a grant without a CSRF token: %d; want 403", res.StatusCode)
	}
	grant.Set("csrf", "x"+op.CSRF("/ui/admin/customers/beta"))
	if res, _ := op.Do("POST", "/ui/admin/customers/beta/grant", grant); res.StatusCode != http.StatusForbidden {
		t.Errorf("a grant with a wrong CSRF token: %d; want 403", res.StatusCode)
	}
	var bal, before struct{ Available string }
	e.JSON("/api/v1/customers/beta/balance", &before)
	grant.Set("csrf", "")
	if res, _ := op.Do("POST", "/ui/admin/customers/beta/grant", grant); res.StatusCode != http.StatusForbidden {
		t.Errorf("a grant with an empty CSRF token: %d; want 403", res.StatusCode)
	}
	e.JSON("/api/v1/customers/beta/balance", &bal)
	if bal.Available != before.Available {
		t.Fatalf("beta's available after refused grants = %s, want %s", bal.Available, before.Available)
	}
	grant.Set("csrf", op.CSRF("/ui/admin/customers/beta"))
	for range 2 { // the same form twice: one grant (its idempotency key)
		if res, _ := op.Do("POST", "/ui/admin/customers/beta/grant", grant); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("a grant with its token: %d; want 303", res.StatusCode)
		}
	}
	e.JSON("/api/v1/customers/beta/balance", &bal)
	if want := uitest.Plus(t, before.Available, "250"); bal.Available != want {
		t.Fatalf("beta's available after the grant (sent twice) = %s, want %s", bal.Available, want)
	}

	// Sign-out ends the session; the old cookie, replayed, is worthless.
	res, _ = op.Do("POST", "/ui/signout", url.Values{"csrf": {op.CSRF("/ui/admin")}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Fatalf("sign-out: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	replay, _ := http.NewRequest("GET", e.URL+"/ui/admin", nil)
	replay.AddCookie(cookie)
	r2, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(replay)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusSeeOther || r2.Header.Get("Location") != "/" {
		t.Fatalf("the signed-out cookie replayed: %d to %q; want 303 to the sign-in", r2.StatusCode, r2.Header.Get("Location"))
	}
	// A forged cookie (a real session id, another signature) is nobody.
	forged := &http.Cookie{Name: "farebox_session", Value: strings.SplitN(cookie.Value, ".", 2)[0] + ".AAAA"}
	replay.Header.Del("Cookie")
	replay.AddCookie(forged)
	if r3, err := http.DefaultTransport.RoundTrip(replay); err != nil || r3.StatusCode != http.StatusSeeOther {
		t.Fatalf("a forged cookie: %v, %v", r3, err)
	}

	// A customer whose key is revoked is signed out with it.
	cu := e.Browser()
	if code, _ := cu.SignIn(e.acmeKey2); code != http.StatusSeeOther {
		t.Fatalf("sign-in with acme's second key: %d", code)
	}
	if res, _ := cu.Do("GET", "/ui/account", nil); res.StatusCode != 200 {
		t.Fatalf("GET /ui/account: %d", res.StatusCode)
	}
	e.API("DELETE", "/api/v1/keys/"+e.acmeID2, "", 200)
	if res, _ := cu.Do("GET", "/ui/account", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("GET /ui/account after its key was revoked: %d; want 303 to the sign-in", res.StatusCode)
	}

	// A key made on the keys page is shown once, in that response only.
	if code, _ := cu.SignIn(e.acmeKey); code != http.StatusSeeOther {
		t.Fatal("sign-in again")
	}
	res, page = cu.Do("POST", "/ui/account/keys", url.Values{"csrf": {cu.CSRF("/ui/account/keys")}, "name": {"new one"}})
	secret := uitest.Between(page, `<code class="secret" id="new-key">`, `</code>`)
	if res.StatusCode != 200 || !strings.HasPrefix(secret, "fbk_") {
		t.Fatalf("creating a key: %d, secret %q", res.StatusCode, secret)
	}
	if _, page := cu.Do("GET", "/ui/account/keys", nil); strings.Contains(page, secret) {
		t.Error("the new key is shown again")
	}

	for _, s := range []string{adminToken, e.acmeKey, e.acmeKey2, secret} {
		if strings.Contains(e.logs.String(), s) {
			t.Errorf("a secret (%.8s…) is in the log", s)
		}
	}
	if !strings.Contains(e.logs.String(), "/ui/signin") {
		t.Error("the log has no access line of the sign-in: is it logging at all?")
	}
}
