package sponsored

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fb "farebox"
	"farebox/fakeclock"
	"farebox/ledger"
	"farebox/store/sqlite"
)

// ledgerEnv is a service on a real SQLite store and ledger engine, with an
// advertiser "shop" holding credit bought for money and a customer "acme".
type ledgerEnv struct {
	t   *testing.T
	st  *sqlite.Store
	eng *ledger.Engine
	clk *fakeclock.Clock
	s   *Service
}

func newLedgerEnv(t *testing.T, credits string, cs ...fb.Campaign) *ledgerEnv {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "farebox.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clk := fakeclock.New(clockStart)
	eng := ledger.NewEngine(st, ledger.Config{Cache: true, Now: clk.Now})
	t.Cleanup(func() { eng.Close(); st.Close() })
	for _, c := range []fb.Customer{{ID: "shop", Name: "Shop", Kind: fb.KindAdvertiser, CreatedAt: clockStart}, {ID: "acme", Name: "Acme", CreatedAt: clockStart}} {
		if err := st.CreateCustomer(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	amt, _ := fb.ParseAmount(credits)
	if _, err := eng.Submit(ctx, fb.Op{Kind: fb.OpGrant, Customer: "shop", Amount: amt, Source: fb.SourcePurchase, PaidUSD: fb.USD(amt / 100)}); err != nil {
		t.Fatal(err)
	}
	s, err := New(Deps{Store: st, Ledger: eng, Clock: clk, Secret: testSecret}, Config{PublicURL: "https://fb.example"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if _, err := s.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	return &ledgerEnv{t: t, st: st, eng: eng, clk: clk, s: s}
}

func (e *ledgerEnv) available(id string) fb.Amount {
	e.t.Helper()
	a, err := e.st.Account(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return ledger.Available(a, e.clk.Now())
}

func laptopCampaign(bid, click, budget string, cap int64) fb.Campaign {
	p := func(s string) fb.Amount { a, _ := fb.ParseAmount(s); return a }
	return fb.Campaign{ID: "laptops", Advertiser: "shop", Topics: []string{"laptops"}, Phrases: []string{"laptop", "bærbar pc"},
		Title: "Laptops at Shop", Text: "Every laptop, tested.", URL: "https://shop.example/laptops?ref=farebox",
		BidPerImpression: p(bid), BidPerClick: p(click), DailyBudget: p(budget), FrequencyCap: cap, Active: true}
}

const decisionText = "Which laptop should I buy for university?"

// TestPlaceShowCharge: a placed suggestion is charged its bid once when
// shown, with a usage row of product ads under the advertiser and the
// request's plan; a dropped one is charged nothing and gives its view
// back.
func TestPlaceShowCharge(t *testing.T) {
	e := newLedgerEnv(t, "100", laptopCampaign("0.5", "2", "50", 2))
	ctx := context.Background()
	ask := Ask{Customer: "acme", Plan: "free", KeyID: "key_1", User: "u1", Text: decisionText, HoldFor: time.Minute}
	p := e.s.Place(ctx, ask)
	if p == nil {
		t.Fatal("no suggestion at a decision moment about laptops")
	}
	sg := p.Suggestion
	if !strings.HasPrefix(sg.ID, "sug_") || sg.Label != "Sponsored" || sg.Title != "Laptops at Shop" || !strings.HasPrefix(sg.URL, "https://fb.example/s/") {
		t.Errorf("suggestion %+v", sg)
	}
	if got := e.available("shop"); got != 99_500_000 {
		t.Errorf("while shown: available %s, want 99.5 (the bid held)", got)
	}
	p.Shown(ctx)
	p.Shown(ctx)   // once
	p.Dropped(ctx) // too late: shown already
	if got := e.available("shop"); got != 99_500_000 {
		t.Errorf("after the impression: available %s, want 99.5", got)
	}
	st, err := e.s.Stats(ctx, "laptops", time.Time{}, time.Time{})
	if err != nil || st != (fb.CampaignStats{Impressions: 1, Spend: 500_000}) {
		t.Errorf("stats %+v, %v; want 1 impression, 0.5 spent", st, err)
	}
	rows, err := e.st.Usage(ctx, fb.UsageFilter{GroupBy: fb.GroupPlan, Customer: "shop"})
	if err != nil || len(rows) != 1 || rows[0].Key != "free" || rows[0].Credits != 500_000 {
		t.Errorf("usage of shop by plan: %+v, %v; want 0.5 under plan free", rows, err)
	}

	// Dropped: the hold released, the view given back (the cap of 2 then
	// lets two more through).
	p2 := e.s.Place(ctx, ask)
	if p2 == nil {
		t.Fatal("the second suggestion of a cap of 2 was not placed")
	}
	p2.Dropped(ctx)
	p2.Shown(ctx) // too late: dropped
	if got := e.available("shop"); got != 99_500_000 {
		t.Errorf("after a dropped suggestion: available %s, want 99.5", got)
	}
	p3 := e.s.Place(ctx, ask)
	if p3 == nil {
		t.Fatal("a dropped suggestion's view was not given back")
	}
	p3.Shown(ctx)
	if p4 := e.s.Place(ctx, ask); p4 != nil {
		t.Fatal("a third suggestion to one user with a cap of 2 a day")
	}
	// Another user, or the same user tomorrow, sees it again.
	if p := e.s.Place(ctx, Ask{Customer: "acme", KeyID: "key_1", User: "u2", Text: decisionText}); p == nil {
		t.Error("another user was capped too")
	} else {
		p.Dropped(ctx)
	}
	e.clk.Advance(24 * time.Hour)
	if p := e.s.Place(ctx, ask); p == nil {
		t.Error("the cap did not end with the day")
	} else {
		p.Dropped(ctx)
	}
}

// TestPlaceRefusals: no suggestion where there is no decision, nothing
// relevant, an opted-out customer, an advertiser without credit or a spent
// budget.
func TestPlaceRefusals(t *testing.T) {
	e := newLedgerEnv(t, "1", laptopCampaign("0.5", "0", "0.5", 0))
	ctx := context.Background()
	for _, text := range []string{"Explain how a laptop battery works.", "Write a poem about autumn.", "Which hotel should I book in Rome?"} {
		if p := e.s.Place(ctx, Ask{Customer: "acme", Text: text}); p != nil {
			t.Errorf("a suggestion on %q", text)
		}
	}
	if _, err := e.st.SetSponsoredOptOut(ctx, "acme", true); err != nil {
		t.Fatal(err)
	}
	if p := e.s.Place(ctx, Ask{Customer: "acme", Text: decisionText}); p != nil {
		t.Error("a suggestion for a customer who opted out")
	}
	if _, err := e.st.SetSponsoredOptOut(ctx, "acme", false); err != nil {
		t.Fatal(err)
	}
	p := e.s.Place(ctx, Ask{Customer: "acme", Text: decisionText})
	if p == nil {
		t.Fatal("no suggestion within budget")
	}
	p.Shown(ctx)
	// The budget (0.5) is spent: refused inside the hold.
	if p := e.s.Place(ctx, Ask{Customer: "acme", Text: decisionText}); p != nil {
		t.Error("a suggestion past the daily budget")
	}
	// The next day the budget is back, but the advertiser has only 0.5.
	e.clk.Advance(24 * time.Hour)
	if p := e.s.Place(ctx, Ask{Customer: "acme", Text: decisionText}); p == nil {
		t.Error("no suggestion on a new day's budget")
	} else {
		p.Shown(ctx)
	}
	e.clk.Advance(24 * time.Hour)
	if p := e.s.Place(ctx, Ask{Customer: "acme", Text: decisionText}); p != nil {
		t.Error("a suggestion of an advertiser without credit")
	}
	if got := e.available("shop"); got != 0 {
		t.Errorf("advertiser's credit %s, want 0", got)
	}
}

// TestBudgetUnderConcurrency: 1,000 decision moments at once against a
// campaign whose daily budget pays for 100 impressions: exactly 100 are
// placed and charged.
func TestBudgetUnderConcurrency(t *testing.T) {
	e := newLedgerEnv(t, "1000", laptopCampaign("0.5", "0", "50", 0))
	ctx := context.Background()
	var placed, none atomic.Int64
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := e.s.Place(ctx, Ask{Customer: "acme", KeyID: "k", User: "u" + string(rune('a'+i%26)), Text: decisionText, HoldFor: time.Minute})
			if p == nil {
				none.Add(1)
				return
			}
			placed.Add(1)
			p.Shown(ctx)
		}()
	}
	wg.Wait()
	st, err := e.s.Stats(ctx, "laptops", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("1000 concurrent: %d placed, %d without, %d impressions charged, %s spent", placed.Load(), none.Load(), st.Impressions, st.Spend)
	if placed.Load() != 100 || st.Impressions != 100 || st.Spend != 50_000_000 || e.available("shop") != 950_000_000 {
		t.Errorf("placed %d, charged %d for %s, available %s; want exactly 100 for 50, 950 left", placed.Load(), st.Impressions, st.Spend, e.available("shop"))
	}
}

// TestFrequencyCapUnderConcurrency: one user's concurrent requests see a
// campaign at most its cap.
func TestFrequencyCapUnderConcurrency(t *testing.T) {
	e := newLedgerEnv(t, "1000", laptopCampaign("0.5", "0", "500", 3))
	ctx := context.Background()
	var placed atomic.Int64
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p := e.s.Place(ctx, Ask{Customer: "acme", KeyID: "k", User: "same", Text: decisionText}); p != nil {
				placed.Add(1)
				p.Shown(ctx)
			}
		}()
	}
	wg.Wait()
	if got := placed.Load(); got != 3 {
		t.Errorf("100 concurrent requests of one user with a cap of 3: %d suggestions", got)
	}
}

// TestClickOnce: following a link charges the bid per click once, however
// often and however concurrently; links cannot be made up or altered, and
// expire.
func TestClickOnce(t *testing.T) {
	e := newLedgerEnv(t, "100", laptopCampaign("0.5", "2", "50", 0))
	ctx := context.Background()
	p := e.s.Place(ctx, Ask{Customer: "acme", Plan: "free", Text: decisionText})
	if p == nil {
		t.Fatal("no suggestion")
	}
	p.Shown(ctx)
	u, err := url.Parse(p.Suggestion.URL)
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimPrefix(u.Path, "/s/")
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			to, err := e.s.Click(ctx, tok)
			if err != nil || to != "https://shop.example/laptops?ref=farebox" {
				t.Errorf("Click = %q, %v", to, err)
			}
		}()
	}
	wg.Wait()
	st, _ := e.s.Stats(ctx, "laptops", time.Time{}, time.Time{})
	if st != (fb.CampaignStats{Impressions: 1, Clicks: 1, Spend: 2_500_000}) || e.available("shop") != 97_500_000 {
		t.Errorf("after 20 follows: %+v, available %s; want 1 click charged 2 (2.5 spent), 97.5 left", st, e.available("shop"))
	}
	// Altered links, made-up links: not found, nothing charged.
	for _, bad := range []string{tok[:len(tok)-2] + "AA", "x" + tok[1:], "", "sug_abc", strings.Repeat("A", 600)} {
		if _, err := e.s.Click(ctx, bad); fb.ErrorType(err) != fb.ENotFound {
			t.Errorf("Click(%.20q…) = %v, want not found", bad, err)
		}
	}
	// A link of another server's secret.
	other, _ := New(Deps{Store: e.st, Ledger: e.eng, Clock: e.clk, Secret: []byte("another secret of 32 bytes......")}, Config{})
	if _, err := other.Click(ctx, tok); fb.ErrorType(err) != fb.ENotFound {
		t.Errorf("a link signed with another secret: %v", err)
	}
	e.clk.Advance(8 * 24 * time.Hour)
	if _, err := e.s.Click(ctx, tok); fb.ErrorType(err) != fb.ENotFound {
		t.Errorf("a link older than ClickTTL: %v", err)
	}
	if st2, _ := e.s.Stats(ctx, "laptops", time.Time{}, time.Time{}); st2 != st {
		t.Errorf("stats moved: %+v", st2)
	}
}

// TestFreeCampaign: a campaign that bids 0 shows and counts its
// impressions and clicks, charging nothing.
func TestFreeCampaign(t *testing.T) {
	e := newLedgerEnv(t, "1", laptopCampaign("0", "0", "0", 0))
	ctx := context.Background()
	p := e.s.Place(ctx, Ask{Customer: "acme", Text: decisionText})
	if p == nil {
		t.Fatal("no suggestion of a free campaign")
	}
	p.Shown(ctx)
	u, _ := url.Parse(p.Suggestion.URL)
	for range 3 {
		if _, err := e.s.Click(ctx, strings.TrimPrefix(u.Path, "/s/")); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := e.s.Stats(ctx, "laptops", time.Time{}, time.Time{})
	if st != (fb.CampaignStats{Impressions: 1, Clicks: 1}) || e.available("shop") != fb.Micro {
		t.Errorf("free campaign: %+v, available %s", st, e.available("shop"))
	}
}

func TestCampaignValidation(t *testing.T) {
	e := newLedgerEnv(t, "1")
	ctx := context.Background()
	ok := laptopCampaign("0.5", "1", "10", 0)
	for _, tc := range []struct {
		param  string
		change func(*fb.Campaign)
	}{
		{"topics", func(c *fb.Campaign) { c.Topics = nil }},
		{"topics", func(c *fb.Campaign) { c.Topics = []string{"!!!"} }},
		{"phrases", func(c *fb.Campaign) { c.Phrases = []string{""} }},
		{"title", func(c *fb.Campaign) { c.Title = "" }},
		{"url", func(c *fb.Campaign) { c.URL = "javascript:alert(1)" }},
		{"url", func(c *fb.Campaign) { c.URL = "https://user:pw@shop.example/" }},
		{"url", func(c *fb.Campaign) { c.URL = "/relative" }},
		{"bid_per_impression", func(c *fb.Campaign) { c.BidPerImpression = -1 }},
		{"daily_budget", func(c *fb.Campaign) { c.DailyBudget = -1 }},
		{"frequency_cap_per_user_per_day", func(c *fb.Campaign) { c.FrequencyCap = -1 }},
		{"advertiser", func(c *fb.Campaign) { c.Advertiser = "acme" }},
	} {
		c := ok
		tc.change(&c)
		_, err := e.s.Create(ctx, c)
		var fe *fb.Error
		if !errorsAs(err, &fe) || fe.Param != tc.param {
			t.Errorf("%s: %v, want invalid %s", tc.param, err, tc.param)
		}
	}
	c := ok
	c.Advertiser = "nobody"
	if _, err := e.s.Create(ctx, c); fb.ErrorType(err) != fb.ENotFound {
		t.Errorf("unknown advertiser: %v", err)
	}
	got, err := e.s.Create(ctx, ok)
	if err != nil || got.Version != 1 || got.CreatedAt.IsZero() {
		t.Fatalf("Create = %+v, %v", got, err)
	}
	if _, err := e.s.Create(ctx, ok); fb.ErrorType(err) != fb.EConflict {
		t.Errorf("second create: %v", err)
	}
	up, err := e.s.Update(ctx, "laptops", func(c *fb.Campaign) error { c.Active = false; return nil })
	if err != nil || up.Active || up.Version != 2 {
		t.Fatalf("Update = %+v, %v", up, err)
	}
	if p := e.s.Place(ctx, Ask{Customer: "acme", Text: decisionText}); p != nil {
		t.Error("a suggestion of an inactive campaign")
	}
	if err := e.s.Delete(ctx, "laptops"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Get(ctx, "laptops"); fb.ErrorType(err) != fb.ENotFound {
		t.Errorf("after delete: %v", err)
	}
}
