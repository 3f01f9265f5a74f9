package compute

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	fb "farebox"
	"farebox/ledger"
)

// Ledger applies lease ops together with the Service's own work in one
// transaction (the ledger engine).
type Ledger interface {
	SubmitWith(ctx context.Context, op fb.Op, c ledger.Companion) (fb.Result, bool, error)
}

// Serving tells what a routing deployment runs on: its GPUs and their
// throughput at full load (tokens per second); false when it is not an
// own GPU deployment.
type Serving func(deployment string) (gpus, tokensPerSecond int64, ok bool)

// Service books, ends and bills leases and keeps pools.
type Service struct {
	store   fb.Store
	ledger  Ledger
	clock   fb.Clock
	newID   func(prefix string) string
	log     *slog.Logger
	serving Serving

	mu    sync.Mutex
	pools map[string]*entry
	// slots are where bookings waiting for their commit get their lease,
	// by id (so a booking needs no read after it).
	slots sync.Map

	reloads, admitted, refused, preempted, stepErrors atomic.Int64
}

// Stats counts the service's work since it started.
type Stats struct {
	Admitted, Refused, Preempted, Reloads, StepErrors int64
}

// Stats returns the counts so far.
func (s *Service) Stats() Stats {
	return Stats{Admitted: s.admitted.Load(), Refused: s.refused.Load(), Preempted: s.preempted.Load(), Reloads: s.reloads.Load(), StepErrors: s.stepErrors.Load()}
}

// Deps are what a Service works with.
type Deps struct {
	Store   fb.Store
	Ledger  Ledger
	Clock   fb.Clock
	NewID   func(prefix string) string
	Log     *slog.Logger
	Serving Serving // nil: own inference's use is not measured
}

// New returns the service.
func New(d Deps) *Service {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Serving == nil {
		d.Serving = func(string) (int64, int64, bool) { return 0, 0, false }
	}
	return &Service{store: d.Store, ledger: d.Ledger, clock: d.Clock, newID: d.NewID, log: d.Log, serving: d.Serving, pools: map[string]*entry{}}
}

func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Second) }

// Limits of what a lease or a pool may be.
const (
	MaxGPUs       = 1 << 20
	MaxAhead      = 2 * 366 * 24 * time.Hour // how far ahead a lease may start
	MaxWindow     = 3 * 366 * 24 * time.Hour // how long a finite lease may last
	MaxSpotNotice = 24 * 3600
	MaxPrice      = fb.Amount(1e9 * fb.Micro) // credits per GPU-hour
	// PastStart is how far in the past a start is taken as "now" (a
	// client's clock a little behind); earlier is refused.
	PastStart = 5 * time.Minute
)

// ValidatePool checks a new pool's own fields.
func ValidatePool(p *fb.Pool) error {
	switch {
	case !fb.ValidID(p.ID):
		return fb.Invalid("id", "id must be 1 to %d letters, digits, '_', '-' or '.'", fb.MaxIDLength)
	case p.GPUs < 1 || p.GPUs > MaxGPUs:
		return fb.Invalid("gpus", "gpus must be from 1 to %d", MaxGPUs)
	case p.ReservedForInference < 0 || p.ReservedForInference > p.GPUs:
		return fb.Invalid("reserved_for_inference", "reserved_for_inference must be from 0 to the pool's gpus")
	case p.CostUSDPerGPUHour < 0:
		return fb.Invalid("cost_usd_per_gpu_hour", "cost_usd_per_gpu_hour must not be negative")
	case p.SpotNoticeSeconds < 0 || p.SpotNoticeSeconds > MaxSpotNotice:
		return fb.Invalid("spot_notice_seconds", "spot_notice_seconds must be from 0 to %d", MaxSpotNotice)
	case len(p.Prices) == 0:
		return fb.Invalid("prices", "prices (on_demand, reserved, spot in credits per GPU-hour) are required")
	}
	for _, v := range p.Prices {
		if err := validPrices(v); err != nil {
			return err
		}
	}
	return nil
}

func validPrices(v fb.PoolPrices) error {
	for _, f := range []struct {
		name string
		a    fb.Amount
	}{{"on_demand", v.OnDemand}, {"reserved", v.Reserved}, {"spot", v.Spot}} {
		if f.a <= 0 || f.a > MaxPrice {
			return fb.Invalid("prices."+f.name, "prices.%s must be above 0 and at most %s credits per GPU-hour", f.name, MaxPrice)
		}
	}
	return nil
}

// write runs fn in a transaction of its own on pools, locked.
func (s *Service) write(ctx context.Context, pools []string, fn func(t *txn) error) error {
	var t *txn
	err := s.store.Write(ctx, func(tx fb.WriteTx) error {
		var err error
		if t, err = s.begin(ctx, tx, pools); err != nil {
			return err
		}
		if err := fn(t); err != nil {
			return err
		}
		return t.Flush(ctx)
	})
	if t != nil {
		t.End(err == nil)
	}
	return err
}

// CreatePool stores a new pool; one made again the same is answered as
// it is (created false).
func (s *Service) CreatePool(ctx context.Context, p *fb.Pool) (*fb.Pool, bool, error) {
	if err := ValidatePool(p); err != nil {
		return nil, false, err
	}
	now := s.now()
	p.CreatedAt, p.UpdatedAt, p.Rev, p.Base, p.Seq = now, now, 0, 0, 0
	for i := range p.Prices {
		if p.Prices[i].EffectiveFrom.IsZero() {
			p.Prices[i].EffectiveFrom = now
		}
	}
	slices.SortFunc(p.Prices, func(a, b fb.PoolPrices) int { return a.EffectiveFrom.Compare(b.EffectiveFrom) })
	err := s.write(ctx, []string{p.ID}, func(t *txn) error {
		if _, ok := t.pools[p.ID]; ok {
			return fb.ErrPoolExists.New("pool %q already exists", p.ID)
		}
		e := s.entry(p.ID)
		e.mu.Lock()
		t.held = append(t.held, e)
		e.st = &poolState{pool: p, cap: NewCapacity(p.GPUs, p.ReservedForInference, p.SpotNoticeSeconds, NewProfile(nil), nil)}
		t.pools[p.ID] = &lockedPool{e: e, st: e.st, insert: true}
		return nil
	})
	if errors.Is(err, fb.ErrRejected) {
		err = fb.ErrPoolExists.New("pool %q already exists", p.ID) // another replica made it first
	}
	if errors.Is(err, fb.ErrPoolExists) {
		got, gerr := s.store.Pool(ctx, p.ID)
		if gerr == nil && samePool(got, p) {
			return got, false, nil
		}
		return nil, false, err
	}
	if err != nil {
		return nil, false, err
	}
	return p, true, nil
}

// samePool reports whether a pool made again is the one that exists.
func samePool(a, b *fb.Pool) bool {
	if a.GPUType != b.GPUType || a.Region != b.Region || a.GPUs != b.GPUs || a.CostUSDPerGPUHour != b.CostUSDPerGPUHour ||
		a.ReservedForInference != b.ReservedForInference || a.SpotNoticeSeconds != b.SpotNoticeSeconds ||
		!slices.Equal(a.Deployments, b.Deployments) || len(a.Prices) == 0 || len(b.Prices) == 0 {
		return false
	}
	x, y := a.Prices[len(a.Prices)-1], b.Prices[len(b.Prices)-1]
	return x.OnDemand == y.OnDemand && x.Reserved == y.Reserved && x.Spot == y.Spot
}

// PoolUpdate is a change of a pool: the fields set change.
type PoolUpdate struct {
	GPUs                 *int64
	ReservedForInference *int64
	CostUSDPerGPUHour    *fb.USD
	SpotNoticeSeconds    *int64
	Deployments          *[]string
	// Prices is a new version of the price sheet, in force from its
	// EffectiveFrom (now when zero; never in the past), replacing a
	// version from the same instant.
	Prices *fb.PoolPrices
}

// UpdatePool changes a pool. A size or inference reservation that would
// leave a reserved or on-demand lease without its GPUs at some instant is
// refused with no_capacity and that instant; spot leases are pre-empted
// instead, at once.
func (s *Service) UpdatePool(ctx context.Context, id string, u PoolUpdate) (*fb.Pool, error) {
	now := s.now()
	var out *fb.Pool
	err := s.write(ctx, []string{id}, func(t *txn) error {
		lp := t.pools[id]
		if lp == nil {
			return fb.Errorf(fb.ENotFound, "no pool %q", id)
		}
		p := *lp.st.pool
		p.Prices = slices.Clone(p.Prices)
		if u.GPUs != nil {
			p.GPUs = *u.GPUs
		}
		if u.ReservedForInference != nil {
			p.ReservedForInference = *u.ReservedForInference
		}
		if u.CostUSDPerGPUHour != nil {
			p.CostUSDPerGPUHour = *u.CostUSDPerGPUHour
		}
		if u.SpotNoticeSeconds != nil {
			p.SpotNoticeSeconds = *u.SpotNoticeSeconds
		}
		if u.Deployments != nil {
			p.Deployments = *u.Deployments
		}
		if v := u.Prices; v != nil {
			if v.EffectiveFrom.IsZero() {
				v.EffectiveFrom = now
			}
			if v.EffectiveFrom.Before(now) {
				return fb.Invalid("effective_from", "a pool's new prices take effect now or later, not in the past")
			}
			p.Prices = slices.DeleteFunc(p.Prices, func(x fb.PoolPrices) bool { return x.EffectiveFrom.Equal(v.EffectiveFrom) })
			p.Prices = append(p.Prices, *v)
			slices.SortFunc(p.Prices, func(a, b fb.PoolPrices) int { return a.EffectiveFrom.Compare(b.EffectiveFrom) })
		}
		if err := ValidatePool(&p); err != nil {
			return err
		}
		c := lp.st.cap
		if p.GPUs != c.GPUs || p.ReservedForInference != c.Inference {
			cuts, at, ok := c.Resize(p.GPUs, p.ReservedForInference, now.Unix())
			if !ok {
				e := fb.ErrLeaseNoCapacity.New("reserved and on-demand leases need more than %d GPUs at %s", p.Leasable(), fromSecs(at).Format(time.RFC3339))
				e.At = fromSecs(at)
				return e
			}
			if err := t.preempted(ctx, lp, cuts, "pool", now); err != nil {
				return err
			}
		}
		c.Notice = p.SpotNoticeSeconds
		*lp.st.pool = p
		lp.changed = true
		out = lp.st.pool
		return nil
	})
	if err != nil {
		return nil, err
	}
	cp := *out
	return &cp, nil
}

// Booking is a request for a lease. Start zero is now; End zero is open
// (on-demand and spot only).
type Booking struct {
	Customer string
	Pool     string
	GPUs     int64
	Class    fb.LeaseClass
	Start    time.Time
	End      time.Time
	Key      string // the client's idempotency key, "" for none
}

// request is the booking's canonical form, compared when its key is used
// again.
func (b Booking) request() string {
	t := func(x time.Time, none string) string {
		if x.IsZero() {
			return none
		}
		return x.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%s|%d|%s|%s|%s", b.Pool, b.GPUs, b.Class, t(b.Start, "now"), t(b.End, "open"))
}

// Book books a lease and takes its first hold, in one transaction: the
// lease is admitted exactly when its hold is taken. It answers the lease,
// and whether it is one booked earlier under the same key.
func (s *Service) Book(ctx context.Context, b Booking) (*fb.Lease, bool, error) {
	now := s.now()
	if !b.Class.Valid() {
		return nil, false, fb.Invalid("class", "class must be reserved, on_demand or spot")
	}
	if b.GPUs < 1 || b.GPUs > MaxGPUs {
		return nil, false, fb.Invalid("gpus", "gpus must be from 1 to %d", MaxGPUs)
	}
	start, end := b.Start.UTC().Truncate(time.Second), b.End.UTC().Truncate(time.Second)
	switch {
	case b.Start.IsZero() || start.Before(now) && !start.Before(now.Add(-PastStart)):
		start = now
	case start.Before(now):
		return nil, false, fb.Invalid("start", "start is in the past")
	case start.After(now.Add(MaxAhead)):
		return nil, false, fb.Invalid("start", "a lease starts at most %d days ahead", MaxAhead/(24*time.Hour))
	}
	switch {
	case end.IsZero() && b.Class == fb.ClassReserved:
		return nil, false, fb.Invalid("end", "a reserved lease needs an end: its whole window is paid")
	case !end.IsZero() && !end.After(start):
		return nil, false, fb.Invalid("end", "end must be after start")
	case !end.IsZero() && end.Sub(start) > MaxWindow:
		return nil, false, fb.Invalid("end", "a lease lasts at most %d days", MaxWindow/(24*time.Hour))
	}
	id := s.newID("lease_")
	op := fb.Op{Kind: fb.OpHold, Customer: b.Customer, HoldID: HoldID(id, 0), Amount: 1, ExpiresAt: now.Add(Period),
		Lease: &fb.LeaseNote{ID: id, Pool: b.Pool, Event: fb.LeaseBooked, Class: b.Class, GPUs: b.GPUs, Request: b.request(), Start: start, End: end}}
	if b.Key != "" {
		op.Key = BookingKey(b.Key)
	}
	slot := &fb.Lease{}
	s.slots.Store(id, slot)
	defer s.slots.Delete(id)
	_, replay, err := s.ledger.SubmitWith(ctx, op, s)
	if err != nil {
		return nil, false, err
	}
	if replay {
		l, err := s.store.LeaseByKey(ctx, b.Customer, op.Key)
		return l, true, err
	}
	if slot.ID == id {
		return slot, false, nil
	}
	l, err := s.store.Lease(ctx, id)
	return l, false, err
}

// EndLease ends a lease now (a scheduled one at once) and settles it:
// an on-demand or spot lease pays for the seconds it ran, a reserved one
// its whole window. A lease that is over already is answered as it is.
func (s *Service) EndLease(ctx context.Context, id string) (*fb.Lease, error) {
	for range 20 {
		l, err := s.store.Lease(ctx, id)
		if err != nil || l.State.Done() {
			return l, err
		}
		p, err := s.store.Pool(ctx, l.Pool)
		if err != nil {
			return nil, err
		}
		now := s.now()
		w := withEnd(l, now, fb.ReasonRequested)
		op := Step(w, p, now)
		if op == nil {
			return nil, fmt.Errorf("compute: lease %s has nothing due at its end", id)
		}
		op.Lease.SetEnd, op.Lease.Reason = w.End, w.Reason
		s.plan(ctx, op)
		_, _, err = s.ledger.SubmitWith(ctx, *op, s)
		if err == nil {
			return s.Advance(ctx, id)
		}
		if !retry(err) {
			return nil, err
		}
	}
	return nil, fb.ErrLeaseChanged.New("lease %s kept changing; try again", id)
}

// retry reports whether an op about a lease failed because the lease
// moved on meanwhile (another replica or request): made afresh, it may
// apply.
func retry(err error) bool {
	return errors.Is(err, fb.ErrLeaseChanged) || fb.ErrorType(err) == fb.EIdempotencyConflict
}

// plan puts the customer's plan on an op's usage row.
func (s *Service) plan(ctx context.Context, op *fb.Op) {
	if op.Usage == nil {
		return
	}
	if sub, err := s.store.Subscription(ctx, op.Customer); err == nil {
		op.Usage.Plan = sub.Plan
	}
}

// Advance does, one op at a time, everything due in a lease's life up to
// now, and answers the lease as it is then.
func (s *Service) Advance(ctx context.Context, id string) (*fb.Lease, error) {
	var p *fb.Pool
	for range 10_000 {
		l, err := s.store.Lease(ctx, id)
		if err != nil {
			return nil, err
		}
		if p == nil || p.ID != l.Pool {
			if p, err = s.store.Pool(ctx, l.Pool); err != nil {
				return nil, err
			}
		}
		op := Step(l, p, s.now())
		if op == nil {
			return l, nil
		}
		s.plan(ctx, op)
		if _, _, err := s.ledger.SubmitWith(ctx, *op, s); err != nil {
			// A refusal the lease makes something of (no credit for its
			// next period: it ends) has moved it on; any other is tried
			// again later.
			fresh, rerr := s.store.Lease(ctx, id)
			if rerr != nil || fresh.Version == l.Version {
				if retry(err) {
					p = nil // perhaps its prices changed
					continue
				}
				return l, err
			}
		}
	}
	return nil, fmt.Errorf("compute: lease %s does not settle", id)
}

// Tick moves every lease with something due on (starts, holds of next
// periods, captures, ends, the ends of pre-empted leases) and returns how
// many it looked at. Leases are independent: a few at a time.
func (s *Service) Tick(ctx context.Context) (int, error) {
	total := 0
	for round := 0; round < 10; round++ {
		due, err := s.store.DueLeases(ctx, s.now(), 500)
		if err != nil {
			return total, err
		}
		var wg sync.WaitGroup
		errs := make([]error, len(due))
		sem := make(chan struct{}, 16)
		for i, l := range due {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if _, errs[i] = s.Advance(ctx, l.ID); errs[i] != nil {
					s.stepErrors.Add(1)
				}
			}()
		}
		wg.Wait()
		total += len(due)
		if err := errors.Join(errs...); err != nil {
			return total, err
		}
		if len(due) < 500 {
			break
		}
	}
	return total, nil
}

// Run ticks every interval on the service's clock until ctx ends.
func (s *Service) Run(ctx context.Context, every time.Duration) {
	for {
		if _, err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("lease billing: some leases could not move on; tried again next tick", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.clock.After(every):
		}
	}
}
