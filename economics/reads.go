package economics

import (
	"context"
	"time"

	fb "farebox"
	"farebox/ledger"
)

// Reader is what the reports read of a store: the daily sums, usage sums
// and accounts.
type Reader interface {
	Economics(ctx context.Context, f fb.EconFilter) ([]fb.EconRow, error)
	Usage(ctx context.Context, f fb.UsageFilter) ([]fb.UsageRow, error)
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

// Forecasts are the forecasts of customer (every customer with usage in
// the window when ""): the credits each consumed over the days days up to
// now (a rolling window), and when its available credit runs out at that
// rate. An unknown customer is not_found.
func Forecasts(ctx context.Context, r Reader, customer string, days int, now time.Time) ([]Forecast, error) {
	rows, err := r.Usage(ctx, fb.UsageFilter{Customer: customer, From: now.AddDate(0, 0, -days), To: now.Add(time.Nanosecond), GroupBy: fb.GroupCustomer})
	if err != nil {
		return nil, err
	}
	consumed := map[string]fb.Amount{}
	for _, u := range rows {
		consumed[u.Key] = u.Credits
	}
	customers := []string{}
	if customer != "" {
		if _, err := r.Customer(ctx, customer); err != nil {
			return nil, err
		}
		customers = append(customers, customer)
	} else {
		for _, u := range rows {
			customers = append(customers, u.Key)
		}
	}
	out := []Forecast{}
	for _, c := range customers {
		a, err := r.Account(ctx, c)
		if err != nil {
			return nil, err
		}
		b := ledger.BalanceAt(a, now)
		out = append(out, NewForecast(c, b.Available, consumed[c], days, now))
	}
	return out, nil
}
