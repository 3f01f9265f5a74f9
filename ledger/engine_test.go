package ledger_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fb "farebox"
	"farebox/ledger"
	"farebox/store/sqlite"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// clock is a fake clock the tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func cr(s string) fb.Amount {
	a, err := fb.ParseAmount(s)
	if err != nil {
		panic(err)
	}
	return a
}

type env struct {
	t     *testing.T
	path  string
	store fb.Store
	eng   *ledger.Engine
	clock *clock
	cfg   ledger.Config
}

func newEnv(t *testing.T, cfg ledger.Config) *env {
	t.Helper()
	e := &env{t: t, path: filepath.Join(t.TempDir(), "farebox.db"), clock: &clock{t: t0}, cfg: cfg}
	e.cfg.Now = e.clock.Now
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	e.t.Helper()
	st, err := sqlite.Open(context.Background(), e.path, sqlite.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.store = st
	e.eng = ledger.NewEngine(st, e.cfg)
}

func (e *env) close() {
	if e.eng != nil {
		e.eng.Close()
		e.store.Close()
		e.eng, e.store = nil, nil
	}
}

// restart closes engine and store and opens them again on the same file.
func (e *env) restart() {
	e.close()
	e.open()
}

func (e *env) customer(id string) {
	e.t.Helper()
	if err := e.store.CreateCustomer(context.Background(), fb.Customer{ID: id, Name: id, CreatedAt: e.clock.Now()}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) submit(op fb.Op) (fb.Result, error) {
	return e.eng.Submit(context.Background(), op)
}

func (e *env) ok(op fb.Op) fb.Result {
	e.t.Helper()
	res, err := e.submit(op)
	if err != nil {
		e.t.Fatalf("%s: %v", op.Kind, err)
	}
	return res
}

func (e *env) fails(op fb.Op, typ, code string) {
	e.t.Helper()
	_, err := e.submit(op)
	if fb.ErrorType(err) != typ || fb.ErrorCode(err) != code {
		e.t.Fatalf("%s: got %v, want %s/%s", op.Kind, err, typ, code)
	}
}

func (e *env) account(c string) *fb.Account {
	e.t.Helper()
	a, err := e.store.Account(context.Background(), c)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// available reads the committed state the way the balance endpoint does.
func (e *env) available(c string) fb.Amount {
	e.t.Helper()
	a := e.account(c)
	ledger.Advance(a, e.clock.Now(), nil)
	return ledger.Available(a, e.clock.Now())
}

func (e *env) verify() {
	e.t.Helper()
	rep, err := ledger.Verify(context.Background(), e.store)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(rep.Problems) > 0 {
		e.t.Fatalf("verify found %d problems: %v", len(rep.Problems), rep.Problems)
	}
}

func grant(c, amount, key string) fb.Op {
	return fb.Op{Kind: fb.OpGrant, Customer: c, Amount: cr(amount), Source: fb.SourcePurchase, Priority: 20, Key: key}
}

func hold(c, amount, key string) fb.Op {
	return fb.Op{Kind: fb.OpHold, Customer: c, Amount: cr(amount), TTL: time.Minute, Key: key}
}

var batching = []struct {
	name string
	cfg  ledger.Config
}{
	{"batched", ledger.Config{Cache: true}},
	{"unbatched", ledger.Config{MaxBatch: 1}},
	{"four writers", ledger.Config{Writers: 4}},
}

// TestConcurrentHoldsNeverOverspend: 1,000 goroutines each hold 1 credit of
// a customer who has 100; exactly 100 succeed.
func TestConcurrentHoldsNeverOverspend(t *testing.T) {
	for _, b := range batching {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b.cfg)
			e.customer("cus_a")
			e.ok(grant("cus_a", "100", "g"))
			var ok, refused atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, 1000)
			for i := range 1000 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := e.submit(hold("cus_a", "1", fmt.Sprintf("h%d", i)))
					switch {
					case err == nil:
						ok.Add(1)
					case fb.ErrorType(err) == fb.EInsufficientCredits:
						refused.Add(1)
					default:
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if ok.Load() != 100 || refused.Load() != 900 {
				t.Fatalf("%d holds succeeded and %d were refused, want 100 and 900", ok.Load(), refused.Load())
			}
			a := e.account("cus_a")
			if ledger.Held(a) != cr("100") || ledger.Available(a, t0) != 0 || len(a.Holds) != 100 {
				t.Fatalf("held %s available %s in %d holds", ledger.Held(a), ledger.Available(a, t0), len(a.Holds))
			}
			e.verify()
		})
	}
}

// TestConcurrentCapturesExact: many callers hold and capture at once over a
// few customers; afterwards every credit is accounted for.
func TestConcurrentCapturesExact(t *testing.T) {
	e := newEnv(t, ledger.Config{Cache: true})
	for i := range 4 {
		c := fmt.Sprintf("cus_%d", i)
		e.customer(c)
		e.ok(grant(c, "50", "g"))
	}
	var wg sync.WaitGroup
	var captured [4]atomic.Int64
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := i % 4
			res, err := e.submit(hold(fmt.Sprintf("cus_%d", c), "0.75", ""))
			if err != nil {
				if fb.ErrorType(err) != fb.EInsufficientCredits {
					t.Error(err)
				}
				return
			}
			if _, err := e.submit(fb.Op{Kind: fb.OpCapture, HoldID: res.Hold.ID, Amount: cr("0.5")}); err != nil {
				t.Error(err)
				return
			}
			captured[c].Add(int64(cr("0.5")))
		}()
	}
	wg.Wait()
	for i := range 4 {
		c := fmt.Sprintf("cus_%d", i)
		a := e.account(c)
		if a.Charged != fb.Amount(captured[i].Load()) || ledger.Available(a, t0) != cr("50")-a.Charged || len(a.Holds) != 0 {
			t.Fatalf("%s: charged %s, captured %s, available %s", c, a.Charged, fb.Amount(captured[i].Load()), ledger.Available(a, t0))
		}
	}
	e.verify()
}

func TestIdempotency(t *testing.T) {
	for _, b := range batching {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b.cfg)
			e.customer("cus_a")
			first := e.ok(grant("cus_a", "10", "g1"))
			again := e.ok(grant("cus_a", "10.000000", "g1")) // same value, other spelling
			if first.Lot.ID != again.Lot.ID {
				t.Fatalf("replay made lot %s, first %s", again.Lot.ID, first.Lot.ID)
			}
			e.fails(grant("cus_a", "11", "g1"), fb.EIdempotencyConflict, fb.EIdempotencyConflict)
			if a := e.account("cus_a"); a.Granted != cr("10") || len(a.Lots) != 1 {
				t.Fatalf("granted %s in %d lots", a.Granted, len(a.Lots))
			}
			// Keys are per customer.
			e.customer("cus_b")
			if other := e.ok(grant("cus_b", "10", "g1")); other.Lot.ID == first.Lot.ID {
				t.Fatal("key shared across customers")
			}

			// Many concurrent submissions of one keyed op apply once.
			var wg sync.WaitGroup
			ids := make([]string, 50)
			for i := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := e.submit(hold("cus_a", "1", "h1"))
					if err != nil {
						t.Error(err)
						return
					}
					ids[i] = res.Hold.ID
				}()
			}
			wg.Wait()
			for _, id := range ids {
				if id != ids[0] {
					t.Fatalf("one key made holds %s and %s", ids[0], id)
				}
			}
			if a := e.account("cus_a"); len(a.Holds) != 1 {
				t.Fatalf("%d holds for one key", len(a.Holds))
			}

			// A refused op is not remembered: after a grant the same key succeeds.
			e.fails(hold("cus_a", "20", "big"), fb.EInsufficientCredits, fb.EInsufficientCredits)
			e.ok(grant("cus_a", "20", "g2"))
			big := e.ok(hold("cus_a", "20", "big"))

			// Capture with a key, then a different capture under the same key.
			capOp := fb.Op{Kind: fb.OpCapture, HoldID: big.Hold.ID, Amount: cr("12"), Key: "c1"}
			capRes := e.ok(capOp)
			capOp.Amount = cr("13")
			e.fails(capOp, fb.EIdempotencyConflict, fb.EIdempotencyConflict)

			// Keys are kept forever: across a restart the same answers come back.
			e.restart()
			if res := e.ok(grant("cus_a", "10", "g1")); res.Lot.ID != first.Lot.ID {
				t.Fatalf("after restart the replay made lot %s", res.Lot.ID)
			}
			if res := e.ok(hold("cus_a", "1", "h1")); res.Hold.ID != ids[0] {
				t.Fatalf("after restart the replay made hold %s", res.Hold.ID)
			}
			capOp.Amount = cr("12")
			if res := e.ok(capOp); res.Captured != capRes.Captured || res.Released != capRes.Released {
				t.Fatalf("after restart capture answered %+v, first %+v", res, capRes)
			}
			if a := e.account("cus_a"); a.Granted != cr("30") || a.Charged != cr("12") {
				t.Fatalf("after replays granted %s charged %s", a.Granted, a.Charged)
			}
			e.verify()
		})
	}
}

func TestNotFound(t *testing.T) {
	e := newEnv(t, ledger.Config{Cache: true})
	e.fails(grant("cus_nobody", "1", ""), fb.ENotFound, "unknown_customer")
	e.fails(hold("cus_nobody", "1", ""), fb.ENotFound, "unknown_customer")
	e.fails(fb.Op{Kind: fb.OpCapture, HoldID: "hold_nope", Full: true}, fb.ENotFound, fb.ENotFound)
	e.fails(fb.Op{Kind: fb.OpRelease, HoldID: "hold_nope"}, fb.ENotFound, fb.ENotFound)
	e.fails(fb.Op{Kind: fb.OpGrant, Customer: "cus_x", Amount: 0, Source: fb.SourcePurchase}, fb.EInvalid, fb.EInvalid)
}

// TestHoldTTL moves the clock past a hold's TTL: the sweeper expires it, the
// credit comes back, and a late capture is refused with hold_expired.
func TestHoldTTL(t *testing.T) {
	for _, b := range batching {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b.cfg)
			e.customer("cus_a")
			e.ok(grant("cus_a", "10", ""))
			h := e.ok(fb.Op{Kind: fb.OpHold, Customer: "cus_a", Amount: cr("4"), TTL: 30 * time.Second}).Hold
			if !h.ExpiresAt.Equal(t0.Add(30 * time.Second)) {
				t.Fatalf("hold expires at %s", h.ExpiresAt)
			}
			e.clock.Add(29 * time.Second)
			if n, err := e.eng.Sweep(context.Background()); err != nil || n != 0 {
				t.Fatalf("sweep before the TTL: %d, %v", n, err)
			}
			e.clock.Add(time.Second)
			if n, err := e.eng.Sweep(context.Background()); err != nil || n != 1 {
				t.Fatalf("sweep at the TTL: %d, %v", n, err)
			}
			if a := e.account("cus_a"); len(a.Holds) != 0 || ledger.Available(a, e.clock.Now()) != cr("10") {
				t.Fatalf("after the sweep: %d holds, available %s", len(a.Holds), ledger.Available(a, e.clock.Now()))
			}
			stored, err := e.store.Hold(context.Background(), h.ID)
			if err != nil || stored.Status != fb.HoldExpired {
				t.Fatalf("stored hold %+v, %v", stored, err)
			}
			e.fails(fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Full: true}, fb.EConflict, "hold_expired")
			e.fails(fb.Op{Kind: fb.OpRelease, HoldID: h.ID}, fb.EConflict, "hold_expired")
			if n, _ := e.eng.Sweep(context.Background()); n != 0 {
				t.Fatalf("second sweep found %d accounts", n)
			}
			e.verify()
		})
	}
}

// TestHoldExpiresOnTouch: an account touched after a hold's TTL expires it in
// the same batch, before the op, even if no sweep ran.
func TestHoldExpiresOnTouch(t *testing.T) {
	e := newEnv(t, ledger.Config{Cache: true})
	e.customer("cus_a")
	e.ok(grant("cus_a", "10", ""))
	h := e.ok(fb.Op{Kind: fb.OpHold, Customer: "cus_a", Amount: cr("10"), TTL: time.Second}).Hold
	e.clock.Add(time.Second)
	e.ok(hold("cus_a", "10", "")) // possible only if the first expired
	e.fails(fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Full: true}, fb.EConflict, "hold_expired")
	e.verify()
}

// TestLotExpiry: a lot's unused credit moves to breakage when it expires.
func TestLotExpiry(t *testing.T) {
	e := newEnv(t, ledger.Config{Cache: true})
	e.customer("cus_a")
	exp := t0.Add(time.Hour)
	lot := e.ok(fb.Op{Kind: fb.OpGrant, Customer: "cus_a", Amount: cr("10"), Source: fb.SourcePromo, ExpiresAt: exp}).Lot
	e.ok(fb.Op{Kind: fb.OpDebit, Customer: "cus_a", Amount: cr("3")})
	due, err := e.store.DueAccounts(context.Background(), exp.Add(-time.Nanosecond), 10)
	if err != nil || len(due) != 0 {
		t.Fatalf("due before expiry: %v, %v", due, err)
	}
	e.clock.Add(time.Hour)
	if n, err := e.eng.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	a := e.account("cus_a")
	if a.Expired != cr("7") || a.Charged != cr("3") || len(a.Lots) != 0 || ledger.Available(a, e.clock.Now()) != 0 {
		t.Fatalf("after expiry: expired %s charged %s lots %d", a.Expired, a.Charged, len(a.Lots))
	}
	// The dead lot is kept, with its history.
	rep, err := ledger.Verify(context.Background(), e.store)
	if err != nil || len(rep.Problems) != 0 || rep.Lots != 1 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	e.fails(hold("cus_a", "1", ""), fb.EInsufficientCredits, fb.EInsufficientCredits)
	_ = lot
}

// failing wraps a store and fails the commit of every write while on.
type failing struct {
	fb.Store
	on atomic.Bool
}

func (f *failing) Write(ctx context.Context, fn func(fb.WriteTx) error) error {
	return f.Store.Write(ctx, func(tx fb.WriteTx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if f.on.Load() {
			return errors.New("injected: disk full")
		}
		return nil
	})
}

// TestCommitFailure: a batch whose commit fails answers 503, leaves nothing
// behind, in the store or in the engine's cache.
func TestCommitFailure(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "f.db"), sqlite.Options{})
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
	if _, err := eng.Submit(ctx, grant("cus_a", "10", "g")); err != nil {
		t.Fatal(err)
	}
	f.on.Store(true)
	_, err = eng.Submit(ctx, hold("cus_a", "10", "h"))
	if fb.ErrorType(err) != fb.EUnavailable || fb.ErrorCode(err) != "store_unavailable" {
		t.Fatalf("hold during failure: %v", err)
	}
	if eng.Stats().Failed != 1 {
		t.Fatalf("stats %+v", eng.Stats())
	}
	f.on.Store(false)
	// Nothing of the failed hold remains: all 10 can be held again, and the
	// same key is free because nothing was recorded under it.
	res, err := eng.Submit(ctx, hold("cus_a", "10", "h"))
	if err != nil || res.Hold.Amount != cr("10") {
		t.Fatalf("hold after failure: %+v, %v", res, err)
	}
	rep, err := ledger.Verify(ctx, st)
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// TestReserve: on a sole-writer engine a reserved hold is answered before
// its commit (the store is still writing when the answer comes) and is in
// force at once; when that commit fails the hold is gone, nothing of it is
// stored, and its capture answers not_found.
func TestReserve(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "r.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := &gated{failing: failing{Store: st}, parked: make(chan struct{}, 1), gate: make(chan struct{}), passed: make(chan struct{}, 1)}
	eng := ledger.NewEngine(f, ledger.Config{Cache: true, Now: func() time.Time { return t0 }})
	defer eng.Close()
	ctx := context.Background()
	if err := st.CreateCustomer(ctx, fb.Customer{ID: "cus_a", Name: "a", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Submit(ctx, grant("cus_a", "10", "g")); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Reserve(ctx, grant("cus_a", "1", "x"), nil); err == nil {
		t.Fatal("Reserve took a grant")
	}
	// The reservation is answered while its commit waits for the gate, and
	// is in force at once: a hold queued behind it finds nothing left.
	f.armed.Store(true)
	var lost atomic.Int32
	res, err := eng.Reserve(ctx, hold("cus_a", "10", ""), func() { lost.Add(1) })
	if err != nil || res.Hold.Amount != cr("10") {
		t.Fatalf("reserve: %+v %v", res, err)
	}
	late := make(chan error, 1)
	go func() {
		_, err := eng.Submit(ctx, hold("cus_a", "1", ""))
		late <- err
	}()
	f.open()
	if err := <-late; fb.ErrorType(err) != fb.EInsufficientCredits {
		t.Fatalf("a hold behind the reservation: %v", err)
	}
	if _, err := eng.Submit(ctx, fb.Op{Kind: fb.OpRelease, Customer: "cus_a", HoldID: res.Hold.ID}); err != nil {
		t.Fatal(err)
	}
	if n := lost.Load(); n != 0 {
		t.Fatalf("a committed reservation was reported lost %d times", n)
	}
	// Its commit fails: the reservation is gone, its caller is told, and
	// its capture answers not_found.
	f.gate = make(chan struct{})
	f.on.Store(true)
	f.armed.Store(true)
	lostc := make(chan struct{}, 2)
	res, err = eng.Reserve(ctx, hold("cus_a", "10", ""), func() { lostc <- struct{}{} })
	if err != nil {
		t.Fatalf("reserve: %v", err)
	}
	f.open()
	<-lostc
	f.on.Store(false)
	_, err = eng.Submit(ctx, fb.Op{Kind: fb.OpCapture, Customer: "cus_a", HoldID: res.Hold.ID, Amount: cr("1")})
	if fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("capture of a reservation whose commit failed: %v", err)
	}
	// Nothing of it stayed: all 10 can be held again.
	if res, err := eng.Submit(ctx, hold("cus_a", "10", "")); err != nil || res.Hold.Amount != cr("10") {
		t.Fatalf("hold after: %+v %v", res, err)
	}
	rep, err := ledger.Verify(ctx, st)
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// gated is failing whose next commit, once armed, parks at a gate (after
// the batch is applied, before its commit) until open.
type gated struct {
	failing
	armed  atomic.Bool
	parked chan struct{}
	gate   chan struct{}
	passed chan struct{}
}

func (g *gated) Write(ctx context.Context, fn func(fb.WriteTx) error) error {
	parked := false
	err := g.failing.Write(ctx, func(tx fb.WriteTx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if g.armed.CompareAndSwap(true, false) {
			parked = true
			g.parked <- struct{}{}
			<-g.gate
		}
		return nil
	})
	if parked {
		g.passed <- struct{}{} // committed, or failed
	}
	return err
}

// open waits until a commit is parked, lets it go on, and waits until it
// has committed or failed.
func (g *gated) open() {
	<-g.parked
	close(g.gate)
	<-g.passed
}

// TestCloseDrains: Close answers everything already queued, and later
// submissions get ErrClosed.
func TestCloseDrains(t *testing.T) {
	e := newEnv(t, ledger.Config{Cache: true})
	e.customer("cus_a")
	e.ok(grant("cus_a", "1000", ""))
	var wg sync.WaitGroup
	var done, closed atomic.Int64
	for range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.submit(hold("cus_a", "1", ""))
			switch {
			case err == nil:
				done.Add(1)
			case errors.Is(err, ledger.ErrClosed):
				closed.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	e.eng.Close()
	wg.Wait()
	if done.Load()+closed.Load() != 300 {
		t.Fatalf("%d done + %d refused != 300", done.Load(), closed.Load())
	}
	if a := e.account("cus_a"); int64(len(a.Holds)) != done.Load() {
		t.Fatalf("%d holds stored, %d acknowledged", len(a.Holds), done.Load())
	}
	if _, err := e.submit(hold("cus_a", "1", "")); !errors.Is(err, ledger.ErrClosed) {
		t.Fatalf("submit after close: %v", err)
	}
	e.verify()
}

// TestVerifyDetectsTampering changes stored state behind the ledger's back.
func TestVerifyDetectsTampering(t *testing.T) {
	tamper := map[string]string{
		"account total": `UPDATE accounts SET state = json_set(state, '$.g', json_extract(state, '$.g') + 1)`,
		"lot remaining": `UPDATE accounts SET state = json_set(state, '$.lots[0].r', json_extract(state, '$.lots[0].r') - 1, '$.lots[0].c', json_extract(state, '$.lots[0].c') + 1)`,
		"hold status":   `UPDATE holds SET status = 'released' WHERE status = 'pending'`,
		"lost account":  `DELETE FROM accounts`,
		"expiry index":  `DELETE FROM lot_expiries`,
		"hold expiry":   `UPDATE holds SET expires_at = expires_at + 1`,
		"dead lot":      `UPDATE dead_lots SET lot = json_set(lot, '$.c', json_extract(lot, '$.c') - 1)`,
	}
	for name, stmt := range tamper {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, ledger.Config{Cache: true})
			e.customer("cus_a")
			e.ok(grant("cus_a", "10", ""))
			e.ok(fb.Op{Kind: fb.OpDebit, Customer: "cus_a", Amount: cr("1")})
			e.ok(hold("cus_a", "2", ""))
			// A lot that expires (free credit, indexed) and one that died.
			e.ok(fb.Op{Kind: fb.OpGrant, Customer: "cus_a", Amount: cr("5"), Source: fb.SourcePromo, ExpiresAt: t0.Add(time.Hour)})
			e.ok(fb.Op{Kind: fb.OpGrant, Customer: "cus_a", Amount: cr("1"), Source: fb.SourcePromo, ExpiresAt: t0.Add(time.Minute)})
			e.ok(fb.Op{Kind: fb.OpDebit, Customer: "cus_a", Amount: cr("1")})
			e.verify()
			e.close()
			db, err := sql.Open("sqlite", e.path)
			if err != nil {
				t.Fatal(err)
			}
			res, err := db.Exec(stmt)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				t.Fatal("tampering changed nothing")
			}
			db.Close()
			e.open()
			rep, err := ledger.Verify(context.Background(), e.store)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) == 0 {
				t.Fatal("verify missed the tampering")
			}
			t.Logf("verify: %s", rep.Problems[0])
		})
	}
}

// hanging is a store whose database stops answering.
type hanging struct{ fb.Store }

func (hanging) Write(ctx context.Context, fn func(fb.WriteTx) error) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestWriteTimeout: a database that stops answering fails the batch with
// 503 after WriteTimeout instead of stalling every caller.
func TestWriteTimeout(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "h.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng := ledger.NewEngine(hanging{st}, ledger.Config{WriteTimeout: 50 * time.Millisecond})
	defer eng.Close()
	_, err = eng.Submit(context.Background(), grant("cus_a", "1", "k"))
	if fb.ErrorType(err) != fb.EUnavailable || fb.ErrorCode(err) != "store_unavailable" {
		t.Fatalf("submit against a hanging store: %v", err)
	}
}

// rejecting is a store that refuses, as bad data, any batch journaling an
// op of customer bad (as PostgreSQL refuses a NUL byte in a text column).
type rejecting struct {
	*gated
	bad string
}

func (s *rejecting) Write(ctx context.Context, fn func(fb.WriteTx) error) error {
	return s.gated.Write(ctx, func(tx fb.WriteTx) error {
		return fn(rejectingTx{tx, s.bad})
	})
}

type rejectingTx struct {
	fb.WriteTx
	bad string
}

func (t rejectingTx) AppendJournal(ctx context.Context, entries []*fb.JournalEntry) error {
	for _, e := range entries {
		if e.Op.Customer == t.bad {
			return fmt.Errorf("%w: injected: invalid byte sequence", fb.ErrRejected)
		}
	}
	return t.WriteTx.AppendJournal(ctx, entries)
}

// TestRejectedOpFailsAlone: one op the store refuses fails by itself; the
// other ops of its batch (other customers', a reservation answered before
// the commit) commit as answered.
func TestRejectedOpFailsAlone(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "r.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := &gated{failing: failing{Store: st}, parked: make(chan struct{}, 1), gate: make(chan struct{}), passed: make(chan struct{}, 8)}
	s := &rejecting{gated: g, bad: "cus_bad"}
	eng := ledger.NewEngine(s, ledger.Config{Cache: true, Now: func() time.Time { return t0 }})
	defer eng.Close()
	ctx := context.Background()
	for _, c := range []string{"cus_a", "cus_bad"} {
		if err := st.CreateCustomer(ctx, fb.Customer{ID: c, Name: c, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	// Park one commit so that the rest queue up into one batch behind it.
	g.armed.Store(true)
	first := make(chan error, 1)
	go func() {
		_, err := eng.Submit(ctx, grant("cus_a", "100", "g0"))
		first <- err
	}()
	<-g.parked
	const n = 40
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := eng.Submit(ctx, grant("cus_a", "1", fmt.Sprintf("g%d", i+1)))
			errs <- err
		}()
	}
	bad := make(chan error, 1)
	go func() {
		_, err := eng.Submit(ctx, grant("cus_bad", "1", "nul"))
		bad <- err
	}()
	type reserved struct {
		res fb.Result
		err error
	}
	resv := make(chan reserved, 1)
	var lost atomic.Int32
	go func() {
		res, err := eng.Reserve(ctx, hold("cus_a", "50", ""), func() { lost.Add(1) })
		resv <- reserved{res, err}
	}()
	for eng.Queued() < n+2 {
		time.Sleep(time.Millisecond)
	}
	close(g.gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("a good op of the batch: %v", err)
		}
	}
	if err := <-bad; fb.ErrorType(err) != fb.EInvalid || fb.ErrorCode(err) != "store_rejected" {
		t.Errorf("the refused op: got %v, want invalid_request store_rejected", err)
	}
	r := <-resv
	if r.err != nil || r.res.Hold.Amount != cr("50") {
		t.Fatalf("reserve: %+v %v", r.res, r.err)
	}
	if n := lost.Load(); n != 0 {
		t.Errorf("the reservation was reported lost %d times; it committed", n)
	}
	// The reservation was answered before its commit: an op after it
	// commits after it.
	if _, err := eng.Submit(ctx, fb.Op{Kind: fb.OpLimit, Customer: "cus_a"}); err != nil {
		t.Fatal(err)
	}
	a, err := st.Account(ctx, "cus_a")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ledger.Available(a, t0), cr("90"); got != want || len(a.Holds) != 1 {
		t.Errorf("cus_a: available %s with %d holds, want %s with the one hold", got, len(a.Holds), want)
	}
	if eng.Stats().Failed == 0 {
		t.Error("no batch failed: the refused op was never in a batch with the others")
	}
	rep, err := ledger.Verify(ctx, st)
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// lateRejecting refuses, as bad data, a batch journaling an op keyed bad —
// but only once the engine's part of the transaction is done, as a
// database that checks constraints at commit does: by then a reservation
// of the batch has been answered.
type lateRejecting struct {
	*gated
	bad string
}

func (s *lateRejecting) Write(ctx context.Context, fn func(fb.WriteTx) error) error {
	return s.gated.Write(ctx, func(tx fb.WriteTx) error {
		w := &noticingTx{WriteTx: tx, bad: s.bad}
		if err := fn(w); err != nil {
			return err
		}
		if w.seen {
			return fmt.Errorf("%w: injected: constraint violated at commit", fb.ErrRejected)
		}
		return nil
	})
}

type noticingTx struct {
	fb.WriteTx
	bad  string
	seen bool
}

func (t *noticingTx) AppendJournal(ctx context.Context, entries []*fb.JournalEntry) error {
	for _, e := range entries {
		t.seen = t.seen || e.Op.Key == t.bad
	}
	return t.WriteTx.AppendJournal(ctx, entries)
}

// TestReservedThenRefused: a reservation answered before its commit,
// whose batch the store then refuses because of another op of the same
// account (the grant that paid for it), is reported lost: run again
// without the refused grant it cannot be made. Nothing of either stays.
func TestReservedThenRefused(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "r.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := &gated{failing: failing{Store: st}, parked: make(chan struct{}, 1), gate: make(chan struct{}), passed: make(chan struct{}, 8)}
	eng := ledger.NewEngine(&lateRejecting{gated: g, bad: "nul"}, ledger.Config{Cache: true, Now: func() time.Time { return t0 }})
	defer eng.Close()
	ctx := context.Background()
	for _, c := range []string{"cus_a", "cus_b"} {
		if err := st.CreateCustomer(ctx, fb.Customer{ID: c, Name: c, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	g.armed.Store(true)
	first := make(chan error, 1)
	go func() {
		_, err := eng.Submit(ctx, grant("cus_b", "1", "b0"))
		first <- err
	}()
	<-g.parked
	bad := make(chan error, 1)
	go func() {
		_, err := eng.Submit(ctx, grant("cus_a", "100", "nul"))
		bad <- err
	}()
	for eng.Queued() < 1 {
		time.Sleep(time.Millisecond)
	}
	lost := make(chan struct{}, 2)
	type reserved struct {
		res fb.Result
		err error
	}
	resv := make(chan reserved, 1)
	go func() {
		res, err := eng.Reserve(ctx, hold("cus_a", "50", ""), func() { lost <- struct{}{} })
		resv <- reserved{res, err}
	}()
	for eng.Queued() < 2 {
		time.Sleep(time.Millisecond)
	}
	good := make(chan error, 1)
	go func() {
		_, err := eng.Submit(ctx, grant("cus_b", "2", "b1"))
		good <- err
	}()
	for eng.Queued() < 3 {
		time.Sleep(time.Millisecond)
	}
	close(g.gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	r := <-resv
	if r.err != nil || r.res.Hold.Amount != cr("50") {
		t.Fatalf("reserve: got %+v %v, want the hold of 50 answered before the commit", r.res, r.err)
	}
	if err := <-bad; fb.ErrorCode(err) != "store_rejected" {
		t.Errorf("the refused grant: got %v, want store_rejected", err)
	}
	if err := <-good; err != nil {
		t.Errorf("another customer's grant of the batch: %v", err)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the reservation was never reported lost")
	}
	if _, err := eng.Submit(ctx, fb.Op{Kind: fb.OpLimit, Customer: "cus_a"}); err != nil {
		t.Fatal(err)
	}
	a, err := st.Account(ctx, "cus_a")
	if err != nil {
		t.Fatal(err)
	}
	if got := ledger.Available(a, t0); got != 0 || len(a.Holds) != 0 || a.Granted != 0 {
		t.Errorf("cus_a: available %s, %d holds, granted %s; want nothing", got, len(a.Holds), a.Granted)
	}
	b, err := st.Account(ctx, "cus_b")
	if err != nil {
		t.Fatal(err)
	}
	if got := ledger.Available(b, t0); got != cr("3") {
		t.Errorf("cus_b: available %s, want 3", got)
	}
	if n := eng.Stats().Lost; n != 1 {
		t.Errorf("stats: %d lost, want 1", n)
	}
	rep, err := ledger.Verify(ctx, st)
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// TestReserveRefusedIsNotLost: a reservation refused (402) when answered
// before its batch's commit is an answer like any other: when the batch
// commits, it is not reported lost (it was, and its caller's request was
// cancelled: a refusal could then turn into a 500).
func TestReserveRefusedIsNotLost(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "r.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng := ledger.NewEngine(st, ledger.Config{Cache: true, Now: func() time.Time { return t0 }})
	defer eng.Close()
	ctx := context.Background()
	if err := st.CreateCustomer(ctx, fb.Customer{ID: "cus_a", Name: "a", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	var lost atomic.Int32
	if _, err := eng.Reserve(ctx, hold("cus_a", "10", ""), func() { lost.Add(1) }); fb.ErrorType(err) != fb.EInsufficientCredits {
		t.Fatalf("reserve without credit: %v", err)
	}
	if _, err := eng.Submit(ctx, fb.Op{Kind: fb.OpLimit, Customer: "cus_a"}); err != nil {
		t.Fatal(err)
	}
	if n, st := lost.Load(), eng.Stats(); n != 0 || st.Lost != 0 {
		t.Errorf("a refused reservation was reported lost: %d calls, stats %+v", n, st)
	}
}
