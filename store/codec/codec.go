// Package codec is the stored form of ledger state shared by every store:
// an account as one compact JSON document (integers and Unix nanoseconds),
// lots and holds likewise, and the Dumper that assembles a store's rows
// into a farebox.Dump while cross-checking its indexes. Stores keep their
// SQL; what they store and how it is checked is decided once, here.
package codec

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	fb "farebox"
)

// AccountState is the stored form of an account: integers and Unix
// nanoseconds, compact and exact.
type AccountState struct {
	OverdraftLimit    int64         `json:"ol,omitempty"`
	Debt              int64         `json:"d,omitempty"`
	OverdraftReserved int64         `json:"or,omitempty"`
	Uncollected       int64         `json:"u,omitempty"`
	Granted           int64         `json:"g,omitempty"`
	Charged           int64         `json:"c,omitempty"`
	Expired           int64         `json:"e,omitempty"`
	ClawedBack        int64         `json:"cb,omitempty"`
	Lots              []LotState    `json:"lots,omitempty"`
	Holds             []HoldState   `json:"holds,omitempty"`
	Budgets           []BudgetState `json:"budgets,omitempty"`
}

// BudgetState is the stored form of a budget's spending in its window.
type BudgetState struct {
	ID     string `json:"id"`
	Window int64  `json:"w,omitempty"`
	Epoch  int64  `json:"e"`
	Spent  int64  `json:"s"`
}

// LotState is the stored form of a lot.
type LotState struct {
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
	RolloverMax int64  `json:"rm,omitempty"`
	RollUntil   int64  `json:"ru,omitempty"`
	ClawedBack  int64  `json:"cb,omitempty"`
	Refunded    int64  `json:"rf,omitempty"`
}

// AllocState is the stored form of a hold's allocation on a lot.
type AllocState struct {
	Lot    string `json:"l"`
	Amount int64  `json:"a"`
}

// HoldState is the stored form of a hold.
type HoldState struct {
	ID          string       `json:"id"`
	Amount      int64        `json:"a"`
	Requested   int64        `json:"rq"`
	Allocations []AllocState `json:"al,omitempty"`
	Overdraft   int64        `json:"od,omitempty"`
	CreatedAt   int64        `json:"ca"`
	ExpiresAt   int64        `json:"xa"`
	Status      string       `json:"s"`
	ResolvedAt  int64        `json:"ra,omitempty"`
	Budget      string       `json:"b,omitempty"`
	BudgetEpoch int64        `json:"be,omitempty"`
	Resolution  string       `json:"res,omitempty"`
	Result      *fb.Result   `json:"result,omitempty"`
}

// EncodeAccount returns the stored form of a's totals, live lots and
// pending holds.
func EncodeAccount(a *fb.Account) ([]byte, error) {
	st := AccountState{
		OverdraftLimit: int64(a.OverdraftLimit), Debt: int64(a.Debt), OverdraftReserved: int64(a.OverdraftReserved),
		Uncollected: int64(a.Uncollected), Granted: int64(a.Granted), Charged: int64(a.Charged), Expired: int64(a.Expired),
		ClawedBack: int64(a.ClawedBack),
		Lots:       make([]LotState, 0, len(a.Lots)), Holds: make([]HoldState, 0, len(a.Holds)),
	}
	for _, l := range a.Lots {
		st.Lots = append(st.Lots, LotToState(l))
	}
	for _, h := range a.Holds {
		st.Holds = append(st.Holds, HoldToState(h))
	}
	ids := make([]string, 0, len(a.Budgets))
	for id := range a.Budgets {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		b := a.Budgets[id]
		st.Budgets = append(st.Budgets, BudgetState{ID: b.ID, Window: Nanos(b.Window), Epoch: b.Epoch, Spent: int64(b.Spent)})
	}
	return json.Marshal(&st)
}

// DecodeAccount reads what EncodeAccount wrote.
func DecodeAccount(customer string, b []byte) (*fb.Account, error) {
	var st AccountState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	a := fb.NewAccount(customer)
	a.OverdraftLimit, a.Debt, a.OverdraftReserved = fb.Amount(st.OverdraftLimit), fb.Amount(st.Debt), fb.Amount(st.OverdraftReserved)
	a.Uncollected, a.Granted, a.Charged, a.Expired = fb.Amount(st.Uncollected), fb.Amount(st.Granted), fb.Amount(st.Charged), fb.Amount(st.Expired)
	a.ClawedBack = fb.Amount(st.ClawedBack)
	a.Lots = make([]*fb.Lot, 0, len(st.Lots))
	for i := range st.Lots {
		a.Lots = append(a.Lots, LotFromState(customer, &st.Lots[i]))
	}
	for i := range st.Holds {
		h := HoldFromState(customer, &st.Holds[i])
		a.Holds[h.ID] = h
	}
	for _, b := range st.Budgets {
		a.Budgets[b.ID] = &fb.BudgetState{ID: b.ID, Window: FromNanos(b.Window), Epoch: b.Epoch, Spent: fb.Amount(b.Spent)}
	}
	return a, nil
}

// LotToState returns the stored form of a lot.
func LotToState(l *fb.Lot) LotState {
	return LotState{
		ID: l.ID, Source: string(l.Source), Priority: l.Priority, Amount: int64(l.Amount), Remaining: int64(l.Remaining),
		Held: int64(l.Held), Consumed: int64(l.Consumed), Expired: int64(l.Expired), EffectiveAt: Nanos(l.EffectiveAt),
		ExpiresAt: Nanos(l.ExpiresAt), PaidUSD: int64(l.PaidUSD), CreatedAt: Nanos(l.CreatedAt),
		RolloverMax: int64(l.RolloverMax), RollUntil: Nanos(l.RolloverUntil),
		ClawedBack: int64(l.ClawedBack), Refunded: int64(l.Refunded),
	}
}

// LotFromState reads a stored lot of customer.
func LotFromState(customer string, s *LotState) *fb.Lot {
	return &fb.Lot{
		ID: s.ID, Customer: customer, Source: fb.Source(s.Source), Priority: s.Priority, Amount: fb.Amount(s.Amount),
		Remaining: fb.Amount(s.Remaining), Held: fb.Amount(s.Held), Consumed: fb.Amount(s.Consumed), Expired: fb.Amount(s.Expired),
		EffectiveAt: FromNanos(s.EffectiveAt), ExpiresAt: FromNanos(s.ExpiresAt), PaidUSD: fb.USD(s.PaidUSD), CreatedAt: FromNanos(s.CreatedAt),
		RolloverMax: fb.Amount(s.RolloverMax), RolloverUntil: FromNanos(s.RollUntil),
		ClawedBack: fb.Amount(s.ClawedBack), Refunded: fb.Amount(s.Refunded),
	}
}

// HoldToState returns the stored form of a hold.
func HoldToState(h *fb.Hold) HoldState {
	s := HoldState{
		ID: h.ID, Amount: int64(h.Amount), Requested: int64(h.Requested), Overdraft: int64(h.Overdraft),
		CreatedAt: Nanos(h.CreatedAt), ExpiresAt: Nanos(h.ExpiresAt), Status: string(h.Status), ResolvedAt: Nanos(h.ResolvedAt),
		Budget: h.Budget, BudgetEpoch: h.BudgetEpoch, Resolution: h.Resolution, Result: h.Result,
	}
	for _, al := range h.Allocations {
		s.Allocations = append(s.Allocations, AllocState{Lot: al.Lot, Amount: int64(al.Amount)})
	}
	return s
}

// HoldFromState reads a stored hold of customer.
func HoldFromState(customer string, s *HoldState) *fb.Hold {
	h := &fb.Hold{
		ID: s.ID, Customer: customer, Amount: fb.Amount(s.Amount), Requested: fb.Amount(s.Requested), Overdraft: fb.Amount(s.Overdraft),
		CreatedAt: FromNanos(s.CreatedAt), ExpiresAt: FromNanos(s.ExpiresAt), Status: fb.HoldStatus(s.Status),
		ResolvedAt: FromNanos(s.ResolvedAt), Budget: s.Budget, BudgetEpoch: s.BudgetEpoch, Resolution: s.Resolution, Result: s.Result,
	}
	for _, al := range s.Allocations {
		h.Allocations = append(h.Allocations, fb.Allocation{Lot: al.Lot, Amount: fb.Amount(al.Amount)})
	}
	return h
}

// Nanos is t in Unix nanoseconds, 0 for the zero time.
func Nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// FromNanos reads what Nanos wrote, in UTC.
func FromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// DecodeEntry reads a journal row's op and result into e.
func DecodeEntry(e *fb.JournalEntry, op, res string) error {
	if err := json.Unmarshal([]byte(op), &e.Op); err != nil {
		return fmt.Errorf("journal %d: op: %w", e.Seq, err)
	}
	if err := json.Unmarshal([]byte(res), &e.Result); err != nil {
		return fmt.Errorf("journal %d: result: %w", e.Seq, err)
	}
	return nil
}

// EncodeEntry returns the stored form of a journal entry's op and result.
func EncodeEntry(e *fb.JournalEntry) (op, res []byte, err error) {
	if op, err = json.Marshal(&e.Op); err != nil {
		return nil, nil, err
	}
	if res, err = json.Marshal(&e.Result); err != nil {
		return nil, nil, err
	}
	return op, res, nil
}

// DecodeHold reads a stored hold of customer.
func DecodeHold(customer string, b []byte) (*fb.Hold, error) {
	var hs HoldState
	if err := json.Unmarshal(b, &hs); err != nil {
		return nil, fmt.Errorf("hold of %s: %w", customer, err)
	}
	return HoldFromState(customer, &hs), nil
}

// Marshal encodes a stored form (LotState, HoldState) as JSON.
func Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Kind is the stored kind of an account: a customer unless it says
// otherwise.
func Kind(k fb.CustomerKind) fb.CustomerKind {
	if k == "" {
		return fb.KindCustomer
	}
	return k
}

// UsageColumns lists the columns of a usage row, in the order UsageValues
// gives their values.
const UsageColumns = "id, source, customer, model, provider, at, day, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, images, audio_us, video_us, gpu_us, requests, credits, cost_usd, key_id, deployment, latency_us, ttft_us, status, revenue_usd, uncollected, product, plan, cache_write_tokens, requested_model, topic, score"

// UsagePlaceholders are the VALUES placeholders of UsageColumns: ? each, or
// $1, $2, … when dollar (PostgreSQL).
func UsagePlaceholders(dollar bool) string {
	n := strings.Count(UsageColumns, ",") + 1
	ps := make([]string, n)
	for i := range ps {
		ps[i] = "?"
		if dollar {
			ps[i] = "$" + strconv.Itoa(i+1)
		}
	}
	return strings.Join(ps, ",")
}

// UsageValues returns a usage row's column values; day is the UTC date of
// its time, so every engine groups days the same way.
func UsageValues(u *fb.Usage) []any {
	q := u.Quantities
	return []any{u.ID, u.Source, u.Customer, u.Model, u.Provider, Nanos(u.At), u.At.UTC().Format(time.DateOnly),
		q.InputTokens, q.OutputTokens, q.CachedInputTokens, q.ReasoningTokens, q.Images, q.AudioMicros, q.VideoMicros, q.GPUMicros, q.Requests,
		int64(u.Credits), int64(u.CostUSD), u.KeyID, u.Deployment, u.Latency.Microseconds(), u.TTFT.Microseconds(), u.Status,
		int64(u.RevenueUSD), int64(u.Uncollected), u.Product, u.Plan, q.CacheWriteTokens, u.RequestedModel, u.Topic, u.Score}
}

// Daily is one row of the daily sums (usage_daily), as an increment.
type Daily struct {
	Day, Customer, Model, Provider  string
	Product, Plan                   string
	Requests                        int64
	Credits, Uncollected, BrCredits fb.Amount
	Revenue, Cost, BrUSD            fb.USD
}

// DailyUpsert adds a Daily to its row; placeholders are ? (the driver
// rewrites them).
const DailyUpsert = `INSERT INTO usage_daily (day, customer, model, provider, product, plan, requests, credits, revenue_usd, cost_usd, uncollected, breakage_credits, breakage_usd)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT (day, customer, model, provider, product, plan) DO UPDATE SET
 requests = usage_daily.requests + excluded.requests, credits = usage_daily.credits + excluded.credits,
 revenue_usd = usage_daily.revenue_usd + excluded.revenue_usd, cost_usd = usage_daily.cost_usd + excluded.cost_usd,
 uncollected = usage_daily.uncollected + excluded.uncollected,
 breakage_credits = usage_daily.breakage_credits + excluded.breakage_credits, breakage_usd = usage_daily.breakage_usd + excluded.breakage_usd`

// Values are the DailyUpsert arguments.
func (d *Daily) Values() []any {
	return []any{d.Day, d.Customer, d.Model, d.Provider, d.Product, d.Plan, d.Requests, int64(d.Credits), int64(d.Revenue), int64(d.Cost),
		int64(d.Uncollected), int64(d.BrCredits), int64(d.BrUSD)}
}

// DailyOfUsage sums usage rows into daily increments, sorted by key so
// that concurrent transactions take row locks in one order.
func DailyOfUsage(rows []*fb.Usage) []*Daily {
	m := map[dailyKey]*Daily{}
	for _, u := range rows {
		k := dailyKey{u.At.UTC().Format(time.DateOnly), u.Customer, u.Model, u.Provider, u.Product, u.Plan}
		d := m[k]
		if d == nil {
			d = &Daily{Day: k.day, Customer: k.customer, Model: k.model, Provider: k.provider, Product: k.product, Plan: k.plan}
			m[k] = d
		}
		d.Requests++
		d.Credits += u.Credits
		d.Revenue += u.RevenueUSD
		d.Cost += u.CostUSD
		d.Uncollected += u.Uncollected
	}
	return sortDaily(m)
}

// DailyOfBreakage sums breakage into daily increments (model and provider
// ""), sorted.
func DailyOfBreakage(bs []fb.Breakage) []*Daily {
	m := map[dailyKey]*Daily{}
	for _, b := range bs {
		k := dailyKey{day: b.At.UTC().Format(time.DateOnly), customer: b.Customer}
		d := m[k]
		if d == nil {
			d = &Daily{Day: k.day, Customer: k.customer}
			m[k] = d
		}
		d.BrCredits += b.Credits
		d.BrUSD += b.USD
	}
	return sortDaily(m)
}

// DailyOfRevenue sums the revenue of ops without a usage row into daily
// increments (model and provider "", no requests), sorted.
func DailyOfRevenue(rs []fb.Revenue) []*Daily {
	m := map[dailyKey]*Daily{}
	for _, r := range rs {
		k := dailyKey{day: r.At.UTC().Format(time.DateOnly), customer: r.Customer}
		d := m[k]
		if d == nil {
			d = &Daily{Day: k.day, Customer: k.customer}
			m[k] = d
		}
		d.Credits += r.Credits
		d.Revenue += r.USD
		d.Uncollected += r.Uncollected
	}
	return sortDaily(m)
}

// dailyKey is a row of the daily sums.
type dailyKey struct{ day, customer, model, provider, product, plan string }

func sortDaily(m map[dailyKey]*Daily) []*Daily {
	out := make([]*Daily, 0, len(m))
	for _, d := range m {
		out = append(out, d)
	}
	// By the key's columns in order (what joining them with NULs and
	// comparing would give, without a string per comparison).
	slices.SortFunc(out, func(a, b *Daily) int {
		return cmp.Or(strings.Compare(a.Day, b.Day), strings.Compare(a.Customer, b.Customer), strings.Compare(a.Model, b.Model),
			strings.Compare(a.Provider, b.Provider), strings.Compare(a.Product, b.Product), strings.Compare(a.Plan, b.Plan))
	})
	return out
}
