// Package storetest is the contract every farebox.Store passes: customers,
// account state round trips, atomic writes, idempotency-key and hold
// lookups, dead lots, the expiry index, snapshots, serialised writers, and
// the catalog: plans, subscriptions, keyed requests, rate cards, API keys,
// global event keys and usage rows, the daily sums of revenue and
// breakage, and that the economics report adds up to what the ledger
// recognised; the dashboard's reads, sessions and verifications; GPU
// pools, their capacity logs and their leases; and what sponsored
// suggestions keep: account kinds and opt-outs, campaigns, their stats,
// frequency-cap counters and settings.
// A store's own tests call Run with a function that opens a fresh, empty
// store.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/ledger"
)

// Opener returns a fresh, empty store; the test closes it.
type Opener func(t *testing.T) fb.Store

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// Run runs the contract against stores made by open.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, fb.Store)
	}{
		{"Customers", testCustomers},
		{"EmptyAccount", testEmptyAccount},
		{"StateRoundTrip", testStateRoundTrip},
		{"WriteRollsBack", testWriteRollsBack},
		{"JournalAndKeys", testJournalAndKeys},
		{"Holds", testHolds},
		{"DeadLots", testDeadLots},
		{"DueAccounts", testDueAccounts},
		{"Snapshot", testSnapshot},
		{"SerialWrites", testSerialWrites},
		{"Plans", testPlans},
		{"Subscriptions", testSubscriptions},
		{"KeyedRequests", testKeyedRequests},
		{"Prices", testPrices},
		{"Keys", testKeys},
		{"EventsAndUsage", testEventsAndUsage},
		{"Revenue", testRevenue},
		{"EconomicsIdentity", testEconomicsIdentity},
		{"DashboardReads", testDashboardReads},
		{"Sessions", testSessions},
		{"Pools", testPools},
		{"Leases", testLeases},
		{"Billing", testBilling},
		{"JournalBalances", testJournalBalances},
		{"Verifications", testVerifications},
		{"Kinds", testKinds},
		{"Campaigns", testCampaigns},
		{"CampaignStats", testCampaignStats},
		{"Views", testViews},
		{"Settings", testSettings},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			defer s.Close()
			tc.fn(t, s)
		})
	}
}

func customer(t *testing.T, s fb.Store, id string) {
	t.Helper()
	if err := s.CreateCustomer(context.Background(), fb.Customer{ID: id, Name: "Name of " + id, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
}

// apply runs ops through the state machine on the stored account and saves
// the outcome with its journal entries in one write.
func apply(t *testing.T, s fb.Store, c string, ops ...fb.Op) []fb.Result {
	t.Helper()
	var results []fb.Result
	err := s.Write(context.Background(), func(tx fb.WriteTx) error {
		results = nil
		accts, err := tx.LoadAccounts(context.Background(), []string{c})
		if err != nil {
			return err
		}
		a, ok := accts[c]
		if !ok {
			return fmt.Errorf("no account %s", c)
		}
		ledger.SortLots(a.Lots)
		touched := ledger.NewTouched()
		var entries []*fb.JournalEntry
		for _, op := range ops {
			op.Customer = c
			if res, changed := ledger.Advance(a, op.At, touched); changed {
				entries = append(entries, &fb.JournalEntry{Op: fb.Op{Kind: fb.OpExpire, Customer: c, At: op.At}, Result: res})
			}
			if op.Kind == fb.OpExpire {
				continue
			}
			res, err := ledger.Apply(a, &op, touched)
			if err != nil {
				return err
			}
			results = append(results, res)
			entries = append(entries, &fb.JournalEntry{Op: op, Fingerprint: op.Fingerprint(), Result: res})
		}
		if err := ledger.Check(a); err != nil {
			return err
		}
		var lots []*fb.Lot
		var holds []*fb.Hold
		for _, l := range touched.Lots {
			lots = append(lots, l)
		}
		for _, h := range touched.Holds {
			holds = append(holds, h)
		}
		if err := tx.SaveAccount(context.Background(), a, lots, holds); err != nil {
			return err
		}
		return tx.AppendJournal(context.Background(), entries)
	})
	if err != nil {
		t.Fatal(err)
	}
	return results
}

func amt(s string) fb.Amount {
	a, err := fb.ParseAmount(s)
	if err != nil {
		panic(err)
	}
	return a
}

func grant(id, amount string, at, expires time.Time) fb.Op {
	return fb.Op{Kind: fb.OpGrant, LotID: id, Amount: amt(amount), Source: fb.SourcePurchase, Priority: 20, At: at, ExpiresAt: expires, PaidUSD: 1_500_000, Key: "k-" + id}
}

func hold(id, amount string, at time.Time, ttl time.Duration) fb.Op {
	return fb.Op{Kind: fb.OpHold, HoldID: id, Amount: amt(amount), At: at, TTL: ttl, Key: "k-" + id}
}

func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func sortedLots(ls []*fb.Lot) string {
	ls = slices.Clone(ls)
	slices.SortFunc(ls, func(a, b *fb.Lot) int { return cmpString(a.ID, b.ID) })
	return js(ls)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func testCustomers(t *testing.T, s fb.Store) {
	ctx := context.Background()
	for _, id := range []string{"cus_c", "cus_a", "cus_b"} {
		customer(t, s, id)
	}
	err := s.CreateCustomer(ctx, fb.Customer{ID: "cus_a", Name: "again", CreatedAt: t0})
	if fb.ErrorType(err) != fb.EConflict {
		t.Fatalf("duplicate customer: %v", err)
	}
	// All or none.
	err = s.CreateCustomers(ctx, []fb.Customer{{ID: "cus_d", CreatedAt: t0}, {ID: "cus_b", CreatedAt: t0}})
	if fb.ErrorType(err) != fb.EConflict {
		t.Fatalf("batch with a duplicate: %v", err)
	}
	if _, err := s.Customer(ctx, "cus_d"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("half a failed batch was kept: %v", err)
	}
	if err := s.CreateCustomers(ctx, []fb.Customer{{ID: "cus_d", CreatedAt: t0}, {ID: "cus_e", CreatedAt: t0}}); err != nil {
		t.Fatal(err)
	}
	c, err := s.Customer(ctx, "cus_b")
	if err != nil || c.ID != "cus_b" || c.Name != "Name of cus_b" || !c.CreatedAt.Equal(t0) {
		t.Fatalf("Customer = %+v, %v", c, err)
	}
	if _, err := s.Customer(ctx, "cus_zz"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("unknown customer: %v", err)
	}
	page, err := s.Customers(ctx, "", 2)
	if err != nil || len(page) != 2 || page[0].ID != "cus_a" || page[1].ID != "cus_b" {
		t.Fatalf("first page %+v, %v", page, err)
	}
	page, err = s.Customers(ctx, "cus_b", 10)
	if err != nil || len(page) != 3 || page[0].ID != "cus_c" || page[2].ID != "cus_e" {
		t.Fatalf("second page %+v, %v", page, err)
	}
}

func testEmptyAccount(t *testing.T, s fb.Store) {
	customer(t, s, "cus_a")
	a, err := s.Account(context.Background(), "cus_a")
	if err != nil {
		t.Fatal(err)
	}
	if a.Customer != "cus_a" || a.Granted != 0 || len(a.Lots) != 0 || len(a.Holds) != 0 || a.Holds == nil || a.Closed == nil {
		t.Fatalf("new account %+v", a)
	}
	if _, err := s.Account(context.Background(), "cus_nobody"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("unknown account: %v", err)
	}
	err = s.Write(context.Background(), func(tx fb.WriteTx) error {
		got, err := tx.LoadAccounts(context.Background(), []string{"cus_a", "cus_nobody"})
		if err != nil {
			return err
		}
		if _, ok := got["cus_nobody"]; ok || got["cus_a"] == nil || len(got) != 1 {
			return fmt.Errorf("LoadAccounts = %v", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testStateRoundTrip: what is saved is what is read, field by field.
func testStateRoundTrip(t *testing.T, s fb.Store) {
	customer(t, s, "cus_a")
	exp := t0.Add(72 * time.Hour).Add(123 * time.Nanosecond)
	apply(t, s, "cus_a",
		grant("lot_1", "100.000001", t0, exp),
		grant("lot_2", "5", t0, time.Time{}),
		fb.Op{Kind: fb.OpGrant, LotID: "lot_3", Amount: amt("7"), Source: fb.SourcePromo, At: t0, EffectiveAt: t0.Add(time.Hour)},
		hold("hold_1", "102", t0, time.Minute),
		fb.Op{Kind: fb.OpDebit, Amount: amt("0.5"), At: t0},
	)
	// Compare with the same ops applied in memory.
	want := fb.NewAccount("cus_a")
	tch := ledger.NewTouched()
	for _, op := range []fb.Op{
		grant("lot_1", "100.000001", t0, exp), grant("lot_2", "5", t0, time.Time{}),
		{Kind: fb.OpGrant, LotID: "lot_3", Amount: amt("7"), Source: fb.SourcePromo, At: t0, EffectiveAt: t0.Add(time.Hour)},
		hold("hold_1", "102", t0, time.Minute), {Kind: fb.OpDebit, Amount: amt("0.5"), At: t0},
	} {
		op.Customer = "cus_a"
		if _, err := ledger.Apply(want, &op, tch); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Account(context.Background(), "cus_a")
	if err != nil {
		t.Fatal(err)
	}
	if got.Granted != want.Granted || got.Charged != want.Charged || got.OverdraftReserved != want.OverdraftReserved {
		t.Fatalf("totals: got %+v, want %+v", got, want)
	}
	if g, w := sortedLots(got.Lots), sortedLots(want.Lots); g != w {
		t.Fatalf("lots:\n got %s\nwant %s", g, w)
	}
	if g, w := js(got.Holds), js(want.Holds); g != w {
		t.Fatalf("holds:\n got %s\nwant %s", g, w)
	}
	if err := ledger.Check(got); err != nil {
		t.Fatal(err)
	}
}

func testWriteRollsBack(t *testing.T, s fb.Store) {
	customer(t, s, "cus_a")
	apply(t, s, "cus_a", grant("lot_1", "10", t0, time.Time{}))
	boom := errors.New("boom")
	err := s.Write(context.Background(), func(tx fb.WriteTx) error {
		accts, err := tx.LoadAccounts(context.Background(), []string{"cus_a"})
		if err != nil {
			return err
		}
		a := accts["cus_a"]
		op := hold("hold_1", "4", t0, time.Minute)
		op.Customer = "cus_a"
		tch := ledger.NewTouched()
		res, err := ledger.Apply(a, &op, tch)
		if err != nil {
			return err
		}
		if err := tx.SaveAccount(context.Background(), a, nil, []*fb.Hold{a.Holds["hold_1"]}); err != nil {
			return err
		}
		if err := tx.AppendJournal(context.Background(), []*fb.JournalEntry{{Op: op, Fingerprint: op.Fingerprint(), Result: res}}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write returned %v", err)
	}
	a, err := s.Account(context.Background(), "cus_a")
	if err != nil || len(a.Holds) != 0 || a.Lots[0].Held != 0 {
		t.Fatalf("rolled-back write left %+v, %v", a, err)
	}
	if _, err := s.Hold(context.Background(), "hold_1"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("rolled-back hold: %v", err)
	}
	n := 0
	if _, err := s.Snapshot(context.Background(), func(*fb.JournalEntry) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("journal has %d entries after a rollback, want 1 (%v)", n, err)
	}
}

func testJournalAndKeys(t *testing.T, s fb.Store) {
	customer(t, s, "cus_a")
	customer(t, s, "cus_b")
	r1 := apply(t, s, "cus_a", grant("lot_1", "10", t0, time.Time{}))
	apply(t, s, "cus_b", grant("lot_2", "3", t0, time.Time{}))
	err := s.Write(context.Background(), func(tx fb.WriteTx) error {
		got, err := tx.LookupKeys(context.Background(), []fb.KeyRef{
			{Customer: "cus_a", Key: "k-lot_1"}, {Customer: "cus_b", Key: "k-lot_1"}, {Customer: "cus_a", Key: "nope"},
		})
		if err != nil {
			return err
		}
		e, ok := got[fb.KeyRef{Customer: "cus_a", Key: "k-lot_1"}]
		if !ok || len(got) != 1 {
			return fmt.Errorf("LookupKeys = %v", got)
		}
		if e.Op.LotID != "lot_1" || e.Fingerprint != e.Op.Fingerprint() || js(e.Result) != js(r1[0]) || e.Seq <= 0 {
			return fmt.Errorf("entry %+v", e)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The same key for the same customer is refused by the store itself.
	err = s.Write(context.Background(), func(tx fb.WriteTx) error {
		op := grant("lot_9", "1", t0, time.Time{})
		op.Key = "k-lot_1"
		op.Customer = "cus_a"
		return tx.AppendJournal(context.Background(), []*fb.JournalEntry{{Op: op, Fingerprint: op.Fingerprint()}})
	})
	if err == nil {
		t.Fatal("a second journal entry under one key was accepted")
	}
}

func testHolds(t *testing.T, s fb.Store) {
	customer(t, s, "cus_a")
	apply(t, s, "cus_a", grant("lot_1", "10", t0, time.Time{}), hold("hold_1", "4", t0, time.Minute), hold("hold_2", "1", t0, time.Minute))
	capture := fb.Op{Kind: fb.OpCapture, HoldID: "hold_1", Amount: amt("3"), At: t0.Add(time.Second)}
	res := apply(t, s, "cus_a", capture)
	h, err := s.Hold(context.Background(), "hold_1")
	if err != nil {
		t.Fatal(err)
	}
	if h.Status != fb.HoldCaptured || h.Customer != "cus_a" || h.Resolution != capture.Fingerprint() || h.Result == nil || js(h.Result) != js(res[0]) || !h.ResolvedAt.Equal(capture.At) {
		t.Fatalf("captured hold %+v", h)
	}
	if h, err := s.Hold(context.Background(), "hold_2"); err != nil || h.Status != fb.HoldPending || h.Amount != amt("1") || len(h.Allocations) != 1 {
		t.Fatalf("pending hold %+v, %v", h, err)
	}
	if _, err := s.Hold(context.Background(), "hold_x"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("unknown hold: %v", err)
	}
	err = s.Write(context.Background(), func(tx fb.WriteTx) error {
		got, err := tx.LookupHolds(context.Background(), []string{"hold_1", "hold_2", "hold_x"})
		if err != nil {
			return err
		}
		if len(got) != 2 || got["hold_1"].Status != fb.HoldCaptured || got["hold_2"].Status != fb.HoldPending || got["hold_2"].Customer != "cus_a" {
			return fmt.Errorf("LookupHolds = %v", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Account(context.Background(), "cus_a")
	if err != nil || len(a.Holds) != 1 || a.Holds["hold_2"] == nil {
		t.Fatalf("account holds %v, %v", a.Holds, err)
	}
}

func testDeadLots(t *testing.T, s fb.Store) {
	customer(t, s, "cus_a")
	apply(t, s, "cus_a", grant("lot_1", "2", t0, time.Time{}), grant("lot_2", "5", t0.Add(time.Second), time.Time{}))
	apply(t, s, "cus_a", fb.Op{Kind: fb.OpDebit, Amount: amt("3"), At: t0.Add(2 * time.Second)})
	a, err := s.Account(context.Background(), "cus_a")
	if err != nil || len(a.Lots) != 1 || a.Lots[0].ID != "lot_2" || a.Lots[0].Remaining != amt("4") {
		t.Fatalf("live lots %s, %v", js(a.Lots), err)
	}
	d, err := s.Snapshot(context.Background(), func(*fb.JournalEntry) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	var dead *fb.Lot
	for _, l := range d.Accounts["cus_a"].Lots {
		if l.ID == "lot_1" {
			dead = l
		}
	}
	if dead == nil || dead.Consumed != amt("2") || dead.Remaining != 0 || dead.PaidUSD != 1_500_000 {
		t.Fatalf("dead lot %+v", dead)
	}
}

func testDueAccounts(t *testing.T, s fb.Store) {
	ctx := context.Background()
	for _, c := range []string{"cus_a", "cus_b", "cus_c"} {
		customer(t, s, c)
	}
	apply(t, s, "cus_a", grant("lot_a", "10", t0, time.Time{}), hold("hold_a", "1", t0, time.Minute))
	apply(t, s, "cus_b", grant("lot_b", "10", t0, t0.Add(time.Hour)))
	apply(t, s, "cus_c", grant("lot_c", "10", t0, t0.Add(time.Minute)), hold("hold_c", "10", t0, 2*time.Hour)) // fully held: nothing free to expire
	due := func(at time.Time, limit int) []string {
		t.Helper()
		got, err := s.DueAccounts(ctx, at, limit)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		return got
	}
	if got := due(t0.Add(59*time.Second), 10); len(got) != 0 {
		t.Fatalf("due too early: %v", got)
	}
	if got := due(t0.Add(time.Minute), 10); !slices.Equal(got, []string{"cus_a"}) {
		t.Fatalf("due at the hold's TTL: %v", got)
	}
	if got := due(t0.Add(time.Hour), 10); !slices.Equal(got, []string{"cus_a", "cus_b"}) {
		t.Fatalf("due at the lot's expiry: %v", got)
	}
	if got := due(t0.Add(time.Hour), 1); len(got) != 1 {
		t.Fatalf("limit 1 gave %v", got)
	}
	if got := due(t0.Add(3*time.Hour), 10); !slices.Equal(got, []string{"cus_a", "cus_b", "cus_c"}) {
		t.Fatalf("due later: %v", got)
	}
	// Once expired, nothing is due any more.
	for _, c := range []string{"cus_a", "cus_b", "cus_c"} {
		apply(t, s, c, fb.Op{Kind: fb.OpExpire, At: t0.Add(3 * time.Hour)})
	}
	if got := due(t0.Add(10*time.Hour), 10); len(got) != 0 {
		t.Fatalf("due after expiring: %v", got)
	}
}

func testSnapshot(t *testing.T, s fb.Store) {
	customer(t, s, "cus_a")
	customer(t, s, "cus_b")
	apply(t, s, "cus_a", grant("lot_1", "10", t0, time.Time{}), hold("hold_1", "4", t0, time.Minute))
	apply(t, s, "cus_b", grant("lot_2", "1", t0, time.Time{}))
	apply(t, s, "cus_a", fb.Op{Kind: fb.OpRelease, HoldID: "hold_1", At: t0.Add(time.Second)}, hold("hold_2", "2", t0.Add(time.Second), time.Minute))
	var kinds []string
	var last int64
	d, err := s.Snapshot(context.Background(), func(e *fb.JournalEntry) error {
		if e.Seq <= last {
			return fmt.Errorf("seq %d after %d", e.Seq, last)
		}
		last = e.Seq
		kinds = append(kinds, string(e.Op.Kind)+":"+e.Op.Customer)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"grant:cus_a", "hold:cus_a", "grant:cus_b", "release:cus_a", "hold:cus_a"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("journal %v, want %v", kinds, want)
	}
	a := d.Accounts["cus_a"]
	if len(d.Accounts) != 2 || a == nil || len(a.Holds) != 1 || a.Holds["hold_2"] == nil || a.Closed["hold_1"] == nil || a.Closed["hold_1"].Status != fb.HoldReleased {
		t.Fatalf("dump %s", js(d))
	}
	if len(d.Problems) != 0 {
		t.Fatalf("problems: %v", d.Problems)
	}
	rep, err := ledger.Verify(context.Background(), s)
	if err != nil || len(rep.Problems) != 0 || rep.Entries != 5 || rep.Accounts != 2 || rep.Holds != 2 {
		t.Fatalf("verify %+v, %v", rep, err)
	}
	// A failing callback aborts the snapshot with its error.
	boom := errors.New("boom")
	if _, err := s.Snapshot(context.Background(), func(*fb.JournalEntry) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("snapshot with a failing callback: %v", err)
	}
}

// testSerialWrites: concurrent write transactions never lose an update.
func testSerialWrites(t *testing.T, s fb.Store) {
	customer(t, s, "cus_a")
	apply(t, s, "cus_a", grant("lot_1", "1000", t0, time.Time{}))
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				err := s.Write(context.Background(), func(tx fb.WriteTx) error {
					accts, err := tx.LoadAccounts(context.Background(), []string{"cus_a"})
					if err != nil {
						return err
					}
					a := accts["cus_a"]
					op := fb.Op{Kind: fb.OpDebit, Customer: "cus_a", Amount: amt("1"), At: t0, Key: fmt.Sprintf("w%d-%d", w, i)}
					tch := ledger.NewTouched()
					res, err := ledger.Apply(a, &op, tch)
					if err != nil {
						return err
					}
					var lots []*fb.Lot
					for _, l := range tch.Lots {
						lots = append(lots, l)
					}
					if err := tx.SaveAccount(context.Background(), a, lots, nil); err != nil {
						return err
					}
					return tx.AppendJournal(context.Background(), []*fb.JournalEntry{{Op: op, Fingerprint: op.Fingerprint(), Result: res}})
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	a, err := s.Account(context.Background(), "cus_a")
	if err != nil || a.Charged != amt("80") || a.Lots[0].Remaining != amt("920") {
		t.Fatalf("after 80 concurrent debits: charged %s, %v", a.Charged, err)
	}
	rep, err := ledger.Verify(context.Background(), s)
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify %+v, %v", rep, err)
	}
}
