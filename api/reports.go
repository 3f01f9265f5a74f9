package api

import (
	"net/http"
	"strconv"
	"time"

	fb "farebox"
	"farebox/economics"
	"farebox/httpx"
	"farebox/ledger"
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
// provider or day over whole UTC days [from, to) (default: the last 30
// days, today included).
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
	sums, err := s.Store.Economics(r.Context(), f)
	if err != nil {
		return err
	}
	rows, totals, err := economics.Report(sums, f.GroupBy, s.Economics)
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
	now := s.Now().UTC()
	rows, err := s.Store.Usage(r.Context(), fb.UsageFilter{Customer: customer, From: now.AddDate(0, 0, -days), To: now.Add(time.Nanosecond), GroupBy: fb.GroupCustomer})
	if err != nil {
		return err
	}
	consumed := map[string]fb.Amount{}
	for _, u := range rows {
		consumed[u.Key] = u.Credits
	}
	customers := []string{}
	if c := customer; c != "" {
		if _, err := s.Store.Customer(r.Context(), c); err != nil {
			return err
		}
		customers = append(customers, c)
	} else {
		for _, u := range rows {
			customers = append(customers, u.Key)
		}
	}
	out := []economics.Forecast{}
	for _, c := range customers {
		a, err := s.Store.Account(r.Context(), c)
		if err != nil {
			return err
		}
		ledger.SortLots(a.Lots)
		ledger.Advance(a, now, nil)
		out = append(out, economics.NewForecast(c, ledger.Available(a, now), consumed[c], days, now))
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
