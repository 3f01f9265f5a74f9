package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	fb "farebox"
)

// Report is the outcome of replaying a journal against stored state.
type Report struct {
	Entries  int
	Accounts int
	Lots     int
	Holds    int
	// LegacyOverCaptures counts captures above their hold journaled
	// without allow_over_capture, from before the flag was required:
	// replayed as they were applied (see Replay), not problems.
	LegacyOverCaptures int
	Problems           []string // empty when the stored state is exactly the replayed one
}

const maxProblems = 50

func (r *Report) problem(format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// Verify replays the store's journal from nothing, checking every recorded
// answer and every invariant on the way, and compares the outcome with
// every stored account, lot and hold. It reads one consistent snapshot, so
// it may run beside a live server.
func Verify(ctx context.Context, store fb.Store) (*Report, error) {
	rep := &Report{}
	accts := map[string]*fb.Account{}
	t := NewTouched()
	var lastSeq int64
	dump, err := store.Snapshot(ctx, func(e *fb.JournalEntry) error {
		rep.Entries++
		if e.Seq <= lastSeq {
			rep.problem("journal seq %d follows %d", e.Seq, lastSeq)
		}
		lastSeq = e.Seq
		a := accts[e.Op.Customer]
		if a == nil {
			a = fb.NewAccount(e.Op.Customer)
			accts[e.Op.Customer] = a
		}
		var got fb.Result
		if e.Op.Kind == fb.OpExpire {
			res, changed := Advance(a, e.Op.At, t)
			if !changed {
				rep.problem("journal %d: expire of %s changed nothing on replay", e.Seq, e.Op.Customer)
			}
			got = res
		} else {
			if fp := e.Op.Fingerprint(); fp != e.Fingerprint {
				rep.problem("journal %d: fingerprint %q, op says %q", e.Seq, e.Fingerprint, fp)
			}
			res, err := Replay(a, &e.Op, t)
			if err != nil {
				rep.problem("journal %d: %s of %s fails on replay: %v", e.Seq, e.Op.Kind, e.Op.Customer, err)
				return nil
			}
			got = res
			if e.Op.Kind == fb.OpCapture && !e.Op.AllowOverCapture && got.Hold != nil && got.Captured > got.Hold.Amount {
				rep.LegacyOverCaptures++
			}
		}
		if !sameJSON(got, e.Result) {
			rep.problem("journal %d: %s of %s answered %s, replay answers %s", e.Seq, e.Op.Kind, e.Op.Customer, mustJSON(e.Result), mustJSON(got))
		}
		if err := Check(a); err != nil {
			rep.problem("journal %d: invariant broken after replay: %v", e.Seq, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, p := range dump.Problems {
		rep.problem("%s", p)
	}
	// Replayed accounts keep every lot and hold they ever had in t.
	lots := map[string][]*fb.Lot{}
	for _, l := range t.Lots {
		lots[l.Customer] = append(lots[l.Customer], l)
	}
	holds := map[string]map[string]*fb.Hold{}
	for _, h := range t.Holds {
		if holds[h.Customer] == nil {
			holds[h.Customer] = map[string]*fb.Hold{}
		}
		holds[h.Customer][h.ID] = h
	}
	for c, stored := range dump.Accounts {
		rep.Accounts++
		want := accts[c]
		if want == nil {
			want = fb.NewAccount(c)
		}
		compareTotals(rep, c, stored, want)
		if !sameJSON(budgetsOf(stored), budgetsOf(want)) {
			rep.problem("account %s: stored budgets %s, replay gives %s", c, mustJSON(budgetsOf(stored)), mustJSON(budgetsOf(want)))
		}
		compareLots(rep, c, stored.Lots, lots[c])
		storedHolds := map[string]*fb.Hold{}
		for id, h := range stored.Holds {
			storedHolds[id] = h
		}
		for id, h := range stored.Closed {
			storedHolds[id] = h
		}
		compareHolds(rep, c, storedHolds, holds[c])
		rep.Lots += len(stored.Lots)
		rep.Holds += len(storedHolds)
		live := *stored
		live.Lots = slices.DeleteFunc(slices.Clone(stored.Lots), func(l *fb.Lot) bool { return !l.Live() })
		if err := Check(&live); err != nil {
			rep.problem("account %s: stored state breaks an invariant: %v", c, err)
		}
	}
	for c := range accts {
		if _, ok := dump.Accounts[c]; !ok {
			rep.problem("account %s is in the journal but not stored", c)
		}
	}
	return rep, nil
}

func compareTotals(rep *Report, c string, got, want *fb.Account) {
	type pair struct {
		name      string
		got, want fb.Amount
	}
	for _, p := range []pair{
		{"overdraft_limit", got.OverdraftLimit, want.OverdraftLimit},
		{"debt", got.Debt, want.Debt},
		{"overdraft_reserved", got.OverdraftReserved, want.OverdraftReserved},
		{"uncollected", got.Uncollected, want.Uncollected},
		{"granted", got.Granted, want.Granted},
		{"charged", got.Charged, want.Charged},
		{"expired", got.Expired, want.Expired},
		{"clawed_back", got.ClawedBack, want.ClawedBack},
	} {
		if p.got != p.want {
			rep.problem("account %s: stored %s %s, replay gives %s", c, p.name, p.got, p.want)
		}
	}
}

func compareLots(rep *Report, c string, stored, replayed []*fb.Lot) {
	byID := map[string]*fb.Lot{}
	for _, l := range replayed {
		byID[l.ID] = l
	}
	for _, l := range stored {
		w, ok := byID[l.ID]
		if !ok {
			rep.problem("account %s: stored lot %s is not in the journal", c, l.ID)
			continue
		}
		delete(byID, l.ID)
		if !sameJSON(l, w) {
			rep.problem("account %s: lot %s stored %s, replay gives %s", c, l.ID, mustJSON(l), mustJSON(w))
		}
	}
	for id := range byID {
		rep.problem("account %s: lot %s from the journal is not stored", c, id)
	}
}

func compareHolds(rep *Report, c string, stored, replayed map[string]*fb.Hold) {
	for id, h := range stored {
		w, ok := replayed[id]
		if !ok {
			rep.problem("account %s: stored hold %s is not in the journal", c, id)
			continue
		}
		if !sameJSON(h, w) {
			rep.problem("account %s: hold %s stored %s, replay gives %s", c, id, mustJSON(h), mustJSON(w))
		}
	}
	for id := range replayed {
		if _, ok := stored[id]; !ok {
			rep.problem("account %s: hold %s from the journal is not stored", c, id)
		}
	}
}

// budgetsOf lists an account's budgets by id, those with nothing spent left
// out (a window that moved on and one never used say the same).
func budgetsOf(a *fb.Account) []fb.BudgetState {
	var out []fb.BudgetState
	for _, b := range a.Budgets {
		if b.Spent != 0 {
			out = append(out, *b)
		}
	}
	slices.SortFunc(out, func(x, y fb.BudgetState) int { return strings.Compare(x.ID, y.ID) })
	return out
}

func sameJSON(a, b any) bool { return mustJSON(a) == mustJSON(b) }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(b)
}
