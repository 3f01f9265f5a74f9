package ledger

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	fb "farebox"
)

// The reference model: the ledger's rules written as plainly as possible,
// with no live-lot list, no incremental ordering and no shared code with
// the state machine. The property test runs random op sequences with random
// clocks through both and demands identical answers and balances.

type mLot struct {
	id                                   string
	prio                                 int
	eff, exp, created                    time.Time
	amount, remaining, held, used, lapse int64
	clawed, refunded                     int64 // taken back by clawbacks; the share refunds asked
}

type mAlloc struct {
	lot *mLot
	amt int64
}

type mHold struct {
	id        string
	amount    int64
	requested int64
	allocs    []mAlloc
	od        int64
	exp       time.Time
	status    fb.HoldStatus
	fp        string
	outcome   outcome
	budget    string // the budget it counts against, in epoch
	epoch     int64
}

// mBudget is a budget's spending in its window, the window's epoch.
type mBudget struct {
	window time.Time
	epoch  int64
	spent  int64
}

type model struct {
	lots                                                              []*mLot
	holds                                                             map[string]*mHold
	budgets                                                           map[string]*mBudget
	odLimit, debt, odReserved, uncollected, granted, charged, expired int64
	clawed                                                            int64
}

// outcome is what an op answered, in a form both sides can produce.
type outcome struct {
	errType, errCode                string
	lot                             string
	remaining                       int64
	hold                            string
	holdAmount, holdRequested       int64
	captured, released, uncollected int64
	consumed, lapsed                string
	clawLot                         string
	clawAsked, clawTaken            int64
}

func (m *model) expiredAt(l *mLot, now time.Time) bool {
	return !l.exp.IsZero() && !now.Before(l.exp)
}

func (m *model) usable(l *mLot, now time.Time) bool {
	return !l.eff.After(now) && !m.expiredAt(l, now)
}

// ordered returns the lots in consumption order, sorted afresh.
func (m *model) ordered() []*mLot {
	out := slices.Clone(m.lots)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.prio != b.prio {
			return a.prio < b.prio
		}
		if a.exp.IsZero() != b.exp.IsZero() {
			return b.exp.IsZero()
		}
		if !a.exp.Equal(b.exp) {
			return a.exp.Before(b.exp)
		}
		if !a.created.Equal(b.created) {
			return a.created.Before(b.created)
		}
		return a.id < b.id
	})
	return out
}

// balance is the credit not yet spent: every lot in effect's remaining
// credit, held or not, and the overdraft not drawn.
func (m *model) balance(now time.Time) int64 {
	var sum int64
	for _, l := range m.lots {
		if !l.eff.After(now) {
			sum += l.remaining
		}
	}
	return sum + m.odLimit - m.debt
}

func (m *model) available(now time.Time) int64 {
	var sum int64
	for _, l := range m.lots {
		if m.usable(l, now) {
			sum += l.remaining - l.held
		}
	}
	return sum + m.odLimit - m.debt - m.odReserved
}

// settle consumes up to take of h's reservations in allocation order and
// frees the rest (into breakage on expired lots).
func (m *model) settle(h *mHold, take int64, now time.Time, o *outcome) int64 {
	var got int64
	for _, a := range h.allocs {
		x := min(a.amt, take-got)
		a.lot.held -= a.amt
		a.lot.remaining -= x
		a.lot.used += x
		got += x
		if x > 0 {
			o.consumed += fmt.Sprintf("%s:%d ", a.lot.id, x)
		}
		if r := a.amt - x; r > 0 && m.expiredAt(a.lot, now) {
			a.lot.remaining -= r
			a.lot.lapse += r
			m.expired += r
			o.lapsed += fmt.Sprintf("%s:%d ", a.lot.id, r)
		}
	}
	if h.od > 0 {
		x := min(h.od, take-got)
		m.odReserved -= h.od
		m.debt += x
		got += x
		if x > 0 {
			o.consumed += fmt.Sprintf(":%d ", x)
		}
	}
	return got
}

// takeFree consumes free credit: usable lots in order, then the overdraft.
func (m *model) takeFree(want int64, now time.Time, o *outcome) int64 {
	left := want
	for _, l := range m.ordered() {
		if left == 0 {
			break
		}
		if free := l.remaining - l.held; m.usable(l, now) && free > 0 {
			x := min(free, left)
			l.remaining -= x
			l.used += x
			left -= x
			o.consumed += fmt.Sprintf("%s:%d ", l.id, x)
		}
	}
	if x := min(max(m.odLimit-m.debt-m.odReserved, 0), left); x > 0 {
		m.debt += x
		left -= x
		o.consumed += fmt.Sprintf(":%d ", x)
	}
	return want - left
}

func (m *model) advance(now time.Time) {
	var due []*mHold
	for _, h := range m.holds {
		if h.status == fb.HoldPending && !now.Before(h.exp) {
			due = append(due, h)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		if !due[i].exp.Equal(due[j].exp) {
			return due[i].exp.Before(due[j].exp)
		}
		return due[i].id < due[j].id
	})
	for _, h := range due {
		m.settle(h, 0, now, &outcome{})
		m.giveBack(h, h.amount)
		h.status = fb.HoldExpired
	}
	for _, l := range m.lots {
		if m.expiredAt(l, now) && l.remaining > l.held {
			e := l.remaining - l.held
			l.remaining -= e
			l.lapse += e
			m.expired += e
		}
	}
}

func refused(typ, code string) outcome { return outcome{errType: typ, errCode: code} }

// mWindow is a budget period's window at t, written out plainly.
func mWindow(p fb.BudgetPeriod, t time.Time) time.Time {
	t = t.UTC()
	switch p {
	case fb.BudgetDay:
		y, mo, d := t.Date()
		return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
	case fb.BudgetMonth:
		y, mo, _ := t.Date()
		return time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Time{}
}

// room is what budget b leaves at now, and its spending as of now.
func (m *model) room(b *fb.BudgetRef, now time.Time) (int64, *mBudget) {
	w := mWindow(b.Period, now)
	cur := m.budgets[b.ID]
	if cur == nil {
		cur = &mBudget{window: w, epoch: 1}
	} else if !cur.window.Equal(w) {
		cur = &mBudget{window: w, epoch: cur.epoch + 1}
	}
	return max(int64(b.Limit)-cur.spent, 0), cur
}

// giveBack returns x of what h counted on its budget, in its window only.
func (m *model) giveBack(h *mHold, x int64) {
	if cur := m.budgets[h.budget]; h.budget != "" && cur != nil && cur.epoch == h.epoch {
		cur.spent -= x
	}
}

func (m *model) apply(op *fb.Op) outcome {
	now := op.At
	switch op.Kind {
	case fb.OpGrant:
		eff := op.EffectiveAt
		if eff.IsZero() {
			eff = now
		}
		l := &mLot{id: op.LotID, prio: op.Priority, eff: eff, exp: op.ExpiresAt, created: now, amount: int64(op.Amount), remaining: int64(op.Amount)}
		o := outcome{lot: l.id}
		if m.debt > 0 && !eff.After(now) {
			r := min(m.debt, l.remaining)
			l.remaining -= r
			l.used += r
			m.debt -= r
			o.consumed = fmt.Sprintf("%s:%d ", l.id, r)
		}
		m.granted += l.amount
		m.lots = append(m.lots, l)
		o.remaining = l.remaining
		return o
	case fb.OpHold:
		exp := now.Add(op.TTL)
		if !op.ExpiresAt.IsZero() {
			if !op.ExpiresAt.After(now) {
				return refused(fb.EInvalid, fb.EInvalid)
			}
			exp = op.ExpiresAt
		}
		avail := m.available(now)
		want := int64(op.Amount)
		if avail < want {
			if !op.AllowPartial || avail <= 0 {
				return refused(fb.EInsufficientCredits, fb.EInsufficientCredits)
			}
			want = avail
		}
		var cur *mBudget
		if op.Budget != nil {
			var room int64
			room, cur = m.room(op.Budget, now)
			if room < want {
				if !op.AllowPartial || room <= 0 {
					return refused(fb.EInsufficientCredits, "budget_exceeded")
				}
				want = room
			}
		}
		h := &mHold{id: op.HoldID, amount: want, requested: int64(op.Amount), exp: exp, status: fb.HoldPending}
		if cur != nil {
			cur.spent += want
			m.budgets[op.Budget.ID] = cur
			h.budget, h.epoch = op.Budget.ID, cur.epoch
		}
		left := want
		for _, l := range m.ordered() {
			if free := l.remaining - l.held; left > 0 && m.usable(l, now) && free > 0 {
				x := min(free, left)
				l.held += x
				left -= x
				h.allocs = append(h.allocs, mAlloc{l, x})
			}
		}
		h.od = left
		m.odReserved += left
		m.holds[h.id] = h
		return outcome{hold: h.id, holdAmount: h.amount, holdRequested: h.requested}
	case fb.OpCapture, fb.OpRelease:
		h, ok := m.holds[op.HoldID]
		// The model's own reading of "the same request": a capture of
		// everything is a capture of the held amount.
		what := string(op.Kind) + ":" + op.HoldID + ":" + op.Amount.String()
		if ok && op.Full {
			what = string(op.Kind) + ":" + op.HoldID + ":" + fb.Amount(h.amount).String()
		}
		if op.AllowOverCapture {
			what += ":over" // the opt-in makes it another request
		}
		if op.Kind == fb.OpRelease {
			what = string(op.Kind) + ":" + op.HoldID
		}
		switch {
		case !ok:
			return refused(fb.ENotFound, fb.ENotFound)
		case h.status == fb.HoldExpired:
			return refused(fb.EConflict, "hold_expired")
		case h.status != fb.HoldPending && h.fp == what:
			return h.outcome
		case h.status != fb.HoldPending:
			return refused(fb.EConflict, "hold_resolved")
		}
		o := outcome{hold: h.id, holdAmount: h.amount, holdRequested: h.requested}
		if op.Kind == fb.OpRelease {
			m.settle(h, 0, now, &o)
			o.released = h.amount
			m.giveBack(h, h.amount)
			h.status = fb.HoldReleased
		} else {
			want := int64(op.Amount)
			if op.Full {
				want = h.amount
			}
			if want > h.amount && !op.AllowOverCapture {
				// Above the hold only when asked for; the hold stays.
				return refused(fb.EInvalid, fb.EInvalid)
			}
			got := m.settle(h, min(want, h.amount), now, &o)
			o.captured = want
			o.released = h.amount - got
			m.giveBack(h, o.released)
			if want > h.amount {
				excess := want - h.amount
				o.uncollected = excess - m.takeFree(excess, now, &o)
				m.uncollected += o.uncollected
			}
			m.charged += want
			h.status = fb.HoldCaptured
		}
		h.fp = what
		h.outcome = o
		return o
	case fb.OpExtend:
		h, ok := m.holds[op.HoldID]
		switch {
		case !op.ExpiresAt.After(now):
			return refused(fb.EInvalid, fb.EInvalid)
		case !ok:
			return refused(fb.ENotFound, fb.ENotFound)
		case h.status == fb.HoldExpired:
			return refused(fb.EConflict, "hold_expired")
		case h.status != fb.HoldPending:
			return refused(fb.EConflict, "hold_resolved")
		}
		if op.ExpiresAt.After(h.exp) {
			h.exp = op.ExpiresAt
		}
		return outcome{hold: h.id, holdAmount: h.amount, holdRequested: h.requested}
	case fb.OpClawback:
		// The refunded share grows; of what it grew by, the lot's free
		// credit is taken back, the rest was spent (or is held).
		o := outcome{clawLot: op.LotID}
		var l *mLot
		for _, x := range m.lots {
			if x.id == op.LotID && (x.remaining > 0 || x.held > 0) {
				l = x
			}
		}
		if l == nil {
			return o
		}
		share := min(int64(op.Amount), l.amount)
		if share <= l.refunded {
			return o
		}
		o.clawAsked = share - l.refunded
		o.clawTaken = min(o.clawAsked, l.remaining-l.held)
		l.refunded = share
		l.remaining -= o.clawTaken
		l.clawed += o.clawTaken
		m.clawed += o.clawTaken
		return o
	case fb.OpDebit:
		want := int64(op.Amount)
		if m.available(now) < want && !op.AllowUncollected {
			return refused(fb.EInsufficientCredits, fb.EInsufficientCredits)
		}
		if op.Budget != nil {
			room, cur := m.room(op.Budget, now)
			if room < want {
				return refused(fb.EInsufficientCredits, "budget_exceeded")
			}
			cur.spent += want
			m.budgets[op.Budget.ID] = cur
		}
		var o outcome
		o.captured = want
		o.uncollected = want - m.takeFree(want, now, &o)
		m.uncollected += o.uncollected
		m.charged += want
		return o
	case fb.OpLease:
		return outcome{} // a lease's change, journaled, no credit moved
	}
	panic("model: unknown op " + op.Kind)
}

// outcomeOf puts the state machine's answer in the model's form.
func outcomeOf(res fb.Result, err error) outcome {
	if err != nil {
		return refused(fb.ErrorType(err), fb.ErrorCode(err))
	}
	var o outcome
	if res.Lot != nil {
		o.lot, o.remaining = res.Lot.ID, int64(res.Lot.Remaining)
	}
	if res.Hold != nil {
		o.hold, o.holdAmount, o.holdRequested = res.Hold.ID, int64(res.Hold.Amount), int64(res.Hold.Requested)
	}
	o.captured, o.released, o.uncollected = int64(res.Captured), int64(res.Released), int64(res.Uncollected)
	for _, c := range res.Consumed {
		o.consumed += fmt.Sprintf("%s:%d ", c.Lot, c.Amount)
	}
	for _, c := range res.Expired {
		o.lapsed += fmt.Sprintf("%s:%d ", c.Lot, c.Amount)
	}
	if cb := res.Clawback; cb != nil {
		o.clawLot, o.clawAsked, o.clawTaken = cb.Lot, int64(cb.Asked), int64(cb.Taken)
	}
	return o
}

// TestPropertyAgainstModel runs thousands of random op sequences with random
// clocks through the state machine and the reference model.
func TestPropertyAgainstModel(t *testing.T) {
	seqs, steps := 3000, 60
	if testing.Short() {
		seqs = 300
	}
	for seed := range seqs {
		if !runSequence(t, uint64(seed), steps) {
			return
		}
	}
}

func runSequence(t *testing.T, seed uint64, steps int) bool {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	m := &model{holds: map[string]*mHold{}, budgets: map[string]*mBudget{}}
	a := fb.NewAccount("cus_p")
	tch := NewTouched()
	if rng.IntN(3) == 0 {
		limit := int64(rng.IntN(20)) * fb.Micro
		m.odLimit, a.OverdraftLimit = limit, fb.Amount(limit)
	}
	now := t0
	var holdIDs []string
	var log []string
	amount := func(maxCredits int) fb.Amount {
		switch rng.IntN(4) {
		case 0:
			return fb.Amount(1 + rng.IntN(maxCredits)) // a few micro-credits
		case 1:
			return fb.Amount((1 + rng.IntN(maxCredits)) * fb.Micro) // whole credits
		}
		return fb.Amount(1 + rng.Int64N(int64(maxCredits)*fb.Micro))
	}
	for i := range steps {
		// Time moves by nothing, a little, or past expiries.
		switch rng.IntN(4) {
		case 0:
		case 1:
			now = now.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
		case 2:
			now = now.Add(time.Duration(rng.IntN(90)) * time.Second)
		case 3:
			now = now.Add(time.Duration(rng.IntN(600)) * time.Second)
		}
		op := fb.Op{Customer: a.Customer, At: now}
		switch k := rng.IntN(20); {
		case k < 4:
			op.Kind = fb.OpGrant
			op.LotID = fmt.Sprintf("lot_%03d", i)
			op.Amount = amount(50)
			op.Source = []fb.Source{fb.SourcePromo, fb.SourceSubscription, fb.SourcePurchase}[rng.IntN(3)]
			op.Priority = []int{0, 10, 20, 20, 5}[rng.IntN(5)]
			if rng.IntN(2) == 0 {
				op.ExpiresAt = now.Add(time.Duration(1+rng.IntN(900)) * time.Second)
			}
			if rng.IntN(5) == 0 {
				op.EffectiveAt = now.Add(time.Duration(rng.IntN(120)) * time.Second)
				if !op.ExpiresAt.IsZero() && !op.ExpiresAt.After(op.EffectiveAt) {
					op.ExpiresAt = op.EffectiveAt.Add(time.Second)
				}
			}
		case k < 10:
			op.Kind = fb.OpHold
			op.HoldID = fmt.Sprintf("hold_%03d", i)
			op.Amount = amount(40)
			if rng.IntN(8) == 0 {
				if avail := Available(a, now); avail > 0 {
					op.Amount = avail // exactly everything
				}
			}
			op.TTL = time.Duration(1+rng.IntN(300)) * time.Second
			if rng.IntN(6) == 0 {
				// A lease's hold: until a time, past a day.
				op.ExpiresAt = now.Add(time.Duration(rng.IntN(3*24*3600)-60) * time.Second)
			}
			op.Budget = budgetRef(rng)
			op.AllowPartial = rng.IntN(3) == 0
		case k < 17:
			op.Kind = fb.OpCapture
			if k >= 15 {
				op.Kind = fb.OpRelease
			}
			op.HoldID = "hold_none"
			if len(holdIDs) > 0 && rng.IntN(10) > 0 {
				op.HoldID = holdIDs[rng.IntN(len(holdIDs))]
			}
			if op.Kind == fb.OpCapture {
				switch rng.IntN(4) {
				case 0:
					op.Full = true
				case 1:
					op.Amount = 0
				default:
					op.Amount = amount(50)
				}
				op.AllowOverCapture = rng.IntN(2) == 0
			}
		case k == 18 && rng.IntN(2) == 0:
			op.Kind = fb.OpLease
			op.Lease = &fb.LeaseNote{ID: "lease_a", Pool: "p", Event: fb.LeaseStarted, Version: int64(i)}
		case k == 18:
			// A refund of one of the lots (or of none), its share of the
			// lot in all: up, the same again, or below one seen before.
			op.Kind = fb.OpClawback
			op.LotID = fmt.Sprintf("lot_%03d", rng.IntN(i+1))
			op.Amount = amount(60)
		case k == 19 && len(holdIDs) > 0:
			op.Kind = fb.OpExtend
			op.HoldID = holdIDs[rng.IntN(len(holdIDs))]
			op.ExpiresAt = now.Add(time.Duration(rng.IntN(600)-60) * time.Second)
		default:
			op.Kind = fb.OpDebit
			op.Amount = amount(30)
			op.AllowUncollected = rng.IntN(2) == 0
			op.Budget = budgetRef(rng)
		}
		log = append(log, fmt.Sprintf("%s at +%s amount=%s hold=%s full=%v partial=%v over=%v", op.Kind, now.Sub(t0), op.Amount, op.HoldID, op.Full, op.AllowPartial, op.AllowOverCapture))

		Advance(a, now, tch)
		res, err := Apply(a, &op, tch)
		m.advance(now)
		want := m.apply(&op)
		got := outcomeOf(res, err)
		if got.errType == fb.EInternal {
			t.Errorf("seed %d step %d: unexpected error %v\n%s", seed, i, err, lines(log))
			return false
		}
		if got != want {
			t.Errorf("seed %d step %d: %s\nmachine %+v\nmodel   %+v\n%s", seed, i, log[len(log)-1], got, want, lines(log))
			return false
		}
		if op.Kind == fb.OpHold && err == nil {
			holdIDs = append(holdIDs, op.HoldID)
		}
		if err := Check(a); err != nil {
			t.Errorf("seed %d step %d: invariant: %v\n%s", seed, i, err, lines(log))
			return false
		}
		if msg := compareModel(a, tch, m, now); msg != "" {
			t.Errorf("seed %d step %d: %s\n%s", seed, i, msg, lines(log))
			return false
		}
	}
	return true
}

// budgetRef is, one time in two, one of two budgets of random limits and
// periods (the same budget may come with another limit: the caller's).
func budgetRef(rng *rand.Rand) *fb.BudgetRef {
	if rng.IntN(2) == 0 {
		return nil
	}
	return &fb.BudgetRef{
		ID:     []string{"key:a", "campaign:b"}[rng.IntN(2)],
		Limit:  fb.Amount(rng.Int64N(60 * fb.Micro)),
		Period: []fb.BudgetPeriod{fb.BudgetDay, fb.BudgetMonth, fb.BudgetTotal}[rng.IntN(3)],
	}
}

func compareModel(a *fb.Account, tch *Touched, m *model, now time.Time) string {
	totals := [][3]any{
		{"debt", int64(a.Debt), m.debt},
		{"overdraft_reserved", int64(a.OverdraftReserved), m.odReserved},
		{"uncollected", int64(a.Uncollected), m.uncollected},
		{"granted", int64(a.Granted), m.granted},
		{"charged", int64(a.Charged), m.charged},
		{"expired", int64(a.Expired), m.expired},
		{"clawed_back", int64(a.ClawedBack), m.clawed},
		{"available", int64(Available(a, now)), m.available(now)},
		{"balance", int64(Unspent(a, now)), m.balance(now)},
	}
	for _, x := range totals {
		if x[1] != x[2] {
			return fmt.Sprintf("%s: machine %d, model %d", x[0], x[1], x[2])
		}
	}
	for _, ml := range m.lots {
		l, ok := tch.Lots[ml.id]
		if !ok {
			return "machine lost lot " + ml.id
		}
		if int64(l.Remaining) != ml.remaining || int64(l.Held) != ml.held || int64(l.Consumed) != ml.used || int64(l.Expired) != ml.lapse ||
			int64(l.ClawedBack) != ml.clawed || int64(l.Refunded) != ml.refunded {
			return fmt.Sprintf("lot %s: machine r=%d h=%d c=%d e=%d cb=%d rf=%d, model r=%d h=%d c=%d e=%d cb=%d rf=%d",
				ml.id, l.Remaining, l.Held, l.Consumed, l.Expired, l.ClawedBack, l.Refunded, ml.remaining, ml.held, ml.used, ml.lapse, ml.clawed, ml.refunded)
		}
	}
	var held int64
	pending := 0
	for _, h := range m.holds {
		if h.status == fb.HoldPending {
			held += h.amount
			pending++
		}
	}
	if int64(Held(a)) != held || len(a.Holds) != pending {
		return fmt.Sprintf("held: machine %s in %d holds, model %d in %d", Held(a), len(a.Holds), held, pending)
	}
	for id, mb := range m.budgets {
		b := a.Budgets[id]
		switch {
		case b == nil && mb.spent != 0:
			return "machine lost budget " + id
		case b != nil && (int64(b.Spent) != mb.spent || !b.Window.Equal(mb.window) || b.Epoch != mb.epoch):
			return fmt.Sprintf("budget %s: machine %s in %s, model %d in %s", id, b.Spent, b.Window, mb.spent, mb.window)
		}
	}
	return ""
}

func lines(log []string) string {
	if len(log) > 25 {
		log = log[len(log)-25:]
	}
	var s string
	for _, l := range log {
		s += "  " + l + "\n"
	}
	return s
}
