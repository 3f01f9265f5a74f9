package sqlite

import (
	"encoding/json"
	"time"

	fb "farebox"
)

// accountState is the stored form of an account: integers and Unix
// nanoseconds, compact and exact.
type accountState struct {
	OverdraftLimit    int64       `json:"ol,omitempty"`
	Debt              int64       `json:"d,omitempty"`
	OverdraftReserved int64       `json:"or,omitempty"`
	Uncollected       int64       `json:"u,omitempty"`
	Granted           int64       `json:"g,omitempty"`
	Charged           int64       `json:"c,omitempty"`
	Expired           int64       `json:"e,omitempty"`
	Lots              []lotState  `json:"lots,omitempty"`
	Holds             []holdState `json:"holds,omitempty"`
}

type lotState struct {
	ID          string `json:"id"`
	Source      string `json:"src"`
	Priority    int    `json:"p"`
	Amount      int64  `json:"a"`
	Remaining   int64  `json:"r"`
	Held        int64  `json:"h,omitempty"`
	Consumed    int64  `json:"c,omitempty"`
	Expired     int64  `json:"e,omitempty"`
	EffectiveAt int64  `json:"ea"`
	ExpiresAt   int64  `json:"xa,omitempty"`
	PaidUSD     int64  `json:"paid,omitempty"`
	CreatedAt   int64  `json:"ca"`
}

type allocState struct {
	Lot    string `json:"l"`
	Amount int64  `json:"a"`
}

type holdState struct {
	ID          string       `json:"id"`
	Amount      int64        `json:"a"`
	Requested   int64        `json:"rq"`
	Allocations []allocState `json:"al,omitempty"`
	Overdraft   int64        `json:"od,omitempty"`
	CreatedAt   int64        `json:"ca"`
	ExpiresAt   int64        `json:"xa"`
	Status      string       `json:"s"`
	ResolvedAt  int64        `json:"ra,omitempty"`
	Resolution  string       `json:"res,omitempty"`
	Result      *fb.Result   `json:"result,omitempty"`
}

func encodeAccount(a *fb.Account) ([]byte, error) {
	st := accountState{
		OverdraftLimit: int64(a.OverdraftLimit), Debt: int64(a.Debt), OverdraftReserved: int64(a.OverdraftReserved),
		Uncollected: int64(a.Uncollected), Granted: int64(a.Granted), Charged: int64(a.Charged), Expired: int64(a.Expired),
		Lots: make([]lotState, 0, len(a.Lots)), Holds: make([]holdState, 0, len(a.Holds)),
	}
	for _, l := range a.Lots {
		st.Lots = append(st.Lots, lotToState(l))
	}
	for _, h := range a.Holds {
		st.Holds = append(st.Holds, holdToState(h))
	}
	return json.Marshal(&st)
}

func decodeAccount(customer string, b []byte) (*fb.Account, error) {
	var st accountState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	a := fb.NewAccount(customer)
	a.OverdraftLimit, a.Debt, a.OverdraftReserved = fb.Amount(st.OverdraftLimit), fb.Amount(st.Debt), fb.Amount(st.OverdraftReserved)
	a.Uncollected, a.Granted, a.Charged, a.Expired = fb.Amount(st.Uncollected), fb.Amount(st.Granted), fb.Amount(st.Charged), fb.Amount(st.Expired)
	a.Lots = make([]*fb.Lot, 0, len(st.Lots))
	for i := range st.Lots {
		a.Lots = append(a.Lots, lotFromState(customer, &st.Lots[i]))
	}
	for i := range st.Holds {
		h := holdFromState(customer, &st.Holds[i])
		a.Holds[h.ID] = h
	}
	return a, nil
}

func lotToState(l *fb.Lot) lotState {
	return lotState{
		ID: l.ID, Source: string(l.Source), Priority: l.Priority, Amount: int64(l.Amount), Remaining: int64(l.Remaining),
		Held: int64(l.Held), Consumed: int64(l.Consumed), Expired: int64(l.Expired), EffectiveAt: nanos(l.EffectiveAt),
		ExpiresAt: nanos(l.ExpiresAt), PaidUSD: int64(l.PaidUSD), CreatedAt: nanos(l.CreatedAt),
	}
}

func lotFromState(customer string, s *lotState) *fb.Lot {
	return &fb.Lot{
		ID: s.ID, Customer: customer, Source: fb.Source(s.Source), Priority: s.Priority, Amount: fb.Amount(s.Amount),
		Remaining: fb.Amount(s.Remaining), Held: fb.Amount(s.Held), Consumed: fb.Amount(s.Consumed), Expired: fb.Amount(s.Expired),
		EffectiveAt: fromNanos(s.EffectiveAt), ExpiresAt: fromNanos(s.ExpiresAt), PaidUSD: fb.USD(s.PaidUSD), CreatedAt: fromNanos(s.CreatedAt),
	}
}

func holdToState(h *fb.Hold) holdState {
	s := holdState{
		ID: h.ID, Amount: int64(h.Amount), Requested: int64(h.Requested), Overdraft: int64(h.Overdraft),
		CreatedAt: nanos(h.CreatedAt), ExpiresAt: nanos(h.ExpiresAt), Status: string(h.Status), ResolvedAt: nanos(h.ResolvedAt),
		Resolution: h.Resolution, Result: h.Result,
	}
	for _, al := range h.Allocations {
		s.Allocations = append(s.Allocations, allocState{Lot: al.Lot, Amount: int64(al.Amount)})
	}
	return s
}

func holdFromState(customer string, s *holdState) *fb.Hold {
	h := &fb.Hold{
		ID: s.ID, Customer: customer, Amount: fb.Amount(s.Amount), Requested: fb.Amount(s.Requested), Overdraft: fb.Amount(s.Overdraft),
		CreatedAt: fromNanos(s.CreatedAt), ExpiresAt: fromNanos(s.ExpiresAt), Status: fb.HoldStatus(s.Status),
		ResolvedAt: fromNanos(s.ResolvedAt), Resolution: s.Resolution, Result: s.Result,
	}
	for _, al := range s.Allocations {
		h.Allocations = append(h.Allocations, fb.Allocation{Lot: al.Lot, Amount: fb.Amount(al.Amount)})
	}
	return h
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
