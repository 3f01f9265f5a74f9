// Package campaigns is the dashboard's pages of sponsored suggestions
// (package sponsored), added to the dashboard's page registry by the
// composition root: for the operator, every campaign with its stats, the
// ad revenue and the economics by plan and by product (a sponsored free
// tier's inference cost beside the ad revenue its answers carried), and a
// campaign's page with a pause form; for an advertiser signed in with one
// of its keys, the same of its own campaigns only, on the customer side
// (the pages are there for advertisers' accounts alone).
//
// Every figure is a read the API makes: a campaign's stats are
// Campaigns.Stats over the range (GET /api/v1/campaigns/{id}/stats), a
// day's the same over that day, the economics economics.Read
// (GET /api/v1/reports/economics), the balance ledger.BalanceAt; shown
// exactly, grouped by thousands. The pages are the ui package's sections:
// server-rendered, no script needed.
package campaigns

import (
	"context"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	fb "farebox"
	"farebox/economics"
	"farebox/ledger"
	"farebox/ui"
)

// Campaigns is what the campaign pages read and change: the sponsored
// service (package sponsored).
type Campaigns interface {
	List(ctx context.Context) ([]fb.Campaign, error)
	Get(ctx context.Context, id string) (fb.Campaign, error)
	Stats(ctx context.Context, id string, from, to time.Time) (fb.CampaignStats, error)
	Update(ctx context.Context, id string, change func(*fb.Campaign) error) (fb.Campaign, error)
}

// Deps are what the pages read and change.
type Deps struct {
	Store     fb.Store
	Campaigns Campaigns
	Economics economics.Config
}

// Register adds the pages to the dashboard: Campaigns to the operator's
// navigation (after Leases) with a campaign's page and its pause form,
// and Campaigns to an advertiser's, after its overview.
func Register(u *ui.UI, d Deps) error {
	p := &pages{d}
	for _, pg := range []ui.Page{
		{Side: ui.Operator, Path: "campaigns", Title: "Campaigns", Order: 27, Handle: p.adminList},
		{Side: ui.Operator, Path: "campaigns/{id}", Handle: p.adminCampaign},
		{Side: ui.Operator, Path: "campaigns/{id}/active", Method: "POST", Handle: p.setActive},
		{Side: ui.Customer, Path: "campaigns", Title: "Campaigns", Order: 15, Handle: p.advertiserList, Visible: p.advertiser},
		{Side: ui.Customer, Path: "campaigns/{id}", Handle: p.advertiserCampaign, Visible: p.advertiser},
	} {
		if err := u.Register(pg); err != nil {
			return err
		}
	}
	return nil
}

type pages struct{ Deps }

// advertiser: the customer side's campaign pages are an advertiser's.
func (p *pages) advertiser(ctx context.Context, s fb.Session) bool {
	c, err := p.Store.Customer(ctx, s.Customer)
	return err == nil && c.Kind == fb.KindAdvertiser
}

// dayRange is a page's range of whole UTC days, [from, to): the form's
// from and to (the last day shown, inclusive), by default the last 30
// days with today, as the API's reports.
type dayRange struct {
	from, to, last time.Time
}

func rangeOf(r *ui.Request) (dayRange, error) {
	from, to := last30(r.Now)
	q := r.URL.Query()
	var err error
	if from, err = dayParam(q, "from", from); err != nil {
		return dayRange{}, err
	}
	last, err := dayParam(q, "to", to.AddDate(0, 0, -1))
	if err != nil {
		return dayRange{}, err
	}
	to = last.AddDate(0, 0, 1)
	if !from.Before(to) {
		return dayRange{}, fb.Invalid("to", "the range must end on or after its first day")
	}
	if to.Sub(from) > 366*24*time.Hour {
		return dayRange{}, fb.Invalid("from", "the range is at most 366 days")
	}
	return dayRange{from, to, last}, nil
}

// form is the range's filter form, on the page at action.
func (d dayRange) form(action string) ui.Form {
	return ui.Form{Action: action, Method: "get", Submit: "Show", Fields: []ui.Field{
		{Name: "from", Label: "From", Type: "date", Value: d.from.Format(time.DateOnly)},
		{Name: "to", Label: "to", Type: "date", Value: d.last.Format(time.DateOnly)}}}
}

// query is the range as a URL's query, for links that keep it.
func (d dayRange) query() string {
	return "?" + url.Values{"from": {d.from.Format(time.DateOnly)}, "to": {d.last.Format(time.DateOnly)}}.Encode()
}

func (d dayRange) String() string { return day(d.from) + " – " + day(d.last) }

// campaignRow is a campaign with its stats over a range.
type campaignRow struct {
	c  fb.Campaign
	st fb.CampaignStats
}

// withStats reads each campaign's stats over d, and their sums.
func (p *pages) withStats(ctx context.Context, cs []fb.Campaign, d dayRange) ([]campaignRow, fb.CampaignStats, error) {
	var rows []campaignRow
	var sum fb.CampaignStats
	for _, c := range cs {
		st, err := p.Campaigns.Stats(ctx, c.ID, d.from, d.to)
		if err != nil {
			return nil, sum, err
		}
		rows = append(rows, campaignRow{c, st})
		sum.Impressions += st.Impressions
		sum.Clicks += st.Clicks
		if sum.Spend, err = sum.Spend.Add(st.Spend); err != nil {
			return nil, sum, err
		}
	}
	return rows, sum, nil
}

func status(c fb.Campaign) string {
	if c.Active {
		return "active"
	}
	return "paused"
}

// ctr is clicks ÷ impressions as a percentage with one decimal, rounded
// down (integers only).
func ctr(st fb.CampaignStats) string {
	if st.Impressions == 0 {
		return "—"
	}
	tenths := st.Clicks * 1000 / st.Impressions
	return strconv.FormatInt(tenths/10, 10) + "." + strconv.FormatInt(tenths%10, 10) + "%"
}

func creditsCell(a fb.Amount) ui.Cell {
	return ui.Cell{Text: ui.Credits(a), Sort: strconv.FormatInt(int64(a), 10)}
}
func usdCell(v fb.USD) ui.Cell {
	return ui.Cell{Text: ui.Dollars(v), Sort: strconv.FormatInt(int64(v), 10)}
}
func countCell(n int64) ui.Cell { return ui.Cell{Text: ui.Count(n), Sort: strconv.FormatInt(n, 10)} }

// campaignsTable lists campaigns with their stats; base is the URL their
// pages are under; withAdvertiser adds a column of advertisers, linked to
// their customer pages (the operator's).
func campaignsTable(rows []campaignRow, base string, d dayRange, withAdvertiser bool) ui.Table {
	t := ui.Table{Title: "Campaigns, " + d.String(), Name: "campaigns", Empty: "No campaigns yet: POST /api/v1/campaigns makes one."}
	t.Columns = []ui.Column{{Label: "Campaign", Key: "id"}}
	if withAdvertiser {
		t.Columns = append(t.Columns, ui.Column{Label: "Advertiser", Key: "advertiser"})
	}
	t.Columns = append(t.Columns, []ui.Column{{Label: "Status", Key: "status"}, {Label: "Topics", Key: "topics"},
		{Label: "Per impression", Num: true, Key: "bid_per_impression"}, {Label: "Per click", Num: true, Key: "bid_per_click"},
		{Label: "Daily budget", Num: true, Key: "daily_budget"}, {Label: "Impressions", Num: true, Key: "impressions"},
		{Label: "Clicks", Num: true, Key: "clicks"}, {Label: "CTR", Num: true, Key: "ctr"}, {Label: "Spend", Num: true, Key: "spend"}}...)
	for _, r := range rows {
		row := []ui.Cell{{Text: r.c.ID, Href: base + "/" + r.c.ID + d.query()}}
		if withAdvertiser {
			row = append(row, ui.Cell{Text: r.c.Advertiser, Href: "/ui/admin/customers/" + r.c.Advertiser})
		}
		row = append(row, ui.Cell{Text: status(r.c)}, ui.Cell{Text: strings.Join(r.c.Topics, ", ")},
			creditsCell(r.c.BidPerImpression), creditsCell(r.c.BidPerClick), creditsCell(r.c.DailyBudget),
			countCell(r.st.Impressions), countCell(r.st.Clicks), ui.Cell{Text: ctr(r.st)}, creditsCell(r.st.Spend))
		t.Rows = append(t.Rows, row)
	}
	return t
}

func statsCards(st fb.CampaignStats, d dayRange) ui.Cards {
	return ui.Cards{
		{Label: "Impressions", Value: ui.Count(st.Impressions), Note: d.String(), Figure: "impressions"},
		{Label: "Clicks", Value: ui.Count(st.Clicks), Note: "click-through " + ctr(st), Figure: "clicks"},
		{Label: "Spend", Value: ui.Credits(st.Spend), Note: "credits", Figure: "spend"},
	}
}

// econTableOf is an economics report's rows as a table.
func econTableOf(title, name, keyLabel string, rows []economics.Row, label func(string) string) ui.Table {
	t := ui.Table{Title: title, Name: name, Empty: "No usage in this range.", Columns: []ui.Column{{Label: keyLabel, Key: "key"},
		{Label: "Requests", Num: true, Key: "requests"}, {Label: "Revenue", Num: true, Key: "revenue_usd"},
		{Label: "Inference cost", Num: true, Key: "cost_usd"}, {Label: "Margin", Num: true, Key: "margin_usd"},
		{Label: "Margin %", Num: true, Key: "margin_pct"}, {Label: "Credits", Num: true, Key: "credits_consumed"}}}
	for _, r := range rows {
		t.Rows = append(t.Rows, []ui.Cell{{Text: label(r.Key)}, countCell(r.Requests), usdCell(r.RevenueUSD), usdCell(r.CostUSD),
			usdCell(r.MarginUSD), {Text: pct(r.MarginPct)}, creditsCell(r.CreditsConsumed)})
	}
	return t
}

// adminList is the operator's campaigns page.
func (p *pages) adminList(r *ui.Request) (*ui.View, error) {
	d, err := rangeOf(r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	cs, err := p.Campaigns.List(ctx)
	if err != nil {
		return nil, err
	}
	rows, sum, err := p.withStats(ctx, cs, d)
	if err != nil {
		return nil, err
	}
	byProduct, _, err := economics.Read(ctx, p.Store, fb.EconFilter{From: d.from, To: d.to, GroupBy: fb.GroupProduct}, p.Economics)
	if err != nil {
		return nil, err
	}
	byPlan, _, err := economics.Read(ctx, p.Store, fb.EconFilter{From: d.from, To: d.to, GroupBy: fb.GroupPlan}, p.Economics)
	if err != nil {
		return nil, err
	}
	plans, err := p.Store.Plans(ctx)
	if err != nil {
		return nil, err
	}
	sponsoredPlan := map[string]bool{}
	for _, pl := range plans {
		sponsoredPlan[pl.ID] = pl.Sponsored
	}
	var ads economics.Row
	for _, row := range byProduct {
		if row.Key == fb.ProductAds {
			ads = row
		}
	}
	active := 0
	for _, c := range cs {
		if c.Active {
			active++
		}
	}
	cards := ui.Cards{
		{Label: "Ad revenue", Value: ui.Dollars(ads.RevenueUSD), Note: d.String(), Figure: "ad_revenue_usd"},
		{Label: "Ad credits spent", Value: ui.Credits(ads.CreditsConsumed), Note: "by advertisers", Figure: "ad_credits"},
		{Label: "Impressions", Value: ui.Count(sum.Impressions), Note: "of the campaigns below", Figure: "impressions"},
		{Label: "Clicks", Value: ui.Count(sum.Clicks), Note: "click-through " + ctr(sum), Figure: "clicks"},
		{Label: "Active campaigns", Value: ui.Count(int64(active)), Note: "of " + ui.Count(int64(len(cs))), Figure: "active"},
	}
	planLabel := func(k string) string {
		switch {
		case k == "":
			return "(no plan)"
		case sponsoredPlan[k]:
			return k + " (sponsored)"
		}
		return k
	}
	// The sponsored plans first: the free tier whose inference the ads
	// pay for.
	slices.SortStableFunc(byPlan, func(a, b economics.Row) int {
		switch sa, sb := sponsoredPlan[a.Key], sponsoredPlan[b.Key]; {
		case sa && !sb:
			return -1
		case sb && !sa:
			return 1
		}
		return 0
	})
	return &ui.View{Title: "Campaigns", Sections: []ui.Section{
		d.form("/ui/admin/campaigns"),
		cards,
		campaignsTable(rows, "/ui/admin/campaigns", d, true),
		econTableOf("By plan: inference cost against revenue, ads included", "plan", "Plan", byPlan, planLabel),
		ui.Note("A sponsored plan's revenue is what its customers paid plus the ad revenue its answers carried (an ad counts under the plan of the request that showed it, and under its advertiser by customer); its inference cost is what its requests cost the providers. So a free tier's row is its inference cost against the ads that pay for it."),
		econTableOf("By product", "product", "Product", byProduct, func(k string) string { return k }),
	}}, nil
}

// advertiserList is an advertiser's own campaigns.
func (p *pages) advertiserList(r *ui.Request) (*ui.View, error) {
	adv, err := mustCustomer(r)
	if err != nil {
		return nil, err
	}
	d, err := rangeOf(r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	all, err := p.Campaigns.List(ctx)
	if err != nil {
		return nil, err
	}
	var own []fb.Campaign
	for _, c := range all {
		if c.Advertiser == adv {
			own = append(own, c)
		}
	}
	rows, sum, err := p.withStats(ctx, own, d)
	if err != nil {
		return nil, err
	}
	a, err := p.Store.Account(ctx, adv)
	if err != nil {
		return nil, err
	}
	bal := ledger.BalanceAt(a, r.Now)
	cards := append(ui.Cards{{Label: "Available", Value: ui.Credits(bal.Available), Note: "credits to pay for impressions and clicks", Figure: "available"}},
		statsCards(sum, d)...)
	return &ui.View{Title: "Campaigns", Sections: []ui.Section{
		d.form("/ui/account/campaigns"),
		cards,
		campaignsTable(rows, "/ui/account/campaigns", d, false),
		ui.Note("An impression is charged its bid once the answer carrying it was delivered; a click once per suggestion, however often its link is followed; neither ever past a campaign's daily budget. No text of the requests is kept: only the campaign, its topic and the decision score."),
	}}, nil
}

// maxChartDays bounds a campaign page's per-day figures (one stats read
// a day).
const maxChartDays = 92

// campaignView is a campaign's page: its stats over the range, per day,
// and what it is.
func (p *pages) campaignView(r *ui.Request, c fb.Campaign, d dayRange, admin bool) (*ui.View, error) {
	ctx := r.Context()
	st, err := p.Campaigns.Stats(ctx, c.ID, d.from, d.to)
	if err != nil {
		return nil, err
	}
	today := r.Now.UTC().Truncate(24 * time.Hour)
	spentToday, err := p.Campaigns.Stats(ctx, c.ID, today, today.AddDate(0, 0, 1))
	if err != nil {
		return nil, err
	}
	cards := append(statsCards(st, d), ui.Card{Label: "Spent today", Value: ui.Credits(spentToday.Spend),
		Note: "daily budget " + ui.Credits(c.DailyBudget), Figure: "spent_today"})
	sections := []ui.Section{d.form(r.URL.Path), cards}

	if days := int(d.to.Sub(d.from) / (24 * time.Hour)); days <= maxChartDays {
		var labels, titles []string
		spend, impressions, clicks := make([]int64, days), make([]int64, days), make([]int64, days)
		t := ui.Table{Title: "Per day", Name: "days", Columns: []ui.Column{{Label: "Day", Key: "day"}, {Label: "Impressions", Num: true, Key: "impressions"},
			{Label: "Clicks", Num: true, Key: "clicks"}, {Label: "Spend", Num: true, Key: "spend"}}}
		for i := range days {
			from := d.from.AddDate(0, 0, i)
			ds, err := p.Campaigns.Stats(ctx, c.ID, from, from.AddDate(0, 0, 1))
			if err != nil {
				return nil, err
			}
			labels = append(labels, strconv.Itoa(from.Day()))
			titles = append(titles, from.Format("2 Jan 2006"))
			spend[i], impressions[i], clicks[i] = int64(ds.Spend), ds.Impressions, ds.Clicks
			if ds != (fb.CampaignStats{}) {
				t.Rows = append(t.Rows, []ui.Cell{{Text: from.Format(time.DateOnly)}, countCell(ds.Impressions), countCell(ds.Clicks), creditsCell(ds.Spend)})
			}
		}
		t.Empty = "Nothing charged in this range."
		sections = append(sections,
			ui.ChartSection{Title: "Spend per day (credits)", SVG: ui.StackedBars(ui.Chart{Title: "Spend per day (credits)", Labels: labels, Titles: titles,
				Series: []ui.Series{{Name: "Spend", Values: spend}}, Format: func(v int64) string { return ui.Credits(fb.Amount(v)) }})},
			ui.ChartSection{Title: "Impressions and clicks per day", SVG: ui.Lines(ui.Chart{Title: "Impressions and clicks per day", Labels: labels, Titles: titles,
				Series: []ui.Series{{Name: "Impressions", Values: impressions}, {Name: "Clicks", Values: clicks, Color: "#d97706"}}, Format: ui.Count})},
			t)
	} else {
		sections = append(sections, ui.Note("Choose "+strconv.Itoa(maxChartDays)+" days or fewer to see the figures per day."))
	}

	details := ui.Table{Title: "The campaign", Name: "campaign", Columns: []ui.Column{{Label: "Field"}, {Label: "Value", Key: "value"}}}
	adv := ui.Cell{Text: c.Advertiser}
	if admin {
		adv.Href = "/ui/admin/customers/" + c.Advertiser
	}
	none := func(ss []string) string {
		if len(ss) == 0 {
			return "—"
		}
		return strings.Join(ss, ", ")
	}
	capText := "none"
	if c.FrequencyCap > 0 {
		capText = ui.Count(c.FrequencyCap) + " a day per end user"
	}
	for _, f := range []struct {
		name string
		cell ui.Cell
	}{
		{"Status", ui.Cell{Text: status(c)}}, {"Advertiser", adv}, {"Title", ui.Cell{Text: c.Title}}, {"Text", ui.Cell{Text: c.Text}},
		{"Links to", ui.Cell{Text: c.URL}}, {"Topics", ui.Cell{Text: none(c.Topics)}}, {"Phrases", ui.Cell{Text: none(c.Phrases)}},
		{"Excluded topics", ui.Cell{Text: none(c.ExcludeTopics)}}, {"Bid per impression", ui.Cell{Text: ui.Credits(c.BidPerImpression) + " credits"}},
		{"Bid per click", ui.Cell{Text: ui.Credits(c.BidPerClick) + " credits"}}, {"Daily budget", ui.Cell{Text: ui.Credits(c.DailyBudget) + " credits"}},
		{"Frequency cap", ui.Cell{Text: capText}}, {"Created", ui.Cell{Text: stamp(c.CreatedAt)}}, {"Changed", ui.Cell{Text: stamp(c.UpdatedAt)}},
	} {
		details.Rows = append(details.Rows, []ui.Cell{{Text: f.name}, f.cell})
	}
	sections = append(sections, details)
	if admin {
		sections = append(sections, ui.Form{Title: "Pause or resume", Action: "/ui/admin/campaigns/" + c.ID + "/active", Submit: "Save",
			Fields: []ui.Field{{Name: "status", Label: "Status", Type: "select", Value: status(c), Options: []string{"active", "paused"}}}},
			ui.Note("A paused campaign is shown nowhere; the links it already showed still redirect, and charge their click."))
	}
	return &ui.View{Title: "Campaign " + c.ID, Sections: sections}, nil
}

func campaignID(r *ui.Request) (string, error) {
	id := r.PathValue("id")
	if !validID(id) {
		return "", fb.Errorf(fb.ENotFound, "no campaign %q", id)
	}
	return id, nil
}

func (p *pages) adminCampaign(r *ui.Request) (*ui.View, error) {
	id, err := campaignID(r)
	if err != nil {
		return nil, err
	}
	d, err := rangeOf(r)
	if err != nil {
		return nil, err
	}
	c, err := p.Campaigns.Get(r.Context(), id)
	if err != nil {
		return nil, err
	}
	return p.campaignView(r, c, d, true)
}

// advertiserCampaign is one of the advertiser's own campaigns; another's
// is not found.
func (p *pages) advertiserCampaign(r *ui.Request) (*ui.View, error) {
	adv, err := mustCustomer(r)
	if err != nil {
		return nil, err
	}
	id, err := campaignID(r)
	if err != nil {
		return nil, err
	}
	d, err := rangeOf(r)
	if err != nil {
		return nil, err
	}
	c, err := p.Campaigns.Get(r.Context(), id)
	if fb.ErrorType(err) == fb.ENotFound || err == nil && c.Advertiser != adv {
		return nil, fb.Errorf(fb.ENotFound, "no campaign %q", id)
	}
	if err != nil {
		return nil, err
	}
	return p.campaignView(r, c, d, false)
}

// setActive is the operator's pause or resume of a campaign: the same
// change as PATCH /api/v1/campaigns/{id} {"active": …}.
func (p *pages) setActive(r *ui.Request) (*ui.View, error) {
	id, err := campaignID(r)
	if err != nil {
		return nil, err
	}
	var active bool
	switch r.PostFormValue("status") {
	case "active":
		active = true
	case "paused":
	default:
		return nil, fb.Invalid("status", "status must be active or paused")
	}
	c, err := p.Campaigns.Update(r.Context(), id, func(c *fb.Campaign) error {
		c.Active = active
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &ui.View{Redirect: "/ui/admin/campaigns/" + id, Flash: "Campaign " + id + " is " + status(c) + "."}, nil
}

// last30 is the API's default report range: the last 30 UTC days, today
// included.
func last30(now time.Time) (time.Time, time.Time) {
	today := now.UTC().Truncate(24 * time.Hour)
	return today.AddDate(0, 0, -29), today.AddDate(0, 0, 1)
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

func day(t time.Time) string { return t.UTC().Format("2 Jan 2006") }

func stamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2 Jan 2006 15:04:05 UTC")
}

func pct(p *string) string {
	if p == nil {
		return "—"
	}
	return *p + "%"
}

// mustCustomer is the customer a customer page's session is of.
func mustCustomer(r *ui.Request) (string, error) {
	if r.Session.Customer == "" {
		return "", fb.Errorf(fb.EForbidden, "this page is for customers")
	}
	return r.Session.Customer, nil
}

// validID: ids of campaigns are the API's (1 to 64 letters, digits, _ - .).
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
