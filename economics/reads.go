package economics

import (
	"context"
	"time"

	fb "farebox"
	"farebox/ledger"
)

// Reader is what the reports read of a store: the daily sums and
// accounts.
type Reader interface {
	Economics(ctx context.Context, f fb.EconFilter) ([]fb.EconRow, error)
	Account(ctx context.Context, customer string) (*fb.Account, error)
	Customer(ctx context.Context, id string) (fb.Customer, error)
}

// Read is the report of f from the store's daily sums: the API's report
// and the dashboard's are both this.
func Read(ctx context.Context, r Reader, f fb.EconFilter, cfg Config) ([]Row, Row, error) {
	sums, err := r.Economics(ctx, f)
	if err != nil {
		return nil, Row{}, err
	}
	return Report(sums, f.GroupBy, cfg)
}

// Forecasts are the forecasts of customer (every customer that consumed
// credit or made a request in the window when ""): the credits each
// consumed over the window of days days (ForecastWindow) — every credit
// the daily sums count: usage, and captures and debits made through the
// API — and when its available credit runs out at that rate. An unknown
// customer is not_found.
func Forecasts(ctx context.Context, r Reader, customer string, days int, now time.Time) ([]Forecast, error) {
	from, elapsed := ForecastWindow(days, now)
	sums, err := r.Economics(ctx, fb.EconFilter{From: from, To: now.UTC().Truncate(24*time.Hour).AddDate(0, 0, 1), GroupBy: fb.GroupCustomer, Customer: customer})
	if err != nil {
		return nil, err
	}
	consumed := map[string]fb.Amount{}
	customers := []string{}
	for _, e := range sums {
		if e.Credits == 0 && e.Requests == 0 {
			continue // breakage only
		}
		if _, ok := consumed[e.Key]; !ok {
			customers = append(customers, e.Key)
		}
		v, err := consumed[e.Key].Add(e.Credits)
		if err != nil {
			return nil, err
		}
		consumed[e.Key] = v
	}
	if customer != "" {
		if _, err := r.Customer(ctx, customer); err != nil {
			return nil, err
		}
		customers = []string{customer}
	}
	out := []Forecast{}
	for _, c := range customers {
		a, err := r.Account(ctx, c)
		if err != nil {
			return nil, err
		}
		b := ledger.BalanceAt(a, now)
		out = append(out, NewForecast(c, b.Available, consumed[c], days, elapsed, now))
	}
	return out, nil
}

// Grouper reads the daily sums by several groupings at once.
type Grouper interface {
	EconomicsBy(ctx context.Context, f fb.EconFilter, groupings ...fb.GroupBy) ([][]fb.EconRow, error)
}

// Grouped is one grouping's report.
type Grouped struct {
	Rows   []Row
	Totals Row
}

// ReadGroupings is the report of f by each of the groupings, from one
// consistent read of the daily sums: each equals Read of f by that
// grouping (at the same moment).
func ReadGroupings(ctx context.Context, r Grouper, f fb.EconFilter, cfg Config, groupings ...fb.GroupBy) (map[fb.GroupBy]Grouped, error) {
	sums, err := r.EconomicsBy(ctx, f, groupings...)
	if err != nil {
		return nil, err
	}
	out := map[fb.GroupBy]Grouped{}
	for i, g := range groupings {
		rows, totals, err := Report(sums[i], g, cfg)
		if err != nil {
			return nil, err
		}
		out[g] = Grouped{rows, totals}
	}
	return out, nil
}
