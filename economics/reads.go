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

// Detailer reads the daily sums by day, customer, model and provider.
type Detailer interface {
	EconomicsDetail(ctx context.Context, f fb.EconFilter) ([]fb.EconDetail, error)
}

// Fold sums detail rows into the store's sums by one grouping (customer,
// model, provider or day) and model: what Economics answers for that
// grouping, so Report over it is the API's report.
func Fold(detail []fb.EconDetail, by fb.GroupBy) ([]fb.EconRow, error) {
	type k struct{ key, model string }
	idx := map[k]int{}
	var out []fb.EconRow
	for _, d := range detail {
		var key string
		switch by {
		case fb.GroupDay:
			key = d.Day
		case fb.GroupCustomer:
			key = d.Customer
		case fb.GroupModel:
			key = d.Model
		case fb.GroupProvider:
			key = d.Provider
		default:
			return nil, fb.Invalid("group_by", "a detail read folds by customer, model, provider or day")
		}
		i, ok := idx[k{key, d.Model}]
		if !ok {
			i = len(out)
			idx[k{key, d.Model}] = i
			out = append(out, fb.EconRow{Key: key, Model: d.Model})
		}
		r := &out[i]
		r.Requests += d.Requests
		for _, p := range []struct{ to, v *fb.Amount }{{&r.Credits, &d.Credits}, {&r.Uncollected, &d.Uncollected}, {&r.BreakageCredits, &d.BreakageCredits}} {
			s, err := p.to.Add(*p.v)
			if err != nil {
				return nil, err
			}
			*p.to = s
		}
		for _, p := range []struct{ to, v *fb.USD }{{&r.RevenueUSD, &d.RevenueUSD}, {&r.CostUSD, &d.CostUSD}, {&r.BreakageUSD, &d.BreakageUSD}} {
			s, err := p.to.Add(*p.v)
			if err != nil {
				return nil, err
			}
			*p.to = s
		}
	}
	return out, nil
}

// Grouped is one grouping's report.
type Grouped struct {
	Rows   []Row
	Totals Row
}

// ReadGroupings is the report of f by each of the groupings, from one
// read of the daily sums: each equals Read of f by that grouping.
func ReadGroupings(ctx context.Context, r Detailer, f fb.EconFilter, cfg Config, groupings ...fb.GroupBy) (map[fb.GroupBy]Grouped, error) {
	detail, err := r.EconomicsDetail(ctx, f)
	if err != nil {
		return nil, err
	}
	out := map[fb.GroupBy]Grouped{}
	for _, g := range groupings {
		sums, err := Fold(detail, g)
		if err != nil {
			return nil, err
		}
		rows, totals, err := Report(sums, g, cfg)
		if err != nil {
			return nil, err
		}
		out[g] = Grouped{rows, totals}
	}
	return out, nil
}
