package plans_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/fakeclock"
	"farebox/ledger"
	"farebox/plans"
	"farebox/store/sqlite"
)

// interleave runs hook once, just before the first SwapSubscription: a
// change made by someone else between a renewal's read and its write.
type interleave struct {
	fb.Store
	once sync.Once
	hook func()
}

func (s *interleave) SwapSubscription(ctx context.Context, old, sub fb.Subscription) error {
	s.once.Do(s.hook)
	return s.Store.SwapSubscription(ctx, old, sub)
}

// TestChangeDuringRenewal: a plan change that lands while a renewal is
// between reading and writing the subscription is not lost: the renewal's
// write does not overwrite it, and it takes effect at the next period's
// end. The renewal grants the period once.
func TestChangeDuringRenewal(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	eng := ledger.NewEngine(st, ledger.Config{Cache: true, Now: clock})
	defer eng.Close()
	for _, p := range []fb.Plan{
		{ID: "basic", Name: "Basic", PriceUSD: fb.Micro, Period: fb.PeriodDay, Credits: 10 * fb.Micro, Models: []string{"*"}, CreatedAt: now},
		{ID: "max", Name: "Max", PriceUSD: 5 * fb.Micro, Period: fb.PeriodDay, Credits: 50 * fb.Micro, Models: []string{"*"}, CreatedAt: now},
	} {
		if err := st.CreatePlan(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CreateCustomer(ctx, fb.Customer{ID: "acme", Name: "Acme", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	direct := plans.New(st, eng, fakeclock.Func(clock), nil)
	if _, err := direct.Subscribe(ctx, "acme", "basic"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(25 * time.Hour) // the first period has ended
	racing := &interleave{Store: st}
	racing.hook = func() {
		if _, err := direct.Change(ctx, "acme", "max", plans.AtPeriodEnd); err != nil {
			t.Errorf("change: %v", err)
		}
	}
	renewer := plans.New(racing, eng, fakeclock.Func(clock), nil)
	if n, err := renewer.RenewDue(ctx); err != nil || n != 1 {
		t.Fatalf("renew: %d %v", n, err)
	}
	sub, err := st.Subscription(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if sub.Plan != "basic" || sub.NextPlan != "max" || !sub.PeriodStart.Equal(time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("after the renewal: %+v (the change to max must survive, for the next period)", sub)
	}
	a, _ := st.Account(ctx, "acme")
	if a.Granted != 20*fb.Micro {
		t.Fatalf("granted %s, want two basic allowances", a.Granted)
	}
	// At the next period's end the change takes effect.
	now = now.Add(24 * time.Hour)
	if _, err := direct.RenewDue(ctx); err != nil {
		t.Fatal(err)
	}
	sub, _ = st.Subscription(ctx, "acme")
	a, _ = st.Account(ctx, "acme")
	if sub.Plan != "max" || sub.NextPlan != "" || a.Granted != 70*fb.Micro {
		t.Fatalf("next period: %+v, granted %s", sub, a.Granted)
	}
}
