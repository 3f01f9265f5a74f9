package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	fb "farebox"
)

// testBilling: thresholds, auto top-ups, payers and payments round-trip;
// top-up attempts are one per crossing and leased; endpoints; the
// follower's cursor moves by compare-and-swap with what it derived; events
// are recorded once; deliveries go in order per endpoint and customer,
// leased, logged, retried.
func testBilling(t *testing.T, s fb.Store) {
	ctx := context.Background()
	customer(t, s, "acme")

	if _, ok, err := s.Alerts(ctx, "acme"); ok || err != nil {
		t.Fatalf("alerts before any: %v %v", ok, err)
	}
	if err := s.PutAlerts(ctx, "acme", fb.Alerts{LowBalance: amt("100"), ExpiringDays: 7}); err != nil {
		t.Fatal(err)
	}
	if a, ok, err := s.Alerts(ctx, "acme"); !ok || err != nil || a.LowBalance != amt("100") || a.ExpiringDays != 7 {
		t.Fatalf("alerts: got %+v %v %v", a, ok, err)
	}
	at := fb.AutoTopup{Customer: "acme", Threshold: amt("100"), Credits: amt("1000"), Cooldown: time.Hour, UpdatedAt: t0}
	if err := s.PutAutoTopup(ctx, at); err != nil {
		t.Fatal(err)
	}
	if got, err := s.AutoTopup(ctx, "acme"); err != nil || got != at {
		t.Fatalf("auto top-up: got %+v %v, want %+v", got, err, at)
	}
	if err := s.DeleteAutoTopup(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AutoTopup(ctx, "acme"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("auto top-up after delete: %v", err)
	}
	if err := s.DeleteAutoTopup(ctx, "acme"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("second delete: %v", err)
	}

	if err := s.PutPayer(ctx, fb.PayerProfile{Customer: "acme", ProviderID: "cus_S1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPayer(ctx, fb.PayerProfile{Customer: "acme", PaymentMethod: "pm_1"}); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Payer(ctx, "acme"); err != nil || p.ProviderID != "cus_S1" || p.PaymentMethod != "pm_1" {
		t.Fatalf("payer: %+v %v", p, err)
	}

	pay := fb.Payment{ID: "pi_1", Customer: "acme", Kind: fb.PaymentCheckout, Lot: "lot_pi_1", Credits: amt("1000"), PaidUSD: 10 * fb.Micro, CreatedAt: t0}
	for range 2 {
		if err := s.PutPayment(ctx, pay); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RefundPayment(ctx, "pi_1", 5*fb.Micro, amt("500"), 0); err != nil {
		t.Fatal(err)
	}
	// The same refund again, and an older one late: nothing more.
	for _, usd := range []fb.USD{5 * fb.Micro, 4 * fb.Micro} {
		if err := s.RefundPayment(ctx, "pi_1", usd, amt("500"), amt("1")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RefundPayment(ctx, "pi_1", 10*fb.Micro, amt("200"), amt("300")); err != nil {
		t.Fatal(err)
	}
	want := pay
	want.RefundedUSD, want.ClawedBack, want.Unrecovered = 10*fb.Micro, amt("700"), amt("300")
	if got, err := s.Payment(ctx, "pi_1"); err != nil || got != want {
		t.Fatalf("payment: got %+v %v, want %+v", got, err, want)
	}

	// The journal, read by a follower.
	end, err := s.JournalEnd(ctx)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, s, "acme", grant("lot_a", "50", t0, time.Time{}))
	entries, next, err := s.JournalAfter(ctx, end, 10)
	if err != nil || len(entries) != 1 || entries[0].Op.LotID != "lot_a" {
		t.Fatalf("journal after the end: %v entries, %v", len(entries), err)
	}
	if again, at, err := s.JournalAfter(ctx, next, 10); err != nil || len(again) != 0 || at != next {
		t.Fatalf("journal after the last entry: %d entries, cursor %v (want %v), %v", len(again), at, next, err)
	}
	if ok, err := s.KeyBefore(ctx, "acme", "k-lot_", entries[0].Seq+1); err != nil || !ok {
		t.Fatalf("key before: %v %v", ok, err)
	}
	if ok, err := s.KeyBefore(ctx, "acme", "k-lot_", entries[0].Seq); err != nil || ok {
		t.Fatalf("key before its own seq: %v %v", ok, err)
	}

	if _, ok, err := s.Cursor(ctx, "f"); ok || err != nil {
		t.Fatalf("cursor before any: %v %v", ok, err)
	}
	ep := fb.WebhookEndpoint{ID: "we_1", URL: "http://127.0.0.1:1/h", Secret: "whsec_x", Events: []string{"balance.low"}, CreatedAt: t0}
	if err := s.CreateEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Endpoint(ctx, "we_1"); err != nil || got.Secret != "whsec_x" || len(got.Events) != 1 {
		t.Fatalf("endpoint: %+v %v", got, err)
	}
	event := func(id, cust string, created time.Time) fb.NewEvent {
		return fb.NewEvent{
			Event:      fb.WebhookEvent{ID: id, Type: "balance.low", Customer: cust, Created: created, Data: json.RawMessage(`{"n":"` + id + `"}`)},
			Deliveries: []fb.WebhookDelivery{{ID: "wd_" + id, Endpoint: "we_1", NextAt: created, CreatedAt: created}},
		}
	}
	topup := fb.TopupAttempt{ID: "tu_1", Customer: "acme", Crossing: entries[0].Seq, Credits: amt("1000"), Status: fb.TopupPending, CreatedAt: t0, UpdatedAt: t0}
	if err := s.Advance(ctx, "f", end, next, []fb.NewEvent{event("ev_1", "acme", t0), event("ev_2", "acme", t0)}, []fb.TopupAttempt{topup}); err != nil {
		t.Fatal(err)
	}
	// A replica that read the same entries comes second: it changes nothing.
	dup := topup
	dup.ID = "tu_2"
	if err := s.Advance(ctx, "f", end, next, []fb.NewEvent{event("ev_9", "acme", t0)}, []fb.TopupAttempt{dup}); fb.ErrorType(err) != fb.EConflict {
		t.Fatalf("advance from a stale cursor: %v, want a conflict", err)
	}
	if cur, ok, err := s.Cursor(ctx, "f"); !ok || err != nil || cur != next {
		t.Fatalf("cursor: %v %v %v, want %v", cur, ok, err, next)
	}
	// The same crossing and the same event again, from the current cursor.
	if err := s.Advance(ctx, "f", next, next, []fb.NewEvent{event("ev_1", "acme", t0)}, []fb.TopupAttempt{dup}); err != nil {
		t.Fatal(err)
	}
	if last, err := s.LastTopup(ctx, "acme"); err != nil || last.ID != "tu_1" {
		t.Fatalf("last top-up: %+v %v, want tu_1 only", last, err)
	}
	if _, err := s.Topup(ctx, "tu_2"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("a second attempt for one crossing: %v", err)
	}
	claimed, err := s.ClaimTopups(ctx, t0, time.Minute, 10)
	if err != nil || len(claimed) != 1 || claimed[0].ID != "tu_1" {
		t.Fatalf("claim top-ups: %v %v", claimed, err)
	}
	if again, err := s.ClaimTopups(ctx, t0.Add(30*time.Second), time.Minute, 10); err != nil || len(again) != 0 {
		t.Fatalf("claim while leased: %v %v", again, err)
	}
	if err := s.ReleaseLeases(ctx); err != nil {
		t.Fatal(err)
	}
	if again, err := s.ClaimTopups(ctx, t0.Add(30*time.Second), time.Minute, 10); err != nil || len(again) != 1 {
		t.Fatalf("claim after the leases were released: %v %v", again, err)
	}
	// Priced and requested from the provider, then failed.
	done := claimed[0]
	done.Status, done.PaymentID, done.AmountUSD, done.UpdatedAt = fb.TopupRequested, "pi_1", 10*fb.Micro, t0.Add(time.Second/2)
	if err := s.UpdateTopup(ctx, done, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Topup(ctx, "tu_1"); err != nil || got.Status != fb.TopupRequested || got.PaymentID != "pi_1" || got.AmountUSD != 10*fb.Micro {
		t.Fatalf("top-up after it was requested: %+v %v, want requested as pi_1 for $10", got, err)
	}
	done.Status, done.Error, done.UpdatedAt = fb.TopupFailed, "card_declined", t0.Add(time.Second)
	failed := event("ev_f", "acme", t0.Add(time.Second))
	if err := s.UpdateTopup(ctx, done, &failed); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Topup(ctx, "tu_1"); err != nil || got.Status != fb.TopupFailed || got.Error != "card_declined" || got.AmountUSD != 10*fb.Micro {
		t.Fatalf("top-up after update: %+v %v", got, err)
	}
	if left, err := s.ClaimTopups(ctx, t0.Add(time.Hour), time.Minute, 10); err != nil || len(left) != 0 {
		t.Fatalf("claim after it failed: %v %v", left, err)
	}

	// Another customer's line, and the same event added again.
	customer(t, s, "bolt")
	if err := s.AddEvents(ctx, []fb.NewEvent{event("ev_b", "bolt", t0), event("ev_2", "acme", t0)}); err != nil {
		t.Fatal(err)
	}
	ids := func(ds []fb.WebhookDelivery) string {
		var out string
		for _, d := range ds {
			out += d.Event + " "
		}
		return out
	}
	// The head of each line: ev_1 for acme (ev_2, ev_f wait behind it), ev_b.
	got, err := s.ClaimDeliveries(ctx, t0, time.Minute, 10)
	if err != nil || ids(got) != "ev_1 ev_b " {
		t.Fatalf("claimed %q (%v), want the heads ev_1 ev_b", ids(got), err)
	}
	var body map[string]any
	if err := json.Unmarshal(got[0].Payload, &body); err != nil || body["id"] != "ev_1" || body["type"] != "balance.low" {
		t.Fatalf("payload %s: %v", got[0].Payload, err)
	}
	if more, err := s.ClaimDeliveries(ctx, t0, time.Minute, 10); err != nil || len(more) != 0 {
		t.Fatalf("claimed %q while leased", ids(more))
	}
	// ev_1 fails and is retried later: its line waits behind it.
	d := got[0]
	d.NextAt = t0.Add(10 * time.Second)
	if err := s.FinishDelivery(ctx, d, fb.DeliveryAttempt{At: t0, StatusCode: 503, Error: "HTTP 503"}); err != nil {
		t.Fatal(err)
	}
	if more, err := s.ClaimDeliveries(ctx, t0.Add(5*time.Second), time.Minute, 10); err != nil || len(more) != 0 {
		t.Fatalf("claimed %q behind a failed head", ids(more))
	}
	if more, err := s.ClaimDeliveries(ctx, t0.Add(10*time.Second), time.Minute, 10); err != nil || ids(more) != "ev_1 " {
		t.Fatalf("claimed %q at the retry, want ev_1", ids(more))
	}
	d.Status, d.DeliveredAt = fb.DeliverySucceeded, t0.Add(10*time.Second)
	if err := s.FinishDelivery(ctx, d, fb.DeliveryAttempt{At: t0.Add(10 * time.Second), StatusCode: 200}); err != nil {
		t.Fatal(err)
	}
	if more, err := s.ClaimDeliveries(ctx, t0.Add(10*time.Second), time.Minute, 10); err != nil || ids(more) != "ev_2 " {
		t.Fatalf("claimed %q after the head, want ev_2", ids(more))
	}
	one, attempts, err := s.Delivery(ctx, "wd_ev_1")
	if err != nil || one.Status != fb.DeliverySucceeded || one.Attempts != 2 || len(attempts) != 2 || attempts[0].StatusCode != 503 || attempts[1].StatusCode != 200 {
		t.Fatalf("delivery log: %+v %+v %v", one, attempts, err)
	}
	list, err := s.Deliveries(ctx, "we_1", 10)
	if err != nil || len(list) != 4 {
		t.Fatalf("deliveries of the endpoint: %d %v, want 4 (ev_1, ev_2, ev_f, ev_b)", len(list), err)
	}
	if r, err := s.RetryDelivery(ctx, "wd_ev_1", t0.Add(time.Hour)); err != nil || r.Status != fb.DeliveryPending || !r.NextAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("retry: %+v %v", r, err)
	}
	if _, err := s.RetryDelivery(ctx, "wd_none", t0); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("retry of no delivery: %v", err)
	}

	// Lots expiring before a time.
	apply(t, s, "acme", grant("lot_x", "5", t0, t0.Add(48*time.Hour)))
	exp, err := s.ExpiringLots(ctx, t0.Add(72*time.Hour), 10)
	if err != nil || len(exp) != 1 || exp[0].Lot != "lot_x" || exp[0].Customer != "acme" || !exp[0].ExpiresAt.Equal(t0.Add(48*time.Hour)) {
		t.Fatalf("expiring lots: %+v %v", exp, err)
	}
	if exp, err := s.ExpiringLots(ctx, t0.Add(24*time.Hour), 10); err != nil || len(exp) != 0 {
		t.Fatalf("expiring lots before a day: %+v %v", exp, err)
	}
	if err := s.DeleteEndpoint(ctx, "we_1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEndpoint(ctx, "we_1"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("second delete: %v", err)
	}
	if more, err := s.ClaimDeliveries(ctx, t0.Add(2*time.Hour), time.Minute, 10); err != nil || len(more) != 0 {
		t.Fatalf("claimed %q of a deleted endpoint", ids(more))
	}
}

// testJournalBalances: the balance before and after each op, and what an
// expiry lapsed of subscription lots, are stored with its entry and read
// back by the journal's followers.
func testJournalBalances(t *testing.T, s fb.Store) {
	ctx := context.Background()
	customer(t, s, "acme")
	end, err := s.JournalEnd(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Write(ctx, func(tx fb.WriteTx) error {
		return tx.AppendJournal(ctx, []*fb.JournalEntry{
			{Op: fb.Op{Kind: fb.OpDebit, Customer: "acme", At: t0, Amount: 1}, Fingerprint: "d", Before: amt("150"), After: amt("90")},
			{Op: fb.Op{Kind: fb.OpExpire, Customer: "acme", At: t0}, Before: amt("90"), After: amt("20"), Lapsed: amt("70")},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := s.JournalAfter(ctx, end, 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("journal: %d entries, %v", len(got), err)
	}
	if got[0].Before != amt("150") || got[0].After != amt("90") || got[0].Lapsed != 0 {
		t.Fatalf("balances %s → %s (lapsed %s), want 150 → 90 (0)", got[0].Before, got[0].After, got[0].Lapsed)
	}
	if got[1].Before != amt("90") || got[1].After != amt("20") || got[1].Lapsed != amt("70") {
		t.Fatalf("the expiry's balances %s → %s (lapsed %s), want 90 → 20 (70)", got[1].Before, got[1].After, got[1].Lapsed)
	}
}
