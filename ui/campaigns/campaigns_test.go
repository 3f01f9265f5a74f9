package campaigns_test

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"farebox/ui/uitest"
)

// sponsoredEnv is the env with sponsored suggestions: a free plan that
// carries them and a customer "free" on it (promo credits), two
// advertisers — shop (1,000 credits bought for $10) with campaigns laptops
// and monitors, travel with hotels — and, over two days, decision moments
// that showed them, one link followed twice.
type sponsoredEnv struct {
	*env
	freeKey, shopKey string
	yesterday, today time.Time
}

func newSponsoredEnv(t *testing.T) *sponsoredEnv {
	e := &sponsoredEnv{env: newEnv(t)}
	e.API("POST", "/api/v1/plans", `{"id": "free", "name": "Free", "models": ["*"], "sponsored": true}`, 201)
	e.API("POST", "/api/v1/customers", `{"id": "free", "name": "Free user", "plan": "free"}`, 201)
	e.API("POST", "/api/v1/customers/free/grants", `{"amount": "100", "source": "promo", "idempotency_key": "free-1"}`, 201)
	e.freeKey, _ = e.Key("free", `{"name": "app"}`)
	for _, adv := range []string{`{"id": "shop", "name": "Shop"}`, `{"id": "travel", "name": "Travel"}`} {
		e.API("POST", "/api/v1/advertisers", adv, 201)
	}
	e.API("POST", "/api/v1/customers/shop/grants", `{"amount": "1000", "source": "purchase", "paid_usd": "10", "idempotency_key": "shop-1"}`, 201)
	e.API("POST", "/api/v1/customers/travel/grants", `{"amount": "100", "source": "purchase", "paid_usd": "1", "idempotency_key": "travel-1"}`, 201)
	e.shopKey, _ = e.Key("shop", `{"name": "dashboard"}`)
	for _, c := range []string{
		`{"id": "laptops", "advertiser": "shop", "topics": ["laptops"], "phrases": ["laptop", "notebook"], "title": "Laptops at Shop",
		  "text": "Every laptop, tested.", "url": "https://shop.example/laptops", "bid_per_impression": "0.5", "bid_per_click": "2", "daily_budget": "100"}`,
		`{"id": "monitors", "advertiser": "shop", "topics": ["monitors"], "phrases": ["monitor", "screen"], "title": "Monitors at Shop",
		  "url": "https://shop.example/monitors", "bid_per_impression": "0.25", "bid_per_click": "1", "daily_budget": "10"}`,
		`{"id": "hotels", "advertiser": "travel", "topics": ["hotels"], "phrases": ["hotel"], "title": "Hotels by Travel",
		  "url": "https://travel.example/", "bid_per_impression": "0.1", "bid_per_click": "0.5", "daily_budget": "5"}`,
	} {
		e.API("POST", "/api/v1/campaigns", c, 201)
	}
	e.yesterday = e.clock.Now().UTC().Truncate(24 * time.Hour)
	for range 2 {
		e.mustAsk("Which laptop should I buy for university?", true)
	}
	// Charged yesterday, before the clock moves on.
	e.waitStats("laptops", 2, 0)
	e.clock.Advance(24 * time.Hour)
	e.today = e.clock.Now().UTC().Truncate(24 * time.Hour)
	link := e.mustAsk("Welke laptop moet ik kopen voor mijn studie?", true)
	e.mustAsk("Which monitor should I buy for photo editing?", true)
	e.mustAsk("Which hotel should I book in Rome?", true)
	e.mustAsk("Write a poem about autumn.", false)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for range 2 {
		res, err := noFollow.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusFound {
			t.Fatalf("the click link: %d", res.StatusCode)
		}
	}
	// An impression is charged just after its answer reached the client.
	e.waitStats("laptops", 3, 1)
	e.waitStats("monitors", 1, 0)
	e.waitStats("hotels", 1, 0)
	return e
}

// mustAsk sends a chat as the free customer and returns its suggestion's
// link ("" when it carries none, as wanted says).
func (e *sponsoredEnv) mustAsk(text string, want bool) string {
	e.T.Helper()
	b := e.Chat(e.freeKey, "gpt-4o-mini", text, 50)
	var out struct {
		Suggestion *struct{ URL string } `json:"farebox_suggestion"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		e.T.Fatalf("chat %q: %s", text, b)
	}
	if (out.Suggestion != nil) != want {
		e.T.Fatalf("chat %q: a suggestion %v, want %v", text, out.Suggestion != nil, want)
	}
	if out.Suggestion == nil {
		return ""
	}
	return out.Suggestion.URL
}

type stats struct {
	Impressions, Clicks int64
	Spend               string
}

func (e *sponsoredEnv) stats(campaign string, from, to time.Time) stats {
	e.T.Helper()
	var st stats
	e.JSON("/api/v1/campaigns/"+campaign+"/stats?from="+from.Format(time.DateOnly)+"&to="+to.Format(time.DateOnly), &st)
	return st
}

func (e *sponsoredEnv) waitStats(campaign string, impressions, clicks int64) {
	e.T.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var st stats
		e.JSON("/api/v1/campaigns/"+campaign+"/stats", &st)
		if st.Impressions == impressions && st.Clicks == clicks {
			return
		}
		if time.Now().After(deadline) {
			e.T.Fatalf("%s: %+v, want %d impressions and %d clicks", campaign, st, impressions, clicks)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// figureOf is the value of the card data-figure=name of a page, as the
// API writes it (figure drops the separators).
func figureOf(t *testing.T, page, name string) string {
	t.Helper()
	m := regexp.MustCompile(`data-figure="` + regexp.QuoteMeta(name) + `"><div class="label">[^<]*</div><div class="value">([^<]*)</div>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no figure %s in the page", name)
	}
	return uitest.Figure(html.UnescapeString(m[1]))
}

var tags = regexp.MustCompile(`<[^>]*>`)

// rowsOf are the rows of the table data-table=name: each its cells'
// texts by data-col, and "" its first cell's.
func rowsOf(t *testing.T, page, name string) []map[string]string {
	t.Helper()
	start := strings.Index(page, `data-table="`+name+`"`)
	if start < 0 {
		t.Fatalf("no table %s in the page", name)
	}
	body := page[start:]
	body = body[strings.Index(body, "<tbody>"):strings.Index(body, "</tbody>")]
	var out []map[string]string
	cell := regexp.MustCompile(`<td([^>]*)>(.*?)</td>`)
	col := regexp.MustCompile(`data-col="([^"]*)"`)
	for _, tr := range strings.Split(body, "<tr>")[1:] {
		row := map[string]string{}
		for i, m := range cell.FindAllStringSubmatch(tr, -1) {
			text := strings.TrimSpace(html.UnescapeString(tags.ReplaceAllString(m[2], "")))
			if i == 0 {
				row[""] = text
			}
			if c := col.FindStringSubmatch(m[1]); c != nil {
				row[c[1]] = text
			}
		}
		if !strings.Contains(tr, `class="empty"`) {
			out = append(out, row)
		}
	}
	return out
}

func rowOf(t *testing.T, rows []map[string]string, key string) map[string]string {
	t.Helper()
	for _, r := range rows {
		if r[""] == key {
			return r
		}
	}
	t.Fatalf("no row %q in %v", key, rows)
	return nil
}

// TestCampaignPagesOperator: the operator's campaigns page lists every
// campaign with its stats, the ad revenue, and the economics by plan (the
// free tier's inference cost beside the ad revenue its answers carried)
// and by product, each figure equal to the API's; a campaign's page shows
// its stats over the range and per day, equal to the API's, and pauses
// it with its form, which is refused without its CSRF token.
func TestCampaignPagesOperator(t *testing.T) {
	e := newSponsoredEnv(t)
	b := e.Browser()
	if code, _ := b.SignIn(adminToken); code != http.StatusSeeOther {
		t.Fatal("the operator's sign-in")
	}
	from, to := e.today.AddDate(0, 0, -29), e.today.AddDate(0, 0, 1)
	res, page := b.Do("GET", "/ui/admin/campaigns", nil)
	if res.StatusCode != 200 || !strings.Contains(page, `<a href="/ui/admin/campaigns" aria-current="page">Campaigns</a>`) {
		t.Fatalf("GET /ui/admin/campaigns: %d, or Campaigns is not in the navigation", res.StatusCode)
	}
	var sum stats
	rows := rowsOf(t, page, "campaigns")
	if len(rows) != 3 {
		t.Errorf("%d campaigns listed, want 3", len(rows))
	}
	for _, id := range []string{"hotels", "laptops", "monitors"} {
		st := e.stats(id, from, to)
		sum.Impressions += st.Impressions
		sum.Clicks += st.Clicks
		r := rowOf(t, rows, id)
		for col, want := range map[string]string{"impressions": fmt.Sprint(st.Impressions), "clicks": fmt.Sprint(st.Clicks), "spend": st.Spend} {
			if got := uitest.Figure(r[col]); got != want {
				t.Errorf("%s's %s on the page = %q; the API's = %q", id, col, got, want)
			}
		}
	}
	if r := rowOf(t, rows, "laptops"); r["advertiser"] != "shop" || r["status"] != "active" || r["bid_per_impression"] != "0.5" || r["daily_budget"] != "100" || r["ctr"] != "33.3%" {
		t.Errorf("the laptops row %v", r)
	}
	if got := figureOf(t, page, "impressions"); got != fmt.Sprint(sum.Impressions) || got != "5" {
		t.Errorf("impressions on the page = %q; the API's sum = %d (want 5)", got, sum.Impressions)
	}
	if got := figureOf(t, page, "clicks"); got != fmt.Sprint(sum.Clicks) {
		t.Errorf("clicks on the page = %q; the API's = %d", got, sum.Clicks)
	}

	report := func(groupBy string) map[string]map[string]any {
		var r struct{ Rows []map[string]any }
		e.JSON("/api/v1/reports/economics?group_by="+groupBy+"&from="+from.Format(time.DateOnly)+"&to="+to.Format(time.DateOnly), &r)
		out := map[string]map[string]any{}
		for _, row := range r.Rows {
			out[row["key"].(string)] = row
		}
		return out
	}
	byProduct, byPlan := report("product"), report("plan")
	// 3 laptop, 1 monitor and 1 hotel impressions and a laptop click at
	// $0.01 a credit (both advertisers paid that): 1.5 + 0.25 + 0.1 + 2
	// credits.
	if ads := byProduct["ads"]; ads == nil || ads["revenue_usd"] != "0.0385" || ads["credits_consumed"] != "3.85" {
		t.Fatalf("the API's ads row %v; want $0.0385 of 3.85 credits", ads)
	}
	if got := figureOf(t, page, "ad_revenue_usd"); got != byProduct["ads"]["revenue_usd"] {
		t.Errorf("ad revenue on the page = %q; the API's = %v", got, byProduct["ads"]["revenue_usd"])
	}
	if got := figureOf(t, page, "ad_credits"); got != byProduct["ads"]["credits_consumed"] {
		t.Errorf("ad credits on the page = %q; the API's = %v", got, byProduct["ads"]["credits_consumed"])
	}
	for table, rep := range map[string]map[string]map[string]any{"plan": byPlan, "product": byProduct} {
		rows := rowsOf(t, page, table)
		if len(rows) != len(rep) {
			t.Errorf("table %s has %d rows; the API's report %d", table, len(rows), len(rep))
		}
		for key, want := range rep {
			label := key
			if table == "plan" && key == "free" {
				label = "free (sponsored)"
			}
			if table == "plan" && key == "" {
				label = "(no plan)"
			}
			r := rowOf(t, rows, label)
			for _, col := range []string{"requests", "revenue_usd", "cost_usd", "margin_usd", "credits_consumed"} {
				if got := uitest.Figure(r[col]); got != fmt.Sprint(want[col]) {
					t.Errorf("by %s, %s's %s on the page = %q; the API's = %v", table, key, col, got, want[col])
				}
			}
		}
	}
	// The free tier's row: the ad revenue beside its inference cost.
	if free := byPlan["free"]; free["revenue_usd"] != "0.0385" || free["cost_usd"] == "0" {
		t.Errorf("the API's free plan row %v: want the ad revenue and an inference cost", free)
	}

	// The customers' list tells advertisers apart.
	if _, page := b.Do("GET", "/ui/admin/customers?q=shop", nil); !strings.Contains(page, `data-kind="advertiser"`) {
		t.Error("the customers' list does not say shop is an advertiser")
	}
	if _, page := b.Do("GET", "/ui/admin/customers?q=acme", nil); strings.Contains(page, `data-kind="advertiser"`) {
		t.Error("the customers' list says acme is an advertiser")
	}

	// A campaign's page.
	res, page = b.Do("GET", "/ui/admin/campaigns/laptops", nil)
	if res.StatusCode != 200 {
		t.Fatalf("GET /ui/admin/campaigns/laptops: %d", res.StatusCode)
	}
	st := e.stats("laptops", from, to)
	for name, want := range map[string]string{"impressions": fmt.Sprint(st.Impressions), "clicks": fmt.Sprint(st.Clicks), "spend": st.Spend,
		"spent_today": e.stats("laptops", e.today, to).Spend} {
		if got := figureOf(t, page, name); got != want {
			t.Errorf("laptops' %s on its page = %q; the API's = %q", name, got, want)
		}
	}
	days := rowsOf(t, page, "days")
	if len(days) != 2 {
		t.Errorf("%d days with charges listed, want 2", len(days))
	}
	for _, d := range []time.Time{e.yesterday, e.today} {
		want := e.stats("laptops", d, d.AddDate(0, 0, 1))
		r := rowOf(t, days, d.Format(time.DateOnly))
		if uitest.Figure(r["impressions"]) != fmt.Sprint(want.Impressions) || uitest.Figure(r["clicks"]) != fmt.Sprint(want.Clicks) || uitest.Figure(r["spend"]) != want.Spend {
			t.Errorf("laptops on %s: the page says %v; the API %+v", d.Format(time.DateOnly), r, want)
		}
	}
	if !strings.Contains(page, `<svg`) || !strings.Contains(page, "Spend per day") {
		t.Error("the campaign's page has no chart")
	}
	// A range: yesterday only.
	q := "?from=" + e.yesterday.Format(time.DateOnly) + "&to=" + e.yesterday.Format(time.DateOnly)
	_, page = b.Do("GET", "/ui/admin/campaigns/laptops"+q, nil)
	if got, want := figureOf(t, page, "impressions"), e.stats("laptops", e.yesterday, e.today).Impressions; got != fmt.Sprint(want) || got != "2" {
		t.Errorf("yesterday's impressions on the page = %q; the API's = %d (want 2)", got, want)
	}
	if res, _ := b.Do("GET", "/ui/admin/campaigns/laptops?from=soon", nil); res.StatusCode != 400 {
		t.Errorf("a bad range: %d, want 400", res.StatusCode)
	}
	if res, _ := b.Do("GET", "/ui/admin/campaigns/nope", nil); res.StatusCode != 404 {
		t.Errorf("an unknown campaign: %d, want 404", res.StatusCode)
	}

	// Pausing it: refused without the CSRF token, done with it.
	if res, _ := b.Do("POST", "/ui/admin/campaigns/laptops/active", url.Values{"status": {"paused"}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("the pause without its CSRF token: %d, want 403", res.StatusCode)
	}
	res, _ = b.Do("POST", "/ui/admin/campaigns/laptops/active", url.Values{"status": {"paused"}, "csrf": {b.CSRF("/ui/admin/campaigns/laptops")}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the pause: %d", res.StatusCode)
	}
	var c struct{ Active bool }
	e.JSON("/api/v1/campaigns/laptops", &c)
	if c.Active {
		t.Error("the campaign is still active after the pause")
	}
	if _, page := b.Do("GET", "/ui/admin/campaigns/laptops", nil); !strings.Contains(page, "Campaign laptops is paused.") {
		t.Error("no flash after the pause")
	}
	e.mustAsk("Which laptop should I buy for university?", false)
}

// TestCampaignPagesAdvertiser: an advertiser signed in with its key sees
// its own campaigns only, with its balance and stats equal to the API's;
// another advertiser's campaign is not found; a customer that is no
// advertiser has no campaign pages (not in its navigation, 404), and a
// customer is refused the operator's (403).
func TestCampaignPagesAdvertiser(t *testing.T) {
	e := newSponsoredEnv(t)
	b := e.Browser()
	if code, to := b.SignIn(e.shopKey); code != http.StatusSeeOther || to != "/ui/account" {
		t.Fatalf("the advertiser's sign-in: %d to %s", code, to)
	}
	from, to := e.today.AddDate(0, 0, -29), e.today.AddDate(0, 0, 1)
	res, page := b.Do("GET", "/ui/account/campaigns", nil)
	if res.StatusCode != 200 || !strings.Contains(page, `<a href="/ui/account/campaigns" aria-current="page">Campaigns</a>`) {
		t.Fatalf("GET /ui/account/campaigns: %d, or Campaigns is not in the navigation", res.StatusCode)
	}
	rows := rowsOf(t, page, "campaigns")
	if len(rows) != 2 {
		t.Errorf("%d campaigns listed, want shop's 2: %v", len(rows), rows)
	}
	var sum stats
	var spend []string
	for _, id := range []string{"laptops", "monitors"} {
		st := e.stats(id, from, to)
		sum.Impressions += st.Impressions
		sum.Clicks += st.Clicks
		spend = append(spend, st.Spend)
		r := rowOf(t, rows, id)
		if uitest.Figure(r["impressions"]) != fmt.Sprint(st.Impressions) || uitest.Figure(r["clicks"]) != fmt.Sprint(st.Clicks) || uitest.Figure(r["spend"]) != st.Spend {
			t.Errorf("%s on the page %v; the API's %+v", id, r, st)
		}
		if _, ok := r["advertiser"]; ok {
			t.Error("the advertiser's own list has an advertiser column")
		}
	}
	if strings.Contains(page, "hotels") {
		t.Error("another advertiser's campaign is listed")
	}
	if got := figureOf(t, page, "impressions"); got != fmt.Sprint(sum.Impressions) || got != "4" {
		t.Errorf("impressions on the page = %q; the API's sum = %d (want 4)", got, sum.Impressions)
	}
	if got := figureOf(t, page, "spend"); got != uitest.Plus(t, spend[0], spend[1]) || got != "3.75" {
		t.Errorf("spend on the page = %q; the API's sum = %s (want 3.75)", got, uitest.Plus(t, spend[0], spend[1]))
	}
	var bal struct{ Available string }
	e.JSON("/api/v1/customers/shop/balance", &bal)
	if got := figureOf(t, page, "available"); got != bal.Available || got != "996.25" {
		t.Errorf("available on the page = %q; the API's = %q (want 996.25)", got, bal.Available)
	}
	res, page = b.Do("GET", "/ui/account/campaigns/laptops", nil)
	st := e.stats("laptops", from, to)
	if res.StatusCode != 200 || figureOf(t, page, "spend") != st.Spend || figureOf(t, page, "clicks") != fmt.Sprint(st.Clicks) {
		t.Errorf("the advertiser's laptops page: %d; the API's %+v", res.StatusCode, st)
	}
	if strings.Contains(page, "/active") {
		t.Error("the advertiser's campaign page has the operator's pause form")
	}
	for path, want := range map[string]int{"/ui/account/campaigns/hotels": 404, "/ui/account/campaigns/nope": 404, "/ui/admin/campaigns": 403, "/ui/admin/campaigns/laptops": 403} {
		if res, _ := b.Do("GET", path, nil); res.StatusCode != want {
			t.Errorf("the advertiser on %s: %d, want %d", path, res.StatusCode, want)
		}
	}

	// A customer that is no advertiser.
	c := e.Browser()
	if code, _ := c.SignIn(e.acmeKey); code != http.StatusSeeOther {
		t.Fatal("acme's sign-in")
	}
	if _, page := c.Do("GET", "/ui/account", nil); strings.Contains(page, `href="/ui/account/campaigns"`) {
		t.Error("a customer's navigation offers campaigns")
	}
	for path, want := range map[string]int{"/ui/account/campaigns": 404, "/ui/account/campaigns/laptops": 404, "/ui/admin/campaigns": 403} {
		if res, _ := c.Do("GET", path, nil); res.StatusCode != want {
			t.Errorf("acme on %s: %d, want %d", path, res.StatusCode, want)
		}
	}
}
