package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	fb "farebox"
	"farebox/httpx"
)

// Sponsored suggestions: advertisers, campaigns, their stats, the opt-out
// of a customer, and the click links.

type advertiserRequest struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// createAdvertiser is POST /api/v1/advertisers: an account in the
// customers' namespace of kind advertiser, granted credits and read like a
// customer's.
func (s *Server) createAdvertiser(w http.ResponseWriter, r *http.Request) error {
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	var req advertiserRequest
	if err := decodeStrict(body, &req, false); err != nil {
		return err
	}
	if req.ID != "" {
		if err := validID("id", req.ID); err != nil {
			return err
		}
	}
	if err := textField("name", req.Name, 200); err != nil {
		return err
	}
	c := fb.Customer{ID: req.ID, Name: req.Name, Kind: fb.KindAdvertiser, CreatedAt: s.Now().UTC()}
	if c.ID == "" {
		c.ID = s.NewID("adv_")
	}
	status := http.StatusCreated
	if err := s.Store.CreateCustomer(r.Context(), c); err != nil {
		if !errors.Is(err, fb.ErrCustomerExists) {
			return err
		}
		// The same advertiser created again is answered with what exists.
		got, gerr := s.Store.Customer(r.Context(), c.ID)
		if gerr != nil || got.Name != c.Name || got.Kind != fb.KindAdvertiser {
			return err
		}
		c, status = got, http.StatusOK
	}
	v, err := s.customerView(r, c)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, status, v)
	return nil
}

// patchCustomer is PATCH /api/v1/customers/{id}: what may change of a
// customer (its opt-out of sponsored suggestions).
func (s *Server) patchCustomer(w http.ResponseWriter, r *http.Request) error {
	id, err := customerPath(r)
	if err != nil {
		return err
	}
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	var req struct {
		SponsoredOptOut *bool `json:"sponsored_opt_out"`
	}
	if err := decodeStrict(body, &req, false); err != nil {
		return err
	}
	var c fb.Customer
	if req.SponsoredOptOut != nil {
		c, err = s.Store.SetSponsoredOptOut(r.Context(), id, *req.SponsoredOptOut)
	} else {
		c, err = s.Store.Customer(r.Context(), id)
	}
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

// campaignRequest is a campaign's body: all of it to create one, any part
// of it to change one (absent or null: unchanged).
type campaignRequest struct {
	ID               string          `json:"id"`
	Advertiser       *string         `json:"advertiser"`
	Topics           *[]string       `json:"topics"`
	Phrases          *[]string       `json:"phrases"`
	ExcludeTopics    *[]string       `json:"exclude_topics"`
	Title            *string         `json:"title"`
	Text             *string         `json:"text"`
	URL              *string         `json:"url"`
	BidPerImpression json.RawMessage `json:"bid_per_impression"`
	BidPerClick      json.RawMessage `json:"bid_per_click"`
	DailyBudget      json.RawMessage `json:"daily_budget"`
	FrequencyCap     *int64          `json:"frequency_cap_per_user_per_day"`
	Active           *bool           `json:"active"`
}

// apply writes what req sets onto c.
func (req *campaignRequest) apply(c *fb.Campaign) error {
	if req.Advertiser != nil {
		if err := validID("advertiser", *req.Advertiser); err != nil {
			return err
		}
		c.Advertiser = *req.Advertiser
	}
	for _, l := range []struct {
		from *[]string
		to   *[]string
	}{{req.Topics, &c.Topics}, {req.Phrases, &c.Phrases}, {req.ExcludeTopics, &c.ExcludeTopics}} {
		if l.from != nil {
			*l.to = *l.from
		}
	}
	for _, f := range []struct {
		from *string
		to   *string
	}{{req.Title, &c.Title}, {req.Text, &c.Text}, {req.URL, &c.URL}} {
		if f.from != nil {
			*f.to = *f.from
		}
	}
	for _, a := range []struct {
		name string
		raw  json.RawMessage
		to   *fb.Amount
	}{{"bid_per_impression", req.BidPerImpression, &c.BidPerImpression}, {"bid_per_click", req.BidPerClick, &c.BidPerClick}, {"daily_budget", req.DailyBudget, &c.DailyBudget}} {
		if v, ok, err := amountField(a.name, a.raw); err != nil {
			return err
		} else if ok {
			*a.to = v
		}
	}
	if req.FrequencyCap != nil {
		c.FrequencyCap = *req.FrequencyCap
	}
	if req.Active != nil {
		c.Active = *req.Active
	}
	return nil
}

func (s *Server) createCampaign(w http.ResponseWriter, r *http.Request) error {
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	var req campaignRequest
	if err := decodeStrict(body, &req, false); err != nil {
		return err
	}
	for _, f := range []struct {
		name    string
		present bool
	}{{"advertiser", req.Advertiser != nil}, {"topics", req.Topics != nil}, {"title", req.Title != nil}, {"url", req.URL != nil}, {"daily_budget", req.DailyBudget != nil}} {
		if !f.present {
			return fb.Invalid(f.name, "%s is required", f.name)
		}
	}
	c := fb.Campaign{ID: req.ID, Active: true}
	if c.ID == "" {
		c.ID = s.NewID("cmp_")
	} else if err := validID("id", c.ID); err != nil {
		return err
	}
	if err := req.apply(&c); err != nil {
		return err
	}
	got, err := s.Sponsored.Create(r.Context(), c)
	if errors.Is(err, fb.ErrCampaignExists) {
		// The same campaign created again is answered with what exists.
		old, gerr := s.Sponsored.Get(r.Context(), c.ID)
		if gerr == nil && sameCampaign(old, got) {
			httpx.WriteJSON(w, http.StatusOK, old)
			return nil
		}
	}
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, got)
	return nil
}

// sameCampaign reports whether two campaigns say the same, whenever made.
func sameCampaign(a, b fb.Campaign) bool {
	a.CreatedAt, a.UpdatedAt, a.Version = time.Time{}, time.Time{}, 0
	b.CreatedAt, b.UpdatedAt, b.Version = time.Time{}, time.Time{}, 0
	return mustJSON(a) == mustJSON(b)
}

func (s *Server) listCampaigns(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.Sponsored.List(r.Context())
	if err != nil {
		return err
	}
	if adv := r.URL.Query().Get("advertiser"); adv != "" {
		if err := validID("advertiser", adv); err != nil {
			return err
		}
		kept := cs[:0]
		for _, c := range cs {
			if c.Advertiser == adv {
				kept = append(kept, c)
			}
		}
		cs = kept
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"data": cs, "has_more": false})
	return nil
}

func (s *Server) getCampaign(w http.ResponseWriter, r *http.Request) error {
	id, err := campaignPath(r)
	if err != nil {
		return err
	}
	c, err := s.Sponsored.Get(r.Context(), id)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) patchCampaign(w http.ResponseWriter, r *http.Request) error {
	id, err := campaignPath(r)
	if err != nil {
		return err
	}
	body, err := httpx.ReadBody(r, MaxBodyBytes, true)
	if err != nil {
		return err
	}
	var req campaignRequest
	if err := decodeStrict(body, &req, false); err != nil {
		return err
	}
	if req.ID != "" && req.ID != id {
		return fb.Invalid("id", "a campaign's id cannot change")
	}
	c, err := s.Sponsored.Update(r.Context(), id, req.apply)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) deleteCampaign(w http.ResponseWriter, r *http.Request) error {
	id, err := campaignPath(r)
	if err != nil {
		return err
	}
	if err := s.Sponsored.Delete(r.Context(), id); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
	return nil
}

// campaignStats is GET /api/v1/campaigns/{id}/stats?from=&to=: the
// impressions and clicks charged, and what they cost, over [from, to)
// (RFC 3339 times or dates; either absent: unbounded).
func (s *Server) campaignStats(w http.ResponseWriter, r *http.Request) error {
	id, err := campaignPath(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var from, to time.Time
	for _, b := range []struct {
		name string
		to   *time.Time
	}{{"from", &from}, {"to", &to}} {
		v := q.Get(b.name)
		if v == "" {
			continue
		}
		if t, err := time.Parse(time.DateOnly, v); err == nil {
			*b.to = t
		} else if *b.to, err = parseTime(b.name, v); err != nil {
			return err
		}
	}
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		return fb.Invalid("to", "to must be after from")
	}
	st, err := s.Sponsored.Stats(r.Context(), id, from, to)
	if err != nil {
		return err
	}
	out := map[string]any{"campaign": id, "from": nil, "to": nil, "impressions": st.Impressions, "clicks": st.Clicks, "spend": st.Spend}
	if !from.IsZero() {
		out["from"] = from
	}
	if !to.IsZero() {
		out["to"] = to
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

// click is GET /s/{id}: a sponsored suggestion's link, charged once and
// redirected to the advertiser (302). No auth: the id is a signed token.
func (s *Server) click(w http.ResponseWriter, r *http.Request) error {
	to, err := s.Sponsored.Click(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Location", to)
	h.Set("Cache-Control", "no-store")
	// The advertiser learns nothing of where the click came from.
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(http.StatusFound)
	return nil
}

// campaignPath returns a campaign's {id}, checked as an id.
func campaignPath(r *http.Request) (string, error) {
	id := r.PathValue("id")
	return id, validID("id", id)
}
