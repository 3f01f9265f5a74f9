package storetest

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/economics"
	"farebox/ledger"
)

// testEconomicsIdentity (issue 12, finding 8): over a seeded random
// scenario — paid and promo lots, holds, captures (with and without a usage
// row, some above their hold), releases, debits, overdraft, repayments by
// later grants, expiries and rollovers over several days on an injected
// clock — the economics report's revenue, by customer and by day, equals
// the revenue the ledger recognised (Consumption.USD of every consumed
// credit in the journal), whatever the report is grouped by, and its
// breakage equals the journal's expired credit's. Credits charged and
// uncollected add up the same way.
func testEconomicsIdentity(t *testing.T, s fb.Store) {
	ctx := context.Background()
	now := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var ids int
	newID := func(prefix string) string {
		mu.Lock()
		defer mu.Unlock()
		ids++
		return fmt.Sprintf("%s%06d", prefix, ids)
	}
	eng := ledger.NewEngine(s, ledger.Config{Now: clock, NewID: newID})
	defer eng.Close()
	rng := rand.New(rand.NewPCG(12, 2026))
	customers := []string{"c-plain", "c-overdraft", "c-promo", "c-heavy"}
	for _, c := range customers {
		customer(t, s, c)
	}
	submit := func(op fb.Op) (fb.Result, bool) {
		t.Helper()
		res, err := eng.Submit(ctx, op)
		if err == nil {
			return res, true
		}
		switch fb.ErrorType(err) {
		case fb.EInsufficientCredits, fb.EInvalid, fb.EConflict, fb.ENotFound:
			return res, false
		}
		t.Fatalf("%s of %s: %v", op.Kind, op.Customer, err)
		return res, false
	}
	for _, c := range customers[1:2] {
		submit(fb.Op{Kind: fb.OpLimit, Customer: c, Amount: amt("40")})
	}
	submit(fb.Op{Kind: fb.OpLimit, Customer: "c-heavy", Amount: amt("5")})
	credits := func(max int) fb.Amount { return fb.Amount(1 + rng.Int64N(int64(max)*fb.Micro)) }
	models := []struct{ model, provider string }{{"gpt-4o", "openai"}, {"llama-3", "own-gpu"}, {"sora-1", ""}}
	var holds []string
	event := 0
	for step := range 400 {
		mu.Lock()
		now = now.Add(time.Duration(rng.IntN(80)) * time.Minute)
		at := now
		mu.Unlock()
		c := customers[rng.IntN(len(customers))]
		usage := func(amount fb.Amount) *fb.Usage {
			m := models[rng.IntN(len(models))]
			return &fb.Usage{ID: fmt.Sprintf("u-%d", step), Source: "test", Customer: c, Model: m.model, Provider: m.provider, At: at,
				Credits: amount, CostUSD: fb.USD(rng.Int64N(int64(amount)/100 + 1))}
		}
		switch k := rng.IntN(20); {
		case k < 4: // a lot: paid, or a promotion; some expire, some roll over
			op := fb.Op{Kind: fb.OpGrant, Customer: c, Amount: credits(60), Source: fb.SourcePurchase, Priority: 20}
			if c == "c-promo" || rng.IntN(3) == 0 {
				op.Source, op.Priority = fb.SourcePromo, 0
			} else {
				op.PaidUSD = fb.USD(rng.Int64N(int64(op.Amount)/50 + 1))
			}
			if rng.IntN(2) == 0 {
				op.ExpiresAt = at.Add(time.Duration(1+rng.IntN(72)) * time.Hour)
				if rng.IntN(3) == 0 {
					op.RolloverMax, op.RolloverUntil = op.Amount/3, op.ExpiresAt.Add(24*time.Hour)
				}
			}
			submit(op)
		case k < 9:
			op := fb.Op{Kind: fb.OpHold, Customer: c, Amount: credits(30), TTL: time.Duration(1+rng.IntN(240)) * time.Minute, AllowPartial: rng.IntN(2) == 0}
			if res, ok := submit(op); ok {
				holds = append(holds, res.Hold.ID)
			}
		case k < 14 && len(holds) > 0:
			id := holds[rng.IntN(len(holds))]
			op := fb.Op{Kind: fb.OpCapture, HoldID: id}
			switch rng.IntN(4) {
			case 0:
				op.Full = true
			case 1:
				op.Kind = fb.OpRelease
			default:
				op.Amount = credits(35)
				op.AllowOverCapture = rng.IntN(2) == 0
				if rng.IntN(2) == 0 {
					op.Usage = usage(op.Amount) // as the gateway settles
				}
			}
			submit(op)
		case k < 18: // a debit: a metered event, or a bare one
			op := fb.Op{Kind: fb.OpDebit, Customer: c, Amount: credits(20), AllowUncollected: rng.IntN(3) == 0}
			if rng.IntN(3) > 0 {
				event++
				op.Event, op.Digest, op.Usage = fmt.Sprintf("test\x1fe-%d", event), "d", usage(op.Amount)
			}
			submit(op)
		default:
			if _, err := eng.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Everything expires in the end.
	mu.Lock()
	now = now.Add(10 * 24 * time.Hour)
	end := now
	mu.Unlock()
	if _, err := eng.Sweep(ctx); err != nil {
		t.Fatal(err)
	}

	// What the ledger recognised, from its journal.
	type sums struct {
		revenue, breakage    fb.USD
		charged, uncollected fb.Amount
	}
	byCustomer, byDay := map[string]*sums{}, map[string]*sums{}
	var total sums
	repaid := fb.USD(0)
	add := func(m map[string]*sums, k string, x sums) {
		if m[k] == nil {
			m[k] = &sums{}
		}
		m[k].revenue += x.revenue
		m[k].breakage += x.breakage
		m[k].charged += x.charged
		m[k].uncollected += x.uncollected
	}
	if _, err := s.Snapshot(ctx, func(e *fb.JournalEntry) error {
		var x sums
		for _, c := range e.Result.Consumed {
			x.revenue += c.USD
			if e.Op.Kind == fb.OpGrant {
				repaid += c.USD
			}
		}
		for _, c := range e.Result.Expired {
			x.breakage += c.USD
		}
		if e.Op.Kind == fb.OpCapture || e.Op.Kind == fb.OpDebit {
			x.charged, x.uncollected = e.Result.Captured, e.Result.Uncollected
		}
		add(byCustomer, e.Op.Customer, x)
		add(byDay, e.Op.At.UTC().Format(time.DateOnly), x)
		add(map[string]*sums{"": &total}, "", x)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if repaid == 0 || total.breakage == 0 || total.uncollected == 0 {
		t.Fatalf("the scenario lacks repayments (%s), breakage (%s) or uncollected credit (%s)", repaid, total.breakage, total.uncollected)
	}
	f := fb.EconFilter{From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: end.Truncate(24*time.Hour).AddDate(0, 0, 1)}
	// Every grouping at once is each grouping alone.
	all := []fb.GroupBy{fb.GroupCustomer, fb.GroupDay, fb.GroupModel, fb.GroupProvider, fb.GroupProduct, fb.GroupPlan}
	for _, c := range []string{"", "c-heavy", "nobody"} {
		f.Customer = c
		by, err := s.EconomicsBy(ctx, f, all...)
		if err != nil || len(by) != len(all) {
			t.Fatalf("EconomicsBy: %d groupings, %v", len(by), err)
		}
		for i, g := range all {
			f.GroupBy = g
			one, err := s.Economics(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := js(by[i]), js(one); got != want {
				t.Errorf("customer %q by %s: EconomicsBy = %s; Economics = %s", c, g, got, want)
			}
		}
	}
	f.Customer = ""
	for _, g := range []struct {
		by   string
		want map[string]*sums
	}{{"customer", byCustomer}, {"day", byDay}, {"model", nil}, {"provider", nil}} {
		f.GroupBy = fb.GroupBy(g.by)
		in, err := s.Economics(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		rows, tot, err := economics.Report(in, fb.GroupBy(g.by), economics.Config{})
		if err != nil {
			t.Fatal(err)
		}
		// The daily sums' rows, folded by this grouping, are the same sums.
		// (Ordered here bytewise: PostgreSQL orders text by its collation.)
		if got, want := js(foldDaily(t, s, f)), js(sortRows(in)); got != want {
			t.Errorf("by %s: the daily sums folded = %s; Economics = %s", g.by, got, want)
		}
		if tot.RevenueUSD != total.revenue || tot.CreditsConsumed != total.charged || tot.Uncollected != total.uncollected {
			t.Errorf("by %s: totals revenue %s, credits %s, uncollected %s; the journal recognised %s, charged %s, left %s uncollected",
				g.by, tot.RevenueUSD, tot.CreditsConsumed, tot.Uncollected, total.revenue, total.charged, total.uncollected)
		}
		if g.want == nil {
			continue
		}
		if tot.BreakageUSD != total.breakage {
			t.Errorf("by %s: total breakage %s, the journal's %s", g.by, tot.BreakageUSD, total.breakage)
		}
		got := map[string]bool{}
		for _, r := range rows {
			got[r.Key] = true
			w := g.want[r.Key]
			if w == nil {
				w = &sums{}
			}
			if r.RevenueUSD != w.revenue || r.BreakageUSD != w.breakage || r.CreditsConsumed != w.charged || r.Uncollected != w.uncollected {
				t.Errorf("by %s, %s: got revenue %s, breakage %s, credits %s, uncollected %s; want %s, %s, %s, %s",
					g.by, r.Key, r.RevenueUSD, r.BreakageUSD, r.CreditsConsumed, r.Uncollected, w.revenue, w.breakage, w.charged, w.uncollected)
			}
		}
		for k, w := range g.want {
			if !got[k] && *w != (sums{}) {
				t.Errorf("by %s: no row for %s, which the journal gives %+v", g.by, k, *w)
			}
		}
	}
}

// testRevenue: the revenue of ops without a usage row (here a grant that
// repays debt, recognised at the grant) is kept in the daily sums under
// model "" by the transaction that journals the op, beside the day's
// breakage, and goes with it when the transaction rolls back.
func testRevenue(t *testing.T, s fb.Store) {
	ctx := context.Background()
	customer(t, s, "acme")
	apply(t, s, "acme", fb.Op{Kind: fb.OpLimit, Amount: amt("10"), At: t0}, fb.Op{Kind: fb.OpDebit, Amount: amt("4"), At: t0})
	write := func(id string, at time.Time, fail error) error {
		return s.Write(ctx, func(tx fb.WriteTx) error {
			accts, err := tx.LoadAccounts(ctx, []string{"acme"})
			if err != nil {
				return err
			}
			op := fb.Op{Kind: fb.OpGrant, Customer: "acme", LotID: id, Key: "k-" + id, Amount: amt("10"), Source: fb.SourcePurchase, PaidUSD: 3_000_000, At: at}
			tch := ledger.NewTouched()
			res, err := ledger.Apply(accts["acme"], &op, tch)
			if err != nil {
				return err
			}
			var lots []*fb.Lot
			for _, l := range tch.Lots {
				lots = append(lots, l)
			}
			entries := []*fb.JournalEntry{{Op: op, Fingerprint: op.Fingerprint(), Result: res}}
			if err := tx.SaveAccount(ctx, accts["acme"], lots, nil); err != nil {
				return err
			}
			if err := tx.AppendJournal(ctx, entries); err != nil {
				return err
			}
			if err := tx.AppendRevenue(ctx, ledger.Unattributed(entries)); err != nil {
				return err
			}
			if err := tx.AppendBreakage(ctx, []fb.Breakage{{Customer: "acme", At: at, Credits: amt("1"), USD: 5}}); err != nil {
				return err
			}
			return fail
		})
	}
	day2 := t0.Add(24 * time.Hour)
	boom := fmt.Errorf("boom")
	if err := write("lot_x", day2, boom); err != boom {
		t.Fatalf("failing write: got %v, want %v", err, boom)
	}
	if err := write("lot_1", day2, nil); err != nil {
		t.Fatal(err)
	}
	// 4 of the lot's 10 repay the debt: 4 × $0.30 = $1.20, recognised now.
	if err := s.Write(ctx, func(tx fb.WriteTx) error {
		return tx.AppendRevenue(ctx, []fb.Revenue{{Customer: "acme", At: day2, Credits: amt("2"), USD: 7, Uncollected: amt("0.5")}})
	}); err != nil {
		t.Fatal(err)
	}
	rows, err := s.Economics(ctx, fb.EconFilter{GroupBy: "day"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s/%s req=%d cr=%s rev=%s unc=%s brk=%s/%s", r.Key, r.Model, r.Requests, r.Credits, r.RevenueUSD, r.Uncollected, r.BreakageCredits, r.BreakageUSD))
	}
	want := []string{"2026-11-02/ req=0 cr=2 rev=1.200007 unc=0.5 brk=1/0.000005"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("economics by day: got %q, want %q", got, want)
	}
}

// foldDaily sums the rows DailySums lists by f's grouping and model, as
// Economics does (and orders them so): the reference the store's own
// sums are held to.
func foldDaily(t *testing.T, s fb.Store, f fb.EconFilter) []fb.EconRow {
	t.Helper()
	pinned := 0
	rows, err := s.DailySums(context.Background(), f.From, f.To, func() { pinned++ })
	if err != nil || pinned != 1 {
		t.Fatalf("DailySums: %v, pinned called %d times; want once", err, pinned)
	}
	type k struct{ key, model string }
	m := map[k]*fb.EconRow{}
	for _, r := range rows {
		if f.Customer != "" && r.Customer != f.Customer {
			continue
		}
		key := map[fb.GroupBy]string{fb.GroupCustomer: r.Customer, fb.GroupDay: r.Day, fb.GroupModel: r.Model, fb.GroupProvider: r.Provider,
			fb.GroupProduct: cmp.Or(r.Product, fb.ProductInference), fb.GroupPlan: r.Plan}[f.GroupBy]
		e := m[k{key, r.Model}]
		if e == nil {
			e = &fb.EconRow{Key: key, Model: r.Model}
			m[k{key, r.Model}] = e
		}
		e.Requests += r.Requests
		e.Credits += r.Credits
		e.RevenueUSD += r.RevenueUSD
		e.CostUSD += r.CostUSD
		e.Uncollected += r.Uncollected
		e.BreakageCredits += r.BreakageCredits
		e.BreakageUSD += r.BreakageUSD
	}
	var out []fb.EconRow
	for _, e := range m {
		out = append(out, *e)
	}
	return sortRows(out)
}

func sortRows(rs []fb.EconRow) []fb.EconRow {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b fb.EconRow) int { return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Model, b.Model)) })
	return rs
}
