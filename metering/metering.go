// Package metering turns usage events (CloudEvents 1.0) into debits:
// it validates each event, prices it with the rate card in force at the
// event's time, and debits the customer through the ledger exactly once per
// (source, id), forever, with a usage row written in the same transaction.
// One bad event never sinks the others of its batch.
package metering

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	fb "farebox"
	"farebox/pricing"
)

// Limits of one request.
const (
	MaxEvents   = 1000
	MaxBodySize = 4 << 20
	maxIDLength = 256
)

// Ledger applies debits and says whether an answer is a replay.
type Ledger interface {
	SubmitReplay(ctx context.Context, op fb.Op) (fb.Result, bool, error)
}

// Cards gives the rate card in force.
type Cards interface {
	Card(ctx context.Context) (*pricing.Card, error)
}

// Subscriptions says which plan a customer is on (the catalog).
type Subscriptions interface {
	Subscription(ctx context.Context, customer string) (fb.Subscription, error)
}

// Service meters events.
type Service struct {
	ledger Ledger
	cards  Cards
	subs   Subscriptions
	now    func() time.Time
}

// New returns a service that prices with cards, debits through ledger and
// reports each usage under its customer's plan, from subs.
func New(ledger Ledger, cards Cards, subs Subscriptions, now func() time.Time) *Service {
	return &Service{ledger: ledger, cards: cards, subs: subs, now: now}
}

// plansOf is the plan of each customer of the prepared ops, read once per
// customer ("" for none).
func (s *Service) plansOf(ctx context.Context, ops []fb.Op) (map[string]string, error) {
	out := map[string]string{}
	for _, op := range ops {
		if _, ok := out[op.Customer]; ok || op.Usage == nil {
			continue
		}
		sub, err := s.subs.Subscription(ctx, op.Customer)
		switch {
		case err == nil:
			out[op.Customer] = sub.Plan
		case fb.ErrorType(err) == fb.ENotFound:
			out[op.Customer] = ""
		default:
			return nil, err
		}
	}
	return out, nil
}

// Event is a CloudEvents 1.0 usage event.
type Event struct {
	SpecVersion string          `json:"specversion"`
	ID          string          `json:"id"`
	Source      string          `json:"source"`
	Type        string          `json:"type"`
	Subject     string          `json:"subject"`
	Time        string          `json:"time"`
	DataType    string          `json:"datacontenttype"`
	Data        json.RawMessage `json:"data"`
}

// Result is one event's outcome.
type Result struct {
	ID      string     `json:"id"`
	Source  string     `json:"source,omitempty"`
	Status  string     `json:"status"` // accepted, duplicate, rejected
	Cost    *fb.Amount `json:"cost,omitempty"`
	Error   string     `json:"error,omitempty"` // a code, when rejected
	Message string     `json:"message,omitempty"`
}

// Statuses.
const (
	Accepted  = "accepted"
	Duplicate = "duplicate"
	Rejected  = "rejected"
)

// Parse reads a request body: one event (a JSON object) or a batch (an
// array). batch says the content type was the batch one, which must hold an
// array. Events that are not objects become placeholders that Meter
// rejects; an unreadable body is an error.
func Parse(body []byte, batch bool) ([]json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, fb.Invalid("", "the body must be a CloudEvent or an array of them")
	}
	if body[0] != '[' {
		if batch {
			return nil, fb.Invalid("", "application/cloudevents-batch+json takes a JSON array of events")
		}
		return []json.RawMessage{json.RawMessage(body)}, nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fb.Invalid("", "malformed JSON: %v", err)
	}
	if len(raw) == 0 {
		return nil, fb.Invalid("", "the batch holds no events")
	}
	if len(raw) > MaxEvents {
		return nil, fb.Errorf(fb.ETooLarge, "the batch holds %d events; the limit is %d", len(raw), MaxEvents)
	}
	return raw, nil
}

// Meter prices and debits each event and returns one result per event, in
// order. An error is returned only when the ledger could not commit (the
// client should retry the whole request; duplicates are safe).
func (s *Service) Meter(ctx context.Context, raw []json.RawMessage) ([]Result, error) {
	results := make([]Result, len(raw))
	card, err := s.cards.Card(ctx)
	if card == nil {
		return nil, err
	}
	now := s.now().UTC()
	ops := make([]fb.Op, len(raw))
	valid := make([]bool, len(raw))
	for i, r := range raw {
		ops[i], results[i], valid[i] = s.prepare(r, card, now)
	}
	plans, err := s.plansOf(ctx, ops)
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failure error
	for i, op := range ops {
		if !valid[i] {
			continue
		}
		op.Usage.Plan = plans[op.Customer]
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, replay, err := s.ledger.SubmitReplay(ctx, op)
			res := &results[i]
			switch {
			case err == nil:
				res.Status, res.Cost = Accepted, &got.Captured
				if replay {
					res.Status = Duplicate
				}
			case isClientError(err):
				res.Status, res.Error, res.Message = Rejected, code(err), message(err)
			default:
				mu.Lock()
				failure = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failure != nil {
		return nil, failure
	}
	return results, nil
}

func isClientError(err error) bool {
	switch fb.ErrorType(err) {
	case fb.EInvalid, fb.ENotFound, fb.EInsufficientCredits, fb.EIdempotencyConflict:
		return true
	}
	return false
}

func code(err error) string {
	switch fb.ErrorType(err) {
	case fb.ENotFound:
		return "unknown_customer"
	case fb.EInsufficientCredits:
		return "insufficient_credits"
	case fb.EIdempotencyConflict:
		return "idempotency_conflict"
	}
	return "invalid"
}

func message(err error) string {
	var fe *fb.Error
	if errors.As(err, &fe) {
		return fe.Message
	}
	return err.Error()
}

func reject(res Result, code, format string, args ...any) (fb.Op, Result, bool) {
	res.Status, res.Error, res.Message = Rejected, code, fmt.Sprintf(format, args...)
	return fb.Op{}, res, false
}

// prepare validates and prices one event and builds its debit.
func (s *Service) prepare(raw json.RawMessage, card *pricing.Card, now time.Time) (fb.Op, Result, bool) {
	var res Result
	ev, err := decodeEvent(raw)
	if ev != nil {
		res.ID, res.Source = ev.ID, ev.Source
	}
	if err != nil {
		return reject(res, "invalid", "%s", message(err))
	}
	at := now
	if ev.Time != "" {
		if at, err = time.Parse(time.RFC3339Nano, ev.Time); err != nil {
			return reject(res, "invalid", "time must be an RFC 3339 time such as 2026-11-23T10:00:00Z")
		}
		at = at.UTC()
	}
	model, q, err := decodeData(ev.Data)
	if err != nil {
		return reject(res, "invalid", "%s", message(err))
	}
	price, ok := card.At(model, at)
	if !ok {
		return reject(res, "unknown_model", "no price for model %q at %s; unknown models are never free", model, at.Format(time.RFC3339))
	}
	cost, err := pricing.Cost(price.Rates, q)
	if err != nil {
		if errors.Is(err, fb.ErrOverflow) {
			return reject(res, "invalid", "the event's price overflows")
		}
		return reject(res, "invalid", "%s", err.Error())
	}
	key, err := EventKey(ev.Source, ev.ID)
	if err != nil {
		return reject(res, "invalid", "%s", message(err))
	}
	op := fb.Op{
		Kind: fb.OpDebit, Customer: ev.Subject, Amount: cost, Event: key, Digest: digest(ev, at, model, q),
		Usage: &fb.Usage{ID: ev.ID, Source: ev.Source, Customer: ev.Subject, Model: model, At: at, Quantities: q, Credits: cost},
	}
	return op, res, true
}

// keySeparator separates an event's source and id in its key. Neither part
// may hold it (nor any control character).
const keySeparator = "\x1f"

// EventKey is the idempotency key of a metered event, in the ledger's
// global scope (farebox.Op.Event): its source, the unit separator 0x1f, its
// id. This is the only place the key is made.
//
// It is unambiguous because a part holding a control character is refused
// here (and, with the field named, when the event is decoded): 0x1f only
// ever separates, so two different (source, id) pairs never share a key —
// ("a\x1fb", "c") and ("a", "b\x1fc") were one key before the parts were
// checked. And it is byte for byte the encoding every stored key has:
// events are deduplicated forever, so the key of a valid event never
// changes.
func EventKey(source, id string) (string, error) {
	switch {
	case source == "" || !fb.Printable(source):
		return "", fb.Invalid("source", "source must be non-empty printable UTF-8, without control characters")
	case id == "" || !fb.Printable(id):
		return "", fb.Invalid("id", "id must be non-empty printable UTF-8, without control characters")
	}
	return source + keySeparator + id, nil
}

func decodeEvent(raw json.RawMessage) (*Event, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var ev Event
	if err := dec.Decode(&ev); err != nil {
		var partial struct {
			ID     any `json:"id"`
			Source any `json:"source"`
		}
		json.Unmarshal(raw, &partial)
		id, _ := partial.ID.(string)
		src, _ := partial.Source.(string)
		return &Event{ID: id, Source: src}, fb.Invalid("", "the event is not a CloudEvent object: %v", err)
	}
	switch {
	case ev.SpecVersion != "1.0":
		return &ev, fb.Invalid("specversion", "specversion must be \"1.0\"")
	case ev.ID == "" || len(ev.ID) > maxIDLength:
		return &ev, fb.Invalid("id", "id is required (at most %d characters)", maxIDLength)
	case !fb.Printable(ev.ID):
		return &ev, fb.Invalid("id", "id must be printable UTF-8, without control characters")
	case ev.Source == "" || len(ev.Source) > maxIDLength:
		return &ev, fb.Invalid("source", "source is required (at most %d characters)", maxIDLength)
	case !fb.Printable(ev.Source):
		return &ev, fb.Invalid("source", "source must be printable UTF-8, without control characters")
	case ev.Type == "":
		return &ev, fb.Invalid("type", "type is required")
	case !fb.Printable(ev.Type):
		return &ev, fb.Invalid("type", "type must be printable UTF-8, without control characters")
	case ev.Subject == "":
		return &ev, fb.Invalid("subject", "subject (the customer id) is required")
	case !fb.ValidID(ev.Subject):
		// No customer can have such an id: not unknown_customer but
		// invalid, and never sent to a store.
		return &ev, fb.Invalid("subject", "subject (the customer id) must be 1 to %d letters, digits, '_', '-' and '.'", fb.MaxIDLength)
	case ev.DataType != "" && ev.DataType != "application/json":
		return &ev, fb.Invalid("datacontenttype", "data must be application/json")
	case len(ev.Data) == 0 || ev.Data[0] != '{':
		return &ev, fb.Invalid("data", "data must be an object naming the model and its quantities")
	}
	return &ev, nil
}

// decodeData reads the model and quantities. Tokens, images and requests
// are non-negative integers; seconds are non-negative decimals with at most
// 6 places. Anything else is an error naming the field.
func decodeData(data json.RawMessage) (string, fb.Quantities, error) {
	var q fb.Quantities
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return "", q, fb.Invalid("data", "data must be a JSON object: %v", err)
	}
	var model string
	if raw, ok := fields["model"]; !ok || json.Unmarshal(raw, &model) != nil || model == "" {
		return "", q, fb.Invalid("data.model", "data.model must name a priced model")
	}
	if !fb.Printable(model) {
		return "", q, fb.Invalid("data.model", "data.model must be printable UTF-8, without control characters")
	}
	counts := map[string]*int64{
		"input_tokens": &q.InputTokens, "output_tokens": &q.OutputTokens, "cached_input_tokens": &q.CachedInputTokens,
		"reasoning_tokens": &q.ReasoningTokens, "images": &q.Images, "requests": &q.Requests,
	}
	seconds := map[string]*int64{"audio_seconds": &q.AudioMicros, "video_seconds": &q.VideoMicros, "gpu_seconds": &q.GPUMicros}
	for name, raw := range fields {
		if name == "model" {
			continue
		}
		s := string(bytes.Trim(raw, `"`))
		if dst, ok := counts[name]; ok {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				return "", q, fb.Invalid("data."+name, "data.%s must be a non-negative integer", name)
			}
			*dst = n
			continue
		}
		if dst, ok := seconds[name]; ok {
			a, err := fb.ParseAmount(s)
			if err != nil || a < 0 || s == "" {
				return "", q, fb.Invalid("data."+name, "data.%s must be a non-negative number of seconds with at most 6 decimals", name)
			}
			*dst = int64(a)
			continue
		}
		return "", q, fb.Invalid("data."+name, "data.%s is not a quantity the rate card knows", name)
	}
	return model, q, nil
}

// digest is the canonical digest of what an event says (its key aside):
// the same event sent again matches it, a changed one does not. Parsed
// values are used, so "12" and 12 agree. An event without a time is
// priced at its arrival, which a resend does not change.
func digest(ev *Event, at time.Time, model string, q fb.Quantities) string {
	when := "-"
	if ev.Time != "" {
		when = strconv.FormatInt(at.UnixNano(), 10)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%d,%d,%d,%d,%d,%d,%d,%d,%d", ev.Subject, ev.Type, when, model,
		q.InputTokens, q.OutputTokens, q.CachedInputTokens, q.ReasoningTokens, q.Images, q.AudioMicros, q.VideoMicros, q.GPUMicros, q.Requests)
	return hex.EncodeToString(h.Sum(nil)[:16])
}
