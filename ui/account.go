package ui

import (
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
	"farebox/keys"
	"farebox/ledger"
)

// The customer's pages: every read is of the session's own customer, never
// of one named in the request.

func (u *UI) accountPages() []Page {
	return []Page{
		{Side: Customer, Path: "", Title: "Overview", Order: 10, Handle: u.overview},
		{Side: Customer, Path: "requests", Title: "Requests", Order: 20, Handle: u.requests},
		{Side: Customer, Path: "keys", Title: "API keys", Order: 30, Handle: u.keysPage},
		{Side: Customer, Path: "keys", Method: "POST", Handle: u.createKey},
		{Side: Customer, Path: "keys/{id}/revoke", Method: "POST", Handle: u.revokeKey},
	}
}

// forecastDays is the forecast's window, the API's default.
const forecastDays = 7

// expiringSoon is how near an expiry is warned of.
const expiringSoon = 7 * 24 * time.Hour

type lotRow struct {
	*fb.Lot
	Expiring bool
	Rollover string
}

// accountView is what the overview of a customer shows; the operator's
// customer page shows the same.
type accountView struct {
	Customer     fb.Customer
	Balance      ledger.Balance
	Lots         []lotRow
	Chart        template.HTML
	From, To     time.Time // the chart's days [From, To)
	Consumed     fb.Amount // over those days
	Forecast     economics.Forecast
	ForecastDays int
	Plan         *fb.Plan
	Sub          *fb.Subscription
	NextPlan     *fb.Plan
	Recent       []fb.Usage
	TopUp        string
	BuyCredits   string // the checkout's form action, when payments are on
	TopUpPage    string
	Now          time.Time
}

// last30 is the API's default report range: the last 30 UTC days, today
// included.
func last30(now time.Time) (time.Time, time.Time) {
	today := now.UTC().Truncate(24 * time.Hour)
	return today.AddDate(0, 0, -29), today.AddDate(0, 0, 1)
}

func (u *UI) account(ctx context.Context, customer string, now time.Time) (*accountView, error) {
	c, err := u.d.Store.Customer(ctx, customer)
	if err != nil {
		return nil, err
	}
	a, err := u.d.Store.Account(ctx, customer)
	if err != nil {
		return nil, err
	}
	v := &accountView{Customer: c, Balance: ledger.BalanceAt(a, now), ForecastDays: forecastDays, TopUp: u.d.TopUp, Now: now}
	u.mu.Lock()
	v.BuyCredits, v.TopUpPage = u.buy, u.topUpPage
	u.mu.Unlock()
	for _, l := range v.Balance.Lots {
		r := lotRow{Lot: l, Expiring: !l.ExpiresAt.IsZero() && l.ExpiresAt.Sub(now) < expiringSoon}
		if !l.RolloverUntil.IsZero() {
			r.Rollover = "up to " + Credits(l.RolloverMax) + " until " + day(l.RolloverUntil)
		}
		v.Lots = append(v.Lots, r)
	}
	// Credits by day and model, from the daily sums (the economics read,
	// by day, of this customer).
	v.From, v.To = last30(now)
	f := fb.EconFilter{From: v.From, To: v.To, GroupBy: fb.GroupDay, Customer: customer}
	sums, err := u.d.Store.Economics(ctx, f)
	if err != nil {
		return nil, err
	}
	_, totals, err := economics.Report(sums, f.GroupBy, u.d.Economics)
	if err != nil {
		return nil, err
	}
	v.Consumed = totals.CreditsConsumed
	v.Chart = creditsChart(sums, v.From, v.To)
	fs, err := economics.Forecasts(ctx, u.d.Store, customer, forecastDays, now)
	if err != nil {
		return nil, err
	}
	if len(fs) == 1 {
		v.Forecast = fs[0]
	}
	if sub, err := u.d.Store.Subscription(ctx, customer); err == nil {
		v.Sub = &sub
		if p, err := u.d.Store.Plan(ctx, sub.Plan); err == nil {
			v.Plan = &p
		}
		if sub.NextPlan != "" {
			if p, err := u.d.Store.Plan(ctx, sub.NextPlan); err == nil {
				v.NextPlan = &p
			}
		}
	} else if fb.ErrorType(err) != fb.ENotFound {
		return nil, err
	}
	if v.Recent, err = u.d.Store.UsageRows(ctx, fb.UsageList{Customer: customer, Limit: 10}); err != nil {
		return nil, err
	}
	return v, nil
}

// creditsChart stacks each day's credits by model.
func creditsChart(sums []fb.EconRow, from, to time.Time) template.HTML {
	var labels, titles []string
	index := map[string]int{}
	for d := from; d.Before(to); d = d.AddDate(0, 0, 1) {
		index[d.Format(time.DateOnly)] = len(labels)
		labels = append(labels, strconv.Itoa(d.Day()))
		titles = append(titles, d.Format("2 Jan 2006"))
	}
	byModel := map[string][]int64{}
	var models []string
	for _, e := range sums {
		i, ok := index[e.Key]
		if !ok || e.Credits == 0 {
			continue
		}
		m := e.Model
		if m == "" {
			m = "other (API captures)"
		}
		if byModel[m] == nil {
			byModel[m] = make([]int64, len(labels))
			models = append(models, m)
		}
		byModel[m][i] += int64(e.Credits)
	}
	slices.Sort(models)
	var series []Series
	for _, m := range models {
		series = append(series, Series{Name: m, Values: byModel[m]})
	}
	return StackedBars(Chart{Title: "Credits spent per day, by model", Labels: labels, Titles: titles, Series: series,
		Format: func(v int64) string { return Credits(fb.Amount(v)) }})
}

func (u *UI) overview(r *Request) (*View, error) {
	customer, err := mustCustomer(r)
	if err != nil {
		return nil, err
	}
	v, err := u.account(r.Context(), customer, r.Now)
	if err != nil {
		return nil, err
	}
	return &View{Title: "Overview", Template: "account", Data: v}, nil
}

// Recent requests, paged by a cursor (the last row's time and id).

const requestsPerPage = 50

type requestsView struct {
	Rows []fb.Usage
	Next string // the next page's URL, "" on the last
}

func cursorOf(u fb.Usage) string {
	return strconv.FormatInt(u.At.UnixNano(), 10) + "_" + u.ID
}

func parseCursor(s string) (time.Time, string, error) {
	n, id, ok := strings.Cut(s, "_")
	ns, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || ns <= 0 || id == "" || !fb.Printable(id) {
		return time.Time{}, "", fb.Invalid("before", "before is not a page of this list")
	}
	return time.Unix(0, ns).UTC(), id, nil
}

func (u *UI) requests(r *Request) (*View, error) {
	customer, err := mustCustomer(r)
	if err != nil {
		return nil, err
	}
	v, err := u.requestsOf(r, customer, "/ui/account/requests")
	if err != nil {
		return nil, err
	}
	return &View{Title: "Requests", Template: "requests", Data: v}, nil
}

func (u *UI) requestsOf(r *Request, customer, base string) (*requestsView, error) {
	f := fb.UsageList{Customer: customer, Limit: requestsPerPage + 1}
	if c := r.URL.Query().Get("before"); c != "" {
		var err error
		if f.BeforeAt, f.BeforeID, err = parseCursor(c); err != nil {
			return nil, err
		}
	}
	rows, err := u.d.Store.UsageRows(r.Context(), f)
	if err != nil {
		return nil, err
	}
	v := &requestsView{Rows: rows}
	if len(rows) > requestsPerPage {
		v.Rows = rows[:requestsPerPage]
		v.Next = base + "?before=" + url.QueryEscape(cursorOf(v.Rows[len(v.Rows)-1]))
	}
	return v, nil
}

// Keys.

// keyRow is a key with what its budget leaves, as the API's keys answer
// it (ledger.KeyBudgetOf): nil without a budget.
type keyRow struct {
	fb.APIKey
	Budget *ledger.KeyBudget
}

// keyRows are a customer's keys, newest first, with their budgets in
// account a at now.
func keyRows(ks []fb.APIKey, a *fb.Account, now time.Time) []keyRow {
	out := make([]keyRow, 0, len(ks))
	for _, k := range slices.Backward(ks) {
		row := keyRow{APIKey: k}
		if b, ok := ledger.KeyBudgetOf(k, a, now); ok {
			row.Budget = &b
		}
		out = append(out, row)
	}
	return out
}

type keysView struct {
	Keys   []keyRow
	NewKey string // the secret of the key just made: shown once
	NewID  string
	Self   string // the key this session signed in with
	// Limited: the session's key has a budget of its own, and only a key
	// without one may create or revoke keys (a team's or a script's key
	// cannot mint itself more).
	Limited bool
	Periods []fb.BudgetPeriod
}

func (u *UI) keysOf(r *Request, customer string) (*keysView, error) {
	ks, err := u.d.Store.Keys(r.Context(), customer)
	if err != nil {
		return nil, err
	}
	a, err := u.d.Store.Account(r.Context(), customer)
	if err != nil {
		return nil, err
	}
	v := &keysView{Keys: keyRows(ks, a, r.Now), Self: r.Session.KeyID, Limited: Limited(r, ks),
		Periods: []fb.BudgetPeriod{fb.BudgetMonth, fb.BudgetDay, fb.BudgetTotal}}
	return v, nil
}

// Limited reports whether the customer session's key (among ks, its
// customer's keys) has a budget of its own: such a key may look, but not
// manage keys or billing.
func Limited(r *Request, ks []fb.APIKey) bool {
	for _, k := range ks {
		if k.ID == r.Session.KeyID {
			return k.Budget != nil
		}
	}
	return false
}

// ErrLimited refuses a budgeted key's session what only a key without a
// budget may do (see Limited).
var ErrLimited = fb.Errorf(fb.EForbidden, "this session's key has a budget of its own: only a key without a budget may do this; sign in with one")

func (u *UI) keysPage(r *Request) (*View, error) {
	customer, err := mustCustomer(r)
	if err != nil {
		return nil, err
	}
	v, err := u.keysOf(r, customer)
	if err != nil {
		return nil, err
	}
	return &View{Title: "API keys", Template: "keys", Data: v}, nil
}

// optionalAmount reads an optional amount field of a form: nil when empty.
func optionalAmount(r *Request, name string) (*fb.Amount, error) {
	v := strings.TrimSpace(r.PostFormValue(name))
	if v == "" {
		return nil, nil
	}
	a, err := fb.ParseAmount(v)
	if err != nil {
		return nil, fb.Invalid(name, "%s must be an amount of credits such as 50 or 12.5", name)
	}
	return &a, nil
}

// createKey mints a key of the session's customer, with the limits the
// form gives it, and shows its secret in this response only (never in a
// URL: no redirect carries it).
func (u *UI) createKey(r *Request) (*View, error) {
	customer, err := mustCustomer(r)
	if err != nil {
		return nil, err
	}
	ks, err := u.d.Store.Keys(r.Context(), customer)
	if err != nil {
		return nil, err
	}
	if Limited(r, ks) {
		return nil, ErrLimited
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" || len(name) > 200 || !fb.Printable(name) {
		return nil, fb.Invalid("name", "a key's name is 1 to 200 printable characters")
	}
	budget, err := optionalAmount(r, "budget")
	if err != nil {
		return nil, err
	}
	var rpm int64
	if v := strings.TrimSpace(r.PostFormValue("rpm")); v != "" {
		if rpm, err = strconv.ParseInt(v, 10, 64); err != nil {
			return nil, fb.Invalid("rpm", "rpm must be a whole number of requests per minute")
		}
	}
	period := fb.BudgetPeriod(r.PostFormValue("budget_period"))
	if budget == nil {
		period = "" // the form always sends one
	}
	k, secret := keys.Mint(customer, name, r.Now, u.d.NewID)
	if err := keys.Limit(&k, budget, period, rpm); err != nil {
		return nil, err
	}
	if err := u.d.Store.CreateKey(r.Context(), k); err != nil {
		return nil, err
	}
	v, err := u.keysOf(r, customer)
	if err != nil {
		return nil, err
	}
	v.NewKey, v.NewID = secret, k.ID
	return &View{Title: "API keys", Template: "keys", Data: v, Flash: fmt.Sprintf("Key %q created.", name)}, nil
}

// revokeKey revokes one of the session's customer's keys; another
// customer's key is not found.
func (u *UI) revokeKey(r *Request) (*View, error) {
	customer, err := mustCustomer(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	ks, err := u.d.Store.Keys(r.Context(), customer)
	if err != nil {
		return nil, err
	}
	if Limited(r, ks) {
		return nil, ErrLimited
	}
	var found *fb.APIKey
	for i := range ks {
		if ks[i].ID == id {
			found = &ks[i]
		}
	}
	if found == nil {
		return nil, fb.Errorf(fb.ENotFound, "no key %q", id)
	}
	if _, err := u.d.Store.RevokeKey(r.Context(), id, r.Now); err != nil {
		return nil, err
	}
	if id == r.Session.KeyID {
		return &View{Redirect: "/"}, nil // this session's own key: signed out with it
	}
	return &View{Redirect: "/ui/account/keys", Flash: fmt.Sprintf("Key %q (%s…) revoked.", found.Name, found.Prefix)}, nil
}
