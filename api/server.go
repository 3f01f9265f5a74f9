// Package api serves Farebox over HTTP: the management API under /api/v1,
// health endpoints, and (later) the OpenAI-compatible gateway. Handlers
// return errors; writeError turns every one into the API's error body
// through one table.
package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	fb "farebox"
	"farebox/compute"
	"farebox/economics"
	"farebox/gateway"
	"farebox/httpx"
	"farebox/ledger"
	"farebox/metering"
	"farebox/notify"
	"farebox/payments"
	"farebox/plans"
	"farebox/sponsored"
)

// Deps are what the handlers work with; NewServer takes them built (the
// composition root, package app, builds them once).
type Deps struct {
	// Store is the store through its catalog cache (store/cache): the
	// API's own writes to keys, plans and subscriptions drop what it
	// keeps.
	Store     fb.Store
	Engine    *ledger.Engine
	Plans     *plans.Service
	Meter     *metering.Service
	Cards     metering.Cards
	Gateway   *gateway.Gateway
	Compute   *compute.Service
	Payments  *payments.Service
	Notify    *notify.Service
	Sponsored *sponsored.Service
	Economics economics.Config
	// AdminToken guards /api/v1.
	AdminToken string
	Clock      fb.Clock
	NewID      func(prefix string) string
	Log        *slog.Logger
	// Middleware, when set, wraps each route's handler with its pattern
	// ("GET /v1/models"): the metrics.
	Middleware func(route string, h http.Handler) http.Handler
	// Metrics serves GET /metrics; nil when the metrics are off on this
	// address (served elsewhere, or not at all): 404.
	Metrics http.Handler
	// UI, when set, is the dashboard (package ui): mounted on / (its
	// sign-in) and everything under /ui/. Its HTML pages are not part of
	// the API's route table or its OpenAPI document.
	UI http.Handler
}

// Server holds the handlers' dependencies.
type Server struct {
	Deps
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// Now is the server's clock.
func (s *Server) Now() time.Time { return s.Clock.Now() }

// NewServer returns the handler of every route: it only builds routes.
func NewServer(d Deps) http.Handler {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{Deps: d}
	return s.routes()
}

// route is one of the server's routes.
type route struct {
	method, path string
	admin        bool
	h            handlerFunc
}

// Routes lists every route as "METHOD /path" (the OpenAPI document must
// have exactly these operations).
func Routes() []string {
	var out []string
	for _, rt := range (&Server{}).table() {
		out = append(out, rt.method+" "+rt.path)
	}
	return out
}

// routes builds the mux of every route.
func (s *Server) routes() http.Handler {
	return s.routesMux(s.table())
}

// table is the route table.
func (s *Server) table() []route {
	return []route{
		{"GET", "/healthz", false, s.healthz},
		{"GET", "/readyz", false, s.readyz},
		{"GET", "/metrics", false, s.metrics},
		{"GET", "/openapi.json", false, s.openapi},
		{"POST", "/api/v1/customers", true, s.createCustomer},
		{"GET", "/api/v1/customers", true, s.listCustomers},
		{"GET", "/api/v1/customers/{id}", true, s.getCustomer},
		{"PATCH", "/api/v1/customers/{id}", true, s.patchCustomer},
		{"POST", "/api/v1/advertisers", true, s.createAdvertiser},
		{"POST", "/api/v1/campaigns", true, s.createCampaign},
		{"GET", "/api/v1/campaigns", true, s.listCampaigns},
		{"GET", "/api/v1/campaigns/{id}", true, s.getCampaign},
		{"PATCH", "/api/v1/campaigns/{id}", true, s.patchCampaign},
		{"DELETE", "/api/v1/campaigns/{id}", true, s.deleteCampaign},
		{"GET", "/api/v1/campaigns/{id}/stats", true, s.campaignStats},
		{"GET", "/s/{id}", false, s.click},
		{"POST", "/api/v1/customers/{id}/grants", true, s.grant},
		{"GET", "/api/v1/customers/{id}/balance", true, s.balance},
		{"POST", "/api/v1/holds", true, s.createHold},
		{"GET", "/api/v1/holds/{id}", true, s.getHold},
		{"POST", "/api/v1/holds/{id}/capture", true, s.captureHold},
		{"POST", "/api/v1/holds/{id}/release", true, s.releaseHold},
		{"POST", "/api/v1/plans", true, s.createPlan},
		{"GET", "/api/v1/plans", true, s.listPlans},
		{"GET", "/api/v1/plans/{id}", true, s.getPlan},
		{"DELETE", "/api/v1/plans/{id}", true, s.deletePlan},
		{"PUT", "/api/v1/customers/{id}/subscription", true, s.changeSubscription},
		{"POST", "/api/v1/customers/{id}/keys", true, s.createKey},
		{"GET", "/api/v1/customers/{id}/keys", true, s.listKeys},
		{"DELETE", "/api/v1/keys/{key_id}", true, s.revokeKey},
		{"PUT", "/api/v1/prices/{model}", true, s.putPrice},
		{"GET", "/api/v1/prices", true, s.listPrices},
		{"POST", "/api/v1/events", true, s.events},
		{"GET", "/api/v1/usage", true, s.usage},
		{"GET", "/api/v1/reports/economics", true, s.economicsReport},
		{"GET", "/api/v1/reports/forecast", true, s.forecastReport},
		{"GET", "/api/v1/deployments", true, s.deployments},
		{"POST", "/api/v1/pools", true, s.createPool},
		{"GET", "/api/v1/pools", true, s.listPools},
		{"GET", "/api/v1/pools/{id}", true, s.getPool},
		{"PATCH", "/api/v1/pools/{id}", true, s.updatePool},
		{"GET", "/api/v1/pools/{id}/utilization", true, s.poolUtilization},
		{"GET", "/api/v1/pools/{id}/availability", true, s.poolAvailability},
		{"POST", "/api/v1/leases", true, s.createLease},
		{"GET", "/api/v1/leases", true, s.listLeases},
		{"GET", "/api/v1/leases/{id}", true, s.getLease},
		{"POST", "/api/v1/leases/{id}/end", true, s.endLease},
		{"POST", "/api/v1/customers/{id}/checkout", true, s.checkout},
		{"POST", "/webhooks/stripe", false, s.stripeWebhook},
		{"GET", "/api/v1/customers/{id}/auto-topup", true, s.getAutoTopup},
		{"PUT", "/api/v1/customers/{id}/auto-topup", true, s.putAutoTopup},
		{"DELETE", "/api/v1/customers/{id}/auto-topup", true, s.deleteAutoTopup},
		{"GET", "/api/v1/customers/{id}/alerts", true, s.getAlerts},
		{"PUT", "/api/v1/customers/{id}/alerts", true, s.putAlerts},
		{"POST", "/api/v1/webhook-endpoints", true, s.createEndpoint},
		{"GET", "/api/v1/webhook-endpoints", true, s.listEndpoints},
		{"DELETE", "/api/v1/webhook-endpoints/{id}", true, s.deleteEndpoint},
		{"GET", "/api/v1/webhook-endpoints/{id}/deliveries", true, s.listDeliveries},
		{"POST", "/api/v1/webhook-deliveries/{id}/retry", true, s.retryDelivery},
		{"GET", "/v1/account/usage", false, s.accountUsage},
		{"GET", "/v1/account/balance", false, s.accountBalance},
		{"POST", "/v1/chat/completions", false, s.Gateway.Chat},
		{"POST", "/v1/embeddings", false, s.Gateway.Embeddings},
		{"POST", "/v1/responses", false, s.Gateway.Responses},
		{"POST", "/v1/messages", false, s.Gateway.Messages},
		{"POST", "/v1/messages/count_tokens", false, s.Gateway.CountTokens},
		{"GET", "/v1/models", false, s.Gateway.Models},
	}
}

func (s *Server) routesMux(routes []route) http.Handler {
	mux := http.NewServeMux()
	allowed := map[string][]string{}
	for _, rt := range routes {
		h := rt.h
		if rt.admin {
			h = s.admin(h)
		}
		var hh http.Handler = s.wrap(h)
		if s.Middleware != nil {
			hh = s.Middleware(rt.method+" "+rt.path, hh)
		}
		mux.Handle(rt.method+" "+rt.path, hh)
		if rt.method == "GET" {
			allowed[rt.path] = append(allowed[rt.path], "HEAD")
		}
		allowed[rt.path] = append(allowed[rt.path], rt.method)
	}
	// Any other method on a known path: 405 with the error body.
	for path, methods := range allowed {
		allow := strings.Join(methods, ", ")
		mux.Handle(path, s.wrap(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Allow", allow)
			return fb.Errorf(fb.EMethodNotAllowed, "%s is not allowed on %s; use %s", r.Method, r.URL.Path, allow)
		}))
	}
	if s.UI != nil {
		ui := s.wrap(func(w http.ResponseWriter, r *http.Request) error { s.UI.ServeHTTP(w, r); return nil })
		for _, p := range []string{"/{$}", "/ui/"} {
			h := ui
			if s.Middleware != nil {
				h = s.Middleware("UI "+p, h)
			}
			mux.Handle(p, h)
		}
	}
	mux.Handle("/", s.wrap(func(w http.ResponseWriter, r *http.Request) error {
		return fb.Errorf(fb.ENotFound, "no route %s %s", r.Method, r.URL.Path)
	}))
	return mux
}

// wrap adapts a handler that returns an error, gives every request an id
// (in its context too, so each log line of the request carries it), and
// writes its access log line.
func (s *Server) wrap(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// A client's request id is kept when it is short and printable:
		// it is echoed and may become a usage row's id.
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 128 || !fb.Printable(id) {
			id = s.NewID("req_")
		}
		w.Header().Set("X-Request-Id", id)
		r = r.WithContext(httpx.WithRequestID(r.Context(), id))
		sw := &statusWriter{ResponseWriter: w}
		if err := h(sw, r); err != nil {
			httpx.WriteError(sw, r, s.Log, err)
		}
		s.Log.LogAttrs(r.Context(), slog.LevelInfo, "request", slog.String("method", r.Method), slog.String("route", r.Pattern),
			slog.String("path", r.URL.Path), slog.Int("status", sw.status()), slog.Int64("bytes", sw.n), slog.Duration("duration", time.Since(start)))
	})
}

// statusWriter records the status and size of a response for the access
// log; Unwrap keeps Flush, deadlines and trailers reachable.
type statusWriter struct {
	http.ResponseWriter
	code int
	n    int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

func (s *Server) admin(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			return fb.Errorf(fb.EUnauthorized, "the management API needs Authorization: Bearer <admin token>")
		}
		if subtle.ConstantTimeCompare([]byte(tok), []byte(s.AdminToken)) != 1 {
			return fb.Errorf(fb.EUnauthorized, "the admin token is not valid")
		}
		return h(w, r)
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// metrics is GET /metrics: Prometheus's text format, no auth.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) error {
	if s.Metrics == nil {
		return fb.Errorf(fb.ENotFound, "metrics are not served on this address")
	}
	s.Metrics.ServeHTTP(w, r)
	return nil
}

// openapi is GET /openapi.json: the document of every route, no auth.
func (s *Server) openapi(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Write(OpenAPI)
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		s.Log.Warn("not ready", "err", err)
		return fb.ErrStoreUnavailable.New("the database does not answer")
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

func (s *Server) createCustomer(w http.ResponseWriter, r *http.Request) error {
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	req, err := parseCustomer(body)
	if err != nil {
		return err
	}
	c := fb.Customer{ID: req.ID, Name: req.Name, Kind: fb.KindCustomer, CreatedAt: s.Now().UTC()}
	if c.ID == "" {
		c.ID = s.NewID("cus_")
	}
	if req.Plan != "" {
		if _, err := s.Store.Plan(r.Context(), req.Plan); err != nil {
			return err
		}
	}
	status := http.StatusCreated
	if err := s.Store.CreateCustomer(r.Context(), c); err != nil {
		if !errors.Is(err, fb.ErrCustomerExists) {
			return err
		}
		// The same create repeated is answered with what exists (and
		// finishes what a failed first attempt left undone).
		got, gerr := s.Store.Customer(r.Context(), c.ID)
		if gerr != nil || got.Name != c.Name || got.Kind != fb.KindCustomer {
			return err
		}
		sub, serr := s.Store.Subscription(r.Context(), c.ID)
		switch {
		case serr == nil && req.Plan != "" && sub.Plan != req.Plan:
			return err // on another plan: not the same create
		case serr == nil:
			req.Plan = "" // subscribed already
		case fb.ErrorType(serr) != fb.ENotFound:
			return serr
		}
		c, status = got, http.StatusOK
	}
	if req.Plan != "" {
		if _, err := s.Plans.Subscribe(r.Context(), c.ID, req.Plan); err != nil {
			return err
		}
	}
	v, err := s.customerView(r, c)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, status, v)
	return nil
}

func (s *Server) listCustomers(w http.ResponseWriter, r *http.Request) error {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return fb.Invalid("limit", "limit must be an integer from 1 to 1000")
		}
		limit = n
	}
	after := r.URL.Query().Get("starting_after")
	if after != "" {
		if err := validID("starting_after", after); err != nil {
			return err
		}
	}
	cs, err := s.Store.Customers(r.Context(), after, limit+1)
	if err != nil {
		return err
	}
	more := len(cs) > limit
	if more {
		cs = cs[:limit]
	}
	if cs == nil {
		cs = []fb.Customer{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"data": cs, "has_more": more})
	return nil
}

func (s *Server) getCustomer(w http.ResponseWriter, r *http.Request) error {
	id, err := customerPath(r)
	if err != nil {
		return err
	}
	c, err := s.Store.Customer(r.Context(), id)
	if err != nil {
		return err
	}
	v, err := s.customerView(r, c)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) grant(w http.ResponseWriter, r *http.Request) error {
	customer, err := customerPath(r)
	if err != nil {
		return err
	}
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	op, err := parseGrant(body, customer, r.Header.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	res, err := s.Engine.Submit(r.Context(), op)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{"lot": lotView(res.Lot)})
	return nil
}

func (s *Server) balance(w http.ResponseWriter, r *http.Request) error {
	customer, err := customerPath(r)
	if err != nil {
		return err
	}
	return s.writeBalance(w, r, customer, nil)
}

// accountBalance is GET /v1/account/balance: the key's own customer only.
func (s *Server) accountBalance(w http.ResponseWriter, r *http.Request) error {
	k, err := s.Gateway.Authenticate(r)
	if err != nil {
		return err
	}
	return s.writeBalance(w, r, k.Customer, &k)
}

// writeBalance answers a customer's balance; with key (the gateway's
// /v1/account/balance), the key's budget too.
func (s *Server) writeBalance(w http.ResponseWriter, r *http.Request, customer string, key *fb.APIKey) error {
	a, err := s.Store.Account(r.Context(), customer)
	if err != nil {
		return err
	}
	b := ledger.BalanceAt(a, s.Now().UTC())
	lots := make([]lotJSON, 0, len(b.Lots))
	for _, l := range b.Lots {
		lots = append(lots, lotView(l))
	}
	out := map[string]any{
		"customer":        b.Customer,
		"available":       b.Available,
		"held":            b.Held,
		"overdraft_limit": b.OverdraftLimit,
		"debt":            b.Debt,
		"uncollected":     b.Uncollected,
		"lots":            lots,
	}
	if key != nil {
		out["key"] = budgetOf(*key, a, s.Now().UTC())
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) createHold(w http.ResponseWriter, r *http.Request) error {
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	op, err := parseHold(body, r.Header.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	res, err := s.Engine.Submit(r.Context(), op)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, holdJSON{HoldView: *res.Hold})
	return nil
}

func (s *Server) getHold(w http.ResponseWriter, r *http.Request) error {
	id, err := idPath(r, "id")
	if err != nil {
		return err
	}
	h, err := s.Store.Hold(r.Context(), id)
	if err != nil {
		return err
	}
	v := holdJSON{HoldView: fb.HoldView{ID: h.ID, Customer: h.Customer, Amount: h.Amount, Requested: h.Requested, ExpiresAt: h.ExpiresAt, Status: h.Status}}
	if h.Status == fb.HoldPending && !s.Now().Before(h.ExpiresAt) {
		v.Status = fb.HoldExpired
	}
	if h.Result != nil {
		v.Captured, v.Released, v.Uncollected = &h.Result.Captured, &h.Result.Released, &h.Result.Uncollected
	}
	httpx.WriteJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) captureHold(w http.ResponseWriter, r *http.Request) error {
	return s.resolve(w, r, true)
}

func (s *Server) releaseHold(w http.ResponseWriter, r *http.Request) error {
	return s.resolve(w, r, false)
}

func (s *Server) resolve(w http.ResponseWriter, r *http.Request, capture bool) error {
	id, err := idPath(r, "id")
	if err != nil {
		return err
	}
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	op, err := parseResolve(body, id, r.Header.Get("Idempotency-Key"), capture)
	if err != nil {
		return err
	}
	res, err := s.Engine.Submit(r.Context(), op)
	if err != nil {
		return err
	}
	out := map[string]any{"id": op.HoldID, "released": res.Released}
	if capture {
		out["status"] = fb.HoldCaptured
		out["captured"] = res.Captured
		out["uncollected"] = res.Uncollected
	} else {
		out["status"] = fb.HoldReleased
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

type holdJSON struct {
	fb.HoldView
	Captured    *fb.Amount `json:"captured,omitempty"`
	Released    *fb.Amount `json:"released,omitempty"`
	Uncollected *fb.Amount `json:"uncollected,omitempty"`
}

type lotJSON struct {
	ID           string     `json:"id"`
	Customer     string     `json:"customer"`
	Source       fb.Source  `json:"source"`
	Priority     int        `json:"priority"`
	Amount       fb.Amount  `json:"amount"`
	Remaining    fb.Amount  `json:"remaining"`
	Held         fb.Amount  `json:"held"`
	Consumed     fb.Amount  `json:"consumed"`
	Expired      fb.Amount  `json:"expired"`
	EffectiveAt  time.Time  `json:"effective_at"`
	ExpiresAt    *time.Time `json:"expires_at"`
	PaidUSD      fb.USD     `json:"paid_usd"`
	CostBasisUSD fb.USD     `json:"cost_basis_usd"`
	CreatedAt    time.Time  `json:"created_at"`
}

func lotView(l *fb.Lot) lotJSON {
	v := lotJSON{
		ID: l.ID, Customer: l.Customer, Source: l.Source, Priority: l.Priority, Amount: l.Amount,
		Remaining: l.Remaining, Held: l.Held, Consumed: l.Consumed, Expired: l.Expired,
		EffectiveAt: l.EffectiveAt, PaidUSD: l.PaidUSD, CreatedAt: l.CreatedAt,
	}
	if !l.ExpiresAt.IsZero() {
		t := l.ExpiresAt
		v.ExpiresAt = &t
	}
	// Dollars per credit, shown to the micro-dollar; revenue is recognised
	// from paid_usd and amount exactly, never from this rounded figure.
	if l.Amount > 0 {
		basis, err := fb.MulDiv(int64(l.PaidUSD), fb.Micro, int64(l.Amount))
		if err == nil {
			v.CostBasisUSD = fb.USD(basis)
		}
	}
	return v
}
