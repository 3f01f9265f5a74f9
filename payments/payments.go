// Package payments owns money coming in: a small Provider interface (Stripe
// is its first implementation, stripe.go) and the Service that turns
// payments into purchased lots exactly once — a Checkout Session bought
// by a customer, an automatic top-up made off session when a commit takes
// the balance below the customer's threshold — and refunds into clawbacks
// of the unspent part of their lot. Every credit movement is a ledger op
// keyed by the provider's ids, so a webhook delivered again, or at once by
// several deliveries, grants nothing more.
package payments

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	fb "farebox"
)

// Provider is a payment provider as Farebox uses it.
type Provider interface {
	// CreateCustomer makes the customer known to the provider and returns
	// the provider's id for it.
	CreateCustomer(ctx context.Context, customer, name string) (string, error)
	// Checkout opens a hosted payment page for a purchase of credits.
	Checkout(ctx context.Context, r CheckoutRequest) (Session, error)
	// Charge makes an off-session payment with a saved payment method;
	// the same IdempotencyKey again is the same payment. It returns the
	// payment's id; its outcome comes by webhook. A *Declined error is a
	// payment refused for good (a card declined).
	Charge(ctx context.Context, r ChargeRequest) (string, error)
	// DefaultPaymentMethod is the payment method the provider keeps as
	// the customer's default, "" when there is none.
	DefaultPaymentMethod(ctx context.Context, providerCustomer string) (string, error)
	// Event verifies a webhook's signature (an *InvalidSignature error
	// when it is not valid) and reads the event.
	Event(payload []byte, signature string) (Event, error)
}

// CheckoutRequest is a purchase of Credits for AmountCents.
type CheckoutRequest struct {
	Customer, ProviderCustomer string
	Credits                    fb.Amount
	AmountCents                int64
	SuccessURL, CancelURL      string
}

// Session is a hosted payment page.
type Session struct {
	ID  string `json:"id"`
	URL string `json:"url"`
}

// ChargeRequest is an off-session payment of an automatic top-up.
type ChargeRequest struct {
	IdempotencyKey             string
	Customer, ProviderCustomer string
	PaymentMethod              string
	Credits                    fb.Amount
	AmountCents                int64
	Attempt                    string
}

// Declined is a payment the provider refused for good.
type Declined struct{ Reason string }

func (d *Declined) Error() string { return "the payment was declined: " + d.Reason }

// InvalidSignature is a webhook whose signature does not verify.
type InvalidSignature struct{ Err error }

func (e *InvalidSignature) Error() string {
	return "the webhook's signature is not valid: " + e.Err.Error()
}

// Event types the service reads; others are answered and ignored.
const (
	EventCheckoutCompleted = "checkout.session.completed"
	EventIntentSucceeded   = "payment_intent.succeeded"
	EventIntentFailed      = "payment_intent.payment_failed"
	EventChargeRefunded    = "charge.refunded"
)

// Metadata keys Farebox sets on what it asks the provider for.
const (
	MetaCustomer = "farebox_customer"
	MetaCredits  = "credits"
	MetaKind     = "farebox_kind"
	MetaAttempt  = "farebox_attempt"
)

// Event is a verified webhook event, with the fields Farebox reads.
type Event struct {
	ID, Type string
	// Checkout Session (checkout.session.completed).
	Session *SessionEvent
	// PaymentIntent (payment_intent.*).
	Intent *IntentEvent
	// Charge (charge.refunded).
	Charge *ChargeEvent
}

// SessionEvent is a completed Checkout Session.
type SessionEvent struct {
	ID, ClientReferenceID, PaymentStatus, Currency, PaymentIntent, Customer string
	AmountTotal                                                             int64
	Metadata                                                                map[string]string
}

// IntentEvent is a PaymentIntent that succeeded or failed.
type IntentEvent struct {
	ID, Currency, Customer, PaymentMethod, Error string
	AmountReceived                               int64
	Metadata                                     map[string]string
}

// ChargeEvent is a charge refunded, in part or whole: AmountRefunded is
// its refunded total so far.
type ChargeEvent struct {
	ID, PaymentIntent, Currency string
	Amount, AmountRefunded      int64
}

// Ledger applies the service's ops.
type Ledger interface {
	SubmitReplay(ctx context.Context, op fb.Op) (fb.Result, bool, error)
}

// Events prepares an event for the webhook endpoints (the notify service).
type Events interface {
	Prepare(ctx context.Context, ev fb.WebhookEvent) (fb.NewEvent, error)
}

// Config prices credits: USDPerCredit micro-dollars buy one credit.
type Config struct {
	USDPerCredit fb.USD
	// TopupLease is how long a replica has an attempt to itself while it
	// calls the provider; 1 minute when 0.
	TopupLease time.Duration
	// Metrics is told of top-ups requested and failed; nil: nobody.
	Metrics interface{ ObserveTopup(status string) }
}

// Service takes payments into the ledger.
type Service struct {
	provider Provider
	store    fb.Store
	ledger   Ledger
	events   Events
	clock    fb.Clock
	log      *slog.Logger
	cfg      Config
}

// New returns the service. provider may be nil: payments are then not
// configured, and their routes answer so.
func New(provider Provider, store fb.Store, ledger Ledger, events Events, clock fb.Clock, log *slog.Logger, cfg Config) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.TopupLease <= 0 {
		cfg.TopupLease = time.Minute
	}
	return &Service{provider: provider, store: store, ledger: ledger, events: events, clock: clock, log: log, cfg: cfg}
}

// ErrNotConfigured: no payment provider is configured.
var ErrNotConfigured = fb.Errorf(fb.EUnavailable, "payments are not configured: set FAREBOX_STRIPE_SECRET_KEY and FAREBOX_STRIPE_WEBHOOK_SECRET").WithCode("payments_not_configured")

// Enabled reports whether a provider is configured.
func (s *Service) Enabled() bool { return s.provider != nil }

// Cents is what credits cost, in whole cents, rounded up: the customer
// never pays less than the price.
func (s *Service) Cents(credits fb.Amount) (int64, error) {
	usd, err := fb.MulDiv(int64(credits), int64(s.cfg.USDPerCredit), fb.Micro)
	if err != nil {
		return 0, fb.Invalid("credits", "too many credits to price")
	}
	cents := (usd + 9_999) / 10_000
	if cents < 50 {
		// Stripe's smallest charge in USD.
		return 0, fb.Invalid("credits", "%s credits cost %d cents; the smallest payment is 50 cents", credits, cents)
	}
	return cents, nil
}

// USDPerCredit is the price of a credit, in micro-dollars.
func (s *Service) USDPerCredit() fb.USD { return s.cfg.USDPerCredit }

// ParseCooldown reads an automatic top-up's cooldown ("1h", "30m"; "0s"
// for none; one hour when ""), at most a year.
func ParseCooldown(v string) (time.Duration, error) {
	if v == "" {
		return time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > 366*24*time.Hour {
		return 0, fb.Invalid("cooldown", "cooldown must be a duration such as \"1h\" or \"30m\" (0s for none), at most a year")
	}
	return d, nil
}

// FormatCooldown writes a cooldown the way ParseCooldown reads it, without
// the zero parts Go's durations print: "1h", "30m", "1h30m", "0s".
func FormatCooldown(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// SetAutoTopup checks and stores a customer's automatic top-up: a
// positive threshold and credits (which, with a provider, must make a
// payment it takes), its cooldown as ParseCooldown reads it. The API and
// the dashboard set it through here.
func (s *Service) SetAutoTopup(ctx context.Context, t fb.AutoTopup) (fb.AutoTopup, error) {
	if t.Threshold <= 0 || t.Threshold > fb.MaxTotal {
		return t, fb.Invalid("threshold", "threshold must be a positive amount of credits")
	}
	if t.Credits <= 0 || t.Credits > fb.MaxTotal {
		return t, fb.Invalid("credits", "credits must be a positive amount of credits")
	}
	if t.Cooldown < 0 || t.Cooldown > 366*24*time.Hour {
		return t, fb.Invalid("cooldown", "cooldown must be between 0 and a year")
	}
	if s.provider != nil {
		if _, err := s.Cents(t.Credits); err != nil {
			return t, err
		}
	}
	if _, err := s.store.Customer(ctx, t.Customer); err != nil {
		return t, err
	}
	t.UpdatedAt = s.clock.Now().UTC()
	return t, s.store.PutAutoTopup(ctx, t)
}

// AutoTopup is a customer's automatic top-up and its latest attempt (nil
// before the first); not_found when it is off.
func (s *Service) AutoTopup(ctx context.Context, customer string) (fb.AutoTopup, *fb.TopupAttempt, error) {
	t, err := s.store.AutoTopup(ctx, customer)
	if err != nil {
		return t, nil, err
	}
	last, err := s.store.LastTopup(ctx, customer)
	switch {
	case fb.ErrorType(err) == fb.ENotFound:
		return t, nil, nil
	case err != nil:
		return t, nil, err
	}
	return t, &last, nil
}

// payer returns the customer's provider id, creating it at the provider
// the first time.
func (s *Service) payer(ctx context.Context, customer string) (fb.PayerProfile, error) {
	p, err := s.store.Payer(ctx, customer)
	if err == nil && p.ProviderID != "" {
		return p, nil
	}
	if err != nil && fb.ErrorType(err) != fb.ENotFound {
		return p, err
	}
	c, err := s.store.Customer(ctx, customer)
	if err != nil {
		return p, err
	}
	id, err := s.provider.CreateCustomer(ctx, customer, c.Name)
	if err != nil {
		return p, providerError(err)
	}
	p = fb.PayerProfile{Customer: customer, ProviderID: id}
	if err := s.store.PutPayer(ctx, p); err != nil {
		return p, err
	}
	return s.store.Payer(ctx, customer)
}

func providerError(err error) error {
	var d *Declined
	if errors.As(err, &d) {
		return fb.Errorf(fb.EUpstream, "the payment provider refused: %s", d.Reason).WithCode("payment_declined")
	}
	return fb.Errorf(fb.EUpstream, "the payment provider could not be reached").WithCode("payment_provider_error")
}

// Checkout opens a Checkout Session for credits.
func (s *Service) Checkout(ctx context.Context, customer string, credits fb.Amount, successURL, cancelURL string) (Session, error) {
	if s.provider == nil {
		return Session{}, ErrNotConfigured
	}
	cents, err := s.Cents(credits)
	if err != nil {
		return Session{}, err
	}
	p, err := s.payer(ctx, customer)
	if err != nil {
		return Session{}, err
	}
	sess, err := s.provider.Checkout(ctx, CheckoutRequest{Customer: customer, ProviderCustomer: p.ProviderID, Credits: credits, AmountCents: cents, SuccessURL: successURL, CancelURL: cancelURL})
	if err != nil {
		s.log.Error("creating a checkout session failed", "customer", customer, "err", err)
		return Session{}, providerError(err)
	}
	return sess, nil
}

// HandleWebhook verifies and applies one webhook. A bad signature is an
// invalid_request and changes nothing; an event the service does not
// use, or one about a payment it does not know, is answered nil.
func (s *Service) HandleWebhook(ctx context.Context, payload []byte, signature string) error {
	if s.provider == nil {
		return ErrNotConfigured
	}
	ev, err := s.provider.Event(payload, signature)
	if err != nil {
		var bad *InvalidSignature
		if errors.As(err, &bad) {
			return fb.Invalid("Stripe-Signature", "%s", bad.Error())
		}
		return fb.Invalid("", "the webhook's body is not an event: %v", err)
	}
	switch {
	case ev.Session != nil && ev.Type == EventCheckoutCompleted:
		return s.checkoutCompleted(ctx, ev.Session)
	case ev.Intent != nil && ev.Type == EventIntentSucceeded:
		return s.intentSucceeded(ctx, ev.Intent)
	case ev.Intent != nil && ev.Type == EventIntentFailed:
		return s.intentFailed(ctx, ev.Intent)
	case ev.Charge != nil && ev.Type == EventChargeRefunded:
		return s.refunded(ctx, ev.Charge)
	}
	return nil
}

// LotID is the lot a payment becomes: one per payment id.
func LotID(payment string) string { return "lot_" + payment }

// grant makes a payment a purchased lot, once: the op is keyed by the
// payment's id, so a repeated or concurrent delivery replays the first
// grant. A different payload under the same key (another event naming
// the same payment with other figures) is the same payment: answered, not
// granted.
func (s *Service) grant(ctx context.Context, pay fb.Payment) error {
	op := fb.Op{Kind: fb.OpGrant, Customer: pay.Customer, Key: fb.PaymentKeyPrefix + pay.ID, LotID: LotID(pay.ID),
		Amount: pay.Credits, Source: fb.SourcePurchase, Priority: fb.SourcePurchase.DefaultPriority(), PaidUSD: pay.PaidUSD}
	_, replay, err := s.ledger.SubmitReplay(ctx, op)
	switch {
	case fb.ErrorType(err) == fb.EIdempotencyConflict:
		s.log.Warn("a payment was granted before with other figures; nothing more granted", "payment", pay.ID, "customer", pay.Customer)
	case fb.ErrorType(err) == fb.ENotFound || fb.ErrorType(err) == fb.EInvalid:
		// Nothing a retry would mend: the event is answered, and logged.
		s.log.Error("a payment cannot be granted", "payment", pay.ID, "customer", pay.Customer, "err", err)
		return nil
	case err != nil:
		return err
	}
	if !replay {
		s.log.Info("payment granted", "payment", pay.ID, "customer", pay.Customer, "kind", pay.Kind, "credits", pay.Credits, "paid_usd", pay.PaidUSD)
	}
	pay.CreatedAt = s.clock.Now().UTC()
	return s.store.PutPayment(ctx, pay)
}

func (s *Service) checkoutCompleted(ctx context.Context, sess *SessionEvent) error {
	if sess.PaymentStatus != "paid" {
		return nil // paid later (an asynchronous method): its own event comes then
	}
	if !strings.EqualFold(sess.Currency, "usd") {
		s.log.Warn("a checkout in another currency than USD is not granted", "session", sess.ID, "currency", sess.Currency)
		return nil
	}
	credits, err := fb.ParseAmount(sess.Metadata[MetaCredits])
	if err != nil || credits <= 0 || sess.ClientReferenceID == "" {
		s.log.Warn("a checkout without Farebox's client_reference_id and metadata.credits is not granted", "session", sess.ID)
		return nil
	}
	id := sess.PaymentIntent
	if id == "" {
		id = sess.ID
	}
	if sess.Customer != "" {
		if err := s.store.PutPayer(ctx, fb.PayerProfile{Customer: sess.ClientReferenceID, ProviderID: sess.Customer}); err != nil {
			return err
		}
	}
	return s.grant(ctx, fb.Payment{ID: id, Customer: sess.ClientReferenceID, Kind: fb.PaymentCheckout, Credits: credits,
		PaidUSD: fb.USD(sess.AmountTotal * 10_000), Lot: LotID(id)})
}

func (s *Service) intentSucceeded(ctx context.Context, pi *IntentEvent) error {
	customer := pi.Metadata[MetaCustomer]
	if customer == "" {
		return nil // not Farebox's
	}
	if pi.PaymentMethod != "" {
		// A checkout's payment method is kept for automatic top-ups.
		if err := s.store.PutPayer(ctx, fb.PayerProfile{Customer: customer, ProviderID: pi.Customer, PaymentMethod: pi.PaymentMethod}); err != nil {
			return err
		}
	}
	if pi.Metadata[MetaKind] != fb.PaymentAutoTopup {
		return nil // a checkout's credits come with checkout.session.completed
	}
	credits, err := fb.ParseAmount(pi.Metadata[MetaCredits])
	if err != nil || credits <= 0 || !strings.EqualFold(pi.Currency, "usd") {
		s.log.Warn("an automatic top-up without credits, or not in USD, is not granted", "payment", pi.ID)
		return nil
	}
	if err := s.grant(ctx, fb.Payment{ID: pi.ID, Customer: customer, Kind: fb.PaymentAutoTopup, Credits: credits,
		PaidUSD: fb.USD(pi.AmountReceived * 10_000), Lot: LotID(pi.ID)}); err != nil {
		return err
	}
	return s.finishAttempt(ctx, pi.Metadata[MetaAttempt], pi.ID, fb.TopupSucceeded, "")
}

func (s *Service) intentFailed(ctx context.Context, pi *IntentEvent) error {
	if pi.Metadata[MetaKind] != fb.PaymentAutoTopup {
		return nil
	}
	reason := pi.Error
	if reason == "" {
		reason = "the payment failed"
	}
	return s.finishAttempt(ctx, pi.Metadata[MetaAttempt], pi.ID, fb.TopupFailed, reason)
}

// finishAttempt records an attempt's outcome; a failure raises
// topup.failed (once: the event's id is the attempt's).
func (s *Service) finishAttempt(ctx context.Context, id, payment, status, reason string) error {
	if id == "" {
		return nil
	}
	t, err := s.store.Topup(ctx, id)
	if fb.ErrorType(err) == fb.ENotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if t.Status == fb.TopupSucceeded || (t.Status == status && t.Error == reason) {
		return nil
	}
	t.Status, t.Error, t.UpdatedAt = status, reason, s.clock.Now().UTC()
	if payment != "" {
		t.PaymentID = payment
	}
	var ev *fb.NewEvent
	if status == fb.TopupFailed {
		if ev, err = s.failedEvent(ctx, t); err != nil {
			return err
		}
	}
	return s.store.UpdateTopup(ctx, t, ev)
}

func (s *Service) failedEvent(ctx context.Context, t fb.TopupAttempt) (*fb.NewEvent, error) {
	if s.events == nil {
		return nil, nil
	}
	data := fmt.Appendf(nil, `{"customer":%q,"attempt":%q,"payment":%q,"credits":%q,"amount_usd":%q,"error":%q}`,
		t.Customer, t.ID, t.PaymentID, t.Credits.String(), t.AmountUSD.String(), t.Error)
	ne, err := s.events.Prepare(ctx, fb.WebhookEvent{ID: "evt_topup_failed_" + t.ID, Type: "topup.failed", Customer: t.Customer, Created: t.UpdatedAt, Data: data})
	return &ne, err
}

// refunded claws back the unspent part of the refunded payment's lot, pro
// rata: the lot's share that the refunded total pays for, of which what is
// spent stays spent and is reported.
func (s *Service) refunded(ctx context.Context, ch *ChargeEvent) error {
	if ch.PaymentIntent == "" || ch.Amount <= 0 || ch.AmountRefunded <= 0 {
		return nil
	}
	pay, err := s.store.Payment(ctx, ch.PaymentIntent)
	if fb.ErrorType(err) == fb.ENotFound {
		s.log.Warn("a refund of a payment Farebox did not grant is ignored", "charge", ch.ID, "payment", ch.PaymentIntent)
		return nil
	}
	if err != nil {
		return err
	}
	share, err := fb.MulDiv(int64(pay.Credits), min(ch.AmountRefunded, ch.Amount), ch.Amount)
	if err != nil || share <= 0 {
		return nil
	}
	res, _, err := s.ledger.SubmitReplay(ctx, fb.Op{Kind: fb.OpClawback, Customer: pay.Customer, LotID: pay.Lot, Amount: fb.Amount(share),
		Key: fmt.Sprintf("%s%s\x1f%d", fb.RefundKeyPrefix, ch.ID, ch.AmountRefunded)})
	if err != nil {
		return err
	}
	var taken, unrecovered fb.Amount
	if cb := res.Clawback; cb != nil {
		taken, unrecovered = cb.Taken, cb.Asked-cb.Taken
	}
	s.log.Info("refund clawed back", "payment", pay.ID, "customer", pay.Customer, "refunded_cents", ch.AmountRefunded, "taken", taken, "spent", unrecovered)
	return s.store.RefundPayment(ctx, pay.ID, fb.USD(min(ch.AmountRefunded, ch.Amount)*10_000), taken, unrecovered)
}

func (s *Service) observe(status string) {
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.ObserveTopup(status)
	}
}

// RunTopups makes the automatic top-ups the journal's follower recorded,
// every interval until ctx ends.
func (s *Service) RunTopups(ctx context.Context, every time.Duration) {
	if s.provider == nil {
		return
	}
	for {
		if _, err := s.Topups(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("automatic top-ups wait", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.clock.After(every):
		}
	}
}

// Topups makes the pending automatic top-ups: each attempt was recorded
// before this is called, and is made with the attempt's id as the
// provider's idempotency key, so an attempt made again (after a crash, by
// another replica after its lease) is the same payment. It returns how
// many it asked the provider for.
func (s *Service) Topups(ctx context.Context) (int, error) {
	if s.provider == nil {
		return 0, nil
	}
	claimed, err := s.store.ClaimTopups(ctx, s.clock.Now(), s.cfg.TopupLease, 20)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range claimed {
		if err := s.topup(ctx, t); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (s *Service) topup(ctx context.Context, t fb.TopupAttempt) error {
	fail := func(reason string) error {
		t.Status, t.Error, t.UpdatedAt = fb.TopupFailed, reason, s.clock.Now().UTC()
		ev, err := s.failedEvent(ctx, t)
		if err != nil {
			return err
		}
		s.log.Warn("an automatic top-up failed", "customer", t.Customer, "attempt", t.ID, "reason", reason)
		s.observe(fb.TopupFailed)
		return s.store.UpdateTopup(ctx, t, ev)
	}
	p, err := s.store.Payer(ctx, t.Customer)
	if fb.ErrorType(err) == fb.ENotFound || (err == nil && p.ProviderID == "") {
		return fail("the customer has no payment profile: a checkout saves one")
	}
	if err != nil {
		return err
	}
	pm := p.PaymentMethod
	if pm == "" {
		if pm, err = s.provider.DefaultPaymentMethod(ctx, p.ProviderID); err != nil {
			return err // retried after the lease
		}
	}
	if pm == "" {
		return fail("the customer has no saved payment method")
	}
	cents, err := s.Cents(t.Credits)
	if err != nil {
		return fail(err.Error())
	}
	t.AmountUSD = fb.USD(cents * 10_000)
	id, err := s.provider.Charge(ctx, ChargeRequest{IdempotencyKey: t.ID, Customer: t.Customer, ProviderCustomer: p.ProviderID,
		PaymentMethod: pm, Credits: t.Credits, AmountCents: cents, Attempt: t.ID})
	var declined *Declined
	switch {
	case errors.As(err, &declined):
		return fail(declined.Reason)
	case err != nil:
		s.log.Warn("an automatic top-up could not reach the provider; retried with the same idempotency key", "attempt", t.ID, "err", err)
		return nil
	}
	t.Status, t.PaymentID, t.UpdatedAt = fb.TopupRequested, id, s.clock.Now().UTC()
	s.observe(fb.TopupRequested)
	s.log.Info("automatic top-up requested", "customer", t.Customer, "attempt", t.ID, "payment", id, "credits", t.Credits)
	return s.store.UpdateTopup(ctx, t, nil)
}
