package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	fb "farebox"
	"farebox/sponsored"
)

func TestServerAdvertisers(t *testing.T) {
	h := newHarness(t)
	r := h.expect(h.call("POST", "/api/v1/advertisers", `{"id":"shop","name":"Shop"}`), 201)
	if r.get("kind") != "advertiser" || r.get("sponsored_opt_out") != "false" || r.get("plan") != "<null>" {
		t.Errorf("advertiser %s", r.raw)
	}
	h.expect(h.call("POST", "/api/v1/advertisers", `{"id":"shop","name":"Shop"}`), 200)
	h.expectErr(h.call("POST", "/api/v1/advertisers", `{"id":"shop","name":"Other"}`), 409, fb.EConflict, "customer_exists", "")
	h.newCustomer("acme")
	// An advertiser's id is a customer's: a customer of that name clashes.
	h.expectErr(h.call("POST", "/api/v1/customers", `{"id":"shop","name":"Shop"}`), 409, fb.EConflict, "customer_exists", "")
	h.expectErr(h.call("POST", "/api/v1/advertisers", `{"id":"acme","name":"acme"}`), 409, fb.EConflict, "customer_exists", "")
	made := h.expect(h.call("POST", "/api/v1/advertisers", `{"name":"Nameless"}`), 201)
	if !strings.HasPrefix(made.get("id"), "adv_") {
		t.Errorf("made-up id %q", made.get("id"))
	}
	list := h.expect(h.call("GET", "/api/v1/customers", ""), 200)
	kinds := map[string]string{}
	for _, c := range list.body["data"].([]any) {
		m := c.(map[string]any)
		kinds[m["id"].(string)] = m["kind"].(string)
	}
	if kinds["shop"] != "advertiser" || kinds["acme"] != "customer" {
		t.Errorf("kinds %v", kinds)
	}
	// Granted and read like a customer.
	h.grant("shop", `{"amount":"100","source":"purchase","paid_usd":"1"}`)
	h.expectBalance("shop", "100", "0")
}

func TestServerCustomerOptOut(t *testing.T) {
	h := newHarness(t)
	h.newCustomer("acme")
	r := h.expect(h.call("PATCH", "/api/v1/customers/acme", `{"sponsored_opt_out":true}`), 200)
	if r.get("sponsored_opt_out") != "true" || r.get("kind") != "customer" {
		t.Errorf("PATCH: %s", r.raw)
	}
	if g := h.expect(h.call("GET", "/api/v1/customers/acme", ""), 200); g.get("sponsored_opt_out") != "true" {
		t.Errorf("GET after PATCH: %s", g.raw)
	}
	if r := h.expect(h.call("PATCH", "/api/v1/customers/acme", `{}`), 200); r.get("sponsored_opt_out") != "true" {
		t.Errorf("an empty PATCH changed it: %s", r.raw)
	}
	h.expect(h.call("PATCH", "/api/v1/customers/acme", `{"sponsored_opt_out":false}`), 200)
	h.expectErr(h.call("PATCH", "/api/v1/customers/acme", `{"name":"x"}`), 400, fb.EInvalid, fb.EInvalid, "name")
	h.expectErr(h.call("PATCH", "/api/v1/customers/acme", `{"sponsored_opt_out":"yes"}`), 400, fb.EInvalid, fb.EInvalid, "sponsored_opt_out")
	h.expectErr(h.call("PATCH", "/api/v1/customers/nobody", `{"sponsored_opt_out":true}`), 404, fb.ENotFound, "", "")
}

func TestServerPlanSponsored(t *testing.T) {
	h := newHarness(t)
	r := h.expect(h.call("POST", "/api/v1/plans", `{"id":"free","sponsored":true}`), 201)
	if r.get("sponsored") != "true" {
		t.Errorf("plan %s", r.raw)
	}
	if r := h.expect(h.call("POST", "/api/v1/plans", `{"id":"pro","price_usd":"20","credits":"2000"}`), 201); r.get("sponsored") != "false" {
		t.Errorf("a plan is not sponsored by default: %s", r.raw)
	}
	h.expect(h.call("POST", "/api/v1/plans", `{"id":"free","sponsored":true}`), 200)
	h.expectErr(h.call("POST", "/api/v1/plans", `{"id":"free","sponsored":false}`), 409, fb.EConflict, "plan_exists", "")
}

const campaignBody = `{"id":"laptops","advertiser":"shop","topics":["laptops"],"phrases":["laptop","bærbar pc"],
	"title":"Laptops at Shop","text":"Every laptop, tested.","url":"https://shop.example/laptops",
	"bid_per_impression":"0.5","bid_per_click":"2","daily_budget":"50","frequency_cap_per_user_per_day":3}`

func TestServerCampaigns(t *testing.T) {
	h := newHarness(t)
	h.expect(h.call("POST", "/api/v1/advertisers", `{"id":"shop","name":"Shop"}`), 201)
	h.newCustomer("acme")
	r := h.expect(h.call("POST", "/api/v1/campaigns", campaignBody), 201)
	for k, want := range map[string]string{"id": "laptops", "advertiser": "shop", "bid_per_impression": "0.5", "bid_per_click": "2",
		"daily_budget": "50", "frequency_cap_per_user_per_day": "3", "active": "true", "exclude_topics": "[]"} {
		if got := r.get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	h.expect(h.call("POST", "/api/v1/campaigns", campaignBody), 200)
	h.expectErr(h.call("POST", "/api/v1/campaigns", strings.Replace(campaignBody, `"50"`, `"60"`, 1)), 409, fb.EConflict, "campaign_exists", "")
	for _, tc := range []struct{ body, param string }{
		{strings.Replace(campaignBody, `"shop"`, `"acme"`, 1), "advertiser"},
		{strings.Replace(campaignBody, `"https://shop.example/laptops"`, `"ftp://x"`, 1), "url"},
		{strings.Replace(campaignBody, `"0.5"`, `"0.0000001"`, 1), "bid_per_impression"},
		{strings.Replace(campaignBody, `"0.5"`, `"-1"`, 1), "bid_per_impression"},
		{strings.Replace(campaignBody, `"topics":["laptops"],`, ``, 1), "topics"},
		{strings.Replace(campaignBody, `"id":"laptops"`, `"id":"bad id"`, 1), "id"},
		{strings.Replace(campaignBody, `"frequency_cap_per_user_per_day":3`, `"frequency_cap_per_user_per_day":-3`, 1), "frequency_cap_per_user_per_day"},
		{strings.Replace(campaignBody, `"title"`, `"titel"`, 1), "titel"},
	} {
		h.expectErr(h.call("POST", "/api/v1/campaigns", tc.body), 400, fb.EInvalid, fb.EInvalid, tc.param)
	}
	h.expectErr(h.call("POST", "/api/v1/campaigns", strings.Replace(campaignBody, `"shop"`, `"nobody"`, 1)), 404, fb.ENotFound, "unknown_customer", "advertiser")

	h.expect(h.call("POST", "/api/v1/campaigns", strings.NewReplacer(`"laptops"`, `"hotels"`, `"id":"laptops"`, `"id":"hotels"`).Replace(campaignBody)), 201)
	list := h.expect(h.call("GET", "/api/v1/campaigns", ""), 200)
	if n := len(list.body["data"].([]any)); n != 2 {
		t.Errorf("%d campaigns listed, want 2", n)
	}
	if l := h.expect(h.call("GET", "/api/v1/campaigns?advertiser=nobody", ""), 200); len(l.body["data"].([]any)) != 0 {
		t.Errorf("another advertiser's campaigns: %s", l.raw)
	}
	p := h.expect(h.call("PATCH", "/api/v1/campaigns/laptops", `{"active":false,"daily_budget":"75","phrases":["laptop"]}`), 200)
	if p.get("active") != "false" || p.get("daily_budget") != "75" || p.get("phrases") != "[laptop]" || p.get("title") != "Laptops at Shop" {
		t.Errorf("PATCH: %s", p.raw)
	}
	if g := h.expect(h.call("GET", "/api/v1/campaigns/laptops", ""), 200); g.get("daily_budget") != "75" {
		t.Errorf("GET after PATCH: %s", g.raw)
	}
	h.expectErr(h.call("PATCH", "/api/v1/campaigns/laptops", `{"url":"nope"}`), 400, fb.EInvalid, fb.EInvalid, "url")
	h.expectErr(h.call("PATCH", "/api/v1/campaigns/laptops", `{"id":"other"}`), 400, fb.EInvalid, fb.EInvalid, "id")
	h.expectErr(h.call("PATCH", "/api/v1/campaigns/laptops", `{"advertiser":"acme"}`), 400, fb.EInvalid, fb.EInvalid, "advertiser")
	h.expectErr(h.call("PATCH", "/api/v1/campaigns/nope", `{"active":true}`), 404, fb.ENotFound, "", "")
	d := h.expect(h.call("DELETE", "/api/v1/campaigns/hotels", ""), 200)
	if d.get("deleted") != "true" {
		t.Errorf("DELETE: %s", d.raw)
	}
	h.expectErr(h.call("GET", "/api/v1/campaigns/hotels", ""), 404, fb.ENotFound, "", "")
	h.expectErr(h.call("DELETE", "/api/v1/campaigns/hotels", ""), 404, fb.ENotFound, "", "")
	h.expectErr(h.call("GET", "/api/v1/campaigns/bad%20id", ""), 400, fb.EInvalid, fb.EInvalid, "id")
}

// TestServerCampaignStatsAndClicks: a shown suggestion is an impression;
// its link redirects to the advertiser and is charged once however often
// it is followed.
func TestServerCampaignStatsAndClicks(t *testing.T) {
	h := newHarness(t)
	h.expect(h.call("POST", "/api/v1/advertisers", `{"id":"shop","name":"Shop"}`), 201)
	h.grant("shop", `{"amount":"100","source":"purchase","paid_usd":"1"}`)
	h.newCustomer("acme")
	h.expect(h.call("POST", "/api/v1/campaigns", campaignBody), 201)
	ctx := context.Background()
	p := h.srv.Sponsored.Place(ctx, sponsored.Ask{Customer: "acme", Plan: "free", User: "u1", Text: "Which laptop should I buy for university?", BaseURL: h.url})
	if p == nil {
		t.Fatal("no suggestion placed")
	}
	p.Shown(ctx)
	st := h.expect(h.call("GET", "/api/v1/campaigns/laptops/stats", ""), 200)
	if st.get("impressions") != "1" || st.get("clicks") != "0" || st.get("spend") != "0.5" || st.get("from") != "<null>" {
		t.Errorf("stats %s", st.raw)
	}
	u, err := url.Parse(p.Suggestion.URL)
	if err != nil || u.Host != strings.TrimPrefix(h.url, "http://") {
		t.Fatalf("link %q is not on the server's address %s", p.Suggestion.URL, h.url)
	}
	h.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for range 3 {
		req, _ := http.NewRequest("GET", h.url+u.Path, nil)
		r := h.roundTrip(req)
		if r.status != 302 || r.header.Get("Location") != "https://shop.example/laptops" || r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("GET %s: %d, Location %q", u.Path, r.status, r.header.Get("Location"))
		}
	}
	st = h.expect(h.call("GET", "/api/v1/campaigns/laptops/stats?from=2026-11-23&to=2026-11-24", ""), 200)
	if st.get("impressions") != "1" || st.get("clicks") != "1" || st.get("spend") != "2.5" || st.get("from") != "2026-11-23T00:00:00Z" {
		t.Errorf("stats after 3 follows: %s", st.raw)
	}
	h.expectBalance("shop", "97.5", "0")
	if st := h.expect(h.call("GET", "/api/v1/campaigns/laptops/stats?from=2026-11-24T00:00:00Z", ""), 200); st.get("impressions") != "0" {
		t.Errorf("stats of a later range: %s", st.raw)
	}
	h.expectErr(h.call("GET", "/api/v1/campaigns/laptops/stats?from=yesterday", ""), 400, fb.EInvalid, fb.EInvalid, "from")
	h.expectErr(h.call("GET", "/api/v1/campaigns/laptops/stats?from=2026-11-24&to=2026-11-23", ""), 400, fb.EInvalid, fb.EInvalid, "to")
	h.expectErr(h.call("GET", "/api/v1/campaigns/nope/stats", ""), 404, fb.ENotFound, "", "")
	// A made-up or altered link.
	req, _ := http.NewRequest("GET", h.url+"/s/"+strings.TrimPrefix(u.Path, "/s/")[:20], nil)
	h.expectErr(h.roundTrip(req), 404, fb.ENotFound, "link_not_found", "")
	// Opted out: no suggestion.
	h.expect(h.call("PATCH", "/api/v1/customers/acme", `{"sponsored_opt_out":true}`), 200)
	if p := h.srv.Sponsored.Place(ctx, sponsored.Ask{Customer: "acme", Text: "Which laptop should I buy?"}); p != nil {
		t.Error("a suggestion after opting out")
	}
}
