package ledger

import (
	"time"

	fb "farebox"
)

// Balance is an account as its owner sees it at a time: what it may spend,
// what holds reserve, its overdraft and debt, what went uncollected, and
// its live lots in consumption order. The API's balance and the
// dashboard's are both this.
type Balance struct {
	Customer       string
	Available      fb.Amount // never below 0
	Held           fb.Amount
	OverdraftLimit fb.Amount
	Debt           fb.Amount
	Uncollected    fb.Amount
	Lots           []*fb.Lot
}

// BalanceAt is a's balance at now: what has expired since its last write
// counts as expired already. It advances a (a copy read for the purpose).
func BalanceAt(a *fb.Account, now time.Time) Balance {
	SortLots(a.Lots)
	Advance(a, now, nil)
	return Balance{
		Customer: a.Customer, Available: max(Available(a, now), 0), Held: Held(a),
		OverdraftLimit: a.OverdraftLimit, Debt: a.Debt, Uncollected: a.Uncollected, Lots: a.Lots,
	}
}

// KeyBudget is what a key's budget leaves at a time: its limit and
// period, what remains of it (the limit less what the window's captures
// took and its pending holds reserve), and when it resets (zero for a
// total budget). The API's keys and /v1/account/balance, and the
// dashboard's keys, are all this.
type KeyBudget struct {
	Limit     fb.Amount
	Period    fb.BudgetPeriod
	Remaining fb.Amount
	ResetsAt  time.Time
}

// KeyBudgetOf is k's budget in a at now; false for a key without one.
func KeyBudgetOf(k fb.APIKey, a *fb.Account, now time.Time) (KeyBudget, bool) {
	ref := k.BudgetRef()
	if ref == nil {
		return KeyBudget{}, false
	}
	w := ref.Period.Window(now)
	var spent fb.Amount
	if bs := a.Budgets[ref.ID]; bs != nil && bs.Window.Equal(w) {
		spent = bs.Spent
	}
	return KeyBudget{Limit: ref.Limit, Period: ref.Period, Remaining: max(ref.Limit-spent, 0), ResetsAt: ref.Period.Next(w)}, true
}
