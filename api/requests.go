package api

import (
	"encoding/json"
	"time"

	fb "farebox"
	"farebox/ledger"
)

// The request bodies of the management API. Amount fields stay raw so that
// each is parsed exactly, with its own name in the error.

type customerRequest struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Plan string `json:"plan"`
}

func parseCustomer(body []byte) (customerRequest, error) {
	var req customerRequest
	if err := decodeStrict(body, &req, false); err != nil {
		return req, err
	}
	if req.ID != "" {
		if err := validID("id", req.ID); err != nil {
			return req, err
		}
	}
	if err := textField("name", req.Name, 200); err != nil {
		return req, err
	}
	if req.Plan != "" {
		if err := validID("plan", req.Plan); err != nil {
			return req, err
		}
	}
	return req, nil
}

type grantRequest struct {
	Amount         json.RawMessage `json:"amount"`
	Source         string          `json:"source"`
	PaidUSD        json.RawMessage `json:"paid_usd"`
	Priority       *int            `json:"priority"`
	EffectiveAt    *string         `json:"effective_at"`
	ExpiresAt      *string         `json:"expires_at"`
	IdempotencyKey string          `json:"idempotency_key"`
}

// parseGrant turns a grant body into a ledger op for customer.
func parseGrant(body []byte, customer, headerKey string) (fb.Op, error) {
	var req grantRequest
	if err := decodeStrict(body, &req, false); err != nil {
		return fb.Op{}, err
	}
	op := fb.Op{Kind: fb.OpGrant, Customer: customer}
	var ok bool
	var err error
	if op.Amount, ok, err = amountField("amount", req.Amount); err != nil {
		return op, err
	} else if !ok {
		return op, fb.Invalid("amount", "amount is required")
	}
	if op.Amount <= 0 {
		return op, fb.Invalid("amount", "amount must be greater than 0")
	}
	if req.Source == "" {
		req.Source = string(fb.SourcePurchase)
	}
	op.Source = fb.Source(req.Source)
	if !op.Source.Valid() {
		return op, fb.Invalid("source", "source must be one of subscription, purchase, promo, refund, adjustment")
	}
	if op.PaidUSD, _, err = usdField("paid_usd", req.PaidUSD); err != nil {
		return op, err
	}
	if op.PaidUSD < 0 {
		return op, fb.Invalid("paid_usd", "paid_usd must not be negative")
	}
	if op.Source == fb.SourcePromo && op.PaidUSD != 0 {
		return op, fb.Invalid("paid_usd", "a promo lot is free: paid_usd must be 0")
	}
	op.Priority = op.Source.DefaultPriority()
	if req.Priority != nil {
		op.Priority = *req.Priority
	}
	if op.EffectiveAt, err = timeField("effective_at", req.EffectiveAt); err != nil {
		return op, err
	}
	if op.ExpiresAt, err = timeField("expires_at", req.ExpiresAt); err != nil {
		return op, err
	}
	if op.Key, err = idempotencyKey(headerKey, req.IdempotencyKey); err != nil {
		return op, err
	}
	return op, ledger.Validate(&op)
}

type holdRequest struct {
	Customer       string          `json:"customer"`
	Amount         json.RawMessage `json:"amount"`
	TTLSeconds     *int64          `json:"ttl_seconds"`
	AllowPartial   bool            `json:"allow_partial"`
	IdempotencyKey string          `json:"idempotency_key"`
}

func parseHold(body []byte, headerKey string) (fb.Op, error) {
	var req holdRequest
	if err := decodeStrict(body, &req, false); err != nil {
		return fb.Op{}, err
	}
	op := fb.Op{Kind: fb.OpHold, Customer: req.Customer, AllowPartial: req.AllowPartial, TTL: ledger.DefaultHoldTTL}
	if req.Customer == "" {
		return op, fb.Invalid("customer", "customer is required")
	}
	if err := validID("customer", req.Customer); err != nil {
		return op, err
	}
	var ok bool
	var err error
	if op.Amount, ok, err = amountField("amount", req.Amount); err != nil {
		return op, err
	} else if !ok {
		return op, fb.Invalid("amount", "amount is required")
	}
	if op.Amount <= 0 {
		return op, fb.Invalid("amount", "amount must be greater than 0")
	}
	if req.TTLSeconds != nil {
		s := *req.TTLSeconds
		if s < 1 || s > int64(ledger.MaxHoldTTL/time.Second) {
			return op, fb.Invalid("ttl_seconds", "ttl_seconds must be between 1 and %d", int64(ledger.MaxHoldTTL/time.Second))
		}
		op.TTL = time.Duration(s) * time.Second
	}
	if op.Key, err = idempotencyKey(headerKey, req.IdempotencyKey); err != nil {
		return op, err
	}
	return op, ledger.Validate(&op)
}

type resolveRequest struct {
	Amount json.RawMessage `json:"amount"`
	// AllowOverCapture lets a capture take more than the hold (the excess
	// from available credit, the rest uncollected); without it an amount
	// above the hold is refused.
	AllowOverCapture bool   `json:"allow_over_capture"`
	IdempotencyKey   string `json:"idempotency_key"`
}

// parseResolve parses a capture (capture true) or release body; both may
// be empty.
func parseResolve(body []byte, holdID, headerKey string, capture bool) (fb.Op, error) {
	var req resolveRequest
	if err := decodeStrict(body, &req, true); err != nil {
		return fb.Op{}, err
	}
	op := fb.Op{Kind: fb.OpRelease, HoldID: holdID}
	if capture {
		op.Kind = fb.OpCapture
		amt, ok, err := amountField("amount", req.Amount)
		if err != nil {
			return op, err
		}
		if amt < 0 {
			return op, fb.Invalid("amount", "amount must not be negative")
		}
		op.Amount, op.Full, op.AllowOverCapture = amt, !ok, req.AllowOverCapture
	} else if req.Amount != nil {
		return op, fb.Invalid("amount", "a release returns the whole hold and takes no amount")
	} else if req.AllowOverCapture {
		return op, fb.Invalid("allow_over_capture", "a release captures nothing and takes no allow_over_capture")
	}
	var err error
	if op.Key, err = idempotencyKey(headerKey, req.IdempotencyKey); err != nil {
		return op, err
	}
	return op, ledger.Validate(&op)
}
