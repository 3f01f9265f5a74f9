package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fb "farebox"
	"farebox/ledger"
	"farebox/store/postgres"
	"farebox/store/postgres/pgtest"
	"farebox/store/storetest"

	"github.com/jackc/pgx/v5"
)

func TestContract(t *testing.T) {
	pg := pgtest.Start(t)
	storetest.Run(t, func(t *testing.T) fb.Store {
		s, err := postgres.Open(context.Background(), pg.NewDatabase(t), postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func open(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestReplicasNeverOverspend: two engines, each with its own store and
// pool, as two replicas would be, on one database. 1,000 concurrent 1-credit
// holds alternate between them against 100 credits: exactly 100 succeed.
// The same idempotency key sent to both at once applies once.
func TestReplicasNeverOverspend(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	ctx := context.Background()
	stores := []*postgres.Store{open(t, url), open(t, url)}
	var engines []*ledger.Engine
	for _, s := range stores {
		e := ledger.NewEngine(s, ledger.Config{Writers: 4})
		t.Cleanup(e.Close)
		engines = append(engines, e)
	}
	if err := stores[0].CreateCustomer(ctx, fb.Customer{ID: "acme", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := engines[1].Submit(ctx, fb.Op{Kind: fb.OpGrant, Customer: "acme", Amount: 100_000_000, Source: fb.SourcePurchase}); err != nil {
		t.Fatal(err)
	}
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := engines[i%2].Submit(ctx, fb.Op{Kind: fb.OpHold, Customer: "acme", Amount: 1_000_000, TTL: time.Minute, Key: fmt.Sprintf("h%d", i)})
			switch {
			case err == nil:
				ok.Add(1)
			case fb.ErrorType(err) == fb.EInsufficientCredits:
				refused.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 100 || refused.Load() != 900 {
		t.Fatalf("%d holds succeeded, %d refused; want 100 and 900", ok.Load(), refused.Load())
	}
	a, err := stores[0].Account(ctx, "acme")
	if err != nil || ledger.Held(a) != 100_000_000 || len(a.Holds) != 100 {
		t.Fatalf("held %s in %d holds, %v", ledger.Held(a), len(a.Holds), err)
	}

	// One key, both replicas, many times at once: one grant.
	ids := make([]string, 40)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := engines[i%2].Submit(ctx, fb.Op{Kind: fb.OpGrant, Customer: "acme", Amount: 5_000_000, Source: fb.SourcePromo, Key: "same"})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = res.Lot.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("one key made lots %s and %s", ids[0], id)
		}
	}
	if a, _ := stores[1].Account(ctx, "acme"); a.Granted != 105_000_000 {
		t.Fatalf("granted %s, want 105", a.Granted)
	}
	// Captures through the replica that did not make the hold.
	for id := range a.Holds {
		if _, err := engines[1].Submit(ctx, fb.Op{Kind: fb.OpCapture, HoldID: id, Amount: 500_000}); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := ledger.Verify(ctx, stores[0])
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	if a, _ := stores[0].Account(ctx, "acme"); a.Charged != 50_000_000 || ledger.Available(a, time.Now()) != 55_000_000 {
		t.Fatalf("charged %s available %s", a.Charged, ledger.Available(a, time.Now()))
	}
}

// TestConcurrentMigrations: replicas starting at once on an empty database
// migrate it once.
func TestConcurrentMigrations(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := postgres.Open(context.Background(), url, postgres.Options{})
			if err == nil {
				s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := open(t, url)
	if v, err := s.Version(context.Background()); err != nil || v != postgres.SchemaVersion {
		t.Fatalf("version %d, %v", v, err)
	}
	// A read-only open of an empty database is refused clearly.
	if _, err := postgres.Open(context.Background(), pg.NewDatabase(t), postgres.Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "not a farebox database") {
		t.Fatalf("read-only open of an empty database: %v", err)
	}
}

// TestJournalAppendOnly: the database refuses to change the journal.
func TestJournalAppendOnly(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	s := open(t, url)
	ctx := context.Background()
	if err := s.CreateCustomer(ctx, fb.Customer{ID: "acme", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	e := ledger.NewEngine(s, ledger.Config{})
	if _, err := e.Submit(ctx, fb.Op{Kind: fb.OpGrant, Customer: "acme", Amount: 1, Source: fb.SourcePurchase}); err != nil {
		t.Fatal(err)
	}
	e.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{`UPDATE journal SET result = '{}'`, `DELETE FROM journal`, `TRUNCATE journal`} {
		if _, err := conn.Exec(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v", q, err)
		}
	}
}

// TestRestartFailsClosed: while PostgreSQL is down every op fails with 503
// and nothing is applied; after it is back the engine works again.
func TestRestartFailsClosed(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	s := open(t, url)
	ctx := context.Background()
	if err := s.CreateCustomer(ctx, fb.Customer{ID: "acme", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	e := ledger.NewEngine(s, ledger.Config{})
	defer e.Close()
	if _, err := e.Submit(ctx, fb.Op{Kind: fb.OpGrant, Customer: "acme", Amount: 10_000_000, Source: fb.SourcePurchase}); err != nil {
		t.Fatal(err)
	}
	pg.Stop(t)
	_, err := e.Submit(ctx, fb.Op{Kind: fb.OpHold, Customer: "acme", Amount: 10_000_000, TTL: time.Minute, Key: "h"})
	if fb.ErrorType(err) != fb.EUnavailable {
		t.Fatalf("hold with the database down: %v", err)
	}
	pg.Resume(t)
	var res fb.Result
	for range 50 { // the pool reconnects on the next attempt
		if res, err = e.Submit(ctx, fb.Op{Kind: fb.OpHold, Customer: "acme", Amount: 10_000_000, TTL: time.Minute, Key: "h"}); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || res.Hold.Amount != 10_000_000 {
		t.Fatalf("hold after the restart: %+v, %v", res, err)
	}
	rep, err := ledger.Verify(ctx, s)
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// TestBadOpFailsAlone: PostgreSQL refuses a NUL byte in a text column,
// which used to fail the whole ledger batch (other customers' ops
// included) with 503. The engine now commits the batch without the op the
// database refused, which fails by itself (the API refuses such ids before
// they reach the ledger; this is the engine's own defence).
func TestBadOpFailsAlone(t *testing.T) {
	pg := pgtest.Start(t)
	s := open(t, pg.NewDatabase(t))
	ctx := context.Background()
	for _, c := range []string{"acme", "other"} {
		if err := s.CreateCustomer(ctx, fb.Customer{ID: c, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	e := ledger.NewEngine(s, ledger.Config{Writers: 1, MaxWait: 20 * time.Millisecond})
	defer e.Close()
	const n = 200
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range n {
		wg.Go(func() {
			if _, err := e.Submit(ctx, fb.Op{Kind: fb.OpGrant, Customer: "other", Amount: fb.Micro, Source: fb.SourcePurchase, Key: fmt.Sprintf("g%d", i)}); err != nil {
				failed.Add(1)
				t.Errorf("another customer's grant %d: %v", i, err)
			}
		})
	}
	var bad error
	wg.Go(func() {
		_, bad = e.Submit(ctx, fb.Op{Kind: fb.OpGrant, Customer: "acme", Amount: fb.Micro, Source: fb.SourcePurchase, Key: "nul\x00key"})
	})
	wg.Wait()
	if fb.ErrorCode(bad) != "store_rejected" {
		t.Errorf("the grant with a NUL byte: %v, want store_rejected", bad)
	}
	a, err := s.Account(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	if a.Granted != n*fb.Micro {
		t.Errorf("other granted %s, want %d", a.Granted, n)
	}
	if e.Stats().Failed == 0 {
		t.Error("no batch failed: the bad op was never in a batch with the others")
	}
	rep, err := ledger.Verify(ctx, s)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %v", err, rep.Problems)
	}
}
