package ui_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	fb "farebox"
	"farebox/ui"
	"farebox/ui/uitest"
)

// TestRegistry: a feature's page registered with the dashboard is in its
// side's navigation, in order, drawn from its sections, behind the same
// session, side and CSRF checks as the built-in pages; a path taken twice,
// a page without a side and a registration after the handler are refused.
func TestRegistry(t *testing.T) {
	e := newEnv(t)
	a := e.app
	if err := a.UI.Register(ui.Page{Side: ui.Operator, Path: "late", Title: "Late", Handle: nil}); err == nil {
		t.Fatal("a page registered after the app's handler was built")
	}
	d, err := ui.New(ui.Deps{Store: a.Store, Engine: a.Engine, Plans: a.Plans, Gateway: a.Gateway, AdminToken: adminToken, Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	posted := ""
	pools := func(r *ui.Request) (*ui.View, error) {
		return &ui.View{Title: "Pools", Sections: []ui.Section{
			ui.Links{Label: "Period", Items: []ui.Link{{Text: "Today", Href: "/ui/admin/pools?days=1", Current: true}, {Text: "Last 7 days", Href: "/ui/admin/pools?days=7"}}},
			ui.Cards{{Label: "GPUs", Value: "64", Note: "16 kept for inference", Figure: "gpus"}},
			ui.Table{Title: "Pools", Name: "pools", Columns: []ui.Column{{Label: "Pool"}, {Label: "GPUs", Num: true}},
				Rows: [][]ui.Cell{{{Text: "h100-eu", Href: "/ui/admin/pools/h100-eu"}, {Text: "64", Sort: "64"}}}},
			ui.Form{Title: "Resize", Action: "/ui/admin/pools", Fields: []ui.Field{{Name: "gpus", Label: "GPUs", Type: "number", Value: "64"}}, Submit: "Resize"},
			ui.Note("Leases are billed per second."),
		}}, nil
	}
	for _, p := range []ui.Page{
		{Side: ui.Operator, Path: "pools", Title: "Pools", Order: 25, Handle: pools},
		// A page only some sessions have: not in acme's navigation, and
		// not found for it.
		{Side: ui.Customer, Path: "beta-only", Title: "Beta only", Handle: pools,
			Visible: func(_ context.Context, s fb.Session) bool { return s.Customer == "beta" }},
		{Side: ui.Operator, Path: "pools", Method: "POST", Handle: func(r *ui.Request) (*ui.View, error) {
			posted = r.PostFormValue("gpus")
			return &ui.View{Redirect: "/ui/admin/pools", Flash: "Resized."}, nil
		}},
	} {
		if err := d.Register(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []ui.Page{
		{Side: ui.Operator, Path: "pools", Title: "Again", Handle: pools},
		{Path: "nowhere", Handle: pools},
		{Side: ui.Customer, Path: "nothing"},
	} {
		if err := d.Register(bad); err == nil {
			t.Errorf("registered %+v", bad)
		}
	}
	var titles []string
	for _, p := range d.Pages(ui.Operator) {
		if p.Title != "" {
			titles = append(titles, p.Title)
		}
	}
	if got := strings.Join(titles, ", "); got != "Economics, Customers, Pools, Deployments & ledger" {
		t.Fatalf("the operator's navigation: %s", got)
	}

	hs := httptest.NewServer(d.Handler())
	defer hs.Close()
	b := (&uitest.Site{T: t, URL: hs.URL}).Browser()
	if code, _ := b.SignIn(e.acmeKey); code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", code)
	}
	if res, page := b.Do("GET", "/ui/account", nil); res.StatusCode != 200 || strings.Contains(page, "beta-only") {
		t.Errorf("acme's overview (%d) offers a page hidden from it", res.StatusCode)
	}
	if res, _ := b.Do("GET", "/ui/account/beta-only", nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("a page hidden from acme: %d; want 404", res.StatusCode)
	}
	if res, _ := b.Do("GET", "/ui/admin/pools", nil); res.StatusCode != http.StatusForbidden {
		t.Fatalf("a customer on a registered operator page: %d; want 403", res.StatusCode)
	}
	b.Do("POST", "/ui/signout", url.Values{"csrf": {b.CSRF("/ui/account")}})
	if code, _ := b.SignIn(adminToken); code != http.StatusSeeOther {
		t.Fatalf("operator sign-in: %d", code)
	}
	res, page := b.Do("GET", "/ui/admin/pools", nil)
	for _, want := range []string{`<a href="/ui/admin/pools" aria-current="page">Pools</a>`, `<div class="value">64</div>`, `data-sort="64"`,
		`<div class="card" data-figure="gpus">`, `<table class="sortable" data-table="pools">`,
		`<nav class="pager links" aria-label="Period"><strong aria-current="page">Today</strong> · <a href="/ui/admin/pools?days=7">Last 7 days</a></nav>`,
		`<a href="/ui/admin/pools/h100-eu">h100-eu</a>`, `action="/ui/admin/pools"`, `name="csrf"`, "Leases are billed per second."} {
		if res.StatusCode != 200 || !strings.Contains(page, want) {
			t.Errorf("the registered page (%d) lacks %s", res.StatusCode, want)
		}
	}
	if res, _ := b.Do("POST", "/ui/admin/pools", url.Values{"gpus": {"80"}}); res.StatusCode != http.StatusForbidden || posted != "" {
		t.Fatalf("a registered form without its CSRF token: %d, handled %q", res.StatusCode, posted)
	}
	res, _ = b.Do("POST", "/ui/admin/pools", url.Values{"gpus": {"80"}, "csrf": {b.CSRF("/ui/admin/pools")}})
	if res.StatusCode != http.StatusSeeOther || posted != "80" {
		t.Fatalf("the registered form: %d, handled %q", res.StatusCode, posted)
	}
	if _, page := b.Do("GET", "/ui/admin/pools", nil); !strings.Contains(page, "Resized.") {
		t.Error("the flash after the form is not shown")
	}
}

// TestRegistrySections: a registered page's table buttons, checkboxes,
// secret and button-only form are drawn with the session's CSRF token; a
// POST answered with another origin's URL gets a page that goes on there
// (a refresh and a link), a path of this site a 303; OfferCheckout takes
// only registered customer pages, and before the handler is built.
func TestRegistrySections(t *testing.T) {
	e := newEnv(t)
	a := e.app
	d, err := ui.New(ui.Deps{Store: a.Store, Engine: a.Engine, Plans: a.Plans, Gateway: a.Gateway, AdminToken: adminToken, Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	var ticked []string
	for _, p := range []ui.Page{
		{Side: ui.Operator, Path: "things", Title: "Things", Handle: func(r *ui.Request) (*ui.View, error) {
			return &ui.View{Title: "Things", Sections: []ui.Section{
				ui.Table{Columns: []ui.Column{{Label: "Thing", Wrap: true}, {Label: ""}}, Rows: [][]ui.Cell{{{Text: "a-long-id"}, {Text: "Redo", Action: "/ui/admin/things/a/redo", Danger: true}}}},
				ui.Form{Action: "/ui/admin/things", Fields: []ui.Field{{Name: "kinds", Label: "Kinds", Type: "checkboxes", Options: []string{"x", "y", "z"}, Checked: []string{"y"}}}},
				ui.Form{Action: "/ui/admin/things/stop", Submit: "Stop", Danger: true},
				ui.Secret{Title: "The secret", Note: "Shown once.", Value: "whsec_abc"},
			}}, nil
		}},
		{Side: ui.Operator, Path: "things", Method: "POST", Handle: func(r *ui.Request) (*ui.View, error) {
			ticked = r.PostForm["kinds"]
			return &ui.View{Redirect: "/ui/admin/things"}, nil
		}},
		{Side: ui.Operator, Path: "things/away", Method: "POST", Handle: func(r *ui.Request) (*ui.View, error) {
			return &ui.View{Title: "Off to pay", Redirect: "https://pay.example.com/s/1?a=1&b=2"}, nil
		}},
		{Side: ui.Customer, Path: "buy", Method: "POST", Handle: func(r *ui.Request) (*ui.View, error) { return &ui.View{Redirect: "/ui/account"}, nil }},
	} {
		if err := d.Register(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range [][2]string{{"/ui/account/nothing", ""}, {"/ui/admin/things", ""}, {"/ui/account/buy", "/ui/account/nothing"}} {
		if err := d.OfferCheckout(bad[0], bad[1]); err == nil {
			t.Errorf("OfferCheckout(%q, %q) took pages that are not registered customer pages", bad[0], bad[1])
		}
	}
	if err := d.OfferCheckout("/ui/account/buy", "/ui/account"); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(d.Handler())
	defer hs.Close()
	if err := d.OfferCheckout("/ui/account/buy", ""); err == nil {
		t.Error("OfferCheckout after the handler was built")
	}
	b := (&uitest.Site{T: t, URL: hs.URL}).Browser()
	b.SignIn(adminToken)
	tok := b.CSRF("/ui/admin/things")
	_, page := b.Do("GET", "/ui/admin/things", nil)
	for _, want := range []string{
		`<td class="wrap">a-long-id</td>`,
		`<form method="post" action="/ui/admin/things/a/redo"><input type="hidden" name="csrf" value="` + tok + `"><button type="submit" class="danger">Redo</button></form>`,
		`<label><input type="checkbox" name="kinds" value="x"> x</label><label><input type="checkbox" name="kinds" value="y" checked> y</label>`,
		`<form method="post" action="/ui/admin/things/stop" class="inline"><input type="hidden" name="csrf" value="` + tok + `"><button type="submit" class="danger">Stop</button></form>`,
		`<code class="secret" id="new-secret">whsec_abc</code>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if res, _ := b.Do("POST", "/ui/admin/things", url.Values{"csrf": {tok}, "kinds": {"x", "z"}}); res.StatusCode != http.StatusSeeOther || strings.Join(ticked, ",") != "x,z" {
		t.Fatalf("the checkboxes posted %v (%d), want x,z", ticked, res.StatusCode)
	}
	res, page := b.Do("POST", "/ui/admin/things/away", url.Values{"csrf": {tok}})
	if res.StatusCode != 200 || !strings.Contains(page, `<meta http-equiv="refresh" content="0;url=https://pay.example.com/s/1?a=1&amp;b=2">`) ||
		!strings.Contains(page, `<a href="https://pay.example.com/s/1?a=1&amp;b=2" id="leave">`) || !strings.Contains(page, "Taking you to <strong>pay.example.com</strong>") {
		t.Fatalf("a POST sending the browser to another origin: %d\n%s", res.StatusCode, page)
	}
}
