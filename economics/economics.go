// Package economics turns the ledger's daily sums into unit economics:
// revenue (the cost basis of the exact credits consumed), inference cost,
// margin, breakage, uncollected usage, partners' revenue shares, and a
// forecast of when a customer's credits run out. All in exact integers.
package economics

import (
	"fmt"
	"math/big"
	"path"
	"slices"
	"strings"
	"time"

	fb "farebox"
)

// Share is a partner's percentage of the revenue earned on models that
// match one of its globs, e.g. 20% of revenue on "llama-*".
type Share struct {
	Partner string
	Models  []string
	Percent fb.Amount // in millionths of a percent: 20% is 20 × 10⁶
}

// Config says how to value what the ledger does not: uncollected credit,
// never paid for, at CreditsPerUSD credits a dollar; and partners' shares.
type Config struct {
	CreditsPerUSD int64
	Shares        []Share
}

// Row is one group of a report. MarginPct is margin ÷ revenue in percent
// with two decimals, nil when revenue is 0.
type Row struct {
	Key             string    `json:"key"`
	Requests        int64     `json:"requests"`
	RevenueUSD      fb.USD    `json:"revenue_usd"`
	CostUSD         fb.USD    `json:"cost_usd"`
	MarginUSD       fb.USD    `json:"margin_usd"`
	MarginPct       *string   `json:"margin_pct"`
	CreditsConsumed fb.Amount `json:"credits_consumed"`
	BreakageUSD     fb.USD    `json:"breakage_usd"`
	BreakageCredits fb.Amount `json:"breakage_credits"`
	UncollectedUSD  fb.USD    `json:"uncollected_usd"`
	Uncollected     fb.Amount `json:"uncollected_credits"`
	PartnerShareUSD fb.USD    `json:"partner_share_usd"`
}

// Report folds the store's sums (by group and model) into rows by group
// and their totals, which are the sums of the rows. Breakage belongs to
// customers and days: grouped by model, provider, product or plan it is
// left out (0). Revenue recognised without a usage row (model "": debt
// repaid by a grant, holds captured through the API) has no model or
// provider: grouped by either it is the row of key "" (by product, it is
// inference's; by plan, no plan's), so the revenue totals are the same
// whatever the grouping. It carries no partner share.
func Report(in []fb.EconRow, groupBy fb.GroupBy, cfg Config) ([]Row, Row, error) {
	byKey := map[string]*Row{}
	var keys []string
	for _, e := range in {
		if e.Model == "" && groupBy != fb.GroupCustomer && groupBy != fb.GroupDay {
			e.BreakageCredits, e.BreakageUSD = 0, 0
			if e == (fb.EconRow{Key: e.Key}) {
				continue // breakage only
			}
		}
		r := byKey[e.Key]
		if r == nil {
			r = &Row{Key: e.Key}
			byKey[e.Key] = r
			keys = append(keys, e.Key)
		}
		share, err := cfg.share(e.Model, e.RevenueUSD)
		if err != nil {
			return nil, Row{}, err
		}
		unc, err := cfg.valueOf(e.Uncollected)
		if err != nil {
			return nil, Row{}, err
		}
		if err := add(r, Row{
			Requests: e.Requests, RevenueUSD: e.RevenueUSD, CostUSD: e.CostUSD, CreditsConsumed: e.Credits,
			BreakageUSD: e.BreakageUSD, BreakageCredits: e.BreakageCredits, Uncollected: e.Uncollected, UncollectedUSD: unc,
			PartnerShareUSD: share,
		}); err != nil {
			return nil, Row{}, err
		}
	}
	slices.Sort(keys)
	rows := make([]Row, 0, len(keys))
	var total Row
	for _, k := range keys {
		r := byKey[k]
		finish(r)
		rows = append(rows, *r)
		if err := add(&total, *r); err != nil {
			return nil, Row{}, err
		}
	}
	finish(&total)
	total.Key = "total"
	return rows, total, nil
}

// add sums b into a, refusing overflow.
func add(a *Row, b Row) error {
	a.Requests += b.Requests
	for _, p := range []struct{ to, v *fb.USD }{{&a.RevenueUSD, &b.RevenueUSD}, {&a.CostUSD, &b.CostUSD}, {&a.BreakageUSD, &b.BreakageUSD}, {&a.UncollectedUSD, &b.UncollectedUSD}, {&a.PartnerShareUSD, &b.PartnerShareUSD}} {
		s, err := p.to.Add(*p.v)
		if err != nil {
			return err
		}
		*p.to = s
	}
	for _, p := range []struct{ to, v *fb.Amount }{{&a.CreditsConsumed, &b.CreditsConsumed}, {&a.BreakageCredits, &b.BreakageCredits}, {&a.Uncollected, &b.Uncollected}} {
		s, err := p.to.Add(*p.v)
		if err != nil {
			return err
		}
		*p.to = s
	}
	return nil
}

// finish sets a row's margin from its revenue and cost.
func finish(r *Row) {
	r.MarginUSD = r.RevenueUSD - r.CostUSD
	r.MarginPct = Percent(r.MarginUSD, r.RevenueUSD)
}

// Percent is part ÷ whole × 100 with two decimals, rounded half away from
// zero; nil when whole is 0.
func Percent(part, whole fb.USD) *string {
	if whole == 0 {
		return nil
	}
	n := new(big.Int).Mul(big.NewInt(int64(part)), big.NewInt(10_000))
	d := big.NewInt(int64(whole))
	q, m := new(big.Int).QuoRem(n, d, new(big.Int))
	// Round half away from zero: compare 2|m| with |d|.
	if new(big.Int).Mul(new(big.Int).Abs(m), big.NewInt(2)).Cmp(new(big.Int).Abs(d)) >= 0 {
		if (n.Sign() < 0) != (d.Sign() < 0) {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	neg := q.Sign() < 0
	q.Abs(q)
	s := fmt.Sprintf("%d.%02d", new(big.Int).Quo(q, big.NewInt(100)), new(big.Int).Rem(q, big.NewInt(100)).Int64())
	if neg {
		s = "-" + s
	}
	return &s
}

// share is what partners are owed of revenue earned on model: the first
// matching share's percent, rounded down to the micro-dollar.
func (c Config) share(model string, revenue fb.USD) (fb.USD, error) {
	if model == "" {
		return 0, nil // revenue of no model (see Report)
	}
	for _, s := range c.Shares {
		for _, g := range s.Models {
			if ok, _ := path.Match(g, model); ok {
				v, err := fb.MulDiv(int64(revenue), int64(s.Percent), 100*fb.Micro)
				return fb.USD(v), err
			}
		}
	}
	return 0, nil
}

// valueOf is credits at CreditsPerUSD, in micro-dollars rounded down.
func (c Config) valueOf(credits fb.Amount) (fb.USD, error) {
	if c.CreditsPerUSD <= 0 || credits == 0 {
		return 0, nil
	}
	v, err := fb.MulDiv(int64(credits), 1, c.CreditsPerUSD)
	return fb.USD(v), err
}

// ParseShare reads "partner:percent:glob[,glob…]", e.g. "meta:20:llama-*".
func ParseShare(s string) (Share, error) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) != 3 || parts[0] == "" || parts[2] == "" {
		return Share{}, fmt.Errorf("revenue share %q: want partner:percent:model-glob[,glob…], such as meta:20:llama-*", s)
	}
	pct, err := fb.ParseAmount(parts[1])
	if err != nil || pct <= 0 || pct > 100*fb.Micro {
		return Share{}, fmt.Errorf("revenue share %q: percent %q must be above 0 and at most 100", s, parts[1])
	}
	globs := strings.Split(parts[2], ",")
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil {
			return Share{}, fmt.Errorf("revenue share %q: bad glob %q", s, g)
		}
	}
	return Share{Partner: parts[0], Models: globs, Percent: pct}, nil
}

// Forecast is a customer's burn rate over a window and when, at that rate,
// its available credit runs out.
type Forecast struct {
	Customer   string     `json:"customer"`
	Available  fb.Amount  `json:"available"`
	Window     string     `json:"window"`
	Consumed   fb.Amount  `json:"consumed"`
	BurnPerDay fb.Amount  `json:"burn_per_day"`
	DaysLeft   *string    `json:"days_left"`   // null: no burn
	RunsOutAt  *time.Time `json:"runs_out_at"` // null: no burn
}

// NewForecast is the forecast from credits consumed over days days up to
// now, and what is available now.
func NewForecast(customer string, available, consumed fb.Amount, days int, now time.Time) Forecast {
	f := Forecast{Customer: customer, Available: max(available, 0), Window: fmt.Sprintf("%dd", days), Consumed: consumed}
	if consumed <= 0 || days <= 0 {
		return f
	}
	f.BurnPerDay = consumed / fb.Amount(days)
	// days left = available × days ÷ consumed, two decimals (rounded down).
	n := new(big.Int).Mul(big.NewInt(int64(f.Available)), big.NewInt(int64(days)*100))
	n.Quo(n, big.NewInt(int64(consumed)))
	s := fmt.Sprintf("%d.%02d", new(big.Int).Quo(n, big.NewInt(100)), new(big.Int).Rem(n, big.NewInt(100)).Int64())
	f.DaysLeft = &s
	// The instant: available × days × 24h ÷ consumed, in seconds.
	secs := new(big.Int).Mul(big.NewInt(int64(f.Available)), big.NewInt(int64(days)*86400))
	secs.Quo(secs, big.NewInt(int64(consumed)))
	if secs.IsInt64() && secs.Int64() < 100*365*86400 {
		t := now.Add(time.Duration(secs.Int64()) * time.Second).UTC()
		f.RunsOutAt = &t
	}
	return f
}
