package api

import (
	"net/http"
	"strconv"
	"time"

	fb "farebox"
	"farebox/economics"
	"farebox/httpx"
	"farebox/routing"
)

// reportDay reads a report bound: a date (2026-11-01) or an RFC 3339 time
// at midnight UTC. Reports are of whole UTC days.
func reportDay(param, v string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return t, fb.Invalid(param, "%s must be a date such as 2026-11-01 (or an RFC 3339 time at midnight UTC)", param)
	}
	t = t.UTC()
	if !t.Equal(t.Truncate(24 * time.Hour)) {
		return t, fb.Invalid(param, "reports are of whole UTC days: %s must be at midnight UTC", param)
	}
	return t, nil
}

// economicsReport is GET /api/v1/reports/economics: revenue, cost,
// margin, breakage, uncollected and partner shares by customer, model,
// provider, day, product or plan over whole UTC days [from, to) (default:
// the last 30 days, today included).
func (s *Server) economicsReport(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	today := s.Now().UTC().Truncate(24 * time.Hour)
	f := fb.EconFilter{From: today.AddDate(0, 0, -29), To: today.AddDate(0, 0, 1), GroupBy: fb.GroupBy(q.Get("group_by"))}
	if f.GroupBy == "" {
		f.GroupBy = fb.GroupCustomer
	}
	var err error
	if f.Customer, err = customerQuery(r); err != nil {
		return err
	}
	if v := q.Get("from"); v != "" {
		if f.From, err = reportDay("from", v); err != nil {
			return err
		}
	}
	if v := q.Get("to"); v != "" {
		if f.To, err = reportDay("to", v); err != nil {
			return err
		}
	}
	if !f.From.Before(f.To) {
		return fb.Invalid("to", "to must be after from")
	}
	rows, totals, err := economics.Read(r.Context(), s.Store, f, s.Economics)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{
		"from": f.From.Format(time.DateOnly), "to": f.To.Format(time.DateOnly), "group_by": f.GroupBy,
		"rows": rows, "totals": totals,
	})
	return nil
}

// forecastReport is GET /api/v1/reports/forecast: each customer's burn
// rate over the last days (7 by default, a rolling window ending now) and
// when its available credit runs out at that rate.
func (s *Server) forecastReport(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	customer, err := customerQuery(r)
	if err != nil {
		return err
	}
	days := 7
	if v := q.Get("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 366 {
			return fb.Invalid("days", "days must be an integer from 1 to 366")
		}
		days = n
	}
	out, err := economics.Forecasts(r.Context(), s.Store, customer, days, s.Now().UTC())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"data": out, "has_more": false})
	return nil
}

// deployments is GET /api/v1/deployments: every deployment with its cost
// card and health as this replica's router sees it.
func (s *Server) deployments(w http.ResponseWriter, r *http.Request) error {
	data := []routing.Status{}
	if rt := s.Gateway.Router(); rt != nil {
		data = rt.Statuses()
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"data": data, "has_more": false})
	return nil
}
