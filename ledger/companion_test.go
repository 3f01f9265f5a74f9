package ledger_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/ledger"
	"farebox/store/sqlite"
)

// recorder is a companion that refuses ops of amount 7 before they are
// applied, writes a lease row per op the state machine applied (in the
// batch's own transaction) and records what it was told.
type recorder struct {
	mu     sync.Mutex
	begun  int
	ends   []bool
	after  []string
	writes int
}

func (c *recorder) Begin(ctx context.Context, tx fb.WriteTx, ops []*fb.Op) (ledger.CompanionTx, error) {
	c.mu.Lock()
	c.begun++
	c.mu.Unlock()
	return &recorderTx{c: c, tx: tx}, nil
}

type recorderTx struct {
	c       *recorder
	tx      fb.WriteTx
	applied []*fb.Lease
}

func (t *recorderTx) Before(ctx context.Context, op *fb.Op) error {
	if op.Amount == 7*fb.Micro {
		return fb.ErrLeaseNoCapacity.New("no room for %s", op.Lease.ID)
	}
	op.Amount *= 2 // what the fingerprint leaves out, the companion decides
	return nil
}

func (t *recorderTx) After(ctx context.Context, op *fb.Op, res *fb.Result, err error) error {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if err != nil {
		t.c.after = append(t.c.after, op.Lease.ID+" refused "+fb.ErrorType(err))
		return nil
	}
	t.c.after = append(t.c.after, op.Lease.ID+" held "+res.Hold.Amount.String())
	t.applied = append(t.applied, &fb.Lease{ID: op.Lease.ID, Customer: op.Customer, Pool: "p", Class: fb.ClassSpot, State: fb.LeaseActive, Start: op.At})
	return nil
}

func (t *recorderTx) Flush(ctx context.Context) error {
	t.c.mu.Lock()
	t.c.writes += len(t.applied)
	t.c.mu.Unlock()
	return t.tx.SaveLeases(ctx, t.applied)
}

func (t *recorderTx) End(committed bool) {
	t.c.mu.Lock()
	t.c.ends = append(t.c.ends, committed)
	t.c.mu.Unlock()
}

// TestCompanion: ops submitted with a companion commit with what it
// writes, in one transaction: refused before they are applied (as their
// answer), told of the state machine's outcome,
// their amounts filled in by it; a replay is not shown to it; a failed
// commit ends it uncommitted and leaves neither the hold nor its row.
func TestCompanion(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "c.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := &failing{Store: st}
	eng := ledger.NewEngine(f, ledger.Config{Cache: true, Now: func() time.Time { return t0 }})
	defer eng.Close()
	ctx := context.Background()
	if err := st.CreateCustomer(ctx, fb.Customer{ID: "cus_a", Name: "a", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Submit(ctx, fb.Op{Kind: fb.OpGrant, Customer: "cus_a", Amount: cr("10"), Source: fb.SourcePurchase}); err != nil {
		t.Fatal(err)
	}
	c := &recorder{}
	hold := func(lease, amount, key string) fb.Op {
		return fb.Op{Kind: fb.OpHold, Customer: "cus_a", Amount: cr(amount), ExpiresAt: t0.Add(48 * time.Hour), Key: key,
			Lease: &fb.LeaseNote{ID: lease, Pool: "p", Event: fb.LeaseBooked, Request: lease}}
	}
	errs := make([]error, 3)
	for i, op := range []fb.Op{hold("l1", "2", "k1"), hold("l2", "7", ""), hold("l3", "4", "")} {
		_, _, errs[i] = eng.SubmitWith(ctx, op, c)
	}
	if errs[0] != nil || !errors.Is(errs[1], fb.ErrLeaseNoCapacity) || fb.ErrorType(errs[2]) != fb.EInsufficientCredits {
		t.Fatalf("answers %v, want held, no_capacity, 402 (4 doubled is 8 of the 6 left)", errs)
	}
	a, _ := st.Account(ctx, "cus_a")
	if got := ledger.Held(a); got != cr("4") {
		t.Fatalf("held %s, want 4 (2, doubled by the companion)", got)
	}
	if l, err := st.Lease(ctx, "l1"); err != nil || l.Customer != "cus_a" {
		t.Fatalf("the companion's row: %v %v", l, err)
	}
	if _, err := st.Lease(ctx, "l3"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("a refused op's row: %v", err)
	}

	// The same key again is answered from the journal, unseen by it.
	before := len(c.after)
	if _, replay, err := eng.SubmitWith(ctx, hold("l1", "2", "k1"), c); err != nil || !replay {
		t.Fatalf("replay: %v %v", replay, err)
	}
	if len(c.after) != before {
		t.Fatalf("a replay was shown to the companion: %v", c.after[before:])
	}

	// A failed commit: answered unavailable, ended uncommitted, nothing kept.
	f.on.Store(true)
	if _, _, err := eng.SubmitWith(ctx, hold("l4", "1", ""), c); fb.ErrorType(err) != fb.EUnavailable {
		t.Fatalf("failed commit: %v", err)
	}
	f.on.Store(false)
	if _, err := st.Lease(ctx, "l4"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("row of a failed commit: %v", err)
	}
	if c.ends[len(c.ends)-1] {
		t.Fatalf("the failed commit's companion ended committed: %v", c.ends)
	}
	if a, _ := st.Account(ctx, "cus_a"); ledger.Held(a) != cr("4") {
		t.Fatalf("held %s after a failed commit", ledger.Held(a))
	}
	if len(c.ends) != c.begun {
		t.Fatalf("%d begun, %d ended", c.begun, len(c.ends))
	}
	if rep, err := ledger.Verify(ctx, st); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %v", err, rep.Problems)
	}
}
