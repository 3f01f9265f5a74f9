package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	fb "farebox"
)

func testPool(id string) *fb.Pool {
	return &fb.Pool{ID: id, GPUType: "H100", Region: "eu", GPUs: 64, CostUSDPerGPUHour: 1_900_000, ReservedForInference: 16,
		Deployments: []string{"gpu-pool/llama"}, Prices: []fb.PoolPrices{{EffectiveFrom: t0, OnDemand: amt("250"), Reserved: amt("190"), Spot: amt("120")}},
		CreatedAt: t0, UpdatedAt: t0, Rev: 1}
}

// testPools: pools are inserted once (a second insert is pool_exists),
// updated, locked and read; their change logs are appended at a rev and
// read after one, or rewritten whole; a write that fails leaves nothing.
func testPools(t *testing.T, s fb.Store) {
	ctx := context.Background()
	p := testPool("h100-eu")
	if err := s.Write(ctx, func(tx fb.WriteTx) error {
		if err := tx.SavePool(ctx, p, true); err != nil {
			return err
		}
		return tx.AppendPoolChanges(ctx, p.ID, 1, []fb.PoolChange{{At: t0, Firm: 4}, {At: t0.Add(time.Hour), Firm: -4, Spot: 2}})
	}); err != nil {
		t.Fatal(err)
	}
	err := s.Write(ctx, func(tx fb.WriteTx) error { return tx.SavePool(ctx, testPool("h100-eu"), true) })
	if !errors.Is(err, fb.ErrPoolExists) && !errors.Is(err, fb.ErrRejected) {
		t.Fatalf("second insert: %v, want pool_exists", err)
	}
	got, err := s.Pool(ctx, "h100-eu")
	if err != nil || js(got) != js(p) {
		t.Fatalf("pool %s, %v; want %s", js(got), err, js(p))
	}
	if _, err := s.Pool(ctx, "nope"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("missing pool: %v", err)
	}

	p2 := testPool("a100-us")
	if err := s.Write(ctx, func(tx fb.WriteTx) error {
		locked, err := tx.LockPools(ctx, []string{"a100-us", "h100-eu"})
		if err != nil {
			return err
		}
		if len(locked) != 1 || locked["h100-eu"].Rev != 1 {
			t.Errorf("locked %v", locked)
		}
		changes, err := tx.PoolChanges(ctx, "h100-eu", 0)
		if err != nil {
			return err
		}
		if len(changes) != 2 || changes[1].Spot != 2 || !changes[1].At.Equal(t0.Add(time.Hour)) {
			t.Errorf("changes %v", changes)
		}
		locked["h100-eu"].Rev, locked["h100-eu"].GPUs = 2, 48
		if err := tx.SavePool(ctx, locked["h100-eu"], false); err != nil {
			return err
		}
		if err := tx.AppendPoolChanges(ctx, "h100-eu", 2, []fb.PoolChange{{At: t0.Add(2 * time.Hour), Spot: -2}}); err != nil {
			return err
		}
		return tx.SavePool(ctx, p2, true)
	}); err != nil {
		t.Fatal(err)
	}
	pools, err := s.Pools(ctx)
	if err != nil || len(pools) != 2 || pools[0].ID != "a100-us" || pools[1].GPUs != 48 {
		t.Fatalf("pools %s, %v", js(pools), err)
	}
	if err := s.Write(ctx, func(tx fb.WriteTx) error {
		after, err := tx.PoolChanges(ctx, "h100-eu", 1)
		if err != nil {
			return err
		}
		if len(after) != 1 || after[0].Spot != -2 {
			t.Errorf("changes after rev 1: %v", after)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pc, changes, err := s.PoolCapacity(ctx, "h100-eu")
	if err != nil || pc.Rev != 2 || len(changes) != 3 {
		t.Fatalf("capacity %s %v %v", js(pc), changes, err)
	}

	// A write that fails leaves the pool and its log as they were.
	boom := errors.New("boom")
	err = s.Write(ctx, func(tx fb.WriteTx) error {
		pc.GPUs = 1
		if err := tx.SavePool(ctx, pc, false); err != nil {
			return err
		}
		if err := tx.AppendPoolChanges(ctx, "h100-eu", 3, []fb.PoolChange{{At: t0, Firm: 1}}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if pc, changes, _ := s.PoolCapacity(ctx, "h100-eu"); pc.GPUs != 48 || len(changes) != 3 {
		t.Fatalf("after a failed write: %d GPUs, %d changes", pc.GPUs, len(changes))
	}

	// A compacted log replaces the whole.
	if err := s.Write(ctx, func(tx fb.WriteTx) error {
		return tx.ResetPoolChanges(ctx, "h100-eu", 3, []fb.PoolChange{{At: t0.Add(2 * time.Hour), Firm: 0, Spot: 0}, {At: t0.Add(3 * time.Hour), Firm: 7}})
	}); err != nil {
		t.Fatal(err)
	}
	if _, changes, _ := s.PoolCapacity(ctx, "h100-eu"); len(changes) != 2 || changes[1].Firm != 7 {
		t.Fatalf("after the reset: %v", changes)
	}
}

func testLease(id, customer, pool string, class fb.LeaseClass, state fb.LeaseState, start, end, next time.Time) *fb.Lease {
	return &fb.Lease{ID: id, Customer: customer, Pool: pool, GPUs: 2, Class: class, State: state, Start: start, End: end, NextAt: next,
		Holds:    []fb.LeaseHold{{ID: id + ".0", From: start, To: start.Add(time.Hour), Amount: amt("500"), Price: amt("250")}},
		BilledTo: start, Version: 1, CreatedAt: t0, UpdatedAt: t0}
}

// testLeases: leases are inserted and updated by id, read by id and by
// the key their booking was journaled under, listed by customer, pool, state and window, paged
// by id; the due ones come soonest first; a pool's live leases of a class.
func testLeases(t *testing.T, s fb.Store) {
	ctx := context.Background()
	h := time.Hour
	a := testLease("lease_a", "acme", "p1", fb.ClassReserved, fb.LeaseScheduled, t0.Add(h), t0.Add(5*h), t0.Add(h))
	a.Key = "k1"
	b := testLease("lease_b", "acme", "p1", fb.ClassSpot, fb.LeaseActive, t0, time.Time{}, t0.Add(55*time.Minute))
	c := testLease("lease_c", "beta", "p1", fb.ClassSpot, fb.LeaseEnded, t0.Add(-3*h), t0.Add(-h), time.Time{})
	d := testLease("lease_d", "beta", "p2", fb.ClassSpot, fb.LeaseActive, t0, t0.Add(2*h), t0.Add(30*time.Minute))
	if err := s.Write(ctx, func(tx fb.WriteTx) error {
		// lease_a's booking: its hold, journaled under the customer's key.
		if err := tx.AppendJournal(ctx, []*fb.JournalEntry{{Op: fb.Op{Kind: fb.OpHold, Customer: "acme", Key: "book-k1", At: t0,
			Lease: &fb.LeaseNote{ID: "lease_a", Pool: "p1", Event: fb.LeaseBooked, Request: "p1|2|reserved"}}, Fingerprint: "lease|book|p1|2|reserved"}}); err != nil {
			return err
		}
		return tx.SaveLeases(ctx, []*fb.Lease{a, b, c, d})
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Lease(ctx, "lease_a"); err != nil || js(got) != js(a) {
		t.Fatalf("lease %s %v, want %s", js(got), err, js(a))
	}
	if got, err := s.LeaseByKey(ctx, "acme", "book-k1"); err != nil || got.ID != "lease_a" {
		t.Fatalf("by key: %v %v", got, err)
	}
	if _, err := s.LeaseByKey(ctx, "beta", "book-k1"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("another customer's key: %v", err)
	}
	if _, err := s.Lease(ctx, "nope"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("missing lease: %v", err)
	}
	ids := func(ls []*fb.Lease) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l.ID)
		}
		return out
	}
	for _, tc := range []struct {
		f    fb.LeaseFilter
		want []string
	}{
		{fb.LeaseFilter{}, []string{"lease_a", "lease_b", "lease_c", "lease_d"}},
		{fb.LeaseFilter{Customer: "acme"}, []string{"lease_a", "lease_b"}},
		{fb.LeaseFilter{Pool: "p1", State: fb.LeaseActive}, []string{"lease_b"}},
		{fb.LeaseFilter{From: t0, To: t0.Add(h)}, []string{"lease_b", "lease_d"}},
		{fb.LeaseFilter{From: t0.Add(4 * h), To: t0.Add(6 * h)}, []string{"lease_a", "lease_b"}},
		{fb.LeaseFilter{After: "lease_a", Limit: 2}, []string{"lease_b", "lease_c"}},
	} {
		got, err := s.Leases(ctx, tc.f)
		if err != nil || !slices.Equal(ids(got), tc.want) {
			t.Errorf("leases %+v: %v %v, want %v", tc.f, ids(got), err, tc.want)
		}
	}
	due, err := s.DueLeases(ctx, t0.Add(h), 10)
	if err != nil || !slices.Equal(ids(due), []string{"lease_d", "lease_b", "lease_a"}) {
		t.Fatalf("due: %v %v", ids(due), err)
	}
	if due, _ := s.DueLeases(ctx, t0.Add(h), 1); len(due) != 1 {
		t.Fatalf("due, limit 1: %v", ids(due))
	}

	// An update by id: the ended spot lease leaves the live ones, the
	// renewal moves its next time.
	b.State, b.End, b.NextAt, b.Version = fb.LeasePreempted, t0.Add(h), time.Time{}, 2
	if err := s.Write(ctx, func(tx fb.WriteTx) error {
		live, err := tx.LiveLeases(ctx, "p1", fb.ClassSpot)
		if err != nil {
			return err
		}
		if !slices.Equal(ids(live), []string{"lease_b"}) {
			t.Errorf("live spot leases of p1: %v", ids(live))
		}
		if err := tx.SaveLeases(ctx, []*fb.Lease{b}); err != nil {
			return err
		}
		got, err := tx.LeasesByID(ctx, []string{"lease_b", "lease_c", "nope"})
		if err != nil {
			return err
		}
		if len(got) != 2 || got["lease_c"].State != fb.LeaseEnded {
			t.Errorf("leases by id %v", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Lease(ctx, "lease_b"); js(got) != js(b) {
		t.Fatalf("updated %s, want %s", js(got), js(b))
	}
	if got, _ := s.Leases(ctx, fb.LeaseFilter{State: fb.LeasePreempted}); !slices.Equal(ids(got), []string{"lease_b"}) {
		t.Fatalf("preempted: %v", ids(got))
	}
	if due, _ := s.DueLeases(ctx, t0.Add(h), 10); !slices.Equal(ids(due), []string{"lease_d", "lease_a"}) {
		t.Fatalf("due after the update: %v", ids(due))
	}
}
