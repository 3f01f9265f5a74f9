package api

// HTTP tests of the management API against a real SQLite store and ledger
// engine, with an injected clock.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/compute"
	"farebox/fakeclock"
	"farebox/gateway"
	"farebox/ids"
	"farebox/ledger"
	"farebox/metering"
	"farebox/notify"
	"farebox/payments"
	"farebox/plans"
	"farebox/routing"
	"farebox/sponsored"
	"farebox/store/cache"
	"farebox/store/sqlite"
	"farebox/testlog"
)

const adminTok = "srv-test-admin-token-0123456789"

var clockStart = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

type harness struct {
	t       *testing.T
	url     string
	handler http.Handler
	clk     *fakeclock.Clock
	eng     *ledger.Engine
	srv     *Server
	store   fb.Store
	client  *http.Client
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWrapped(t, nil)
}

// newHarnessWrapped is a harness whose services use wrap(store) (a store
// that fails on purpose) instead of the store itself.
func newHarnessWrapped(t *testing.T, wrap func(fb.Store) fb.Store) *harness {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "farebox.db"), sqlite.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	var s fb.Store = st
	if wrap != nil {
		s = wrap(st)
	}
	return newHarnessOn(t, s, ledger.Config{Cache: true})
}

// newHarnessOn serves the API over st, which it closes at the end, with an
// engine of cfg on the harness's clock: the services built as the app
// builds them (package app cannot be imported here: it imports api).
func newHarnessOn(t *testing.T, st fb.Store, cfg ledger.Config) *harness {
	t.Helper()
	clk := fakeclock.New(clockStart)
	cfg.Now = clk.Now
	if cfg.WriteTimeout == 0 {
		// Under the race detector a batch of 4,096 metered events takes
		// SQLite (pure Go) tens of seconds on a loaded two-core machine,
		// past the 30 s a production batch gets; the tests here are about
		// what commits, not how fast.
		cfg.WriteTimeout = 5 * time.Minute
	}
	log := testlog.New(t)
	cfg.Logger = log
	eng := ledger.NewEngine(st, cfg)
	srv := testServer(st, eng, clk)
	srv.Log = log
	h := srv.routes()
	hs := httptest.NewServer(h)
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		hs.Close()
		eng.Close()
		st.Close()
	})
	return &harness{t: t, url: hs.URL, handler: h, clk: clk, eng: eng, srv: srv, store: srv.Store, client: &http.Client{Transport: tr}}
}

// testServer is the API's server over st and eng, with every service it
// needs (no deployments).
func testServer(st fb.Store, eng *ledger.Engine, clk *fakeclock.Clock) *Server {
	cs := cache.New(st, cache.Options{Now: clk.Now})
	router, _ := routing.NewRouter(nil)
	sp, err := sponsored.New(sponsored.Deps{Store: cs, Ledger: eng, Clock: clk, Secret: []byte("api-test-secret-0123456789abcdef")}, sponsored.Config{})
	if err != nil {
		panic(err)
	}
	gw := gateway.New(gateway.Deps{Catalog: cs, Ledger: eng, Cards: cs, Router: router, Sponsor: sp, Clock: clk, NewID: ids.New}, gateway.Config{})
	var leases *compute.Service
	if eng != nil {
		leases = compute.New(compute.Deps{Store: cs, Ledger: eng, Clock: clk, NewID: ids.New})
	}
	nt := notify.New(cs, clk, ids.New, nil, notify.Config{})
	return &Server{Deps: Deps{
		Store: cs, Engine: eng, Plans: plans.New(cs, eng, clk, nil), Meter: metering.New(eng, cs, cs, clk.Now), Cards: cs, Gateway: gw, Compute: leases, Sponsored: sp,
		Notify: nt, Payments: payments.New(nil, cs, eng, nt, clk, nil, payments.Config{USDPerCredit: 10_000}),
		AdminToken: adminTok, Clock: clk, NewID: ids.New, Log: slog.New(slog.DiscardHandler),
	}}
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// get walks the JSON body by keys (an array by index) and returns the
// value found as a string (strings as they are, anything else formatted,
// missing as "<missing>").
func (r reply) get(keys ...string) string {
	var v any = r.body
	for _, k := range keys {
		if a, ok := v.([]any); ok {
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(a) {
				return "<missing>"
			}
			v = a[i]
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			return "<missing>"
		}
		if v, ok = m[k]; !ok {
			return "<missing>"
		}
	}
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return "<null>"
	}
	return fmt.Sprint(v)
}

// call sends a request with the admin token (and a JSON Content-Type when
// there is a body). hdr holds name, value pairs; an empty value removes the
// header.
func (h *harness) call(method, path, body string, hdr ...string) reply {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminTok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	return h.roundTrip(req)
}

func (h *harness) roundTrip(req *http.Request) reply {
	h.t.Helper()
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	checkDocumented(h.t, req.Method, req.URL.EscapedPath(), resp.StatusCode, resp.Header, b)
	return decodeReply(h.t, req.Method+" "+req.URL.Path, resp.StatusCode, resp.Header, b)
}

func decodeReply(t *testing.T, what string, status int, hdr http.Header, b []byte) reply {
	t.Helper()
	r := reply{status: status, header: hdr, raw: string(b)}
	if len(b) > 0 {
		if ct := hdr.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s: Content-Type %q, want application/json", what, ct)
		}
		if err := json.Unmarshal(b, &r.body); err != nil {
			t.Fatalf("%s: body is not a JSON object: %q", what, b)
		}
	}
	return r
}

// record serves one request through Handler() with an httptest.Recorder.
func (h *harness) record(req *http.Request) reply {
	h.t.Helper()
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, req)
	checkDocumented(h.t, req.Method, req.URL.EscapedPath(), rec.Code, rec.Result().Header, rec.Body.Bytes())
	return decodeReply(h.t, req.Method+" "+req.URL.Path, rec.Code, rec.Result().Header, rec.Body.Bytes())
}

func (h *harness) expect(r reply, status int) reply {
	h.t.Helper()
	if r.status != status {
		h.t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	return r
}

// expectErr checks status, the exact error body shape
// {"error":{"type","code","message","param"}}, the type, the code (when
// code is not empty) and param (null when param is empty).
func (h *harness) expectErr(r reply, status int, typ, code, param string) {
	h.t.Helper()
	if r.status != status {
		h.t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	var shape map[string]map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.raw), &shape); err != nil || len(shape) != 1 || shape["error"] == nil {
		h.t.Fatalf("error body is not {\"error\":{...}}: %s", r.raw)
	}
	e := shape["error"]
	for _, k := range []string{"type", "code", "message", "param"} {
		if _, ok := e[k]; !ok {
			h.t.Fatalf("error body lacks %q: %s", k, r.raw)
		}
	}
	if len(e) != 4 {
		h.t.Fatalf("error body has extra fields: %s", r.raw)
	}
	if got := r.get("error", "type"); got != typ {
		h.t.Fatalf("error type %q, want %q: %s", got, typ, r.raw)
	}
	if got := r.get("error", "code"); got == "" || got == "<null>" || (code != "" && got != code) {
		h.t.Fatalf("error code %q, want %q: %s", got, code, r.raw)
	}
	if msg := r.get("error", "message"); strings.TrimSpace(msg) == "" || msg == "<null>" {
		h.t.Fatalf("empty error message: %s", r.raw)
	}
	got := r.get("error", "param")
	if param == "" && got != "<null>" {
		h.t.Fatalf("param %q, want null: %s", got, r.raw)
	}
	if param != "" && got != param {
		h.t.Fatalf("param %q, want %q: %s", got, param, r.raw)
	}
	if r.header.Get("X-Request-Id") == "" {
		h.t.Fatalf("error answer without X-Request-Id")
	}
}

func (h *harness) newCustomer(id string) {
	h.t.Helper()
	h.expect(h.call("POST", "/api/v1/customers", `{"id":"`+id+`","name":"`+id+`"}`), 201)
}

func (h *harness) grant(id, body string) reply {
	h.t.Helper()
	return h.expect(h.call("POST", "/api/v1/customers/"+id+"/grants", body), 201)
}

func (h *harness) hold(body string) reply {
	h.t.Helper()
	return h.expect(h.call("POST", "/api/v1/holds", body), 201)
}

// expectBalance checks the balance's available and held amounts exactly.
func (h *harness) expectBalance(id, available, held string) reply {
	h.t.Helper()
	r := h.expect(h.call("GET", "/api/v1/customers/"+id+"/balance", ""), 200)
	if r.get("customer") != id || r.get("available") != available || r.get("held") != held {
		h.t.Fatalf("balance of %s: available %s held %s, want %s and %s: %s", id, r.get("available"), r.get("held"), available, held, r.raw)
	}
	return r
}

// TestServerHealthWithoutToken: /healthz and /readyz answer 200 without a
// token (GET and HEAD); the management API does not.
func TestServerHealthWithoutToken(t *testing.T) {
	h := newHarness(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		for _, m := range []string{"GET", "HEAD"} {
			req, _ := http.NewRequest(m, h.url+p, nil)
			r := h.roundTrip(req)
			if r.status != 200 {
				t.Fatalf("%s %s: %d %s", m, p, r.status, r.raw)
			}
		}
	}
	r := h.expect(h.call("GET", "/healthz", "", "Authorization", ""), 200)
	if r.get("status") != "ok" {
		t.Fatalf("healthz %s", r.raw)
	}
	r = h.expect(h.call("GET", "/readyz", "", "Authorization", ""), 200)
	if r.get("status") != "ready" {
		t.Fatalf("readyz %s", r.raw)
	}
}

// TestServerCustomers: create (201), the identical create again (200, the
// same customer, its first created_at), a different body with the same id
// (409 conflict), get, and pagination with limit and starting_after.
func TestServerCustomers(t *testing.T) {
	h := newHarness(t)
	r := h.expect(h.call("POST", "/api/v1/customers", `{"id":"acme","name":"Acme Corp"}`), 201)
	if r.get("id") != "acme" || r.get("name") != "Acme Corp" || r.get("created_at") != "2026-11-23T10:00:00Z" {
		t.Fatalf("create: %s", r.raw)
	}
	first := r.raw
	h.clk.Advance(time.Minute)
	r = h.expect(h.call("POST", "/api/v1/customers", `{"id":"acme","name":"Acme Corp"}`), 200)
	if r.raw != first {
		t.Fatalf("identical create answered %s, want %s", r.raw, first)
	}
	h.expectErr(h.call("POST", "/api/v1/customers", `{"id":"acme","name":"Someone Else"}`), 409, fb.EConflict, "customer_exists", "")
	h.expectErr(h.call("POST", "/api/v1/customers", `{"id":"acme"}`), 409, fb.EConflict, "customer_exists", "")

	r = h.expect(h.call("GET", "/api/v1/customers/acme", ""), 200)
	if r.raw != first {
		t.Fatalf("get: %s, want %s", r.raw, first)
	}
	h.expectErr(h.call("GET", "/api/v1/customers/nobody", ""), 404, fb.ENotFound, "", "")

	// Five customers in all, listed in id order, two by two.
	for _, id := range []string{"c-3", "c-1", "c-4", "c-2"} {
		h.newCustomer(id)
	}
	var ids []string
	after := ""
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("pagination does not end")
		}
		path := "/api/v1/customers?limit=2"
		if after != "" {
			path += "&starting_after=" + after
		}
		r = h.expect(h.call("GET", path, ""), 200)
		var list struct {
			Data []struct {
				ID, Name string
			} `json:"data"`
			HasMore *bool `json:"has_more"`
		}
		if err := json.Unmarshal([]byte(r.raw), &list); err != nil || list.HasMore == nil {
			t.Fatalf("list: %s", r.raw)
		}
		wantMore := page < 2
		if *list.HasMore != wantMore || (wantMore && len(list.Data) != 2) {
			t.Fatalf("page %d: %s", page, r.raw)
		}
		for _, c := range list.Data {
			ids = append(ids, c.ID)
		}
		if !*list.HasMore {
			break
		}
		after = list.Data[len(list.Data)-1].ID
	}
	if got := strings.Join(ids, ","); got != "acme,c-1,c-2,c-3,c-4" {
		t.Fatalf("listed %s", got)
	}
	// Default limit, and an empty page is a list, not null.
	r = h.expect(h.call("GET", "/api/v1/customers", ""), 200)
	if n := len(r.body["data"].([]any)); n != 5 || r.get("has_more") != "false" {
		t.Fatalf("default page: %s", r.raw)
	}
	r = h.expect(h.call("GET", "/api/v1/customers?starting_after=zzz", ""), 200)
	if data, ok := r.body["data"].([]any); !ok || len(data) != 0 {
		t.Fatalf("empty page: %s", r.raw)
	}
	for _, bad := range []string{"0", "-1", "1001", "x", "1.5"} {
		h.expectErr(h.call("GET", "/api/v1/customers?limit="+bad, ""), 400, fb.EInvalid, fb.EInvalid, "limit")
	}
	// Without an id, one is made.
	r = h.expect(h.call("POST", "/api/v1/customers", `{"name":"anonymous"}`), 201)
	if !strings.HasPrefix(r.get("id"), "cus_") {
		t.Fatalf("generated id: %s", r.raw)
	}
}

// TestServerGrantAndBalance: grants answer 201 {"lot":{...}} with exact
// amounts from strings and numbers, defaults for source and priority, a
// cost basis, and the balance adds them up exactly.
func TestServerGrantAndBalance(t *testing.T) {
	h := newHarness(t)
	h.newCustomer("acme")
	h.expectBalance("acme", "0", "0")

	r := h.grant("acme", `{"amount":"100","paid_usd":"1"}`)
	lot, ok := r.body["lot"].(map[string]any)
	if !ok || len(r.body) != 1 {
		t.Fatalf("grant answer: %s", r.raw)
	}
	want := map[string]any{"customer": "acme", "amount": "100", "remaining": "100", "held": "0", "consumed": "0",
		"expired": "0", "source": "purchase", "priority": float64(20), "paid_usd": "1", "cost_basis_usd": "0.01",
		"expires_at": nil, "effective_at": "2026-11-23T10:00:00Z", "created_at": "2026-11-23T10:00:00Z"}
	for k, v := range want {
		if lot[k] != v {
			t.Fatalf("lot %s = %v, want %v: %s", k, lot[k], v, r.raw)
		}
	}
	if id, _ := lot["id"].(string); id == "" {
		t.Fatalf("lot without id: %s", r.raw)
	}
	r = h.grant("acme", `{"amount":"0.5","source":"promo","expires_at":"2026-12-01T00:00:00Z"}`)
	if r.get("lot", "amount") != "0.5" || r.get("lot", "priority") != "0" || r.get("lot", "expires_at") != "2026-12-01T00:00:00Z" || r.get("lot", "paid_usd") != "0" {
		t.Fatalf("promo lot: %s", r.raw)
	}
	r = h.grant("acme", `{"amount":0.000001,"source":"adjustment","priority":5}`)
	if r.get("lot", "amount") != "0.000001" || r.get("lot", "priority") != "5" {
		t.Fatalf("number amount: %s", r.raw)
	}
	r = h.grant("acme", `{"amount":"2.500000","source":"subscription"}`)
	if r.get("lot", "amount") != "2.5" || r.get("lot", "priority") != "10" {
		t.Fatalf("trailing zeros: %s", r.raw)
	}
	b := h.expectBalance("acme", "103.000001", "0")
	if lots, _ := b.body["lots"].([]any); len(lots) != 4 {
		t.Fatalf("balance lots: %s", b.raw)
	}
	for _, k := range []string{"overdraft_limit", "debt", "uncollected"} {
		if b.get(k) != "0" {
			t.Fatalf("balance %s = %s: %s", k, b.get(k), b.raw)
		}
	}
	// A lot that has expired by the clock no longer counts.
	h.clk.Advance(8 * 24 * time.Hour)
	h.expectBalance("acme", "102.500001", "0")
}

// TestServerHoldLifecycle: create (201), get, partial capture, full capture
// with an empty body, capture above the hold with allow_over_capture
// (excess from available, the rest uncollected) and release, with the exact answer and balance after
// each step.
func TestServerHoldLifecycle(t *testing.T) {
	h := newHarness(t)
	h.newCustomer("acme")
	h.grant("acme", `{"amount":"100"}`)

	r := h.hold(`{"customer":"acme","amount":"3","ttl_seconds":120}`)
	hold := r.get("id")
	if !strings.HasPrefix(hold, "hold_") || r.get("customer") != "acme" || r.get("amount") != "3" || r.get("requested") != "3" ||
		r.get("status") != "pending" || r.get("expires_at") != "2026-11-23T10:02:00Z" {
		t.Fatalf("hold: %s", r.raw)
	}
	h.expectBalance("acme", "97", "3")
	g := h.expect(h.call("GET", "/api/v1/holds/"+hold, ""), 200)
	if g.get("id") != hold || g.get("status") != "pending" || g.get("amount") != "3" || g.get("captured") != "<missing>" {
		t.Fatalf("get hold: %s", g.raw)
	}

	// Partial capture: 2.25 of 3.
	c := h.expect(h.call("POST", "/api/v1/holds/"+hold+"/capture", `{"amount":"2.25"}`), 200)
	if c.get("id") != hold || c.get("status") != "captured" || c.get("captured") != "2.25" || c.get("released") != "0.75" || c.get("uncollected") != "0" {
		t.Fatalf("partial capture: %s", c.raw)
	}
	h.expectBalance("acme", "97.75", "0")
	g = h.expect(h.call("GET", "/api/v1/holds/"+hold, ""), 200)
	if g.get("status") != "captured" || g.get("captured") != "2.25" || g.get("released") != "0.75" || g.get("uncollected") != "0" {
		t.Fatalf("captured hold: %s", g.raw)
	}

	// Full capture with no body.
	hold2 := h.hold(`{"customer":"acme","amount":"10.5"}`).get("id")
	h.expectBalance("acme", "87.25", "10.5")
	c = h.expect(h.call("POST", "/api/v1/holds/"+hold2+"/capture", ""), 200)
	if c.get("captured") != "10.5" || c.get("released") != "0" || c.get("uncollected") != "0" {
		t.Fatalf("full capture: %s", c.raw)
	}
	h.expectBalance("acme", "87.25", "0")

	// Full capture with an empty JSON object.
	hold3 := h.hold(`{"customer":"acme","amount":"0.25"}`).get("id")
	c = h.expect(h.call("POST", "/api/v1/holds/"+hold3+"/capture", `{}`), 200)
	if c.get("captured") != "0.25" || c.get("released") != "0" {
		t.Fatalf("capture {}: %s", c.raw)
	}
	h.expectBalance("acme", "87", "0")

	// Release.
	hold4 := h.hold(`{"customer":"acme","amount":"7"}`).get("id")
	h.expectBalance("acme", "80", "7")
	rel := h.expect(h.call("POST", "/api/v1/holds/"+hold4+"/release", ""), 200)
	if rel.get("id") != hold4 || rel.get("status") != "released" || rel.get("released") != "7" {
		t.Fatalf("release: %s", rel.raw)
	}
	h.expectBalance("acme", "87", "0")
	g = h.expect(h.call("GET", "/api/v1/holds/"+hold4, ""), 200)
	if g.get("status") != "released" || g.get("released") != "7" {
		t.Fatalf("released hold: %s", g.raw)
	}

	// Above the hold, opted in: 5 held, 20 captured; 15 come from available.
	hold5 := h.hold(`{"customer":"acme","amount":"5"}`).get("id")
	c = h.expect(h.call("POST", "/api/v1/holds/"+hold5+"/capture", `{"amount":"20","allow_over_capture":true}`), 200)
	if c.get("captured") != "20" || c.get("released") != "0" || c.get("uncollected") != "0" {
		t.Fatalf("capture above the hold: %s", c.raw)
	}
	h.expectBalance("acme", "67", "0")

	// Above everything: 1 held, 67 in all, 100 captured: 33 uncollected.
	hold6 := h.hold(`{"customer":"acme","amount":"1"}`).get("id")
	c = h.expect(h.call("POST", "/api/v1/holds/"+hold6+"/capture", `{"amount":"100","allow_over_capture":true}`), 200)
	if c.get("captured") != "100" || c.get("released") != "0" || c.get("uncollected") != "33" {
		t.Fatalf("capture above everything: %s", c.raw)
	}
	b := h.expectBalance("acme", "0", "0")
	if b.get("uncollected") != "33" {
		t.Fatalf("uncollected on the balance: %s", b.raw)
	}
}

// TestServerIdempotentGrant: the same Idempotency-Key and body give the
// same lot and move the balance once; the key may come in the body; a
// different body under the key → 409 idempotency_conflict; header and body
// keys that differ → 400.
func TestServerIdempotentGrant(t *testing.T) {
	h := newHarness(t)
	h.newCustomer("acme")
	path := "/api/v1/customers/acme/grants"
	a := h.expect(h.call("POST", path, `{"amount":"100"}`, "Idempotency-Key", "order-1"), 201)
	b := h.expect(h.call("POST", path, `{"amount":"100"}`, "Idempotency-Key", "order-1"), 201)
	if a.get("lot", "id") == "<missing>" || a.raw != b.raw {
		t.Fatalf("replay answered %s, first %s", b.raw, a.raw)
	}
	c := h.expect(h.call("POST", path, `{"amount":"100","idempotency_key":"order-1"}`), 201)
	if c.get("lot", "id") != a.get("lot", "id") {
		t.Fatalf("body key replay: %s", c.raw)
	}
	h.expectBalance("acme", "100", "0")

	h.expectErr(h.call("POST", path, `{"amount":"101"}`, "Idempotency-Key", "order-1"), 409, fb.EIdempotencyConflict, fb.EIdempotencyConflict, "")
	h.expectErr(h.call("POST", path, `{"amount":"100","source":"promo"}`, "Idempotency-Key", "order-1"), 409, fb.EIdempotencyConflict, "", "")
	h.expectErr(h.call("POST", path, `{"amount":"5","idempotency_key":"body-key"}`, "Idempotency-Key", "header-key"), 400, fb.EInvalid, fb.EInvalid, "idempotency_key")
	h.expectBalance("acme", "100", "0")

	// Another key is another grant.
	d := h.expect(h.call("POST", path, `{"amount":"100"}`, "Idempotency-Key", "order-2"), 201)
	if d.get("lot", "id") == a.get("lot", "id") {
		t.Fatalf("a new key replayed: %s", d.raw)
	}
	h.expectBalance("acme", "200", "0")
}

// TestServerIdempotentHold: a replayed hold gives the same hold id and is
// held once; a changed body → 409; header vs body key mismatch → 400.
func TestServerIdempotentHold(t *testing.T) {
	h := newHarness(t)
	h.newCustomer("acme")
	h.grant("acme", `{"amount":"10"}`)
	a := h.expect(h.call("POST", "/api/v1/holds", `{"customer":"acme","amount":"4"}`, "Idempotency-Key", "job-7"), 201)
	b := h.expect(h.call("POST", "/api/v1/holds", `{"customer":"acme","amount":"4.0"}`, "Idempotency-Key", "job-7"), 201)
	c := h.expect(h.call("POST", "/api/v1/holds", `{"customer":"acme","amount":4,"idempotency_key":"job-7"}`), 201)
	if a.get("id") != b.get("id") || a.get("id") != c.get("id") {
		t.Fatalf("replays made new holds: %s / %s / %s", a.raw, b.raw, c.raw)
	}
	h.expectBalance("acme", "6", "4")
	h.expectErr(h.call("POST", "/api/v1/holds", `{"customer":"acme","amount":"5"}`, "Idempotency-Key", "job-7"), 409, fb.EIdempotencyConflict, "", "")
	h.expectErr(h.call("POST", "/api/v1/holds", `{"customer":"acme","amount":"4","ttl_seconds":30}`, "Idempotency-Key", "job-7"), 409, fb.EIdempotencyConflict, "", "")
	h.expectErr(h.call("POST", "/api/v1/holds", `{"customer":"acme","amount":"4","idempotency_key":"x"}`, "Idempotency-Key", "y"), 400, fb.EInvalid, "", "idempotency_key")
	h.expectBalance("acme", "6", "4")
}

// TestServerResolveTwice: the same capture twice gives the same answer and
// takes once; a release after a capture, or a different capture → 409
// hold_resolved; a release repeated gives the same answer.
func TestServerResolveTwice(t *testing.T) {
	h := newHarness(t)
	h.newCustomer("acme")
	h.grant("acme", `{"amount":"10"}`)
	hold := h.hold(`{"customer":"acme","amount":"4"}`).get("id")
	a := h.expect(h.call("POST", "/api/v1/holds/"+hold+"/capture", `{"amount":"1.5"}`), 200)
	b := h.expect(h.call("POST", "/api/v1/holds/"+hold+"/capture", `{"amount":"1.5"}`), 200)
	if a.raw != b.raw || a.get("captured") != "1.5" || a.get("released") != "2.5" {
		t.Fatalf("captures: %s / %s", a.raw, b.raw)
	}
	h.expectBalance("acme", "8.5", "0")
	h.expectErr(h.call("POST", "/api/v1/holds/"+hold+"/release", ""), 409, fb.EConflict, "hold_resolved", "")
	h.expectErr(h.call("POST", "/api/v1/holds/"+hold+"/capture", `{"amount":"2"}`), 409, fb.EConflict, "hold_resolved", "")
	h.expectBalance("acme", "8.5", "0")

	// With keys: the same key and body replays; a changed body conflicts.
	hold2 := h.hold(`{"customer":"acme","amount":"2"}`).get("id")
	k1 := h.expect(h.call("POST", "/api/v1/holds/"+hold2+"/capture", `{"amount":"1"}`, "Idempotency-Key", "cap-1"), 200)
	k2 := h.expect(h.call("POST", "/api/v1/holds/"+hold2+"/capture", `{"amount":"1"}`, "Idempotency-Key", "cap-1"), 200)
	if k1.raw != k2.raw {
		t.Fatalf("keyed capture replay: %s / %s", k1.raw, k2.raw)
	}
	h.expectBalance("acme", "7.5", "0")

	hold3 := h.hold(`{"customer":"acme","amount":"3"}`).get("id")
	r1 := h.expect(h.call("POST", "/api/v1/holds/"+hold3+"/release", ""), 200)
	r2 := h.expect(h.call("POST", "/api/v1/holds/"+hold3+"/release", `{}`), 200)
	if r1.raw != r2.raw || r1.get("released") != "3" {
		t.Fatalf("releases: %s / %s", r1.raw, r2.raw)
	}
	h.expectErr(h.call("POST", "/api/v1/holds/"+hold3+"/capture", ""), 409, fb.EConflict, "hold_resolved", "")
	h.expectBalance("acme", "7.5", "0")
}

// TestServerHoldTTL: past its ttl_seconds a hold shows as expired, the
// sweep releases it, a capture → 409 hold_expired, and the balance shows
// the credit back.
func TestServerHoldTTL(t *testing.T) {
	h := newHarness(t)
	h.newCustomer("acme")
	h.grant("acme", `{"amount":"10"}`)
	r := h.hold(`{"customer":"acme","amount":"4","ttl_seconds":30}`)
	hold := r.get("id")
	if r.get("expires_at") != "2026-11-23T10:00:30Z" {
		t.Fatalf("expires_at: %s", r.raw)
	}
	h.clk.Advance(29 * time.Second)
	h.expectBalance("acme", "6", "4")
	if n, err := h.eng.Sweep(context.Background()); err != nil || n != 0 {
		t.Fatalf("early sweep: %d, %v", n, err)
	}
	h.clk.Advance(2 * time.Second)
	if n, err := h.eng.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	g := h.expect(h.call("GET", "/api/v1/holds/"+hold, ""), 200)
	if g.get("status") != "expired" {
		t.Fatalf("hold after its TTL: %s", g.raw)
	}
	h.expectErr(h.call("POST", "/api/v1/holds/"+hold+"/capture", `{"amount":"1"}`), 409, fb.EConflict, "hold_expired", "")
	h.expectErr(h.call("POST", "/api/v1/holds/"+hold+"/release", ""), 409, fb.EConflict, "hold_expired", "")
	h.expectBalance("acme", "10", "0")

	// The default TTL is 60 s, and an expired hold is refused without a
	// sweep too.
	r = h.hold(`{"customer":"acme","amount":"1"}`)
	if r.get("expires_at") != "2026-11-23T10:01:31Z" {
		t.Fatalf("default TTL: %s", r.raw)
	}
	h.clk.Advance(time.Minute)
	h.expectErr(h.call("POST", "/api/v1/holds/"+r.get("id")+"/capture", ""), 409, fb.EConflict, "hold_expired", "")
	h.expectBalance("acme", "10", "0")
}

// TestServerInsufficient: a hold beyond the balance → 402
// insufficient_credits and nothing held; allow_partial holds what there is;
// with nothing left even a partial hold → 402.
func TestServerInsufficient(t *testing.T) {
	h := newHarness(t)
	h.newCustomer("acme")
	h.grant("acme", `{"amount":"5.5"}`)
	h.expectErr(h.call("POST", "/api/v1/holds", `{"customer":"acme","amount":"5.500001"}`), 402, fb.EInsufficientCredits, fb.EInsufficientCredits, "")
	h.expectBalance("acme", "5.5", "0")
	r := h.hold(`{"customer":"acme","amount":"8","allow_partial":true}`)
	if r.get("amount") != "5.5" || r.get("requested") != "8" || r.get("status") != "pending" {
		t.Fatalf("partial hold: %s", r.raw)
	}
	h.expectBalance("acme", "0", "5.5")
	h.expectErr(h.call("POST", "/api/v1/holds", `{"customer":"acme","amount":"0.000001","allow_partial":true}`), 402, fb.EInsufficientCredits, "", "")
	h.expectErr(h.call("POST", "/api/v1/holds", `{"customer":"acme","amount":"1"}`), 402, fb.EInsufficientCredits, "", "")
	// A 402 does not use up its idempotency key: after a top-up it is tried afresh.
	h.expectErr(h.call("POST", "/api/v1/holds", `{"customer":"acme","amount":"1"}`, "Idempotency-Key", "retry-me"), 402, fb.EInsufficientCredits, "", "")
	h.grant("acme", `{"amount":"1"}`)
	h.expect(h.call("POST", "/api/v1/holds", `{"customer":"acme","amount":"1"}`, "Idempotency-Key", "retry-me"), 201)
	h.expectBalance("acme", "0", "6.5")
}

// TestServerBadInput: every malformed body → 400 invalid_request with the
// error body's four fields, a message and the offending field as param;
// nothing reaches the ledger.
func TestServerBadInput(t *testing.T) {
	h := newHarness(t)
	h.newCustomer("acme")
	h.grant("acme", `{"amount":"1"}`)
	hold := h.hold(`{"customer":"acme","amount":"1"}`).get("id")
	grants := "/api/v1/customers/acme/grants"
	capture := "/api/v1/holds/" + hold + "/capture"
	cases := []struct {
		name, path, body, param string
	}{
		{"malformed JSON", grants, `{"amount":"1"`, ""},
		{"malformed JSON garbage", grants, `amount=1`, ""},
		{"malformed JSON hold", "/api/v1/holds", `{"customer":"acme",}`, ""},
		{"malformed JSON customer", "/api/v1/customers", `{"id":`, ""},
		{"malformed JSON capture", capture, `{`, ""},
		{"array body", grants, `[{"amount":"1"}]`, ""},
		{"two objects", grants, `{"amount":"1"}{"amount":"1"}`, ""},
		{"unknown field grant", grants, `{"amount":"1","amout":"1"}`, "amout"},
		{"unknown field customer", "/api/v1/customers", `{"id":"x","plan_id":"pro"}`, "plan_id"},
		{"unknown field hold", "/api/v1/holds", `{"customer":"acme","amount":"1","ttl":5}`, "ttl"},
		{"unknown field capture", capture, `{"amount":"1","reason":"x"}`, "reason"},
		{"amount bool", grants, `{"amount":true}`, "amount"},
		{"amount object", grants, `{"amount":{"value":"1"}}`, "amount"},
		{"amount array", grants, `{"amount":["1"]}`, "amount"},
		{"amount null", grants, `{"amount":null}`, "amount"},
		{"amount bool hold", "/api/v1/holds", `{"customer":"acme","amount":false}`, "amount"},
		{"amount object capture", capture, `{"amount":{}}`, "amount"},
		{"seven decimals", grants, `{"amount":"0.0000001"}`, "amount"},
		{"seven decimals number", grants, `{"amount":1.1234567}`, "amount"},
		{"seven decimals hold", "/api/v1/holds", `{"customer":"acme","amount":"1.0000001"}`, "amount"},
		{"seven decimals capture", capture, `{"amount":"0.1234567"}`, "amount"},
		{"exponent string", grants, `{"amount":"1e3"}`, "amount"},
		{"exponent number", grants, `{"amount":1e3}`, "amount"},
		{"exponent hold", "/api/v1/holds", `{"customer":"acme","amount":"1E1"}`, "amount"},
		{"plus sign", grants, `{"amount":"+1"}`, "amount"},
		{"blank", grants, `{"amount":" 1"}`, "amount"},
		{"empty amount", grants, `{"amount":""}`, "amount"},
		{"NaN", grants, `{"amount":"NaN"}`, "amount"},
		{"Infinity", grants, `{"amount":"Infinity"}`, "amount"},
		{"negative grant", grants, `{"amount":"-1"}`, "amount"},
		{"negative number", grants, `{"amount":-0.5}`, "amount"},
		{"negative hold", "/api/v1/holds", `{"customer":"acme","amount":"-3"}`, "amount"},
		{"negative capture", capture, `{"amount":"-0.000001"}`, "amount"},
		{"zero grant", grants, `{"amount":"0"}`, "amount"},
		{"zero hold", "/api/v1/holds", `{"customer":"acme","amount":0}`, "amount"},
		{"overflow int64 micro-units", grants, `{"amount":"9223372036854.775808"}`, "amount"},
		{"overflow whole", grants, `{"amount":"9223372036855"}`, "amount"},
		{"overflow huge", grants, `{"amount":"99999999999999999999999999"}`, "amount"},
		{"overflow number", grants, `{"amount":99999999999999999999}`, "amount"},
		{"overflow hold", "/api/v1/holds", `{"customer":"acme","amount":"9223372036855"}`, "amount"},
		{"overflow capture", capture, `{"amount":"9223372036855"}`, "amount"},
		{"beyond MaxTotal", grants, `{"amount":"9223372036854.775807"}`, "amount"},
		{"missing amount grant", grants, `{"source":"purchase"}`, "amount"},
		{"missing amount hold", "/api/v1/holds", `{"customer":"acme"}`, "amount"},
		{"missing customer hold", "/api/v1/holds", `{"amount":"1"}`, "customer"},
		{"customer type", "/api/v1/holds", `{"customer":7,"amount":"1"}`, "customer"},
		{"bad customer id", "/api/v1/holds", `{"customer":"a b","amount":"1"}`, "customer"},
		{"bad new customer id", "/api/v1/customers", `{"id":"a/b"}`, "id"},
		{"long new customer id", "/api/v1/customers", `{"id":"` + strings.Repeat("a", 65) + `"}`, "id"},
		{"name type", "/api/v1/customers", `{"id":"x","name":1}`, "name"},
		{"unknown source", grants, `{"amount":"1","source":"gift"}`, "source"},
		{"priority type", grants, `{"amount":"1","priority":"1"}`, "priority"},
		{"priority out of range", grants, `{"amount":"1","priority":-1}`, "priority"},
		{"paid_usd bool", grants, `{"amount":"1","paid_usd":true}`, "paid_usd"},
		{"paid_usd seven decimals", grants, `{"amount":"1","paid_usd":"0.0000001"}`, "paid_usd"},
		{"paid promo", grants, `{"amount":"1","source":"promo","paid_usd":"2"}`, "paid_usd"},
		{"paid_usd per credit overflows", grants, `{"amount":"0.000001","paid_usd":"9000000000000"}`, "paid_usd"},
		{"bad expires_at", grants, `{"amount":"1","expires_at":"2027-01-01"}`, "expires_at"},
		{"expires before effective", grants, `{"amount":"1","effective_at":"2027-01-02T00:00:00Z","expires_at":"2027-01-01T00:00:00Z"}`, "expires_at"},
		{"ttl zero", "/api/v1/holds", `{"customer":"acme","amount":"1","ttl_seconds":0}`, "ttl_seconds"},
		{"ttl above a day", "/api/v1/holds", `{"customer":"acme","amount":"1","ttl_seconds":86401}`, "ttl_seconds"},
		{"ttl string", "/api/v1/holds", `{"customer":"acme","amount":"1","ttl_seconds":"60"}`, "ttl_seconds"},
		{"allow_partial string", "/api/v1/holds", `{"customer":"acme","amount":"1","allow_partial":"true"}`, "allow_partial"},
		{"key too long", grants, `{"amount":"1","idempotency_key":"` + strings.Repeat("k", 256) + `"}`, "idempotency_key"},
		{"key not printable", grants, `{"amount":"1","idempotency_key":"a\u0001b"}`, "idempotency_key"},
		{"release with amount", "/api/v1/holds/" + hold + "/release", `{"amount":"1"}`, "amount"},
		{"empty body grant", grants, ``, ""},
		{"blank body grant", grants, "  \n", ""},
		{"empty body hold", "/api/v1/holds", ``, ""},
		{"empty body customer", "/api/v1/customers", ``, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.t = t
			defer func() { h.t = nil }()
			h.expectErr(h.call("POST", c.path, c.body, "Content-Type", "application/json"), 400, fb.EInvalid, fb.EInvalid, c.param)
		})
	}
	h.t = t
	// Nothing moved: 1 granted, 1 held, the hold still pending.
	h.expectBalance("acme", "0", "1")
	if g := h.expect(h.call("GET", "/api/v1/holds/"+hold, ""), 200); g.get("status") != "pending" {
		t.Fatalf("hold after bad captures: %s", g.raw)
	}
	r := h.expect(h.call("GET", "/api/v1/customers", ""), 200)
	if n := len(r.body["data"].([]any)); n != 1 {
		t.Fatalf("bad creates made customers: %s", r.raw)
	}
}

// TestServerLimitsAndMediaTypes: a body over 1 MiB → 413
// request_too_large (with a Content-Length and chunked, over HTTP and
// through a recorder); a Content-Type other than JSON → 415; JSON with a
// charset or a +json suffix is fine.
func TestServerLimitsAndMediaTypes(t *testing.T) {
	h := newHarness(t)
	h.newCustomer("acme")
	path := "/api/v1/customers/acme/grants"
	big := `{"amount":"1","source":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
	h.expectErr(h.call("POST", path, big), 413, fb.ETooLarge, fb.ETooLarge, "")

	// Chunked: no Content-Length, the limit holds while reading.
	req, _ := http.NewRequest("POST", h.url+path, io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Authorization", "Bearer "+adminTok)
	req.Header.Set("Content-Type", "application/json")
	if req.ContentLength != 0 {
		t.Fatalf("request has a Content-Length %d", req.ContentLength)
	}
	h.expectErr(h.roundTrip(req), 413, fb.ETooLarge, "", "")

	// Exactly at the limit is read (and then judged on its content).
	atLimit := `{"amount":"1","idempotency_key":"` + strings.Repeat("k", MaxBodyBytes-35) + `"}`
	if len(atLimit) != MaxBodyBytes {
		t.Fatalf("test body is %d bytes", len(atLimit))
	}
	h.expectErr(h.call("POST", path, atLimit), 400, fb.EInvalid, "", "idempotency_key")

	// Through a recorder, for the hold and capture endpoints too.
	for _, p := range []string{path, "/api/v1/holds", "/api/v1/holds/hold_x/capture", "/api/v1/holds/hold_x/release", "/api/v1/customers"} {
		req := httptest.NewRequest("POST", p, io.MultiReader(strings.NewReader(big)))
		req.Header.Set("Authorization", "Bearer "+adminTok)
		h.expectErr(h.record(req), 413, fb.ETooLarge, "", "")
	}

	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", "json", ";;"} {
		h.expectErr(h.call("POST", path, `{"amount":"1"}`, "Content-Type", ct), 415, fb.EUnsupportedMedia, fb.EUnsupportedMedia, "")
		h.expectErr(h.call("POST", "/api/v1/holds", `{"customer":"acme","amount":"1"}`, "Content-Type", ct), 415, fb.EUnsupportedMedia, "", "")
	}
	h.expectBalance("acme", "0", "0")
	h.expect(h.call("POST", path, `{"amount":"1"}`, "Content-Type", "application/json; charset=utf-8"), 201)
	h.expect(h.call("POST", path, `{"amount":"1"}`, "Content-Type", "application/merge-patch+json"), 201)
	h.expectBalance("acme", "2", "0")
}

// TestServerNotFound: unknown customers and holds → 404 not_found on
// every endpoint that names them; unknown paths → 404.
func TestServerNotFound(t *testing.T) {
	h := newHarness(t)
	h.newCustomer("acme")
	h.expectErr(h.call("GET", "/api/v1/customers/ghost", ""), 404, fb.ENotFound, "", "")
	h.expectErr(h.call("GET", "/api/v1/customers/ghost/balance", ""), 404, fb.ENotFound, "", "")
	h.expectErr(h.call("POST", "/api/v1/customers/ghost/grants", `{"amount":"1"}`), 404, fb.ENotFound, "unknown_customer", "")
	h.expectErr(h.call("POST", "/api/v1/holds", `{"customer":"ghost","amount":"1"}`), 404, fb.ENotFound, "unknown_customer", "")
	h.expectErr(h.call("GET", "/api/v1/holds/hold_ghost", ""), 404, fb.ENotFound, "", "")
	h.expectErr(h.call("POST", "/api/v1/holds/hold_ghost/capture", `{"amount":"1"}`), 404, fb.ENotFound, "", "")
	h.expectErr(h.call("POST", "/api/v1/holds/hold_ghost/release", ""), 404, fb.ENotFound, "", "")
	for _, p := range []string{"/", "/api", "/api/v1", "/api/v1/customer", "/api/v1/customers/acme/nothing", "/v2/healthz", "/healthz/x"} {
		h.expectErr(h.call("GET", p, ""), 404, fb.ENotFound, fb.ENotFound, "")
	}
	// Through a recorder too.
	req := httptest.NewRequest("GET", "/api/v1/nope", nil)
	req.Header.Set("Authorization", "Bearer "+adminTok)
	h.expectErr(h.record(req), 404, fb.ENotFound, "", "")
}

// TestServerAuth: the management API without a token, with a wrong one or
// another scheme → 401 unauthorized with WWW-Authenticate, before the body
// is looked at; the right token passes.
func TestServerAuth(t *testing.T) {
	h := newHarness(t)
	for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer wrong", "bearer " + adminTok, "Basic " + adminTok, adminTok, "Bearer " + adminTok + "x", "Bearer " + adminTok[:len(adminTok)-1]} {
		for _, rq := range []struct{ method, path, body string }{
			{"GET", "/api/v1/customers", ""},
			{"POST", "/api/v1/customers", `{"id":"x"}`},
			{"POST", "/api/v1/customers/x/grants", `{`},
			{"GET", "/api/v1/customers/x/balance", ""},
			{"POST", "/api/v1/holds", `{"customer":"x","amount":"1"}`},
			{"GET", "/api/v1/holds/h", ""},
			{"POST", "/api/v1/holds/h/capture", ""},
			{"POST", "/api/v1/holds/h/release", ""},
		} {
			r := h.call(rq.method, rq.path, rq.body, "Authorization", auth)
			h.expectErr(r, 401, fb.EUnauthorized, fb.EUnauthorized, "")
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("%q on %s %s: WWW-Authenticate %q", auth, rq.method, rq.path, r.header.Get("WWW-Authenticate"))
			}
		}
	}
	// Missing and wrong tokens through a recorder.
	for _, auth := range []string{"", "Bearer nope"} {
		req := httptest.NewRequest("GET", "/api/v1/customers", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		r := h.record(req)
		h.expectErr(r, 401, fb.EUnauthorized, "", "")
		if r.header.Get("WWW-Authenticate") == "" {
			t.Fatal("recorder: 401 without WWW-Authenticate")
		}
	}
	// Nothing was created by the refused requests.
	r := h.expect(h.call("GET", "/api/v1/customers", ""), 200)
	if n := len(r.body["data"].([]any)); n != 0 {
		t.Fatalf("unauthorized requests created customers: %s", r.raw)
	}
	// The request id is echoed, or made.
	r = h.expect(h.call("GET", "/healthz", "", "X-Request-Id", "trace-123"), 200)
	if r.header.Get("X-Request-Id") != "trace-123" {
		t.Fatalf("X-Request-Id %q", r.header.Get("X-Request-Id"))
	}
	r = h.expect(h.call("GET", "/healthz", ""), 200)
	if !strings.HasPrefix(r.header.Get("X-Request-Id"), "req_") {
		t.Fatalf("made X-Request-Id %q", r.header.Get("X-Request-Id"))
	}
	r = h.expect(h.call("GET", "/healthz", "", "X-Request-Id", strings.Repeat("r", 129)), 200)
	if !strings.HasPrefix(r.header.Get("X-Request-Id"), "req_") {
		t.Fatalf("an over-long X-Request-Id was echoed: %q", r.header.Get("X-Request-Id"))
	}
}

// TestServerReadyzStoreDown: /readyz answers 503 with the error body when
// the store does not answer, while /healthz still answers 200.
func TestServerReadyzStoreDown(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "farebox.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	srv := testServer(st, nil, fakeclock.New(clockStart))
	h := &harness{t: t, handler: srv.routes()}
	h.expectErr(h.record(httptest.NewRequest("GET", "/readyz", nil)), 503, fb.EUnavailable, "store_unavailable", "")
	if r := h.record(httptest.NewRequest("GET", "/healthz", nil)); r.status != 200 {
		t.Fatalf("healthz with the store down: %d %s", r.status, r.raw)
	}
}

// TestServerConcurrentReplays: 50 concurrent grants under one
// Idempotency-Key make one lot and add once; 50 concurrent identical
// captures of one hold all answer the same and take once.
func TestServerConcurrentReplays(t *testing.T) {
	h := newHarness(t)
	h.newCustomer("acme")
	const n = 50
	post := func(path, body, key string) (int, string, error) {
		req, err := http.NewRequest("POST", h.url+path, strings.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("Authorization", "Bearer "+adminTok)
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := h.client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	run := func(path, body, key string) []string {
		out := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, b, err := post(path, body, key)
				if err == nil && st >= 300 {
					err = fmt.Errorf("status %d: %s", st, b)
				}
				out[i], errs[i] = b, err
			}()
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("%s: %v", path, errs[i])
			}
			if out[i] != out[0] {
				t.Fatalf("%s: answers differ: %s / %s", path, out[i], out[0])
			}
		}
		return out
	}
	run("/api/v1/customers/acme/grants", `{"amount":"12.5"}`, "topup-1")
	b := h.expectBalance("acme", "12.5", "0")
	if lots := b.body["lots"].([]any); len(lots) != 1 {
		t.Fatalf("replayed grants made %d lots: %s", len(lots), b.raw)
	}
	hold := h.hold(`{"customer":"acme","amount":"5"}`).get("id")
	run("/api/v1/holds/"+hold+"/capture", `{"amount":"7","allow_over_capture":true}`, "")
	h.expectBalance("acme", "5.5", "0")
}

// TestServerMethodNotAllowed: a known path with another method → 405
// method_not_allowed with an Allow header naming the methods it takes.
func TestServerMethodNotAllowed(t *testing.T) {
	h := newHarness(t)
	cases := []struct{ method, path, allow string }{
		{"DELETE", "/api/v1/customers", "GET, HEAD, POST"},
		{"PUT", "/api/v1/customers/acme", "GET, HEAD, PATCH"},
		{"GET", "/api/v1/customers/acme/grants", "POST"},
		{"POST", "/api/v1/customers/acme/balance", "GET, HEAD"},
		{"GET", "/api/v1/holds", "POST"},
		{"DELETE", "/api/v1/holds/h1", "GET, HEAD"},
		{"GET", "/api/v1/holds/h1/capture", "POST"},
		{"PUT", "/api/v1/holds/h1/release", "POST"},
		{"POST", "/healthz", "GET, HEAD"},
		{"PATCH", "/readyz", "GET, HEAD"},
	}
	for _, c := range cases {
		r := h.call(c.method, c.path, "")
		h.expectErr(r, 405, fb.EMethodNotAllowed, fb.EMethodNotAllowed, "")
		got := strings.Split(r.header.Get("Allow"), ", ")
		for _, m := range strings.Split(c.allow, ", ") {
			found := false
			for _, g := range got {
				found = found || g == m
			}
			if !found {
				t.Fatalf("%s %s: Allow %q lacks %s", c.method, c.path, r.header.Get("Allow"), m)
			}
		}
		if len(got) != len(strings.Split(c.allow, ", ")) {
			t.Fatalf("%s %s: Allow %q, want %q", c.method, c.path, r.header.Get("Allow"), c.allow)
		}
	}
}

// TestServerConcurrentHolds: 1,000 concurrent 1-credit holds over HTTP
// against 100 credits: exactly 100 × 201 and 900 × 402, every 201 a
// distinct hold, and the balance ends at available 0, held 100.
func TestServerConcurrentHolds(t *testing.T) {
	h := newHarness(t)
	h.newCustomer("acme")
	h.grant("acme", `{"amount":"100"}`)
	const n = 1000
	statuses := make([]int, n)
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, err := http.NewRequest("POST", h.url+"/api/v1/holds", bytes.NewReader([]byte(`{"customer":"acme","amount":"1","ttl_seconds":3600}`)))
			if err != nil {
				errs[i] = err
				return
			}
			req.Header.Set("Authorization", "Bearer "+adminTok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := h.client.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			var body struct {
				ID    string `json:"id"`
				Error *struct {
					Type string `json:"type"`
				} `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				errs[i] = err
				return
			}
			statuses[i] = resp.StatusCode
			switch {
			case resp.StatusCode == 201:
				ids[i] = body.ID
			case body.Error == nil || body.Error.Type != fb.EInsufficientCredits:
				errs[i] = fmt.Errorf("status %d with error %+v", resp.StatusCode, body.Error)
			}
		}()
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		count[statuses[i]]++
		if ids[i] != "" {
			if seen[ids[i]] {
				t.Fatalf("hold id %s answered twice", ids[i])
			}
			seen[ids[i]] = true
		}
	}
	if count[201] != 100 || count[402] != 900 || len(count) != 2 {
		t.Fatalf("statuses %v, want 100 × 201 and 900 × 402", count)
	}
	h.expectBalance("acme", "0", "100")
}

// TestServerLotExpiry: a lot past its expires_at no longer counts, a hold
// on it → 402, and a grant that would already be expired is refused.
func TestServerLotExpiry(t *testing.T) {
	h := newHarness(t)
	h.newCustomer("acme")
	h.grant("acme", `{"amount":"10","source":"promo","expires_at":"2026-11-23T11:00:00Z"}`)
	h.expectBalance("acme", "10", "0")
	h.clk.Advance(time.Hour)
	h.expectBalance("acme", "0", "0")
	h.expectErr(h.call("POST", "/api/v1/holds", `{"customer":"acme","amount":"1"}`), 402, fb.EInsufficientCredits, "", "")
	h.expectErr(h.call("POST", "/api/v1/customers/acme/grants", `{"amount":"1","expires_at":"2026-11-23T10:00:00Z"}`), 400, fb.EInvalid, "", "expires_at")
}

// TestServerStrictKeys: encoding/json alone would accept these bodies and
// read something else than the client wrote.
func TestServerStrictKeys(t *testing.T) {
	h := newHarness(t)
	h.newCustomer("acme")
	grants := "/api/v1/customers/acme/grants"
	h.expectErr(h.call("POST", grants, `{"AMOUNT":"1"}`), 400, fb.EInvalid, "", "AMOUNT")
	h.expectErr(h.call("POST", grants, `{"amount":"1","amount":"1000"}`), 400, fb.EInvalid, "", "amount")
	h.expectErr(h.call("POST", grants, `null`), 400, fb.EInvalid, "", "")
	h.expectErr(h.call("POST", grants, `["amount"]`), 400, fb.EInvalid, "", "")
	h.expectErr(h.call("POST", "/api/v1/customers", `null`), 400, fb.EInvalid, "", "")
	h.expectErr(h.call("POST", "/api/v1/customers", `{"id":"a","Id":"b"}`), 400, fb.EInvalid, "", "Id")
	h.expectBalance("acme", "0", "0")
	if r := h.expect(h.call("GET", "/api/v1/customers", ""), 200); len(r.body["data"].([]any)) != 1 {
		t.Fatalf("refused bodies created customers: %s", r.raw)
	}
}
