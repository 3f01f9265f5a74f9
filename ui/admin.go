package ui

import (
	"cmp"
	"context"
	"fmt"
	"html/template"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	fb "farebox"
	"farebox/economics"
	"farebox/ledger"
	"farebox/routing"
)

// The operator's pages.

func (u *UI) adminPages() []Page {
	return []Page{
		{Side: Operator, Path: "", Title: "Economics", Order: 10, Handle: u.economicsPage},
		{Side: Operator, Path: "customers", Title: "Customers", Order: 20, Handle: u.customersPage},
		{Side: Operator, Path: "customers/{id}", Handle: u.customerPage},
		{Side: Operator, Path: "customers/{id}/grant", Method: "POST", Handle: u.grant},
		{Side: Operator, Path: "customers/{id}/plan", Method: "POST", Handle: u.changePlan},
		{Side: Operator, Path: "system", Title: "Deployments & ledger", Order: 30, Handle: u.systemPage},
		{Side: Operator, Path: "system/verify", Method: "POST", Handle: u.runVerify},
	}
}

// Economics.

type econTable struct {
	Title, By string
	Rows      []economics.Row
	Total     int    // rows in the report
	More      string // the URL of the whole table, when Rows are the top ones
}

// topCustomers is how many customers the economics page lists unless
// asked for all.
const topCustomers = 25

type economicsView struct {
	From, To     time.Time // [From, To)
	LastDay      time.Time // To - 1 day, what the form shows
	Totals       economics.Row
	Chart        template.HTML
	Tables       []econTable
	PartnerShare bool
}

// dayParam reads a date of the range form.
func dayParam(q url.Values, name string, def time.Time) (time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return t, fb.Invalid(name, "%s must be a date such as 2026-11-01", name)
	}
	return t, nil
}

func (u *UI) economicsPage(r *Request) (*View, error) {
	from, to := last30(r.Now)
	q := r.URL.Query()
	var err error
	if from, err = dayParam(q, "from", from); err != nil {
		return nil, err
	}
	// The form's "to" is the last day shown, inclusive; the report's is
	// the day after.
	last, err := dayParam(q, "to", to.AddDate(0, 0, -1))
	if err != nil {
		return nil, err
	}
	to = last.AddDate(0, 0, 1)
	if !from.Before(to) {
		return nil, fb.Invalid("to", "the range must end on or after its first day")
	}
	if to.Sub(from) > 366*24*time.Hour {
		return nil, fb.Invalid("from", "the range is at most 366 days")
	}
	v := &economicsView{From: from, To: to, LastDay: last, PartnerShare: len(u.d.Economics.Shares) > 0}
	// One read of the daily sums, folded into each grouping: each is what
	// the API's report by that grouping answers.
	f := fb.EconFilter{From: from, To: to}
	reports, err := economics.ReadGroupings(r.Context(), u.d.Store, f, u.d.Economics, fb.GroupDay, fb.GroupCustomer, fb.GroupModel, fb.GroupProvider)
	if err != nil {
		return nil, err
	}
	v.Chart = marginChart(reports[fb.GroupDay].Rows, from, to)
	// The totals are every grouping's (partner shares are rounded once
	// per model over the range): the API's default's, by customer.
	v.Totals = reports[fb.GroupCustomer].Totals
	for _, g := range []struct {
		by    fb.GroupBy
		title string
	}{{fb.GroupCustomer, "By customer"}, {fb.GroupModel, "By model"}, {fb.GroupProvider, "By provider"}} {
		t := econTable{Title: g.title, By: string(g.by), Rows: reports[g.by].Rows, Total: len(reports[g.by].Rows)}
		if g.by == fb.GroupCustomer && q.Get("customers") != "all" && len(t.Rows) > topCustomers {
			// The customers who earned most; all of them on request (a
			// long table is a heavy page).
			t.Rows = slices.Clone(t.Rows)
			slices.SortStableFunc(t.Rows, func(a, b economics.Row) int { return cmp.Compare(b.RevenueUSD, a.RevenueUSD) })
			t.Rows = t.Rows[:topCustomers]
			t.More = "/ui/admin?" + url.Values{"from": {from.Format(time.DateOnly)}, "to": {last.Format(time.DateOnly)}, "customers": {"all"}}.Encode()
		}
		v.Tables = append(v.Tables, t)
	}
	return &View{Title: "Economics", Template: "economics", Data: v}, nil
}

// marginChart draws revenue, cost and margin per day.
func marginChart(rows []economics.Row, from, to time.Time) template.HTML {
	var labels, titles []string
	index := map[string]int{}
	for d := from; d.Before(to); d = d.AddDate(0, 0, 1) {
		index[d.Format(time.DateOnly)] = len(labels)
		labels = append(labels, d.Format("2 Jan"))
		titles = append(titles, d.Format("2 Jan 2006"))
	}
	rev, cost, margin := make([]int64, len(labels)), make([]int64, len(labels)), make([]int64, len(labels))
	for _, r := range rows {
		if i, ok := index[r.Key]; ok {
			rev[i], cost[i], margin[i] = int64(r.RevenueUSD), int64(r.CostUSD), int64(r.MarginUSD)
		}
	}
	return Lines(Chart{Title: "Revenue, inference cost and margin per day (USD)", Labels: labels, Titles: titles,
		Series: []Series{{Name: "Margin", Values: margin, Bars: true, Color: "#16a34a"}, {Name: "Revenue", Values: rev, Color: "#2563eb"},
			{Name: "Inference cost", Values: cost, Color: "#d97706"}},
		Format: func(v int64) string { return Dollars(fb.USD(v)) }})
}

// Customers.

const customersPerPage = 50

type customerRow struct {
	fb.Customer
	Available fb.Amount
	Plan      string
	Last      time.Time
}

type customersView struct {
	Query string
	Rows  []customerRow
	Next  string
}

func (u *UI) customersPage(r *Request) (*View, error) {
	q := r.URL.Query()
	query := strings.TrimSpace(q.Get("q"))
	if len(query) > 64 || !fb.Printable(query) {
		return nil, fb.Invalid("q", "search for at most 64 printable characters")
	}
	after := q.Get("after")
	if len(after) > 64 || !fb.Printable(after) {
		return nil, fb.Invalid("after", "after is not a page of this list")
	}
	ctx := r.Context()
	cs, err := u.d.Store.FindCustomers(ctx, query, after, customersPerPage+1)
	if err != nil {
		return nil, err
	}
	v := &customersView{Query: query}
	if len(cs) > customersPerPage {
		cs = cs[:customersPerPage]
		v.Next = "/ui/admin/customers?" + url.Values{"q": {query}, "after": {cs[len(cs)-1].ID}}.Encode()
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	last, err := u.d.Store.LastUsage(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		a, err := u.d.Store.Account(ctx, c.ID)
		if err != nil {
			return nil, err
		}
		row := customerRow{Customer: c, Available: ledger.BalanceAt(a, r.Now).Available, Last: last[c.ID]}
		if sub, err := u.d.Store.Subscription(ctx, c.ID); err == nil {
			row.Plan = sub.Plan
		} else if fb.ErrorType(err) != fb.ENotFound {
			return nil, err
		}
		v.Rows = append(v.Rows, row)
	}
	return &View{Title: "Customers", Template: "customers", Data: v}, nil
}

type customerView struct {
	*accountView
	Keys        []keyRow
	Plans       []fb.Plan
	GrantKey    string // a fresh idempotency key for the grant form
	PlanKey     string
	Sources     []fb.Source
	DefaultDate string
}

func (u *UI) customerPage(r *Request) (*View, error) {
	id := r.PathValue("id")
	if !validID(id) {
		return nil, fb.Errorf(fb.ENotFound, "no customer %q", id)
	}
	av, err := u.account(r.Context(), id, r.Now)
	if err != nil {
		return nil, err
	}
	v := &customerView{accountView: av, GrantKey: u.d.NewID("ui_grant_"), PlanKey: u.d.NewID("ui_plan_"),
		Sources: []fb.Source{fb.SourcePurchase, fb.SourcePromo, fb.SourceSubscription, fb.SourceRefund, fb.SourceAdjustment}}
	ks, err := u.d.Store.Keys(r.Context(), id)
	if err != nil {
		return nil, err
	}
	a, err := u.d.Store.Account(r.Context(), id)
	if err != nil {
		return nil, err
	}
	v.Keys = keyRows(ks, a, r.Now)
	if v.Plans, err = u.d.Store.Plans(r.Context()); err != nil {
		return nil, err
	}
	return &View{Title: "Customer " + id, Template: "customer", Data: v}, nil
}

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// grant is the grant form: the same op the API's POST
// /api/v1/customers/{id}/grants submits, under the form's idempotency key
// (a second submission of the same form grants nothing more).
func (u *UI) grant(r *Request) (*View, error) {
	id := r.PathValue("id")
	if !validID(id) {
		return nil, fb.Errorf(fb.ENotFound, "no customer %q", id)
	}
	if _, err := u.d.Store.Customer(r.Context(), id); err != nil {
		return nil, err
	}
	op, err := grantOp(r, id)
	if err != nil {
		return nil, err
	}
	res, err := u.d.Engine.Submit(r.Context(), op)
	if err != nil {
		return nil, err
	}
	msg := fmt.Sprintf("Granted %s credits (%s) to %s: lot %s.", Credits(op.Amount), op.Source, id, res.Lot.ID)
	return &View{Redirect: "/ui/admin/customers/" + id, Flash: msg}, nil
}

func grantOp(r *Request, customer string) (fb.Op, error) {
	f := r.PostFormValue
	op := fb.Op{Kind: fb.OpGrant, Customer: customer, Key: strings.TrimSpace(f("idempotency_key"))}
	if op.Key == "" || len(op.Key) > 255 || !fb.Printable(op.Key) {
		return op, fb.Invalid("idempotency_key", "the idempotency key is 1 to 255 printable characters")
	}
	var err error
	if op.Amount, err = fb.ParseAmount(strings.TrimSpace(f("amount"))); err != nil || op.Amount <= 0 {
		return op, fb.Invalid("amount", "amount must be a number of credits above 0, with at most 6 decimals")
	}
	op.Source = fb.Source(f("source"))
	if !op.Source.Valid() {
		return op, fb.Invalid("source", "source must be one of subscription, purchase, promo, refund, adjustment")
	}
	op.Priority = op.Source.DefaultPriority()
	if v := strings.TrimSpace(f("paid_usd")); v != "" {
		if op.PaidUSD, err = fb.ParseUSD(v); err != nil || op.PaidUSD < 0 {
			return op, fb.Invalid("paid_usd", "paid (USD) must be a non-negative amount with at most 6 decimals")
		}
	}
	if v := strings.TrimSpace(f("priority")); v != "" {
		if op.Priority, err = strconv.Atoi(v); err != nil || op.Priority < 0 || op.Priority > 1000 {
			return op, fb.Invalid("priority", "priority must be an integer from 0 to 1000")
		}
	}
	if v := strings.TrimSpace(f("expires_at")); v != "" {
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return op, fb.Invalid("expires_at", "expires must be a date such as 2027-01-01")
		}
		if !t.After(r.Now) {
			return op, fb.Invalid("expires_at", "expires must be in the future")
		}
		op.ExpiresAt = t
	}
	return op, nil
}

// changePlan is PUT /api/v1/customers/{id}/subscription's form, under the
// form's idempotency key.
func (u *UI) changePlan(r *Request) (*View, error) {
	id := r.PathValue("id")
	if !validID(id) {
		return nil, fb.Errorf(fb.ENotFound, "no customer %q", id)
	}
	if _, err := u.d.Store.Customer(r.Context(), id); err != nil {
		return nil, err
	}
	plan := r.PostFormValue("plan")
	if !validID(plan) {
		return nil, fb.Invalid("plan", "choose a plan")
	}
	effective := r.PostFormValue("effective")
	if effective != "now" && effective != "period_end" {
		return nil, fb.Invalid("effective", "effective must be now or period_end")
	}
	key := strings.TrimSpace(r.PostFormValue("idempotency_key"))
	if key == "" || len(key) > 255 || !fb.Printable(key) {
		return nil, fb.Invalid("idempotency_key", "the idempotency key is 1 to 255 printable characters")
	}
	var sub fb.Subscription
	var err error
	if _, serr := u.d.Store.Subscription(r.Context(), id); fb.ErrorType(serr) == fb.ENotFound {
		sub, err = u.d.Plans.Subscribe(r.Context(), id, plan)
	} else {
		sub, err = u.d.Plans.ChangeWithKey(r.Context(), id, plan, effective, key)
	}
	if err != nil {
		return nil, err
	}
	msg := fmt.Sprintf("%s is on plan %s until %s.", id, sub.Plan, day(sub.PeriodEnd))
	if sub.NextPlan != "" {
		msg = fmt.Sprintf("%s moves to plan %s on %s.", id, sub.NextPlan, day(sub.PeriodEnd))
	}
	return &View{Redirect: "/ui/admin/customers/" + id, Flash: msg}, nil
}

// Deployments and the ledger's health.

type systemView struct {
	Deployments []routing.Status
	JournalSeq  int64
	Stats       ledger.Stats
	Queued      int
	Verify      *fb.Verification // the last recorded; nil: never
	CanVerify   bool
}

func (u *UI) systemPage(r *Request) (*View, error) {
	v := &systemView{CanVerify: u.d.CanVerify}
	if rt := u.d.Gateway.Router(); rt != nil {
		v.Deployments = rt.Statuses()
	}
	var err error
	if v.JournalSeq, err = u.d.Store.JournalSeq(r.Context()); err != nil {
		return nil, err
	}
	v.Stats, v.Queued = u.d.Engine.Stats(), u.d.Engine.Queued()
	switch last, err := u.d.Store.LastVerification(r.Context()); {
	case err == nil:
		v.Verify = &last
	case fb.ErrorType(err) != fb.ENotFound:
		return nil, err
	}
	return &View{Title: "Deployments & ledger", Template: "system", Data: v}, nil
}

// runVerify replays the journal against the stored state, as `farebox
// ledger verify` does, one run at a time, and records the outcome in the
// store, so the page shows it after a restart too.
func (u *UI) runVerify(r *Request) (*View, error) {
	if !u.d.CanVerify {
		return nil, fb.Errorf(fb.EForbidden, "verify from the dashboard runs on the embedded store only: run `farebox ledger verify --db …`")
	}
	if !u.verifying.TryLock() {
		return nil, fb.Errorf(fb.EConflict, "a verification is running")
	}
	defer u.verifying.Unlock()
	start := time.Now()
	ctx := context.WithoutCancel(r.Context())
	rep, err := ledger.Verify(ctx, u.d.Store)
	res := fb.Verification{At: r.Now, Took: time.Since(start)}
	if err != nil {
		u.d.Log.Error("ledger verify from the dashboard failed", "err", err)
		res.Err = "the verification could not run; see the server log"
	} else {
		res.Entries, res.Accounts, res.Problems = rep.Entries, rep.Accounts, rep.Problems
	}
	if err := u.d.Store.AddVerification(ctx, res); err != nil {
		return nil, err
	}
	flash := fmt.Sprintf("Verified: %d journal entries, %d accounts, consistent.", res.Entries, res.Accounts)
	if res.Err != "" || len(res.Problems) > 0 {
		flash = "The verification found problems: see below."
	}
	return &View{Redirect: "/ui/admin/system", Flash: flash}, nil
}
