// Package leasing is the dashboard's pages of compute leasing (package
// compute), added to the dashboard's page registry by the composition
// root: for the operator, the pools (capacity, utilization, the idle
// GPU-hours that could still be sold, revenue against cost) and the
// leases; for a customer, its own leases and the holds on its balance.
//
// Every figure is read through the calls the API answers from — the lease
// service's utilization and availability, the store's pools and leases,
// the ledger's balance, the economics report — over the same windows the
// API takes by default, and is shown exactly (grouped by thousands), so
// it equals the API's answer. The pages are the ui package's sections:
// server-rendered, no script needed.
package leasing

import (
	"context"
	"html/template"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	fb "farebox"
	"farebox/compute"
	"farebox/economics"
	"farebox/ledger"
	"farebox/ui"
)

// Deps are what the pages read.
type Deps struct {
	Store     fb.Store
	Compute   *compute.Service
	Economics economics.Config
}

type pages struct{ Deps }

// Register adds the pages to the dashboard: Pools and Leases to the
// operator's navigation (between Customers and Deployments), a pool's own
// page, and Leases to the customer's.
func Register(u *ui.UI, d Deps) error {
	p := &pages{d}
	for _, pg := range []ui.Page{
		{Side: ui.Operator, Path: "pools", Title: "Pools", Order: 24, Handle: p.pools},
		{Side: ui.Operator, Path: "pools/{id}", Handle: p.pool},
		{Side: ui.Operator, Path: "leases", Title: "Leases", Order: 26, Handle: p.leases},
		{Side: ui.Customer, Path: "leases", Title: "Leases", Order: 25, Handle: p.ownLeases},
	} {
		if err := u.Register(pg); err != nil {
			return err
		}
	}
	return nil
}

// Windows: a page reports the last `days` UTC days up to now (today
// included), 30 unless asked: utilization over [first day, now) as
// GET /api/v1/pools/{id}/utilization?from=<first day>&to=<now> answers
// it, revenue and cost over those days as GET
// /api/v1/reports/economics?from=<first day>&to=<tomorrow> does; and the
// next 7 days' availability as GET /api/v1/pools/{id}/availability answers
// by default (from this hour).
type window struct {
	days      int
	from, now time.Time // utilization: [from, now)
	econTo    time.Time // the economics report's to: the day after today
	availFrom time.Time // availability: [availFrom, availTo)
	availTo   time.Time
}

// periods are the windows a page offers, in days.
var periods = []int{1, 7, 30}

func windowOf(r *ui.Request) (window, error) {
	w := window{days: 30}
	if v := r.URL.Query().Get("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || !slices.Contains(periods, n) {
			return w, fb.Invalid("days", "days is 1, 7 or 30")
		}
		w.days = n
	}
	w.now = r.Now.UTC().Truncate(time.Second)
	today := w.now.Truncate(24 * time.Hour)
	w.from, w.econTo = today.AddDate(0, 0, 1-w.days), today.AddDate(0, 0, 1)
	w.availFrom = w.now.Truncate(time.Hour)
	w.availTo = w.availFrom.Add(7 * 24 * time.Hour)
	return w, nil
}

func (w window) label() string {
	if w.days == 1 {
		return "today"
	}
	return "the last " + strconv.Itoa(w.days) + " days"
}

// links are the periods offered on the page at base.
func (w window) links(base string) ui.Links {
	l := ui.Links{Label: "Period"}
	for _, n := range periods {
		text := "Today"
		if n > 1 {
			text = "Last " + strconv.Itoa(n) + " days"
		}
		l.Items = append(l.Items, ui.Link{Text: text, Href: base + "?days=" + strconv.Itoa(n), Current: n == w.days})
	}
	return l
}

// poolFigures are one pool's figures over a window.
type poolFigures struct {
	use      *compute.Utilization
	hours    []compute.Hour
	sellable compute.GPUSeconds // Σ free GPUs × the hour's seconds, next 7 days
	econ     economics.Row
}

func (p *pages) figures(ctx context.Context, pool *fb.Pool, w window, econ map[string]economics.Row) (*poolFigures, error) {
	use, err := p.Compute.Utilization(ctx, pool.ID, w.from, w.now)
	if err != nil {
		return nil, err
	}
	hours, err := p.Compute.Availability(ctx, pool.ID, w.availFrom, w.availTo)
	if err != nil {
		return nil, err
	}
	f := &poolFigures{use: use, hours: hours, econ: econ[pool.ID]}
	f.econ.Key = pool.ID
	for _, h := range hours {
		f.sellable += compute.GPUSeconds(h.FreeGPUs) * compute.GPUSeconds(h.End.Sub(h.Start)/time.Second)
	}
	return f, nil
}

// poolEconomics is each pool's row of the economics report by provider
// over the window's days, from its lease charges alone: a lease's usage
// row names its pool as both its model and its provider, so the sums of
// that model under that provider are the pool's (an inference deployment
// would have to be named like the pool, as model and provider, to mix in).
// Without inference of that name the row equals the API's row of the
// pool in GET /api/v1/reports/economics?group_by=provider.
func (p *pages) poolEconomics(ctx context.Context, w window, pools []*fb.Pool) (map[string]economics.Row, error) {
	sums, err := p.Store.Economics(ctx, fb.EconFilter{From: w.from, To: w.econTo, GroupBy: fb.GroupProvider})
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, pl := range pools {
		ids[pl.ID] = true
	}
	var mine []fb.EconRow
	for _, s := range sums {
		if ids[s.Key] && s.Model == s.Key {
			mine = append(mine, s)
		}
	}
	rows, _, err := economics.Report(mine, fb.GroupProvider, p.Economics)
	if err != nil {
		return nil, err
	}
	out := map[string]economics.Row{}
	for _, r := range rows {
		out[r.Key] = r
	}
	return out, nil
}

// The operator's pools.

func (p *pages) pools(r *ui.Request) (*ui.View, error) {
	w, err := windowOf(r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	pools, err := p.Store.Pools(ctx)
	if err != nil {
		return nil, err
	}
	econ, err := p.poolEconomics(ctx, w, pools)
	if err != nil {
		return nil, err
	}
	t := ui.Table{Title: "Pools", Name: "pools", Empty: "No pools yet: create one with POST /api/v1/pools or farebox pools create.", Stack: true,
		Columns: []ui.Column{{Label: "Pool"}, {Label: "Type"}, {Label: "GPUs", Num: true}, {Label: "Inference", Num: true},
			{Label: "Leasable", Num: true}, {Label: "Allocated GPU-h", Num: true}, {Label: "Utilization", Num: true}, {Label: "Idle GPU-h", Num: true},
			{Label: "Sellable GPU-h, 7 d", Num: true}, {Label: "Revenue", Num: true}, {Label: "Cost", Num: true}, {Label: "Margin", Num: true}}}
	var gpus, inference int64
	var sellable compute.GPUSeconds
	var revenue, cost fb.USD
	for _, pl := range pools {
		f, err := p.figures(ctx, pl, w, econ)
		if err != nil {
			return nil, err
		}
		row := []ui.Cell{{Text: pl.ID, Href: "/ui/admin/pools/" + url.PathEscape(pl.ID) + "?days=" + strconv.Itoa(w.days)}, {Text: kind(pl)},
			count(pl.GPUs), count(pl.ReservedForInference), count(pl.Leasable())}
		var hs [3]ui.Cell
		for i, g := range []compute.GPUSeconds{f.use.AllocatedGPUHours, f.use.IdleGPUHours, f.sellable} {
			if hs[i], err = hours(g); err != nil {
				return nil, err
			}
		}
		row = append(row, hs[0], percent(f.use.UtilizationPct), hs[1], hs[2],
			dollars(f.econ.RevenueUSD), dollars(f.econ.CostUSD), dollars(f.econ.MarginUSD))
		t.Rows = append(t.Rows, row)
		gpus, inference = gpus+pl.GPUs, inference+pl.ReservedForInference
		sellable += f.sellable
		if revenue, err = revenue.Add(f.econ.RevenueUSD); err != nil {
			return nil, err
		}
		if cost, err = cost.Add(f.econ.CostUSD); err != nil {
			return nil, err
		}
	}
	sell, err := hoursText(sellable)
	if err != nil {
		return nil, err
	}
	margin := economics.Row{RevenueUSD: revenue, CostUSD: cost, MarginUSD: revenue - cost, MarginPct: economics.Percent(revenue-cost, revenue)}
	return &ui.View{Title: "Pools", Sections: []ui.Section{
		w.links("/ui/admin/pools"),
		ui.Cards{
			{Label: "GPUs", Value: ui.Count(gpus), Note: ui.Count(int64(len(pools))) + " pools, " + ui.Count(inference) + " kept for own inference", Figure: "gpus"},
			{Label: "Sellable, next 7 days", Value: sell, Note: "GPU-hours free at every instant of their hour: leasable as anything", Figure: "sellable"},
			{Label: "Lease revenue", Value: ui.Dollars(revenue), Note: w.label(), Figure: "revenue_usd"},
			{Label: "Pools' cost", Value: ui.Dollars(cost), Note: "the GPU-hours leased, at each pool's cost basis", Figure: "cost_usd"},
			{Label: "Margin", Value: ui.Dollars(margin.MarginUSD), Note: pctText(margin.MarginPct) + " of revenue", Figure: "margin_usd"},
		},
		t,
		ui.Note("Inference is the GPUs kept for own inference, never leased. Allocated, utilization (allocated ÷ leasable GPU-hours) and idle GPU-hours are over " + w.label() + " up to now; revenue and cost are the economics report's rows of each pool (its lease charges) over the same days. Sellable GPU-hours sum each coming hour's GPUs free at every instant of it, over the next 7 days."),
	}}, nil
}

// A pool's own page.

func (p *pages) pool(r *ui.Request) (*ui.View, error) {
	w, err := windowOf(r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	pl, err := p.Store.Pool(ctx, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	econ, err := p.poolEconomics(ctx, w, []*fb.Pool{pl})
	if err != nil {
		return nil, err
	}
	f, err := p.figures(ctx, pl, w, econ)
	if err != nil {
		return nil, err
	}
	u := f.use
	text := map[string]string{}
	for name, g := range map[string]compute.GPUSeconds{"available": u.AvailableGPUHours, "allocated": u.AllocatedGPUHours, "idle": u.IdleGPUHours,
		"sellable": f.sellable, "inference": u.Inference.ReservedGPUHours} {
		if text[name], err = hoursText(g); err != nil {
			return nil, err
		}
	}
	measured := "not measured: no deployment of the pool runs on known GPUs"
	if m := u.Inference.MeasuredGPUHours; m != nil {
		h, err := hoursText(*m)
		if err != nil {
			return nil, err
		}
		measured = h + " GPU-h measured, " + pctText(u.Inference.UtilizationPct) + " of the " + text["inference"] + " kept"
	}
	base := "/ui/admin/pools/" + url.PathEscape(pl.ID)
	sections := []ui.Section{
		ui.Links{Label: "Pools", Items: []ui.Link{{Text: "← All pools", Href: "/ui/admin/pools?days=" + strconv.Itoa(w.days)},
			{Text: "Its leases", Href: "/ui/admin/leases?state=all&pool=" + url.QueryEscape(pl.ID)}}},
		w.links(base),
		ui.Cards{
			{Label: "GPUs", Value: ui.Count(pl.GPUs), Note: kind(pl) + ", at " + ui.Dollars(pl.CostUSDPerGPUHour) + " a GPU-hour", Figure: "gpus"},
			{Label: "Kept for own inference", Value: ui.Count(pl.ReservedForInference), Note: measured, Figure: "reserved_for_inference"},
			{Label: "Utilization", Value: pctText(u.UtilizationPct), Note: text["allocated"] + " of " + text["available"] + " leasable GPU-h, " + w.label(), Figure: "utilization_pct"},
			{Label: "Idle GPU-hours", Value: text["idle"], Note: "leasable, not leased: what could still have been sold", Figure: "idle_gpu_hours"},
			{Label: "Sellable, next 7 days", Value: text["sellable"], Note: "GPU-hours free at every instant of their hour", Figure: "sellable"},
			{Label: "Revenue", Value: ui.Dollars(f.econ.RevenueUSD), Note: "its lease charges, " + w.label(), Figure: "revenue_usd"},
			{Label: "Cost", Value: ui.Dollars(f.econ.CostUSD), Note: "the GPU-hours leased at the cost basis", Figure: "cost_usd"},
			{Label: "Margin", Value: ui.Dollars(f.econ.MarginUSD), Note: pctText(f.econ.MarginPct) + " of revenue", Figure: "margin_usd"},
		},
	}
	prices := ui.Table{Title: "Prices, credits per GPU-hour", Name: "prices",
		Columns: []ui.Column{{Label: "From"}, {Label: "On demand", Num: true}, {Label: "Reserved", Num: true}, {Label: "Spot", Num: true}}}
	for _, v := range slices.Backward(pl.Prices) {
		from := "the start"
		if !v.EffectiveFrom.IsZero() {
			from = short(v.EffectiveFrom, time.Time{}) + " UTC"
		}
		prices.Rows = append(prices.Rows, []ui.Cell{{Text: from}, credits(v.OnDemand), credits(v.Reserved), credits(v.Spot)})
	}
	sections = append(sections, prices)
	for _, g := range []struct {
		title, name, key string
		groups           []compute.UseGroup
	}{{"By class", "by_class", "Class", u.ByClass}, {"By tenant", "by_tenant", "Tenant", u.ByTenant}} {
		t := ui.Table{Title: g.title + ", " + w.label(), Name: g.name, Empty: "No lease ran in this period.",
			Columns: []ui.Column{{Label: g.key}, {Label: "Leases", Num: true}, {Label: "GPU-h", Num: true}, {Label: "Utilization", Num: true}}}
		for _, x := range g.groups {
			key := ui.Cell{Text: x.Key}
			if g.name == "by_tenant" {
				key.Href = "/ui/admin/customers/" + url.PathEscape(x.Key)
			}
			h, err := hours(x.GPUHours)
			if err != nil {
				return nil, err
			}
			t.Rows = append(t.Rows, []ui.Cell{key, count(int64(x.Leases)), h, percent(x.UtilizationPct)})
		}
		sections = append(sections, t)
	}
	if len(u.Inference.Deployments) > 0 {
		t := ui.Table{Title: "Own inference's measured use", Name: "inference",
			Columns: []ui.Column{{Label: "Deployment"}, {Label: "Tokens", Num: true}, {Label: "Tokens/s", Num: true}, {Label: "GPUs", Num: true}, {Label: "GPU-h", Num: true}}}
		for _, d := range u.Inference.Deployments {
			h, err := hours(d.GPUHours)
			if err != nil {
				return nil, err
			}
			t.Rows = append(t.Rows, []ui.Cell{{Text: d.Deployment}, count(d.Tokens), count(d.TokensPerSecond), count(d.GPUs), h})
		}
		sections = append(sections, t)
	}
	sections = append(sections, ui.ChartSection{Title: "GPUs in use and free, next 7 days, by hour", SVG: availabilityChart(f.hours)})
	days, err := byDay(f.hours)
	if err != nil {
		return nil, err
	}
	sections = append(sections, days)
	return &ui.View{Title: "Pool " + pl.ID, Sections: sections}, nil
}

// availabilityChart stacks each hour's most firm and spot GPUs and the
// GPUs free at every instant of it (the three may sum to less than the
// leasable GPUs when the peaks fall at different instants).
func availabilityChart(hs []compute.Hour) template.HTML {
	var labels, titles []string
	firm, spot, free := make([]int64, len(hs)), make([]int64, len(hs)), make([]int64, len(hs))
	for i, h := range hs {
		labels = append(labels, h.Start.Format("Mon ")+strconv.Itoa(h.Start.Hour())+"h")
		titles = append(titles, h.Start.Format("Mon 2 Jan 15:04")+"–"+h.End.Format("15:04 UTC"))
		firm[i], spot[i], free[i] = h.FirmGPUs, h.SpotGPUs, h.FreeGPUs
	}
	return ui.StackedBars(ui.Chart{Title: "GPUs in use and free per hour, next 7 days", Labels: labels, Titles: titles,
		Series: []ui.Series{{Name: "reserved and on-demand", Values: firm}, {Name: "spot", Values: spot}, {Name: "free", Values: free, Color: "#9ca3af"}},
		Format: func(v int64) string { return ui.Count(v) + " GPUs" }})
}

// byDay sums the next 7 days' hours by UTC day.
func byDay(hs []compute.Hour) (ui.Table, error) {
	t := ui.Table{Title: "Next 7 days, by day", Name: "availability",
		Columns: []ui.Column{{Label: "Day"}, {Label: "Fewest free GPUs", Num: true}, {Label: "Most firm GPUs", Num: true}, {Label: "Most spot GPUs", Num: true},
			{Label: "Sellable GPU-h", Num: true}, {Label: "Firm-leasable GPU-h", Num: true}}}
	type agg struct {
		day                    time.Time
		minFree, firm, spot    int64
		sellable, firmLeasable compute.GPUSeconds
	}
	var days []*agg
	for _, h := range hs {
		d := h.Start.Truncate(24 * time.Hour)
		if len(days) == 0 || !days[len(days)-1].day.Equal(d) {
			days = append(days, &agg{day: d, minFree: h.FreeGPUs})
		}
		a := days[len(days)-1]
		secs := compute.GPUSeconds(h.End.Sub(h.Start) / time.Second)
		a.minFree, a.firm, a.spot = min(a.minFree, h.FreeGPUs), max(a.firm, h.FirmGPUs), max(a.spot, h.SpotGPUs)
		a.sellable += compute.GPUSeconds(h.FreeGPUs) * secs
		a.firmLeasable += compute.GPUSeconds(h.LeasableGPUs) * secs
	}
	for _, a := range days {
		sell, err := hours(a.sellable)
		if err != nil {
			return t, err
		}
		firm, err := hours(a.firmLeasable)
		if err != nil {
			return t, err
		}
		t.Rows = append(t.Rows, []ui.Cell{{Text: a.day.Format("Mon 2 Jan 2006")}, count(a.minFree), count(a.firm), count(a.spot), sell, firm})
	}
	return t, nil
}

// Leases.

const leasesPerPage = 50

var stateChoices = []string{"active", "scheduled", "ended", "preempted", "all"}

// leaseList reads a page of leases of f (state from ?state=, active by
// default; ?after= the page's cursor).
func (p *pages) leaseList(r *ui.Request, f fb.LeaseFilter) ([]*fb.Lease, string, string, error) {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "active"
	}
	if !slices.Contains(stateChoices, state) {
		return nil, "", "", fb.Invalid("state", "state is active, scheduled, ended, preempted or all")
	}
	if state != "all" {
		f.State = fb.LeaseState(state)
	}
	if f.After = q.Get("after"); f.After != "" && !fb.ValidID(f.After) {
		return nil, "", "", fb.Invalid("after", "after is not a page of this list")
	}
	f.Limit = leasesPerPage + 1
	ls, err := p.Store.Leases(r.Context(), f)
	if err != nil {
		return nil, "", "", err
	}
	next := ""
	if len(ls) > leasesPerPage {
		ls = ls[:leasesPerPage]
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("after", ls[len(ls)-1].ID)
		next = r.URL.Path + "?" + v.Encode()
	}
	return ls, state, next, nil
}

func stateLinks(base, state string, q url.Values) ui.Links {
	l := ui.Links{Label: "State"}
	names := map[string]string{"active": "Active", "scheduled": "Scheduled", "ended": "Ended", "preempted": "Pre-empted", "all": "All"}
	for _, s := range stateChoices {
		v := url.Values{}
		for k, vs := range q {
			if k != "after" {
				v[k] = vs
			}
		}
		v.Set("state", s)
		l.Items = append(l.Items, ui.Link{Text: names[s], Href: base + "?" + v.Encode(), Current: s == state})
	}
	return l
}

// leaseTable lists leases; the operator's links each tenant and pool.
func leaseTable(ls []*fb.Lease, operator bool) ui.Table {
	t := ui.Table{Title: "Leases", Name: "leases", Empty: "No lease in this state.", Stack: true,
		Columns: []ui.Column{{Label: "Lease"}, {Label: "Tenant"}, {Label: "Pool"}, {Label: "Class"}, {Label: "GPUs", Num: true}, {Label: "State"},
			{Label: "Held", Num: true}, {Label: "Charged", Num: true}, {Label: "Window (UTC)"}, {Label: "Reason"}}}
	if operator {
		t.Columns = slices.Insert(t.Columns, 8, ui.Column{Label: "Cost", Num: true})
	} else {
		t.Columns = slices.Delete(t.Columns, 1, 2)
	}
	for _, l := range ls {
		reason := l.Reason
		if l.PreemptedBy != "" && operator { // another tenant's lease is not the customer's business
			reason += " by " + l.PreemptedBy
		}
		if reason == "" {
			reason = "—"
		}
		row := []ui.Cell{{Text: l.ID}, {Text: l.Customer, Href: "/ui/admin/customers/" + url.PathEscape(l.Customer)},
			{Text: l.Pool, Href: "/ui/admin/pools/" + url.PathEscape(l.Pool)}, {Text: string(l.Class)}, count(l.GPUs), {Text: string(l.State)},
			credits(l.Held()), credits(l.Charged), {Text: span(l.Start, l.End), Sort: strconv.FormatInt(l.Start.Unix(), 10)}, {Text: reason}}
		if operator {
			row = slices.Insert(row, 8, dollars(l.CostUSD))
		} else {
			row[2].Href = ""
			row = slices.Delete(row, 1, 2)
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

func (p *pages) leases(r *ui.Request) (*ui.View, error) {
	f := fb.LeaseFilter{Pool: r.URL.Query().Get("pool")}
	if f.Pool != "" && !fb.ValidID(f.Pool) {
		return nil, fb.Invalid("pool", "pool is a pool's id")
	}
	ls, state, next, err := p.leaseList(r, f)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if f.Pool != "" {
		q.Set("pool", f.Pool)
	}
	sections := []ui.Section{stateLinks("/ui/admin/leases", state, q), leaseTable(ls, true)}
	if next != "" {
		sections = append(sections, ui.Links{Label: "Pages", Items: []ui.Link{{Text: "Next page", Href: next}}})
	}
	sections = append(sections, ui.Note("A provisioning system polls GET /api/v1/leases?state=active (or follows the lease.* webhooks) to start and stop machines. Held is what the lease's open holds reserve; charged what it has paid so far."))
	title := "Leases"
	if f.Pool != "" {
		title = "Leases of " + f.Pool
	}
	return &ui.View{Title: title, Sections: sections}, nil
}

// The customer's own leases and holds.

func (p *pages) ownLeases(r *ui.Request) (*ui.View, error) {
	customer := r.Session.Customer
	if customer == "" {
		return nil, fb.Errorf(fb.EForbidden, "this page is for customers")
	}
	ctx := r.Context()
	ls, state, next, err := p.leaseList(r, fb.LeaseFilter{Customer: customer})
	if err != nil {
		return nil, err
	}
	a, err := p.Store.Account(ctx, customer)
	if err != nil {
		return nil, err
	}
	bal := ledger.BalanceAt(a, r.Now)
	// Which lease each hold pays for: the live leases' holds.
	forLease := map[string]*fb.Lease{}
	var leaseHeld fb.Amount
	live := 0
	for _, st := range []fb.LeaseState{fb.LeaseScheduled, fb.LeaseActive} {
		for after := ""; ; {
			page, err := p.Store.Leases(ctx, fb.LeaseFilter{Customer: customer, State: st, After: after, Limit: 1000})
			if err != nil {
				return nil, err
			}
			for _, l := range page {
				live++
				for _, h := range l.Holds {
					forLease[h.ID] = l
				}
			}
			if len(page) < 1000 {
				break
			}
			after = page[len(page)-1].ID
		}
	}
	holds := ui.Table{Title: "Holds on your balance", Name: "holds", Empty: "Nothing is held.",
		Columns: []ui.Column{{Label: "Hold"}, {Label: "For"}, {Label: "Covers (UTC)"}, {Label: "Amount", Num: true}, {Label: "Expires (UTC)"}}}
	hs := make([]*fb.Hold, 0, len(a.Holds))
	for _, h := range a.Holds {
		hs = append(hs, h)
	}
	slices.SortFunc(hs, func(x, y *fb.Hold) int {
		if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	for _, h := range hs {
		what, covers := "a request in flight, or a hold through the API", "—"
		if l := forLease[h.ID]; l != nil {
			what = ui.Count(l.GPUs) + " " + strings.ReplaceAll(string(l.Class), "_", "-") + " " + plural(l.GPUs, "GPU") + " on " + l.Pool
			for _, lh := range l.Holds {
				if lh.ID == h.ID {
					covers = span(lh.From, lh.To)
				}
			}
			var err error
			if leaseHeld, err = leaseHeld.Add(h.Amount); err != nil {
				return nil, err
			}
		}
		holds.Rows = append(holds.Rows, []ui.Cell{{Text: h.ID}, {Text: what}, {Text: covers}, credits(h.Amount), {Text: short(h.ExpiresAt, time.Time{})}})
	}
	sections := []ui.Section{
		ui.Cards{
			{Label: "Held", Value: ui.Credits(bal.Held), Note: "credits reserved on your balance", Figure: "held"},
			{Label: "Held for leases", Value: ui.Credits(leaseHeld), Note: ui.Count(int64(live)) + " leases scheduled or running", Figure: "lease_held"},
			{Label: "Available", Value: ui.Credits(bal.Available), Note: "credits", Figure: "available"},
		},
		stateLinks("/ui/account/leases", state, nil),
		leaseTable(ls, false),
	}
	if next != "" {
		sections = append(sections, ui.Links{Label: "Pages", Items: []ui.Link{{Text: "Next page", Href: next}}})
	}
	sections = append(sections, holds,
		ui.Note("A reserved lease holds its whole window's price from booking and pays it at its end; on-demand and spot leases pay per second (at least 60 s), holding an hour ahead. A lease whose next hour cannot be held ends when the hour it holds runs out."))
	return &ui.View{Title: "Leases", Sections: sections}, nil
}

// Formatting: exact figures, as the API writes them, grouped by
// thousands.

func count(n int64) ui.Cell { return ui.Cell{Text: ui.Count(n), Sort: strconv.FormatInt(n, 10)} }

func credits(a fb.Amount) ui.Cell {
	return ui.Cell{Text: ui.Credits(a), Sort: strconv.FormatInt(int64(a), 10)}
}

func dollars(u fb.USD) ui.Cell {
	return ui.Cell{Text: ui.Dollars(u), Sort: strconv.FormatInt(int64(u), 10)}
}

// hoursText is GPU-hours as the API writes them (6 decimals at most,
// rounded down), grouped like an amount.
func hoursText(g compute.GPUSeconds) (string, error) {
	micro, err := g.MicroHours()
	if err != nil {
		return "", err
	}
	return ui.Credits(fb.Amount(micro)), nil
}

func hours(g compute.GPUSeconds) (ui.Cell, error) {
	micro, err := g.MicroHours()
	if err != nil {
		return ui.Cell{}, err
	}
	return ui.Cell{Text: ui.Credits(fb.Amount(micro)), Sort: strconv.FormatInt(micro, 10)}, nil
}

func pctText(p *string) string {
	if p == nil {
		return "—"
	}
	return *p + "%"
}

func percent(p *string) ui.Cell {
	c := ui.Cell{Text: pctText(p)}
	if p != nil {
		c.Sort = *p
	}
	return c
}

// short is an instant to the minute (to the second when it has seconds),
// in UTC, leaving out what it shares with ref: its day, or its year.
func short(t, ref time.Time) string {
	t, ref = t.UTC(), ref.UTC()
	layout := "2 Jan 2006 15:04"
	switch {
	case !ref.IsZero() && t.Truncate(24*time.Hour).Equal(ref.Truncate(24*time.Hour)):
		layout = "15:04"
	case !ref.IsZero() && t.Year() == ref.Year():
		layout = "2 Jan 15:04"
	}
	if t.Second() != 0 {
		layout += ":05"
	}
	return t.Format(layout)
}

// span is a window [start, end), "open" without an end.
func span(start, end time.Time) string {
	if end.IsZero() {
		return short(start, time.Time{}) + " – open"
	}
	return short(start, time.Time{}) + " – " + short(end, start)
}

func plural(n int64, what string) string {
	if n == 1 {
		return what
	}
	return what + "s"
}

// kind is a pool's GPU type and region.
func kind(p *fb.Pool) string {
	var parts []string
	for _, s := range []string{p.GPUType, p.Region} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, " · ")
}
