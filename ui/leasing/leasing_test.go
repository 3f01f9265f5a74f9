package leasing_test

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	fb "farebox"
)

// The API's answers, as the tests read them.

type useGroup struct {
	Key            string
	Leases         int
	GPUHours       string  `json:"gpu_hours"`
	UtilizationPct *string `json:"utilization_pct"`
}

type utilization struct {
	AvailableGPUHours string     `json:"available_gpu_hours"`
	AllocatedGPUHours string     `json:"allocated_gpu_hours"`
	UtilizationPct    *string    `json:"utilization_pct"`
	IdleGPUHours      string     `json:"idle_gpu_hours"`
	ByClass           []useGroup `json:"by_class"`
	ByTenant          []useGroup `json:"by_tenant"`
	Inference         struct {
		ReservedGPUHours string  `json:"reserved_gpu_hours"`
		MeasuredGPUHours *string `json:"measured_gpu_hours"`
		UtilizationPct   *string `json:"utilization_pct"`
		Deployments      []struct {
			Deployment      string
			Tokens          int64
			TokensPerSecond int64 `json:"tokens_per_second"`
			GPUs            int64
			GPUHours        string `json:"gpu_hours"`
		}
	}
}

type hour struct {
	Start, End   time.Time
	FreeGPUs     int64 `json:"free_gpus"`
	LeasableGPUs int64 `json:"leasable_gpus"`
	FirmGPUs     int64 `json:"firm_gpus"`
	SpotGPUs     int64 `json:"spot_gpus"`
}

type econRow struct {
	Key        string
	RevenueUSD string  `json:"revenue_usd"`
	CostUSD    string  `json:"cost_usd"`
	MarginUSD  string  `json:"margin_usd"`
	MarginPct  *string `json:"margin_pct"`
}

type lease struct {
	ID, Customer, Pool, Class, State string
	GPUs                             int64
	Held, Charged                    string
	CostUSD                          string `json:"cost_usd"`
	Reason                           *string
}

func pct(p *string) string {
	if p == nil {
		return "—"
	}
	return *p
}

// gpuHours writes GPU-seconds as the API writes GPU-hours.
func gpuHours(t *testing.T, secs int64) string {
	micro, err := fb.MulDiv(secs, fb.Micro, 3600)
	if err != nil {
		t.Fatal(err)
	}
	return fb.Amount(micro).String()
}

// sellable sums the hours' free GPU-seconds.
func sellable(hs []hour) int64 {
	var s int64
	for _, h := range hs {
		s += h.FreeGPUs * int64(h.End.Sub(h.Start)/time.Second)
	}
	return s
}

// windowQueries are the API queries a page of `days` days stands for at
// now: the utilization's and the economics report's.
func windowQueries(now time.Time, days int) (use, econ string) {
	today := now.Truncate(24 * time.Hour)
	from := today.AddDate(0, 0, 1-days)
	return "from=" + day(from) + "&to=" + url.QueryEscape(now.Format(time.RFC3339)),
		"from=" + day(from) + "&to=" + day(today.AddDate(0, 0, 1))
}

// TestPoolsPage: the operator's pools page, over each period it offers,
// shows every pool's GPUs, allocated and idle GPU-hours and utilization
// equal to GET /api/v1/pools/{id}/utilization over the period, its
// sellable GPU-hours equal to the sum of GET …/availability's free GPUs,
// and its revenue, cost and margin equal to its row of GET
// /api/v1/reports/economics?group_by=provider (inference's rows of the
// same report, on another provider, left out); the cards are their sums.
func TestPoolsPage(t *testing.T) {
	e := newEnv(t)
	b := e.SignedIn(adminToken)
	now := e.clock.Now()
	var pools struct{ Data []struct{ ID string } }
	e.JSON("/api/v1/pools", &pools)
	if len(pools.Data) < 2 {
		t.Fatalf("pools %v", pools)
	}
	for _, days := range []int{1, 7, 30} {
		t.Run(fmt.Sprint(days), func(t *testing.T) {
			page := b.Page(fmt.Sprintf("/ui/admin/pools?days=%d", days))
			rows := table(t, page, "pools")
			if len(rows) != len(pools.Data) {
				t.Fatalf("%d rows for %d pools", len(rows), len(pools.Data))
			}
			useQ, econQ := windowQueries(now, days)
			var rep struct{ Rows []econRow }
			e.JSON("/api/v1/reports/economics?group_by=provider&"+econQ, &rep)
			var gpus, free int64
			var revenue, cost fb.USD
			for _, p := range pools.Data {
				row := find(t, rows, "Pool", p.ID)
				var pool struct {
					GPUs                 int64
					ReservedForInference int64 `json:"reserved_for_inference"`
					Leasable             int64 `json:"leasable_gpus"`
				}
				e.JSON("/api/v1/pools/"+p.ID, &pool)
				var u utilization
				e.JSON("/api/v1/pools/"+p.ID+"/utilization?"+useQ, &u)
				var av struct{ Data []hour }
				e.JSON("/api/v1/pools/"+p.ID+"/availability", &av)
				var er econRow
				for _, r := range rep.Rows {
					if r.Key == p.ID {
						er = r
					}
				}
				if days == 30 && (p.ID == "h100-eu" || p.ID == "a100-us") && (er.Key == "" || er.RevenueUSD == "0") {
					t.Fatalf("no lease revenue of %s in the report %+v", p.ID, rep.Rows)
				}
				if er.Key == "" {
					er = econRow{Key: p.ID, RevenueUSD: "0", CostUSD: "0", MarginUSD: "0"}
				}
				for _, c := range []struct{ col, want string }{
					{"GPUs", fmt.Sprint(pool.GPUs)}, {"Inference", fmt.Sprint(pool.ReservedForInference)}, {"Leasable", fmt.Sprint(pool.Leasable)},
					{"Allocated GPU-h", u.AllocatedGPUHours}, {"Utilization", pct(u.UtilizationPct)}, {"Idle GPU-h", u.IdleGPUHours},
					{"Sellable GPU-h, 7 d", gpuHours(t, sellable(av.Data))},
					{"Revenue", er.RevenueUSD}, {"Cost", er.CostUSD}, {"Margin", er.MarginUSD},
				} {
					check(t, p.ID+"'s "+c.col, figure(row[c.col]), c.want)
				}
				if u.AllocatedGPUHours == "0" && p.ID != "bulk" {
					t.Errorf("%s allocated nothing over %d days: the data tests too little", p.ID, days)
				}
				gpus += pool.GPUs
				free += sellable(av.Data)
				r, _ := fb.ParseUSD(er.RevenueUSD)
				c, _ := fb.ParseUSD(er.CostUSD)
				revenue, cost = revenue+r, cost+c
			}
			// The inference provider's row is in the report, not on the page.
			inference := false
			for _, r := range rep.Rows {
				inference = inference || (r.Key == "gpu" && r.CostUSD == "0.15")
			}
			if !inference && days > 1 {
				t.Errorf("the report %+v lacks the inference row of provider gpu", rep.Rows)
			}
			check(t, "GPUs", figure(card(t, page, "gpus")), fmt.Sprint(gpus))
			check(t, "sellable", figure(card(t, page, "sellable")), gpuHours(t, free))
			check(t, "revenue", figure(card(t, page, "revenue_usd")), revenue.String())
			check(t, "cost", figure(card(t, page, "cost_usd")), cost.String())
			check(t, "margin", figure(card(t, page, "margin_usd")), (revenue - cost).String())
		})
	}
}

// TestPoolPage: a pool's page shows its cards, its utilization by class
// and by tenant, own inference's measured use and the next 7 days by day
// equal to the API's utilization and availability of the pool, and its
// price versions equal to GET /api/v1/pools/{id}.
func TestPoolPage(t *testing.T) {
	e := newEnv(t)
	b := e.SignedIn(adminToken)
	now := e.clock.Now()
	useQ, econQ := windowQueries(now, 30)
	for _, id := range []string{"h100-eu", "a100-us"} {
		t.Run(id, func(t *testing.T) {
			page := b.Page("/ui/admin/pools/" + id)
			var u utilization
			e.JSON("/api/v1/pools/"+id+"/utilization?"+useQ, &u)
			var av struct{ Data []hour }
			e.JSON("/api/v1/pools/"+id+"/availability", &av)
			var rep struct{ Rows []econRow }
			e.JSON("/api/v1/reports/economics?group_by=provider&"+econQ, &rep)
			var er econRow
			for _, r := range rep.Rows {
				if r.Key == id {
					er = r
				}
			}
			var pool struct {
				GPUs                 int64
				ReservedForInference int64 `json:"reserved_for_inference"`
				PriceVersions        []struct {
					OnDemand string `json:"on_demand"`
					Reserved string
					Spot     string
				} `json:"price_versions"`
			}
			e.JSON("/api/v1/pools/"+id, &pool)

			check(t, "GPUs", figure(card(t, page, "gpus")), fmt.Sprint(pool.GPUs))
			check(t, "kept for inference", figure(card(t, page, "reserved_for_inference")), fmt.Sprint(pool.ReservedForInference))
			check(t, "utilization", figure(card(t, page, "utilization_pct")), pct(u.UtilizationPct))
			check(t, "idle", figure(card(t, page, "idle_gpu_hours")), u.IdleGPUHours)
			check(t, "sellable", figure(card(t, page, "sellable")), gpuHours(t, sellable(av.Data)))
			check(t, "revenue", figure(card(t, page, "revenue_usd")), er.RevenueUSD)
			check(t, "cost", figure(card(t, page, "cost_usd")), er.CostUSD)
			check(t, "margin", figure(card(t, page, "margin_usd")), er.MarginUSD)
			plain := ungroup(text(page)) // the figures without their thousands separators
			if note := u.AllocatedGPUHours + " of " + u.AvailableGPUHours + " leasable GPU-h"; !strings.Contains(plain, note) {
				t.Errorf("the utilization card lacks %q", note)
			}

			for _, g := range []struct {
				name, col string
				want      []useGroup
			}{{"by_class", "Class", u.ByClass}, {"by_tenant", "Tenant", u.ByTenant}} {
				rows := table(t, page, g.name)
				if len(rows) != len(g.want) || len(rows) == 0 {
					t.Fatalf("%s: %d rows; the API has %d", g.name, len(rows), len(g.want))
				}
				for _, w := range g.want {
					r := find(t, rows, g.col, w.Key)
					check(t, g.name+" "+w.Key+" leases", r["Leases"], fmt.Sprint(w.Leases))
					check(t, g.name+" "+w.Key+" GPU-h", figure(r["GPU-h"]), w.GPUHours)
					check(t, g.name+" "+w.Key+" utilization", figure(r["Utilization"]), pct(w.UtilizationPct))
				}
			}

			if id == "h100-eu" {
				inf := u.Inference
				if inf.MeasuredGPUHours == nil || *inf.MeasuredGPUHours != "2" {
					t.Fatalf("the API's measured inference %+v: want 2 GPU-hours", inf)
				}
				note := *inf.MeasuredGPUHours + " GPU-h measured, " + pct(inf.UtilizationPct) + "% of the " + inf.ReservedGPUHours + " kept"
				if !strings.Contains(plain, note) {
					t.Errorf("the inference card lacks %q", note)
				}
				rows := table(t, page, "inference")
				if len(rows) != len(inf.Deployments) {
					t.Fatalf("inference: %d rows; the API has %d", len(rows), len(inf.Deployments))
				}
				for _, d := range inf.Deployments {
					r := find(t, rows, "Deployment", d.Deployment)
					check(t, "tokens", figure(r["Tokens"]), fmt.Sprint(d.Tokens))
					check(t, "tokens/s", figure(r["Tokens/s"]), fmt.Sprint(d.TokensPerSecond))
					check(t, "GPUs", r["GPUs"], fmt.Sprint(d.GPUs))
					check(t, "GPU-h", figure(r["GPU-h"]), d.GPUHours)
				}
			} else if strings.Contains(page, `data-table="inference"`) {
				t.Error("a pool without deployments shows inference's use")
			}

			// The next 7 days by day, from the API's hours.
			type agg struct{ minFree, firm, spot, sell, leasable int64 }
			var order []string
			byDay := map[string]*agg{}
			for _, h := range av.Data {
				d := h.Start.Format("Mon 2 Jan 2006")
				a := byDay[d]
				if a == nil {
					a = &agg{minFree: h.FreeGPUs}
					byDay[d] = a
					order = append(order, d)
				}
				secs := int64(h.End.Sub(h.Start) / time.Second)
				a.minFree, a.firm, a.spot = min(a.minFree, h.FreeGPUs), max(a.firm, h.FirmGPUs), max(a.spot, h.SpotGPUs)
				a.sell += h.FreeGPUs * secs
				a.leasable += h.LeasableGPUs * secs
			}
			rows := table(t, page, "availability")
			if len(rows) != len(order) || len(order) != 8 {
				t.Fatalf("availability: %d days on the page, %d in the API's 7 days from this hour (want 8 UTC days)", len(rows), len(order))
			}
			for _, d := range order {
				a, r := byDay[d], find(t, rows, "Day", d)
				check(t, d+" fewest free", r["Fewest free GPUs"], fmt.Sprint(a.minFree))
				check(t, d+" most firm", r["Most firm GPUs"], fmt.Sprint(a.firm))
				check(t, d+" most spot", r["Most spot GPUs"], fmt.Sprint(a.spot))
				check(t, d+" sellable", figure(r["Sellable GPU-h"]), gpuHours(t, a.sell))
				check(t, d+" firm-leasable", figure(r["Firm-leasable GPU-h"]), gpuHours(t, a.leasable))
			}
			if bars := strings.Count(page, "<title>"); bars < len(av.Data) {
				t.Errorf("the availability chart has %d titled bars for %d hours", bars, len(av.Data))
			}
			// Free GPUs are grey bars, as the legend says (a series' colour).
			if n := strings.Count(page, `fill="#9ca3af"><title>`); n < len(av.Data) {
				t.Errorf("%d grey bars of free GPUs for %d hours", n, len(av.Data))
			}

			prices := table(t, page, "prices")
			if len(prices) != len(pool.PriceVersions) {
				t.Fatalf("prices: %d rows; the API has %d versions", len(prices), len(pool.PriceVersions))
			}
			for i, v := range pool.PriceVersions {
				r := prices[len(prices)-1-i] // newest first
				check(t, "on demand", figure(r["On demand"]), v.OnDemand)
				check(t, "reserved", figure(r["Reserved"]), v.Reserved)
				check(t, "spot", figure(r["Spot"]), v.Spot)
			}
		})
	}
	if code, _ := b.Get("/ui/admin/pools/nowhere"); code != 404 {
		t.Errorf("an unknown pool's page: %d; want 404", code)
	}
}

// TestLeasesPage: the operator's leases page lists, for each state, the
// leases GET /api/v1/leases?state= lists, with their held, charged and
// cost equal to the API's; a pool's leases; pages of 50 that together
// list every lease once.
func TestLeasesPage(t *testing.T) {
	e := newEnv(t)
	b := e.SignedIn(adminToken)
	states := map[string]int{}
	for _, state := range []string{"active", "scheduled", "ended", "preempted", "all"} {
		q := "?limit=50&state=" + state // a page's worth
		if state == "all" {
			q = "?limit=50"
		}
		var want struct{ Data []lease }
		e.JSON("/api/v1/leases"+q, &want)
		page := b.Page("/ui/admin/leases?state=" + state)
		rows := table(t, page, "leases")
		if len(rows) != len(want.Data) {
			t.Fatalf("state %s: %d rows; the API lists %d", state, len(rows), len(want.Data))
		}
		for i, l := range want.Data {
			r := rows[i]
			check(t, state+" lease", r["Lease"], l.ID)
			for _, c := range []struct{ col, want string }{{"Tenant", l.Customer}, {"Pool", l.Pool}, {"Class", l.Class}, {"State", l.State}} {
				check(t, l.ID+"'s "+c.col, r[c.col], c.want)
			}
			check(t, l.ID+"'s GPUs", r["GPUs"], fmt.Sprint(l.GPUs))
			check(t, l.ID+"'s held", figure(r["Held"]), l.Held)
			check(t, l.ID+"'s charged", figure(r["Charged"]), l.Charged)
			check(t, l.ID+"'s cost", figure(r["Cost"]), l.CostUSD)
			if l.Reason != nil && !strings.HasPrefix(r["Reason"], *l.Reason) {
				t.Errorf("%s's reason on the page %q; the API's %q", l.ID, r["Reason"], *l.Reason)
			}
		}
		states[state] = len(rows)
	}
	if states["active"] == 0 || states["scheduled"] == 0 || states["ended"] == 0 || states["preempted"] == 0 {
		t.Fatalf("leases by state %v: the data tests too little", states)
	}
	if n := len(table(t, b.Page("/ui/admin/leases"), "leases")); n != states["active"] {
		t.Errorf("the default list has %d leases; want the %d active", n, states["active"])
	}
	var ofPool struct{ Data []lease }
	e.JSON("/api/v1/leases?pool=a100-us", &ofPool)
	rows := table(t, b.Page("/ui/admin/leases?state=all&pool=a100-us"), "leases")
	if len(rows) != len(ofPool.Data) || len(rows) == 0 {
		t.Fatalf("a100-us: %d rows; the API lists %d", len(rows), len(ofPool.Data))
	}

	// 60 more scheduled leases, of delta on a pool of their own (the
	// other tests leave both out): two pages.
	e.API("POST", "/api/v1/pools", `{"id": "bulk", "gpus": 2, "prices": {"on_demand": "1", "reserved": "1", "spot": "1"}}`, 201)
	e.API("POST", "/api/v1/customers", `{"id": "delta"}`, 201)
	e.API("POST", "/api/v1/customers/delta/grants", `{"amount": "100000"}`, 201)
	for i := range 60 {
		e.API("POST", "/api/v1/leases", fmt.Sprintf(`{"customer": "delta", "pool": "bulk", "gpus": 1, "class": "spot", "start": "2026-12-05T00:%02d:00Z", "end": "2026-12-05T00:%02d:59Z", "idempotency_key": "bulk-%d"}`, i, i, i), 201)
	}
	var all struct{ Data []lease }
	e.JSON("/api/v1/leases?state=scheduled&limit=1000", &all)
	var seen []string
	next := "/ui/admin/leases?state=scheduled"
	for pages := 0; next != ""; pages++ {
		if pages > 3 {
			t.Fatal("more pages than leases")
		}
		page := b.Page(next)
		for _, r := range table(t, page, "leases") {
			seen = append(seen, r["Lease"])
		}
		next = ""
		if m := nextLink.FindStringSubmatch(page); m != nil {
			next = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	var ids []string
	for _, l := range all.Data {
		ids = append(ids, l.ID)
	}
	if !slices.Equal(seen, ids) || len(ids) <= 50 {
		t.Fatalf("the pages list %d leases; the API %d", len(seen), len(ids))
	}
}

// minute is an instant as the pages write it: to the minute, or the
// second when it has seconds.
func minute(t time.Time) string {
	if t.Second() != 0 {
		return t.UTC().Format("2 Jan 2006 15:04:05")
	}
	return t.UTC().Format("2 Jan 2006 15:04")
}

// notLease is what a hold of no lease is for.
const notLease = "a request in flight, or a hold through the API"

var thousands = regexp.MustCompile(`(\d),(\d{3})`)

// ungroup drops the thousands separators of every figure in s.
func ungroup(s string) string {
	for {
		t := thousands.ReplaceAllString(s, "$1$2")
		if t == s {
			return s
		}
		s = t
	}
}

var nextLink = regexp.MustCompile(`<a href="([^"]+)">Next page</a>`)

// TestCustomerLeasesPage: a customer sees its own leases (equal to GET
// /api/v1/leases?customer=) and no other's, and the holds on its balance:
// each equal to GET /api/v1/holds/{id}, named by the lease it pays for,
// summing to the balance's held; the operator's pages stay closed to it.
func TestCustomerLeasesPage(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ id, key string }{{"acme", e.acmeKey}, {"beta", e.betaKey}} {
		t.Run(c.id, func(t *testing.T) {
			b := e.SignedIn(c.key)
			page := b.Page("/ui/account/leases?state=all")
			var want struct{ Data []lease }
			e.JSON("/api/v1/leases?customer="+c.id, &want)
			rows := table(t, page, "leases")
			if len(rows) != len(want.Data) || len(rows) < 2 {
				t.Fatalf("%d rows; the API lists %d of %s's leases", len(rows), len(want.Data), c.id)
			}
			for i, l := range want.Data {
				r := rows[i]
				check(t, "lease", r["Lease"], l.ID)
				check(t, l.ID+"'s state", r["State"], l.State)
				check(t, l.ID+"'s held", figure(r["Held"]), l.Held)
				check(t, l.ID+"'s charged", figure(r["Charged"]), l.Charged)
				if _, ok := r["Tenant"]; ok {
					t.Error("the customer's table has a tenant column")
				}
			}
			for name, id := range e.ids {
				if !strings.HasPrefix(name, c.id) && strings.Contains(page, id) {
					t.Errorf("%s's page shows %s (%s)", c.id, id, name)
				}
			}
			if strings.Contains(page, "/ui/admin/") {
				t.Error("the customer's page links to the operator's")
			}

			var bal struct{ Held, Available string }
			e.JSON("/api/v1/customers/"+c.id+"/balance", &bal)
			check(t, "held", figure(card(t, page, "held")), bal.Held)
			check(t, "available", figure(card(t, page, "available")), bal.Available)
			holds := table(t, page, "holds")
			var sum, leaseSum fb.Amount
			for _, r := range holds {
				var h struct {
					Amount    string
					Status    string
					ExpiresAt time.Time `json:"expires_at"`
				}
				e.JSON("/api/v1/holds/"+r["Hold"], &h)
				check(t, r["Hold"]+"'s amount", figure(r["Amount"]), h.Amount)
				check(t, r["Hold"]+"'s expiry", r["Expires (UTC)"], minute(h.ExpiresAt))
				if h.Status != "pending" {
					t.Errorf("hold %s is %s", r["Hold"], h.Status)
				}
				a, _ := fb.ParseAmount(h.Amount)
				sum += a
				if r["For"] != notLease {
					leaseSum += a
					id, _, _ := strings.Cut(r["Hold"], ".") // a lease's hold is named by the lease
					i := slices.IndexFunc(want.Data, func(l lease) bool { return l.ID == id })
					if i < 0 {
						t.Fatalf("hold %s is for %q, of no lease of %s", r["Hold"], r["For"], c.id)
					}
					l := want.Data[i]
					check(t, r["Hold"]+"'s lease", r["For"], fmt.Sprintf("%d %s GPU%s on %s", l.GPUs, strings.ReplaceAll(l.Class, "_", "-"), map[bool]string{true: "s"}[l.GPUs != 1], l.Pool))
				}
			}
			check(t, "the holds' sum", sum.String(), bal.Held)
			check(t, "held for leases", figure(card(t, page, "lease_held")), leaseSum.String())
			if c.id == "acme" {
				if len(holds) < 3 || leaseSum == sum {
					t.Errorf("acme's holds %v: want its leases' and the API's hold of 3", holds)
				}
				if r := find(t, holds, "Amount", "3"); r["For"] != notLease {
					t.Errorf("the API hold is shown for %q", r["For"])
				}
			}
			if code, _ := b.Get("/ui/admin/pools"); code != 403 {
				t.Errorf("a customer on the pools page: %d; want 403", code)
			}
			if code, _ := b.Get("/ui/admin/leases"); code != 403 {
				t.Errorf("a customer on the operator's leases: %d; want 403", code)
			}
		})
	}
}
