package plans_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/fakeclock"
	"farebox/ledger"
	"farebox/plans"
	"farebox/store/postgres"
	"farebox/store/postgres/pgtest"
)

// TestRenewalOnceAcrossReplicas: two replicas (each its own pool, engine
// and renewal service, as two farebox serve processes have) on one
// PostgreSQL database, both running the renewal job at every tick of an
// injected clock, several times over, concurrently. Each period's
// allowance is granted exactly once per customer, and the ledger verifies.
func TestRenewalOnceAcrossReplicas(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	type replica struct {
		store  *postgres.Store
		engine *ledger.Engine
		plans  *plans.Service
	}
	var reps []replica
	for range 2 {
		st, err := postgres.Open(ctx, url, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		eng := ledger.NewEngine(st, ledger.Config{Writers: 4, Now: clock})
		t.Cleanup(func() { eng.Close(); st.Close() })
		reps = append(reps, replica{st, eng, plans.New(st, eng, fakeclock.Func(clock), nil)})
	}
	r0 := reps[0]
	if err := r0.store.CreatePlan(ctx, fb.Plan{ID: "daily", Name: "Daily", PriceUSD: fb.Micro, Period: fb.PeriodDay, Credits: 100 * fb.Micro, Models: []string{"*"}, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	const customers = 20
	for i := range customers {
		id := fmt.Sprintf("c%02d", i)
		if err := r0.store.CreateCustomer(ctx, fb.Customer{ID: id, Name: id, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if _, err := r0.plans.Subscribe(ctx, id, "daily"); err != nil {
			t.Fatal(err)
		}
	}
	const days = 5
	var perReplica [2]int
	for range days {
		mu.Lock()
		now = now.Add(24 * time.Hour)
		mu.Unlock()
		var wg sync.WaitGroup
		for ri, r := range reps {
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// A batch that lost a race answers 503; the job
					// retries at its next tick, as serve's does.
					for attempt := 0; ; attempt++ {
						n, err := r.plans.RenewDue(ctx)
						mu.Lock()
						perReplica[ri] += n
						mu.Unlock()
						if err == nil || attempt == 10 {
							if err != nil {
								t.Errorf("renewal: %v", err)
							}
							return
						}
					}
				}()
			}
		}
		wg.Wait()
	}
	// Both replicas renewed (each saw the subscriptions due, many times
	// over), so the grants below were deduplicated, not left to one.
	t.Logf("renewals run: replica 0 %d, replica 1 %d, for %d due", perReplica[0], perReplica[1], customers*days)
	if perReplica[0] == 0 || perReplica[1] == 0 {
		t.Errorf("a replica renewed nothing: %v", perReplica)
	}
	for i := range customers {
		id := fmt.Sprintf("c%02d", i)
		a, err := r0.store.Account(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		// The first period's allowance and one per day since: 6 grants of
		// 100, never more (earlier ones roll over or expire, but stay
		// granted).
		if a.Granted != (days+1)*100*fb.Micro {
			t.Errorf("%s granted %s, want %d", id, a.Granted, (days+1)*100)
		}
		sub, err := r0.store.Subscription(ctx, id)
		if err != nil || !sub.PeriodStart.Equal(clock()) {
			t.Errorf("%s subscription %+v %v", id, sub, err)
		}
	}
	rep, err := ledger.Verify(ctx, r0.store)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %v", err, rep.Problems)
	}
}
