package economics

import (
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
	now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	f := NewForecast("c", 70*fb.Micro, 7*fb.Micro, 7, now)
	if f.BurnPerDay != fb.Micro || *f.DaysLeft != "70.00" || !f.RunsOutAt.Equal(now.AddDate(0, 0, 70)) {
		t.Errorf("%+v", f)
	}
	if f := NewForecast("c", 5, 0, 7, now); f.DaysLeft != nil || f.RunsOutAt != nil {
		t.Errorf("no burn: %+v", f)
	}
}
