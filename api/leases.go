package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	fb "farebox"
	"farebox/compute"
	"farebox/httpx"
)

// Compute leasing: pools of GPUs and the leases of outside tenants.

type pricesRequest struct {
	OnDemand      json.RawMessage `json:"on_demand"`
	Reserved      json.RawMessage `json:"reserved"`
	Spot          json.RawMessage `json:"spot"`
	EffectiveFrom *string         `json:"effective_from"`
}

type poolRequest struct {
	ID                   string          `json:"id"`
	GPUType              string          `json:"gpu_type"`
	Region               string          `json:"region"`
	GPUs                 *int64          `json:"gpus"`
	CostUSDPerGPUHour    json.RawMessage `json:"cost_usd_per_gpu_hour"`
	ReservedForInference *int64          `json:"reserved_for_inference"`
	SpotNoticeSeconds    *int64          `json:"spot_notice_seconds"`
	Deployments          *[]string       `json:"deployments"`
	Prices               json.RawMessage `json:"prices"`
	// EffectiveFrom is the prices' version's start (also accepted inside
	// prices).
	EffectiveFrom *string `json:"effective_from"`
}

// parsePrices reads a price sheet; fields it lacks are base's.
func parsePrices(raw json.RawMessage, top *string, base fb.PoolPrices) (fb.PoolPrices, error) {
	var req pricesRequest
	if err := decodeStrict(raw, &req, false); err != nil {
		return base, err
	}
	v := base
	v.EffectiveFrom = time.Time{}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		to   *fb.Amount
	}{{"prices.on_demand", req.OnDemand, &v.OnDemand}, {"prices.reserved", req.Reserved, &v.Reserved}, {"prices.spot", req.Spot, &v.Spot}} {
		a, ok, err := amountField(f.name, f.raw)
		if err != nil {
			return v, err
		}
		if ok {
			*f.to = a
		}
	}
	if req.EffectiveFrom != nil && top != nil && *req.EffectiveFrom != *top {
		return v, fb.Invalid("effective_from", "effective_from is given twice, differently")
	}
	if top == nil {
		top = req.EffectiveFrom
	}
	var err error
	v.EffectiveFrom, err = timeField("effective_from", top)
	return v, err
}

func (s *Server) createPool(w http.ResponseWriter, r *http.Request) error {
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	var req poolRequest
	if err := decodeStrict(body, &req, false); err != nil {
		return err
	}
	if err := validID("id", req.ID); err != nil {
		return err
	}
	if err := textField("gpu_type", req.GPUType, 100); err != nil {
		return err
	}
	if err := textField("region", req.Region, 100); err != nil {
		return err
	}
	p := &fb.Pool{ID: req.ID, GPUType: req.GPUType, Region: req.Region, Deployments: []string{}}
	if req.GPUs == nil {
		return fb.Invalid("gpus", "gpus is required")
	}
	p.GPUs = *req.GPUs
	if req.ReservedForInference != nil {
		p.ReservedForInference = *req.ReservedForInference
	}
	if req.SpotNoticeSeconds != nil {
		p.SpotNoticeSeconds = *req.SpotNoticeSeconds
	}
	if req.Deployments != nil {
		if p.Deployments, err = deploymentNames(*req.Deployments); err != nil {
			return err
		}
	}
	if p.CostUSDPerGPUHour, _, err = usdField("cost_usd_per_gpu_hour", req.CostUSDPerGPUHour); err != nil {
		return err
	}
	if req.Prices == nil {
		return fb.Invalid("prices", "prices (on_demand, reserved, spot in credits per GPU-hour) are required")
	}
	v, err := parsePrices(req.Prices, req.EffectiveFrom, fb.PoolPrices{})
	if err != nil {
		return err
	}
	p.Prices = []fb.PoolPrices{v}
	got, created, err := s.Compute.CreatePool(r.Context(), p)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	httpx.WriteJSON(w, status, s.poolView(got))
	return nil
}

func deploymentNames(ds []string) ([]string, error) {
	if len(ds) > 100 {
		return nil, fb.Invalid("deployments", "a pool serves at most 100 deployments")
	}
	for _, d := range ds {
		if d == "" {
			return nil, fb.Invalid("deployments", "a deployment's name is not empty")
		}
		if err := textField("deployments", d, 200); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

func (s *Server) updatePool(w http.ResponseWriter, r *http.Request) error {
	id, err := idPath(r, "id")
	if err != nil {
		return err
	}
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	var req poolRequest
	if err := decodeStrict(body, &req, false); err != nil {
		return err
	}
	switch {
	case req.ID != "" && req.ID != id:
		return fb.Invalid("id", "a pool's id does not change")
	case req.GPUType != "" || req.Region != "":
		return fb.Invalid("gpu_type", "a pool's GPU type and region do not change: make another pool")
	case req.EffectiveFrom != nil && req.Prices == nil:
		return fb.Invalid("effective_from", "effective_from is of new prices: give them")
	}
	u := compute.PoolUpdate{GPUs: req.GPUs, ReservedForInference: req.ReservedForInference, SpotNoticeSeconds: req.SpotNoticeSeconds}
	if req.Deployments != nil {
		ds, err := deploymentNames(*req.Deployments)
		if err != nil {
			return err
		}
		u.Deployments = &ds
	}
	if cost, ok, err := usdField("cost_usd_per_gpu_hour", req.CostUSDPerGPUHour); err != nil {
		return err
	} else if ok {
		u.CostUSDPerGPUHour = &cost
	}
	if req.Prices != nil {
		cur, err := s.Store.Pool(r.Context(), id)
		if err != nil {
			return err
		}
		v, err := parsePrices(req.Prices, req.EffectiveFrom, cur.PricesAt(s.Now()))
		if err != nil {
			return err
		}
		u.Prices = &v
	}
	p, err := s.Compute.UpdatePool(r.Context(), id, u)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, s.poolView(p))
	return nil
}

type poolJSON struct {
	ID                   string          `json:"id"`
	GPUType              string          `json:"gpu_type"`
	Region               string          `json:"region"`
	GPUs                 int64           `json:"gpus"`
	CostUSDPerGPUHour    fb.USD          `json:"cost_usd_per_gpu_hour"`
	ReservedForInference int64           `json:"reserved_for_inference"`
	Leasable             int64           `json:"leasable_gpus"`
	SpotNoticeSeconds    int64           `json:"spot_notice_seconds"`
	Deployments          []string        `json:"deployments"`
	Prices               fb.PoolPrices   `json:"prices"` // in force now
	PriceVersions        []fb.PoolPrices `json:"price_versions"`
	CreatedAt            time.Time       `json:"created_at"`
	UpdatedAt            time.Time       `json:"updated_at"`
}

func (s *Server) poolView(p *fb.Pool) poolJSON {
	ds := p.Deployments
	if ds == nil {
		ds = []string{}
	}
	return poolJSON{ID: p.ID, GPUType: p.GPUType, Region: p.Region, GPUs: p.GPUs, CostUSDPerGPUHour: p.CostUSDPerGPUHour,
		ReservedForInference: p.ReservedForInference, Leasable: p.Leasable(), SpotNoticeSeconds: p.SpotNoticeSeconds,
		Deployments: ds, Prices: p.PricesAt(s.Now()), PriceVersions: p.Prices, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
}

func (s *Server) listPools(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.Store.Pools(r.Context())
	if err != nil {
		return err
	}
	data := make([]poolJSON, 0, len(ps))
	for _, p := range ps {
		data = append(data, s.poolView(p))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"data": data, "has_more": false})
	return nil
}

func (s *Server) getPool(w http.ResponseWriter, r *http.Request) error {
	id, err := idPath(r, "id")
	if err != nil {
		return err
	}
	p, err := s.Store.Pool(r.Context(), id)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, s.poolView(p))
	return nil
}

// instantQuery reads an optional time bound: an RFC 3339 time or a date
// (midnight UTC).
func instantQuery(r *http.Request, param string, def time.Time) (time.Time, error) {
	v := r.URL.Query().Get(param)
	if v == "" {
		return def, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return t, fb.Invalid(param, "%s must be an RFC 3339 time such as 2026-11-01T00:00:00Z, or a date", param)
	}
	return t.UTC().Truncate(time.Second), nil
}

// window reads from and to, with their defaults, and bounds the range.
func window(r *http.Request, from, to time.Time, most time.Duration) (time.Time, time.Time, error) {
	span := to.Sub(from)
	var err error
	if from, err = instantQuery(r, "from", from); err != nil {
		return from, to, err
	}
	if to, err = instantQuery(r, "to", from.Add(span)); err != nil {
		return from, to, err
	}
	switch {
	case !from.Before(to):
		return from, to, fb.Invalid("to", "to must be after from")
	case to.Sub(from) > most:
		return from, to, fb.Invalid("to", "the range is at most %d days", most/(24*time.Hour))
	}
	return from, to, nil
}

// poolUtilization is GET /api/v1/pools/{id}/utilization: allocated ÷
// available GPU-hours by class and tenant over [from, to) (default the
// last 24 hours), beside own inference's.
func (s *Server) poolUtilization(w http.ResponseWriter, r *http.Request) error {
	id, err := idPath(r, "id")
	if err != nil {
		return err
	}
	now := s.Now().UTC().Truncate(time.Second)
	from, to, err := window(r, now.Add(-24*time.Hour), now, 366*24*time.Hour)
	if err != nil {
		return err
	}
	u, err := s.Compute.Utilization(r.Context(), id, from, to)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, u)
	return nil
}

// poolAvailability is GET /api/v1/pools/{id}/availability: free GPUs per
// hour over [from, to) (default the next 7 days from this hour).
func (s *Server) poolAvailability(w http.ResponseWriter, r *http.Request) error {
	id, err := idPath(r, "id")
	if err != nil {
		return err
	}
	from := s.Now().UTC().Truncate(time.Hour)
	from, to, err := window(r, from, from.Add(7*24*time.Hour), 31*24*time.Hour)
	if err != nil {
		return err
	}
	hours, err := s.Compute.Availability(r.Context(), id, from, to)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"pool": id, "from": from, "to": to, "data": hours, "has_more": false})
	return nil
}

type leaseRequest struct {
	Customer       string  `json:"customer"`
	Pool           string  `json:"pool"`
	GPUs           *int64  `json:"gpus"`
	Class          string  `json:"class"`
	Start          *string `json:"start"`
	End            *string `json:"end"`
	IdempotencyKey string  `json:"idempotency_key"`
}

func parseLease(body []byte, headerKey string) (compute.Booking, error) {
	var req leaseRequest
	if err := decodeStrict(body, &req, false); err != nil {
		return compute.Booking{}, err
	}
	b := compute.Booking{Customer: req.Customer, Pool: req.Pool, Class: fb.LeaseClass(req.Class)}
	if err := validID("customer", req.Customer); err != nil {
		return b, err
	}
	if err := validID("pool", req.Pool); err != nil {
		return b, err
	}
	if req.GPUs == nil {
		return b, fb.Invalid("gpus", "gpus is required")
	}
	b.GPUs = *req.GPUs
	if !b.Class.Valid() {
		return b, fb.Invalid("class", "class must be reserved, on_demand or spot")
	}
	var err error
	if b.Start, err = timeField("start", req.Start); err != nil {
		return b, err
	}
	if b.End, err = timeField("end", req.End); err != nil {
		return b, err
	}
	if b.Key, err = idempotencyKey(headerKey, req.IdempotencyKey); err != nil {
		return b, err
	}
	return b, nil
}

// createLease is POST /api/v1/leases: the lease admitted and its first
// hold taken together, or 409 no_capacity with the first instant that
// lacks GPUs, or 402.
func (s *Server) createLease(w http.ResponseWriter, r *http.Request) error {
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	b, err := parseLease(body, r.Header.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	l, _, err := s.Compute.Book(r.Context(), b)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, leaseView(l))
	return nil
}

type leaseJSON struct {
	ID             string         `json:"id"`
	Customer       string         `json:"customer"`
	Pool           string         `json:"pool"`
	GPUs           int64          `json:"gpus"`
	Class          fb.LeaseClass  `json:"class"`
	State          fb.LeaseState  `json:"state"`
	Start          time.Time      `json:"start"`
	End            *time.Time     `json:"end"` // null: open-ended
	Reason         *string        `json:"reason"`
	PreemptedAt    *time.Time     `json:"preempted_at"`
	PreemptedBy    *string        `json:"preempted_by"`
	Held           fb.Amount      `json:"held"`
	Charged        fb.Amount      `json:"charged"`
	BilledTo       time.Time      `json:"billed_to"`
	CostUSD        fb.USD         `json:"cost_usd"`
	Holds          []fb.LeaseHold `json:"holds"`
	IdempotencyKey *string        `json:"idempotency_key"`
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
}

func leaseView(l *fb.Lease) leaseJSON {
	v := leaseJSON{ID: l.ID, Customer: l.Customer, Pool: l.Pool, GPUs: l.GPUs, Class: l.Class, State: l.State, Start: l.Start,
		Held: l.Held(), Charged: l.Charged, BilledTo: l.BilledTo, CostUSD: l.CostUSD, Holds: l.Holds, CreatedAt: l.CreatedAt, UpdatedAt: l.UpdatedAt}
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	optTime := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	v.End, v.PreemptedAt = optTime(l.End), optTime(l.PreemptedAt)
	v.Reason, v.PreemptedBy, v.IdempotencyKey = opt(l.Reason), opt(l.PreemptedBy), opt(l.Key)
	if v.Holds == nil {
		v.Holds = []fb.LeaseHold{}
	}
	return v
}

func (s *Server) getLease(w http.ResponseWriter, r *http.Request) error {
	id, err := idPath(r, "id")
	if err != nil {
		return err
	}
	l, err := s.Store.Lease(r.Context(), id)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, leaseView(l))
	return nil
}

// listLeases is GET /api/v1/leases?customer=&pool=&state=: what a
// provisioning system polls to start and stop machines.
func (s *Server) listLeases(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := fb.LeaseFilter{State: fb.LeaseState(q.Get("state")), Limit: 100}
	var err error
	if f.Customer, err = customerQuery(r); err != nil {
		return err
	}
	if f.Pool = q.Get("pool"); f.Pool != "" {
		if err := validID("pool", f.Pool); err != nil {
			return err
		}
	}
	if f.State != "" && !f.State.Valid() {
		return fb.Invalid("state", "state must be scheduled, active, ended or preempted")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return fb.Invalid("limit", "limit must be an integer from 1 to 1000")
		}
		f.Limit = n
	}
	if f.After = q.Get("starting_after"); f.After != "" {
		if err := textID("starting_after", f.After); err != nil {
			return err
		}
	}
	want := f.Limit
	f.Limit++
	ls, err := s.Store.Leases(r.Context(), f)
	if err != nil {
		return err
	}
	more := len(ls) > want
	if more {
		ls = ls[:want]
	}
	data := make([]leaseJSON, 0, len(ls))
	for _, l := range ls {
		data = append(data, leaseView(l))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"data": data, "has_more": more})
	return nil
}

// endLease is POST /api/v1/leases/{id}/end: the lease ends now (a
// scheduled one at once) and is settled; a reserved lease pays its whole
// window all the same.
func (s *Server) endLease(w http.ResponseWriter, r *http.Request) error {
	id, err := idPath(r, "id")
	if err != nil {
		return err
	}
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	if err := decodeStrict(body, &struct{}{}, true); err != nil {
		return err
	}
	l, err := s.Compute.EndLease(r.Context(), id)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, leaseView(l))
	return nil
}
