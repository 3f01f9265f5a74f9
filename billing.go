package farebox

import (
	"context"
	"encoding/json"
	"time"
)

// Alerts are a customer's thresholds for its webhooks: balance.low when a
// commit takes its balance below LowBalance (0: none), credits.expiring
// ExpiringDays ahead of a lot's expiry (0: none). A plan may carry the same
// fields as defaults for its customers.
type Alerts struct {
	LowBalance   Amount `json:"low_balance"`
	ExpiringDays int    `json:"expiring_days"`
}

// AutoTopup buys Credits when a commit takes the customer's balance below
// Threshold, at most once per Cooldown.
type AutoTopup struct {
	Customer  string        `json:"customer"`
	Threshold Amount        `json:"threshold"`
	Credits   Amount        `json:"credits"`
	Cooldown  time.Duration `json:"cooldown"`
	UpdatedAt time.Time     `json:"updated_at"`
}

// PayerProfile is what a payment provider knows a customer by: its id
// there and the payment method saved for payments off session.
type PayerProfile struct {
	Customer      string `json:"customer"`
	ProviderID    string `json:"provider_id"`
	PaymentMethod string `json:"payment_method,omitempty"`
}

// Idempotency keys of the ledger ops payments make. They start with a
// control character, which client keys may not hold, so none collides.
const (
	// PaymentKeyPrefix + the payment's id keys its grant: a payment
	// becomes a lot once, however often its webhook comes.
	PaymentKeyPrefix = "\x1fpayment\x1f"
	// RefundKeyPrefix + charge + "\x1f" + the refunded total keys a
	// refund's clawback.
	RefundKeyPrefix = "\x1frefund\x1f"
)

// Payment kinds.
const (
	PaymentCheckout  = "checkout"
	PaymentAutoTopup = "auto_topup"
)

// Payment is a payment that became a purchased lot: its provider's id (the
// lot's grant is keyed by it), the lot, and what its refunds took back.
type Payment struct {
	ID          string    `json:"id"`
	Customer    string    `json:"customer"`
	Kind        string    `json:"kind"`
	Lot         string    `json:"lot"`
	Credits     Amount    `json:"credits"`
	PaidUSD     USD       `json:"paid_usd"`
	CreatedAt   time.Time `json:"created_at"`
	RefundedUSD USD       `json:"refunded_usd"`
	// ClawedBack is what refunds took back of the lot; Unrecovered what
	// they asked of it that had been spent (or held) already.
	ClawedBack  Amount `json:"clawed_back"`
	Unrecovered Amount `json:"unrecovered"`
}

// Top-up attempt states: recorded (before the provider is called), then
// requested (the provider took the payment; its outcome comes by webhook),
// succeeded or failed.
const (
	TopupPending   = "pending"
	TopupRequested = "requested"
	TopupSucceeded = "succeeded"
	TopupFailed    = "failed"
)

// TopupAttempt is one automatic top-up, recorded before the provider is
// called: its id is the provider's idempotency key, and Crossing the
// journal entry whose commit took the balance below the threshold (one
// attempt per crossing, whatever ran it).
type TopupAttempt struct {
	ID        string    `json:"id"`
	Customer  string    `json:"customer"`
	Crossing  int64     `json:"crossing_seq"`
	Credits   Amount    `json:"credits"`
	AmountUSD USD       `json:"amount_usd"`
	Status    string    `json:"status"`
	PaymentID string    `json:"payment_id,omitempty"`
	Error     string    `json:"error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// WebhookEndpoint is a URL Farebox sends events to, signed with Secret.
type WebhookEndpoint struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Secret    string    `json:"-"`
	Events    []string  `json:"events"`
	CreatedAt time.Time `json:"created_at"`
}

// WebhookEvent is an event for the webhook endpoints. Its id is chosen by
// what it is about (the journal entry, the lot and its expiry, …), so the
// same event derived twice is recorded once.
type WebhookEvent struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Customer string          `json:"customer"`
	Created  time.Time       `json:"created"`
	Data     json.RawMessage `json:"data"`
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed" // given up after its retries
)

// WebhookDelivery is one event's delivery to one endpoint, in order per
// endpoint and customer.
type WebhookDelivery struct {
	ID          string    `json:"id"`
	Event       string    `json:"event"`
	Type        string    `json:"type"`
	Endpoint    string    `json:"endpoint"`
	Customer    string    `json:"customer"`
	Status      string    `json:"status"`
	Attempts    int       `json:"attempts"`
	NextAt      time.Time `json:"next_attempt_at,omitzero"`
	LastStatus  int       `json:"last_status_code,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
	CreatedAt   time.Time `json:"created_at"`
	// Payload is the signed body; Order the event's place (per endpoint
	// and customer, earlier first).
	Payload []byte `json:"-"`
	Order   int64  `json:"-"`
}

// DeliveryAttempt is one attempt of a delivery, for its log.
type DeliveryAttempt struct {
	At         time.Time     `json:"at"`
	StatusCode int           `json:"status_code"`
	Error      string        `json:"error,omitempty"`
	Duration   time.Duration `json:"-"`
}

// NewEvent is an event with the deliveries it makes (one per endpoint
// that takes its type), recorded together.
type NewEvent struct {
	Event      WebhookEvent
	Deliveries []WebhookDelivery
}

// JournalCursor is a journal follower's place: every entry at or before it
// has been seen. Txn orders entries by the transaction that wrote them
// where several writers commit out of sequence (PostgreSQL); 0 elsewhere.
type JournalCursor struct {
	Txn int64 `json:"txn"`
	Seq int64 `json:"seq"`
}

// Billing is the part of the store that keeps payments, auto top-ups,
// thresholds, webhook endpoints and the outbox of events to deliver. Every
// store implements it and passes storetest.
type Billing interface {
	// Alerts answers a customer's thresholds, and false when none are set.
	Alerts(ctx context.Context, customer string) (Alerts, bool, error)
	PutAlerts(ctx context.Context, customer string, a Alerts) error
	AutoTopup(ctx context.Context, customer string) (AutoTopup, error)
	PutAutoTopup(ctx context.Context, t AutoTopup) error
	// DeleteAutoTopup turns it off; not_found when it was off.
	DeleteAutoTopup(ctx context.Context, customer string) error

	Payer(ctx context.Context, customer string) (PayerProfile, error)
	// PutPayer records a customer's id at the provider, keeping the
	// payment method recorded unless p names one.
	PutPayer(ctx context.Context, p PayerProfile) error

	// PutPayment records a payment once (the first record stands).
	PutPayment(ctx context.Context, p Payment) error
	Payment(ctx context.Context, id string) (Payment, error)
	// RefundPayment records what a refund of the payment came to (the
	// refunded total, and what its clawback took and could not), once: a
	// total not above the one recorded changes nothing.
	RefundPayment(ctx context.Context, id string, refunded USD, clawedBack, unrecovered Amount) error

	// LastTopup is the customer's latest attempt; not_found for none.
	LastTopup(ctx context.Context, customer string) (TopupAttempt, error)
	Topup(ctx context.Context, id string) (TopupAttempt, error)
	// ClaimTopups leases up to limit pending attempts until now+lease
	// (another replica skips them meanwhile) and returns them.
	ClaimTopups(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]TopupAttempt, error)
	// UpdateTopup records an attempt's new status, payment, error and
	// price (and ends its lease), with the event it raises, if any, in
	// the same transaction.
	UpdateTopup(ctx context.Context, t TopupAttempt, ev *NewEvent) error

	CreateEndpoint(ctx context.Context, e WebhookEndpoint) error
	Endpoints(ctx context.Context) ([]WebhookEndpoint, error)
	Endpoint(ctx context.Context, id string) (WebhookEndpoint, error)
	DeleteEndpoint(ctx context.Context, id string) error

	// JournalAfter returns up to limit committed journal entries after
	// cur, in an order no later commit can insert an entry before, and the
	// cursor after them (cur when none). JournalEnd is the cursor after
	// everything committed so far.
	JournalAfter(ctx context.Context, cur JournalCursor, limit int) ([]*JournalEntry, JournalCursor, error)
	JournalEnd(ctx context.Context) (JournalCursor, error)
	// KeyBefore reports whether the customer's journal has an entry
	// before seq whose idempotency key starts with prefix.
	KeyBefore(ctx context.Context, customer, prefix string, seq int64) (bool, error)
	// Cursor is a follower's stored cursor, false when it has none.
	Cursor(ctx context.Context, name string) (JournalCursor, bool, error)
	// Advance moves the follower's cursor from cur to next and records
	// what it derived, in one transaction: events (an event already
	// recorded is skipped, with its deliveries) and top-up attempts (one
	// per customer and crossing). When the stored cursor is not cur
	// (another replica advanced it) it records nothing and answers a
	// conflict.
	Advance(ctx context.Context, name string, cur, next JournalCursor, events []NewEvent, topups []TopupAttempt) error
	// AddEvents records events outside the journal's (a failed top-up, a
	// refused budget), each once.
	AddEvents(ctx context.Context, events []NewEvent) error
	// ExpiringLots lists lots with free credit that expire before until,
	// from after (exclusive lot id order within the same instant is not
	// needed: callers dedupe by event id).
	ExpiringLots(ctx context.Context, until time.Time, limit int) ([]LotExpiry, error)

	// ClaimDeliveries leases, until now+lease, up to limit deliveries due
	// at now, each the earliest undelivered one of its endpoint and
	// customer (so they arrive in order), and returns them with payloads.
	ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]WebhookDelivery, error)
	// FinishDelivery records an attempt and the delivery's new state
	// (status, next attempt), ending its lease.
	FinishDelivery(ctx context.Context, d WebhookDelivery, a DeliveryAttempt) error
	// ReleaseLeases ends every lease (a sole writer starting again: no
	// other process can hold one).
	ReleaseLeases(ctx context.Context) error
	Deliveries(ctx context.Context, endpoint string, limit int) ([]WebhookDelivery, error)
	Delivery(ctx context.Context, id string) (WebhookDelivery, []DeliveryAttempt, error)
	// RetryDelivery makes a delivery due again at at, whatever its state.
	RetryDelivery(ctx context.Context, id string, at time.Time) (WebhookDelivery, error)
}

// LotExpiry is a lot with free credit and its expiry.
type LotExpiry struct {
	Lot       string
	Customer  string
	ExpiresAt time.Time
}
