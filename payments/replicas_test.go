package payments_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/app"
	"farebox/payments"
	"farebox/payments/stripemock"
	"farebox/store/postgres/pgtest"
)

// TestTopupReplicasOnce: two replicas on one PostgreSQL, both following
// the journal and making automatic top-ups at the same time, while
// concurrent debits on both drive ten customers through their thresholds:
// each crossing is recorded once and paid once — one PaymentIntent per
// customer at stripe-mock, each under its own Idempotency-Key.
func TestTopupReplicasOnce(t *testing.T) {
	rec := stripemock.NewRecorder(t, stripemock.Start(t))
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	var apps []*app.App
	for range 2 {
		a, err := app.New(context.Background(), app.Config{DB: url, DataDir: t.TempDir(), AdminToken: token,
			Stripe: payments.StripeConfig{SecretKey: stripemock.SecretKey, WebhookSecret: stripemock.WebhookSecret, APIBase: rec.URL}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		apps = append(apps, a)
	}
	ctx := context.Background()
	st := apps[0].Store
	if _, err := apps[0].Notify.Follow(ctx); err != nil {
		t.Fatal(err)
	}
	const customers = 10
	for i := range customers {
		c := fmt.Sprintf("c%d", i)
		if err := st.CreateCustomer(ctx, fb.Customer{ID: c, Name: c, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := st.PutPayer(ctx, fb.PayerProfile{Customer: c, ProviderID: "cus_" + c, PaymentMethod: "pm_card_visa"}); err != nil {
			t.Fatal(err)
		}
		if err := st.PutAutoTopup(ctx, fb.AutoTopup{Customer: c, Threshold: 50 * fb.Micro, Credits: 1000 * fb.Micro, Cooldown: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if _, err := apps[i%2].Engine.Submit(ctx, fb.Op{Kind: fb.OpGrant, Customer: c, Amount: 100 * fb.Micro, Source: fb.SourcePromo}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	// The replicas' background work, racing.
	for _, a := range apps {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := a.Notify.Follow(ctx); err != nil {
						t.Error(err)
						return
					}
					if _, err := a.Payments.Topups(ctx); err != nil {
						t.Error(err)
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
	}
	// 20 debits of 4 credits per customer, on both replicas at once: 100
	// → 20, through the threshold of 50 once.
	var dw sync.WaitGroup
	for i := range customers {
		for j := range 20 {
			dw.Add(1)
			go func() {
				defer dw.Done()
				if _, err := apps[j%2].Engine.Submit(ctx, fb.Op{Kind: fb.OpDebit, Customer: fmt.Sprintf("c%d", i), Amount: 4 * fb.Micro}); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	dw.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for stripemock.PaymentIntents(rec.Seen()) < customers && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // time for a wrong second payment
	close(stop)
	wg.Wait()
	byCustomer := map[string]int{}
	keys := map[string]bool{}
	for _, r := range rec.Sent() {
		if r.Method == "POST" && r.Path == "/v1/payment_intents" {
			byCustomer[r.Form.Get("metadata["+payments.MetaCustomer+"]")]++
			keys[r.IdempotencyKey] = true
		}
	}
	t.Logf("PaymentIntents by customer: %v", byCustomer)
	if n := stripemock.PaymentIntents(rec.Seen()); n != customers || len(byCustomer) != customers || len(keys) != customers {
		t.Fatalf("%d PaymentIntents for %d customers (%v, %d keys), want one each", n, len(byCustomer), byCustomer, len(keys))
	}
	for c, n := range byCustomer {
		if n != 1 {
			t.Errorf("%s: %d PaymentIntents, want 1", c, n)
		}
	}
}
