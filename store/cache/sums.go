package cache

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	fb "farebox"
	"farebox/store/codec"
)

// The daily sums in memory, for the process that makes every write (the
// embedded store). The economics reads (the API's report, the dashboard's
// pages) fold a range of days: from SQL that is a scan of every row of
// every day in the range (60,000 rows for a month of 1,000 customers on
// two models), which the pure-Go SQLite reads in seconds. Here each day
// read once is kept, and kept exact: every write of this process goes
// through Write below, which adds to the days in memory the same
// increments (codec.DailyOf…) the transaction adds to usage_daily, once
// it has committed. A read then folds only what is in memory.
//
// Exactness rests on two rules. A day is loaded from a snapshot whose
// moment is known: the loader holds the write gate (shared by writes in
// flight) only while that snapshot is pinned, so every write is either in
// the snapshot and applied to nothing yet, or after it and logged for the
// load to add. And a write whose outcome is unknown (its commit failed,
// or one of its appends failed and it committed anyway) forgets the days
// it touched, so they are read again.

// With several writers (replicas on PostgreSQL) no process sees every
// write: there each read first asks the store for the rows changed since
// the snapshot of the last read (the store marks each row with the
// transaction that last changed it) and, in the same snapshot, the days it
// lacks; the days in memory are then exact as of that snapshot.

// changeTracker is a store that can say which rows of the daily sums
// changed since a snapshot (store/postgres).
type changeTracker interface {
	DailySumsChanged(ctx context.Context, mark string, from, to time.Time) (changed, days []fb.DailySum, next string, err error)
}

// sumsMaxDays bounds a range served from memory; longer ones (and
// unbounded ones) are read from the store.
const sumsMaxDays = 400

// sumsMaxCells bounds the cells kept; past it the least recently read
// days are forgotten.
const sumsMaxCells = 2_000_000

// cellKey is a row of the daily sums without its day.
type cellKey struct{ customer, model, provider, product, plan string }

// vals are a cell's sums.
type vals struct {
	requests, credits, revenue, cost, uncollected, brCredits, brUSD int64
}

func (v *vals) add(d *codec.Daily) {
	v.requests += d.Requests
	v.credits += int64(d.Credits)
	v.revenue += int64(d.Revenue)
	v.cost += int64(d.Cost)
	v.uncollected += int64(d.Uncollected)
	v.brCredits += int64(d.BrCredits)
	v.brUSD += int64(d.BrUSD)
}

// sum adds b to a and reports whether no sum overflowed (SQL's sum()
// fails then).
func (a *vals) sum(b *vals) bool {
	ok := add64(&a.requests, b.requests)
	ok = add64(&a.credits, b.credits) && ok
	ok = add64(&a.revenue, b.revenue) && ok
	ok = add64(&a.cost, b.cost) && ok
	ok = add64(&a.uncollected, b.uncollected) && ok
	ok = add64(&a.brCredits, b.brCredits) && ok
	return add64(&a.brUSD, b.brUSD) && ok
}

// add64 adds y to *x and reports whether it did not overflow.
func add64(x *int64, y int64) bool {
	s := *x + y
	ok := (*x >= 0) != (y >= 0) || (s >= 0) == (*x >= 0)
	*x = s
	return ok
}

type cell struct {
	id int32
	v  vals
}

// daySums is one day's cells.
type daySums struct {
	at    map[int32]int32 // cell id → index in cells
	cells []cell
	used  atomic.Uint64 // when it was last read (sums.clock)
}

func (d *daySums) add(id int32, inc *codec.Daily) {
	i, ok := d.at[id]
	if !ok {
		i = int32(len(d.cells))
		d.at[id] = i
		d.cells = append(d.cells, cell{id: id})
	}
	d.cells[i].v.add(inc)
}

// set replaces a cell's sums with a row read from the store.
func (d *daySums) set(id int32, r *fb.DailySum) {
	i, ok := d.at[id]
	if !ok {
		i = int32(len(d.cells))
		d.at[id] = i
		d.cells = append(d.cells, cell{id: id})
	}
	d.cells[i].v = vals{r.Requests, int64(r.Credits), int64(r.RevenueUSD), int64(r.CostUSD), int64(r.Uncollected), int64(r.BreakageCredits), int64(r.BreakageUSD)}
}

// load is a day being read from the store: the increments committed
// after its snapshot, to add to it.
type load struct {
	incs    []*codec.Daily
	spoiled bool
}

// groupings a fold knows, with their key of a cell.
var cellKeyOf = map[fb.GroupBy]func(k *cellKey) string{
	fb.GroupCustomer: func(k *cellKey) string { return k.customer },
	fb.GroupModel:    func(k *cellKey) string { return k.model },
	fb.GroupProvider: func(k *cellKey) string { return k.provider },
	fb.GroupPlan:     func(k *cellKey) string { return k.plan },
	fb.GroupProduct: func(k *cellKey) string {
		if k.product == "" {
			return fb.ProductInference // the SQL's CASE
		}
		return k.product
	},
}

type groupKey struct{ key, model string }

// grouping is the groups of one grouping: each cell's group, interned.
type grouping struct {
	of    []int32 // by cell id
	index map[groupKey]int32
	keys  []groupKey
}

type sums struct {
	// tracker, when set, keeps the days exact (several writers); else
	// the writes through Write do (the only writer).
	tracker changeTracker
	poll    sync.Mutex // one refresh at a time
	mark    string     // the snapshot the days are exact at (tracker), under mu

	// gate is held shared by each write from its first statement until
	// its increments are applied, and alone by a loader while its
	// snapshot is pinned.
	gate sync.RWMutex

	mu      sync.RWMutex
	ids     map[cellKey]int32
	keys    []cellKey
	groups  map[fb.GroupBy]*grouping
	days    map[string]*daySums
	loading map[string][]*load
	cells   int // in days
	clock   atomic.Uint64
}

func newSums(tracker changeTracker) *sums {
	s := &sums{tracker: tracker}
	s.reset()
	return s
}

// reset forgets everything (under mu, or before use).
func (s *sums) reset() {
	s.ids, s.keys, s.groups = map[cellKey]int32{}, nil, map[fb.GroupBy]*grouping{}
	s.days, s.cells, s.mark = map[string]*daySums{}, 0, ""
	for _, ls := range s.loading {
		for _, l := range ls {
			l.spoiled = true
		}
	}
	s.loading = map[string][]*load{}
}

// id interns a cell (under mu).
func (s *sums) id(d *codec.Daily) int32 {
	k := cellKey{d.Customer, d.Model, d.Provider, d.Product, d.Plan}
	id, ok := s.ids[k]
	if !ok {
		id = int32(len(s.keys))
		s.ids[k] = id
		s.keys = append(s.keys, k)
	}
	return id
}

// applied adds a committed write's increments to the days in memory and
// to the loads in flight (under mu).
func (s *sums) applied(incs []*codec.Daily) {
	for _, inc := range incs {
		if d := s.days[inc.Day]; d != nil {
			n := len(d.cells)
			d.add(s.id(inc), inc)
			s.cells += len(d.cells) - n
		}
		for _, l := range s.loading[inc.Day] {
			l.incs = append(l.incs, inc)
		}
	}
}

// forget drops days whose sums are unknown (under mu).
func (s *sums) forget(days map[string]bool) {
	for day := range days {
		if d := s.days[day]; d != nil {
			s.cells -= len(d.cells)
			delete(s.days, day)
		}
		for _, l := range s.loading[day] {
			l.spoiled = true
		}
	}
}

// sumsTx records what a transaction adds to the daily sums.
type sumsTx struct {
	fb.WriteTx
	incs    []*codec.Daily
	unknown map[string]bool // days an append failed on
}

func (t *sumsTx) record(err error, incs []*codec.Daily) error {
	if err != nil {
		if t.unknown == nil {
			t.unknown = map[string]bool{}
		}
		for _, d := range incs {
			t.unknown[d.Day] = true
		}
		return err
	}
	t.incs = append(t.incs, incs...)
	return nil
}

func (t *sumsTx) AppendUsage(ctx context.Context, rows []*fb.Usage) error {
	return t.record(t.WriteTx.AppendUsage(ctx, rows), codec.DailyOfUsage(rows))
}

func (t *sumsTx) AppendBreakage(ctx context.Context, b []fb.Breakage) error {
	return t.record(t.WriteTx.AppendBreakage(ctx, b), codec.DailyOfBreakage(b))
}

func (t *sumsTx) AppendRevenue(ctx context.Context, r []fb.Revenue) error {
	return t.record(t.WriteTx.AppendRevenue(ctx, r), codec.DailyOfRevenue(r))
}

// Write is the store's; with the daily sums in memory, what it adds to
// them is added here too once it has committed.
func (s *Store) Write(ctx context.Context, fn func(fb.WriteTx) error) error {
	if s.sums == nil || s.sums.tracker != nil {
		return s.Store.Write(ctx, fn)
	}
	sm := s.sums
	sm.gate.RLock()
	defer sm.gate.RUnlock()
	var tx *sumsTx
	var fnErr error
	err := s.Store.Write(ctx, func(wt fb.WriteTx) error {
		tx = &sumsTx{WriteTx: wt} // afresh if the store runs fn again
		fnErr = fn(tx)
		return fnErr
	})
	if tx == nil {
		return err
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	switch {
	case err == nil:
		sm.applied(tx.incs)
		sm.forget(tx.unknown)
	case fnErr != nil:
		// fn failed: the store rolled everything back.
	default:
		// The commit failed: it may have happened or not.
		days := map[string]bool{}
		for _, d := range tx.incs {
			days[d.Day] = true
		}
		for d := range tx.unknown {
			days[d] = true
		}
		sm.forget(days)
	}
	return err
}

// days lists the days of [from, to), nil when they cannot be served from
// memory (unbounded, not whole days, or too many).
func daysOf(from, to time.Time) []string {
	if from.IsZero() || to.IsZero() || !from.Before(to) {
		return nil
	}
	from, to = from.UTC(), to.UTC()
	var out []string
	for d := from.Truncate(24 * time.Hour); d.Before(to); d = d.AddDate(0, 0, 1) {
		if len(out) == sumsMaxDays {
			return nil
		}
		out = append(out, d.Format(time.DateOnly))
	}
	return out
}

// ensure loads the days missing from memory, each from one snapshot.
func (s *Store) ensure(ctx context.Context, days []string) error {
	sm := s.sums
	sm.mu.RLock()
	var missing []string
	for _, d := range days {
		if sm.days[d] == nil {
			missing = append(missing, d)
		}
	}
	sm.mu.RUnlock()
	if len(missing) == 0 {
		return nil
	}
	// One read of the days from the first missing to the last (those
	// between, already in memory, are read again and ignored).
	from, _ := time.Parse(time.DateOnly, missing[0])
	last, _ := time.Parse(time.DateOnly, missing[len(missing)-1])
	return s.loadDays(ctx, missing, from, last.AddDate(0, 0, 1))
}

// loadDays reads the missing days, each of [from, to), from one snapshot
// pinned while no write is in flight.
func (s *Store) loadDays(ctx context.Context, missing []string, from, to time.Time) error {
	sm := s.sums
	mine := map[string]*load{}
	sm.gate.Lock()
	gated := true
	defer func() {
		if gated {
			sm.gate.Unlock()
		}
	}()
	rows, err := s.Store.DailySums(ctx, from, to, func() {
		sm.mu.Lock()
		for _, d := range missing {
			l := &load{}
			mine[d] = l
			sm.loading[d] = append(sm.loading[d], l)
		}
		sm.mu.Unlock()
		gated = false
		sm.gate.Unlock()
	})
	sm.mu.Lock()
	defer sm.mu.Unlock()
	for d, l := range mine {
		sm.loading[d] = slices.DeleteFunc(sm.loading[d], func(x *load) bool { return x == l })
		if len(sm.loading[d]) == 0 {
			delete(sm.loading, d)
		}
	}
	if err != nil {
		return err
	}
	loaded := map[string]*daySums{}
	for d, l := range mine {
		if !l.spoiled && sm.days[d] == nil {
			loaded[d] = &daySums{at: map[int32]int32{}}
		}
	}
	for i := range rows {
		r := &rows[i]
		d := loaded[r.Day]
		if d == nil {
			continue
		}
		inc := codec.Daily{Day: r.Day, Customer: r.Customer, Model: r.Model, Provider: r.Provider, Product: r.Product, Plan: r.Plan,
			Requests: r.Requests, Credits: r.Credits, Uncollected: r.Uncollected, BrCredits: r.BreakageCredits,
			Revenue: r.RevenueUSD, Cost: r.CostUSD, BrUSD: r.BreakageUSD}
		d.add(sm.id(&inc), &inc)
	}
	for day, d := range loaded {
		for _, inc := range mine[day].incs {
			d.add(sm.id(inc), inc)
		}
		sm.days[day] = d
		sm.cells += len(d.cells)
	}
	return nil
}

// refresh brings the days in memory to the store's latest snapshot, and
// reads those of days it lacks in that snapshot (several writers).
func (s *Store) refresh(ctx context.Context, days []string) error {
	sm := s.sums
	sm.poll.Lock()
	defer sm.poll.Unlock()
	sm.mu.RLock()
	var missing []string
	for _, d := range days {
		if sm.days[d] == nil {
			missing = append(missing, d)
		}
	}
	mark := sm.mark
	sm.mu.RUnlock()
	var from, to time.Time
	if len(missing) > 0 {
		from, _ = time.Parse(time.DateOnly, missing[0])
		to, _ = time.Parse(time.DateOnly, missing[len(missing)-1])
		to = to.AddDate(0, 0, 1)
	}
	changed, rows, next, err := sm.tracker.DailySumsChanged(ctx, mark, from, to)
	if err != nil {
		return err
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if sm.mark != mark {
		// Everything was forgotten meanwhile (reset): start afresh.
		return nil
	}
	for i := range changed {
		r := &changed[i]
		if d := sm.days[r.Day]; d != nil {
			n := len(d.cells)
			d.set(sm.idOf(r), r)
			sm.cells += len(d.cells) - n
		}
	}
	add := map[string]*daySums{}
	for _, d := range missing {
		if sm.days[d] == nil {
			add[d] = &daySums{at: map[int32]int32{}}
		}
	}
	for i := range rows {
		r := &rows[i]
		if d := add[r.Day]; d != nil {
			d.set(sm.idOf(r), r)
		}
	}
	for day, d := range add {
		sm.days[day] = d
		sm.cells += len(d.cells)
	}
	sm.mark = next
	return nil
}

// idOf interns the cell of a row (under mu).
func (s *sums) idOf(r *fb.DailySum) int32 {
	return s.id(&codec.Daily{Customer: r.Customer, Model: r.Model, Provider: r.Provider, Product: r.Product, Plan: r.Plan})
}

// trim forgets the least recently read days past the cells' bound, and
// everything when the cells interned grow past it (under mu).
func (s *sums) trim() {
	if len(s.keys) > 4*sumsMaxCells {
		s.reset()
		return
	}
	for s.cells > sumsMaxCells && len(s.days) > 0 {
		var oldest string
		var at uint64
		for day, d := range s.days {
			if u := d.used.Load(); oldest == "" || u < at {
				oldest, at = day, u
			}
		}
		s.forget(map[string]bool{oldest: true})
	}
}

// group interns the groups of cells up to the last one (under mu).
func (s *sums) group(by fb.GroupBy) *grouping {
	g := s.groups[by]
	if g == nil {
		g = &grouping{index: map[groupKey]int32{}}
		s.groups[by] = g
	}
	keyOf := cellKeyOf[by]
	for id := len(g.of); id < len(s.keys); id++ {
		k := groupKey{keyOf(&s.keys[id]), s.keys[id].model}
		i, ok := g.index[k]
		if !ok {
			i = int32(len(g.keys))
			g.index[k] = i
			g.keys = append(g.keys, k)
		}
		g.of = append(g.of, i)
	}
	return g
}

// economicsBy folds the days of f in memory by each grouping, or answers
// ok false when they are not all there.
func (s *Store) economicsBy(f fb.EconFilter, days []string, groupings []fb.GroupBy) (out [][]fb.EconRow, ok bool, err error) {
	sm := s.sums
	sm.mu.Lock() // groups are interned as cells are
	defer sm.mu.Unlock()
	ds := make([]*daySums, len(days))
	stamp := sm.clock.Add(1)
	for i, d := range days {
		if ds[i] = sm.days[d]; ds[i] == nil {
			return nil, false, nil
		}
		ds[i].used.Store(stamp)
	}
	defer sm.trim()
	// The customer's cells only, when f names one.
	var only []bool
	if f.Customer != "" {
		only = make([]bool, len(sm.keys))
		for id := range sm.keys {
			only[id] = sm.keys[id].customer == f.Customer
		}
	}
	out = make([][]fb.EconRow, len(groupings))
	for gi, by := range groupings {
		if by == fb.GroupDay {
			out[gi], err = sm.foldDays(ds, days, only)
		} else {
			out[gi], err = sm.fold(ds, sm.group(by), only)
		}
		if err != nil {
			return nil, true, err
		}
	}
	return out, true, nil
}

var errSumOverflow = fb.Errorf(fb.EInternal, "economics: a sum overflows")

// fold sums the days' cells by their groups, ordered by key and model as
// the SQL's ORDER BY (bytewise).
func (s *sums) fold(ds []*daySums, g *grouping, only []bool) ([]fb.EconRow, error) {
	acc := make([]vals, len(g.keys))
	seen := make([]bool, len(g.keys))
	var present []int32
	for _, d := range ds {
		for i := range d.cells {
			c := &d.cells[i]
			if only != nil && !only[c.id] {
				continue
			}
			gi := g.of[c.id]
			if !seen[gi] {
				seen[gi] = true
				present = append(present, gi)
			}
			if !acc[gi].sum(&c.v) {
				return nil, errSumOverflow
			}
		}
	}
	slices.SortFunc(present, func(a, b int32) int {
		return cmp.Or(cmp.Compare(g.keys[a].key, g.keys[b].key), cmp.Compare(g.keys[a].model, g.keys[b].model))
	})
	var out []fb.EconRow
	for _, gi := range present {
		out = append(out, row(g.keys[gi].key, g.keys[gi].model, &acc[gi]))
	}
	return out, nil
}

// foldDays sums each day's cells by model.
func (s *sums) foldDays(ds []*daySums, days []string, only []bool) ([]fb.EconRow, error) {
	g := s.group(fb.GroupModel)
	acc := make([]vals, len(g.keys))
	seen := make([]bool, len(g.keys))
	var out []fb.EconRow
	for di, d := range ds {
		var present []int32
		for i := range d.cells {
			c := &d.cells[i]
			if only != nil && !only[c.id] {
				continue
			}
			gi := g.of[c.id]
			if !seen[gi] {
				seen[gi] = true
				present = append(present, gi)
			}
			if !acc[gi].sum(&c.v) {
				return nil, errSumOverflow
			}
		}
		slices.SortFunc(present, func(a, b int32) int { return cmp.Compare(g.keys[a].model, g.keys[b].model) })
		for _, gi := range present {
			out = append(out, row(days[di], g.keys[gi].model, &acc[gi]))
			acc[gi], seen[gi] = vals{}, false
		}
	}
	return out, nil
}

func row(key, model string, v *vals) fb.EconRow {
	return fb.EconRow{Key: key, Model: model, Requests: v.requests, Credits: fb.Amount(v.credits), RevenueUSD: fb.USD(v.revenue),
		CostUSD: fb.USD(v.cost), Uncollected: fb.Amount(v.uncollected), BreakageCredits: fb.Amount(v.brCredits), BreakageUSD: fb.USD(v.brUSD)}
}

// Economics is the store's, folded from the days in memory when they
// can be.
func (s *Store) Economics(ctx context.Context, f fb.EconFilter) ([]fb.EconRow, error) {
	out, err := s.EconomicsBy(ctx, f, f.GroupBy)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// EconomicsBy is the store's, folded from the days in memory when they
// can be: loaded first if they are missing.
func (s *Store) EconomicsBy(ctx context.Context, f fb.EconFilter, groupings ...fb.GroupBy) ([][]fb.EconRow, error) {
	days := daysOf(f.From, f.To)
	known := true
	for _, g := range groupings {
		_, ok := cellKeyOf[g]
		known = known && (ok || g == fb.GroupDay)
	}
	if s.sums == nil || days == nil || !known || !wholeDays(f) {
		return s.Store.EconomicsBy(ctx, f, groupings...)
	}
	if f.Customer != "" && (s.sums.tracker != nil || !s.sums.have(days)) {
		// One customer's days are an indexed read in SQL: loading every
		// customer's days for it (or asking what every replica changed)
		// would cost more.
		return s.Store.EconomicsBy(ctx, f, groupings...)
	}
	for range 2 {
		load := s.ensure
		if s.sums.tracker != nil {
			load = s.refresh // every time: what changed since
		}
		if err := load(ctx, days); err != nil {
			return nil, err
		}
		if out, ok, err := s.economicsBy(f, days, groupings); ok {
			return out, err
		}
	}
	// Forgotten again at once (a failed write, or too many cells).
	return s.Store.EconomicsBy(ctx, f, groupings...)
}

// wholeDays reports whether f's bounds are midnights: the SQL compares
// days, so other bounds mean the days they fall in, which daysOf does too;
// this only keeps the two readings obviously alike.
func wholeDays(f fb.EconFilter) bool {
	return f.From.UTC().Truncate(24*time.Hour).Equal(f.From) && f.To.UTC().Truncate(24*time.Hour).Equal(f.To)
}

// have reports whether every one of the days is in memory.
func (s *sums) have(days []string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, d := range days {
		if s.days[d] == nil {
			return false
		}
	}
	return true
}

// Warm reads the days [from, to) into memory, as a report of them would:
// at start, so the first economics page after it is fast too.
func (s *Store) Warm(ctx context.Context, from, to time.Time) error {
	days := daysOf(from, to)
	if s.sums == nil || days == nil {
		return nil
	}
	if s.sums.tracker != nil {
		return s.refresh(ctx, days)
	}
	return s.ensure(ctx, days)
}

// SumsKept says how the daily sums are kept in memory: "writes" (this
// process's own, the only writer's), "changes" (what changed since each
// read, with several writers), or "" (not kept: every report reads SQL).
func (s *Store) SumsKept() string {
	switch {
	case s.sums == nil:
		return ""
	case s.sums.tracker != nil:
		return "changes"
	}
	return "writes"
}
