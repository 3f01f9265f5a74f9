package campaigns_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"farebox/ui/uitest"
)

// TestBrowserCampaigns drives the campaign pages in headless Chromium: the
// advertiser's and the operator's, their figures equal to the API's, every
// page fitting 1280 and 390 px (screenshots as artifacts).
func TestBrowserCampaigns(t *testing.T) {
	path := uitest.Chromium(t)
	e := newSponsoredEnv(t)
	b := uitest.NewTab(t, path, e.URL)
	b.Small = true // the README's pictures
	from, to := e.today.AddDate(0, 0, -29), e.today.AddDate(0, 0, 1)

	b.Open("/", "#secret")
	b.Do(chromedp.SendKeys(chromedp.CSS("#secret"), e.shopKey+"\r"), chromedp.WaitVisible(chromedp.CSS(`[data-figure=available]`)))
	b.Do(chromedp.Click(chromedp.CSS(`nav a[href="/ui/account/campaigns"]`)), chromedp.WaitVisible(chromedp.CSS(`table[data-table=campaigns]`)))
	st := e.stats("laptops", from, to)
	cell := func(table, key, col string) string {
		sel := `table[data-table=` + table + `] a[href^="` + key + `"]`
		return uitest.Figure(uitest.Eval[string](b, `document.querySelector(`+uitest.JS(sel)+`).closest("tr").querySelector("[data-col=`+col+`]").textContent`))
	}
	if got := cell("campaigns", "/ui/account/campaigns/laptops", "spend"); got != st.Spend {
		t.Errorf("laptops' spend in the advertiser's table = %q; the API's = %q", got, st.Spend)
	}
	b.Shot("advertiser-campaigns")
	b.Do(chromedp.Click(chromedp.CSS(`a[href^="/ui/account/campaigns/laptops"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-figure=spent_today]`)))
	if got := uitest.Figure(b.Text(`[data-figure=impressions] .value`)); got != fmt.Sprint(st.Impressions) {
		t.Errorf("laptops' impressions on its page = %q; the API's = %d", got, st.Impressions)
	}
	b.Shot("advertiser-campaign")
	b.Do(chromedp.Click(chromedp.CSS(`form[action="/ui/signout"] button`)), chromedp.WaitVisible(chromedp.CSS("#secret")))

	b.Do(chromedp.SendKeys(chromedp.CSS("#secret"), adminToken+"\r"), chromedp.WaitVisible(chromedp.CSS(`[data-figure=revenue_usd]`)))
	b.Do(chromedp.Click(chromedp.CSS(`nav a[href="/ui/admin/campaigns"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-figure=ad_revenue_usd]`)))
	var r struct{ Rows []map[string]any }
	e.JSON("/api/v1/reports/economics?group_by=product&from="+from.Format(time.DateOnly)+"&to="+to.Format(time.DateOnly), &r)
	for _, row := range r.Rows {
		if row["key"] == "ads" {
			if got := uitest.Figure(b.Text(`[data-figure=ad_revenue_usd] .value`)); got != row["revenue_usd"] {
				t.Errorf("ad revenue on the page = %q; the API's = %v", got, row["revenue_usd"])
			}
		}
	}
	b.Shot("operator-campaigns")
	b.Do(chromedp.Click(chromedp.CSS(`table[data-table=campaigns] a[href^="/ui/admin/campaigns/laptops"]`)), chromedp.WaitVisible(chromedp.CSS(`form[action="/ui/admin/campaigns/laptops/active"]`)))
	b.Do(chromedp.SetValue(chromedp.CSS("#f-status"), "paused"), chromedp.Click(chromedp.CSS(`form[action="/ui/admin/campaigns/laptops/active"] button`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")))
	if flash := b.Text(".flash"); flash != "Campaign laptops is paused." {
		t.Errorf("after the pause: %q", flash)
	}
	b.Shot("operator-campaign")
}
