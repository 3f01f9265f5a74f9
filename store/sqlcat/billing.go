package sqlcat

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	fb "farebox"
	"farebox/store/codec"
)

// The billing part of the store (farebox.Billing) but for following the
// journal, which each driver reads its own way: thresholds, auto top-ups,
// payers, payments, top-up attempts, webhook endpoints, the outbox of
// events and their deliveries, and the followers' cursors.

// skipLocked is what a claim's row selection adds on PostgreSQL, so that
// replicas claiming at once take different rows; SQLite has one writer.
func (c *Catalog) skipLocked() string {
	if c.Dollar {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// Alerts reads a customer's thresholds.
func (c *Catalog) Alerts(ctx context.Context, customer string) (fb.Alerts, bool, error) {
	var a fb.Alerts
	var low int64
	err := c.R.QueryRowContext(ctx, c.q(`SELECT low_balance, expiring_days FROM customer_alerts WHERE customer = ?`), customer).Scan(&low, &a.ExpiringDays)
	if errors.Is(err, sql.ErrNoRows) {
		return a, false, nil
	}
	a.LowBalance = fb.Amount(low)
	return a, err == nil, err
}

// PutAlerts sets a customer's thresholds.
func (c *Catalog) PutAlerts(ctx context.Context, customer string, a fb.Alerts) error {
	_, err := c.W.ExecContext(ctx, c.q(`INSERT INTO customer_alerts (customer, low_balance, expiring_days) VALUES (?, ?, ?)
		ON CONFLICT (customer) DO UPDATE SET low_balance = excluded.low_balance, expiring_days = excluded.expiring_days`),
		customer, int64(a.LowBalance), a.ExpiringDays)
	return err
}

// AutoTopup reads a customer's auto top-up.
func (c *Catalog) AutoTopup(ctx context.Context, customer string) (fb.AutoTopup, error) {
	t := fb.AutoTopup{Customer: customer}
	var th, cr, cool, at int64
	err := c.R.QueryRowContext(ctx, c.q(`SELECT threshold, credits, cooldown_ns, updated_at FROM auto_topups WHERE customer = ?`), customer).Scan(&th, &cr, &cool, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return t, notFound("auto top-up of customer", customer)
	}
	t.Threshold, t.Credits, t.Cooldown, t.UpdatedAt = fb.Amount(th), fb.Amount(cr), time.Duration(cool), codec.FromNanos(at)
	return t, err
}

// PutAutoTopup sets a customer's auto top-up.
func (c *Catalog) PutAutoTopup(ctx context.Context, t fb.AutoTopup) error {
	_, err := c.W.ExecContext(ctx, c.q(`INSERT INTO auto_topups (customer, threshold, credits, cooldown_ns, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (customer) DO UPDATE SET threshold = excluded.threshold, credits = excluded.credits, cooldown_ns = excluded.cooldown_ns, updated_at = excluded.updated_at`),
		t.Customer, int64(t.Threshold), int64(t.Credits), int64(t.Cooldown), codec.Nanos(t.UpdatedAt))
	return err
}

// DeleteAutoTopup turns a customer's auto top-up off.
func (c *Catalog) DeleteAutoTopup(ctx context.Context, customer string) error {
	res, err := c.W.ExecContext(ctx, c.q(`DELETE FROM auto_topups WHERE customer = ?`), customer)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err != nil {
			return err
		}
		return notFound("auto top-up of customer", customer)
	}
	return nil
}

// Payer reads a customer's profile at the payment provider.
func (c *Catalog) Payer(ctx context.Context, customer string) (fb.PayerProfile, error) {
	p := fb.PayerProfile{Customer: customer}
	err := c.R.QueryRowContext(ctx, c.q(`SELECT provider_id, payment_method FROM payers WHERE customer = ?`), customer).Scan(&p.ProviderID, &p.PaymentMethod)
	if errors.Is(err, sql.ErrNoRows) {
		return p, notFound("payment profile of customer", customer)
	}
	return p, err
}

// PutPayer records a customer's provider id, and its payment method when
// p names one.
func (c *Catalog) PutPayer(ctx context.Context, p fb.PayerProfile) error {
	_, err := c.W.ExecContext(ctx, c.q(`INSERT INTO payers (customer, provider_id, payment_method) VALUES (?, ?, ?)
		ON CONFLICT (customer) DO UPDATE SET provider_id = CASE WHEN excluded.provider_id = '' THEN payers.provider_id ELSE excluded.provider_id END,
		payment_method = CASE WHEN excluded.payment_method = '' THEN payers.payment_method ELSE excluded.payment_method END`),
		p.Customer, p.ProviderID, p.PaymentMethod)
	return err
}

// PutPayment records a payment once.
func (c *Catalog) PutPayment(ctx context.Context, p fb.Payment) error {
	_, err := c.W.ExecContext(ctx, c.q(`INSERT INTO payments (id, customer, kind, lot, credits, paid_usd, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`), p.ID, p.Customer, p.Kind, p.Lot, int64(p.Credits), int64(p.PaidUSD), codec.Nanos(p.CreatedAt))
	return err
}

// Payment reads a payment.
func (c *Catalog) Payment(ctx context.Context, id string) (fb.Payment, error) {
	p := fb.Payment{ID: id}
	var cr, paid, at, ref, cb, un int64
	err := c.R.QueryRowContext(ctx, c.q(`SELECT customer, kind, lot, credits, paid_usd, created_at, refunded_usd, clawed_back, unrecovered FROM payments WHERE id = ?`), id).
		Scan(&p.Customer, &p.Kind, &p.Lot, &cr, &paid, &at, &ref, &cb, &un)
	if errors.Is(err, sql.ErrNoRows) {
		return p, notFound("payment", id)
	}
	p.Credits, p.PaidUSD, p.CreatedAt, p.RefundedUSD = fb.Amount(cr), fb.USD(paid), codec.FromNanos(at), fb.USD(ref)
	p.ClawedBack, p.Unrecovered = fb.Amount(cb), fb.Amount(un)
	return p, err
}

// RefundPayment records a refund's outcome once: a refund's refunded total
// is above every earlier one's, so the same refund recorded again (or an
// older one late) changes nothing.
func (c *Catalog) RefundPayment(ctx context.Context, id string, refunded fb.USD, clawedBack, unrecovered fb.Amount) error {
	_, err := c.W.ExecContext(ctx, c.q(`UPDATE payments SET refunded_usd = ?, clawed_back = clawed_back + ?, unrecovered = unrecovered + ?
		WHERE id = ? AND refunded_usd < ?`), int64(refunded), int64(clawedBack), int64(unrecovered), id, int64(refunded))
	return err
}

const topupColumns = `id, customer, crossing, credits, amount_usd, status, payment_id, error, created_at, updated_at`

func scanTopup(r interface{ Scan(...any) error }) (fb.TopupAttempt, error) {
	var t fb.TopupAttempt
	var cr, usd, at, up int64
	err := r.Scan(&t.ID, &t.Customer, &t.Crossing, &cr, &usd, &t.Status, &t.PaymentID, &t.Error, &at, &up)
	t.Credits, t.AmountUSD, t.CreatedAt, t.UpdatedAt = fb.Amount(cr), fb.USD(usd), codec.FromNanos(at), codec.FromNanos(up)
	return t, err
}

// LastTopup is a customer's latest top-up attempt.
func (c *Catalog) LastTopup(ctx context.Context, customer string) (fb.TopupAttempt, error) {
	t, err := scanTopup(c.R.QueryRowContext(ctx, c.q(`SELECT `+topupColumns+` FROM topup_attempts WHERE customer = ? ORDER BY created_at DESC, id DESC LIMIT 1`), customer))
	if errors.Is(err, sql.ErrNoRows) {
		return t, notFound("top-up of customer", customer)
	}
	return t, err
}

// Topup reads one attempt.
func (c *Catalog) Topup(ctx context.Context, id string) (fb.TopupAttempt, error) {
	t, err := scanTopup(c.R.QueryRowContext(ctx, c.q(`SELECT `+topupColumns+` FROM topup_attempts WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, notFound("top-up", id)
	}
	return t, err
}

// ClaimTopups leases pending attempts whose lease has ended.
func (c *Catalog) ClaimTopups(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]fb.TopupAttempt, error) {
	tx, err := c.W.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, c.q(`SELECT `+topupColumns+` FROM topup_attempts WHERE status = ? AND lease_until <= ? ORDER BY created_at, id LIMIT ?`+c.skipLocked()),
		fb.TopupPending, codec.Nanos(now), limit)
	if err != nil {
		return nil, err
	}
	var out []fb.TopupAttempt
	for rows.Next() {
		t, err := scanTopup(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, t)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	for _, t := range out {
		if _, err := tx.ExecContext(ctx, c.q(`UPDATE topup_attempts SET lease_until = ? WHERE id = ?`), codec.Nanos(now.Add(lease)), t.ID); err != nil {
			return nil, err
		}
	}
	return out, tx.Commit()
}

// UpdateTopup records an attempt's state and the event it raises.
func (c *Catalog) UpdateTopup(ctx context.Context, t fb.TopupAttempt, ev *fb.NewEvent) error {
	tx, err := c.W.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// A success (its webhook) is final: a slower "requested" after it
	// does not undo it.
	res, err := tx.ExecContext(ctx, c.q(`UPDATE topup_attempts SET status = ?, payment_id = ?, error = ?, amount_usd = ?, updated_at = ?, lease_until = 0 WHERE id = ? AND status <> ?`),
		t.Status, t.PaymentID, t.Error, int64(t.AmountUSD), codec.Nanos(t.UpdatedAt), t.ID, fb.TopupSucceeded)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err
	}
	if ev != nil {
		if err := c.addEvents(ctx, tx, []fb.NewEvent{*ev}); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// CreateEndpoint stores a webhook endpoint.
func (c *Catalog) CreateEndpoint(ctx context.Context, e fb.WebhookEndpoint) error {
	ev, err := json.Marshal(e.Events)
	if err != nil {
		return err
	}
	_, err = c.W.ExecContext(ctx, c.q(`INSERT INTO webhook_endpoints (id, url, secret, events, created_at) VALUES (?, ?, ?, ?, ?)`),
		e.ID, e.URL, e.Secret, string(ev), codec.Nanos(e.CreatedAt))
	if err != nil && c.IsUnique(err) {
		return fb.Errorf(fb.EConflict, "webhook endpoint %q already exists", e.ID)
	}
	return err
}

func scanEndpoint(r interface{ Scan(...any) error }) (fb.WebhookEndpoint, error) {
	var e fb.WebhookEndpoint
	var events string
	var at int64
	if err := r.Scan(&e.ID, &e.URL, &e.Secret, &events, &at); err != nil {
		return e, err
	}
	e.CreatedAt = codec.FromNanos(at)
	return e, json.Unmarshal([]byte(events), &e.Events)
}

// Endpoints lists the webhook endpoints by id.
func (c *Catalog) Endpoints(ctx context.Context) ([]fb.WebhookEndpoint, error) {
	rows, err := c.R.QueryContext(ctx, `SELECT id, url, secret, events, created_at FROM webhook_endpoints ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []fb.WebhookEndpoint{}
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Endpoint reads one endpoint.
func (c *Catalog) Endpoint(ctx context.Context, id string) (fb.WebhookEndpoint, error) {
	e, err := scanEndpoint(c.R.QueryRowContext(ctx, c.q(`SELECT id, url, secret, events, created_at FROM webhook_endpoints WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, notFound("webhook endpoint", id)
	}
	return e, err
}

// DeleteEndpoint removes an endpoint; its pending deliveries are dropped.
func (c *Catalog) DeleteEndpoint(ctx context.Context, id string) error {
	tx, err := c.W.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, c.q(`DELETE FROM webhook_endpoints WHERE id = ?`), id)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err != nil {
			return err
		}
		return notFound("webhook endpoint", id)
	}
	if _, err := tx.ExecContext(ctx, c.q(`UPDATE webhook_deliveries SET status = ? WHERE endpoint = ? AND status = ?`), fb.DeliveryFailed, id, fb.DeliveryPending); err != nil {
		return err
	}
	return tx.Commit()
}

// KeyBefore reports whether the customer's journal has a key with the
// prefix before seq.
func (c *Catalog) KeyBefore(ctx context.Context, customer, prefix string, seq int64) (bool, error) {
	var one int
	err := c.R.QueryRowContext(ctx, c.q(`SELECT 1 FROM journal WHERE customer = ? AND idem_key IS NOT NULL AND seq < ? AND substr(idem_key, 1, ?) = ? LIMIT 1`),
		customer, seq, len([]rune(prefix)), prefix).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// Cursor reads a follower's cursor.
func (c *Catalog) Cursor(ctx context.Context, name string) (fb.JournalCursor, bool, error) {
	var cur fb.JournalCursor
	err := c.W.QueryRowContext(ctx, c.q(`SELECT txn, seq FROM journal_cursors WHERE name = ?`), name).Scan(&cur.Txn, &cur.Seq)
	if errors.Is(err, sql.ErrNoRows) {
		return cur, false, nil
	}
	return cur, err == nil, err
}

// errMoved: another follower advanced the cursor first.
var errMoved = fb.Errorf(fb.EConflict, "the journal cursor moved")

// Advance moves a cursor and records what was derived, at once.
func (c *Catalog) Advance(ctx context.Context, name string, cur, next fb.JournalCursor, events []fb.NewEvent, topups []fb.TopupAttempt) error {
	tx, err := c.W.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var have fb.JournalCursor
	err = tx.QueryRowContext(ctx, c.q(`SELECT txn, seq FROM journal_cursors WHERE name = ?`+c.forUpdate()), name).Scan(&have.Txn, &have.Seq)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, c.q(`INSERT INTO journal_cursors (name, txn, seq) VALUES (?, ?, ?)`), name, next.Txn, next.Seq); err != nil {
			if c.IsUnique(err) {
				return errMoved
			}
			return err
		}
	case err != nil:
		return err
	case have != cur:
		return errMoved
	default:
		if _, err := tx.ExecContext(ctx, c.q(`UPDATE journal_cursors SET txn = ?, seq = ? WHERE name = ?`), next.Txn, next.Seq, name); err != nil {
			return err
		}
	}
	if err := c.addEvents(ctx, tx, events); err != nil {
		return err
	}
	for _, t := range topups {
		if _, err := tx.ExecContext(ctx, c.q(`INSERT INTO topup_attempts (`+topupColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (customer, crossing) DO NOTHING`),
			t.ID, t.Customer, t.Crossing, int64(t.Credits), int64(t.AmountUSD), t.Status, t.PaymentID, t.Error, codec.Nanos(t.CreatedAt), codec.Nanos(t.UpdatedAt)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (c *Catalog) forUpdate() string {
	if c.Dollar {
		return " FOR UPDATE"
	}
	return ""
}

// AddEvents records events, each once.
func (c *Catalog) AddEvents(ctx context.Context, events []fb.NewEvent) error {
	tx, err := c.W.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := c.addEvents(ctx, tx, events); err != nil {
		return err
	}
	return tx.Commit()
}

// addEvents inserts each event unless its id is recorded, then its
// deliveries, ordered after every earlier event.
func (c *Catalog) addEvents(ctx context.Context, tx *sql.Tx, events []fb.NewEvent) error {
	for _, ne := range events {
		e := ne.Event
		var seq int64
		err := tx.QueryRowContext(ctx, c.q(`INSERT INTO webhook_events (id, type, customer, created_at, data) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING RETURNING seq`), e.ID, e.Type, e.Customer, codec.Nanos(e.Created), string(e.Data)).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			continue // recorded already, with its deliveries
		}
		if err != nil {
			return err
		}
		for _, d := range ne.Deliveries {
			if _, err := tx.ExecContext(ctx, c.q(`INSERT INTO webhook_deliveries (id, event, endpoint, customer, ord, status, next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (event, endpoint) DO NOTHING`),
				d.ID, e.ID, d.Endpoint, e.Customer, seq, fb.DeliveryPending, codec.Nanos(d.NextAt), codec.Nanos(d.CreatedAt)); err != nil {
				return err
			}
		}
	}
	return nil
}

// ExpiringLots lists lots with free credit expiring before until.
func (c *Catalog) ExpiringLots(ctx context.Context, until time.Time, limit int) ([]fb.LotExpiry, error) {
	rows, err := c.R.QueryContext(ctx, c.q(`SELECT lot, customer, expires_at FROM lot_expiries WHERE expires_at < ? ORDER BY expires_at, lot LIMIT ?`), codec.Nanos(until), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []fb.LotExpiry
	for rows.Next() {
		var e fb.LotExpiry
		var at int64
		if err := rows.Scan(&e.Lot, &e.Customer, &at); err != nil {
			return nil, err
		}
		e.ExpiresAt = codec.FromNanos(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

const deliveryColumns = `d.id, d.event, e.type, d.endpoint, d.customer, d.ord, d.status, d.attempts, d.next_at, d.last_status, d.last_error, d.delivered_at, d.created_at, e.created_at, e.data`

func scanDelivery(r interface{ Scan(...any) error }) (fb.WebhookDelivery, error) {
	var d fb.WebhookDelivery
	var next, delivered, created, evAt int64
	var data string
	err := r.Scan(&d.ID, &d.Event, &d.Type, &d.Endpoint, &d.Customer, &d.Order, &d.Status, &d.Attempts, &next, &d.LastStatus, &d.LastError, &delivered, &created, &evAt, &data)
	if err != nil {
		return d, err
	}
	if d.Status == fb.DeliveryPending {
		d.NextAt = codec.FromNanos(next)
	}
	d.DeliveredAt, d.CreatedAt = codec.FromNanos(delivered), codec.FromNanos(created)
	d.Payload, err = eventBody(fb.WebhookEvent{ID: d.Event, Type: d.Type, Customer: d.Customer, Created: codec.FromNanos(evAt), Data: json.RawMessage(data)})
	return d, err
}

// eventBody is the body an event is delivered with.
func eventBody(e fb.WebhookEvent) ([]byte, error) {
	return json.Marshal(map[string]any{"id": e.ID, "type": e.Type, "created": e.Created.UTC().Format(time.RFC3339Nano), "data": e.Data})
}

// ClaimDeliveries leases the due heads of the endpoints' lines.
func (c *Catalog) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]fb.WebhookDelivery, error) {
	tx, err := c.W.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	n := codec.Nanos(now)
	// A delivery goes when nothing before it waits on its endpoint and
	// customer: the line's head. (FOR UPDATE may not lock a join's
	// events, so only the delivery rows are locked.)
	lock := ""
	if c.Dollar {
		lock = " FOR UPDATE OF d SKIP LOCKED"
	}
	rows, err := tx.QueryContext(ctx, c.q(`SELECT `+deliveryColumns+` FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event
		WHERE d.status = ? AND d.next_at <= ? AND d.lease_until <= ?
		AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.endpoint = d.endpoint AND p.customer = d.customer AND p.status = ? AND p.ord < d.ord)
		ORDER BY d.next_at, d.ord LIMIT ?`+lock), fb.DeliveryPending, n, n, fb.DeliveryPending, limit)
	if err != nil {
		return nil, err
	}
	var out []fb.WebhookDelivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, d)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	for _, d := range out {
		if _, err := tx.ExecContext(ctx, c.q(`UPDATE webhook_deliveries SET lease_until = ? WHERE id = ?`), codec.Nanos(now.Add(lease)), d.ID); err != nil {
			return nil, err
		}
	}
	return out, tx.Commit()
}

// FinishDelivery records an attempt and the delivery's new state.
func (c *Catalog) FinishDelivery(ctx context.Context, d fb.WebhookDelivery, a fb.DeliveryAttempt) error {
	tx, err := c.W.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, c.q(`SELECT attempts FROM webhook_deliveries WHERE id = ?`), d.ID).Scan(&n); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, c.q(`INSERT INTO webhook_attempts (delivery, n, at, status_code, error, duration_us) VALUES (?, ?, ?, ?, ?, ?)`),
		d.ID, n+1, codec.Nanos(a.At), a.StatusCode, a.Error, a.Duration.Microseconds()); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, c.q(`UPDATE webhook_deliveries SET status = ?, attempts = ?, next_at = ?, lease_until = 0, last_status = ?, last_error = ?, delivered_at = ? WHERE id = ?`),
		d.Status, n+1, codec.Nanos(d.NextAt), a.StatusCode, a.Error, codec.Nanos(d.DeliveredAt), d.ID); err != nil {
		return err
	}
	return tx.Commit()
}

// ReleaseLeases ends every delivery's and top-up's lease.
func (c *Catalog) ReleaseLeases(ctx context.Context) error {
	if _, err := c.W.ExecContext(ctx, `UPDATE webhook_deliveries SET lease_until = 0 WHERE lease_until <> 0`); err != nil {
		return err
	}
	_, err := c.W.ExecContext(ctx, `UPDATE topup_attempts SET lease_until = 0 WHERE lease_until <> 0`)
	return err
}

// Deliveries lists an endpoint's deliveries, newest first.
func (c *Catalog) Deliveries(ctx context.Context, endpoint string, limit int) ([]fb.WebhookDelivery, error) {
	rows, err := c.R.QueryContext(ctx, c.q(`SELECT `+deliveryColumns+` FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event
		WHERE d.endpoint = ? ORDER BY d.ord DESC LIMIT ?`), endpoint, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []fb.WebhookDelivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Delivery reads one delivery with its attempts, oldest first.
func (c *Catalog) Delivery(ctx context.Context, id string) (fb.WebhookDelivery, []fb.DeliveryAttempt, error) {
	d, err := scanDelivery(c.R.QueryRowContext(ctx, c.q(`SELECT `+deliveryColumns+` FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event WHERE d.id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, nil, notFound("webhook delivery", id)
	}
	if err != nil {
		return d, nil, err
	}
	rows, err := c.R.QueryContext(ctx, c.q(`SELECT at, status_code, error, duration_us FROM webhook_attempts WHERE delivery = ? ORDER BY n`), id)
	if err != nil {
		return d, nil, err
	}
	defer rows.Close()
	out := []fb.DeliveryAttempt{}
	for rows.Next() {
		var a fb.DeliveryAttempt
		var at, us int64
		if err := rows.Scan(&at, &a.StatusCode, &a.Error, &us); err != nil {
			return d, nil, err
		}
		a.At, a.Duration = codec.FromNanos(at), time.Duration(us)*time.Microsecond
		out = append(out, a)
	}
	return d, out, rows.Err()
}

// RetryDelivery makes a delivery due at at.
func (c *Catalog) RetryDelivery(ctx context.Context, id string, at time.Time) (fb.WebhookDelivery, error) {
	res, err := c.W.ExecContext(ctx, c.q(`UPDATE webhook_deliveries SET status = ?, next_at = ?, lease_until = 0 WHERE id = ?`), fb.DeliveryPending, codec.Nanos(at), id)
	if err != nil {
		return fb.WebhookDelivery{}, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err != nil {
			return fb.WebhookDelivery{}, err
		}
		return fb.WebhookDelivery{}, notFound("webhook delivery", id)
	}
	d, _, err := c.Delivery(ctx, id)
	return d, err
}
