package farebox

import (
	"strconv"
	"strings"
	"time"
)

// Source says where a lot's credits came from.
type Source string

// Lot sources.
const (
	SourceSubscription Source = "subscription"
	SourcePurchase     Source = "purchase"
	SourcePromo        Source = "promo"
	SourceRefund       Source = "refund"
	SourceAdjustment   Source = "adjustment"
)

// Valid reports whether s is a known source.
func (s Source) Valid() bool {
	switch s {
	case SourceSubscription, SourcePurchase, SourcePromo, SourceRefund, SourceAdjustment:
		return true
	}
	return false
}

// DefaultPriority is the consumption priority of a lot of this source when
// the grant names none: promotions first, then subscription allowances, then
// purchased credit. Lower is consumed first.
func (s Source) DefaultPriority() int {
	switch s {
	case SourcePromo:
		return 0
	case SourceSubscription:
		return 10
	}
	return 20
}

// MaxTotal bounds an account's granted total and overdraft limit so that
// every sum the ledger forms (available, charged) stays inside int64.
const MaxTotal Amount = 1 << 61

// Customer is someone who holds credits: a customer, or an advertiser who
// pays for sponsored suggestions (Kind; "" is a customer).
// SponsoredOptOut keeps sponsored suggestions off the customer's answers.
type Customer struct {
	ID              string       `json:"id"`
	Name            string       `json:"name"`
	Kind            CustomerKind `json:"kind"`
	SponsoredOptOut bool         `json:"sponsored_opt_out"`
	CreatedAt       time.Time    `json:"created_at"`
}

// Lot is one grant of credits. amount = remaining + consumed + expired, and
// held ≤ remaining is the part reserved by open holds.
type Lot struct {
	ID          string    `json:"id"`
	Customer    string    `json:"customer"`
	Source      Source    `json:"source"`
	Priority    int       `json:"priority"`
	Amount      Amount    `json:"amount"`
	Remaining   Amount    `json:"remaining"`
	Held        Amount    `json:"held"`
	Consumed    Amount    `json:"consumed"`
	Expired     Amount    `json:"expired"`
	EffectiveAt time.Time `json:"effective_at"`
	ExpiresAt   time.Time `json:"expires_at"` // zero: never
	PaidUSD     USD       `json:"paid_usd"`
	CreatedAt   time.Time `json:"created_at"`
	// Rollover: when ExpiresAt comes, up to RolloverMax of what remains
	// stays, expiring at RolloverUntil instead; the rest expires. Zero
	// RolloverUntil: no rollover.
	RolloverMax   Amount    `json:"rollover_max,omitempty"`
	RolloverUntil time.Time `json:"rollover_until,omitzero"`
	// ClawedBack is credit taken back from the lot by a clawback (its
	// payment was refunded): it left the account unspent, so amount =
	// remaining + consumed + expired + clawed_back. Refunded is the share
	// of the lot its refunds asked back, the most a clawback ever takes
	// (see OpClawback): what was spent when a refund came stays spent.
	ClawedBack Amount `json:"clawed_back,omitempty"`
	Refunded   Amount `json:"refunded,omitempty"`
}

// Live reports whether the lot can still matter to a hold or an expiry.
func (l *Lot) Live() bool { return l.Remaining > 0 || l.Held > 0 }

// Usable reports whether the lot's free credit may be reserved at now.
func (l *Lot) Usable(now time.Time) bool {
	return !l.EffectiveAt.After(now) && !l.ExpiredAt(now)
}

// ExpiredAt reports whether the lot has expired at now.
func (l *Lot) ExpiredAt(now time.Time) bool {
	return !l.ExpiresAt.IsZero() && !now.Before(l.ExpiresAt)
}

// HoldStatus is the state of a two-phase hold.
type HoldStatus string

// Hold states. Only pending holds reserve credit.
const (
	HoldPending  HoldStatus = "pending"
	HoldCaptured HoldStatus = "captured"
	HoldReleased HoldStatus = "released"
	HoldExpired  HoldStatus = "expired"
)

// Allocation is the part of a hold reserved on one lot.
type Allocation struct {
	Lot    string `json:"lot"`
	Amount Amount `json:"amount"`
}

// Hold reserves credit until it is captured, released or expires.
type Hold struct {
	ID          string       `json:"id"`
	Customer    string       `json:"customer"`
	Amount      Amount       `json:"amount"`    // reserved
	Requested   Amount       `json:"requested"` // asked for (more than Amount with allow_partial)
	Allocations []Allocation `json:"allocations"`
	Overdraft   Amount       `json:"overdraft"` // reserved on the overdraft allowance
	CreatedAt   time.Time    `json:"created_at"`
	ExpiresAt   time.Time    `json:"expires_at"`
	Status      HoldStatus   `json:"status"`
	ResolvedAt  time.Time    `json:"resolved_at"`
	// Resolution is the fingerprint of the op that resolved the hold and
	// Result its answer, so the same resolution repeated gets the same answer.
	// Budget names the budget the hold counts against, in the budget's
	// epoch BudgetEpoch (see BudgetState); "" for none.
	Budget      string  `json:"budget,omitempty"`
	BudgetEpoch int64   `json:"budget_epoch,omitempty"`
	Resolution  string  `json:"resolution,omitempty"`
	Result      *Result `json:"result,omitempty"`
}

// Account is one customer's ledger state: running totals, its live lots in
// consumption order and its pending holds. Closed holds resolved or loaded
// during the current batch sit in Closed; they are not part of the state.
type Account struct {
	Customer          string
	OverdraftLimit    Amount
	Debt              Amount
	OverdraftReserved Amount
	Uncollected       Amount
	Granted           Amount
	Charged           Amount
	Expired           Amount
	// ClawedBack is credit clawbacks took back from lots.
	ClawedBack Amount
	Lots       []*Lot
	Holds      map[string]*Hold
	Closed     map[string]*Hold
	// Budgets are what ops naming a budget took in its current window.
	Budgets map[string]*BudgetState
}

// BudgetPeriod is how long a budget's window lasts: a UTC calendar day or
// month, or for ever.
type BudgetPeriod string

// Budget periods.
const (
	BudgetDay   BudgetPeriod = "day"
	BudgetMonth BudgetPeriod = "month"
	BudgetTotal BudgetPeriod = "total"
)

// Valid reports whether p is a known period.
func (p BudgetPeriod) Valid() bool { return p == BudgetDay || p == BudgetMonth || p == BudgetTotal }

// Window is the start of the period that holds at: midnight UTC of its
// day, the first of its month, or the zero time for a total budget.
func (p BudgetPeriod) Window(at time.Time) time.Time {
	at = at.UTC()
	switch p {
	case BudgetDay:
		return time.Date(at.Year(), at.Month(), at.Day(), 0, 0, 0, 0, time.UTC)
	case BudgetMonth:
		return time.Date(at.Year(), at.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Time{}
}

// Next is the end of the window that starts at w (zero for a total one).
func (p BudgetPeriod) Next(w time.Time) time.Time {
	switch p {
	case BudgetDay:
		return w.AddDate(0, 0, 1)
	case BudgetMonth:
		return w.AddDate(0, 1, 0)
	}
	return time.Time{}
}

// BudgetRef is a cap that a hold or debit counts against, within the same
// account: a key's budget, a campaign's daily budget. The caller gives the
// limit with each op (it is the key's or the campaign's); the ledger keeps
// what was spent, so that concurrent ops can never pass the limit
// together: the check and the spending are one op.
type BudgetRef struct {
	ID     string       `json:"id"`
	Limit  Amount       `json:"limit"`
	Period BudgetPeriod `json:"period"`
}

// BudgetState is a budget's spending in its current window: what pending
// holds reserve on it and what captures and debits took. Each new window
// is a new epoch (counted from 1): a hold gives back what it reserved only
// to the epoch it reserved it in, however the window moved since.
type BudgetState struct {
	ID     string
	Window time.Time
	Epoch  int64
	Spent  Amount
}

// NewAccount returns an empty account.
func NewAccount(customer string) *Account {
	return &Account{Customer: customer, Holds: map[string]*Hold{}, Closed: map[string]*Hold{}, Budgets: map[string]*BudgetState{}}
}

// OpKind names a ledger operation.
type OpKind string

// Ledger operations. Expire is issued by the engine itself whenever time has
// moved an account's holds or lots past their expiry.
const (
	OpGrant   OpKind = "grant"
	OpHold    OpKind = "hold"
	OpCapture OpKind = "capture"
	OpRelease OpKind = "release"
	OpDebit   OpKind = "debit"
	OpExpire  OpKind = "expire"
	// OpLimit sets the account's overdraft limit (a plan's), never below
	// what is already drawn on it.
	OpLimit OpKind = "limit"
	// OpExtend moves a pending hold's expiry later, to ExpiresAt (never
	// earlier): the gateway keeps a running stream's hold alive with it,
	// and a lease its hold until the lease ends.
	OpExtend OpKind = "extend"
	// OpLease records a change of a lease (its start, its end) that moves
	// no credit: it has no effect on the account, only its journal entry.
	OpLease OpKind = "lease"
	// OpClawback takes back, from lot LotID, the unspent part of what its
	// refunds ask: Amount is the share of the lot refunded in all so far
	// (a charge's refunds add up: the n-th refund names the total of the
	// n), of which the part not asked before is taken from the lot's free
	// credit. What was consumed, or is held by requests in flight, stays
	// with the customer and is reported as not recovered.
	OpClawback OpKind = "clawback"
)

// Op is one ledger operation, as journaled. IDs of what it creates are
// chosen before it is applied so that replaying the journal is deterministic.
type Op struct {
	Kind     OpKind    `json:"kind"`
	Customer string    `json:"customer"`
	Key      string    `json:"key,omitempty"`
	At       time.Time `json:"at"`

	Amount Amount `json:"amount,omitempty"`
	// Grant.
	LotID       string    `json:"lot_id,omitempty"`
	Source      Source    `json:"source,omitempty"`
	Priority    int       `json:"priority,omitempty"`
	EffectiveAt time.Time `json:"effective_at,omitzero"` // zero: At
	ExpiresAt   time.Time `json:"expires_at,omitzero"`   // zero: never; of an extend, the hold's new expiry
	PaidUSD     USD       `json:"paid_usd,omitempty"`
	// Rollover of the lot at ExpiresAt (see Lot).
	RolloverMax   Amount    `json:"rollover_max,omitempty"`
	RolloverUntil time.Time `json:"rollover_until,omitzero"`
	// Hold, capture, release. A hold lives TTL (at most a day), or until
	// ExpiresAt when that is set (a lease's hold, for as long as the
	// lease).
	HoldID       string        `json:"hold_id,omitempty"`
	TTL          time.Duration `json:"ttl,omitempty"`
	AllowPartial bool          `json:"allow_partial,omitempty"`
	Full         bool          `json:"full,omitempty"` // capture everything held
	// AllowOverCapture lets a capture take more than its hold: the excess
	// from available credit, the rest recorded as uncollected. Without
	// it a capture above the hold is refused.
	AllowOverCapture bool `json:"allow_over_capture,omitempty"`
	// Debit: take what is available and record the rest as uncollected
	// instead of refusing.
	AllowUncollected bool `json:"allow_uncollected,omitempty"`

	// Event, when set, is the op's idempotency key in the global scope of
	// metered events (source and id), instead of Key in the customer's.
	// Digest is the canonical digest of the event's payload, compared when
	// the event is sent again. Usage is stored with the op.
	Event  string `json:"event,omitempty"`
	Digest string `json:"digest,omitempty"`
	Usage  *Usage `json:"usage,omitempty"`
	// Budget, of a hold or a debit, is a cap the op must stay within.
	Budget *BudgetRef `json:"budget,omitempty"`
	// Lease, when set, says what the op does for a lease (see LeaseNote).
	Lease *LeaseNote `json:"lease,omitempty"`
}

// KeyRef returns the scope and key under which the op's result is kept,
// and false for an op without one.
func (op *Op) KeyRef() (KeyRef, bool) {
	switch {
	case op.Event != "":
		return KeyRef{Key: op.Event}, true
	case op.Key != "":
		return KeyRef{Customer: op.Customer, Key: op.Key}, true
	}
	return KeyRef{}, false
}

// Fingerprint is the canonical form of what the client asked for, compared
// when an idempotency key is reused. Parsed values are used, so "1.5" and
// "1.50" agree; values the engine fills in (IDs, At) are left out.
func (op *Op) Fingerprint() string {
	if op.Lease != nil {
		return op.leaseFingerprint()
	}
	var b strings.Builder
	b.WriteString(string(op.Kind))
	w := func(s string) { b.WriteByte('|'); b.WriteString(s) }
	switch op.Kind {
	case OpGrant:
		w(op.Amount.String())
		w(string(op.Source))
		w(strconv.Itoa(op.Priority))
		w(timeKey(op.EffectiveAt))
		w(timeKey(op.ExpiresAt))
		w(op.PaidUSD.String())
		if !op.RolloverUntil.IsZero() {
			w(op.RolloverMax.String())
			w(timeKey(op.RolloverUntil))
		}
	case OpHold:
		w(op.Amount.String())
		w(op.TTL.String())
		w(strconv.FormatBool(op.AllowPartial))
		if !op.ExpiresAt.IsZero() {
			w("until " + timeKey(op.ExpiresAt))
		}
	case OpCapture:
		w(op.HoldID)
		if op.Full {
			w("all")
		} else {
			w(op.Amount.String())
		}
		if op.AllowOverCapture {
			// Only when set: captures journaled before the flag existed
			// keep their fingerprints.
			w("over")
		}
	case OpRelease:
		w(op.HoldID)
	case OpExtend:
		w(op.HoldID)
		w(timeKey(op.ExpiresAt))
	case OpDebit:
		if op.Event != "" {
			// An event is the same event when its payload is: the price
			// follows from it.
			w(op.Customer)
			w(op.Digest)
			break
		}
		w(op.Amount.String())
		w(strconv.FormatBool(op.AllowUncollected))
	case OpLimit:
		w(op.Amount.String())
	case OpClawback:
		w(op.LotID)
		w(op.Amount.String())
	}
	if op.Kind == OpHold || op.Kind == OpDebit {
		b.WriteString(budgetKey(op.Budget))
	}
	return b.String()
}

// leaseFingerprint is the fingerprint of a lease's op. A booking is the
// same booking when the client's request is (its price follows from the
// pool's sheet, its start from when it was first made); any other lease
// op is the change of one version of the lease, whose amounts follow from
// that version, so it is named by it.
func (op *Op) leaseFingerprint() string {
	l := op.Lease
	if l.Version == 0 {
		return "lease|book|" + l.Request
	}
	return "lease|" + string(op.Kind) + "|" + l.ID + "|" + strconv.FormatInt(l.Version, 10) + "|" + l.Event + "|" + op.HoldID
}

// budgetKey is a budget's part of a fingerprint; "" for none, so that ops
// journaled before budgets keep theirs.
func budgetKey(b *BudgetRef) string {
	if b == nil {
		return ""
	}
	return "|budget " + b.ID + " " + b.Limit.String() + " " + string(b.Period)
}

func timeKey(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixNano(), 10)
}

// Consumption is credit taken from one lot, or from the overdraft when Lot
// is empty.
type Consumption struct {
	Lot    string `json:"lot,omitempty"`
	Amount Amount `json:"amount"`
	// USD is the revenue (consumed) or breakage (expired) it recognises
	// at the lot's cost basis; see ledger.Recognize.
	USD USD `json:"usd,omitempty"`
}

// Result is what an op answered. Kept forever with the op in the journal so a
// retried op gets the same answer.
type Result struct {
	Lot         *Lot          `json:"lot,omitempty"`
	Hold        *HoldView     `json:"hold,omitempty"`
	Captured    Amount        `json:"captured,omitempty"`
	Released    Amount        `json:"released,omitempty"`
	Uncollected Amount        `json:"uncollected,omitempty"`
	Consumed    []Consumption `json:"consumed,omitempty"`
	Expired     []Consumption `json:"expired,omitempty"` // expire: credit moved to breakage per lot
	HoldsDone   []string      `json:"holds_expired,omitempty"`
	// Clawback is what a clawback took back.
	Clawback *Clawback `json:"clawback,omitempty"`
	// Balance is the account's available credit right after the op. The
	// engine fills it in for the caller; it is not journaled, and a
	// replayed answer leaves it zero.
	Balance Amount `json:"-"`
}

// Clawback is the answer of a clawback: of the credits its refund asked
// back from the lot (Asked: the share refunded since the last clawback),
// Taken left the account, valued USD at the lot's cost basis; the rest
// (Asked − Taken) had been spent, or is held by requests in flight, and
// stays spent.
type Clawback struct {
	Lot   string `json:"lot"`
	Asked Amount `json:"asked"`
	Taken Amount `json:"taken"`
	USD   USD    `json:"usd,omitempty"`
}

// HoldView is a hold as its creator sees it.
type HoldView struct {
	ID        string     `json:"id"`
	Customer  string     `json:"customer"`
	Amount    Amount     `json:"amount"`
	Requested Amount     `json:"requested"`
	ExpiresAt time.Time  `json:"expires_at"`
	Status    HoldStatus `json:"status"`
}

// JournalEntry is one committed op with its answer. The journal is
// append-only; replaying it reproduces every stored account, lot and hold.
type JournalEntry struct {
	Seq         int64  `json:"seq"`
	Op          Op     `json:"op"`
	Fingerprint string `json:"fingerprint"`
	Result      Result `json:"result"`
	// Before and After are the account's balance (see ledger.Unspent:
	// credit not yet spent, holds counted as unspent) just before and
	// just after the op, recorded by the engine so that the journal's
	// followers (alerts, auto top-ups) see each crossing of a threshold
	// as one entry, whatever ran at the same time. Not replayed: entries
	// journaled before they were recorded have 0 and 0.
	Before Amount `json:"balance_before"`
	After  Amount `json:"balance_after"`
	// Lapsed is, of an expiry, the credits of subscription lots it moved
	// to breakage: a renewal replaces them (recorded like Before and
	// After, not replayed).
	Lapsed Amount `json:"lapsed,omitempty"`
}
