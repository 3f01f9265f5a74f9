package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/ledger"
	"farebox/store/sqlite"
)

const token = "test-admin-token"

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type testServer struct {
	t      *testing.T
	url    string
	clock  *clock
	engine *ledger.Engine
	client *http.Client
}

func newServer(t *testing.T) *testServer {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "farebox.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: t0}
	eng := ledger.NewEngine(st, ledger.Config{Cache: true, Now: c.Now})
	srv := &Server{Store: st, Engine: eng, AdminToken: token, Now: c.Now}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		eng.Close()
		st.Close()
	})
	tr := &http.Transport{MaxIdleConnsPerHost: 200}
	return &testServer{t: t, url: hs.URL, clock: c, engine: eng, client: &http.Client{Transport: tr}}
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// do sends a request with the admin token and a JSON content type.
func (s *testServer) do(method, path, body string, hdr ...string) response {
	s.t.Helper()
	h := map[string]string{"Authorization": "Bearer " + token}
	if body != "" {
		h["Content-Type"] = "application/json"
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		h[hdr[i]] = hdr[i+1]
	}
	return s.send(method, path, strings.NewReader(body), h)
}

func (s *testServer) send(method, path string, body io.Reader, hdr map[string]string) response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &r.body); err != nil {
			s.t.Fatalf("%s %s: body is not a JSON object: %q", method, path, b)
		}
	}
	if ct := resp.Header.Get("Content-Type"); len(b) > 0 && ct != "application/json" {
		s.t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	return r
}

func (r response) str(path ...string) string {
	var v any = r.body
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Sprintf("<no %s>", p)
		}
		v = m[p]
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

func (s *testServer) want(r response, status int) response {
	s.t.Helper()
	if r.status != status {
		s.t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	return r
}

// wantError checks an error answer: status, type, code and the body shape.
func (s *testServer) wantError(r response, status int, typ, code, param string) {
	s.t.Helper()
	if r.status != status {
		s.t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	e, ok := r.body["error"].(map[string]any)
	if !ok || len(r.body) != 1 {
		s.t.Fatalf("error body %s", r.raw)
	}
	for _, k := range []string{"type", "code", "message", "param"} {
		if _, ok := e[k]; !ok {
			s.t.Fatalf("error body lacks %q: %s", k, r.raw)
		}
	}
	if e["type"] != typ || (code != "" && e["code"] != code) {
		s.t.Fatalf("error %s, want type %s code %s", r.raw, typ, code)
	}
	if msg, _ := e["message"].(string); len(msg) < 10 {
		s.t.Fatalf("unhelpful message: %s", r.raw)
	}
	switch {
	case param == "" && e["param"] != nil:
		s.t.Fatalf("param %v, want null: %s", e["param"], r.raw)
	case param != "" && e["param"] != param:
		s.t.Fatalf("param %v, want %s: %s", e["param"], param, r.raw)
	}
	if r.header.Get("X-Request-Id") == "" {
		s.t.Fatal("no X-Request-Id")
	}
}

func (s *testServer) customer(id string) {
	s.t.Helper()
	s.want(s.do("POST", "/api/v1/customers", `{"id":"`+id+`","name":"`+id+` Inc"}`), 201)
}

func (s *testServer) balance(id string) response {
	s.t.Helper()
	return s.want(s.do("GET", "/api/v1/customers/"+id+"/balance", ""), 200)
}

func (s *testServer) wantBalance(id, available, held string) {
	s.t.Helper()
	b := s.balance(id)
	if b.str("available") != available || b.str("held") != held {
		s.t.Fatalf("balance available %s held %s, want %s and %s: %s", b.str("available"), b.str("held"), available, held, b.raw)
	}
}

func TestHealth(t *testing.T) {
	s := newServer(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		r := s.send("GET", p, nil, nil)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", p, r.status, r.raw)
		}
	}
}

func TestCustomers(t *testing.T) {
	s := newServer(t)
	r := s.want(s.do("POST", "/api/v1/customers", `{"id":"acme","name":"Acme"}`), 201)
	if r.str("id") != "acme" || r.str("name") != "Acme" || r.str("created_at") != "2026-11-01T12:00:00Z" {
		t.Fatalf("created %s", r.raw)
	}
	// The same create again answers with what exists; another name conflicts.
	s.want(s.do("POST", "/api/v1/customers", `{"id":"acme","name":"Acme"}`), 200)
	s.wantError(s.do("POST", "/api/v1/customers", `{"id":"acme","name":"Other"}`), 409, fb.EConflict, "customer_exists", "")
	// Without an id one is made.
	r = s.want(s.do("POST", "/api/v1/customers", `{"name":"No id"}`), 201)
	if !strings.HasPrefix(r.str("id"), "cus_") {
		t.Fatalf("generated id %s", r.str("id"))
	}
	s.customer("beta")
	s.customer("gamma")
	r = s.want(s.do("GET", "/api/v1/customers?limit=2", ""), 200)
	data, _ := r.body["data"].([]any)
	if len(data) != 2 || r.body["has_more"] != true {
		t.Fatalf("page 1: %s", r.raw)
	}
	last := data[1].(map[string]any)["id"].(string)
	r = s.want(s.do("GET", "/api/v1/customers?limit=2&starting_after="+last, ""), 200)
	data, _ = r.body["data"].([]any)
	if len(data) != 2 || r.body["has_more"] != false {
		t.Fatalf("page 2: %s", r.raw)
	}
	s.wantError(s.do("GET", "/api/v1/customers?limit=0", ""), 400, fb.EInvalid, "", "limit")
	s.wantError(s.do("GET", "/api/v1/customers?limit=abc", ""), 400, fb.EInvalid, "", "limit")
	r = s.want(s.do("GET", "/api/v1/customers/beta", ""), 200)
	if r.str("name") != "beta Inc" {
		t.Fatalf("get %s", r.raw)
	}
	s.wantError(s.do("GET", "/api/v1/customers/nobody", ""), 404, fb.ENotFound, "", "")
	s.wantError(s.do("POST", "/api/v1/customers", `{"id":"bad id!"}`), 400, fb.EInvalid, "", "id")
	s.wantError(s.do("POST", "/api/v1/customers", `{"id":"`+strings.Repeat("x", 65)+`"}`), 400, fb.EInvalid, "", "id")
	s.wantError(s.do("POST", "/api/v1/customers", `{"name":"`+strings.Repeat("x", 201)+`"}`), 400, fb.EInvalid, "", "name")
}

func TestGrantHoldCaptureRelease(t *testing.T) {
	s := newServer(t)
	s.customer("acme")
	r := s.want(s.do("POST", "/api/v1/customers/acme/grants", `{"amount":"100","source":"purchase","paid_usd":"1"}`), 201)
	lot := r.body["lot"].(map[string]any)
	if lot["amount"] != "100" || lot["remaining"] != "100" || lot["source"] != "purchase" || lot["priority"] != float64(20) ||
		lot["paid_usd"] != "1" || lot["cost_basis_usd"] != "0.01" || lot["expires_at"] != nil {
		t.Fatalf("lot %s", r.raw)
	}
	// Numbers are accepted too, and exactly.
	s.want(s.do("POST", "/api/v1/customers/acme/grants", `{"amount":0.5,"source":"promo","expires_at":"2026-12-01T00:00:00Z"}`), 201)
	s.wantBalance("acme", "100.5", "0")

	r = s.want(s.do("POST", "/api/v1/holds", `{"customer":"acme","amount":"25","ttl_seconds":120}`), 201)
	hold := r.str("id")
	if !strings.HasPrefix(hold, "hold_") || r.str("amount") != "25" || r.str("status") != "pending" || r.str("expires_at") != "2026-11-01T12:02:00Z" {
		t.Fatalf("hold %s", r.raw)
	}
	s.wantBalance("acme", "75.5", "25")
	r = s.want(s.do("GET", "/api/v1/holds/"+hold, ""), 200)
	if r.str("status") != "pending" || r.str("customer") != "acme" {
		t.Fatalf("get hold %s", r.raw)
	}

	r = s.want(s.do("POST", "/api/v1/holds/"+hold+"/capture", `{"amount":"12.000001"}`), 200)
	captured := r
	if r.str("status") != "captured" || r.str("captured") != "12.000001" || r.str("released") != "12.999999" || r.str("uncollected") != "0" {
		t.Fatalf("capture %s", r.raw)
	}
	s.wantBalance("acme", "88.499999", "0")
	r = s.want(s.do("GET", "/api/v1/holds/"+hold, ""), 200)
	if r.str("status") != "captured" || r.str("captured") != "12.000001" {
		t.Fatalf("captured hold %s", r.raw)
	}
	// The same capture again answers the same; anything else conflicts.
	r2 := s.want(s.do("POST", "/api/v1/holds/"+hold+"/capture", `{"amount":"12.000001"}`), 200)
	if r2.raw != captured.raw {
		t.Fatalf("repeated capture %s", r2.raw)
	}
	s.wantBalance("acme", "88.499999", "0")
	s.wantError(s.do("POST", "/api/v1/holds/"+hold+"/capture", `{"amount":"13"}`), 409, fb.EConflict, "hold_resolved", "")
	s.wantError(s.do("POST", "/api/v1/holds/"+hold+"/release", ""), 409, fb.EConflict, "hold_resolved", "")

	// Release, and a full capture with an empty body.
	r = s.want(s.do("POST", "/api/v1/holds", `{"customer":"acme","amount":"10"}`), 201)
	rel := s.want(s.do("POST", "/api/v1/holds/"+r.str("id")+"/release", ""), 200)
	if rel.str("status") != "released" || rel.str("released") != "10" {
		t.Fatalf("release %s", rel.raw)
	}
	r = s.want(s.do("POST", "/api/v1/holds", `{"customer":"acme","amount":"10"}`), 201)
	full := s.want(s.do("POST", "/api/v1/holds/"+r.str("id")+"/capture", ""), 200)
	if full.str("captured") != "10" || full.str("released") != "0" {
		t.Fatalf("full capture %s", full.raw)
	}
	s.wantBalance("acme", "78.499999", "0")

	// A capture above the hold takes the excess from available credit, and
	// what is not there is uncollected.
	r = s.want(s.do("POST", "/api/v1/holds", `{"customer":"acme","amount":"1"}`), 201)
	over := s.want(s.do("POST", "/api/v1/holds/"+r.str("id")+"/capture", `{"amount":"80"}`), 200)
	if over.str("captured") != "80" || over.str("uncollected") != "1.500001" {
		t.Fatalf("capture above everything %s", over.raw)
	}
	b := s.balance("acme")
	if b.str("available") != "0" || b.str("uncollected") != "1.500001" {
		t.Fatalf("balance %s", b.raw)
	}
}

func TestInsufficientAndPartial(t *testing.T) {
	s := newServer(t)
	s.customer("acme")
	s.want(s.do("POST", "/api/v1/customers/acme/grants", `{"amount":"10"}`), 201)
	s.wantError(s.do("POST", "/api/v1/holds", `{"customer":"acme","amount":"10.000001"}`), 402, fb.EInsufficientCredits, "", "")
	r := s.want(s.do("POST", "/api/v1/holds", `{"customer":"acme","amount":"50","allow_partial":true}`), 201)
	if r.str("amount") != "10" || r.str("requested") != "50" {
		t.Fatalf("partial hold %s", r.raw)
	}
	s.wantBalance("acme", "0", "10")
	s.wantError(s.do("POST", "/api/v1/holds", `{"customer":"acme","amount":"1","allow_partial":true}`), 402, fb.EInsufficientCredits, "", "")
}

func TestIdempotencyOverHTTP(t *testing.T) {
	s := newServer(t)
	s.customer("acme")
	g1 := s.want(s.do("POST", "/api/v1/customers/acme/grants", `{"amount":"10"}`, "Idempotency-Key", "g-1"), 201)
	g2 := s.want(s.do("POST", "/api/v1/customers/acme/grants", `{"amount":"10.0"}`, "Idempotency-Key", "g-1"), 201)
	if g1.body["lot"].(map[string]any)["id"] != g2.body["lot"].(map[string]any)["id"] {
		t.Fatalf("replayed grant made a second lot: %s / %s", g1.raw, g2.raw)
	}
	// The key may come in the body instead.
	g3 := s.want(s.do("POST", "/api/v1/customers/acme/grants", `{"amount":"10","idempotency_key":"g-1"}`), 201)
	if g3.body["lot"].(map[string]any)["id"] != g1.body["lot"].(map[string]any)["id"] {
		t.Fatalf("body key replay: %s", g3.raw)
	}
	s.wantBalance("acme", "10", "0")
	s.wantError(s.do("POST", "/api/v1/customers/acme/grants", `{"amount":"11"}`, "Idempotency-Key", "g-1"), 409, fb.EIdempotencyConflict, "", "")
	s.wantError(s.do("POST", "/api/v1/customers/acme/grants", `{"amount":"1","idempotency_key":"a"}`, "Idempotency-Key", "b"), 400, fb.EInvalid, "", "idempotency_key")
	s.wantError(s.do("POST", "/api/v1/customers/acme/grants", `{"amount":"1"}`, "Idempotency-Key", strings.Repeat("k", 256)), 400, fb.EInvalid, "", "idempotency_key")

	h1 := s.want(s.do("POST", "/api/v1/holds", `{"customer":"acme","amount":"4"}`, "Idempotency-Key", "h-1"), 201)
	h2 := s.want(s.do("POST", "/api/v1/holds", `{"customer":"acme","amount":"4"}`, "Idempotency-Key", "h-1"), 201)
	if h1.str("id") != h2.str("id") {
		t.Fatalf("replayed hold %s / %s", h1.raw, h2.raw)
	}
	s.wantBalance("acme", "6", "4")
	c1 := s.want(s.do("POST", "/api/v1/holds/"+h1.str("id")+"/capture", `{"amount":"3"}`, "Idempotency-Key", "c-1"), 200)
	c2 := s.want(s.do("POST", "/api/v1/holds/"+h1.str("id")+"/capture", `{"amount":"3"}`, "Idempotency-Key", "c-1"), 200)
	if c1.raw != c2.raw {
		t.Fatalf("replayed capture %s / %s", c1.raw, c2.raw)
	}
	s.wantError(s.do("POST", "/api/v1/holds/"+h1.str("id")+"/capture", `{"amount":"2"}`, "Idempotency-Key", "c-1"), 409, fb.EIdempotencyConflict, "", "")
	s.wantBalance("acme", "7", "0")
}

// TestHoldTTLOverHTTP: with the clock past a hold's TTL the hold shows as
// expired at once, the sweep releases it, and a late capture gets 409.
func TestHoldTTLOverHTTP(t *testing.T) {
	s := newServer(t)
	s.customer("acme")
	s.want(s.do("POST", "/api/v1/customers/acme/grants", `{"amount":"10"}`), 201)
	h := s.want(s.do("POST", "/api/v1/holds", `{"customer":"acme","amount":"4","ttl_seconds":30}`), 201).str("id")
	s.clock.Add(30 * time.Second)
	if r := s.want(s.do("GET", "/api/v1/holds/"+h, ""), 200); r.str("status") != "expired" {
		t.Fatalf("hold past its TTL: %s", r.raw)
	}
	s.wantBalance("acme", "10", "0") // the balance is shown as of now
	if n, err := s.engine.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("sweep %d, %v", n, err)
	}
	s.wantError(s.do("POST", "/api/v1/holds/"+h+"/capture", `{"amount":"1"}`), 409, fb.EConflict, "hold_expired", "")
	s.wantBalance("acme", "10", "0")
}

func TestLotExpiryOverHTTP(t *testing.T) {
	s := newServer(t)
	s.customer("acme")
	s.want(s.do("POST", "/api/v1/customers/acme/grants", `{"amount":"10","source":"promo","expires_at":"2026-11-01T13:00:00Z"}`), 201)
	s.wantBalance("acme", "10", "0")
	s.clock.Add(time.Hour)
	s.wantBalance("acme", "0", "0")
	s.wantError(s.do("POST", "/api/v1/holds", `{"customer":"acme","amount":"1"}`), 402, fb.EInsufficientCredits, "", "")
	s.wantError(s.do("POST", "/api/v1/customers/acme/grants", `{"amount":"1","expires_at":"2026-11-01T12:00:00Z"}`), 400, fb.EInvalid, "", "expires_at")
}

func TestBadInput(t *testing.T) {
	s := newServer(t)
	s.customer("acme")
	grants := "/api/v1/customers/acme/grants"
	cases := []struct {
		name, path, body string
		param            string
	}{
		{"malformed JSON", grants, `{"amount":`, ""},
		{"not an object", grants, `[1,2]`, ""},
		{"trailing data", grants, `{"amount":"1"} {}`, ""},
		{"empty body", grants, ` `, ""},
		{"unknown field", grants, `{"amount":"1","amuont":"2"}`, "amuont"},
		{"amount as bool", grants, `{"amount":true}`, "amount"},
		{"amount as object", grants, `{"amount":{"value":1}}`, "amount"},
		{"amount missing", grants, `{"source":"purchase"}`, "amount"},
		{"seven decimals", grants, `{"amount":"1.0000001"}`, "amount"},
		{"seven decimals as a number", grants, `{"amount":1.0000001}`, "amount"},
		{"exponent", grants, `{"amount":"1e3"}`, "amount"},
		{"exponent number", grants, `{"amount":1e3}`, "amount"},
		{"NaN", grants, `{"amount":"NaN"}`, "amount"},
		{"negative", grants, `{"amount":"-5"}`, "amount"},
		{"zero", grants, `{"amount":"0"}`, "amount"},
		{"overflow", grants, `{"amount":"9223372036855"}`, "amount"},
		{"beyond the account bound", grants, `{"amount":"9000000000000"}`, "amount"},
		{"unknown source", grants, `{"amount":"1","source":"gift"}`, "source"},
		{"paid promo", grants, `{"amount":"1","source":"promo","paid_usd":"1"}`, "paid_usd"},
		{"negative paid", grants, `{"amount":"1","paid_usd":"-1"}`, "paid_usd"},
		{"bad time", grants, `{"amount":"1","expires_at":"tomorrow"}`, "expires_at"},
		{"priority type", grants, `{"amount":"1","priority":"high"}`, "priority"},
		{"priority range", grants, `{"amount":"1","priority":5000}`, "priority"},
		{"hold without customer", "/api/v1/holds", `{"amount":"1"}`, "customer"},
		{"hold ttl zero", "/api/v1/holds", `{"customer":"acme","amount":"1","ttl_seconds":0}`, "ttl_seconds"},
		{"hold ttl too long", "/api/v1/holds", `{"customer":"acme","amount":"1","ttl_seconds":86401}`, "ttl_seconds"},
		{"hold ttl fraction", "/api/v1/holds", `{"customer":"acme","amount":"1","ttl_seconds":1.5}`, "ttl_seconds"},
		{"hold partial type", "/api/v1/holds", `{"customer":"acme","amount":"1","allow_partial":"yes"}`, "allow_partial"},
		{"capture negative", "/api/v1/holds/hold_x/capture", `{"amount":"-1"}`, "amount"},
		{"release with amount", "/api/v1/holds/hold_x/release", `{"amount":"1"}`, "amount"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s.t = t
			s.wantError(s.do("POST", c.path, c.body), 400, fb.EInvalid, fb.EInvalid, c.param)
		})
	}
	s.t = t
	s.wantBalance("acme", "0", "0")

	// 413: over 1 MiB, with and without a Content-Length.
	big := `{"amount":"1","idempotency_key":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	s.wantError(s.do("POST", grants, big), 413, fb.ETooLarge, "", "")
	r := s.send("POST", grants, io.MultiReader(strings.NewReader(big)), map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"})
	s.wantError(r, 413, fb.ETooLarge, "", "")
	// 415.
	s.wantError(s.do("POST", grants, `{"amount":"1"}`, "Content-Type", "text/plain"), 415, fb.EUnsupportedMedia, "", "")
	s.wantError(s.do("POST", grants, `amount=1`, "Content-Type", "application/x-www-form-urlencoded"), 415, fb.EUnsupportedMedia, "", "")
	// 404s.
	s.wantError(s.do("POST", "/api/v1/customers/nobody/grants", `{"amount":"1"}`), 404, fb.ENotFound, "unknown_customer", "")
	s.wantError(s.do("GET", "/api/v1/customers/nobody/balance", ""), 404, fb.ENotFound, "", "")
	s.wantError(s.do("POST", "/api/v1/holds", `{"customer":"nobody","amount":"1"}`), 404, fb.ENotFound, "unknown_customer", "")
	s.wantError(s.do("GET", "/api/v1/holds/hold_nope", ""), 404, fb.ENotFound, "", "")
	s.wantError(s.do("POST", "/api/v1/holds/hold_nope/capture", ""), 404, fb.ENotFound, "", "")
	s.wantError(s.do("GET", "/api/v1/nothing", ""), 404, fb.ENotFound, "", "")
	// 405 with Allow.
	r = s.do("DELETE", "/api/v1/customers", "")
	s.wantError(r, 405, fb.EMethodNotAllowed, "", "")
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Fatalf("Allow %q", allow)
	}
}

func TestAuth(t *testing.T) {
	s := newServer(t)
	for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer wrong", "Basic " + token, token, "Bearer " + token + "x"} {
		r := s.send("GET", "/api/v1/customers", nil, map[string]string{"Authorization": auth})
		s.wantError(r, 401, fb.EUnauthorized, "", "")
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("401 without WWW-Authenticate: %v", r.header)
		}
	}
	// Auth comes before the body is looked at.
	r := s.send("POST", "/api/v1/customers", strings.NewReader(`{`), map[string]string{"Content-Type": "application/json"})
	s.wantError(r, 401, fb.EUnauthorized, "", "")
	// The request id is echoed.
	r = s.send("GET", "/healthz", nil, map[string]string{"X-Request-Id": "req-abc"})
	if r.header.Get("X-Request-Id") != "req-abc" {
		t.Fatalf("X-Request-Id %q", r.header.Get("X-Request-Id"))
	}
}

// TestConcurrentHoldsOverHTTP: 1,000 concurrent 1-credit holds against 100
// credits: exactly 100 succeed.
func TestConcurrentHoldsOverHTTP(t *testing.T) {
	s := newServer(t)
	s.customer("acme")
	s.want(s.do("POST", "/api/v1/customers/acme/grants", `{"amount":"100"}`), 201)
	var wg sync.WaitGroup
	statuses := make([]int, 1000)
	sem := make(chan struct{}, 200)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			req, _ := http.NewRequest("POST", s.url+"/api/v1/holds", bytes.NewReader([]byte(`{"customer":"acme","amount":"1"}`)))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", fmt.Sprintf("h-%d", i))
			resp, err := s.client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for _, st := range statuses {
		count[st]++
	}
	if count[201] != 100 || count[402] != 900 {
		t.Fatalf("statuses %v, want 100×201 and 900×402", count)
	}
	s.wantBalance("acme", "0", "100")
}
