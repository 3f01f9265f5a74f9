package ledger

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"time"

	fb "farebox"
	"farebox/ids"
)

// Config tunes an Engine. The zero value is usable.
type Config struct {
	// MaxBatch bounds the ops applied and committed in one transaction.
	// 1 turns batching off (one op per transaction).
	MaxBatch int
	// MaxWait is how long a batch may wait for more ops once it has one.
	// Zero commits whatever has queued up while the last commit ran.
	MaxWait time.Duration
	// Cache keeps committed accounts in memory between batches. Only safe
	// when this engine is the store's only writer (SQLite).
	Cache bool
	// Writers is how many batches may be in flight at once, each in its
	// own transaction, with ops spread over them by customer (captures and
	// releases by hold id). Above 1 only without Cache: the store's locks
	// (PostgreSQL's row locks, taken in sorted order) keep two batches off
	// one account. 1 when zero.
	Writers int
	// MaxCached bounds the cached accounts; beyond it some are dropped.
	MaxCached int
	// WriteTimeout bounds one batch's transaction, so a database that
	// stops answering fails the batch (503) instead of stalling the
	// ledger; 30 s when zero.
	WriteTimeout time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// NewID returns a fresh id with the given prefix; random when nil.
	NewID  func(prefix string) string
	Logger *slog.Logger
	// Observer is told of every batch (the metrics); nil: nobody.
	Observer Observer
}

// Observer is told, once per batch, how many ops it held, how long its
// commit took and whether it failed, and of the credit its entries
// granted, consumed and expired (micro-credits).
type Observer interface {
	ObserveBatch(ops int, commit time.Duration, failed bool)
	ObserveCredits(granted, consumed, expired int64)
}

// errInvariant marks a batch the state machine left breaking an invariant.
var errInvariant = errors.New("ledger invariant broken")

// ErrClosed is returned by Submit after Close.
var ErrClosed = fb.ErrShuttingDown.New("the ledger is shutting down")

// Engine applies ledger ops in batches: it takes what has queued up, loads
// the touched accounts, applies the state machine, checks the invariants,
// writes state and journal in one transaction and answers every caller only
// after the commit.
type Engine struct {
	store fb.Store
	cfg   Config
	log   *slog.Logger

	mu     sync.RWMutex
	closed bool
	queues []chan *request
	done   chan struct{}

	// Touched only by the loop goroutine.
	cache     map[string]*fb.Account
	holdOwner map[string]string

	// routes remembers whose holds this engine made, so a capture goes to
	// the writer of its customer. A hint only: correctness never rests on it.
	routeMu sync.Mutex
	routes  map[string]string

	statsMu sync.Mutex
	stats   Stats
}

// Stats counts the engine's work.
type Stats struct {
	Batches int64
	Ops     int64
	Failed  int64 // batches whose commit failed
	Lost    int64 // holds answered early whose commit failed (see Reserve)
	// HoldsOpen is the pending holds of the accounts kept in memory (a
	// sole writer's; 0 for an engine that keeps none).
	HoldsOpen int64
}

type request struct {
	op fb.Op
	// The answer, written once, just before done is closed; after that
	// the request is the caller's.
	res    fb.Result
	replay bool // res is the answer kept under the op's key
	err    error
	done   chan struct{}

	// The engine's side, touched only by the loop that runs the op: the
	// outcome of its last application, and whether it was answered.
	out       fb.Result
	outReplay bool
	outErr    error
	answered  bool
	retried   bool // a lone op the store refused, run once more

	// early: answer once applied, before the commit (Reserve). acked and
	// ackedErr are that answer; lost is called when a hold so answered
	// does not become durable as answered. A refusal so answered stands.
	early    bool
	acked    fb.Result
	ackedErr error
	lost     func()

	// with commits its own work with the op (SubmitWith).
	with Companion
}

func (r *request) answer() {
	r.res, r.replay, r.err = r.out, r.outReplay, r.outErr
	r.answered = true
	close(r.done)
}

// NewEngine returns a started engine writing through store.
func NewEngine(store fb.Store, cfg Config) *Engine {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 4096
	}
	if cfg.MaxCached <= 0 {
		cfg.MaxCached = 200_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Writers <= 0 || cfg.Cache {
		cfg.Writers = 1
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.NewID == nil {
		cfg.NewID = ids.New
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		store: store, cfg: cfg, log: cfg.Logger,
		done:      make(chan struct{}),
		cache:     map[string]*fb.Account{},
		holdOwner: map[string]string{},
		routes:    map[string]string{},
	}
	var wg sync.WaitGroup
	for range cfg.Writers {
		q := make(chan *request, 4*cfg.MaxBatch)
		e.queues = append(e.queues, q)
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.loop(q)
		}()
	}
	go func() {
		wg.Wait()
		close(e.done)
	}()
	return e
}

// maxRoutes bounds the routing hints kept; beyond it they start afresh.
const maxRoutes = 1 << 20

func (e *Engine) route(h *fb.HoldView) {
	if h == nil {
		return
	}
	e.routeMu.Lock()
	if len(e.routes) >= maxRoutes {
		clear(e.routes)
	}
	e.routes[h.ID] = h.Customer
	e.routeMu.Unlock()
}

// queueFor spreads ops over the writers by customer, so one customer's ops
// meet in one queue instead of waiting on each other's locks; captures and
// releases go by their hold's customer when this engine made the hold,
// else by hold id.
func (e *Engine) queueFor(op *fb.Op) chan *request {
	if len(e.queues) == 1 {
		return e.queues[0]
	}
	key := op.Customer
	if key == "" {
		e.routeMu.Lock()
		key = e.routes[op.HoldID]
		e.routeMu.Unlock()
	}
	if key == "" {
		key = op.HoldID
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return e.queues[h.Sum32()%uint32(len(e.queues))]
}

// Now is the engine's clock.
func (e *Engine) Now() time.Time { return e.cfg.Now() }

// Stats returns counters of the work done so far.
func (e *Engine) Stats() Stats {
	e.statsMu.Lock()
	defer e.statsMu.Unlock()
	return e.stats
}

// Queued is how many ops wait in the engine's queues for a batch.
func (e *Engine) Queued() int {
	n := 0
	for _, q := range e.queues {
		n += len(q)
	}
	return n
}

// Submit validates op, queues it and waits for its committed result. The ids
// of what it creates are chosen here unless the op names them.
func (e *Engine) Submit(ctx context.Context, op fb.Op) (fb.Result, error) {
	res, _, err := e.SubmitReplay(ctx, op)
	return res, err
}

// SubmitReplay is Submit, also reporting whether the answer is the one kept
// under the op's key from an earlier application (a duplicate).
func (e *Engine) SubmitReplay(ctx context.Context, op fb.Op) (fb.Result, bool, error) {
	return e.submit(ctx, op, false, nil, nil)
}

// Reserve is Submit for a hold that answers as soon as the hold is applied,
// before its batch's commit is durable, when the engine is the store's only
// writer (Cache); otherwise it is Submit. The reservation is in force at
// once, since every later op of the account is applied after it, and any
// op that follows the hold (its capture) commits after it.
//
// The price is that a commit can still fail after the answer. Then lost is
// called (once, from the engine's goroutine: it must not block): the hold
// is not in the ledger, or not as it was answered, and the caller must stop
// relying on it — cancel the request it guards and release the hold, which
// answers not_found when it was never committed. The engine itself forgets
// everything the failed batch applied and goes on from the durable state,
// so nothing is spent twice.
func (e *Engine) Reserve(ctx context.Context, op fb.Op, lost func()) (fb.Result, error) {
	if op.Kind != fb.OpHold {
		return fb.Result{}, fmt.Errorf("ledger: Reserve takes a hold, not a %s", op.Kind)
	}
	res, _, err := e.submit(ctx, op, e.cfg.Cache, lost, nil)
	return res, err
}

func (e *Engine) submit(ctx context.Context, op fb.Op, early bool, lost func(), with Companion) (fb.Result, bool, error) {
	if err := Validate(&op); err != nil {
		return fb.Result{}, false, err
	}
	switch op.Kind {
	case fb.OpGrant:
		if op.LotID == "" {
			op.LotID = e.cfg.NewID("lot_")
		}
	case fb.OpHold:
		if op.HoldID == "" {
			op.HoldID = e.cfg.NewID("hold_")
		}
	}
	if lost == nil {
		lost = func() {}
	}
	r := &request{op: op, done: make(chan struct{}), early: early, lost: lost, with: with}
	e.mu.RLock()
	if e.closed {
		e.mu.RUnlock()
		return fb.Result{}, false, ErrClosed
	}
	select {
	case e.queueFor(&r.op) <- r:
	case <-ctx.Done():
		e.mu.RUnlock()
		return fb.Result{}, false, ctx.Err()
	}
	e.mu.RUnlock()
	select {
	case <-r.done:
		if r.err == nil && op.Kind == fb.OpHold && len(e.queues) > 1 {
			e.route(r.res.Hold)
		}
		return r.res, r.replay, r.err
	case <-ctx.Done():
		// The op may still commit; its idempotency key makes a retry safe.
		return fb.Result{}, false, ctx.Err()
	}
}

// Close stops accepting ops, finishes everything queued and returns.
func (e *Engine) Close() {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		for _, q := range e.queues {
			close(q)
		}
	}
	e.mu.Unlock()
	<-e.done
}

// Sweep expires the holds and lots that are due on accounts nobody touched,
// by submitting an expire op for each such account. Servers call it every
// second or so; tests call it after moving their clock.
func (e *Engine) Sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		due, err := e.store.DueAccounts(ctx, e.cfg.Now(), 1000)
		if err != nil {
			return total, err
		}
		if len(due) == 0 {
			return total, nil
		}
		var wg sync.WaitGroup
		errs := make([]error, len(due))
		for i, c := range due {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = e.Submit(ctx, fb.Op{Kind: fb.OpExpire, Customer: c})
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return total, err
		}
		total += len(due)
		if len(due) < 1000 {
			return total, nil
		}
	}
}

func (e *Engine) loop(queue chan *request) {
	batch := make([]*request, 0, e.cfg.MaxBatch)
	for {
		r, ok := <-queue
		if !ok {
			return
		}
		batch = append(batch[:0], r)
		open := e.fill(queue, &batch)
		e.run(batch, e.cfg.Now().UTC())
		if !open {
			// Drain what was queued before Close.
			for r := range queue {
				e.run([]*request{r}, e.cfg.Now().UTC())
			}
			return
		}
	}
}

// fill adds queued ops to the batch, waiting up to MaxWait for more. It
// reports false when the queue has been closed.
func (e *Engine) fill(queue chan *request, batch *[]*request) bool {
	var timer <-chan time.Time
	if e.cfg.MaxWait > 0 {
		t := time.NewTimer(e.cfg.MaxWait)
		defer t.Stop()
		timer = t.C
	}
	for len(*batch) < e.cfg.MaxBatch {
		select {
		case r, ok := <-queue:
			if !ok {
				return false
			}
			*batch = append(*batch, r)
			continue
		default:
		}
		if timer == nil {
			return true
		}
		select {
		case r, ok := <-queue:
			if !ok {
				return false
			}
			*batch = append(*batch, r)
		case <-timer:
			return true
		}
	}
	return true
}

// run applies and commits one batch at now and answers its callers.
//
// When the store refuses the batch because of what one op carries
// (farebox.ErrRejected, or an invariant the batch would break), the batch
// is split in halves and each is run again at the same instant, until the
// op that was refused stands alone: it fails by itself and the others
// commit. A lone refused op is run once more (another replica may have
// taken its key first: run again it finds the key and answers the kept
// result) before it is answered with the refusal. Any other failure of a
// commit (the database is unavailable) fails the whole batch.
//
// Ops answered early (Reserve) are not the engine's to answer again: if
// they do not end up committed with the answer they were given, their
// lost callback is called.
func (e *Engine) run(batch []*request, now time.Time) {
	for _, r := range batch {
		r.op.At = now
		r.out, r.outErr, r.outReplay = fb.Result{}, nil, false
		if r.answered && r.ackedErr != nil {
			r.outErr = r.ackedErr // refused when answered early: it stays refused
		}
	}
	var accts map[string]*fb.Account
	var loaded []string
	var newHolds, closedHolds []*fb.Hold
	var entries []*fb.JournalEntry
	var comps []CompanionTx
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.WriteTimeout)
	err := e.store.Write(ctx, func(tx fb.WriteTx) error {
		var err error
		accts, loaded, err = e.prepare(ctx, tx, batch)
		if err != nil {
			return err
		}
		newHolds, closedHolds, entries, err = e.apply(ctx, tx, batch, accts, now, &comps)
		if err == nil && e.cfg.Cache {
			for _, r := range batch {
				if r.early && !r.answered {
					r.acked, r.ackedErr = r.out, r.outErr
					r.answer()
				}
			}
		}
		return err
	})
	cancel()
	for _, c := range comps {
		c.End(err == nil)
	}
	if o := e.cfg.Observer; o != nil {
		o.ObserveBatch(len(batch), time.Since(t0), err != nil)
		if err == nil {
			o.ObserveCredits(creditsOf(entries))
		}
	}
	e.statsMu.Lock()
	e.stats.Batches++
	e.stats.Ops += int64(len(batch))
	if err != nil {
		e.stats.Failed++
	}
	e.statsMu.Unlock()
	if err != nil {
		// Nothing was committed: forget whatever the batch changed in
		// memory; the accounts are read again from the durable state.
		for c := range accts {
			e.evict(c)
		}
		if errors.Is(err, fb.ErrRejected) {
			if len(batch) > 1 {
				e.log.Warn("ledger batch refused by the store; splitting it to find the op", "ops", len(batch), "err", err)
				mid := len(batch) / 2
				e.run(batch[:mid], now)
				e.run(batch[mid:], now)
				return
			}
			if r := batch[0]; !r.retried {
				r.retried = true
				e.run(batch, now)
				return
			}
		}
		e.log.Error("ledger batch failed", "ops", len(batch), "err", err)
		var fail error = fb.ErrStoreUnavailable.New("the ledger could not commit the batch; retry with the same idempotency key")
		switch {
		case errors.Is(err, errInvariant):
			fail = err // internal: logged, shown as internal_error
		case errors.Is(err, fb.ErrRejected):
			fail = fb.ErrStoreRejected.New("the database refused what this operation records")
		}
		for _, r := range batch {
			if r.answered {
				if r.ackedErr == nil {
					e.lose(r)
				}
				continue
			}
			r.out, r.outReplay, r.outErr = fb.Result{}, false, fail
			r.answer()
		}
		return
	}
	for c, a := range accts {
		clear(a.Closed)
		if e.cfg.Cache {
			e.cache[c] = a
		}
	}
	if e.cfg.Cache {
		for _, c := range loaded {
			a, ok := accts[c]
			if !ok {
				continue
			}
			for id := range a.Holds {
				e.holdOwner[id] = c
			}
		}
		for _, h := range newHolds {
			e.holdOwner[h.ID] = h.Customer
		}
		for _, h := range closedHolds {
			delete(e.holdOwner, h.ID)
		}
		if len(e.cache) > e.cfg.MaxCached {
			e.shrink(loaded)
		}
		e.statsMu.Lock()
		e.stats.HoldsOpen = int64(len(e.holdOwner))
		e.statsMu.Unlock()
	}
	for _, r := range batch {
		switch {
		case !r.answered:
			r.answer()
		case r.ackedErr == nil && (r.outErr != nil || !sameHold(r.acked.Hold, r.out.Hold)):
			// Run again after a split, the hold came out otherwise than
			// it was answered (an op before it, on the same account,
			// was the one refused).
			e.lose(r)
		}
	}
}

// creditsOf sums what committed entries granted, consumed and expired.
func creditsOf(entries []*fb.JournalEntry) (granted, consumed, expired int64) {
	for _, e := range entries {
		if e.Op.Kind == fb.OpGrant {
			granted += int64(e.Op.Amount)
		}
		for _, c := range e.Result.Consumed {
			consumed += int64(c.Amount)
		}
		for _, x := range e.Result.Expired {
			expired += int64(x.Amount)
		}
	}
	return granted, consumed, expired
}

// sameHold reports whether two answers of a hold reserve the same.
func sameHold(a, b *fb.HoldView) bool {
	return a != nil && b != nil && a.ID == b.ID && a.Amount == b.Amount
}

// lose tells the caller of an early-answered op that its answer did not
// become durable as given.
func (e *Engine) lose(r *request) {
	e.statsMu.Lock()
	e.stats.Lost++
	e.statsMu.Unlock()
	e.log.Error("a hold answered before its commit was not committed as answered; its request is cancelled", "hold", r.op.HoldID, "customer", r.op.Customer)
	r.lost()
}

func (e *Engine) evict(customer string) {
	if !e.cfg.Cache {
		return // nothing cached; and several loops may be running
	}
	a, ok := e.cache[customer]
	if !ok {
		return
	}
	for id := range a.Holds {
		delete(e.holdOwner, id)
	}
	delete(e.cache, customer)
}

// shrink drops cached accounts (map order is arbitrary enough) until a
// tenth of the room is free again.
func (e *Engine) shrink(keep []string) {
	target := e.cfg.MaxCached * 9 / 10
	for c := range e.cache {
		if len(e.cache) <= target {
			return
		}
		if !slices.Contains(keep, c) {
			e.evict(c)
		}
	}
}

// byHold reports whether ops of kind name their account by a hold id.
func byHold(k fb.OpKind) bool {
	return k == fb.OpCapture || k == fb.OpRelease || k == fb.OpExtend
}

// prepare resolves the customer of every hold op and loads the accounts the
// batch touches. Ops that cannot be placed get their error here.
func (e *Engine) prepare(ctx context.Context, tx fb.WriteTx, batch []*request) (map[string]*fb.Account, []string, error) {
	var lookup []string
	for _, r := range batch {
		op := &r.op
		if !byHold(op.Kind) {
			continue
		}
		if c, ok := e.holdOwner[op.HoldID]; ok && e.cfg.Cache {
			op.Customer = c
			continue
		}
		lookup = append(lookup, op.HoldID)
	}
	var closed map[string]*fb.Hold
	if len(lookup) > 0 {
		var err error
		if closed, err = tx.LookupHolds(ctx, lookup); err != nil {
			return nil, nil, err
		}
		for _, r := range batch {
			op := &r.op
			if !byHold(op.Kind) || op.Customer != "" {
				continue
			}
			h, ok := closed[op.HoldID]
			if !ok {
				r.outErr = fb.Errorf(fb.ENotFound, "no hold %s", op.HoldID)
				continue
			}
			op.Customer = h.Customer
		}
	}
	accts := map[string]*fb.Account{}
	var missing []string
	for _, r := range batch {
		c := r.op.Customer
		if r.outErr != nil || c == "" {
			continue
		}
		if _, ok := accts[c]; ok {
			continue
		}
		if a, ok := e.cache[c]; ok && e.cfg.Cache {
			accts[c] = a
			continue
		}
		accts[c] = nil
		missing = append(missing, c)
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		got, err := tx.LoadAccounts(ctx, missing)
		if err != nil {
			return nil, nil, err
		}
		for _, c := range missing {
			if a, ok := got[c]; ok {
				SortLots(a.Lots)
				accts[c] = a
			} else {
				delete(accts, c)
			}
		}
	}
	for _, r := range batch {
		if r.outErr != nil {
			continue
		}
		a, ok := accts[r.op.Customer]
		if !ok {
			r.outErr = fb.ErrUnknownCustomer.New("no customer %q", r.op.Customer)
			continue
		}
		// A resolved or expired hold answers from its stored resolution.
		if h, ok := closed[r.op.HoldID]; ok && h.Status != fb.HoldPending {
			a.Closed[h.ID] = h
		}
	}
	return accts, missing, nil
}

// lapsed is what an expiry's result moved to breakage of subscription
// lots (an allowance at its period's end, which a renewal replaces). The
// lots it expired are among those it touched (Advance drops them from
// the account).
func lapsed(t *Touched, res fb.Result) fb.Amount {
	var n fb.Amount
	for _, x := range res.Expired {
		if l := t.Lots[x.Lot]; l != nil && l.Source == fb.SourceSubscription {
			n += x.Amount
		}
	}
	return n
}

// apply runs the state machine over the batch, checks invariants and writes
// the result. It returns the holds opened and closed.
func (e *Engine) apply(ctx context.Context, tx fb.WriteTx, batch []*request, accts map[string]*fb.Account, now time.Time, comps *[]CompanionTx) (opened, closed []*fb.Hold, entries []*fb.JournalEntry, err error) {
	// Idempotency: one lookup for every keyed op of the batch.
	var keys []fb.KeyRef
	for _, r := range batch {
		if ref, ok := r.op.KeyRef(); ok && r.outErr == nil {
			keys = append(keys, ref)
		}
	}
	seen := map[fb.KeyRef]*fb.JournalEntry{}
	if len(keys) > 0 {
		if seen, err = tx.LookupKeys(ctx, keys); err != nil {
			return nil, nil, nil, err
		}
	}
	with, begun, err := companions(ctx, tx, batch)
	*comps = begun
	if err != nil {
		return nil, nil, nil, err
	}
	t := NewTouched()
	var usage []*fb.Usage
	advanced := map[string]bool{}
	dirty := map[string]bool{}
	for _, r := range batch {
		if r.outErr != nil {
			continue
		}
		op := &r.op
		a := accts[op.Customer]
		if !advanced[op.Customer] {
			advanced[op.Customer] = true
			before := Unspent(a, now)
			if res, changed := Advance(a, now, t); changed {
				entries = append(entries, &fb.JournalEntry{Op: fb.Op{Kind: fb.OpExpire, Customer: a.Customer, At: now}, Result: res,
					Before: before, After: Unspent(a, now), Lapsed: lapsed(t, res)})
				dirty[op.Customer] = true
			}
		}
		if op.Kind == fb.OpExpire {
			continue
		}
		fp := op.Fingerprint()
		ref, keyed := op.KeyRef()
		if prev, ok := seen[ref]; keyed && ok {
			switch {
			case prev.Fingerprint != fp && op.Event != "":
				r.outErr = fb.Errorf(fb.EIdempotencyConflict, "event %s was already accepted with a different payload", op.Event)
			case prev.Fingerprint != fp:
				r.outErr = fb.Errorf(fb.EIdempotencyConflict, "idempotency key %q was used with a different request", op.Key)
			default:
				r.out, r.outReplay = prev.Result, true
			}
			continue
		}
		ct := with[r.with]
		if ct != nil {
			if err := ct.Before(ctx, op); err != nil {
				var fe *fb.Error
				if !errors.As(err, &fe) {
					return nil, nil, nil, err
				}
				r.outErr = err
				continue
			}
		}
		before := Unspent(a, op.At)
		res, err := Apply(a, op, t)
		if ct != nil {
			if cerr := ct.After(ctx, op, &res, err); cerr != nil {
				return nil, nil, nil, cerr
			}
		}
		if err != nil {
			var fe *fb.Error
			if !errors.As(err, &fe) {
				return nil, nil, nil, err
			}
			r.outErr = err
			continue
		}
		entry := &fb.JournalEntry{Op: *op, Fingerprint: fp, Result: res, Before: before, After: Unspent(a, op.At)}
		res.Balance = Available(a, op.At)
		r.out = res
		entries = append(entries, entry)
		dirty[op.Customer] = true
		if keyed {
			seen[ref] = entry
		}
		if op.Usage != nil {
			op.Usage.RevenueUSD, op.Usage.Uncollected = 0, res.Uncollected
			for _, c := range res.Consumed {
				op.Usage.RevenueUSD += c.USD
			}
			usage = append(usage, op.Usage)
		}
	}
	for _, a := range accts {
		if err := Check(a); err != nil {
			// A bug of the state machine, caught before it is committed:
			// refused like bad data, so the op that broke it fails alone.
			return nil, nil, nil, fmt.Errorf("%w on %s, batch not committed: %w: %w", errInvariant, a.Customer, fb.ErrRejected, err)
		}
	}
	for _, ct := range begun {
		if err := ct.Flush(ctx); err != nil {
			return nil, nil, nil, err
		}
	}
	if len(entries) == 0 {
		return nil, nil, nil, nil
	}
	lots := map[string][]*fb.Lot{}
	holds := map[string][]*fb.Hold{}
	for _, l := range t.Lots {
		lots[l.Customer] = append(lots[l.Customer], l)
	}
	for _, h := range t.Holds {
		holds[h.Customer] = append(holds[h.Customer], h)
		if h.Status == fb.HoldPending {
			opened = append(opened, h)
		} else {
			closed = append(closed, h)
		}
	}
	customers := make([]string, 0, len(dirty))
	for c := range dirty {
		customers = append(customers, c)
	}
	slices.Sort(customers)
	for _, c := range customers {
		if err := tx.SaveAccount(ctx, accts[c], lots[c], holds[c]); err != nil {
			return nil, nil, nil, err
		}
	}
	if err := tx.AppendJournal(ctx, entries); err != nil {
		return nil, nil, nil, err
	}
	if len(usage) > 0 {
		if err := tx.AppendUsage(ctx, usage); err != nil {
			return nil, nil, nil, err
		}
	}
	var breakage []fb.Breakage
	for _, e := range entries {
		for _, x := range e.Result.Expired {
			breakage = append(breakage, fb.Breakage{Customer: e.Op.Customer, At: e.Op.At, Credits: x.Amount, USD: x.USD})
		}
	}
	if len(breakage) > 0 {
		if err := tx.AppendBreakage(ctx, breakage); err != nil {
			return nil, nil, nil, err
		}
	}
	if rev := Unattributed(entries); len(rev) > 0 {
		if err := tx.AppendRevenue(ctx, rev); err != nil {
			return nil, nil, nil, err
		}
	}
	return opened, closed, entries, nil
}
