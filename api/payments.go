package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	fb "farebox"
	"farebox/httpx"
	"farebox/payments"
)

// Payments, automatic top-ups, thresholds and webhook endpoints.

func (s *Server) checkout(w http.ResponseWriter, r *http.Request) error {
	customer, err := customerPath(r)
	if err != nil {
		return err
	}
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	var req struct {
		Credits    json.RawMessage `json:"credits"`
		SuccessURL string          `json:"success_url"`
		CancelURL  string          `json:"cancel_url"`
	}
	if err := decodeStrict(body, &req, false); err != nil {
		return err
	}
	credits, ok, err := amountField("credits", req.Credits)
	if err != nil {
		return err
	}
	if !ok || credits <= 0 || credits > fb.MaxTotal {
		return fb.Invalid("credits", "credits must be a positive amount, such as \"1000\"")
	}
	if err := webURL("success_url", req.SuccessURL, true); err != nil {
		return err
	}
	if err := webURL("cancel_url", req.CancelURL, false); err != nil {
		return err
	}
	if _, err := s.Store.Customer(r.Context(), customer); err != nil {
		return err
	}
	sess, err := s.Payments.Checkout(r.Context(), customer, credits, req.SuccessURL, req.CancelURL)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, sess)
	return nil
}

// webURL checks an http(s) URL.
func webURL(param, v string, required bool) error {
	if v == "" && !required {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(v) > 2048 || !fb.Printable(v) {
		return fb.Invalid(param, "%s must be an http or https URL", param)
	}
	return nil
}

// stripeWebhook is POST /webhooks/stripe: no admin token, the signature is
// the authentication.
func (s *Server) stripeWebhook(w http.ResponseWriter, r *http.Request) error {
	body, err := httpx.ReadBody(r, MaxBodyBytes, false)
	if err != nil {
		return err
	}
	if err := s.Payments.HandleWebhook(r.Context(), body, r.Header.Get("Stripe-Signature")); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"received": true})
	return nil
}

type autoTopupJSON struct {
	Customer  string    `json:"customer"`
	Threshold fb.Amount `json:"threshold"`
	Credits   fb.Amount `json:"credits"`
	Cooldown  string    `json:"cooldown"`
	UpdatedAt time.Time `json:"updated_at"`
	// LastAttempt is the latest automatic top-up made, null before one.
	LastAttempt *topupJSON `json:"last_attempt"`
}

// topupJSON is an automatic top-up's attempt as the API shows it.
type topupJSON struct {
	ID        string    `json:"id"`
	Status    string    `json:"status"`
	Credits   fb.Amount `json:"credits"`
	AmountUSD fb.USD    `json:"amount_usd"`
	PaymentID string    `json:"payment_id"`
	Error     string    `json:"error"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func autoTopupView(t fb.AutoTopup, last *fb.TopupAttempt) autoTopupJSON {
	v := autoTopupJSON{Customer: t.Customer, Threshold: t.Threshold, Credits: t.Credits, Cooldown: payments.FormatCooldown(t.Cooldown), UpdatedAt: t.UpdatedAt}
	if last != nil {
		v.LastAttempt = &topupJSON{ID: last.ID, Status: last.Status, Credits: last.Credits, AmountUSD: last.AmountUSD, PaymentID: last.PaymentID,
			Error: last.Error, CreatedAt: last.CreatedAt, UpdatedAt: last.UpdatedAt}
	}
	return v
}

func (s *Server) getAutoTopup(w http.ResponseWriter, r *http.Request) error {
	customer, err := customerPath(r)
	if err != nil {
		return err
	}
	t, last, err := s.Payments.AutoTopup(r.Context(), customer)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, autoTopupView(t, last))
	return nil
}

func (s *Server) putAutoTopup(w http.ResponseWriter, r *http.Request) error {
	customer, err := customerPath(r)
	if err != nil {
		return err
	}
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	var req struct {
		Threshold json.RawMessage `json:"threshold"`
		Credits   json.RawMessage `json:"credits"`
		Cooldown  string          `json:"cooldown"`
	}
	if err := decodeStrict(body, &req, false); err != nil {
		return err
	}
	t := fb.AutoTopup{Customer: customer}
	var ok bool
	if t.Threshold, ok, err = amountField("threshold", req.Threshold); err != nil {
		return err
	}
	if !ok {
		return fb.Invalid("threshold", "threshold must be a positive amount of credits")
	}
	if t.Credits, ok, err = amountField("credits", req.Credits); err != nil {
		return err
	}
	if !ok {
		return fb.Invalid("credits", "credits must be a positive amount of credits")
	}
	if t.Cooldown, err = payments.ParseCooldown(req.Cooldown); err != nil {
		return err
	}
	if t, err = s.Payments.SetAutoTopup(r.Context(), t); err != nil {
		return err
	}
	_, last, err := s.Payments.AutoTopup(r.Context(), customer)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, autoTopupView(t, last))
	return nil
}

func (s *Server) deleteAutoTopup(w http.ResponseWriter, r *http.Request) error {
	customer, err := customerPath(r)
	if err != nil {
		return err
	}
	if err := s.Store.DeleteAutoTopup(r.Context(), customer); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"customer": customer, "deleted": true})
	return nil
}

type alertsJSON struct {
	Customer     string    `json:"customer"`
	LowBalance   fb.Amount `json:"low_balance"`
	ExpiringDays int       `json:"expiring_days"`
	// Source says where they come from: the customer's own, its plan's
	// defaults, or none.
	Source string `json:"source"`
}

func (s *Server) getAlerts(w http.ResponseWriter, r *http.Request) error {
	customer, err := customerPath(r)
	if err != nil {
		return err
	}
	if _, err := s.Store.Customer(r.Context(), customer); err != nil {
		return err
	}
	v := alertsJSON{Customer: customer, Source: "none"}
	a, ok, err := s.Store.Alerts(r.Context(), customer)
	if err != nil {
		return err
	}
	if ok {
		v.LowBalance, v.ExpiringDays, v.Source = a.LowBalance, a.ExpiringDays, "customer"
	} else if sub, err := s.Store.Subscription(r.Context(), customer); err == nil {
		if p, err := s.Store.Plan(r.Context(), sub.Plan); err == nil && (p.LowBalance > 0 || p.ExpiringDays > 0) {
			v.LowBalance, v.ExpiringDays, v.Source = p.LowBalance, p.ExpiringDays, "plan"
		}
	}
	httpx.WriteJSON(w, http.StatusOK, v)
	return nil
}

// maxExpiringDays bounds expiring_days.
const maxExpiringDays = 365

func (s *Server) putAlerts(w http.ResponseWriter, r *http.Request) error {
	customer, err := customerPath(r)
	if err != nil {
		return err
	}
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	var req struct {
		LowBalance   json.RawMessage `json:"low_balance"`
		ExpiringDays int             `json:"expiring_days"`
	}
	if err := decodeStrict(body, &req, false); err != nil {
		return err
	}
	var a fb.Alerts
	if a.LowBalance, _, err = amountField("low_balance", req.LowBalance); err != nil {
		return err
	}
	if a.LowBalance < 0 || a.LowBalance > fb.MaxTotal {
		return fb.Invalid("low_balance", "low_balance must be an amount of credits (0: no balance.low)")
	}
	if req.ExpiringDays < 0 || req.ExpiringDays > maxExpiringDays {
		return fb.Invalid("expiring_days", "expiring_days must be between 0 (none) and %d", maxExpiringDays)
	}
	a.ExpiringDays = req.ExpiringDays
	if _, err := s.Store.Customer(r.Context(), customer); err != nil {
		return err
	}
	if err := s.Store.PutAlerts(r.Context(), customer, a); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, alertsJSON{Customer: customer, LowBalance: a.LowBalance, ExpiringDays: a.ExpiringDays, Source: "customer"})
	return nil
}

func (s *Server) createEndpoint(w http.ResponseWriter, r *http.Request) error {
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	var req struct {
		URL    string   `json:"url"`
		Events []string `json:"events"`
	}
	if err := decodeStrict(body, &req, false); err != nil {
		return err
	}
	ep, err := s.Notify.CreateEndpoint(r.Context(), req.URL, req.Events)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{"id": ep.ID, "url": ep.URL, "events": ep.Events, "secret": ep.Secret, "created_at": ep.CreatedAt})
	return nil
}

func (s *Server) listEndpoints(w http.ResponseWriter, r *http.Request) error {
	eps, err := s.Store.Endpoints(r.Context())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"data": eps, "has_more": false})
	return nil
}

func (s *Server) deleteEndpoint(w http.ResponseWriter, r *http.Request) error {
	id, err := idPath(r, "id")
	if err != nil {
		return err
	}
	if err := s.Store.DeleteEndpoint(r.Context(), id); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
	return nil
}

func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	id, err := idPath(r, "id")
	if err != nil {
		return err
	}
	if _, err := s.Store.Endpoint(r.Context(), id); err != nil {
		return err
	}
	ds, err := s.Store.Deliveries(r.Context(), id, 100)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"data": ds, "has_more": len(ds) == 100})
	return nil
}

func (s *Server) retryDelivery(w http.ResponseWriter, r *http.Request) error {
	id, err := idPath(r, "id")
	if err != nil {
		return err
	}
	d, err := s.Notify.Retry(r.Context(), id)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, d)
	return nil
}
