package api

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"time"

	fb "farebox"
	"farebox/httpx"
	"farebox/keys"
	"farebox/ledger"
	"farebox/metering"
	"farebox/plans"
	"farebox/pricing"
)

// Plans.

type planRequest struct {
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	PriceUSD       json.RawMessage   `json:"price_usd"`
	Period         string            `json:"period"`
	Credits        json.RawMessage   `json:"credits"`
	RolloverMax    json.RawMessage   `json:"rollover_max"`
	OverdraftLimit json.RawMessage   `json:"overdraft_limit"`
	Models         []string          `json:"models"`
	RPM            int64             `json:"rpm"`
	TPM            int64             `json:"tpm"`
	Downgrade      map[string]string `json:"downgrade"`
	LowBalance     json.RawMessage   `json:"low_balance"`
	ExpiringDays   int               `json:"expiring_days"`
	Sponsored      bool              `json:"sponsored"`
}

func parsePlan(body []byte) (fb.Plan, error) {
	var req planRequest
	if err := decodeStrict(body, &req, false); err != nil {
		return fb.Plan{}, err
	}
	if err := validID("id", req.ID); err != nil {
		return fb.Plan{}, err
	}
	if err := textField("name", req.Name, 200); err != nil {
		return fb.Plan{}, err
	}
	p := fb.Plan{ID: req.ID, Name: req.Name, Period: fb.Period(req.Period), Models: req.Models, RPM: req.RPM, TPM: req.TPM,
		ExpiringDays: req.ExpiringDays, Sponsored: req.Sponsored}
	for from, to := range req.Downgrade {
		if err := textID("downgrade", from); err != nil {
			return p, err
		}
		if err := textID("downgrade", to); err != nil || from == to {
			return p, fb.Invalid("downgrade", "downgrade maps a model to another, cheaper model, such as {\"gpt-4o\": \"gpt-4o-mini\"}")
		}
	}
	if len(req.Downgrade) > 0 {
		p.Downgrade = req.Downgrade
	}
	if req.ExpiringDays < 0 || req.ExpiringDays > maxExpiringDays {
		return p, fb.Invalid("expiring_days", "expiring_days must be between 0 (none) and %d", maxExpiringDays)
	}
	if p.Name == "" {
		p.Name = p.ID
	}
	var err error
	if p.PriceUSD, _, err = usdField("price_usd", req.PriceUSD); err != nil {
		return p, err
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *fb.Amount
	}{{"credits", req.Credits, &p.Credits}, {"rollover_max", req.RolloverMax, &p.RolloverMax}, {"overdraft_limit", req.OverdraftLimit, &p.OverdraftLimit},
		{"low_balance", req.LowBalance, &p.LowBalance}} {
		if *f.dst, _, err = amountField(f.name, f.raw); err != nil {
			return p, err
		}
	}
	if p.Period == "" {
		p.Period = fb.PeriodMonth
	}
	if p.LowBalance < 0 || p.LowBalance > fb.MaxTotal {
		return p, fb.Invalid("low_balance", "low_balance must be an amount of credits (0: none)")
	}
	return p, plans.Validate(&p)
}

func (s *Server) createPlan(w http.ResponseWriter, r *http.Request) error {
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	p, err := parsePlan(body)
	if err != nil {
		return err
	}
	p.CreatedAt = s.Now().UTC()
	if err := s.Store.CreatePlan(r.Context(), p); err != nil {
		// The same plan created again is answered with what exists.
		if got, gerr := s.Store.Plan(r.Context(), p.ID); gerr == nil && fb.ErrorType(err) == fb.EConflict {
			got.CreatedAt = p.CreatedAt
			if mustJSON(got) == mustJSON(p) {
				httpx.WriteJSON(w, http.StatusOK, got)
				return nil
			}
		}
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, p)
	return nil
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (s *Server) listPlans(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.Store.Plans(r.Context())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"data": ps, "has_more": false})
	return nil
}

func (s *Server) getPlan(w http.ResponseWriter, r *http.Request) error {
	id, err := idPath(r, "id")
	if err != nil {
		return err
	}
	p, err := s.Store.Plan(r.Context(), id)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, p)
	return nil
}

func (s *Server) deletePlan(w http.ResponseWriter, r *http.Request) error {
	id, err := idPath(r, "id")
	if err != nil {
		return err
	}
	err = s.Store.DeletePlan(r.Context(), id)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
	return nil
}

// Subscriptions.

type subscriptionRequest struct {
	Plan           string `json:"plan"`
	Effective      string `json:"effective"`
	IdempotencyKey string `json:"idempotency_key"`
}

func (s *Server) changeSubscription(w http.ResponseWriter, r *http.Request) error {
	id, err := customerPath(r)
	if err != nil {
		return err
	}
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	var req subscriptionRequest
	if err := decodeStrict(body, &req, false); err != nil {
		return err
	}
	if err := validID("plan", req.Plan); err != nil {
		return err
	}
	key, err := idempotencyKey(r.Header.Get("Idempotency-Key"), req.IdempotencyKey)
	if err != nil {
		return err
	}
	if _, err := s.Store.Customer(r.Context(), id); err != nil {
		return err
	}
	sub, err := s.Plans.ChangeWithKey(r.Context(), id, req.Plan, req.Effective, key)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, sub)
	return nil
}

// customerView is a customer with its plan and subscription.
type customerView struct {
	fb.Customer
	Plan         *string          `json:"plan"`
	Subscription *fb.Subscription `json:"subscription"`
}

func (s *Server) customerView(r *http.Request, c fb.Customer) (customerView, error) {
	v := customerView{Customer: c}
	sub, err := s.Store.Subscription(r.Context(), c.ID)
	switch {
	case err == nil:
		v.Plan, v.Subscription = &sub.Plan, &sub
	case fb.ErrorType(err) != fb.ENotFound:
		return v, err
	}
	return v, nil
}

// API keys.

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) error {
	customer, err := customerPath(r)
	if err != nil {
		return err
	}
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	var req struct {
		Name         string          `json:"name"`
		Budget       json.RawMessage `json:"budget"`
		BudgetPeriod string          `json:"budget_period"`
		RPM          int64           `json:"rpm"`
	}
	if err := decodeStrict(body, &req, true); err != nil {
		return err
	}
	if err := textField("name", req.Name, 200); err != nil {
		return err
	}
	amount, hasBudget, err := amountField("budget", req.Budget)
	if err != nil {
		return err
	}
	var budget *fb.Amount
	if hasBudget {
		budget = &amount
	}
	var lim fb.APIKey
	if err := keys.Limit(&lim, budget, fb.BudgetPeriod(req.BudgetPeriod), req.RPM); err != nil {
		return err
	}
	c, err := s.Store.Customer(r.Context(), customer)
	if err != nil {
		return err
	}
	k, secret := keys.Mint(c.ID, req.Name, s.Now(), s.NewID)
	k.Budget, k.BudgetPeriod, k.RPM = lim.Budget, lim.BudgetPeriod, lim.RPM
	if err := s.Store.CreateKey(r.Context(), k); err != nil {
		return err
	}
	v, err := s.keyViews(r, c.ID, []fb.APIKey{k})
	if err != nil {
		return err
	}
	out := map[string]any{"key": secret}
	b, _ := json.Marshal(v[0])
	json.Unmarshal(b, &out)
	out["key"] = secret
	httpx.WriteJSON(w, http.StatusCreated, out)
	return nil
}

// keyJSON is a key as the API shows it, with its budget's state.
type keyJSON struct {
	ID        string    `json:"id"`
	Customer  string    `json:"customer"`
	Name      string    `json:"name"`
	Prefix    string    `json:"prefix"`
	CreatedAt time.Time `json:"created_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	RPM       int64     `json:"rpm"`
	keyBudget
}

// keyBudget is what a key's budget leaves: null fields for a key without
// one (and budget_resets_at for a total budget).
type keyBudget struct {
	Budget          *fb.Amount      `json:"budget"`
	BudgetPeriod    fb.BudgetPeriod `json:"budget_period"`
	BudgetRemaining *fb.Amount      `json:"budget_remaining"`
	BudgetResetsAt  *time.Time      `json:"budget_resets_at"`
}

// budgetOf is the state of a key's budget in account a at now.
func budgetOf(k fb.APIKey, a *fb.Account, now time.Time) keyBudget {
	b, ok := ledger.KeyBudgetOf(k, a, now)
	if !ok {
		return keyBudget{}
	}
	v := keyBudget{Budget: &b.Limit, BudgetPeriod: b.Period, BudgetRemaining: &b.Remaining}
	if !b.ResetsAt.IsZero() {
		v.BudgetResetsAt = &b.ResetsAt
	}
	return v
}

func (s *Server) keyViews(r *http.Request, customer string, ks []fb.APIKey) ([]keyJSON, error) {
	a, err := s.Store.Account(r.Context(), customer)
	if err != nil {
		return nil, err
	}
	now := s.Now().UTC()
	out := make([]keyJSON, 0, len(ks))
	for _, k := range ks {
		out = append(out, keyJSON{ID: k.ID, Customer: k.Customer, Name: k.Name, Prefix: k.Prefix, CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt,
			RPM: k.RPM, keyBudget: budgetOf(k, a, now)})
	}
	return out, nil
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) error {
	customer, err := customerPath(r)
	if err != nil {
		return err
	}
	c, err := s.Store.Customer(r.Context(), customer)
	if err != nil {
		return err
	}
	keys, err := s.Store.Keys(r.Context(), c.ID)
	if err != nil {
		return err
	}
	views, err := s.keyViews(r, c.ID, keys)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"data": views, "has_more": false})
	return nil
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) error {
	id, err := idPath(r, "key_id")
	if err != nil {
		return err
	}
	k, err := s.Store.RevokeKey(r.Context(), id, s.Now().UTC())
	if err != nil {
		return err
	}
	v, err := s.keyViews(r, k.Customer, []fb.APIKey{k})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, v[0])
	return nil
}

// Prices.

type priceRequest struct {
	InputPerMTok       json.RawMessage `json:"input_per_mtok"`
	OutputPerMTok      json.RawMessage `json:"output_per_mtok"`
	CachedInputPerMTok json.RawMessage `json:"cached_input_per_mtok"`
	ReasoningPerMTok   json.RawMessage `json:"reasoning_per_mtok"`
	CacheWritePerMTok  json.RawMessage `json:"cache_write_per_mtok"`
	PerImage           json.RawMessage `json:"per_image"`
	PerAudioSecond     json.RawMessage `json:"per_audio_second"`
	PerVideoSecond     json.RawMessage `json:"per_video_second"`
	PerGPUSecond       json.RawMessage `json:"per_gpu_second"`
	PerRequest         json.RawMessage `json:"per_request"`
	EffectiveFrom      *string         `json:"effective_from"`
}

func (s *Server) putPrice(w http.ResponseWriter, r *http.Request) error {
	model := r.PathValue("model")
	if model == "" || len(model) > 128 || strings.ContainsRune(model, ' ') || !fb.Printable(model) {
		return fb.Invalid("model", "model must be 1 to 128 characters of printable UTF-8, without blanks or control characters")
	}
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	var req priceRequest
	if err := decodeStrict(body, &req, false); err != nil {
		return err
	}
	now := s.Now().UTC()
	p := fb.Price{Model: model, EffectiveFrom: now, CreatedAt: now}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *fb.Amount
	}{
		{"input_per_mtok", req.InputPerMTok, &p.InputPerMTok}, {"output_per_mtok", req.OutputPerMTok, &p.OutputPerMTok},
		{"cached_input_per_mtok", req.CachedInputPerMTok, &p.CachedInputPerMTok}, {"reasoning_per_mtok", req.ReasoningPerMTok, &p.ReasoningPerMTok},
		{"per_image", req.PerImage, &p.PerImage}, {"per_audio_second", req.PerAudioSecond, &p.PerAudioSecond},
		{"per_video_second", req.PerVideoSecond, &p.PerVideoSecond}, {"per_gpu_second", req.PerGPUSecond, &p.PerGPUSecond},
		{"per_request", req.PerRequest, &p.PerRequest}, {"cache_write_per_mtok", req.CacheWritePerMTok, &p.CacheWritePerMTok},
	} {
		var given bool
		if *f.dst, given, err = amountField(f.name, f.raw); err != nil {
			return err
		}
		if *f.dst < 0 || *f.dst > fb.MaxTotal {
			return fb.Invalid(f.name, "%s must be between 0 and %s", f.name, fb.MaxTotal)
		}
		if f.dst == &p.CacheWritePerMTok && !given {
			p.CacheWritePerMTok = pricing.CacheWriteFor(p.InputPerMTok)
		}
	}
	if req.EffectiveFrom != nil {
		if p.EffectiveFrom, err = parseTime("effective_from", *req.EffectiveFrom); err != nil {
			return err
		}
	}
	if err := s.Store.PutPrice(r.Context(), p); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, p)
	return nil
}

func (s *Server) listPrices(w http.ResponseWriter, r *http.Request) error {
	card, err := s.Cards.Card(r.Context())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"data": card.Current(s.Now().UTC()), "has_more": false})
	return nil
}

// Events.

func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	batch := false
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	switch {
	case err != nil && ct != "":
		return fb.Errorf(fb.EUnsupportedMedia, "Content-Type %q is not valid", ct)
	case mt == "application/cloudevents-batch+json":
		batch = true
	case mt == "application/json", mt == "application/cloudevents+json", ct == "":
	default:
		return fb.Errorf(fb.EUnsupportedMedia, "Content-Type must be application/json, application/cloudevents+json or application/cloudevents-batch+json, got %q", ct)
	}
	body, err := httpx.ReadBody(r, metering.MaxBodySize, true)
	if err != nil {
		return err
	}
	raw, err := metering.Parse(body, batch)
	if err != nil {
		return err
	}
	results, err := s.Meter.Meter(r.Context(), raw)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"results": results})
	return nil
}

// Usage.

func (s *Server) usageFilter(r *http.Request) (fb.UsageFilter, error) {
	q := r.URL.Query()
	f := fb.UsageFilter{GroupBy: fb.GroupBy(q.Get("group_by"))}
	if f.GroupBy == "" {
		f.GroupBy = fb.GroupModel
	}
	var err error
	if f.Customer, err = customerQuery(r); err != nil {
		return f, err
	}
	if v := q.Get("from"); v != "" {
		if f.From, err = parseTime("from", v); err != nil {
			return f, err
		}
	}
	if v := q.Get("to"); v != "" {
		if f.To, err = parseTime("to", v); err != nil {
			return f, err
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		return f, fb.Invalid("to", "to must be after from")
	}
	return f, nil
}

func (s *Server) usage(w http.ResponseWriter, r *http.Request) error {
	f, err := s.usageFilter(r)
	if err != nil {
		return err
	}
	rows, err := s.Store.Usage(r.Context(), f)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"rows": rows})
	return nil
}

// accountUsage is GET /v1/account/usage: the key's own customer only.
func (s *Server) accountUsage(w http.ResponseWriter, r *http.Request) error {
	k, err := s.Gateway.Authenticate(r)
	if err != nil {
		return err
	}
	customer := k.Customer
	f, err := s.usageFilter(r)
	if err != nil {
		return err
	}
	if f.Customer != "" && f.Customer != customer {
		return fb.Errorf(fb.EForbidden, "an API key reads its own customer's usage only")
	}
	f.Customer = customer
	rows, err := s.Store.Usage(r.Context(), f)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"customer": customer, "rows": rows})
	return nil
}

func parseTime(param, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return t, fb.Invalid(param, "%s must be an RFC 3339 time such as 2026-11-01T00:00:00Z", param)
	}
	return t.UTC(), nil
}
