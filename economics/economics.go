// Package economics turns the ledger's daily sums into unit economics:
// revenue (the cost basis of the exact credits consumed), inference cost,
// margin, breakage, uncollected usage, partners' revenue shares, and a
// forecast of when a customer's credits run out. All in exact integers.
package economics

import (
	"cmp"
	"fmt"
	"math"
	"math/big"
	"math/bits"
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
//
// Partner shares are rounded once, per model over the whole report: a
// model's share is ⌊its revenue × percent⌋ micro-dollars, the same whatever
// the grouping, and the share total is the sum of those. That share is
// apportioned among the rows by the largest remainder: each row gets its
// exact part rounded down, and the micro-dollars the rounding left go, one
// each, to the rows whose parts lost most (equal losses: the first keys).
// So every grouping's share total is the same, the rows add up to it, and
// no row is more than a micro-dollar from its exact part.
func Report(in []fb.EconRow, groupBy fb.GroupBy, cfg Config) ([]Row, Row, error) {
	shares, err := cfg.shares(in)
	if err != nil {
		return nil, Row{}, err
	}
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
		unc, err := cfg.valueOf(e.Uncollected)
		if err != nil {
			return nil, Row{}, err
		}
		if err := add(r, Row{
			Requests: e.Requests, RevenueUSD: e.RevenueUSD, CostUSD: e.CostUSD, CreditsConsumed: e.Credits,
			BreakageUSD: e.BreakageUSD, BreakageCredits: e.BreakageCredits, Uncollected: e.Uncollected, UncollectedUSD: unc,
		}); err != nil {
			return nil, Row{}, err
		}
	}
	slices.Sort(keys)
	rows := make([]Row, 0, len(keys))
	var total Row
	for _, k := range keys {
		r := byKey[k]
		r.PartnerShareUSD = shares[k]
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
	if p, ok := percentInt(int64(part), int64(whole)); ok {
		return &p
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

// percentInt is Percent in int64 arithmetic, when part × 10,000 fits
// (parts under $922 million): a report has a row per customer.
func percentInt(part, whole int64) (string, bool) {
	const limit = math.MaxInt64 / 10_000
	if part > limit || part < -limit || whole == math.MinInt64 {
		return "", false
	}
	n, d := part*10_000, whole
	q, m := n/d, n%d
	// Round half away from zero: compare 2|m| with |d|.
	if m < 0 {
		m = -m
	}
	if d < 0 {
		d = -d
	}
	if m >= d-m {
		if (n < 0) != (whole < 0) {
			q--
		} else {
			q++
		}
	}
	sign := ""
	if q < 0 {
		sign, q = "-", -q
	}
	return fmt.Sprintf("%s%d.%02d", sign, q/100, q%100), true
}

// percent is the partner share's percent of revenue earned on model: the
// first matching share's; 0 for none, and for revenue of no model (see
// Report).
func (c Config) percent(model string) fb.Amount {
	if model == "" {
		return 0
	}
	for _, s := range c.Shares {
		for _, g := range s.Models {
			if ok, _ := path.Match(g, model); ok {
				return s.Percent
			}
		}
	}
	return 0
}

// shares is the partner share of each key of the store's sums, rounded as
// Report says: per model, ⌊revenue × percent⌋ of the model's whole
// revenue, apportioned among the keys by the largest remainder.
func (c Config) shares(in []fb.EconRow) (map[string]fb.USD, error) {
	type part struct {
		key     string
		revenue fb.USD
	}
	byModel := map[string][]part{}
	index := map[[2]string]int{}
	for _, e := range in {
		if c.percent(e.Model) == 0 {
			continue
		}
		if e.RevenueUSD < 0 {
			return nil, fmt.Errorf("partner share of a negative revenue (%s on %s)", e.RevenueUSD, e.Model)
		}
		i, ok := index[[2]string{e.Model, e.Key}]
		if !ok {
			i = len(byModel[e.Model])
			index[[2]string{e.Model, e.Key}] = i
			byModel[e.Model] = append(byModel[e.Model], part{key: e.Key})
		}
		p := &byModel[e.Model][i]
		v, err := p.revenue.Add(e.RevenueUSD)
		if err != nil {
			return nil, err
		}
		p.revenue = v
	}
	out := map[string]fb.USD{}
	for model, parts := range byModel {
		pct := uint64(c.percent(model))
		var whole fb.USD
		for _, p := range parts {
			v, err := whole.Add(p.revenue)
			if err != nil {
				return nil, err
			}
			whole = v
		}
		total, _, err := mulDivRem(uint64(whole), pct)
		if err != nil {
			return nil, err
		}
		type cut struct {
			key  string
			rem  uint64
			down uint64
		}
		cuts := make([]cut, len(parts))
		var given uint64
		for i, p := range parts {
			q, r, err := mulDivRem(uint64(p.revenue), pct)
			if err != nil {
				return nil, err
			}
			cuts[i] = cut{p.key, r, q}
			given += q
		}
		// The micro-dollars left (fewer than the rows) go to the largest
		// remainders, the first keys among equals.
		slices.SortFunc(cuts, func(a, b cut) int {
			if a.rem != b.rem {
				return cmp.Compare(b.rem, a.rem)
			}
			return strings.Compare(a.key, b.key)
		})
		for i := range cuts {
			v := cuts[i].down
			if uint64(i) < total-given {
				v++
			}
			s, err := out[cuts[i].key].Add(fb.USD(v))
			if err != nil {
				return nil, err
			}
			out[cuts[i].key] = s
		}
	}
	return out, nil
}

// shareDivisor is 100% in the millionths of a percent of Share.Percent.
const shareDivisor = 100 * fb.Micro

// mulDivRem is ⌊v × pct ÷ 100%⌋ and its remainder.
func mulDivRem(v, pct uint64) (uint64, uint64, error) {
	hi, lo := bits.Mul64(v, pct)
	if hi >= shareDivisor {
		return 0, 0, fb.ErrOverflow
	}
	q, r := bits.Div64(hi, lo, shareDivisor)
	if q > math.MaxInt64 {
		return 0, 0, fb.ErrOverflow
	}
	return q, r, nil
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

// ForecastWindow is the window a forecast of days days reads at now: the
// days whole UTC days before today, and today so far — whole days, so the
// daily sums answer it — from its first midnight to now.
func ForecastWindow(days int, now time.Time) (from time.Time, elapsed time.Duration) {
	from = now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -days)
	return from, now.Sub(from)
}

// NewForecast is the forecast from credits consumed over the window of
// days days that has lasted elapsed up to now (ForecastWindow), and what
// is available now: the burn rate is consumed ÷ elapsed, per day.
func NewForecast(customer string, available, consumed fb.Amount, days int, elapsed time.Duration, now time.Time) Forecast {
	f := Forecast{Customer: customer, Available: max(available, 0), Window: fmt.Sprintf("%dd", days), Consumed: consumed}
	secs := int64(elapsed / time.Second)
	if consumed <= 0 || secs <= 0 {
		return f
	}
	// burn per day = consumed × 86400 ÷ elapsed seconds (rounded down).
	burn := new(big.Int).Mul(big.NewInt(int64(consumed)), big.NewInt(86400))
	burn.Quo(burn, big.NewInt(secs))
	if burn.IsInt64() {
		f.BurnPerDay = fb.Amount(burn.Int64())
	}
	// days left = available × elapsed ÷ (consumed × 86400), two decimals
	// (rounded down).
	n := new(big.Int).Mul(big.NewInt(int64(f.Available)), big.NewInt(secs*100))
	n.Quo(n, new(big.Int).Mul(big.NewInt(int64(consumed)), big.NewInt(86400)))
	s := fmt.Sprintf("%d.%02d", new(big.Int).Quo(n, big.NewInt(100)), new(big.Int).Rem(n, big.NewInt(100)).Int64())
	f.DaysLeft = &s
	// The instant: available × elapsed ÷ consumed, in seconds.
	left := new(big.Int).Mul(big.NewInt(int64(f.Available)), big.NewInt(secs))
	left.Quo(left, big.NewInt(int64(consumed)))
	if left.IsInt64() && left.Int64() < 100*365*86400 {
		t := now.Add(time.Duration(left.Int64()) * time.Second).UTC()
		f.RunsOutAt = &t
	}
	return f
}
