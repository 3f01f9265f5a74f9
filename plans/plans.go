package plans

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"time"

	fb "farebox"
)

// Submitter applies ledger ops (the ledger engine).
type Submitter interface {
	Submit(ctx context.Context, op fb.Op) (fb.Result, error)
}

// Service subscribes customers to plans and renews their periods.
type Service struct {
	store  fb.Store
	ledger Submitter
	clock  fb.Clock
	log    *slog.Logger
}

// New returns the service over store (the catalog: plans, subscriptions)
// and ledger, on clock.
func New(store fb.Store, ledger Submitter, clock fb.Clock, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: store, ledger: ledger, clock: clock, log: log}
}

// Effective says when a plan change takes effect.
const (
	AtPeriodEnd = "period_end"
	Now         = "now"
)

// AllowanceKey is the idempotency key of the grant of plan's allowance for
// the period starting at start: whoever grants it, however often, the
// ledger applies it once. It starts with a control character, which client
// keys may not hold, so no client key can collide with it.
func AllowanceKey(plan string, start time.Time) string {
	return "\x1fsubscription\x1f" + plan + "\x1f" + start.UTC().Format(time.RFC3339Nano)
}

// ChangeKey is the idempotency key of the allowance granted by a plan
// change made under the client's idempotency key key: a retry of the change
// grants it under the same key, so the ledger applies it once. Like
// AllowanceKey it starts with a control character, which client keys may
// not hold, so it collides with no client key and no allowance key.
func ChangeKey(key string) string {
	return "\x1fsubscription-change\x1f" + key
}

// ChangeScope is the scope of plan changes' keys in the store's keyed
// requests.
const ChangeScope = "subscription"

// Allowance is the grant of plan's credits for the period [start, end):
// a subscription lot paid price_usd, effective at start, expiring at end,
// of which up to rollover_max rolls over to the end of the next period
// (rollover ends).
func Allowance(customer string, p fb.Plan, start, end, next time.Time) fb.Op {
	op := fb.Op{
		Kind: fb.OpGrant, Customer: customer, Key: AllowanceKey(p.ID, start),
		Amount: p.Credits, Source: fb.SourceSubscription, Priority: fb.SourceSubscription.DefaultPriority(),
		EffectiveAt: start, ExpiresAt: end, PaidUSD: p.PriceUSD,
	}
	if p.RolloverMax > 0 {
		op.RolloverMax, op.RolloverUntil = min(p.RolloverMax, p.Credits), next
	}
	return op
}

// Validate checks a plan's own fields.
func Validate(p *fb.Plan) error {
	switch {
	case !p.Period.Valid():
		return fb.Invalid("period", "period must be day, week, month or year")
	case p.PriceUSD < 0:
		return fb.Invalid("price_usd", "price_usd must not be negative")
	case p.Credits < 0 || p.Credits > fb.MaxTotal:
		return fb.Invalid("credits", "credits must be between 0 and %s", fb.MaxTotal)
	case p.Credits == 0 && p.PriceUSD != 0:
		return fb.Invalid("credits", "a plan with a price must include credits (a plan of 0 credits costs 0: pay-as-you-go)")
	case p.RolloverMax < 0 || p.RolloverMax > p.Credits:
		return fb.Invalid("rollover_max", "rollover_max must be between 0 and credits")
	case p.OverdraftLimit < 0 || p.OverdraftLimit > fb.MaxTotal:
		return fb.Invalid("overdraft_limit", "overdraft_limit must be between 0 and %s", fb.MaxTotal)
	case p.RPM < 0:
		return fb.Invalid("rpm", "rpm must not be negative (0 is unlimited)")
	case p.TPM < 0:
		return fb.Invalid("tpm", "tpm must not be negative (0 is unlimited)")
	}
	if p.Credits > 0 {
		if _, err := fb.MulDiv(int64(p.PriceUSD), fb.Micro, int64(p.Credits)); err != nil {
			return fb.Invalid("price_usd", "price_usd per credit is too large")
		}
	}
	if len(p.Models) == 0 {
		p.Models = []string{"*"}
	}
	for _, m := range p.Models {
		if _, err := path.Match(m, ""); err != nil || m == "" {
			return fb.Invalid("models", "model pattern %q is not a valid glob", m)
		}
	}
	return nil
}

// Allows reports whether the plan's model globs admit model.
func Allows(p fb.Plan, model string) bool {
	for _, m := range p.Models {
		if ok, _ := path.Match(m, model); ok {
			return true
		}
	}
	return false
}

// Subscribe puts a customer on a plan from now: the first period starts
// now and its allowance is granted.
func (s *Service) Subscribe(ctx context.Context, customer, planID string) (fb.Subscription, error) {
	p, err := s.store.Plan(ctx, planID)
	if err != nil {
		return fb.Subscription{}, err
	}
	return s.subscribe(ctx, customer, p, s.clock.Now().UTC(), "")
}

// subscribe starts sub's first period of p at now, granting its allowance
// under grantKey (AllowanceKey when empty).
func (s *Service) subscribe(ctx context.Context, customer string, p fb.Plan, now time.Time, grantKey string) (fb.Subscription, error) {
	sub := fb.Subscription{Customer: customer, Plan: p.ID, Anchor: now}
	if err := s.startPeriod(ctx, &sub, p, now, true, grantKey); err != nil {
		return sub, err
	}
	return sub, s.store.PutSubscription(ctx, sub)
}

// maxSwaps bounds the retries of a subscription change that raced with
// another (a renewal, another change).
const maxSwaps = 8

// Change moves a customer to another plan. At the period's end (the
// default) the current period runs out as it is and the next one is the
// new plan's. Now: a new period of the new plan starts at once, with its
// allowance; what is left of the old allowance stays with the customer
// until its own expiry (it was paid for), and the overdraft limit becomes
// the new plan's; to the plan the customer is on already it is a no-op
// answering the subscription unchanged (a repeated change must not grant
// the allowance again). A customer without a subscription starts one now.
func (s *Service) Change(ctx context.Context, customer, planID, effective string) (fb.Subscription, error) {
	return s.ChangeWithKey(ctx, customer, planID, effective, "")
}

// ChangeWithKey is Change made under the client's idempotency key (none:
// Change). The first attempt is recorded with what it asks and its time
// before anything is granted. A retry with the same key and request
// answers the first attempt's subscription; if that attempt failed part
// way (the allowance granted, the subscription not written), the retry
// finishes it as of the first attempt's time, and its allowance, keyed by
// ChangeKey, is the same grant again, which the ledger applies once. The
// key with another request is idempotency_conflict.
func (s *Service) ChangeWithKey(ctx context.Context, customer, planID, effective, key string) (fb.Subscription, error) {
	if effective == "" {
		effective = AtPeriodEnd
	}
	if effective != AtPeriodEnd && effective != Now {
		return fb.Subscription{}, fb.Invalid("effective", "effective must be period_end or now")
	}
	p, err := s.store.Plan(ctx, planID)
	if err != nil {
		return fb.Subscription{}, err
	}
	now := s.clock.Now().UTC()
	if key == "" {
		return s.change(ctx, customer, p, effective, now, "")
	}
	fp := p.ID + "|" + effective
	rec, err := s.store.ClaimRequest(ctx, fb.KeyedRequest{Customer: customer, Scope: ChangeScope, Key: key, Fingerprint: fp, At: now})
	if err != nil {
		return fb.Subscription{}, err
	}
	if rec.Fingerprint != fp {
		return fb.Subscription{}, fb.Errorf(fb.EIdempotencyConflict, "idempotency key %q was used with a different subscription change", key)
	}
	if rec.Response != nil {
		var sub fb.Subscription
		if err := json.Unmarshal(rec.Response, &sub); err != nil {
			return sub, fmt.Errorf("the recorded answer to %s's change %q: %w", customer, key, err)
		}
		return sub, nil
	}
	sub, err := s.change(ctx, customer, p, effective, rec.At.UTC(), ChangeKey(key))
	if err != nil {
		return sub, err
	}
	b, err := json.Marshal(sub)
	if err != nil {
		return sub, err
	}
	// Should this fail, a retry finds the change made (a no-op) and
	// records it then.
	return sub, s.store.FinishRequest(ctx, customer, ChangeScope, key, b)
}

// change makes the change as of now, granting a "now" change's allowance
// under grantKey (AllowanceKey when empty). now is fixed across the
// compare-and-swap retries: the allowance is keyed by it (or by grantKey),
// so a retry grants nothing twice.
func (s *Service) change(ctx context.Context, customer string, p fb.Plan, effective string, now time.Time, grantKey string) (fb.Subscription, error) {
	for range maxSwaps {
		old, err := s.store.Subscription(ctx, customer)
		switch {
		case fb.ErrorType(err) == fb.ENotFound:
			return s.subscribe(ctx, customer, p, now, grantKey)
		case err != nil:
			return old, err
		}
		sub := old
		if effective == AtPeriodEnd {
			sub.NextPlan = p.ID
			if p.ID == sub.Plan {
				sub.NextPlan = ""
			}
			sub.UpdatedAt = now
		} else {
			if old.Plan == p.ID {
				return old, nil
			}
			sub.Plan, sub.NextPlan, sub.Anchor = p.ID, "", now
			if err := s.startPeriod(ctx, &sub, p, now, true, grantKey); err != nil {
				return sub, err
			}
		}
		// Compare-and-swap: a renewal or another change that wrote
		// meanwhile is not overwritten; this change is made again on
		// top of it.
		err = s.store.SwapSubscription(ctx, old, sub)
		if !errors.Is(err, fb.ErrSubscriptionChanged) {
			return sub, err
		}
	}
	return fb.Subscription{}, fb.Errorf(fb.EUnavailable, "the subscription of %s keeps changing; retry", customer)
}

// startPeriod grants the allowance of the period of sub's anchor that
// contains now (under grantKey, else AllowanceKey), sets the overdraft
// limit when asked, and moves sub to that period; the caller stores it.
func (s *Service) startPeriod(ctx context.Context, sub *fb.Subscription, p fb.Plan, now time.Time, limit bool, grantKey string) error {
	k, start, end := PeriodAt(sub.Anchor, p.Period, now)
	if p.Credits > 0 {
		next := PeriodStart(sub.Anchor, p.Period, k+2)
		op := Allowance(sub.Customer, p, start, end, next)
		if grantKey != "" {
			op.Key = grantKey
		}
		if _, err := s.ledger.Submit(ctx, op); err != nil {
			return fmt.Errorf("grant the %s allowance of %s: %w", p.ID, sub.Customer, err)
		}
	}
	if limit {
		if _, err := s.ledger.Submit(ctx, fb.Op{Kind: fb.OpLimit, Customer: sub.Customer, Amount: p.OverdraftLimit}); err != nil {
			return fmt.Errorf("set the overdraft limit of %s: %w", sub.Customer, err)
		}
	}
	sub.PeriodStart, sub.PeriodEnd, sub.UpdatedAt = start, end, now
	return nil
}

// RenewDue renews every subscription whose period has ended: it grants the
// allowance of the period that contains now (after downtime, only that
// one) under its deterministic key, so a renewal repeated by a restart or
// by another replica grants nothing twice. It returns how many it renewed.
func (s *Service) RenewDue(ctx context.Context) (int, error) {
	now := s.clock.Now().UTC()
	n := 0
	for {
		due, err := s.store.DueSubscriptions(ctx, now, 100)
		if err != nil || len(due) == 0 {
			return n, err
		}
		for _, sub := range due {
			if err := s.renew(ctx, sub, now); err != nil {
				return n, err
			}
			n++
		}
	}
}

func (s *Service) renew(ctx context.Context, sub fb.Subscription, now time.Time) error {
	old := sub
	planID, changed := sub.Plan, false
	if sub.NextPlan != "" && sub.NextPlan != sub.Plan {
		planID, changed = sub.NextPlan, true
	}
	p, err := s.store.Plan(ctx, planID)
	if err != nil {
		return fmt.Errorf("renew %s: %w", sub.Customer, err)
	}
	if changed {
		// The new plan's periods count from the old period's end.
		sub.Anchor, sub.Plan = sub.PeriodEnd, p.ID
	}
	sub.NextPlan = ""
	if err := s.startPeriod(ctx, &sub, p, now, changed, ""); err != nil {
		return err
	}
	if err := s.storeRenewal(ctx, old, sub); err != nil {
		return err
	}
	{
		s.log.Info("subscription renewed", "customer", sub.Customer, "plan", p.ID, "period_start", sub.PeriodStart, "period_end", sub.PeriodEnd)
	}
	return nil
}

// Run renews due subscriptions every interval until ctx ends.
func (s *Service) Run(ctx context.Context, every time.Duration) {
	for {
		if _, err := s.RenewDue(ctx); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("subscription renewal failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.clock.After(every):
		}
	}
}

// storeRenewal writes a renewed subscription over old with a compare-and-swap.
// When the stored one changed meanwhile: if its period moved on, another
// replica renewed it (the allowance is keyed, so granted once) and there
// is nothing to do; if a plan change came in after the period had ended,
// it is kept for the next period's end.
func (s *Service) storeRenewal(ctx context.Context, old, renewed fb.Subscription) error {
	for range maxSwaps {
		err := s.store.SwapSubscription(ctx, old, renewed)
		if !errors.Is(err, fb.ErrSubscriptionChanged) {
			return err
		}
		fresh, err := s.store.Subscription(ctx, old.Customer)
		if err != nil {
			return err
		}
		if !fresh.PeriodEnd.Equal(old.PeriodEnd) {
			return nil
		}
		renewed.NextPlan = fresh.NextPlan
		if renewed.NextPlan == renewed.Plan {
			renewed.NextPlan = ""
		}
		old = fresh
	}
	return fb.Errorf(fb.EUnavailable, "the subscription of %s keeps changing; the renewal is retried", old.Customer)
}
