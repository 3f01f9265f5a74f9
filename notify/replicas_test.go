package notify_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	fb "farebox"
	"farebox/app"
	"farebox/fakeclock"
	"farebox/notify"
	"farebox/store/postgres/pgtest"
)

// TestReplicasDeliverOnce: two replicas on one PostgreSQL follow the
// journal and deliver at the same time: every event is recorded once and
// delivered once (the cursor is compared-and-swapped, deliveries claimed
// with FOR UPDATE SKIP LOCKED and a lease), in order per customer.
func TestReplicasDeliverOnce(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	clk := fakeclock.New(t0)
	var apps []*app.App
	for range 2 {
		a, err := app.New(context.Background(), app.Config{DB: url, DataDir: t.TempDir(), AdminToken: token, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		apps = append(apps, a)
	}
	ctx := context.Background()
	recv := newReceiver(t)
	st := apps[0].Store
	if err := st.CreateEndpoint(ctx, fb.WebhookEndpoint{ID: "we_1", URL: recv.url, Secret: "whsec_r", Events: []string{notify.BalanceLow, notify.BalanceDepleted}, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := apps[0].Notify.Follow(ctx); err != nil {
		t.Fatal(err)
	}
	const customers = 10
	for i := range customers {
		c := fmt.Sprintf("c%d", i)
		if err := st.CreateCustomer(ctx, fb.Customer{ID: c, Name: c, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		if err := st.PutAlerts(ctx, c, fb.Alerts{LowBalance: 50 * fb.Micro}); err != nil {
			t.Fatal(err)
		}
	}
	// Each customer, on alternating replicas: low, back up, low, depleted.
	var wg sync.WaitGroup
	for i := range customers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := fmt.Sprintf("c%d", i)
			for j, op := range []fb.Op{
				{Kind: fb.OpGrant, Amount: 100 * fb.Micro, Source: fb.SourcePromo},
				{Kind: fb.OpDebit, Amount: 60 * fb.Micro},
				{Kind: fb.OpGrant, Amount: 100 * fb.Micro, Source: fb.SourcePromo},
				{Kind: fb.OpDebit, Amount: 100 * fb.Micro},
				{Kind: fb.OpDebit, Amount: 40 * fb.Micro},
			} {
				op.Customer = c
				if _, err := apps[(i+j)%2].Engine.Submit(ctx, op); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	// Both replicas follow and deliver at once, a few rounds.
	for range 3 {
		var rw sync.WaitGroup
		for _, a := range apps {
			for range 2 {
				rw.Add(1)
				go func() {
					defer rw.Done()
					if _, err := a.Notify.Follow(ctx); err != nil {
						t.Error(err)
					}
					if _, err := a.Notify.Deliver(ctx); err != nil {
						t.Error(err)
					}
				}()
			}
		}
		rw.Wait()
	}
	got := recv.all()
	seen := map[string]int{}
	last := map[string]int64{}
	for _, g := range got {
		seen[g.id]++
		if s := seqOf(g.id); s <= last[g.cust] {
			t.Errorf("%s's events out of order: %s after seq %d", g.cust, g.id, last[g.cust])
		} else {
			last[g.cust] = s
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
	if len(seen) != customers*3 || len(got) != customers*3 {
		t.Fatalf("%d deliveries of %d events, want %d: two balance.low and a balance.depleted per customer", len(got), len(seen), customers*3)
	}
}
