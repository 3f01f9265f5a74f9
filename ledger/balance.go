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
