package compute

import (
	"errors"
	"math/big"
	"strconv"
	"time"

	fb "farebox"
)

// How leases are billed through the ledger. A reserved lease is a
// commitment: its whole window's price is held at booking, in one hold
// that lives until the window ends, and captured whole at its end (early
// or not). On-demand and spot leases pay per second, at least MinBilled in
// all: a hold covers the Period ahead; RenewLead before it runs out the
// next period is held, and once a period is over it is captured. A lease
// whose next hold is refused ends when the credit it holds runs out.
const (
	Period     = time.Hour
	RenewLead  = 5 * time.Minute
	MinBilled  = 60 * time.Second
	HoldMargin = time.Hour // a lease's hold outlives what it pays for by this much
)

// Charge is the price of gpus GPUs at price credits per GPU-hour over
// [from, to) of a lease that started at start, per second, with at least
// MinBilled billed from the start: the billable time up to t is 0 at the
// start and max(t − start, MinBilled) after it. Rounded up once, to the
// micro-credit. A charge beyond what an account can hold is MaxTotal+1,
// which the ledger refuses.
func Charge(gpus int64, price fb.Amount, start, from, to time.Time) fb.Amount {
	secs := billable(start, to) - billable(start, from)
	if secs <= 0 || gpus <= 0 || price <= 0 {
		return 0
	}
	n := new(big.Int).Mul(big.NewInt(gpus*secs), big.NewInt(int64(price)))
	n.Add(n, big.NewInt(3599))
	n.Quo(n, big.NewInt(3600))
	if !n.IsInt64() || n.Int64() > int64(fb.MaxTotal) {
		return fb.MaxTotal + 1
	}
	return fb.Amount(n.Int64())
}

func billable(start, t time.Time) int64 {
	if !t.After(start) {
		return 0
	}
	return max(int64(t.Sub(start)/time.Second), int64(MinBilled/time.Second))
}

// Cost is what gpus GPUs at usd a GPU-hour cost the operator over
// [from, to) of a lease that started at start: the cost up to t is
// floor(gpus × (t − start) × usd ÷ 3600 s), so the parts of a lease's cost
// add up to its whole to the micro-dollar.
func Cost(gpus int64, usd fb.USD, start, from, to time.Time) fb.USD {
	return costTo(gpus, usd, start, to) - costTo(gpus, usd, start, from)
}

func costTo(gpus int64, usd fb.USD, start, t time.Time) fb.USD {
	if !t.After(start) || usd <= 0 {
		return 0
	}
	n := new(big.Int).Mul(big.NewInt(gpus*int64(t.Sub(start)/time.Second)), big.NewInt(int64(usd)))
	return fb.USD(n.Quo(n, big.NewInt(3600)).Int64())
}

// StepKey is the idempotency key of the op that changes version v of a
// lease: whoever makes that change, however often, the ledger applies it
// once. Like every key Farebox makes it starts with a control character,
// which no client key may hold.
func StepKey(lease string, v int64) string {
	return "\x1flease\x1f" + lease + "\x1f" + strconv.FormatInt(v, 10)
}

// BookingKey is the idempotency key of a booking made under a client's key.
func BookingKey(key string) string { return "\x1flease-booking\x1f" + key }

// HoldID is the id of the hold a lease takes at its version v.
func HoldID(lease string, v int64) string { return lease + "." + strconv.FormatInt(v, 10) }

// ProductLease is the usage rows' source and product of lease charges.
const ProductLease = fb.ProductLease

// Step is what is due next in a lease's life at now — the ledger op that
// does it — or nil when nothing is. In order: a scheduled lease starts; a
// period that is over is captured; a lease that is over is settled (its
// last period captured for the seconds it ran, its holds for periods that
// never came released, a reserved lease's window captured whole) and
// closed; a period running out is followed by the next one's hold.
func Step(l *fb.Lease, p *fb.Pool, now time.Time) *fb.Op {
	if l.State.Done() {
		return nil
	}
	over := !l.End.IsZero() && !now.Before(l.End)
	if l.State == fb.LeaseScheduled && !over {
		if now.Before(l.Start) {
			return nil
		}
		return leaseOp(l, fb.OpLease, fb.LeaseStarted)
	}
	if l.Class == fb.ClassReserved {
		if !over {
			return nil
		}
		if len(l.Holds) == 0 {
			return leaseOp(l, fb.OpLease, closing(l))
		}
		h := l.Holds[0]
		return chargeOp(l, p, h, h.Amount, l.Start, later(l.End, l.Start), closing(l))
	}
	if len(l.Holds) > 0 {
		h := l.Holds[0]
		last := len(l.Holds) == 1
		switch {
		case !now.Before(h.To) && (l.End.IsZero() || !h.To.After(l.End)):
			// Its period is over, and the lease ran through it.
			ev := fb.LeaseBilled
			if last && h.To.Equal(l.End) {
				ev = closing(l)
			}
			return chargeOp(l, p, h, Charge(l.GPUs, h.Price, l.Start, l.BilledTo, h.To), l.BilledTo, h.To, ev)
		case over && h.From.Before(l.End):
			// The lease ended within this period: the seconds it ran.
			return chargeOp(l, p, h, Charge(l.GPUs, h.Price, l.Start, l.BilledTo, l.End), l.BilledTo, later(l.End, l.BilledTo), eventIf(last, l))
		case over:
			// A period that never came.
			if h.Expired {
				return leaseOp(l, fb.OpLease, eventIf(last, l))
			}
			op := leaseOp(l, fb.OpRelease, eventIf(last, l))
			op.HoldID = h.ID
			op.Lease.From, op.Lease.To = h.From, h.To
			return op
		}
	} else if over {
		if l.BilledTo.Before(l.End) {
			// Ran without a hold (one that could not be taken in time):
			// charged all the same, what no credit covers uncollected.
			price := p.PricesAt(l.BilledTo).Of(l.Class)
			return chargeOp(l, p, fb.LeaseHold{Expired: true, Price: price}, Charge(l.GPUs, price, l.Start, l.BilledTo, l.End), l.BilledTo, l.End, closing(l))
		}
		return leaseOp(l, fb.OpLease, closing(l))
	}
	if from, due := renewal(l); due && !now.Before(from.Add(-RenewLead)) {
		to := from.Add(Period)
		if !l.End.IsZero() && l.End.Before(to) {
			to = l.End
		}
		price := p.PricesAt(from).Of(l.Class)
		op := leaseOp(l, fb.OpHold, fb.LeaseRenewed)
		op.HoldID = HoldID(l.ID, l.Version)
		op.Amount = max(Charge(l.GPUs, price, l.Start, from, to), 1)
		op.ExpiresAt = later(to, now).Add(HoldMargin)
		op.Lease.From, op.Lease.To = from, to
		return op
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// renewal is where an on-demand or spot lease's next hold would start,
// and whether it needs one.
func renewal(l *fb.Lease) (time.Time, bool) {
	if l.Class == fb.ClassReserved || l.State != fb.LeaseActive {
		return time.Time{}, false
	}
	from := l.BilledTo
	if n := len(l.Holds); n > 0 {
		from = l.Holds[n-1].To
	}
	return from, l.End.IsZero() || l.End.After(from)
}

// closing is the event of the op that closes l.
func closing(l *fb.Lease) string {
	if l.Reason == fb.ReasonPreempted {
		return fb.LeasePreemptEv
	}
	return fb.LeaseEndedEv
}

func eventIf(last bool, l *fb.Lease) string {
	if last {
		return closing(l)
	}
	return fb.LeaseBilled
}

func leaseOp(l *fb.Lease, kind fb.OpKind, event string) *fb.Op {
	return &fb.Op{Kind: kind, Customer: l.Customer, Key: StepKey(l.ID, l.Version),
		Lease: &fb.LeaseNote{ID: l.ID, Pool: l.Pool, Event: event, Class: l.Class, GPUs: l.GPUs, Version: l.Version, Reason: l.Reason}}
}

// chargeOp charges amount for [from, to) of the lease from hold h: a
// capture of it, or a debit when it has expired (or there is none), with
// its usage row: the GPU-time it ran and what that cost the pool.
func chargeOp(l *fb.Lease, p *fb.Pool, h fb.LeaseHold, amount fb.Amount, from, to time.Time, event string) *fb.Op {
	op := leaseOp(l, fb.OpCapture, event)
	if h.Expired {
		op.Kind, op.AllowUncollected = fb.OpDebit, true
		if amount == 0 {
			op.Kind = fb.OpLease
		}
	} else {
		op.HoldID, op.AllowOverCapture = h.ID, true
	}
	op.Amount = amount
	op.Lease.From, op.Lease.To = from, to
	used := max(to.Sub(from)/time.Second, 0)
	if l.Class == fb.ClassReserved {
		used = max(l.End.Sub(l.Start)/time.Second, 0) // the window's time it ran
	}
	if op.Kind != fb.OpLease {
		op.Usage = &fb.Usage{
			ID: l.ID + "/" + strconv.FormatInt(l.Version, 10), Source: ProductLease, Customer: l.Customer,
			Model: l.Pool, Provider: l.Pool, Product: ProductLease,
			Quantities: fb.Quantities{GPUMicros: l.GPUs * int64(used) * fb.Micro, Requests: 1},
			Credits:    amount, CostUSD: Cost(l.GPUs, p.CostUSDPerGPUHour, l.Start, from, from.Add(used*time.Second)),
		}
	}
	return op
}

// NextAt is when something is next due for l (Step), zero when nothing
// ever is.
func NextAt(l *fb.Lease) time.Time {
	if l.State.Done() {
		return time.Time{}
	}
	var next time.Time
	soonest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if l.State == fb.LeaseScheduled {
		soonest(l.Start)
	}
	if !l.End.IsZero() {
		soonest(l.End)
	}
	if l.Class != fb.ClassReserved && len(l.Holds) > 0 {
		soonest(l.Holds[0].To)
	}
	if from, due := renewal(l); due {
		soonest(from.Add(-RenewLead))
	}
	return next
}

// Advance is l after op, made by Step from l and pool p, was applied at
// now with result res.
func Advance(l *fb.Lease, p *fb.Pool, op *fb.Op, res *fb.Result, now time.Time) {
	n := op.Lease
	switch n.Event {
	case fb.LeaseStarted:
		l.State = fb.LeaseActive
	case fb.LeaseRenewed:
		l.Holds = append(l.Holds, fb.LeaseHold{ID: op.HoldID, From: n.From, To: n.To, Amount: res.Hold.Amount, Price: p.PricesAt(n.From).Of(l.Class)})
	}
	if n.Event != fb.LeaseStarted && n.Event != fb.LeaseRenewed {
		if len(l.Holds) > 0 && (op.HoldID == l.Holds[0].ID || l.Holds[0].Expired && op.Kind != fb.OpHold) {
			l.Holds = l.Holds[1:]
		}
		if op.Kind == fb.OpCapture || op.Kind == fb.OpDebit {
			l.Charged += res.Captured
			if op.Usage != nil {
				l.CostUSD += op.Usage.CostUSD
			}
			if n.To.After(l.BilledTo) {
				l.BilledTo = n.To
			}
		}
	}
	switch n.Event {
	case fb.LeaseEndedEv:
		l.State, l.Holds = fb.LeaseEnded, nil
	case fb.LeasePreemptEv:
		l.State, l.Holds = fb.LeasePreempted, nil
	}
	l.Version++
	l.UpdatedAt = now
	l.NextAt = NextAt(l)
}

// Refused is l after op, made by Step from l, was refused with err at now;
// it reports whether that changed l. A refused renewal (no credit for the
// next period) ends the lease when what it holds runs out; a capture of a
// hold that expired meanwhile becomes a debit. Any other refusal is tried
// again.
func Refused(l *fb.Lease, op *fb.Op, err error, now time.Time) bool {
	switch {
	case op.Lease.Event == fb.LeaseRenewed && fb.ErrorType(err) == fb.EInsufficientCredits:
		l.End, l.Reason = op.Lease.From, fb.ReasonInsufficientCredits
	case op.Kind == fb.OpCapture && errors.Is(err, fb.ErrHoldExpired) && len(l.Holds) > 0 && l.Holds[0].ID == op.HoldID:
		l.Holds[0].Expired = true
	default:
		return false
	}
	l.Version++
	l.UpdatedAt = now
	l.NextAt = NextAt(l)
	return true
}
