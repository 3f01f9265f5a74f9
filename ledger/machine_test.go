package ledger

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	fb "farebox"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func cr(s string) fb.Amount {
	a, err := fb.ParseAmount(s)
	if err != nil {
		panic(err)
	}
	return a
}

func usd(s string) fb.USD {
	u, err := fb.ParseUSD(s)
	if err != nil {
		panic(err)
	}
	return u
}

// acct drives the pure state machine the way the engine does: advance the
// account to the op's time, apply, check the invariants.
type acct struct {
	t   *testing.T
	a   *fb.Account
	tch *Touched
	n   int
}

func newAcct(t *testing.T) *acct {
	return &acct{t: t, a: fb.NewAccount("cus_1"), tch: NewTouched()}
}

func (x *acct) do(op fb.Op) (fb.Result, error) {
	x.t.Helper()
	op.Customer = x.a.Customer
	if op.At.IsZero() {
		op.At = t0
	}
	x.n++
	switch op.Kind {
	case fb.OpGrant:
		if op.LotID == "" {
			op.LotID = fmt.Sprintf("lot_%03d", x.n)
		}
	case fb.OpHold:
		if op.HoldID == "" {
			op.HoldID = fmt.Sprintf("hold_%03d", x.n)
		}
	}
	Advance(x.a, op.At, x.tch)
	before := snapshot(x.a)
	res, err := Apply(x.a, &op, x.tch)
	if err != nil && snapshot(x.a) != before {
		x.t.Fatalf("%s failed with %v but changed the account:\nbefore %s\nafter  %s", op.Kind, err, before, snapshot(x.a))
	}
	if cerr := Check(x.a); cerr != nil {
		x.t.Fatalf("invariant broken after %s: %v", op.Kind, cerr)
	}
	return res, err
}

func (x *acct) ok(op fb.Op) fb.Result {
	x.t.Helper()
	res, err := x.do(op)
	if err != nil {
		x.t.Fatalf("%s: %v", op.Kind, err)
	}
	return res
}

func (x *acct) fails(op fb.Op, typ, code string) {
	x.t.Helper()
	_, err := x.do(op)
	if err == nil {
		x.t.Fatalf("%s succeeded, want %s", op.Kind, code)
	}
	if fb.ErrorType(err) != typ || fb.ErrorCode(err) != code {
		x.t.Fatalf("%s: error %v (type %s code %s), want type %s code %s", op.Kind, err, fb.ErrorType(err), fb.ErrorCode(err), typ, code)
	}
}

func (x *acct) available(at time.Time) fb.Amount { return Available(x.a, at) }

func (x *acct) lot(id string) *fb.Lot {
	x.t.Helper()
	l, ok := x.tch.Lots[id]
	if !ok {
		x.t.Fatalf("no lot %s", id)
	}
	return l
}

func snapshot(a *fb.Account) string {
	var b strings.Builder
	fmt.Fprintf(&b, "od=%d debt=%d odr=%d unc=%d gr=%d ch=%d ex=%d", a.OverdraftLimit, a.Debt, a.OverdraftReserved, a.Uncollected, a.Granted, a.Charged, a.Expired)
	for _, l := range a.Lots {
		fmt.Fprintf(&b, " lot %s r=%d h=%d c=%d e=%d", l.ID, l.Remaining, l.Held, l.Consumed, l.Expired)
	}
	fmt.Fprintf(&b, " holds=%d", len(a.Holds))
	return b.String()
}

func grantOp(amount string, src fb.Source, prio int, expires time.Time, paid string) fb.Op {
	return fb.Op{Kind: fb.OpGrant, Amount: cr(amount), Source: src, Priority: prio, ExpiresAt: expires, PaidUSD: usd(paid)}
}

func holdOp(amount string, ttl time.Duration, partial bool, at time.Time) fb.Op {
	return fb.Op{Kind: fb.OpHold, Amount: cr(amount), TTL: ttl, AllowPartial: partial, At: at}
}

// TestWorkedExample is the example of ARCHITECTURE.md, step by step.
func TestWorkedExample(t *testing.T) {
	x := newAcct(t)
	dec1 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	dec31 := time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)
	p := x.ok(grantOp("10", fb.SourcePromo, 0, dec1, "0")).Lot
	s := x.ok(grantOp("2000", fb.SourceSubscription, 10, dec31, "20")).Lot // $0.01 a credit

	// 1. Hold 25 → P.held 10, S.held 15; available 1985.
	h := x.ok(holdOp("25", 60*time.Second, false, t0)).Hold
	if x.lot(p.ID).Held != cr("10") || x.lot(s.ID).Held != cr("15") || x.available(t0) != cr("1985") {
		t.Fatalf("after hold: %s", snapshot(x.a))
	}
	// 2. Capture 12 → P consumes 10, S consumes 2, S releases 13; available 1998.
	capture := fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Amount: cr("12"), At: t0.Add(time.Second), Key: "cap"}
	res := x.ok(capture)
	want := []fb.Consumption{{Lot: p.ID, Amount: cr("10")}, {Lot: s.ID, Amount: cr("2"), USD: 20_000}} // $0.02 recognised
	if fmt.Sprint(res.Consumed) != fmt.Sprint(want) || res.Captured != cr("12") || res.Released != cr("13") {
		t.Fatalf("capture: %+v", res)
	}
	if x.available(t0) != cr("1998") || x.lot(p.ID).Remaining != 0 || x.lot(s.ID).Remaining != cr("1998") {
		t.Fatalf("after capture: %s", snapshot(x.a))
	}
	// The request's revenue: each consumed credit at its lot's cost basis.
	var revenue fb.USD
	for _, c := range res.Consumed {
		l := x.lot(c.Lot)
		v, err := fb.MulDiv(int64(c.Amount), int64(l.PaidUSD), int64(l.Amount))
		if err != nil {
			t.Fatal(err)
		}
		revenue += fb.USD(v)
	}
	if revenue != usd("0.02") {
		t.Fatalf("revenue %s, want 0.02", revenue)
	}
	// Replaying the capture answers the same; another amount → 409.
	again := x.ok(capture)
	if fmt.Sprint(again) != fmt.Sprint(res) {
		t.Fatalf("replayed capture %+v, first %+v", again, res)
	}
	x.fails(fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Amount: cr("13"), At: t0.Add(time.Second)}, fb.EConflict, "hold_resolved")

	// 3. Hold 5000 → 402; with allow_partial → held 1998, available 0.
	at := t0.Add(2 * time.Second)
	x.fails(holdOp("5000", 60*time.Second, false, at), fb.EInsufficientCredits, fb.EInsufficientCredits)
	ph := x.ok(holdOp("5000", 60*time.Second, true, at)).Hold
	if ph.Amount != cr("1998") || ph.Requested != cr("5000") || x.available(at) != 0 {
		t.Fatalf("partial hold %+v, available %s", ph, x.available(at))
	}
	// 4. The TTL passes → released by itself; available 1998 again.
	at = at.Add(60 * time.Second)
	if _, changed := Advance(x.a, at, x.tch); !changed {
		t.Fatal("hold did not expire")
	}
	if x.available(at) != cr("1998") || len(x.a.Holds) != 0 || x.a.Closed[ph.ID].Status != fb.HoldExpired {
		t.Fatalf("after TTL: %s", snapshot(x.a))
	}
	x.fails(fb.Op{Kind: fb.OpCapture, HoldID: ph.ID, Full: true, At: at}, fb.EConflict, "hold_expired")
	// 5. Dec 31 passes → S's remaining 1998 moves to breakage.
	res, changed := Advance(x.a, dec31, x.tch)
	if !changed || x.lot(s.ID).Expired != cr("1998") || x.a.Expired != cr("1998") || x.available(dec31) != 0 {
		t.Fatalf("after Dec 31: %+v %s", res, snapshot(x.a))
	}
	if len(x.a.Lots) != 0 {
		t.Fatalf("dead lots still live: %s", snapshot(x.a))
	}
	breakage, _ := fb.MulDiv(int64(x.lot(s.ID).Expired), int64(x.lot(s.ID).PaidUSD), int64(x.lot(s.ID).Amount))
	if fb.USD(breakage) != usd("19.98") {
		t.Fatalf("breakage $%s", fb.USD(breakage))
	}
	if err := Check(x.a); err != nil {
		t.Fatal(err)
	}
}

func TestConsumptionOrder(t *testing.T) {
	x := newAcct(t)
	in := func(d time.Duration) time.Time { return t0.Add(d) }
	// Granted out of order; consumed by priority, earliest expiry (never
	// last), then oldest.
	never := x.ok(fb.Op{Kind: fb.OpGrant, Amount: cr("1"), Source: fb.SourcePurchase, Priority: 20}).Lot
	late := x.ok(fb.Op{Kind: fb.OpGrant, Amount: cr("1"), Source: fb.SourcePurchase, Priority: 20, ExpiresAt: in(48 * time.Hour)}).Lot
	soon := x.ok(fb.Op{Kind: fb.OpGrant, Amount: cr("1"), Source: fb.SourcePurchase, Priority: 20, ExpiresAt: in(24 * time.Hour)}).Lot
	promo := x.ok(fb.Op{Kind: fb.OpGrant, Amount: cr("1"), Source: fb.SourcePromo, Priority: 0, At: in(time.Second)}).Lot
	neverNewer := x.ok(fb.Op{Kind: fb.OpGrant, Amount: cr("1"), Source: fb.SourcePurchase, Priority: 20, At: in(2 * time.Second)}).Lot
	res := x.ok(fb.Op{Kind: fb.OpDebit, Amount: cr("5"), At: in(3 * time.Second)})
	var got []string
	for _, c := range res.Consumed {
		got = append(got, c.Lot)
	}
	want := []string{promo.ID, soon.ID, late.ID, never.ID, neverNewer.ID}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("consumed %v, want %v", got, want)
	}
}

func TestGrant(t *testing.T) {
	x := newAcct(t)
	future := t0.Add(time.Hour)
	x.fails(fb.Op{Kind: fb.OpGrant, Amount: 0, Source: fb.SourcePurchase}, fb.EInvalid, fb.EInvalid)
	x.fails(fb.Op{Kind: fb.OpGrant, Amount: -1, Source: fb.SourcePurchase}, fb.EInvalid, fb.EInvalid)
	x.fails(fb.Op{Kind: fb.OpGrant, Amount: fb.MaxTotal + 1, Source: fb.SourcePurchase}, fb.EInvalid, fb.EInvalid)
	x.fails(fb.Op{Kind: fb.OpGrant, Amount: 1, Source: "gift"}, fb.EInvalid, fb.EInvalid)
	x.fails(fb.Op{Kind: fb.OpGrant, Amount: 1, Source: fb.SourcePurchase, PaidUSD: -1}, fb.EInvalid, fb.EInvalid)
	x.fails(fb.Op{Kind: fb.OpGrant, Amount: 1, Source: fb.SourcePurchase, Priority: 1001}, fb.EInvalid, fb.EInvalid)
	x.fails(fb.Op{Kind: fb.OpGrant, Amount: 1, Source: fb.SourcePurchase, ExpiresAt: t0}, fb.EInvalid, fb.EInvalid)
	x.fails(fb.Op{Kind: fb.OpGrant, Amount: 1, Source: fb.SourcePurchase, EffectiveAt: future, ExpiresAt: future}, fb.EInvalid, fb.EInvalid)

	// The account total is bounded so no sum can overflow.
	x.ok(fb.Op{Kind: fb.OpGrant, Amount: fb.MaxTotal, Source: fb.SourcePurchase})
	x.fails(fb.Op{Kind: fb.OpGrant, Amount: 1, Source: fb.SourcePurchase}, fb.EInvalid, fb.EInvalid)

	// A future lot is not usable before it is effective.
	y := newAcct(t)
	y.ok(fb.Op{Kind: fb.OpGrant, Amount: cr("5"), Source: fb.SourcePurchase, EffectiveAt: future, ExpiresAt: future.Add(time.Hour)})
	if y.available(t0) != 0 || y.available(future) != cr("5") {
		t.Fatalf("future lot available %s now, %s later", y.available(t0), y.available(future))
	}
	y.fails(holdOp("1", time.Minute, false, t0), fb.EInsufficientCredits, fb.EInsufficientCredits)
	y.ok(holdOp("5", time.Minute, false, future))
}

func TestHold(t *testing.T) {
	x := newAcct(t)
	x.fails(holdOp("1", time.Minute, false, t0), fb.EInsufficientCredits, fb.EInsufficientCredits)
	x.fails(holdOp("1", time.Minute, true, t0), fb.EInsufficientCredits, fb.EInsufficientCredits) // nothing at all
	x.ok(grantOp("10", fb.SourcePurchase, 20, time.Time{}, "10"))
	x.fails(holdOp("0", time.Minute, false, t0), fb.EInvalid, fb.EInvalid)
	x.fails(holdOp("1", 0, false, t0), fb.EInvalid, fb.EInvalid)
	x.fails(holdOp("1", MaxHoldTTL+time.Second, false, t0), fb.EInvalid, fb.EInvalid)
	h := x.ok(holdOp("10", time.Minute, false, t0)).Hold // exactly everything
	if h.Amount != cr("10") || h.Status != fb.HoldPending || !h.ExpiresAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("hold %+v", h)
	}
	x.fails(holdOp("0.000001", time.Minute, false, t0), fb.EInsufficientCredits, fb.EInsufficientCredits)
	if Held(x.a) != cr("10") || x.available(t0) != 0 {
		t.Fatalf("held %s available %s", Held(x.a), x.available(t0))
	}
}

func TestOverdraft(t *testing.T) {
	x := newAcct(t)
	x.a.OverdraftLimit = cr("5")
	x.ok(grantOp("3", fb.SourcePurchase, 20, time.Time{}, "3"))
	if x.available(t0) != cr("8") {
		t.Fatalf("available %s", x.available(t0))
	}
	h := x.ok(holdOp("7", time.Minute, false, t0)).Hold // 3 from the lot, 4 on overdraft
	if x.a.OverdraftReserved != cr("4") {
		t.Fatalf("%s", snapshot(x.a))
	}
	res := x.ok(fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Amount: cr("6")})
	if x.a.Debt != cr("3") || x.a.OverdraftReserved != 0 || res.Released != cr("1") {
		t.Fatalf("after capture %+v: %s", res, snapshot(x.a))
	}
	// A new lot repays the debt first.
	l := x.ok(grantOp("10", fb.SourcePurchase, 20, time.Time{}, "10")).Lot
	if x.a.Debt != 0 || l.Remaining != cr("7") || l.Consumed != cr("3") {
		t.Fatalf("after repaying grant: %+v %s", l, snapshot(x.a))
	}
}

func TestCapture(t *testing.T) {
	setup := func(t *testing.T) (*acct, *fb.HoldView) {
		x := newAcct(t)
		x.ok(grantOp("10", fb.SourcePurchase, 20, time.Time{}, "10"))
		return x, x.ok(holdOp("4", time.Minute, false, t0)).Hold
	}
	t.Run("less than held", func(t *testing.T) {
		x, h := setup(t)
		res := x.ok(fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Amount: cr("1.5")})
		if res.Captured != cr("1.5") || res.Released != cr("2.5") || res.Hold.Status != fb.HoldCaptured || x.available(t0) != cr("8.5") {
			t.Fatalf("%+v %s", res, snapshot(x.a))
		}
	})
	t.Run("zero", func(t *testing.T) {
		x, h := setup(t)
		res := x.ok(fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Amount: 0})
		if res.Captured != 0 || res.Released != cr("4") || x.available(t0) != cr("10") {
			t.Fatalf("%+v %s", res, snapshot(x.a))
		}
	})
	t.Run("full", func(t *testing.T) {
		x, h := setup(t)
		res := x.ok(fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Full: true})
		if res.Captured != cr("4") || res.Released != 0 || x.available(t0) != cr("6") || x.a.Charged != cr("4") {
			t.Fatalf("%+v %s", res, snapshot(x.a))
		}
	})
	t.Run("more than held takes the excess from available", func(t *testing.T) {
		x, h := setup(t)
		res := x.ok(fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Amount: cr("7"), AllowOverCapture: true})
		if res.Captured != cr("7") || res.Uncollected != 0 || x.available(t0) != cr("3") {
			t.Fatalf("%+v %s", res, snapshot(x.a))
		}
	})
	t.Run("shortfall is recorded as uncollected", func(t *testing.T) {
		x, h := setup(t)
		res := x.ok(fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Amount: cr("12.5"), AllowOverCapture: true})
		if res.Captured != cr("12.5") || res.Uncollected != cr("2.5") || x.a.Uncollected != cr("2.5") || x.available(t0) != 0 || x.a.Charged != cr("12.5") {
			t.Fatalf("%+v %s", res, snapshot(x.a))
		}
	})
	t.Run("errors", func(t *testing.T) {
		x, h := setup(t)
		x.fails(fb.Op{Kind: fb.OpCapture, HoldID: ""}, fb.EInvalid, fb.EInvalid)
		x.fails(fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Amount: -1}, fb.EInvalid, fb.EInvalid)
		x.fails(fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Amount: fb.MaxTotal + 1}, fb.EInvalid, fb.EInvalid)
		x.fails(fb.Op{Kind: fb.OpCapture, HoldID: "hold_nope", Amount: 1}, fb.ENotFound, fb.ENotFound)
		x.ok(fb.Op{Kind: fb.OpRelease, HoldID: h.ID})
		x.fails(fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Amount: 1}, fb.EConflict, "hold_resolved")
	})
	t.Run("held credit on a lot that expired meanwhile", func(t *testing.T) {
		x := newAcct(t)
		exp := t0.Add(30 * time.Second)
		l := x.ok(grantOp("10", fb.SourcePromo, 0, exp, "0")).Lot
		h := x.ok(holdOp("6", 2*time.Minute, false, t0)).Hold
		at := exp.Add(time.Second)
		// The lot's free 4 expire; the held 6 stay reserved until resolved.
		res := x.ok(fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Amount: cr("2"), At: at})
		lot := x.lot(l.ID)
		if res.Captured != cr("2") || lot.Consumed != cr("2") || lot.Expired != cr("8") || lot.Remaining != 0 || x.a.Expired != cr("8") {
			t.Fatalf("%+v lot %+v %s", res, lot, snapshot(x.a))
		}
	})
}

// TestCaptureAboveHoldNeedsOptIn (issue 12, finding 14): a capture above
// its hold is refused (invalid_request, param amount) unless the op sets
// AllowOverCapture, and the refusal changes nothing: the hold stays
// pending and can be captured as meant. The flag is part of the
// fingerprint only when set, so every fingerprint journaled before it
// existed is unchanged.
func TestCaptureAboveHoldNeedsOptIn(t *testing.T) {
	x := newAcct(t)
	x.ok(grantOp("100", fb.SourcePurchase, 20, time.Time{}, "100"))
	h := x.ok(holdOp("1", time.Minute, false, t0)).Hold
	typo := fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Amount: cr("1000")}
	_, err := x.do(typo)
	var fe *fb.Error
	if !errors.As(err, &fe) || fe.Type != fb.EInvalid || fe.Param != "amount" {
		t.Fatalf("capture of 1000 on a hold of 1: got %v, want invalid_request naming amount", err)
	}
	if got, want := x.available(t0), cr("99"); got != want || len(x.a.Holds) != 1 || x.a.Charged != 0 {
		t.Fatalf("after the refusal: available %s, want %s, with the hold pending: %s", got, want, snapshot(x.a))
	}
	// Up to the hold needs no flag; the same capture with the flag is
	// another request.
	if res := x.ok(fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Amount: cr("1")}); res.Captured != cr("1") {
		t.Fatalf("capture of the hold: %+v", res)
	}
	x.fails(fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Amount: cr("1"), AllowOverCapture: true}, fb.EConflict, "hold_resolved")

	h2 := x.ok(holdOp("1", time.Minute, false, t0)).Hold
	res := x.ok(fb.Op{Kind: fb.OpCapture, HoldID: h2.ID, Amount: cr("1000"), AllowOverCapture: true})
	if res.Captured != cr("1000") || res.Released != 0 || res.Uncollected != cr("901") || x.available(t0) != 0 {
		t.Fatalf("opted-in capture of 1000 (1 held, 98 more available): %+v %s", res, snapshot(x.a))
	}

	for _, tc := range []struct {
		op   fb.Op
		want string
	}{
		{fb.Op{Kind: fb.OpCapture, HoldID: "hold_1", Amount: cr("5")}, "capture|hold_1|5"},
		{fb.Op{Kind: fb.OpCapture, HoldID: "hold_1", Full: true}, "capture|hold_1|all"},
		{fb.Op{Kind: fb.OpCapture, HoldID: "hold_1", Amount: cr("5"), AllowOverCapture: true}, "capture|hold_1|5|over"},
	} {
		if got := tc.op.Fingerprint(); got != tc.want {
			t.Errorf("fingerprint of %+v: got %q, want %q", tc.op, got, tc.want)
		}
	}
}

func TestRelease(t *testing.T) {
	x := newAcct(t)
	x.ok(grantOp("10", fb.SourcePurchase, 20, time.Time{}, "10"))
	h := x.ok(holdOp("4", time.Minute, false, t0)).Hold
	rel := fb.Op{Kind: fb.OpRelease, HoldID: h.ID}
	res := x.ok(rel)
	if res.Released != cr("4") || res.Hold.Status != fb.HoldReleased || x.available(t0) != cr("10") {
		t.Fatalf("%+v %s", res, snapshot(x.a))
	}
	if again := x.ok(rel); fmt.Sprint(again) != fmt.Sprint(res) {
		t.Fatalf("second release %+v", again)
	}
	x.fails(fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Full: true}, fb.EConflict, "hold_resolved")
	x.fails(fb.Op{Kind: fb.OpRelease, HoldID: "hold_nope"}, fb.ENotFound, fb.ENotFound)
	x.fails(fb.Op{Kind: fb.OpRelease}, fb.EInvalid, fb.EInvalid)
}

// TestCaptureAllSpelledTwoWays: capturing everything held and capturing
// the held amount are one request; either repeated gets the first answer,
// another amount is refused.
func TestCaptureAllSpelledTwoWays(t *testing.T) {
	for _, first := range []bool{true, false} {
		x := newAcct(t)
		x.ok(grantOp("10", fb.SourcePurchase, 20, time.Time{}, "10"))
		h := x.ok(holdOp("2", time.Minute, false, t0)).Hold
		all := fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Full: true}
		two := fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Amount: cr("2")}
		a, b := all, two
		if !first {
			a, b = two, all
		}
		res := x.ok(a)
		if again := x.ok(b); fmt.Sprint(again) != fmt.Sprint(res) || res.Captured != cr("2") {
			t.Fatalf("capture %+v then %+v: %+v / %+v", a, b, res, again)
		}
		x.fails(fb.Op{Kind: fb.OpCapture, HoldID: h.ID, Amount: cr("1")}, fb.EConflict, "hold_resolved")
		if x.available(t0) != cr("8") {
			t.Fatalf("charged twice: %s", snapshot(x.a))
		}
	}
}

func TestDebit(t *testing.T) {
	x := newAcct(t)
	x.ok(grantOp("10", fb.SourcePurchase, 20, time.Time{}, "10"))
	x.fails(fb.Op{Kind: fb.OpDebit, Amount: 0}, fb.EInvalid, fb.EInvalid)
	x.fails(fb.Op{Kind: fb.OpDebit, Amount: fb.MaxTotal + 1}, fb.EInvalid, fb.EInvalid)
	x.fails(fb.Op{Kind: fb.OpDebit, Amount: cr("10.000001")}, fb.EInsufficientCredits, fb.EInsufficientCredits)
	res := x.ok(fb.Op{Kind: fb.OpDebit, Amount: cr("4")})
	if res.Captured != cr("4") || x.available(t0) != cr("6") {
		t.Fatalf("%+v", res)
	}
	res = x.ok(fb.Op{Kind: fb.OpDebit, Amount: cr("9"), AllowUncollected: true})
	if res.Captured != cr("9") || res.Uncollected != cr("3") || x.a.Uncollected != cr("3") || x.available(t0) != 0 {
		t.Fatalf("%+v %s", res, snapshot(x.a))
	}
	if _, err := Apply(x.a, &fb.Op{Kind: "refund"}, nil); fb.ErrorType(err) != fb.EInvalid {
		t.Fatalf("unknown op: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	x := newAcct(t)
	exp := t0.Add(time.Hour)
	l := x.ok(grantOp("10", fb.SourcePromo, 0, exp, "0")).Lot
	h := x.ok(holdOp("3", 2*time.Hour, false, t0)).Hold
	if _, changed := Advance(x.a, exp.Add(-time.Nanosecond), x.tch); changed {
		t.Fatal("expired early")
	}
	res, changed := Advance(x.a, exp, x.tch)
	if !changed || len(res.Expired) != 1 || res.Expired[0].Amount != cr("7") {
		t.Fatalf("expire at expiry: %+v", res)
	}
	// The held 3 stay until the hold resolves; released, they go to breakage.
	rel := x.ok(fb.Op{Kind: fb.OpRelease, HoldID: h.ID, At: exp.Add(time.Minute)})
	lot := x.lot(l.ID)
	if rel.Released != cr("3") || lot.Expired != cr("10") || x.a.Expired != cr("10") || len(x.a.Lots) != 0 {
		t.Fatalf("release after expiry %+v lot %+v %s", rel, lot, snapshot(x.a))
	}
	if _, changed := Advance(x.a, exp.Add(time.Hour), x.tch); changed {
		t.Fatal("a second advance changed something")
	}

	// A hold that expires on an expired lot: its reservation goes to breakage.
	y := newAcct(t)
	l = y.ok(grantOp("10", fb.SourcePromo, 0, exp, "0")).Lot
	h = y.ok(holdOp("10", 2*time.Hour, false, t0)).Hold
	Advance(y.a, exp, y.tch)
	if y.lot(l.ID).Expired != 0 {
		t.Fatal("held credit expired while its hold was pending")
	}
	res, _ = Advance(y.a, t0.Add(2*time.Hour), y.tch)
	if len(res.HoldsDone) != 1 || res.HoldsDone[0] != h.ID || y.lot(l.ID).Expired != cr("10") || y.a.Expired != cr("10") {
		t.Fatalf("%+v %s", res, snapshot(y.a))
	}
	if err := Check(y.a); err != nil {
		t.Fatal(err)
	}
}

func TestCheckCatchesBrokenInvariants(t *testing.T) {
	x := newAcct(t)
	l := x.ok(grantOp("10", fb.SourcePurchase, 20, time.Time{}, "10")).Lot
	x.ok(holdOp("4", time.Minute, false, t0))
	breakers := map[string]func(a *fb.Account){
		"lot sum":        func(a *fb.Account) { a.Lots[0].Remaining++ },
		"held > remain":  func(a *fb.Account) { a.Lots[0].Held = a.Lots[0].Remaining + 1 },
		"held vs allocs": func(a *fb.Account) { a.Lots[0].Held--; a.Lots[0].Remaining--; a.Lots[0].Consumed++ },
		"totals":         func(a *fb.Account) { a.Charged++ },
		"overdraft":      func(a *fb.Account) { a.Debt = 1 },
		"od reserved":    func(a *fb.Account) { a.OverdraftReserved = 1; a.OverdraftLimit = 5 },
		"hold status": func(a *fb.Account) {
			for _, h := range a.Holds {
				h.Status = fb.HoldCaptured
			}
		},
		"dead lot held": func(a *fb.Account) { a.Lots = nil },
	}
	for name, breakIt := range breakers {
		a := clone(x.a)
		breakIt(a)
		if err := Check(a); err == nil {
			t.Errorf("%s: Check passed a broken account", name)
		}
	}
	if err := Check(x.a); err != nil || l == nil {
		t.Fatal(err)
	}
}

// clone deep-copies an account's lots and holds.
func clone(a *fb.Account) *fb.Account {
	c := *a
	c.Lots = nil
	byID := map[string]*fb.Lot{}
	for _, l := range a.Lots {
		cl := *l
		c.Lots = append(c.Lots, &cl)
		byID[l.ID] = &cl
	}
	c.Holds = map[string]*fb.Hold{}
	for id, h := range a.Holds {
		ch := *h
		ch.Allocations = append([]fb.Allocation(nil), h.Allocations...)
		c.Holds[id] = &ch
	}
	c.Closed = map[string]*fb.Hold{}
	return &c
}

// TestRecognizeExact: consumed and expired in any pieces, a lot recognises
// exactly what was paid for it once it is all gone, and never more before.
func TestRecognizeExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 2000 {
		amount := fb.Amount(1 + rng.Int64N(int64(5000*fb.Micro)))
		paid := fb.USD(rng.Int64N(int64(100 * fb.Micro)))
		if i%3 == 0 {
			amount, paid = 3, 20*fb.Micro // $20 for 0.000003 credits: thirds of a micro-dollar
		}
		l := &fb.Lot{Amount: amount, PaidUSD: paid}
		var sum fb.USD
		for l.Consumed+l.Expired < amount {
			x := min(1+fb.Amount(rng.Int64N(int64(amount)/3+1)), amount-l.Consumed-l.Expired)
			sum += Recognize(l, x)
			if rng.IntN(4) == 0 {
				l.Expired += x
			} else {
				l.Consumed += x
			}
			if sum > paid {
				t.Fatalf("lot %s for $%s: recognised %s before the end", amount, paid, sum)
			}
		}
		if sum != paid {
			t.Fatalf("lot %s for $%s: recognised %s in all", amount, paid, sum)
		}
	}
}

// TestClawback: refunds of a purchased lot take back what is unspent of
// their share, never what was consumed or is held, and never more than the
// share refunded in all, whatever the order or repetition of the refunds.
func TestClawback(t *testing.T) {
	x := newAcct(t)
	lot := x.ok(fb.Op{Kind: fb.OpGrant, Amount: cr("1000"), Source: fb.SourcePurchase, PaidUSD: usd("10")}).Lot.ID
	x.ok(fb.Op{Kind: fb.OpDebit, Amount: cr("300")})
	h := x.ok(fb.Op{Kind: fb.OpHold, Amount: cr("100"), TTL: time.Minute}).Hold.ID
	steps := []struct {
		share, asked, taken string
		usd                 string
	}{
		{"500", "500", "500", "5"},  // half refunded: 500 of the 600 free
		{"500", "0", "0", "0"},      // the same refund again: nothing more
		{"400", "0", "0", "0"},      // an older, smaller total: nothing
		{"1000", "500", "100", "1"}, // all refunded: 100 free; 300 spent, 100 held
	}
	for i, s := range steps {
		res := x.ok(fb.Op{Kind: fb.OpClawback, LotID: lot, Amount: cr(s.share)})
		cb := res.Clawback
		if cb == nil || cb.Lot != lot || cb.Asked != cr(s.asked) || cb.Taken != cr(s.taken) || cb.USD != usd(s.usd) {
			t.Fatalf("step %d (share %s): got %+v, want asked %s taken %s usd %s", i, s.share, cb, s.asked, s.taken, s.usd)
		}
	}
	l := findLot(x.a, lot)
	if l.Remaining != cr("100") || l.Held != cr("100") || l.ClawedBack != cr("600") || l.Refunded != cr("1000") || x.a.ClawedBack != cr("600") {
		t.Fatalf("lot after the refunds: %+v, account clawed back %s", l, x.a.ClawedBack)
	}
	// The held 100 is released: it stays the customer's (the refund came
	// while a request held it), and revenue + clawed back still add up to
	// what was paid once the lot is used up.
	x.ok(fb.Op{Kind: fb.OpRelease, HoldID: h})
	res := x.ok(fb.Op{Kind: fb.OpDebit, Amount: cr("100")})
	var rev fb.USD
	for _, c := range res.Consumed {
		rev += c.USD
	}
	if rev != usd("1") || Available(x.a, t0) != 0 {
		t.Fatalf("the last 100 earned %s, available %s; want $1 and 0", rev, Available(x.a, t0))
	}
	// A lot no longer live gives nothing back.
	if cb := x.ok(fb.Op{Kind: fb.OpClawback, LotID: lot, Amount: cr("1000")}).Clawback; cb.Taken != 0 || cb.Asked != 0 {
		t.Fatalf("clawback of a spent lot: %+v", cb)
	}
	if _, err := x.do(fb.Op{Kind: fb.OpClawback, Amount: cr("1")}); fb.ErrorType(err) != fb.EInvalid {
		t.Fatalf("clawback without a lot: %v, want invalid_request", err)
	}
}
