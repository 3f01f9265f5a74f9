package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fb "farebox"
	"farebox/ledger"
)

// testKinds: accounts are customers' unless made advertisers', and the
// opt-out of sponsored suggestions round-trips.
func testKinds(t *testing.T, s fb.Store) {
	ctx := context.Background()
	customer(t, s, "acme")
	if err := s.CreateCustomer(ctx, fb.Customer{ID: "shop", Name: "Shop", Kind: fb.KindAdvertiser, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]fb.CustomerKind{"acme": fb.KindCustomer, "shop": fb.KindAdvertiser} {
		c, err := s.Customer(ctx, id)
		if err != nil || c.Kind != want || c.SponsoredOptOut {
			t.Errorf("Customer(%s) = %+v, %v; want kind %s, not opted out", id, c, err, want)
		}
	}
	page, err := s.Customers(ctx, "", 10)
	if err != nil || len(page) != 2 || page[0].Kind != fb.KindCustomer || page[1].Kind != fb.KindAdvertiser {
		t.Fatalf("Customers = %+v, %v", page, err)
	}
	c, err := s.SetSponsoredOptOut(ctx, "acme", true)
	if err != nil || !c.SponsoredOptOut || c.Name != "Name of acme" || !c.CreatedAt.Equal(t0) {
		t.Fatalf("SetSponsoredOptOut = %+v, %v", c, err)
	}
	// The dashboard's search reads them too.
	found, err := s.FindCustomers(ctx, "", "", 10)
	if err != nil || len(found) != 2 || found[0].Kind != fb.KindCustomer || !found[0].SponsoredOptOut || found[1].Kind != fb.KindAdvertiser {
		t.Fatalf("FindCustomers = %+v, %v; want acme (a customer, opted out) and shop (an advertiser)", found, err)
	}
	if c, err := s.Customer(ctx, "acme"); err != nil || !c.SponsoredOptOut {
		t.Fatalf("after opting out: %+v, %v", c, err)
	}
	if c, err := s.SetSponsoredOptOut(ctx, "acme", false); err != nil || c.SponsoredOptOut {
		t.Fatalf("opting in again: %+v, %v", c, err)
	}
	if _, err := s.SetSponsoredOptOut(ctx, "nobody", true); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("unknown customer: %v", err)
	}
}

func testCampaigns(t *testing.T, s fb.Store) {
	ctx := context.Background()
	cp := fb.Campaign{ID: "laptops", Advertiser: "shop", Topics: []string{"laptops"}, Phrases: []string{"laptop", "bærbar pc"},
		ExcludeTopics: []string{}, Title: "Laptops", Text: "Our laptops", URL: "https://shop.example/laptops",
		BidPerImpression: amt("0.5"), BidPerClick: amt("2"), DailyBudget: amt("50"), FrequencyCap: 3, Active: true, CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateCampaign(ctx, cp); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateCampaign(ctx, cp); fb.ErrorType(err) != fb.EConflict || fb.ErrorCode(err) != "campaign_exists" {
		t.Fatalf("second create: %v", err)
	}
	got, err := s.Campaign(ctx, "laptops")
	cp.Version = 1
	if err != nil || js(got) != js(cp) || got.Version != 1 {
		t.Fatalf("Campaign = %s (version %d), %v; want %s at version 1", js(got), got.Version, err, js(cp))
	}
	if _, err := s.Campaign(ctx, "nope"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("unknown campaign: %v", err)
	}
	other := cp
	other.ID = "hotels"
	if err := s.CreateCampaign(ctx, other); err != nil {
		t.Fatal(err)
	}
	all, err := s.Campaigns(ctx)
	if err != nil || len(all) != 2 || all[0].ID != "hotels" || all[1].ID != "laptops" {
		t.Fatalf("Campaigns = %s, %v", js(all), err)
	}
	// A change made from version 1 wins once; one made from the same
	// version afterwards is refused.
	changed := got
	changed.Active = false
	if err := s.SwapCampaign(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if err := s.SwapCampaign(ctx, changed); fb.ErrorCode(err) != "campaign_changed" {
		t.Fatalf("a swap from a stale version: %v", err)
	}
	if got, err := s.Campaign(ctx, "laptops"); err != nil || got.Active || got.Version != 2 {
		t.Fatalf("after the swap: %+v, %v", got, err)
	}
	if err := s.SwapCampaign(ctx, fb.Campaign{ID: "nope", Version: 1}); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("swapping an unknown campaign: %v", err)
	}
	if err := s.DeleteCampaign(ctx, "laptops"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCampaign(ctx, "laptops"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("delete twice: %v", err)
	}
	if all, err := s.Campaigns(ctx); err != nil || len(all) != 1 {
		t.Fatalf("after delete: %s, %v", js(all), err)
	}
}

// testCampaignStats: impressions and clicks are the campaign's usage rows
// of product ads, by status, over a range.
func testCampaignStats(t *testing.T, s fb.Store) {
	ctx := context.Background()
	if err := s.CreateCustomer(ctx, fb.Customer{ID: "shop", Name: "Shop", Kind: fb.KindAdvertiser, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	apply(t, s, "shop", grant("lot_s", "100", t0, time.Time{}))
	cp := fb.Campaign{ID: "laptops"}
	row := func(id, status, credits string, at time.Time) *fb.Usage {
		return &fb.Usage{ID: id, Source: "sponsored", Customer: "shop", Model: cp.UsageModel(), Provider: "sponsored", Product: fb.ProductAds,
			Plan: "free", At: at, Status: status, Credits: amt(credits), Topic: "laptops", Score: 912_000}
	}
	rows := []*fb.Usage{
		row("s1", fb.StatusImpression, "0.5", t0), row("s2", fb.StatusImpression, "0.5", t0.Add(time.Hour)),
		row("s1", fb.StatusClick, "2", t0.Add(2*time.Hour)), row("s3", fb.StatusImpression, "0.5", t0.AddDate(0, 0, 1)),
		{ID: "r1", Source: "gateway", Customer: "shop", Model: cp.UsageModel(), At: t0, Credits: amt("7")}, // not ads
		{ID: "x1", Source: "sponsored", Customer: "shop", Model: "campaign:other", Product: fb.ProductAds, At: t0, Status: fb.StatusImpression, Credits: amt("1")},
	}
	err := s.Write(ctx, func(tx fb.WriteTx) error {
		accts, err := tx.LoadAccounts(ctx, []string{"shop"})
		if err != nil {
			return err
		}
		var entries []*fb.JournalEntry
		for i, u := range rows {
			op := fb.Op{Kind: fb.OpDebit, Customer: "shop", Amount: u.Credits, At: u.At, Key: "k" + string(rune('a'+i)), Usage: u}
			res, err := ledger.Apply(accts["shop"], &op, ledger.NewTouched())
			if err != nil {
				return err
			}
			entries = append(entries, &fb.JournalEntry{Op: op, Fingerprint: op.Fingerprint(), Result: res})
		}
		if err := tx.SaveAccount(ctx, accts["shop"], nil, nil); err != nil {
			return err
		}
		if err := tx.AppendJournal(ctx, entries); err != nil {
			return err
		}
		return tx.AppendUsage(ctx, rows)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from, to time.Time
		want     fb.CampaignStats
	}{
		{time.Time{}, time.Time{}, fb.CampaignStats{Impressions: 3, Clicks: 1, Spend: amt("3.5")}},
		{t0, t0.AddDate(0, 0, 1), fb.CampaignStats{Impressions: 2, Clicks: 1, Spend: amt("3")}},
		{t0.Add(time.Minute), t0.Add(3 * time.Hour), fb.CampaignStats{Impressions: 1, Clicks: 1, Spend: amt("2.5")}},
		{t0.AddDate(0, 0, 2), time.Time{}, fb.CampaignStats{}},
	} {
		got, err := s.CampaignStats(ctx, cp, tc.from, tc.to)
		if err != nil || got != tc.want {
			t.Errorf("CampaignStats [%s, %s) = %+v, %v; want %+v", tc.from, tc.to, got, err, tc.want)
		}
	}
}

// testViews: a frequency cap's counter never passes its limit, however
// many count at once.
func testViews(t *testing.T, s fb.Store) {
	ctx := context.Background()
	day, next := t0, t0.AddDate(0, 0, 1)
	var counted atomic.Int64
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.CountView(ctx, "laptops", "u1", day, 5)
			if err != nil {
				t.Error(err)
			}
			if ok {
				counted.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := counted.Load(); got != 5 {
		t.Fatalf("40 concurrent views with a cap of 5 counted %d", got)
	}
	// Another subject, campaign or day counts on its own.
	for _, k := range []struct {
		campaign, subject string
		day               time.Time
	}{{"laptops", "u2", day}, {"hotels", "u1", day}, {"laptops", "u1", next}} {
		if ok, err := s.CountView(ctx, k.campaign, k.subject, k.day, 5); err != nil || !ok {
			t.Errorf("CountView %+v = %v, %v; want counted", k, ok, err)
		}
	}
	// One taken back makes room for one more.
	if err := s.UncountView(ctx, "laptops", "u1", day); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.CountView(ctx, "laptops", "u1", day, 5); err != nil || !ok {
		t.Fatalf("after an uncount: %v, %v", ok, err)
	}
	if ok, err := s.CountView(ctx, "laptops", "u1", day, 5); err != nil || ok {
		t.Fatalf("past the cap again: %v, %v", ok, err)
	}
	if ok, err := s.CountView(ctx, "laptops", "u9", day, 0); err != nil || ok {
		t.Fatalf("a limit of 0 counts nothing: %v, %v", ok, err)
	}
	n, err := s.PruneViews(ctx, next)
	if err != nil || n != 3 {
		t.Fatalf("PruneViews = %d, %v; want the 3 rows of the first day", n, err)
	}
	if ok, err := s.CountView(ctx, "laptops", "u1", day, 1); err != nil || !ok {
		t.Fatalf("a pruned day starts afresh: %v, %v", ok, err)
	}
}

func testSettings(t *testing.T, s fb.Store) {
	ctx := context.Background()
	v, err := s.Setting(ctx, "link_key", "first")
	if err != nil || v != "first" {
		t.Fatalf("Setting = %q, %v; want first", v, err)
	}
	if v, err := s.Setting(ctx, "link_key", "second"); err != nil || v != "first" {
		t.Fatalf("Setting again = %q, %v; want the first value kept", v, err)
	}
	if v, err := s.Setting(ctx, "other", "x"); err != nil || v != "x" {
		t.Fatalf("another setting = %q, %v", v, err)
	}
}
