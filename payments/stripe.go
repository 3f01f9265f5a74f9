package payments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	fb "farebox"
)

// StripeConfig configures the Stripe provider.
type StripeConfig struct {
	SecretKey     string
	WebhookSecret string
	// APIBase is Stripe's API URL; https://api.stripe.com when "" (a
	// stripe-mock URL in tests).
	APIBase    string
	HTTPClient *http.Client
}

// Stripe is the Provider on Stripe's API (stripe-go).
type Stripe struct {
	client *stripe.Client
	secret string
}

var _ Provider = (*Stripe)(nil)

// NewStripe returns the Stripe provider.
func NewStripe(cfg StripeConfig) (*Stripe, error) {
	if cfg.SecretKey == "" || cfg.WebhookSecret == "" {
		return nil, errors.New("stripe: both the secret key and the webhook secret are needed")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	retries := int64(2)
	bc := &stripe.BackendConfig{HTTPClient: hc, MaxNetworkRetries: &retries, LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull}}
	if cfg.APIBase != "" {
		bc.URL = stripe.String(cfg.APIBase)
	}
	return &Stripe{client: stripe.NewClient(cfg.SecretKey, stripe.WithBackends(stripe.NewBackendsWithConfig(bc))), secret: cfg.WebhookSecret}, nil
}

// CreateCustomer creates a Stripe customer for a Farebox customer.
func (s *Stripe) CreateCustomer(ctx context.Context, customer, name string) (string, error) {
	p := &stripe.CustomerCreateParams{Name: stripe.String(name)}
	p.AddMetadata(MetaCustomer, customer)
	// One Stripe customer per Farebox customer, even when two checkouts
	// race to create it.
	p.SetIdempotencyKey("farebox-customer-" + customer)
	c, err := s.client.V1Customers.Create(ctx, p)
	if err != nil {
		return "", stripeError(err)
	}
	return c.ID, nil
}

// Checkout creates a Checkout Session: its client_reference_id is the
// customer and metadata.credits the credits bought; the payment method is
// saved for payments off session (automatic top-ups).
func (s *Stripe) Checkout(ctx context.Context, r CheckoutRequest) (Session, error) {
	meta := map[string]string{MetaCustomer: r.Customer, MetaCredits: r.Credits.String(), MetaKind: fb.PaymentCheckout}
	p := &stripe.CheckoutSessionCreateParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModePayment)),
		ClientReferenceID: stripe.String(r.Customer),
		SuccessURL:        stripe.String(r.SuccessURL),
		CancelURL:         stripe.String(r.CancelURL),
		Metadata:          meta,
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{
			Quantity: stripe.Int64(1),
			PriceData: &stripe.CheckoutSessionCreateLineItemPriceDataParams{
				Currency:    stripe.String("usd"),
				UnitAmount:  stripe.Int64(r.AmountCents),
				ProductData: &stripe.CheckoutSessionCreateLineItemPriceDataProductDataParams{Name: stripe.String(r.Credits.String() + " credits")},
			},
		}},
		PaymentIntentData: &stripe.CheckoutSessionCreatePaymentIntentDataParams{
			Metadata:         meta,
			SetupFutureUsage: stripe.String("off_session"),
		},
	}
	if r.ProviderCustomer != "" {
		p.Customer = stripe.String(r.ProviderCustomer)
	}
	if r.CancelURL == "" {
		p.CancelURL = nil
	}
	sess, err := s.client.V1CheckoutSessions.Create(ctx, p)
	if err != nil {
		return Session{}, stripeError(err)
	}
	return Session{ID: sess.ID, URL: sess.URL}, nil
}

// Charge creates and confirms an off-session PaymentIntent, under Stripe's
// Idempotency-Key: the same key again answers the same PaymentIntent.
func (s *Stripe) Charge(ctx context.Context, r ChargeRequest) (string, error) {
	p := &stripe.PaymentIntentCreateParams{
		Amount:        stripe.Int64(r.AmountCents),
		Currency:      stripe.String("usd"),
		Customer:      stripe.String(r.ProviderCustomer),
		PaymentMethod: stripe.String(r.PaymentMethod),
		OffSession:    stripe.Bool(true),
		Confirm:       stripe.Bool(true),
		Metadata: map[string]string{MetaCustomer: r.Customer, MetaCredits: r.Credits.String(), MetaKind: fb.PaymentAutoTopup,
			MetaAttempt: r.Attempt},
	}
	p.SetIdempotencyKey(r.IdempotencyKey)
	pi, err := s.client.V1PaymentIntents.Create(ctx, p)
	if err != nil {
		return "", stripeError(err)
	}
	return pi.ID, nil
}

// DefaultPaymentMethod is the customer's invoice default, else its first
// card.
func (s *Stripe) DefaultPaymentMethod(ctx context.Context, providerCustomer string) (string, error) {
	c, err := s.client.V1Customers.Retrieve(ctx, providerCustomer, nil)
	if err != nil {
		return "", stripeError(err)
	}
	if c.InvoiceSettings != nil && c.InvoiceSettings.DefaultPaymentMethod != nil && c.InvoiceSettings.DefaultPaymentMethod.ID != "" {
		return c.InvoiceSettings.DefaultPaymentMethod.ID, nil
	}
	lp := &stripe.CustomerListPaymentMethodsParams{Customer: stripe.String(providerCustomer)}
	lp.Limit = stripe.Int64(1)
	for pm, err := range s.client.V1Customers.ListPaymentMethods(ctx, lp) {
		if err != nil {
			return "", stripeError(err)
		}
		return pm.ID, nil
	}
	return "", nil
}

// stripeError tells a payment refused for good (a card error) from the
// rest, which are worth trying again.
func stripeError(err error) error {
	var se *stripe.Error
	if errors.As(err, &se) && (se.Type == stripe.ErrorTypeCard || se.HTTPStatusCode == http.StatusPaymentRequired) {
		reason := string(se.Code)
		if se.DeclineCode != "" {
			reason += " (" + string(se.DeclineCode) + ")"
		}
		if reason == "" {
			reason = se.Msg
		}
		return &Declined{Reason: reason}
	}
	return fmt.Errorf("stripe: %w", err)
}

// Event verifies a webhook with stripe-go's webhook package, Stripe's
// 300 s tolerance, whatever the event's api_version (only the fields named
// here are read, which every version has).
func (s *Stripe) Event(payload []byte, signature string) (Event, error) {
	e, err := webhook.ConstructEventWithOptions(payload, signature, s.secret, webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		if errors.Is(err, webhook.ErrInvalidHeader) || errors.Is(err, webhook.ErrNoValidSignature) ||
			errors.Is(err, webhook.ErrNotSigned) || errors.Is(err, webhook.ErrTooOld) {
			return Event{}, &InvalidSignature{Err: err}
		}
		return Event{}, err
	}
	out := Event{ID: e.ID, Type: string(e.Type)}
	if e.Data == nil {
		return out, nil
	}
	raw := e.Data.Raw
	switch out.Type {
	case EventCheckoutCompleted:
		var o struct {
			ID                string            `json:"id"`
			ClientReferenceID string            `json:"client_reference_id"`
			PaymentStatus     string            `json:"payment_status"`
			Currency          string            `json:"currency"`
			AmountTotal       int64             `json:"amount_total"`
			PaymentIntent     expandable        `json:"payment_intent"`
			Customer          expandable        `json:"customer"`
			Metadata          map[string]string `json:"metadata"`
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			return out, err
		}
		out.Session = &SessionEvent{ID: o.ID, ClientReferenceID: o.ClientReferenceID, PaymentStatus: o.PaymentStatus, Currency: o.Currency,
			AmountTotal: o.AmountTotal, PaymentIntent: string(o.PaymentIntent), Customer: string(o.Customer), Metadata: o.Metadata}
	case EventIntentSucceeded, EventIntentFailed:
		var o struct {
			ID               string            `json:"id"`
			Currency         string            `json:"currency"`
			AmountReceived   int64             `json:"amount_received"`
			Customer         expandable        `json:"customer"`
			PaymentMethod    expandable        `json:"payment_method"`
			Metadata         map[string]string `json:"metadata"`
			LastPaymentError *struct {
				Code        string `json:"code"`
				DeclineCode string `json:"decline_code"`
				Message     string `json:"message"`
			} `json:"last_payment_error"`
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			return out, err
		}
		out.Intent = &IntentEvent{ID: o.ID, Currency: o.Currency, AmountReceived: o.AmountReceived, Customer: string(o.Customer),
			PaymentMethod: string(o.PaymentMethod), Metadata: o.Metadata}
		if le := o.LastPaymentError; le != nil {
			out.Intent.Error = le.Code
			if le.DeclineCode != "" {
				out.Intent.Error += " (" + le.DeclineCode + ")"
			}
			if out.Intent.Error == "" {
				out.Intent.Error = le.Message
			}
		}
	case EventChargeRefunded:
		var o struct {
			ID             string     `json:"id"`
			Currency       string     `json:"currency"`
			Amount         int64      `json:"amount"`
			AmountRefunded int64      `json:"amount_refunded"`
			PaymentIntent  expandable `json:"payment_intent"`
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			return out, err
		}
		out.Charge = &ChargeEvent{ID: o.ID, PaymentIntent: string(o.PaymentIntent), Currency: o.Currency, Amount: o.Amount, AmountRefunded: o.AmountRefunded}
	}
	return out, nil
}

// expandable is an id Stripe sends as a string, or inside the object when
// expanded.
type expandable string

func (x *expandable) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*x = expandable(s)
		return nil
	}
	var o struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	*x = expandable(o.ID)
	return nil
}
