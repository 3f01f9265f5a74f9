// Package ledger owns the rules of the credits ledger: a pure state machine
// over farebox.Account values (Advance, Apply, Check) and the Engine that
// batches ops, applies them and group-commits them through a farebox.Store.
package ledger

import (
	"fmt"
	"math/bits"
	"slices"
	"time"

	fb "farebox"
)

// Touched collects what an op changed, for the engine to write.
type Touched struct {
	Lots  map[string]*fb.Lot
	Holds map[string]*fb.Hold
}

// NewTouched returns an empty set.
func NewTouched() *Touched {
	return &Touched{Lots: map[string]*fb.Lot{}, Holds: map[string]*fb.Hold{}}
}

func (t *Touched) lot(l *fb.Lot) {
	if t != nil {
		t.Lots[l.ID] = l
	}
}

func (t *Touched) hold(h *fb.Hold) {
	if t != nil {
		t.Holds[h.ID] = h
	}
}

// Available is the credit a new hold or debit may take at now: the free part
// of usable lots plus the unused overdraft allowance.
func Available(a *fb.Account, now time.Time) fb.Amount {
	var sum fb.Amount
	for _, l := range a.Lots {
		if l.Usable(now) {
			sum += l.Remaining - l.Held
		}
	}
	return sum + a.OverdraftLimit - a.Debt - a.OverdraftReserved
}

// Unspent is the credit not yet spent at now: the remaining credit of the
// lots in effect (what pending holds reserve counts as unspent until they
// are charged) plus the overdraft allowance not drawn. It is what alerts
// and auto top-ups watch: a request's hold, mostly released a moment
// later, is no crossing of a threshold; its charge is. A lot past its
// expiry counts until its expiry is applied (an expire op), so that the
// expiry is the op that moves the balance.
func Unspent(a *fb.Account, now time.Time) fb.Amount {
	var sum fb.Amount
	for _, l := range a.Lots {
		if !l.EffectiveAt.After(now) {
			sum += l.Remaining
		}
	}
	return sum + a.OverdraftLimit - a.Debt
}

// Held is the total reserved by pending holds.
func Held(a *fb.Account) fb.Amount {
	var sum fb.Amount
	for _, h := range a.Holds {
		sum += h.Amount
	}
	return sum
}

// lotLess is the consumption order: priority, then earliest expiry (never
// expiring last), then oldest, then id.
func lotLess(x, y *fb.Lot) int {
	if x.Priority != y.Priority {
		return cmpInt(x.Priority, y.Priority)
	}
	xz, yz := x.ExpiresAt.IsZero(), y.ExpiresAt.IsZero()
	switch {
	case xz && !yz:
		return 1
	case !xz && yz:
		return -1
	case !xz && !yz && !x.ExpiresAt.Equal(y.ExpiresAt):
		return x.ExpiresAt.Compare(y.ExpiresAt)
	}
	if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
		return c
	}
	switch {
	case x.ID < y.ID:
		return -1
	case x.ID > y.ID:
		return 1
	}
	return 0
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// SortLots puts lots in consumption order.
func SortLots(lots []*fb.Lot) { slices.SortFunc(lots, lotLess) }

func insertLot(a *fb.Account, l *fb.Lot) {
	i, _ := slices.BinarySearchFunc(a.Lots, l, lotLess)
	a.Lots = slices.Insert(a.Lots, i, l)
}

func findLot(a *fb.Account, id string) *fb.Lot {
	for _, l := range a.Lots {
		if l.ID == id {
			return l
		}
	}
	return nil
}

// dropDead removes lots that can no longer matter from the live list.
func dropDead(a *fb.Account) {
	a.Lots = slices.DeleteFunc(a.Lots, func(l *fb.Lot) bool { return !l.Live() })
}

// Advance expires, at now, the pending holds and the lots whose time has
// come: a hold's reservations are released (on an expired lot, into
// breakage) and an expired lot's free remainder moves to expired. It reports
// whether anything changed, with a Result listing what.
func Advance(a *fb.Account, now time.Time, t *Touched) (fb.Result, bool) {
	var res fb.Result
	var due []*fb.Hold
	for _, h := range a.Holds {
		if !now.Before(h.ExpiresAt) {
			due = append(due, h)
		}
	}
	slices.SortFunc(due, func(x, y *fb.Hold) int {
		if c := x.ExpiresAt.Compare(y.ExpiresAt); c != 0 {
			return c
		}
		return compareStrings(x.ID, y.ID)
	})
	for _, h := range due {
		releaseAllocations(a, h, 0, now, t, &res)
		unspend(a, h, h.Amount)
		h.Status = fb.HoldExpired
		h.ResolvedAt = now
		delete(a.Holds, h.ID)
		a.Closed[h.ID] = h
		t.hold(h)
		res.HoldsDone = append(res.HoldsDone, h.ID)
	}
	rolled := false
	for _, l := range a.Lots {
		if l.ExpiredAt(now) && !l.RolloverUntil.IsZero() {
			rollOver(a, l, t, &res)
			rolled = true
		}
		if l.ExpiredAt(now) && l.Remaining > l.Held {
			e := l.Remaining - l.Held
			usd := Recognize(l, e)
			l.Remaining -= e
			l.Expired += e
			a.Expired += e
			t.lot(l)
			res.Expired = append(res.Expired, fb.Consumption{Lot: l.ID, Amount: e, USD: usd})
		}
	}
	changed := len(due) > 0 || len(res.Expired) > 0 || rolled
	if changed {
		dropDead(a)
	}
	if rolled {
		SortLots(a.Lots) // a rolled-over lot's expiry moved
	}
	return res, changed
}

// rollOver handles a lot's rollover at its ExpiresAt: up to RolloverMax of
// its remainder stays, now expiring at RolloverUntil; the rest of its free
// credit expires. Credit that requests in flight hold is never expired under
// them: if more than RolloverMax is held, the held credit stays with the
// lot (and rolls over if it is released).
func rollOver(a *fb.Account, l *fb.Lot, t *Touched, res *fb.Result) {
	keep := max(min(l.Remaining, l.RolloverMax), l.Held)
	if e := l.Remaining - keep; e > 0 {
		usd := Recognize(l, e)
		l.Remaining -= e
		l.Expired += e
		a.Expired += e
		res.Expired = append(res.Expired, fb.Consumption{Lot: l.ID, Amount: e, USD: usd})
	}
	l.ExpiresAt, l.RolloverUntil, l.RolloverMax = l.RolloverUntil, time.Time{}, 0
	t.lot(l)
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// releaseAllocations consumes up to take of what h reserves, in allocation
// order, and releases the rest: on lots that have expired at now the released
// credit goes to breakage. Consumption is appended to res.Consumed and
// breakage to res.Expired. It returns how much was consumed.
func releaseAllocations(a *fb.Account, h *fb.Hold, take fb.Amount, now time.Time, t *Touched, res *fb.Result) fb.Amount {
	var consumed fb.Amount
	for _, al := range h.Allocations {
		l := findLot(a, al.Lot)
		if l == nil {
			panic(fmt.Sprintf("ledger: hold %s allocates on unknown lot %s", h.ID, al.Lot))
		}
		x := min(al.Amount, take-consumed)
		usd := Recognize(l, x)
		l.Held -= al.Amount
		l.Remaining -= x
		l.Consumed += x
		consumed += x
		if x > 0 {
			res.Consumed = append(res.Consumed, fb.Consumption{Lot: l.ID, Amount: x, USD: usd})
		}
		if r := al.Amount - x; r > 0 && l.ExpiredAt(now) {
			usd := Recognize(l, r)
			l.Remaining -= r
			l.Expired += r
			a.Expired += r
			res.Expired = append(res.Expired, fb.Consumption{Lot: l.ID, Amount: r, USD: usd})
		}
		t.lot(l)
	}
	if h.Overdraft > 0 {
		x := min(h.Overdraft, take-consumed)
		a.OverdraftReserved -= h.Overdraft
		a.Debt += x
		consumed += x
		if x > 0 {
			res.Consumed = append(res.Consumed, fb.Consumption{Amount: x})
		}
	}
	return consumed
}

// Apply applies one op (not OpExpire) to a, which the caller has advanced
// to op.At. It changes a only when it succeeds; a failed op leaves a as it
// was. It does no I/O and reads no clock: the same account and op always
// give the same result.
func Apply(a *fb.Account, op *fb.Op, t *Touched) (fb.Result, error) {
	switch op.Kind {
	case fb.OpGrant:
		return grant(a, op, t)
	case fb.OpHold:
		return hold(a, op, t)
	case fb.OpCapture:
		return capture(a, op, t, false)
	case fb.OpRelease:
		return release(a, op, t)
	case fb.OpDebit:
		return debit(a, op, t)
	case fb.OpExtend:
		return extend(a, op, t)
	case fb.OpLease:
		// A lease's change that moves no credit: only journaled.
		return fb.Result{}, Validate(op)
	case fb.OpClawback:
		return clawback(a, op, t)
	case fb.OpLimit:
		if err := Validate(op); err != nil {
			return fb.Result{}, err
		}
		a.OverdraftLimit = max(op.Amount, a.Debt+a.OverdraftReserved)
		return fb.Result{}, nil
	}
	return fb.Result{}, fb.Invalid("kind", "unknown ledger op %q", op.Kind)
}

// Replay applies an op taken from the journal the way it was applied when
// it was committed. It is Apply but for rules that only refuse requests and
// came after ops they would refuse had been committed: a capture journaled
// before captures above a hold needed AllowOverCapture took the excess
// without it. Such a rule can never have let an entry in that it refuses
// now, since the engine applies every new op with Apply; the invariants
// are checked after every replayed entry all the same.
func Replay(a *fb.Account, op *fb.Op, t *Touched) (fb.Result, error) {
	if op.Kind == fb.OpCapture {
		return capture(a, op, t, true)
	}
	return Apply(a, op, t)
}

// Validate checks an op's own fields, before any account is looked at.
func Validate(op *fb.Op) error {
	switch op.Kind {
	case fb.OpGrant:
		if op.Amount <= 0 {
			return fb.Invalid("amount", "amount must be greater than 0")
		}
		if op.Amount > fb.MaxTotal {
			return fb.Invalid("amount", "amount is too large")
		}
		if !op.Source.Valid() {
			return fb.Invalid("source", "source must be one of subscription, purchase, promo, refund, adjustment")
		}
		if op.PaidUSD < 0 {
			return fb.Invalid("paid_usd", "paid_usd must not be negative")
		}
		if _, err := fb.MulDiv(int64(op.PaidUSD), fb.Micro, int64(op.Amount)); op.Amount > 0 && err != nil {
			return fb.Invalid("paid_usd", "paid_usd per credit is too large to record")
		}
		if op.Priority < 0 || op.Priority > 1000 {
			return fb.Invalid("priority", "priority must be between 0 and 1000")
		}
		if !op.ExpiresAt.IsZero() && !op.EffectiveAt.IsZero() && !op.ExpiresAt.After(op.EffectiveAt) {
			return fb.Invalid("expires_at", "expires_at must be after effective_at")
		}
		if !op.RolloverUntil.IsZero() && (op.ExpiresAt.IsZero() || !op.RolloverUntil.After(op.ExpiresAt)) {
			return fb.Invalid("rollover_until", "rollover_until must be after expires_at")
		}
		if op.RolloverMax < 0 || op.RolloverMax > op.Amount {
			return fb.Invalid("rollover_max", "rollover_max must be between 0 and the amount")
		}
	case fb.OpHold:
		if op.Amount <= 0 {
			return fb.Invalid("amount", "amount must be greater than 0")
		}
		if op.Amount > fb.MaxTotal {
			return fb.Invalid("amount", "amount is too large")
		}
		if op.ExpiresAt.IsZero() && (op.TTL <= 0 || op.TTL > MaxHoldTTL) {
			return fb.Invalid("ttl_seconds", "ttl_seconds must be between 1 and %d", int(MaxHoldTTL/time.Second))
		}
		if err := validBudget(op.Budget); err != nil {
			return err
		}
	case fb.OpCapture:
		if op.HoldID == "" {
			return fb.Invalid("id", "hold id is required")
		}
		if !op.Full && op.Amount < 0 {
			return fb.Invalid("amount", "amount must not be negative")
		}
		if op.Amount > fb.MaxTotal {
			return fb.Invalid("amount", "amount is too large")
		}
	case fb.OpRelease:
		if op.HoldID == "" {
			return fb.Invalid("id", "hold id is required")
		}
	case fb.OpExtend:
		if op.HoldID == "" {
			return fb.Invalid("id", "hold id is required")
		}
		if op.ExpiresAt.IsZero() {
			return fb.Invalid("expires_at", "the hold's new expiry is required")
		}
	case fb.OpDebit:
		if err := validBudget(op.Budget); err != nil {
			return err
		}
		// A metered event may cost nothing; it is still recorded once.
		if op.Amount < 0 || op.Amount == 0 && op.Event == "" {
			return fb.Invalid("amount", "amount must be greater than 0")
		}
		if op.Amount > fb.MaxTotal {
			return fb.Invalid("amount", "amount is too large")
		}
	case fb.OpLimit:
		if op.Amount < 0 || op.Amount > fb.MaxTotal {
			return fb.Invalid("overdraft_limit", "overdraft_limit must be between 0 and %s", fb.MaxTotal)
		}
	case fb.OpLease:
		if op.Lease == nil {
			return fb.Invalid("lease", "a lease op names its lease")
		}
	case fb.OpClawback:
		if op.LotID == "" {
			return fb.Invalid("lot", "the lot to claw back from is required")
		}
		if op.Amount <= 0 || op.Amount > fb.MaxTotal {
			return fb.Invalid("amount", "the refunded share must be between 0 and %s", fb.MaxTotal)
		}
	case fb.OpExpire:
	default:
		return fb.Invalid("kind", "unknown ledger op %q", op.Kind)
	}
	if op.Lease != nil && (op.Lease.ID == "" || op.Lease.Event == "") {
		return fb.Invalid("lease", "a lease's op names the lease and what it does")
	}
	return nil
}

func validBudget(b *fb.BudgetRef) error {
	switch {
	case b == nil:
		return nil
	case b.ID == "" || !fb.Printable(b.ID):
		return fb.Invalid("budget", "a budget needs a printable id")
	case b.Limit < 0 || b.Limit > fb.MaxTotal:
		return fb.Invalid("budget", "a budget's limit must be between 0 and %s", fb.MaxTotal)
	case !b.Period.Valid():
		return fb.Invalid("budget_period", "a budget's period must be day, month or total")
	}
	return nil
}

// budgetOf is the budget ref names, as it stands at at: its state (afresh,
// not yet in the account, when its window has moved on) and the room left
// in it.
func budgetOf(a *fb.Account, ref *fb.BudgetRef, at time.Time) (*fb.BudgetState, fb.Amount) {
	w := ref.Period.Window(at)
	bs := a.Budgets[ref.ID]
	switch {
	case bs == nil:
		bs = &fb.BudgetState{ID: ref.ID, Window: w, Epoch: 1}
	case !bs.Window.Equal(w):
		bs = &fb.BudgetState{ID: ref.ID, Window: w, Epoch: bs.Epoch + 1}
	}
	return bs, max(ref.Limit-bs.Spent, 0)
}

func budgetExceeded(ref *fb.BudgetRef, room, want fb.Amount) error {
	return fb.ErrBudgetExceeded.New("the budget %s has %s left of its %s (%s); %s was asked", ref.ID, room, ref.Limit, ref.Period, want)
}

// spend counts x on bs and keeps bs in the account.
func spend(a *fb.Account, bs *fb.BudgetState, x fb.Amount) {
	if a.Budgets == nil {
		a.Budgets = map[string]*fb.BudgetState{}
	}
	bs.Spent += x
	a.Budgets[bs.ID] = bs
}

// unspend gives back x of what hold h counted on its budget, when that is
// still the budget's epoch: what a window spent ends with it.
func unspend(a *fb.Account, h *fb.Hold, x fb.Amount) {
	if h.Budget == "" || x == 0 {
		return
	}
	if bs := a.Budgets[h.Budget]; bs != nil && bs.Epoch == h.BudgetEpoch {
		bs.Spent -= x
	}
}

// Hold TTLs.
const (
	DefaultHoldTTL = 60 * time.Second
	MaxHoldTTL     = 24 * time.Hour
)

func grant(a *fb.Account, op *fb.Op, t *Touched) (fb.Result, error) {
	if err := Validate(op); err != nil {
		return fb.Result{}, err
	}
	eff := op.EffectiveAt
	if eff.IsZero() {
		eff = op.At
	}
	if !op.ExpiresAt.IsZero() && !op.ExpiresAt.After(op.At) {
		return fb.Result{}, fb.Invalid("expires_at", "expires_at must be in the future")
	}
	if !op.ExpiresAt.IsZero() && !op.ExpiresAt.After(eff) {
		return fb.Result{}, fb.Invalid("expires_at", "expires_at must be after effective_at")
	}
	granted, err := a.Granted.Add(op.Amount)
	if err != nil || granted > fb.MaxTotal {
		return fb.Result{}, fb.Invalid("amount", "the account's granted total would exceed %s credits", fb.MaxTotal)
	}
	l := &fb.Lot{
		ID: op.LotID, Customer: a.Customer, Source: op.Source, Priority: op.Priority,
		Amount: op.Amount, Remaining: op.Amount,
		EffectiveAt: eff, ExpiresAt: op.ExpiresAt, PaidUSD: op.PaidUSD, CreatedAt: op.At,
		RolloverMax: op.RolloverMax, RolloverUntil: op.RolloverUntil,
	}
	a.Granted = granted
	var res fb.Result
	// A new lot repays debt first; those credits are consumed now.
	if a.Debt > 0 && !eff.After(op.At) {
		r := min(a.Debt, l.Remaining)
		usd := Recognize(l, r)
		l.Remaining -= r
		l.Consumed += r
		a.Debt -= r
		res.Consumed = append(res.Consumed, fb.Consumption{Lot: l.ID, Amount: r, USD: usd})
	}
	if l.Live() {
		insertLot(a, l)
	}
	t.lot(l)
	snap := *l
	res.Lot = &snap
	return res, nil
}

func hold(a *fb.Account, op *fb.Op, t *Touched) (fb.Result, error) {
	if err := Validate(op); err != nil {
		return fb.Result{}, err
	}
	if _, dup := a.Holds[op.HoldID]; dup {
		return fb.Result{}, fmt.Errorf("ledger: hold id %s reused", op.HoldID)
	}
	expires := op.At.Add(op.TTL)
	if !op.ExpiresAt.IsZero() {
		if !op.ExpiresAt.After(op.At) {
			return fb.Result{}, fb.Invalid("expires_at", "a hold's expiry must be in the future")
		}
		expires = op.ExpiresAt
	}
	avail := Available(a, op.At)
	take := op.Amount
	if avail < take {
		if !op.AllowPartial || avail <= 0 {
			return fb.Result{}, insufficient(avail, op.Amount)
		}
		take = avail
	}
	var bs *fb.BudgetState
	if op.Budget != nil {
		var room fb.Amount
		bs, room = budgetOf(a, op.Budget, op.At)
		if room < take {
			if !op.AllowPartial || room <= 0 {
				return fb.Result{}, budgetExceeded(op.Budget, room, op.Amount)
			}
			take = room
		}
	}
	h := &fb.Hold{
		ID: op.HoldID, Customer: a.Customer, Amount: take, Requested: op.Amount,
		CreatedAt: op.At, ExpiresAt: expires, Status: fb.HoldPending,
	}
	if bs != nil {
		spend(a, bs, take)
		h.Budget, h.BudgetEpoch = bs.ID, bs.Epoch
	}
	left := take
	for _, l := range a.Lots {
		if left == 0 {
			break
		}
		if !l.Usable(op.At) || l.Remaining == l.Held {
			continue
		}
		x := min(l.Remaining-l.Held, left)
		l.Held += x
		left -= x
		h.Allocations = append(h.Allocations, fb.Allocation{Lot: l.ID, Amount: x})
		t.lot(l)
	}
	if left > 0 {
		h.Overdraft = left
		a.OverdraftReserved += left
	}
	a.Holds[h.ID] = h
	t.hold(h)
	return fb.Result{Hold: viewOf(h)}, nil
}

func viewOf(h *fb.Hold) *fb.HoldView {
	return &fb.HoldView{ID: h.ID, Customer: h.Customer, Amount: h.Amount, Requested: h.Requested, ExpiresAt: h.ExpiresAt, Status: h.Status}
}

func insufficient(avail, want fb.Amount) error {
	return fb.Errorf(fb.EInsufficientCredits, "insufficient credits: %s available, %s requested", max(avail, 0), want)
}

// resolvable finds the pending hold an op resolves, or answers for a hold
// that is already resolved: the same resolution gets its first answer.
func resolvable(a *fb.Account, op *fb.Op) (*fb.Hold, *fb.Result, error) {
	if h, ok := a.Holds[op.HoldID]; ok {
		return h, nil, nil
	}
	h, ok := a.Closed[op.HoldID]
	if !ok {
		return nil, nil, fb.Errorf(fb.ENotFound, "no hold %s", op.HoldID)
	}
	if h.Status == fb.HoldExpired {
		return nil, nil, fb.ErrHoldExpired.New("hold %s expired at %s and released its credit", h.ID, h.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if h.Resolution == resolution(h, op) && h.Result != nil {
		r := *h.Result
		return nil, &r, nil
	}
	return nil, nil, fb.ErrHoldResolved.New("hold %s is already %s", h.ID, h.Status)
}

// capture resolves a hold by taking want of it. Above the hold it needs
// op.AllowOverCapture (a typo must not empty the account), unless legacy:
// replaying a capture journaled before the flag existed.
func capture(a *fb.Account, op *fb.Op, t *Touched, legacy bool) (fb.Result, error) {
	if err := Validate(op); err != nil {
		return fb.Result{}, err
	}
	h, prev, err := resolvable(a, op)
	if err != nil || prev != nil {
		if prev != nil {
			return *prev, nil
		}
		return fb.Result{}, err
	}
	want := op.Amount
	if op.Full {
		want = h.Amount
	}
	if want > h.Amount && !op.AllowOverCapture && !legacy {
		return fb.Result{}, fb.Invalid("amount", "amount %s is above the hold's %s; to take the excess from available credit (the rest recorded as uncollected), set allow_over_capture", want, h.Amount)
	}
	excess := max(want-h.Amount, 0)
	charged, err := a.Charged.Add(want)
	if err != nil || charged > fb.MaxTotal*2 {
		return fb.Result{}, fb.Invalid("amount", "the account's charged total would overflow")
	}
	// Check before changing anything: the excess may only become debt or
	// uncollected, both bounded.
	var res fb.Result
	fromHold := releaseAllocations(a, h, min(want, h.Amount), op.At, t, &res)
	res.Captured = want
	res.Released = h.Amount - fromHold
	unspend(a, h, res.Released)
	if excess > 0 {
		got := take(a, excess, op.At, t, &res)
		res.Uncollected = excess - got
		a.Uncollected += res.Uncollected
	}
	a.Charged = charged
	closeHold(a, h, fb.HoldCaptured, op, &res, t)
	return res, nil
}

func release(a *fb.Account, op *fb.Op, t *Touched) (fb.Result, error) {
	if err := Validate(op); err != nil {
		return fb.Result{}, err
	}
	h, prev, err := resolvable(a, op)
	if err != nil || prev != nil {
		if prev != nil {
			return *prev, nil
		}
		return fb.Result{}, err
	}
	var res fb.Result
	releaseAllocations(a, h, 0, op.At, t, &res)
	res.Released = h.Amount
	unspend(a, h, h.Amount)
	closeHold(a, h, fb.HoldReleased, op, &res, t)
	return res, nil
}

// extend moves a pending hold's expiry to op.ExpiresAt, or leaves it where
// it is when that is later already: an extension never shortens a hold, so
// extensions may be repeated or arrive out of order. Only a pending hold
// can be extended; one that has expired has released its credit already.
func extend(a *fb.Account, op *fb.Op, t *Touched) (fb.Result, error) {
	if err := Validate(op); err != nil {
		return fb.Result{}, err
	}
	if !op.ExpiresAt.After(op.At) {
		return fb.Result{}, fb.Invalid("expires_at", "the hold's new expiry must be in the future")
	}
	h, ok := a.Holds[op.HoldID]
	if !ok {
		if c, closed := a.Closed[op.HoldID]; closed {
			if c.Status == fb.HoldExpired {
				return fb.Result{}, fb.ErrHoldExpired.New("hold %s expired at %s and released its credit", c.ID, c.ExpiresAt.UTC().Format(time.RFC3339))
			}
			return fb.Result{}, fb.ErrHoldResolved.New("hold %s is already %s", c.ID, c.Status)
		}
		return fb.Result{}, fb.Errorf(fb.ENotFound, "no hold %s", op.HoldID)
	}
	if op.ExpiresAt.After(h.ExpiresAt) {
		h.ExpiresAt = op.ExpiresAt
		t.hold(h)
	}
	return fb.Result{Hold: viewOf(h)}, nil
}

// resolution is the fingerprint of a resolving op as a hold remembers it:
// a capture of everything held is the capture of the held amount, so either
// spelling of it, repeated, gets the first answer.
func resolution(h *fb.Hold, op *fb.Op) string {
	if op.Kind == fb.OpCapture && op.Full {
		same := *op
		same.Full, same.Amount = false, h.Amount
		return same.Fingerprint()
	}
	return op.Fingerprint()
}

func closeHold(a *fb.Account, h *fb.Hold, st fb.HoldStatus, op *fb.Op, res *fb.Result, t *Touched) {
	h.Status = st
	h.ResolvedAt = op.At
	h.Resolution = resolution(h, op)
	v := viewOf(h)
	res.Hold = v
	r := *res
	h.Result = &r
	delete(a.Holds, h.ID)
	a.Closed[h.ID] = h
	t.hold(h)
	dropDead(a)
}

func debit(a *fb.Account, op *fb.Op, t *Touched) (fb.Result, error) {
	if err := Validate(op); err != nil {
		return fb.Result{}, err
	}
	avail := Available(a, op.At)
	if avail < op.Amount && !op.AllowUncollected {
		return fb.Result{}, insufficient(avail, op.Amount)
	}
	var bs *fb.BudgetState
	if op.Budget != nil {
		var room fb.Amount
		if bs, room = budgetOf(a, op.Budget, op.At); room < op.Amount {
			return fb.Result{}, budgetExceeded(op.Budget, room, op.Amount)
		}
	}
	charged, err := a.Charged.Add(op.Amount)
	if err != nil || charged > fb.MaxTotal*2 {
		return fb.Result{}, fb.Invalid("amount", "the account's charged total would overflow")
	}
	var res fb.Result
	got := take(a, op.Amount, op.At, t, &res)
	res.Captured = op.Amount
	res.Uncollected = op.Amount - got
	a.Uncollected += res.Uncollected
	a.Charged = charged
	if bs != nil {
		spend(a, bs, op.Amount)
	}
	dropDead(a)
	return res, nil
}

// clawback takes back from lot op.LotID the part of its refunded share
// (op.Amount, cumulative) not asked before, as far as the lot's free
// credit goes: a lot that is spent, or no longer live, gives back nothing
// more, and what requests in flight hold on it stays theirs. Refunded
// only grows, so a refund's clawback repeated, or two refunds' arriving in
// either order, never take more than the share refunded in all.
func clawback(a *fb.Account, op *fb.Op, t *Touched) (fb.Result, error) {
	if err := Validate(op); err != nil {
		return fb.Result{}, err
	}
	cb := &fb.Clawback{Lot: op.LotID}
	l := findLot(a, op.LotID)
	if l == nil {
		return fb.Result{Clawback: cb}, nil
	}
	share := min(op.Amount, l.Amount)
	if share <= l.Refunded {
		return fb.Result{Clawback: cb}, nil
	}
	cb.Asked = share - l.Refunded
	cb.Taken = min(cb.Asked, l.Remaining-l.Held)
	cb.USD = Recognize(l, cb.Taken)
	l.Refunded = share
	l.Remaining -= cb.Taken
	l.ClawedBack += cb.Taken
	a.ClawedBack += cb.Taken
	t.lot(l)
	dropDead(a)
	return fb.Result{Clawback: cb}, nil
}

// take consumes up to want of free credit, from usable lots in consumption
// order and then the overdraft allowance, and returns how much it took.
func take(a *fb.Account, want fb.Amount, now time.Time, t *Touched, res *fb.Result) fb.Amount {
	left := want
	for _, l := range a.Lots {
		if left == 0 {
			break
		}
		if !l.Usable(now) || l.Remaining == l.Held {
			continue
		}
		x := min(l.Remaining-l.Held, left)
		usd := Recognize(l, x)
		l.Remaining -= x
		l.Consumed += x
		left -= x
		res.Consumed = append(res.Consumed, fb.Consumption{Lot: l.ID, Amount: x, USD: usd})
		t.lot(l)
	}
	if left > 0 {
		room := max(a.OverdraftLimit-a.Debt-a.OverdraftReserved, 0)
		x := min(room, left)
		if x > 0 {
			a.Debt += x
			left -= x
			res.Consumed = append(res.Consumed, fb.Consumption{Amount: x})
		}
	}
	return want - left
}

// Check verifies the invariants of an account: for every lot
// amount = remaining + consumed + expired + clawed back (clawed back at most
// its refunded share), 0 ≤ held ≤ remaining and held equal to the pending
// holds' allocations on it; for the account
// granted + debt + uncollected = Σ remaining + charged + expired +
// clawed back and
// 0 ≤ debt + overdraft_reserved ≤ overdraft_limit, with overdraft_reserved
// equal to the holds' overdraft reservations. Lots not in a.Lots must have
// nothing remaining or held.
func Check(a *fb.Account) error {
	allocs := map[string]fb.Amount{}
	var od fb.Amount
	for _, h := range a.Holds {
		if h.Status != fb.HoldPending {
			return fmt.Errorf("hold %s in Holds has status %s", h.ID, h.Status)
		}
		sum := h.Overdraft
		for _, al := range h.Allocations {
			if al.Amount <= 0 {
				return fmt.Errorf("hold %s has a non-positive allocation", h.ID)
			}
			allocs[al.Lot] += al.Amount
			sum += al.Amount
		}
		if sum != h.Amount {
			return fmt.Errorf("hold %s: allocations %s != amount %s", h.ID, sum, h.Amount)
		}
		od += h.Overdraft
	}
	var remaining fb.Amount
	seen := map[string]bool{}
	for _, l := range a.Lots {
		if l.Amount != l.Remaining+l.Consumed+l.Expired+l.ClawedBack {
			return fmt.Errorf("lot %s: amount %s != remaining %s + consumed %s + expired %s + clawed back %s", l.ID, l.Amount, l.Remaining, l.Consumed, l.Expired, l.ClawedBack)
		}
		if l.ClawedBack < 0 || l.ClawedBack > l.Refunded || l.Refunded > l.Amount {
			return fmt.Errorf("lot %s: clawed back %s, refunded share %s, amount %s", l.ID, l.ClawedBack, l.Refunded, l.Amount)
		}
		if l.Held < 0 || l.Held > l.Remaining || l.Remaining < 0 || l.Consumed < 0 || l.Expired < 0 {
			return fmt.Errorf("lot %s: held %s, remaining %s out of range", l.ID, l.Held, l.Remaining)
		}
		if l.Held != allocs[l.ID] {
			return fmt.Errorf("lot %s: held %s != allocations %s", l.ID, l.Held, allocs[l.ID])
		}
		seen[l.ID] = true
		remaining += l.Remaining
	}
	for id, v := range allocs {
		if !seen[id] && v != 0 {
			return fmt.Errorf("holds allocate %s on lot %s that is not live", v, id)
		}
	}
	if od != a.OverdraftReserved {
		return fmt.Errorf("overdraft reserved %s != holds' overdraft %s", a.OverdraftReserved, od)
	}
	if a.Debt < 0 || a.OverdraftReserved < 0 || a.Debt+a.OverdraftReserved > a.OverdraftLimit {
		return fmt.Errorf("debt %s + overdraft reserved %s outside [0, %s]", a.Debt, a.OverdraftReserved, a.OverdraftLimit)
	}
	onBudget := map[string]fb.Amount{}
	for _, h := range a.Holds {
		if bs := a.Budgets[h.Budget]; h.Budget != "" && bs != nil && bs.Epoch == h.BudgetEpoch {
			onBudget[h.Budget] += h.Amount
		}
	}
	for id, bs := range a.Budgets {
		if bs.ID != id || bs.Spent < onBudget[id] {
			return fmt.Errorf("budget %s: spent %s below the %s its pending holds reserve", id, bs.Spent, onBudget[id])
		}
	}
	if a.Granted+a.Debt+a.Uncollected != remaining+a.Charged+a.Expired+a.ClawedBack {
		return fmt.Errorf("granted %s + debt %s + uncollected %s != remaining %s + charged %s + expired %s + clawed back %s",
			a.Granted, a.Debt, a.Uncollected, remaining, a.Charged, a.Expired, a.ClawedBack)
	}
	return nil
}

// Unattributed returns what the journal entries of ops without a usage row
// charged and recognised: the revenue of the credits they consumed (a
// grant repaying debt consumes its credits at once; a capture or debit
// through the API has no usage row), with the credits captured or debited
// and the part uncollected. Entries with a usage row are left out: the
// engine puts their revenue on the row. So the usage rows and these
// together hold every Consumption.USD of the journal, once.
func Unattributed(entries []*fb.JournalEntry) []fb.Revenue {
	var out []fb.Revenue
	for _, e := range entries {
		if e.Op.Usage != nil || e.Op.Kind == fb.OpExpire {
			continue
		}
		r := fb.Revenue{Customer: e.Op.Customer, At: e.Op.At}
		for _, c := range e.Result.Consumed {
			r.USD += c.USD
		}
		if e.Op.Kind == fb.OpCapture || e.Op.Kind == fb.OpDebit {
			r.Credits, r.Uncollected = e.Result.Captured, e.Result.Uncollected
		}
		if r.USD != 0 || r.Credits != 0 || r.Uncollected != 0 {
			out = append(out, r)
		}
	}
	return out
}

// Recognize is the revenue (or, expiring, breakage) in micro-dollars of x
// credits leaving lot l, called before l's consumed and expired totals
// count them. It is recognised cumulatively: once u of the lot's credits
// have left (consumed, expired or clawed back: a clawback's credits are
// valued the same way, as what is refunded of the lot's basis),
// floor(u × paid ÷ amount) has been recognised in all. Each
// part is exact to the micro-dollar, their sum never drifts, and a lot
// that is all gone has recognised exactly what was paid for it.
func Recognize(l *fb.Lot, x fb.Amount) fb.USD {
	if x <= 0 || l.PaidUSD <= 0 || l.Amount <= 0 {
		return 0
	}
	u := l.Consumed + l.Expired + l.ClawedBack
	return fb.USD(basis(u+x, l.PaidUSD, l.Amount) - basis(u, l.PaidUSD, l.Amount))
}

// basis is floor(u × paid ÷ amount) for 0 ≤ u ≤ amount, so the quotient is
// at most paid.
func basis(u fb.Amount, paid fb.USD, amount fb.Amount) int64 {
	hi, lo := bits.Mul64(uint64(u), uint64(paid))
	q, _ := bits.Div64(hi, lo, uint64(amount))
	return int64(q)
}
