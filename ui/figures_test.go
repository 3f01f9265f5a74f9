package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	fb "farebox"
	"farebox/economics"
	"farebox/ui/uitest"
)

var (
	figureCard = regexp.MustCompile(`data-figure="(\w+)"><div class="label">[^<]*</div><div class="value">([^<]*)</div>`)
	tableOf    = regexp.MustCompile(`(?s)<table class="sortable" data-table="(\w+)">(.*?)</table>`)
	rowOf      = regexp.MustCompile(`(?s)<tr><td>(.*?)</td>(.*?)</tr>`)
	sortValue  = regexp.MustCompile(`data-sort="([^"]*)"`)
	tags       = regexp.MustCompile(`<[^>]+>`)
	daysLeft   = regexp.MustCompile(`data-days-left="([^"]*)"`)
	runsOut    = regexp.MustCompile(`data-runs-out="([^"]*)"`)
)

// cards reads a page's figure cards: name → the value shown.
func cards(page string) map[string]string {
	out := map[string]string{}
	for _, m := range figureCard.FindAllStringSubmatch(page, -1) {
		out[m[1]] = uitest.Figure(m[2])
	}
	return out
}

// micros is an API amount in micro-units, as a table's data-sort holds it.
func micros(t *testing.T, s string) string {
	t.Helper()
	v, err := fb.ParseUSD(s)
	if err != nil {
		t.Fatalf("not an amount: %q", s)
	}
	return fmt.Sprint(int64(v))
}

// samePagesAsAPI: the operator's economics page (its totals and each
// row of its tables by customer, model and provider) and acme's overview
// (30 days spent, the forecast) equal the API's answers at this moment.
func samePagesAsAPI(t *testing.T, e *env, operator, customer *uitest.Session, stage string) {
	t.Helper()
	res, page := operator.Do("GET", "/ui/admin?customers=all", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s: /ui/admin: %d", stage, res.StatusCode)
	}
	var report struct {
		Totals map[string]any
		Rows   []map[string]any
	}
	e.JSON("/api/v1/reports/economics", &report)
	// And both are SQL's: the sums in memory are the database's.
	today := e.clock.Now().UTC().Truncate(24 * time.Hour)
	f := fb.EconFilter{From: today.AddDate(0, 0, -29), To: today.AddDate(0, 0, 1), GroupBy: fb.GroupCustomer}
	_, sqlTotals, err := economics.Read(context.Background(), e.app.Store.Store, f, econConfig)
	if err != nil {
		t.Fatal(err)
	}
	var sqlMap map[string]any
	if err := json.Unmarshal(mustJSON(sqlTotals), &sqlMap); err != nil {
		t.Fatal(err)
	}
	if got, want := mustJSON(report.Totals), mustJSON(sqlMap); string(got) != string(want) {
		t.Errorf("%s: the API's totals %s; SQL's %s", stage, got, want)
	}
	got := cards(page)
	for _, k := range []string{"revenue_usd", "cost_usd", "margin_usd", "credits_consumed", "breakage_usd", "uncollected_usd", "partner_share_usd"} {
		if got[k] != report.Totals[k] {
			t.Errorf("%s: %s on the page = %q; the API's total = %v", stage, k, got[k], report.Totals[k])
		}
	}
	tables := map[string]string{}
	for _, m := range tableOf.FindAllStringSubmatch(page, -1) {
		tables[m[1]] = m[2]
	}
	for _, by := range []string{"customer", "model", "provider", "day"} {
		var api struct {
			Rows   []map[string]any
			Totals map[string]any
		}
		e.JSON("/api/v1/reports/economics?group_by="+by, &api)
		// One rounding of partner shares: the same total by every grouping.
		if api.Totals["partner_share_usd"] != report.Totals["partner_share_usd"] || api.Totals["revenue_usd"] != report.Totals["revenue_usd"] {
			t.Errorf("%s: by %s the API's share total is %v, by customer %v", stage, by, api.Totals["partner_share_usd"], report.Totals["partner_share_usd"])
		}
		if by == "day" {
			continue // drawn in the chart
		}
		rows := rowOf.FindAllStringSubmatch(tables[by], -1)
		if len(rows) != len(api.Rows) || len(rows) == 0 {
			t.Fatalf("%s: the table by %s has %d rows; the API %d", stage, by, len(rows), len(api.Rows))
		}
		for i, r := range rows {
			key := strings.TrimSpace(tags.ReplaceAllString(r[1], ""))
			want := api.Rows[i]
			if want["key"] == "" {
				want["key"] = "(none)"
			}
			v := sortValue.FindAllStringSubmatch(r[2], -1)
			if len(v) != 9 {
				t.Fatalf("%s: a row of the table by %s has %d figures", stage, by, len(v))
			}
			if key != want["key"] || v[1][1] != micros(t, want["revenue_usd"].(string)) || v[3][1] != micros(t, want["margin_usd"].(string)) ||
				v[5][1] != micros(t, want["credits_consumed"].(string)) || v[8][1] != micros(t, want["partner_share_usd"].(string)) {
				t.Errorf("%s: by %s row %d on the page: %s %v; the API's %v", stage, by, i, key, v, want)
			}
		}
	}
	res, page = customer.Do("GET", "/ui/account", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s: /ui/account: %d", stage, res.StatusCode)
	}
	var econ struct {
		Totals struct {
			CreditsConsumed string `json:"credits_consumed"`
		}
	}
	e.JSON("/api/v1/reports/economics?customer=acme&group_by=day", &econ)
	if got := cards(page)["consumed"]; got != econ.Totals.CreditsConsumed {
		t.Errorf("%s: acme's 30 days on the page = %q; the API's = %q", stage, got, econ.Totals.CreditsConsumed)
	}
	var fc struct {
		Data []struct {
			DaysLeft  string    `json:"days_left"`
			RunsOutAt time.Time `json:"runs_out_at"`
		}
	}
	e.JSON("/api/v1/reports/forecast?customer=acme", &fc)
	dl, ro := daysLeft.FindStringSubmatch(page), runsOut.FindStringSubmatch(page)
	if len(fc.Data) != 1 || dl == nil || ro == nil || dl[1] != fc.Data[0].DaysLeft || ro[1] != fc.Data[0].RunsOutAt.Format(time.RFC3339) {
		t.Errorf("%s: the forecast on the page: %v, %v; the API's %+v", stage, dl, ro, fc.Data)
	}
}

// TestPagesEqualAPI: the pages are read from the daily sums in memory,
// the API's reports too; after more usage is written, and after midnight
// (a new day in the range, the oldest out of it), every figure still
// equals the API's.
func TestPagesEqualAPI(t *testing.T) {
	e := newEnv(t)
	operator, customer := e.Browser(), e.Browser()
	operator.SignIn(adminToken)
	customer.SignIn(e.acmeKey)
	samePagesAsAPI(t, e, operator, customer, "at first")

	usage := func(tag string) {
		e.Events(fmt.Sprintf(`[{"specversion": "1.0", "id": "%s-1", "source": "app", "type": "usage", "subject": "acme", "data": {"model": "gpt-4o", "input_tokens": 3000, "output_tokens": 700}},
			{"specversion": "1.0", "id": "%s-2", "source": "app", "type": "usage", "subject": "beta", "data": {"model": "gpt-4o-mini", "input_tokens": 900, "output_tokens": 90}}]`, tag, tag))
		e.Chat(e.acmeKey, "gpt-4o-mini", "And now, "+tag+"?", 200)
	}
	var before struct{ Totals map[string]any }
	e.JSON("/api/v1/reports/economics", &before)
	usage("later")
	samePagesAsAPI(t, e, operator, customer, "after more usage")
	var after struct{ Totals map[string]any }
	e.JSON("/api/v1/reports/economics", &after)
	if after.Totals["revenue_usd"] == before.Totals["revenue_usd"] {
		t.Fatalf("the new usage earned nothing: %v", after.Totals)
	}

	// Past midnight: the range moves a day.
	now := e.clock.Now()
	e.clock.Set(now.Truncate(24 * time.Hour).Add(24*time.Hour + 30*time.Minute))
	usage("tomorrow")
	operator, customer = e.Browser(), e.Browser() // the sessions of yesterday morning expired
	operator.SignIn(adminToken)
	customer.SignIn(e.acmeKey)
	samePagesAsAPI(t, e, operator, customer, "after midnight")
	var moved struct{ From string }
	e.JSON("/api/v1/reports/economics", &moved)
	if want := e.clock.Now().Truncate(24*time.Hour).AddDate(0, 0, -29).Format(time.DateOnly); moved.From != want {
		t.Fatalf("the range starts %s; want %s", moved.From, want)
	}
}

// TestVerifySurvivesRestart: the last verification run from the dashboard
// is stored: after a restart the ledger-health page still shows it, with
// when it ran.
func TestVerifySurvivesRestart(t *testing.T) {
	e := newEnv(t)
	b := e.Browser()
	b.SignIn(adminToken)
	_, page := b.Do("GET", "/ui/admin/system", nil)
	if !strings.Contains(page, `<div class="value">never</div>`) {
		t.Fatal("the page shows a verification before any ran")
	}
	tok := b.CSRF("/ui/admin/system")
	if res, _ := b.Do("POST", "/ui/admin/system/verify", url.Values{"csrf": {tok}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("verify: %d", res.StatusCode)
	}
	ran := e.clock.Now()
	_, page = b.Do("GET", "/ui/admin/system", nil)
	want := regexp.MustCompile(`<div class="value">consistent</div>\s*<div class="note">([^<]*?): (\d+) journal entries, (\d+) accounts`)
	m := want.FindStringSubmatch(page)
	if m == nil || m[2] == "0" {
		t.Fatalf("after verify the page shows no consistent run:\n%s", page)
	}
	e.clock.Advance(3 * time.Hour)
	e.restart()
	b = e.Browser()
	b.SignIn(adminToken)
	_, page = b.Do("GET", "/ui/admin/system", nil)
	m2 := want.FindStringSubmatch(page)
	if m2 == nil || m2[1] != m[1] || m2[2] != m[2] || m2[3] != m[3] {
		t.Fatalf("after a restart the page shows %v; want the run of %s (%v)", m2, ran, m)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
