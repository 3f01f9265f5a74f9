package economics

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	fb "farebox"
)

func TestPercent(t *testing.T) {
	for _, c := range []struct {
		part, whole fb.USD
		want        string
	}{
		{1, 3, "33.33"}, {2, 3, "66.67"}, {-1, 3, "-33.33"}, {-2, 3, "-66.67"}, {1, 8, "12.50"},
		{1, 80000, "0.00"}, {1, 20000, "0.01"}, {-1, 20000, "-0.01"}, {5, 5, "100.00"}, {-15, 5, "-300.00"},
	} {
		if got := Percent(c.part, c.whole); got == nil || *got != c.want {
			t.Errorf("Percent(%d, %d) = %v, want %s", c.part, c.whole, got, c.want)
		}
	}
	if Percent(1, 0) != nil {
		t.Error("a percentage of nothing")
	}
}

func TestParseShare(t *testing.T) {
	s, err := ParseShare("meta:20:llama-*,codellama-*")
	if err != nil || s.Partner != "meta" || s.Percent != 20*fb.Micro || len(s.Models) != 2 {
		t.Fatalf("%+v %v", s, err)
	}
	for _, bad := range []string{"meta:20", ":20:x", "meta:0:x", "meta:101:x", "meta:abc:x", "meta:20:[", "meta:20:"} {
		if _, err := ParseShare(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestReportFolds(t *testing.T) {
	cfg := Config{CreditsPerUSD: 100, Shares: []Share{{Partner: "p", Models: []string{"llama-*"}, Percent: 25 * fb.Micro}}}
	in := []fb.EconRow{
		{Key: "a", Model: "", BreakageCredits: 5 * fb.Micro, BreakageUSD: 50_000},
		{Key: "a", Model: "gpt", Requests: 2, Credits: 3 * fb.Micro, RevenueUSD: 30_000, CostUSD: 40_000, Uncollected: fb.Micro},
		{Key: "a", Model: "llama-3", Requests: 1, Credits: fb.Micro, RevenueUSD: 10_001, CostUSD: 1},
		{Key: "b", Model: "gpt", Requests: 1, Credits: fb.Micro, CostUSD: 7},
	}
	rows, total, err := Report(in, "customer", cfg)
	if err != nil || len(rows) != 2 {
		t.Fatalf("%+v %v", rows, err)
	}
	a := rows[0]
	// revenue 40001, cost 40001: margin 0; share ⌊10001/4⌋ = 2500; 1 credit uncollected at 100/USD = $0.01.
	if a.RevenueUSD != 40_001 || a.CostUSD != 40_001 || a.MarginUSD != 0 || *a.MarginPct != "0.00" || a.PartnerShareUSD != 2500 ||
		a.UncollectedUSD != 10_000 || a.BreakageUSD != 50_000 || a.Requests != 3 || a.CreditsConsumed != 4*fb.Micro {
		t.Errorf("a: %+v", a)
	}
	if b := rows[1]; b.MarginUSD != -7 || b.MarginPct != nil {
		t.Errorf("b: %+v", b)
	}
	if total.Key != "total" || total.RevenueUSD != 40_001 || total.CostUSD != 40_008 || total.MarginUSD != -7 || total.Requests != 4 {
		t.Errorf("total: %+v", total)
	}
	// By model, breakage (model "") is left out.
	rows, total, _ = Report(in, "model", cfg)
	if len(rows) != 2 || total.BreakageUSD != 0 {
		t.Errorf("by model: %+v %+v", rows, total)
	}
}

// TestReportRevenueWithoutModel (issue 12, finding 8): revenue recognised
// without a usage row (model "": debt repaid by a grant, a hold captured
// through the API) counts whatever the grouping — by model or provider as
// the row of key "", its breakage left out — and carries no partner share,
// even for a share on every model.
func TestReportRevenueWithoutModel(t *testing.T) {
	cfg := Config{CreditsPerUSD: 100, Shares: []Share{{Partner: "p", Models: []string{"*"}, Percent: 10 * fb.Micro}}}
	in := []fb.EconRow{
		{Key: "a", Model: "", Credits: 2 * fb.Micro, RevenueUSD: 12_000, Uncollected: fb.Micro, BreakageCredits: 5 * fb.Micro, BreakageUSD: 50_000},
		{Key: "a", Model: "gpt", Requests: 1, Credits: fb.Micro, RevenueUSD: 10_000},
		{Key: "b", Model: "", BreakageCredits: fb.Micro, BreakageUSD: 1},
	}
	rows, total, err := Report(in, "customer", cfg)
	if err != nil || len(rows) != 2 || total.RevenueUSD != 22_000 || total.BreakageUSD != 50_001 || total.PartnerShareUSD != 1000 {
		t.Fatalf("by customer: got %+v, total %+v, %v; want 2 rows, revenue 22000, breakage 50001, share 1000", rows, total, err)
	}
	for _, g := range []string{"model", "provider"} {
		// As the store groups them: by model (or provider) and model.
		byModel := []fb.EconRow{in[0], in[1], in[2]}
		for i := range byModel {
			byModel[i].Key = byModel[i].Model
		}
		rows, total, err := Report(byModel, fb.GroupBy(g), cfg)
		if err != nil || len(rows) != 2 || rows[0].Key != "" || rows[0].RevenueUSD != 12_000 || rows[0].CreditsConsumed != 2*fb.Micro ||
			rows[0].Uncollected != fb.Micro || rows[0].BreakageUSD != 0 || rows[0].PartnerShareUSD != 0 {
			t.Fatalf("by %s: got %+v, %v; want the row \"\" with revenue 12000, 2 credits, 1 uncollected, no breakage, no share", g, rows, err)
		}
		if total.RevenueUSD != 22_000 || total.BreakageUSD != 0 || total.PartnerShareUSD != 1000 {
			t.Fatalf("by %s: total %+v; want revenue 22000, no breakage, share 1000", g, total)
		}
	}
}

func TestForecast(t *testing.T) {
	// A 7-day window read at noon: 7 whole days and 12 hours.
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	from, elapsed := ForecastWindow(7, now)
	if want := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC); !from.Equal(want) || elapsed != 7*24*time.Hour+12*time.Hour {
		t.Fatalf("ForecastWindow(7, %s) = %s, %s; want %s, 180h", now, from, elapsed, want)
	}
	// 15 credits over 7.5 days: 2 a day; 70 available last 35 days.
	f := NewForecast("c", 70*fb.Micro, 15*fb.Micro, 7, elapsed, now)
	if f.BurnPerDay != 2*fb.Micro || *f.DaysLeft != "35.00" || !f.RunsOutAt.Equal(now.AddDate(0, 0, 35)) || f.Window != "7d" {
		t.Errorf("got %+v (days left %v, runs out %v); want 2 a day, 35.00 days, %s", f, *f.DaysLeft, f.RunsOutAt, now.AddDate(0, 0, 35))
	}
	// Rounded down: 1 micro-credit over 7.5 days.
	f = NewForecast("c", 1, 1, 7, elapsed, now)
	if f.BurnPerDay != 0 || *f.DaysLeft != "7.50" || !f.RunsOutAt.Equal(now.Add(elapsed)) {
		t.Errorf("1 of 1: %+v, %s", f, *f.DaysLeft)
	}
	if f := NewForecast("c", 5, 0, 7, elapsed, now); f.DaysLeft != nil || f.RunsOutAt != nil {
		t.Errorf("no burn: %+v", f)
	}
	if f := NewForecast("c", -5, 3, 7, elapsed, now); f.Available != 0 || *f.DaysLeft != "0.00" || !f.RunsOutAt.Equal(now) {
		t.Errorf("in debt: %+v", f)
	}
}

// TestShareRounding: a partner's share is rounded once per model over the
// whole report, so every grouping of the same sums has the same share
// total (⌊a model's revenue × percent⌋, summed), the rows add up to it,
// and no row is more than a micro-dollar per model from its exact part.
func TestShareRounding(t *testing.T) {
	cfg := Config{Shares: []Share{{Partner: "meta", Models: []string{"llama-*"}, Percent: 20 * fb.Micro}, {Partner: "x", Models: []string{"gpt-4o"}, Percent: 33_333_333}}}
	// By hand: three rows of 1 µ$ at 50% are owed 1.5 µ$: 1 in all, to
	// the first key (equal remainders).
	rows, total, err := Report([]fb.EconRow{{Key: "b", Model: "m", RevenueUSD: 1}, {Key: "a", Model: "m", RevenueUSD: 1}, {Key: "c", Model: "m", RevenueUSD: 1}},
		fb.GroupCustomer, Config{Shares: []Share{{Partner: "p", Models: []string{"m"}, Percent: 50 * fb.Micro}}})
	if err != nil || total.PartnerShareUSD != 1 || rows[0].PartnerShareUSD != 1 || rows[1].PartnerShareUSD != 0 || rows[2].PartnerShareUSD != 0 {
		t.Fatalf("1 µ$ × 3 at 50%%: rows %+v, total %s, %v; want a 1, b 0, c 0, total 1", rows, total.PartnerShareUSD, err)
	}
	// By hand: the largest remainder wins. 20% of 7, 8 and 9 µ$ is 1.4,
	// 1.6 and 1.8 (4.8 in all, 4 owed): 1, 1 + 1, 1 + 1.
	rows, total, _ = Report([]fb.EconRow{{Key: "a", Model: "llama-3", RevenueUSD: 7}, {Key: "b", Model: "llama-3", RevenueUSD: 8}, {Key: "c", Model: "llama-3", RevenueUSD: 9}}, fb.GroupCustomer, cfg)
	if total.PartnerShareUSD != 4 || rows[0].PartnerShareUSD != 1 || rows[1].PartnerShareUSD != 1 || rows[2].PartnerShareUSD != 2 {
		t.Fatalf("20%% of 7, 8, 9: %+v total %s; want 1, 1, 2 and 4", rows, total.PartnerShareUSD)
	}

	type cell struct {
		day, customer, model, provider string
		revenue                        fb.USD
	}
	rng := rand.New(rand.NewPCG(7, 14))
	models := []struct{ model, provider string }{{"llama-3", "own"}, {"llama-3", "groq"}, {"gpt-4o", "openai"}, {"claude", "anthropic"}}
	for round := range 50 {
		var cells []cell
		for range 1 + rng.IntN(200) {
			m := models[rng.IntN(len(models))]
			cells = append(cells, cell{fmt.Sprintf("d%d", rng.IntN(30)), fmt.Sprintf("c%d", rng.IntN(40)), m.model, m.provider, fb.USD(rng.Int64N(1_000_000))})
		}
		exact := map[string]fb.USD{} // revenue by model
		for _, c := range cells {
			exact[c.model] += c.revenue
		}
		var want fb.USD
		for m, r := range exact {
			if p := cfg.percent(m); p > 0 {
				want += fb.USD(int64(r) * int64(p) / (100 * fb.Micro))
			}
		}
		for _, by := range []fb.GroupBy{fb.GroupCustomer, fb.GroupDay, fb.GroupModel, fb.GroupProvider} {
			// As the store sums them: by the group and model.
			sums := map[[2]string]fb.USD{}
			for _, c := range cells {
				key := map[fb.GroupBy]string{fb.GroupCustomer: c.customer, fb.GroupDay: c.day, fb.GroupModel: c.model, fb.GroupProvider: c.provider}[by]
				sums[[2]string{key, c.model}] += c.revenue
			}
			var in []fb.EconRow
			for k, r := range sums {
				in = append(in, fb.EconRow{Key: k[0], Model: k[1], RevenueUSD: r})
			}
			rows, total, err := Report(in, by, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if total.PartnerShareUSD != want {
				t.Fatalf("round %d by %s: share total %d; want %d, whatever the grouping", round, by, total.PartnerShareUSD, want)
			}
			var sum fb.USD
			for _, r := range rows {
				sum += r.PartnerShareUSD
				var down fb.USD
				n := 0
				for k, rev := range sums {
					if k[0] == r.Key && cfg.percent(k[1]) > 0 {
						down += fb.USD(int64(rev) * int64(cfg.percent(k[1])) / (100 * fb.Micro))
						n++
					}
				}
				if r.PartnerShareUSD < down || r.PartnerShareUSD > down+fb.USD(n) {
					t.Fatalf("round %d by %s, %s: share %d; want from %d to %d", round, by, r.Key, r.PartnerShareUSD, down, down+fb.USD(n))
				}
			}
			if sum != total.PartnerShareUSD {
				t.Fatalf("round %d by %s: rows add up to %d, total %d", round, by, sum, total.PartnerShareUSD)
			}
		}
	}
}

// TestPercentInt: the int64 path of Percent answers what the big.Int one
// does, on random parts and wholes of either sign.
func TestPercentInt(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20_000 {
		part, whole := rng.Int64N(2_000_000_001)-1_000_000_000, rng.Int64N(2_000_001)-1_000_000
		if whole == 0 {
			continue
		}
		got, ok := percentInt(part, whole)
		// Half away from zero, to hundredths of a percent.
		q, m := new(big.Int).QuoRem(big.NewInt(part*10_000), big.NewInt(whole), new(big.Int))
		if new(big.Int).Mul(new(big.Int).Abs(m), big.NewInt(2)).Cmp(new(big.Int).Abs(big.NewInt(whole))) >= 0 {
			if (part < 0) != (whole < 0) {
				q.Sub(q, big.NewInt(1))
			} else {
				q.Add(q, big.NewInt(1))
			}
		}
		sign := ""
		if q.Sign() < 0 {
			sign = "-"
			q.Abs(q)
		}
		want := fmt.Sprintf("%s%d.%02d", sign, new(big.Int).Quo(q, big.NewInt(100)), new(big.Int).Rem(q, big.NewInt(100)).Int64())
		if !ok || got != want {
			t.Fatalf("percentInt(%d, %d) = %q, %v; want %q", part, whole, got, ok, want)
		}
	}
}
