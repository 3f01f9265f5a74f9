package cache_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fb "farebox"
	"farebox/store/cache"
	"farebox/store/postgres"
	"farebox/store/postgres/pgtest"
	"farebox/store/sqlite"
	"farebox/store/storetest"
)

func openSQLite(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "farebox.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestContract: the decorated store, the daily sums in memory, passes the
// contract every store passes (the economics identity among it).
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) fb.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "farebox.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return cache.New(s, cache.Options{TTL: time.Minute, Sums: true})
	})
}

// counting counts the store's reads of the daily sums, and can make a
// write's commit fail after it happened (the commit's answer lost) or an
// append fail after it wrote.
type counting struct {
	fb.Store
	sql, loads atomic.Int64 // all customers' sums read in SQL; loads of days
	lostCommit atomic.Bool  // the next commit happens but answers an error
	duringLoad func()       // runs once a load's snapshot is pinned
	badAppend  atomic.Bool  // the next AppendUsage writes, then fails
}

// EconomicsBy counts SQL's reads of every customer's sums (one
// customer's are meant to be read there: an indexed read).
func (c *counting) EconomicsBy(ctx context.Context, f fb.EconFilter, g ...fb.GroupBy) ([][]fb.EconRow, error) {
	if f.Customer == "" {
		c.sql.Add(1)
	}
	return c.Store.EconomicsBy(ctx, f, g...)
}

func (c *counting) Economics(ctx context.Context, f fb.EconFilter) ([]fb.EconRow, error) {
	if f.Customer == "" {
		c.sql.Add(1)
	}
	return c.Store.Economics(ctx, f)
}

func (c *counting) DailySums(ctx context.Context, from, to time.Time, pinned func()) ([]fb.DailySum, error) {
	c.loads.Add(1)
	return c.Store.DailySums(ctx, from, to, func() {
		pinned()
		if f := c.duringLoad; f != nil {
			c.duringLoad = nil
			f()
		}
	})
}

// DailySumsChanged is the PostgreSQL store's (a replica's reads).
func (c *counting) DailySumsChanged(ctx context.Context, mark string, from, to time.Time) ([]fb.DailySum, []fb.DailySum, string, error) {
	c.loads.Add(1)
	return c.Store.(*postgres.Store).DailySumsChanged(ctx, mark, from, to)
}

var errLost = errors.New("connection lost at commit")

func (c *counting) Write(ctx context.Context, fn func(fb.WriteTx) error) error {
	err := c.Store.Write(ctx, func(tx fb.WriteTx) error { return fn(&failingTx{tx, c}) })
	if err == nil && c.lostCommit.CompareAndSwap(true, false) {
		return errLost
	}
	return err
}

type failingTx struct {
	fb.WriteTx
	c *counting
}

func (t *failingTx) AppendUsage(ctx context.Context, rows []*fb.Usage) error {
	err := t.WriteTx.AppendUsage(ctx, rows)
	if err == nil && t.c.badAppend.CompareAndSwap(true, false) {
		return errors.New("append failed after writing")
	}
	return err
}

// scenario writes random usage, breakage and revenue over several days
// through w (the store under test, or another replica), moving its clock
// over midnights, and reports what it wrote.
type scenario struct {
	t       *testing.T
	rng     *rand.Rand
	now     time.Time
	n       int
	writers []fb.Store
}

var day0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

var customers = []string{"acme", "beta", "gamma"}

func (sc *scenario) write(fail func(*fb.Usage) error) error {
	ctx := context.Background()
	w := sc.writers[sc.rng.IntN(len(sc.writers))]
	sc.now = sc.now.Add(time.Duration(sc.rng.IntN(5*60)) * time.Minute)
	var rows []*fb.Usage
	var bs []fb.Breakage
	var rs []fb.Revenue
	models := []struct{ model, provider string }{{"gpt-4o", "openai"}, {"gpt-4o", "azure"}, {"llama-3", "own-gpu"}, {"sora-1", ""}}
	for range 1 + sc.rng.IntN(6) {
		sc.n++
		m := models[sc.rng.IntN(len(models))]
		at := sc.now
		if sc.rng.IntN(8) == 0 {
			at = at.AddDate(0, 0, -1-sc.rng.IntN(3)) // a late event, on a past day
		}
		u := &fb.Usage{ID: fmt.Sprintf("u%d", sc.n), Source: "test", Customer: customers[sc.rng.IntN(3)], Model: m.model, Provider: m.provider,
			At: at, Quantities: fb.Quantities{Requests: 1}, Credits: fb.Amount(sc.rng.Int64N(5_000_000)), CostUSD: fb.USD(sc.rng.Int64N(9000)),
			RevenueUSD: fb.USD(sc.rng.Int64N(20_000)), Uncollected: fb.Amount(sc.rng.Int64N(3) * 1000), Plan: []string{"", "pro"}[sc.rng.IntN(2)]}
		if sc.rng.IntN(5) == 0 {
			u.Product = fb.ProductLease
		}
		rows = append(rows, u)
	}
	if sc.rng.IntN(4) == 0 {
		bs = append(bs, fb.Breakage{Customer: customers[sc.rng.IntN(3)], At: sc.now, Credits: 7_000_000, USD: 70_000})
	}
	if sc.rng.IntN(4) == 0 {
		rs = append(rs, fb.Revenue{Customer: customers[sc.rng.IntN(3)], At: sc.now, Credits: 2_000_000, USD: 20_000, Uncollected: 500})
	}
	return w.Write(ctx, func(tx fb.WriteTx) error {
		if err := tx.AppendUsage(ctx, rows); err != nil {
			return err
		}
		if err := tx.AppendBreakage(ctx, bs); err != nil {
			return err
		}
		if err := tx.AppendRevenue(ctx, rs); err != nil {
			return err
		}
		if fail != nil {
			return fail(rows[0])
		}
		return nil
	})
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

var groupings = []fb.GroupBy{fb.GroupCustomer, fb.GroupDay, fb.GroupModel, fb.GroupProvider, fb.GroupProduct, fb.GroupPlan}

// same checks that the store under test answers every report exactly as
// the reference (SQL) does, over ranges that cover the days written.
func same(t *testing.T, got, want fb.Store, last time.Time) {
	t.Helper()
	ctx := context.Background()
	end := last.Truncate(24*time.Hour).AddDate(0, 0, 1)
	for _, r := range [][2]time.Time{{day0.AddDate(0, 0, -3), end}, {day0, end}, {end.AddDate(0, 0, -1), end}, {day0.AddDate(0, 0, 1), end.AddDate(0, 0, -1)}, {end, end.AddDate(0, 0, 2)}} {
		if !r[0].Before(r[1]) {
			continue
		}
		for _, c := range []string{"", "acme", "nobody"} {
			f := fb.EconFilter{From: r[0], To: r[1], Customer: c}
			a, err := got.EconomicsBy(ctx, f, groupings...)
			if err != nil {
				t.Fatal(err)
			}
			b, err := want.EconomicsBy(ctx, f, groupings...)
			if err != nil {
				t.Fatal(err)
			}
			for i, g := range groupings {
				if js(a[i]) != js(b[i]) {
					t.Fatalf("%s to %s, customer %q, by %s:\n got %s\nwant %s", r[0].Format(time.DateOnly), r[1].Format(time.DateOnly), c, g, js(a[i]), js(b[i]))
				}
			}
			f.GroupBy = fb.GroupCustomer
			one, err := got.Economics(ctx, f)
			if err != nil || js(one) != js(b[0]) {
				t.Fatalf("Economics by customer: %s, %v; want %s", js(one), err, js(b[0]))
			}
		}
	}
}

// TestSumsExact (the only writer, SQLite): reports folded from the days in
// memory equal SQL's after every kind of write — new days past midnight,
// late events on past days, breakage, revenue without usage, a write
// rolled back, a commit whose answer is lost though it happened, an append
// that failed after writing in a transaction that committed anyway — and
// once the days are in memory, reading them again asks nothing of SQL.
func TestSumsExact(t *testing.T) {
	ctx := context.Background()
	raw := openSQLite(t)
	for _, c := range customers {
		if err := raw.CreateCustomer(ctx, fb.Customer{ID: c, CreatedAt: day0}); err != nil {
			t.Fatal(err)
		}
	}
	under := &counting{Store: raw}
	s := cache.New(under, cache.Options{TTL: time.Minute, Sums: true})
	sc := &scenario{t: t, rng: rand.New(rand.NewPCG(14, 2)), now: day0.Add(9 * time.Hour), writers: []fb.Store{s}}
	for step := range 120 {
		var err error
		switch step % 10 {
		case 3: // rolled back
			err = sc.write(func(*fb.Usage) error { return errors.New("no") })
			if err == nil {
				t.Fatal("the failing write succeeded")
			}
		case 5:
			under.lostCommit.Store(true)
			if err = sc.write(nil); !errors.Is(err, errLost) {
				t.Fatalf("a lost commit: %v", err)
			}
		case 7: // the append fails after writing; the transaction goes on and commits
			under.badAppend.Store(true)
			ctx := context.Background()
			sc.n++
			u := &fb.Usage{ID: fmt.Sprintf("u%d", sc.n), Source: "test", Customer: "acme", Model: "gpt-4o", Provider: "openai", At: sc.now, Credits: 1_000_000}
			err = s.Write(ctx, func(tx fb.WriteTx) error {
				_ = tx.AppendUsage(ctx, []*fb.Usage{u}) // swallowed
				return nil
			})
		default:
			err = sc.write(nil)
		}
		if err != nil && step%10 != 3 && step%10 != 5 {
			t.Fatal(err)
		}
		if step%6 == 0 {
			same(t, s, raw, sc.now)
		}
	}
	same(t, s, raw, sc.now)
	if sc.now.Sub(day0) < 3*24*time.Hour {
		t.Fatalf("the scenario spans %s; want several midnights", sc.now.Sub(day0))
	}
	// In memory now: more reads load nothing and query no SQL.
	f := fb.EconFilter{From: day0, To: sc.now.Truncate(24*time.Hour).AddDate(0, 0, 1)}
	if _, err := s.EconomicsBy(ctx, f, groupings...); err != nil {
		t.Fatal(err)
	}
	loads, sqls := under.loads.Load(), under.sql.Load()
	for range 3 {
		if err := sc.write(nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.EconomicsBy(ctx, f, groupings...); err != nil {
			t.Fatal(err)
		}
	}
	if under.loads.Load() != loads || under.sql.Load() != sqls {
		t.Errorf("reads of days in memory loaded %d times and queried SQL %d times; want none", under.loads.Load()-loads, under.sql.Load()-sqls)
	}
}

// TestSumsWriteDuringLoad: a write that commits after a load's snapshot
// was taken, before its rows are read, is not in them: the load adds it.
func TestSumsWriteDuringLoad(t *testing.T) {
	ctx := context.Background()
	raw := openSQLite(t)
	for _, c := range customers {
		if err := raw.CreateCustomer(ctx, fb.Customer{ID: c, CreatedAt: day0}); err != nil {
			t.Fatal(err)
		}
	}
	under := &counting{Store: raw}
	s := cache.New(under, cache.Options{TTL: time.Minute, Sums: true})
	sc := &scenario{t: t, rng: rand.New(rand.NewPCG(8, 8)), now: day0.Add(9 * time.Hour), writers: []fb.Store{s}}
	for range 10 {
		if err := sc.write(nil); err != nil {
			t.Fatal(err)
		}
	}
	wrote := false
	under.duringLoad = func() {
		if err := sc.write(nil); err != nil {
			t.Error(err)
		}
		wrote = true
	}
	same(t, s, raw, sc.now)
	if !wrote {
		t.Fatal("no load ran")
	}
}

// TestSumsConcurrent: loads racing writes (run with -race) end exact:
// each day is read from a snapshot taken while no write was in flight,
// and what committed after it is added.
func TestSumsConcurrent(t *testing.T) {
	ctx := context.Background()
	raw := openSQLite(t)
	for _, c := range customers {
		if err := raw.CreateCustomer(ctx, fb.Customer{ID: c, CreatedAt: day0}); err != nil {
			t.Fatal(err)
		}
	}
	s := cache.New(raw, cache.Options{TTL: time.Minute, Sums: true})
	var mu sync.Mutex
	sc := &scenario{t: t, rng: rand.New(rand.NewPCG(3, 9)), now: day0.Add(20 * time.Hour), writers: []fb.Store{s}}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 60 {
				mu.Lock()
				err := sc.write(nil)
				mu.Unlock()
				if err != nil {
					t.Error(err)
					return
				}
			}
			_ = w
		}()
	}
	readers := sync.WaitGroup{}
	for r := range 3 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Ranges that start on different days, so loads of
				// days overlap writes to them.
				f := fb.EconFilter{From: day0.AddDate(0, 0, -2+(i+r)%3), To: day0.AddDate(0, 0, 20)}
				if _, err := s.EconomicsBy(ctx, f, fb.GroupCustomer, fb.GroupDay); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	same(t, s, raw, sc.now)
}

// TestSumsReplicas (PostgreSQL, several writers): two replicas each keep
// the sums in memory while both, and a third process that keeps none,
// write; each read asks for what changed since its last and answers as
// SQL does.
func TestSumsReplicas(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	ctx := context.Background()
	open := func() *postgres.Store {
		s, err := postgres.Open(ctx, url, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	raw := open()
	for _, c := range customers {
		if err := raw.CreateCustomer(ctx, fb.Customer{ID: c, CreatedAt: day0}); err != nil {
			t.Fatal(err)
		}
	}
	under := [2]*counting{{Store: open()}, {Store: open()}}
	a := cache.New(under[0], cache.Options{Sums: true})
	b := cache.New(under[1], cache.Options{Sums: true})
	sc := &scenario{t: t, rng: rand.New(rand.NewPCG(5, 7)), now: day0.Add(9 * time.Hour), writers: []fb.Store{a, b, raw}}
	for step := range 60 {
		if err := sc.write(nil); err != nil {
			t.Fatal(err)
		}
		if step%5 == 0 {
			same(t, a, raw, sc.now)
			same(t, b, raw, sc.now)
		}
	}
	// Concurrent writers on both replicas while they read.
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				mu.Lock()
				err := sc.write(nil)
				mu.Unlock()
				if err != nil {
					t.Error(err)
					return
				}
				for _, s := range []fb.Store{a, b} {
					if _, err := s.EconomicsBy(ctx, fb.EconFilter{From: day0, To: day0.AddDate(0, 0, 30)}, fb.GroupCustomer); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	same(t, a, raw, sc.now)
	same(t, b, raw, sc.now)
	if under[0].sql.Load() != 0 || under[1].sql.Load() != 0 {
		t.Errorf("the replicas queried the sums in SQL %d and %d times; want every read from memory", under[0].sql.Load(), under[1].sql.Load())
	}
}
