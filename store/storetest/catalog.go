package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	fb "farebox"
	"farebox/ledger"
)

func testPlans(t *testing.T, s fb.Store) {
	ctx := context.Background()
	p := fb.Plan{ID: "pro", Name: "Pro", PriceUSD: 20 * fb.Micro, Period: fb.PeriodMonth, Credits: amt("2000"),
		RolloverMax: amt("500"), Models: []string{"gpt-4o*"}, RPM: 600, CreatedAt: t0}
	if err := s.CreatePlan(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := s.CreatePlan(ctx, p); fb.ErrorType(err) != fb.EConflict {
		t.Fatalf("second create: %v", err)
	}
	if err := s.CreatePlan(ctx, fb.Plan{ID: "free", Period: fb.PeriodMonth, Models: []string{"*"}, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Plan(ctx, "pro")
	if err != nil || js(got) != js(p) {
		t.Fatalf("plan: %s, %v; want %s", js(got), err, js(p))
	}
	if _, err := s.Plan(ctx, "nope"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("unknown plan: %v", err)
	}
	all, err := s.Plans(ctx)
	if err != nil || len(all) != 2 || all[0].ID != "free" || all[1].ID != "pro" {
		t.Fatalf("plans: %s, %v", js(all), err)
	}
	// In use (now or from the next period) → conflict; free again → gone.
	customer(t, s, "acme")
	sub := fb.Subscription{Customer: "acme", Plan: "free", NextPlan: "pro", Anchor: t0, PeriodStart: t0, PeriodEnd: t0.AddDate(0, 1, 0)}
	if err := s.PutSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"pro", "free"} {
		if err := s.DeletePlan(ctx, id); fb.ErrorType(err) != fb.EConflict {
			t.Fatalf("delete %s in use: %v", id, err)
		}
	}
	sub.NextPlan = ""
	if err := s.PutSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePlan(ctx, "pro"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePlan(ctx, "pro"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("delete twice: %v", err)
	}
}

func testSubscriptions(t *testing.T, s fb.Store) {
	ctx := context.Background()
	for i, c := range []string{"a", "b", "c"} {
		customer(t, s, c)
		start := t0.AddDate(0, 0, i)
		sub := fb.Subscription{Customer: c, Plan: "pro", Anchor: start, PeriodStart: start, PeriodEnd: start.AddDate(0, 0, 7), UpdatedAt: t0}
		if err := s.PutSubscription(ctx, sub); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Subscription(ctx, "nobody"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("no subscription: %v", err)
	}
	due, err := s.DueSubscriptions(ctx, t0.AddDate(0, 0, 8), 10)
	if err != nil || len(due) != 2 || due[0].Customer != "a" || due[1].Customer != "b" {
		t.Fatalf("due: %s, %v", js(due), err)
	}
	// Renewed: the period moves on and a is no longer due.
	a := due[0]
	a.PeriodStart, a.PeriodEnd = a.PeriodEnd, a.PeriodEnd.AddDate(0, 0, 7)
	if err := s.PutSubscription(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := s.Subscription(ctx, "a")
	if err != nil || js(got) != js(a) {
		t.Fatalf("subscription: %s, %v", js(got), err)
	}
	due, err = s.DueSubscriptions(ctx, t0.AddDate(0, 0, 8), 10)
	if err != nil || len(due) != 1 || due[0].Customer != "b" {
		t.Fatalf("due after renewal: %s, %v", js(due), err)
	}
	// Compare-and-swap: from the stored state it applies; from a stale
	// one (the period or the next plan moved on) it changes nothing.
	b := due[0]
	changed := b
	changed.NextPlan = "max"
	if err := s.SwapSubscription(ctx, b, changed); err != nil {
		t.Fatalf("swap from the stored state: %v", err)
	}
	stale := b
	stale.PeriodStart, stale.PeriodEnd = b.PeriodEnd, b.PeriodEnd.AddDate(0, 0, 7)
	if err := s.SwapSubscription(ctx, b, stale); !errors.Is(err, fb.ErrSubscriptionChanged) {
		t.Fatalf("swap from a stale state: %v", err)
	}
	if got, err := s.Subscription(ctx, "b"); err != nil || js(got) != js(changed) {
		t.Fatalf("after the refused swap: %s, %v", js(got), err)
	}
	if err := s.SwapSubscription(ctx, fb.Subscription{Customer: "nobody"}, b); !errors.Is(err, fb.ErrSubscriptionChanged) {
		t.Fatalf("swap of no subscription: %v", err)
	}
}

func testPrices(t *testing.T, s fb.Store) {
	ctx := context.Background()
	v1 := fb.Price{Model: "gpt-4o", Rates: fb.Rates{InputPerMTok: amt("250"), OutputPerMTok: amt("1000")}, EffectiveFrom: t0, CreatedAt: t0}
	v2 := v1
	v2.EffectiveFrom, v2.InputPerMTok = t0.AddDate(0, 1, 0), amt("200")
	sora := fb.Price{Model: "sora-1", Rates: fb.Rates{PerVideoSecond: amt("0.5")}, EffectiveFrom: t0, CreatedAt: t0}
	for _, p := range []fb.Price{v2, sora, v1} {
		if err := s.PutPrice(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// The same version again replaces it.
	v1.OutputPerMTok = amt("900")
	if err := s.PutPrice(ctx, v1); err != nil {
		t.Fatal(err)
	}
	got, err := s.Prices(ctx)
	if err != nil || js(got) != js([]fb.Price{v1, v2, sora}) {
		t.Fatalf("prices: %s, %v", js(got), err)
	}
}

func testKeys(t *testing.T, s fb.Store) {
	ctx := context.Background()
	customer(t, s, "acme")
	k1 := fb.APIKey{ID: "key_1", Customer: "acme", Name: "ci", Prefix: "fbk_abcd", Hash: []byte("hash-one-0123456789abcdef0123456"), CreatedAt: t0}
	k2 := fb.APIKey{ID: "key_2", Customer: "acme", Name: "prod", Prefix: "fbk_efgh", Hash: []byte("hash-two-0123456789abcdef0123456"), CreatedAt: t0}
	for _, k := range []fb.APIKey{k1, k2} {
		if err := s.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	dup := k2
	dup.ID = "key_3"
	if err := s.CreateKey(ctx, dup); fb.ErrorType(err) != fb.EConflict {
		t.Fatalf("a second key with the same hash: %v", err)
	}
	got, err := s.KeyByHash(ctx, k2.Hash)
	if err != nil || got.ID != "key_2" || !bytes.Equal(got.Hash, k2.Hash) || got.Customer != "acme" {
		t.Fatalf("by hash: %+v, %v", got, err)
	}
	if _, err := s.KeyByHash(ctx, []byte("nope")); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("unknown hash: %v", err)
	}
	at := t0.Add(time.Hour)
	r, err := s.RevokeKey(ctx, "key_1", at)
	if err != nil || !r.RevokedAt.Equal(at) {
		t.Fatalf("revoke: %+v, %v", r, err)
	}
	if r, err := s.RevokeKey(ctx, "key_1", at.Add(time.Hour)); err != nil || !r.RevokedAt.Equal(at) {
		t.Fatalf("revoke twice keeps the first time: %+v, %v", r, err)
	}
	if _, err := s.RevokeKey(ctx, "key_9", at); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("revoke unknown: %v", err)
	}
	keys, err := s.Keys(ctx, "acme")
	if err != nil || len(keys) != 2 || keys[0].ID != "key_1" || keys[0].RevokedAt.IsZero() || !keys[1].RevokedAt.IsZero() {
		t.Fatalf("keys: %+v, %v", keys, err)
	}
	if got, err := s.KeyByHash(ctx, k1.Hash); err != nil || got.RevokedAt.IsZero() {
		t.Fatalf("a revoked key by hash: %+v, %v", got, err)
	}
}

// testEventsAndUsage: an event key is global (one journal entry across
// customers), a second recording of it rolls the write back, and usage rows
// written with the debit sum by every grouping.
func testEventsAndUsage(t *testing.T, s fb.Store) {
	ctx := context.Background()
	customer(t, s, "acme")
	customer(t, s, "beta")
	apply(t, s, "acme", grant("lot_a", "100", t0, time.Time{}))
	apply(t, s, "beta", grant("lot_b", "100", t0, time.Time{}))
	day2 := t0.Add(24 * time.Hour)
	usage := []*fb.Usage{
		{ID: "e1", Source: "video", Customer: "acme", Model: "sora-1", At: t0, Quantities: fb.Quantities{VideoMicros: 12_000_000}, Credits: amt("6")},
		{ID: "e2", Source: "video", Customer: "acme", Model: "gpt-4o", Provider: "openai", Plan: "pro", At: day2, Quantities: fb.Quantities{InputTokens: 1000, OutputTokens: 500}, Credits: amt("0.75"), CostUSD: 7500, RevenueUSD: 5000, Uncollected: amt("0.25")},
		{ID: "e3", Source: "video", Customer: "beta", Model: "gpt-4o", Provider: "openai", Product: fb.ProductLease, Plan: "free", At: day2, Quantities: fb.Quantities{InputTokens: 10, CacheWriteTokens: 40}, Credits: amt("0.0025"), CostUSD: 25, RevenueUSD: 20},
	}
	write := func(c string, u *fb.Usage) error {
		return s.Write(ctx, func(tx fb.WriteTx) error {
			accts, err := tx.LoadAccounts(ctx, []string{c})
			if err != nil {
				return err
			}
			op := fb.Op{Kind: fb.OpDebit, Customer: c, Amount: u.Credits, At: u.At, Event: "video\x1f" + u.ID, Digest: "d-" + u.ID, Usage: u}
			res, err := ledger.Apply(accts[c], &op, ledger.NewTouched())
			if err != nil {
				return err
			}
			if err := tx.SaveAccount(ctx, accts[c], nil, nil); err != nil {
				return err
			}
			if err := tx.AppendJournal(ctx, []*fb.JournalEntry{{Op: op, Fingerprint: op.Fingerprint(), Result: res}}); err != nil {
				return err
			}
			return tx.AppendUsage(ctx, []*fb.Usage{u})
		})
	}
	for _, u := range usage {
		if err := write(u.Customer, u); err != nil {
			t.Fatal(err)
		}
	}
	// The key of e1, used again by another customer: rolled back whole.
	again := *usage[0]
	again.Customer = "beta"
	if err := write("beta", &again); err == nil {
		t.Fatal("an event key recorded twice")
	}
	err := s.Write(ctx, func(tx fb.WriteTx) error {
		got, err := tx.LookupKeys(ctx, []fb.KeyRef{{Key: "video\x1fe1"}, {Key: "video\x1fe3"}, {Key: "video\x1fe9"}, {Customer: "acme", Key: "video\x1fe1"}})
		if err != nil {
			return err
		}
		if len(got) != 2 || got[fb.KeyRef{Key: "video\x1fe1"}].Op.Customer != "acme" || got[fb.KeyRef{Key: "video\x1fe3"}].Op.Customer != "beta" {
			t.Errorf("event keys: %s", js(got))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(f fb.UsageFilter, want string) {
		t.Helper()
		rows, err := s.Usage(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		for _, r := range rows {
			b.WriteString(js(r) + "\n")
		}
		if b.String() != want {
			t.Errorf("usage %+v:\n%s\nwant\n%s", f, b.String(), want)
		}
	}
	check(fb.UsageFilter{GroupBy: "model"},
		`{"key":"gpt-4o","requests":2,"input_tokens":1010,"output_tokens":500,"cache_write_tokens":40,"credits":"0.7525","cost_usd":"0.007525"}`+"\n"+
			`{"key":"sora-1","requests":1,"video_us":12000000,"credits":"6","cost_usd":"0"}`+"\n")
	check(fb.UsageFilter{GroupBy: "day", Customer: "acme"},
		`{"key":"2026-11-01","requests":1,"video_us":12000000,"credits":"6","cost_usd":"0"}`+"\n"+
			`{"key":"2026-11-02","requests":1,"input_tokens":1000,"output_tokens":500,"credits":"0.75","cost_usd":"0.0075"}`+"\n")
	check(fb.UsageFilter{GroupBy: "customer", From: day2, To: day2.Add(time.Second)},
		`{"key":"acme","requests":1,"input_tokens":1000,"output_tokens":500,"credits":"0.75","cost_usd":"0.0075"}`+"\n"+
			`{"key":"beta","requests":1,"input_tokens":10,"cache_write_tokens":40,"credits":"0.0025","cost_usd":"0.000025"}`+"\n")
	check(fb.UsageFilter{GroupBy: "provider", To: day2},
		`{"key":"","requests":1,"video_us":12000000,"credits":"6","cost_usd":"0"}`+"\n")
	check(fb.UsageFilter{GroupBy: fb.GroupProduct},
		`{"key":"inference","requests":2,"input_tokens":1000,"output_tokens":500,"video_us":12000000,"credits":"6.75","cost_usd":"0.0075"}`+"\n"+
			`{"key":"lease","requests":1,"input_tokens":10,"cache_write_tokens":40,"credits":"0.0025","cost_usd":"0.000025"}`+"\n")
	check(fb.UsageFilter{GroupBy: fb.GroupPlan},
		`{"key":"","requests":1,"video_us":12000000,"credits":"6","cost_usd":"0"}`+"\n"+
			`{"key":"free","requests":1,"input_tokens":10,"cache_write_tokens":40,"credits":"0.0025","cost_usd":"0.000025"}`+"\n"+
			`{"key":"pro","requests":1,"input_tokens":1000,"output_tokens":500,"credits":"0.75","cost_usd":"0.0075"}`+"\n")
	if _, err := s.Usage(ctx, fb.UsageFilter{GroupBy: "colour"}); fb.ErrorType(err) != fb.EInvalid {
		t.Fatalf("bad group_by: %v", err)
	}

	// The daily sums economics reads, kept with the usage rows, and
	// breakage (model "").
	if err := s.Write(ctx, func(tx fb.WriteTx) error {
		return tx.AppendBreakage(ctx, []fb.Breakage{{Customer: "acme", At: day2, Credits: amt("3"), USD: 30_000}, {Customer: "acme", At: day2, Credits: amt("1"), USD: 10_000}})
	}); err != nil {
		t.Fatal(err)
	}
	econ := func(f fb.EconFilter, want string) {
		t.Helper()
		rows, err := s.Economics(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		for _, r := range rows {
			fmt.Fprintf(&b, "%s/%s req=%d cr=%s rev=%s cost=%s unc=%s brk=%s/%s\n", r.Key, r.Model, r.Requests, r.Credits, r.RevenueUSD, r.CostUSD, r.Uncollected, r.BreakageCredits, r.BreakageUSD)
		}
		if b.String() != want {
			t.Errorf("economics %+v:\n%s\nwant\n%s", f, b.String(), want)
		}
	}
	econ(fb.EconFilter{GroupBy: "customer"},
		"acme/ req=0 cr=0 rev=0 cost=0 unc=0 brk=4/0.04\n"+
			"acme/gpt-4o req=1 cr=0.75 rev=0.005 cost=0.0075 unc=0.25 brk=0/0\n"+
			"acme/sora-1 req=1 cr=6 rev=0 cost=0 unc=0 brk=0/0\n"+
			"beta/gpt-4o req=1 cr=0.0025 rev=0.00002 cost=0.000025 unc=0 brk=0/0\n")
	econ(fb.EconFilter{GroupBy: "day", From: day2, To: day2.Add(24 * time.Hour), Customer: "acme"},
		"2026-11-02/ req=0 cr=0 rev=0 cost=0 unc=0 brk=4/0.04\n"+
			"2026-11-02/gpt-4o req=1 cr=0.75 rev=0.005 cost=0.0075 unc=0.25 brk=0/0\n")
	econ(fb.EconFilter{GroupBy: fb.GroupProduct},
		"inference/ req=0 cr=0 rev=0 cost=0 unc=0 brk=4/0.04\n"+
			"inference/gpt-4o req=1 cr=0.75 rev=0.005 cost=0.0075 unc=0.25 brk=0/0\n"+
			"inference/sora-1 req=1 cr=6 rev=0 cost=0 unc=0 brk=0/0\n"+
			"lease/gpt-4o req=1 cr=0.0025 rev=0.00002 cost=0.000025 unc=0 brk=0/0\n")
	econ(fb.EconFilter{GroupBy: fb.GroupPlan},
		"/ req=0 cr=0 rev=0 cost=0 unc=0 brk=4/0.04\n"+
			"/sora-1 req=1 cr=6 rev=0 cost=0 unc=0 brk=0/0\n"+
			"free/gpt-4o req=1 cr=0.0025 rev=0.00002 cost=0.000025 unc=0 brk=0/0\n"+
			"pro/gpt-4o req=1 cr=0.75 rev=0.005 cost=0.0075 unc=0.25 brk=0/0\n")
	if _, err := s.Economics(ctx, fb.EconFilter{GroupBy: "colour"}); fb.ErrorType(err) != fb.EInvalid {
		t.Fatalf("bad group_by: %v", err)
	}
}

// testKeyedRequests: the first claim of a key records the request; later
// claims, whatever they ask, get the recorded one (its fingerprint and
// time) and, once it finished, its first response. Keys are scoped by
// customer and scope.
func testKeyedRequests(t *testing.T, s fb.Store) {
	ctx := context.Background()
	first := fb.KeyedRequest{Customer: "acme", Scope: "subscription", Key: "chg-1", Fingerprint: "pro|now", At: t0}
	claim := func(r fb.KeyedRequest, want fb.KeyedRequest) {
		t.Helper()
		got, err := s.ClaimRequest(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if got.Customer != want.Customer || got.Scope != want.Scope || got.Key != want.Key || got.Fingerprint != want.Fingerprint ||
			!got.At.Equal(want.At) || string(got.Response) != string(want.Response) || (got.Response == nil) != (want.Response == nil) {
			t.Fatalf("claim %+v: got %+v, want %+v", r, got, want)
		}
	}
	claim(first, first)
	later := first
	later.Fingerprint, later.At = "basic|now", t0.Add(time.Minute)
	claim(later, first)
	if err := s.FinishRequest(ctx, "acme", "subscription", "chg-1", []byte(`{"plan":"pro"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRequest(ctx, "acme", "subscription", "chg-1", []byte(`{"plan":"other"}`)); err != nil {
		t.Fatal(err)
	}
	done := first
	done.Response = []byte(`{"plan":"pro"}`)
	claim(later, done)
	// Another customer's or scope's key is another request.
	other := later
	other.Customer = "beta"
	claim(other, other)
	other = later
	other.Scope = "something"
	claim(other, other)
	if err := s.FinishRequest(ctx, "acme", "subscription", "nope", []byte(`{}`)); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("finishing an unclaimed request: got %v, want not_found", err)
	}
	// An empty response is a response.
	empty := fb.KeyedRequest{Customer: "acme", Scope: "subscription", Key: "chg-2", Fingerprint: "f", At: t0}
	claim(empty, empty)
	if err := s.FinishRequest(ctx, "acme", "subscription", "chg-2", []byte{}); err != nil {
		t.Fatal(err)
	}
	empty.Response = []byte{}
	claim(empty, empty)
}
