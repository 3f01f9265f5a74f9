package compute

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	fb "farebox"
	"farebox/ledger"
)

// The Service is the ledger's companion for every lease op: in the
// transaction that applies a booking's hold it admits the lease (or
// refuses the op with no_capacity), and in the one that applies a step of
// a lease (its start, a period's hold or capture, its end) it moves the
// lease on. Pools are locked for the transaction; each process keeps
// each pool's capacity in memory, valid while the pool's stored Rev is
// the one it was read at, and catches up from the change log when another
// replica wrote since.

// entry is a pool's capacity as this process knows it. mu is held from
// the moment a transaction has locked the pool in the store until it
// ends, so the transactions of one process take turns on it; the store's
// lock is always taken first.
type entry struct {
	mu sync.Mutex
	st *poolState // nil: to be read afresh
}

type poolState struct {
	pool *fb.Pool
	cap  *Capacity
}

func (s *Service) entry(id string) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.pools[id]
	if e == nil {
		e = &entry{}
		s.pools[id] = e
	}
	return e
}

// txn is the Service's part of one transaction.
type txn struct {
	s     *Service
	tx    fb.WriteTx
	pools map[string]*lockedPool
	held  []*entry
	// leases read or changed by the transaction, and those to write.
	leases   map[string]*fb.Lease
	dirty    map[string]bool
	bookings map[*fb.Op]*booking
	steps    map[*fb.Op]*fb.Lease
	booked   []*fb.Lease // admitted by this transaction
	// refused bookings and pre-empted leases, counted once it commits
	refused, cuts int
}

type lockedPool struct {
	e       *entry
	st      *poolState
	changed bool // its own fields changed (not only its capacity)
	insert  bool // made by this transaction
}

type booking struct {
	lease *fb.Lease
	ad    Admission
}

var _ ledger.Companion = (*Service)(nil)

// Begin is the Service's part of a ledger batch: it locks the pools its
// ops name and reads the leases they change.
func (s *Service) Begin(ctx context.Context, tx fb.WriteTx, ops []*fb.Op) (ledger.CompanionTx, error) {
	var pools, leases []string
	for _, op := range ops {
		if op.Lease == nil {
			continue
		}
		pools = append(pools, op.Lease.Pool)
		if op.Lease.Version > 0 {
			leases = append(leases, op.Lease.ID)
		}
	}
	t, err := s.begin(ctx, tx, pools)
	if err != nil {
		return nil, err
	}
	if len(leases) > 0 {
		got, err := tx.LeasesByID(ctx, leases)
		if err != nil {
			t.End(false)
			return nil, err
		}
		for id, l := range got {
			t.leases[id] = l
		}
	}
	return t, nil
}

// begin locks pools in the store, then in this process, and brings each
// one's capacity up to date.
func (s *Service) begin(ctx context.Context, tx fb.WriteTx, pools []string) (*txn, error) {
	slices.Sort(pools)
	pools = slices.Compact(pools)
	t := &txn{s: s, tx: tx, pools: map[string]*lockedPool{}, leases: map[string]*fb.Lease{}, dirty: map[string]bool{},
		bookings: map[*fb.Op]*booking{}, steps: map[*fb.Op]*fb.Lease{}}
	stored, err := tx.LockPools(ctx, pools)
	if err != nil {
		return nil, err
	}
	for _, id := range pools {
		p, ok := stored[id]
		if !ok {
			continue
		}
		e := s.entry(id)
		e.mu.Lock()
		t.held = append(t.held, e)
		st, err := s.load(ctx, tx, e, p)
		if err != nil {
			t.End(false)
			return nil, err
		}
		t.pools[id] = &lockedPool{e: e, st: st}
	}
	return t, nil
}

// load brings e up to p, the pool as stored and locked: kept when
// current, caught up from the change log when another replica wrote
// since, else read whole.
func (s *Service) load(ctx context.Context, tx fb.WriteTx, e *entry, p *fb.Pool) (_ *poolState, err error) {
	defer func() {
		if err != nil {
			e.st = nil // perhaps half caught up
		}
	}()
	st := e.st
	switch {
	case st != nil && st.pool.Rev == p.Rev:
	case st != nil && st.pool.Rev >= p.Base && st.pool.Rev < p.Rev:
		changes, err := tx.PoolChanges(ctx, p.ID, st.pool.Rev)
		if err != nil {
			return nil, err
		}
		for _, c := range changes {
			st.cap.Profile.Add(c.At.Unix(), Forever, c.Firm, c.Spot)
		}
		if st.cap.Spot, err = liveSpot(ctx, tx, p.ID); err != nil {
			return nil, err
		}
		s.reloads.Add(1)
	default:
		changes, err := tx.PoolChanges(ctx, p.ID, 0)
		if err != nil {
			return nil, err
		}
		spot, err := liveSpot(ctx, tx, p.ID)
		if err != nil {
			return nil, err
		}
		st = &poolState{cap: NewCapacity(0, 0, 0, NewProfile(profileChanges(changes)), spot)}
		s.reloads.Add(1)
	}
	st.pool = p
	st.cap.GPUs, st.cap.Inference, st.cap.Notice = p.GPUs, p.ReservedForInference, p.SpotNoticeSeconds
	e.st = st
	return st, nil
}

func profileChanges(cs []fb.PoolChange) []Change {
	out := make([]Change, len(cs))
	for i, c := range cs {
		out[i] = Change{At: c.At.Unix(), Firm: c.Firm, Spot: c.Spot}
	}
	return out
}

func liveSpot(ctx context.Context, tx fb.WriteTx, pool string) ([]*Span, error) {
	ls, err := tx.LiveLeases(ctx, pool, fb.ClassSpot)
	if err != nil {
		return nil, err
	}
	out := make([]*Span, 0, len(ls))
	for _, l := range ls {
		sp := spanOf(l)
		out = append(out, &sp)
	}
	return out, nil
}

func spanOf(l *fb.Lease) Span {
	return Span{ID: l.ID, Seq: l.Seq, GPUs: l.GPUs, Start: l.Start.Unix(), End: endSecs(l.End)}
}

func endSecs(t time.Time) int64 {
	if t.IsZero() {
		return Forever
	}
	return t.Unix()
}

func fromSecs(s int64) time.Time { return time.Unix(s, 0).UTC() }

// lease is the lease as the transaction has it.
func (t *txn) lease(ctx context.Context, id string) (*fb.Lease, error) {
	if l, ok := t.leases[id]; ok {
		return l, nil
	}
	got, err := t.tx.LeasesByID(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	l := got[id]
	t.leases[id] = l
	return l, nil
}

func (t *txn) put(l *fb.Lease) {
	t.leases[l.ID] = l
	t.dirty[l.ID] = true
}

// Before admits a booking or checks a step against the lease as it is.
func (t *txn) Before(ctx context.Context, op *fb.Op) error {
	if op.Lease.Version == 0 {
		return t.book(op)
	}
	return t.step(ctx, op)
}

func (t *txn) book(op *fb.Op) error {
	n := *op.Lease
	lp := t.pools[n.Pool]
	if lp == nil {
		return fb.Errorf(fb.ENotFound, "no pool %q", n.Pool)
	}
	p, now := lp.st.pool, op.At.UTC().Truncate(time.Second)
	if n.GPUs > lp.st.cap.Leasable() {
		return fb.Invalid("gpus", "pool %s leases at most %d GPUs (%d, less %d for inference)", p.ID, lp.st.cap.Leasable(), p.GPUs, p.ReservedForInference)
	}
	span := Span{ID: n.ID, Seq: p.Seq + 1, GPUs: n.GPUs, Start: n.Start.Unix(), End: endSecs(n.End)}
	ad, at, ok := lp.st.cap.Admit(span, n.Class.Firm(), now.Unix())
	if !ok {
		t.refused++
		e := fb.ErrLeaseNoCapacity.New("pool %s lacks %d free GPUs from %s", p.ID, n.GPUs, fromSecs(at).Format(time.RFC3339))
		e.At = fromSecs(at)
		return e
	}
	state, event := fb.LeaseScheduled, fb.LeaseBooked
	if !n.Start.After(now) {
		state, event = fb.LeaseActive, fb.LeaseStarted
	}
	// The first hold: a reserved window whole, at the price of the day it
	// is booked; an hour of any other, at the price in force then.
	hold := fb.LeaseHold{ID: op.HoldID, From: n.Start, To: n.End}
	if n.Class == fb.ClassReserved {
		hold.Price = p.PricesAt(now).Reserved
	} else {
		hold.Price = p.PricesAt(n.Start).Of(n.Class)
		if to := n.Start.Add(Period); n.End.IsZero() || to.Before(n.End) {
			hold.To = to
		}
	}
	hold.Amount = max(Charge(n.GPUs, hold.Price, n.Start, n.Start, hold.To), 1)
	op.Amount, op.ExpiresAt, op.TTL = hold.Amount, later(hold.To, now).Add(HoldMargin), 0
	n.Event = event
	op.Lease = &n
	key, _ := strings.CutPrefix(op.Key, BookingKey(""))
	t.bookings[op] = &booking{ad: ad, lease: &fb.Lease{
		ID: n.ID, Customer: op.Customer, Pool: n.Pool, GPUs: n.GPUs, Class: n.Class, Start: n.Start, End: n.End,
		State: state, Seq: span.Seq, Key: key, Holds: []fb.LeaseHold{hold}, BilledTo: n.Start,
		Version: 1, CreatedAt: now, UpdatedAt: now,
	}}
	return nil
}

// step checks that op is what is due for the lease as it is now, and
// makes its amounts the ones of this version, under the pool's lock.
func (t *txn) step(ctx context.Context, op *fb.Op) error {
	n := op.Lease
	l, err := t.lease(ctx, n.ID)
	if err != nil {
		return err
	}
	if l == nil {
		return fb.Errorf(fb.ENotFound, "no lease %s", n.ID)
	}
	lp := t.pools[l.Pool]
	if l.Version != n.Version || lp == nil {
		return fb.ErrLeaseChanged.New("lease %s is at version %d, not %d", l.ID, l.Version, n.Version)
	}
	work := withEnd(l, n.SetEnd, n.Reason)
	want := Step(work, lp.st.pool, op.At)
	if want == nil || want.Kind != op.Kind || want.HoldID != op.HoldID || want.Lease.Event != n.Event {
		return fb.ErrLeaseChanged.New("lease %s changed meanwhile", l.ID)
	}
	op.Amount, op.ExpiresAt, op.TTL = want.Amount, want.ExpiresAt, 0
	op.AllowOverCapture, op.AllowUncollected, op.Full = want.AllowOverCapture, want.AllowUncollected, false
	note := *want.Lease
	note.SetEnd, note.Reason = n.SetEnd, work.Reason
	op.Lease = &note
	if want.Usage != nil {
		plan := ""
		if op.Usage != nil {
			plan = op.Usage.Plan
		}
		want.Usage.Plan, want.Usage.At = plan, op.At
	}
	op.Usage = want.Usage
	t.steps[op] = work
	return nil
}

// withEnd is a copy of l that ends at end (ended early, for reason), or
// l's copy as it is when end is zero or no earlier than its end.
func withEnd(l *fb.Lease, end time.Time, reason string) *fb.Lease {
	w := *l
	w.Holds = slices.Clone(l.Holds)
	if !end.IsZero() && (w.End.IsZero() || end.Before(w.End)) {
		w.End, w.Reason = end, reason
	}
	return &w
}

// After keeps what a booking admitted, or takes it back, and moves a
// lease on after its step (or after a refusal that changes it).
func (t *txn) After(ctx context.Context, op *fb.Op, res *fb.Result, err error) error {
	if b, ok := t.bookings[op]; ok {
		delete(t.bookings, op)
		lp := t.pools[b.lease.Pool]
		if err != nil {
			lp.st.cap.Undo(b.ad)
			return nil
		}
		lp.st.pool.Seq = max(lp.st.pool.Seq, b.lease.Seq)
		lp.changed = true
		b.lease.Holds[0].Amount = res.Hold.Amount
		b.lease.NextAt = NextAt(b.lease)
		t.put(b.lease)
		t.booked = append(t.booked, b.lease)
		return t.preempted(ctx, lp, b.ad.Cuts, b.lease.ID, op.At)
	}
	work, ok := t.steps[op]
	if !ok {
		return nil
	}
	delete(t.steps, op)
	old := t.leases[work.ID]
	lp := t.pools[work.Pool]
	now := op.At.UTC()
	if err == nil {
		Advance(work, lp.st.pool, op, res, now)
		t.shortened(lp, old, work)
		if work.State.Done() && work.Class == fb.ClassSpot {
			lp.st.cap.Drop(work.ID)
		}
		t.put(work)
		return nil
	}
	w := withEnd(old, time.Time{}, "")
	if Refused(w, op, err, now) {
		t.shortened(lp, old, w)
		t.put(w)
	}
	return nil
}

// shortened gives back the GPUs of a lease that now ends earlier.
func (t *txn) shortened(lp *lockedPool, old, l *fb.Lease) {
	if was, end := endSecs(old.End), endSecs(l.End); end < was {
		lp.st.cap.Shorten(l.ID, l.Class.Firm(), l.GPUs, l.Start.Unix(), was, end)
	}
}

// preempted records the spot leases cut for by (a lease, or "pool"):
// each now ends where its GPUs are needed, its reason recorded.
func (t *txn) preempted(ctx context.Context, lp *lockedPool, cuts []Cut, by string, at time.Time) error {
	t.cuts += len(cuts)
	for _, c := range cuts {
		l, err := t.lease(ctx, c.ID)
		if err != nil {
			return err
		}
		if l == nil {
			return fmt.Errorf("compute: pre-empted spot lease %s is not stored", c.ID)
		}
		w := withEnd(l, fromSecs(c.End), fb.ReasonPreempted)
		w.PreemptedAt, w.PreemptedBy = at.UTC(), by
		w.Version++
		w.UpdatedAt = at.UTC()
		w.NextAt = NextAt(w)
		t.put(w)
	}
	return nil
}

// Flush writes the pools the transaction changed, each at its next Rev
// with its capacity's changes, and the leases it changed.
func (t *txn) Flush(ctx context.Context) error {
	ids := make([]string, 0, len(t.pools))
	for id := range t.pools {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		lp := t.pools[id]
		changes := lp.st.cap.Changes()
		if len(changes) == 0 && !lp.changed && !lp.insert {
			continue
		}
		p := lp.st.pool
		p.Rev++
		if lp.changed || lp.insert {
			p.UpdatedAt = t.s.clock.Now().UTC()
		}
		stored := make([]fb.PoolChange, len(changes))
		for i, c := range changes {
			stored[i] = fb.PoolChange{At: fromSecs(c.At), Firm: c.Firm, Spot: c.Spot}
		}
		if err := t.tx.SavePool(ctx, p, lp.insert); err != nil {
			return err
		}
		if err := t.tx.AppendPoolChanges(ctx, id, p.Rev, stored); err != nil {
			return err
		}
	}
	if len(t.dirty) == 0 {
		return nil
	}
	ls := make([]*fb.Lease, 0, len(t.dirty))
	for id := range t.dirty {
		ls = append(ls, t.leases[id])
	}
	slices.SortFunc(ls, func(a, b *fb.Lease) int { return strings.Compare(a.ID, b.ID) })
	return t.tx.SaveLeases(ctx, ls)
}

// End keeps the pools' capacity when the transaction committed and
// forgets it otherwise (it is read again from the store), and lets the
// next transaction of this process have the pools.
func (t *txn) End(committed bool) {
	if !committed {
		for _, lp := range t.pools {
			lp.e.st = nil
		}
	}
	if committed {
		t.s.admitted.Add(int64(len(t.booked)))
		t.s.refused.Add(int64(t.refused))
		t.s.preempted.Add(int64(t.cuts))
	}
	for _, l := range t.booked {
		if committed {
			if slot, ok := t.s.slots.Load(l.ID); ok {
				cp := *t.leases[l.ID]
				*slot.(*fb.Lease) = cp
			}
		}
	}
	for _, e := range t.held {
		e.mu.Unlock()
	}
	t.held = nil
}
