package farebox

import (
	"slices"
	"time"
)

// LeaseClass is how a lease holds its GPUs.
type LeaseClass string

// Lease classes. Reserved and on-demand leases are firm: admitted only
// where the pool has their GPUs at every instant of their window. Spot
// leases use what is idle and are pre-empted when a firm lease needs it.
const (
	ClassReserved LeaseClass = "reserved"  // a window booked and paid whole
	ClassOnDemand LeaseClass = "on_demand" // paid per second, open-ended or not
	ClassSpot     LeaseClass = "spot"      // paid per second, pre-emptible
)

// Valid reports whether c is a known class.
func (c LeaseClass) Valid() bool {
	return c == ClassReserved || c == ClassOnDemand || c == ClassSpot
}

// Firm reports whether a lease of class c may never be pre-empted.
func (c LeaseClass) Firm() bool { return c == ClassReserved || c == ClassOnDemand }

// LeaseState is where a lease is in its life.
type LeaseState string

// Lease states. A provisioning system starts machines for active leases
// and stops them when a lease ends or is pre-empted.
const (
	LeaseScheduled LeaseState = "scheduled"
	LeaseActive    LeaseState = "active"
	LeaseEnded     LeaseState = "ended"
	LeasePreempted LeaseState = "preempted"
)

// Valid reports whether s is a known state.
func (s LeaseState) Valid() bool {
	return s == LeaseScheduled || s == LeaseActive || s == LeaseEnded || s == LeasePreempted
}

// Done reports whether a lease in state s is over.
func (s LeaseState) Done() bool { return s == LeaseEnded || s == LeasePreempted }

// Why a lease ended before its booked end (Lease.Reason).
const (
	ReasonRequested           = "requested"            // POST /leases/{id}/end
	ReasonInsufficientCredits = "insufficient_credits" // its next hold was refused
	ReasonPreempted           = "preempted"            // a firm lease or the pool needed its GPUs
)

// PoolPrices is one version of a pool's price sheet, in credits per
// GPU-hour, in force from EffectiveFrom until the next version's.
type PoolPrices struct {
	EffectiveFrom time.Time `json:"effective_from"`
	OnDemand      Amount    `json:"on_demand"`
	Reserved      Amount    `json:"reserved"`
	Spot          Amount    `json:"spot"`
}

// Of is the price of class c.
func (p PoolPrices) Of(c LeaseClass) Amount {
	switch c {
	case ClassReserved:
		return p.Reserved
	case ClassSpot:
		return p.Spot
	}
	return p.OnDemand
}

// Pool is a set of GPUs of one type in one region, what they cost the
// operator, the part kept for its own inference, and the prices they are
// leased at.
type Pool struct {
	ID                string `json:"id"`
	GPUType           string `json:"gpu_type"`
	Region            string `json:"region"`
	GPUs              int64  `json:"gpus"`
	CostUSDPerGPUHour USD    `json:"cost_usd_per_gpu_hour"`
	// ReservedForInference GPUs are never leased: own inference needs
	// them. Deployments are the routing deployments they serve.
	ReservedForInference int64    `json:"reserved_for_inference"`
	Deployments          []string `json:"deployments"`
	// SpotNoticeSeconds is how long a spot lease is safe from a reserved
	// or on-demand booking: until then spot leases count as firm. A pool
	// that shrinks pre-empts at once.
	SpotNoticeSeconds int64 `json:"spot_notice_seconds"`
	// Prices are the versions of the price sheet, oldest first.
	Prices    []PoolPrices `json:"prices"`
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`

	// Rev counts the changes to the pool's capacity and leases: every
	// transaction that makes one writes the next Rev, under the pool's
	// lock, so a replica's copy of the capacity is current exactly when
	// its Rev is the stored one. Base is the Rev the pool's change log
	// was last rewritten at (older copies must be read afresh). Seq
	// numbers the pool's leases in the order they were admitted.
	Rev  int64 `json:"rev"`
	Base int64 `json:"base"`
	Seq  int64 `json:"seq"`
}

// PricesAt is the price sheet in force at t (the first version before
// any: a pool always has one).
func (p *Pool) PricesAt(t time.Time) PoolPrices {
	i, _ := slices.BinarySearchFunc(p.Prices, t, func(v PoolPrices, t time.Time) int {
		if v.EffectiveFrom.After(t) {
			return 1
		}
		return -1
	})
	if i == 0 {
		return p.Prices[0]
	}
	return p.Prices[i-1]
}

// Leasable is the GPUs leases may take: the pool less own inference's.
func (p *Pool) Leasable() int64 { return p.GPUs - p.ReservedForInference }

// PoolChange is a change of the GPUs in use from instant At on: Firm by
// reserved and on-demand leases, Spot by spot ones. A pool's capacity
// over time is the sum of its changes.
type PoolChange struct {
	At   time.Time
	Firm int64
	Spot int64
}

// LeaseHold is one of a lease's open holds: the credit for its GPUs over
// [From, To) at Price credits per GPU-hour. Expired marks a hold that
// expired before its capture (the ledger released it): that period is
// debited instead.
type LeaseHold struct {
	ID      string    `json:"id"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Amount  Amount    `json:"amount"`
	Price   Amount    `json:"price"`
	Expired bool      `json:"expired,omitempty"`
}

// Lease is a tenant's use of some of a pool's GPUs over a window. End is
// zero for an open-ended on-demand or spot lease. Times are whole seconds.
type Lease struct {
	ID       string     `json:"id"`
	Customer string     `json:"customer"`
	Pool     string     `json:"pool"`
	GPUs     int64      `json:"gpus"`
	Class    LeaseClass `json:"class"`
	Start    time.Time  `json:"start"`
	End      time.Time  `json:"end,omitzero"`
	State    LeaseState `json:"state"`
	// Reason says why it ended before its booked end ("" when it ran to
	// it); PreemptedAt when its pre-emption was decided and by what (a
	// lease's id, or "pool" for a pool that shrank).
	Reason      string    `json:"reason,omitempty"`
	PreemptedAt time.Time `json:"preempted_at,omitzero"`
	PreemptedBy string    `json:"preempted_by,omitempty"`
	// Seq is its place in its pool's admission order (spot leases are
	// pre-empted newest first).
	Seq int64  `json:"seq,omitempty"`
	Key string `json:"idempotency_key,omitempty"`

	// Billing: the holds that pay for what is to come, what was charged
	// so far and up to when, and the pool's cost of it (USD).
	Holds    []LeaseHold `json:"holds,omitempty"`
	BilledTo time.Time   `json:"billed_to"`
	Charged  Amount      `json:"charged,omitempty"`
	CostUSD  USD         `json:"cost_usd,omitempty"`

	// Version counts the lease's changes; each ledger op of a lease names
	// the version it changes. NextAt is when something is next due (zero:
	// nothing ever again).
	Version   int64     `json:"version"`
	NextAt    time.Time `json:"next_at,omitzero"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Held is what the lease's open holds reserve.
func (l *Lease) Held() Amount {
	var sum Amount
	for _, h := range l.Holds {
		if !h.Expired {
			sum += h.Amount
		}
	}
	return sum
}

// LeaseNote is what a ledger op does for a lease, journaled with it, so a
// follower of the journal knows every lease's life: Event is booked or
// started (the booking's hold), started (the lease's start), renewed (the
// hold of its next period), billed (a period captured, a hold released),
// and, on the op that closes the lease, ended or preempted.
type LeaseNote struct {
	ID    string     `json:"id"`
	Pool  string     `json:"pool"`
	Event string     `json:"event"`
	Class LeaseClass `json:"class,omitempty"`
	GPUs  int64      `json:"gpus,omitempty"`
	// Version is the lease's version the op changes; 0 for its booking,
	// whose Request is the client's request in canonical form (compared
	// when its idempotency key is used again) and Start and End its
	// window.
	Version int64     `json:"version"`
	Request string    `json:"request,omitempty"`
	Start   time.Time `json:"start,omitzero"`
	End     time.Time `json:"end,omitzero"`
	// From and To are the period a hold or charge is for; SetEnd, when
	// set, ends the lease there (ended early); Reason why it ends.
	From   time.Time `json:"from,omitzero"`
	To     time.Time `json:"to,omitzero"`
	SetEnd time.Time `json:"set_end,omitzero"`
	Reason string    `json:"reason,omitempty"`
}

// Lease events (LeaseNote.Event). Webhooks map started, ended and
// preempted to lease.started, lease.ended and lease.preempted.
const (
	LeaseBooked    = "booked"
	LeaseStarted   = "started"
	LeaseRenewed   = "renewed"
	LeaseBilled    = "billed"
	LeaseEndedEv   = "ended"
	LeasePreemptEv = "preempted"
)

// LeaseFilter selects leases. Empty fields select all; After and Limit
// page through them by id.
type LeaseFilter struct {
	Customer string
	Pool     string
	State    LeaseState
	// Overlapping [From, To), when set: leases whose window meets it.
	From, To time.Time
	After    string
	Limit    int
}
