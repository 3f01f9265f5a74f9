// Package notify owns the events Farebox sends out: a follower that reads
// the committed journal from a durable cursor and derives, from each
// entry, the webhook events it means (balance.low once per crossing of the
// customer's threshold, balance.depleted, subscription.renewed,
// topup.succeeded, a lease's start, end and pre-emption) and the automatic
// top-ups its commit calls for (one per crossing, recorded before any
// payment is made); credits.expiring ahead of a lot's expiry; and the
// delivery of every event to the endpoints that take it, signed, in order
// per endpoint and customer, retried with back-off and jitter for days.
// The journal is the outbox: the cursor moves in the transaction that
// records what was derived, so nothing is lost between a commit and a
// send, and a crash only repeats (receivers dedupe by event id).
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	fb "farebox"
	"farebox/ids"
)

// Event types.
const (
	BalanceLow         = "balance.low"
	BalanceDepleted    = "balance.depleted"
	CreditsExpiring    = "credits.expiring"
	SubscriptionRenew  = "subscription.renewed"
	TopupSucceeded     = "topup.succeeded"
	TopupFailed        = "topup.failed"
	KeyBudgetExceeded  = "key.budget_exceeded"
	LeaseStarted       = "lease.started"
	LeaseEnded         = "lease.ended"
	LeasePreempted     = "lease.preempted"
	SignatureHeader    = "Farebox-Signature"
	cursorName         = "notify"
	maxExpiringDays    = 365
	followBatch        = 500
	deliveryBatch      = 50
	deliveryConcurrent = 8
)

// Types lists every event type an endpoint may take.
var Types = []string{BalanceLow, BalanceDepleted, CreditsExpiring, SubscriptionRenew, TopupSucceeded, TopupFailed, KeyBudgetExceeded,
	LeaseStarted, LeaseEnded, LeasePreempted}

// Config tunes the service; zero fields take their defaults.
type Config struct {
	// Lease is how long a replica has a delivery to itself while it sends
	// it; 1 minute.
	Lease time.Duration
	// RetryFor is how long a failing delivery is retried: 3 days.
	RetryFor time.Duration
	// FirstRetry is the first back-off (10 s), doubling up to MaxBackoff
	// (1 hour), each with jitter (a half to the whole of it).
	FirstRetry, MaxBackoff time.Duration
	// Timeout bounds one attempt; 10 s.
	Timeout time.Duration
	// Client sends the deliveries; a client with no redirects when nil.
	Client *http.Client
	// Rand is the jitter's source of [0, 1); math/rand/v2 when nil.
	Rand func() float64
	// SoleWriter: this process is the store's only writer, so at start it
	// ends every lease (no other process can hold one).
	SoleWriter bool
	// Metrics is told of events, attempts and top-ups; nil: nobody.
	Metrics Observer
}

// Observer is told what the service does (the metrics).
type Observer interface {
	ObserveWebhookEvent(typ string, n int)
	ObserveWebhookAttempt(result string)
	ObserveTopup(status string)
}

type noObserver struct{}

func (noObserver) ObserveWebhookEvent(string, int) {}
func (noObserver) ObserveWebhookAttempt(string)    {}
func (noObserver) ObserveTopup(string)             {}

// Service follows the journal and delivers the events.
type Service struct {
	store fb.Store
	clock fb.Clock
	log   *slog.Logger
	newID func(string) string
	cfg   Config

	mu   sync.Mutex
	seen map[string]bool // events recorded by this process outside the journal's (expiring, budgets)
}

// New returns the service.
func New(store fb.Store, clock fb.Clock, newID func(string) string, log *slog.Logger, cfg Config) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if newID == nil {
		newID = ids.New
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Lease, time.Minute)
	def(&cfg.RetryFor, 72*time.Hour)
	def(&cfg.FirstRetry, 10*time.Second)
	def(&cfg.MaxBackoff, time.Hour)
	def(&cfg.Timeout, 10*time.Second)
	if cfg.Client == nil {
		cfg.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noObserver{}
	}
	return &Service{store: store, clock: clock, log: log, newID: newID, cfg: cfg, seen: map[string]bool{}}
}

// Run follows the journal and delivers events every interval until ctx
// ends.
func (s *Service) Run(ctx context.Context, every time.Duration) {
	if s.cfg.SoleWriter {
		if err := s.store.ReleaseLeases(ctx); err != nil {
			s.log.Warn("releasing the leases of the last run failed", "err", err)
		}
	}
	for {
		if _, err := s.Follow(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("following the journal failed; tried again", "err", err)
		}
		if _, err := s.Deliver(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("delivering webhooks failed; tried again", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.clock.After(every):
		}
	}
}

// Follow reads the journal from the cursor to its end, recording what each
// entry means with the cursor's move, and the lots due to be announced as
// expiring. It returns how many entries it read.
func (s *Service) Follow(ctx context.Context) (int, error) {
	cur, ok, err := s.store.Cursor(ctx, cursorName)
	if err != nil {
		return 0, err
	}
	if !ok {
		// A first start follows from here on: what was committed before
		// is not news.
		if cur, err = s.store.JournalEnd(ctx); err != nil {
			return 0, err
		}
		if err := s.store.Advance(ctx, cursorName, cur, cur, nil, nil); err != nil && fb.ErrorType(err) != fb.EConflict {
			return 0, err
		}
		if cur, _, err = s.store.Cursor(ctx, cursorName); err != nil {
			return 0, err
		}
	}
	n := 0
	for {
		entries, next, err := s.store.JournalAfter(ctx, cur, followBatch)
		if err != nil || len(entries) == 0 {
			if err == nil {
				err = s.expiring(ctx)
			}
			return n, err
		}
		events, topups, err := s.derive(ctx, entries)
		if err != nil {
			return n, err
		}
		err = s.store.Advance(ctx, cursorName, cur, next, events, topups)
		if fb.ErrorType(err) == fb.EConflict {
			// Another replica recorded these first: go on from its cursor.
			if cur, _, err = s.store.Cursor(ctx, cursorName); err != nil {
				return n, err
			}
			continue
		}
		if err != nil {
			return n, err
		}
		for _, e := range events {
			s.cfg.Metrics.ObserveWebhookEvent(e.Event.Type, 1)
		}
		for range topups {
			s.cfg.Metrics.ObserveTopup("recorded")
		}
		n += len(entries)
		cur = next
	}
}

// batch caches, for one batch of entries, what derive reads per customer.
type batch struct {
	s         *Service
	ctx       context.Context
	endpoints []fb.WebhookEndpoint
	alerts    map[string]fb.Alerts
	autos     map[string]*fb.AutoTopup
	last      map[string]*time.Time // latest top-up attempt's time
}

func (b *batch) thresholds(c string) (fb.Alerts, error) {
	if a, ok := b.alerts[c]; ok {
		return a, nil
	}
	a, err := b.s.thresholds(b.ctx, c)
	if err == nil {
		b.alerts[c] = a
	}
	return a, err
}

// thresholds are the customer's own alerts, else its plan's defaults.
func (s *Service) thresholds(ctx context.Context, c string) (fb.Alerts, error) {
	a, ok, err := s.store.Alerts(ctx, c)
	if err != nil || ok {
		return a, err
	}
	sub, err := s.store.Subscription(ctx, c)
	if fb.ErrorType(err) == fb.ENotFound {
		return fb.Alerts{}, nil
	}
	if err != nil {
		return a, err
	}
	p, err := s.store.Plan(ctx, sub.Plan)
	if fb.ErrorType(err) == fb.ENotFound {
		return fb.Alerts{}, nil
	}
	return fb.Alerts{LowBalance: p.LowBalance, ExpiringDays: p.ExpiringDays}, err
}

func (b *batch) auto(c string) (*fb.AutoTopup, error) {
	if a, ok := b.autos[c]; ok {
		return a, nil
	}
	t, err := b.s.store.AutoTopup(b.ctx, c)
	switch {
	case fb.ErrorType(err) == fb.ENotFound:
		b.autos[c] = nil
		return nil, nil
	case err != nil:
		return nil, err
	}
	b.autos[c] = &t
	return &t, nil
}

func (b *batch) lastTopup(c string) (*time.Time, error) {
	if t, ok := b.last[c]; ok {
		return t, nil
	}
	t, err := b.s.store.LastTopup(b.ctx, c)
	switch {
	case fb.ErrorType(err) == fb.ENotFound:
		b.last[c] = nil
		return nil, nil
	case err != nil:
		return nil, err
	}
	b.last[c] = &t.CreatedAt
	return &t.CreatedAt, nil
}

// crossed reports whether an op took the balance from at or above
// threshold to below it (after: the balance it left, see settled): one
// entry per crossing, since the engine applies one account's ops one
// after another.
func crossed(e *fb.JournalEntry, after, threshold fb.Amount) bool {
	return e.Before >= threshold && after < threshold
}

// settled is the balance an entry leaves as its thresholds judge it. A
// subscription's allowance lapsing at its period's end (the entry's
// Lapsed) is replaced by the next period's, granted by the renewal that
// follows — in the same commit, or a second later when the expiry sweep
// came first: that lapse is judged with the allowance to come, so a
// customer whose plan renews is neither told its balance is low nor
// charged an automatic top-up at every period's end.
func (b *batch) settled(e *fb.JournalEntry) (fb.Amount, error) {
	if e.Op.Kind != fb.OpExpire || e.Lapsed <= 0 {
		return e.After, nil
	}
	renewal, err := b.s.renewal(b.ctx, e)
	if err != nil {
		return 0, err
	}
	return e.After + renewal, nil
}

// renewal is the allowance the customer's subscription grants for the
// period after a lapse: its next plan's when the renewal that moves to it
// is still to come, else its plan's; 0 without a subscription.
func (s *Service) renewal(ctx context.Context, e *fb.JournalEntry) (fb.Amount, error) {
	sub, err := s.store.Subscription(ctx, e.Op.Customer)
	if fb.ErrorType(err) == fb.ENotFound {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	plan := sub.Plan
	if !e.Op.At.Before(sub.PeriodEnd) && sub.NextPlan != "" {
		plan = sub.NextPlan
	}
	p, err := s.store.Plan(ctx, plan)
	if fb.ErrorType(err) == fb.ENotFound {
		return 0, nil
	}
	return p.Credits, err
}

// derive is what a batch of journal entries means: events, and automatic
// top-ups to make.
func (s *Service) derive(ctx context.Context, entries []*fb.JournalEntry) ([]fb.NewEvent, []fb.TopupAttempt, error) {
	eps, err := s.store.Endpoints(ctx)
	if err != nil {
		return nil, nil, err
	}
	b := &batch{s: s, ctx: ctx, endpoints: eps, alerts: map[string]fb.Alerts{}, autos: map[string]*fb.AutoTopup{}, last: map[string]*time.Time{}}
	var events []fb.NewEvent
	var topups []fb.TopupAttempt
	add := func(e *fb.JournalEntry, typ string, data map[string]any) {
		data["customer"] = e.Op.Customer
		raw, _ := json.Marshal(data)
		ev := fb.WebhookEvent{ID: fmt.Sprintf("evt_%d_%s", e.Seq, strings.ReplaceAll(typ, ".", "_")), Type: typ, Customer: e.Op.Customer, Created: e.Op.At.UTC(), Data: raw}
		events = append(events, s.prepare(eps, ev))
	}
	for _, e := range entries {
		c := e.Op.Customer
		if c == "" {
			continue
		}
		th, err := b.thresholds(c)
		if err != nil {
			return nil, nil, err
		}
		at, err := b.auto(c)
		if err != nil {
			return nil, nil, err
		}
		// The settled balance is read only where a line was crossed.
		after := e.After
		if (th.LowBalance > 0 && crossed(e, after, th.LowBalance)) || (e.Before > 0 && after <= 0) || (at != nil && crossed(e, after, at.Threshold)) {
			if after, err = b.settled(e); err != nil {
				return nil, nil, err
			}
		}
		if th.LowBalance > 0 && crossed(e, after, th.LowBalance) {
			add(e, BalanceLow, map[string]any{"balance": max(e.After, 0), "threshold": th.LowBalance, "seq": e.Seq})
		}
		if e.Before > 0 && after <= 0 {
			add(e, BalanceDepleted, map[string]any{"balance": max(e.After, 0), "seq": e.Seq})
		}
		if at != nil && at.Threshold > 0 && crossed(e, after, at.Threshold) {
			last, err := b.lastTopup(c)
			if err != nil {
				return nil, nil, err
			}
			if last == nil || !e.Op.At.Before(last.Add(at.Cooldown)) {
				t := fb.TopupAttempt{ID: s.newID("tu_"), Customer: c, Crossing: e.Seq, Credits: at.Credits, Status: fb.TopupPending,
					CreatedAt: e.Op.At.UTC(), UpdatedAt: e.Op.At.UTC()}
				topups = append(topups, t)
				when := t.CreatedAt
				b.last[c] = &when
			} else {
				s.log.Info("an automatic top-up is due but within its cooldown", "customer", c, "seq", e.Seq, "last", *last)
			}
		}
		if e.Op.Kind == fb.OpGrant && e.Result.Lot != nil {
			l := e.Result.Lot
			switch {
			case strings.HasPrefix(e.Op.Key, fb.PaymentKeyPrefix):
				add(e, TopupSucceeded, map[string]any{"payment": strings.TrimPrefix(e.Op.Key, fb.PaymentKeyPrefix), "lot": l.ID,
					"credits": l.Amount, "paid_usd": l.PaidUSD, "balance": e.After})
			case strings.HasPrefix(e.Op.Key, allowancePrefix):
				earlier, err := s.store.KeyBefore(ctx, c, subscriptionPrefix, e.Seq)
				if err != nil {
					return nil, nil, err
				}
				if earlier {
					plan, _, _ := strings.Cut(strings.TrimPrefix(e.Op.Key, allowancePrefix), "\x1f")
					add(e, SubscriptionRenew, map[string]any{"plan": plan, "period_start": l.EffectiveAt, "period_end": l.ExpiresAt,
						"lot": l.ID, "credits": l.Amount})
				}
			}
		}
		if n := e.Op.Lease; n != nil {
			if typ := leaseEvent(n.Event); typ != "" {
				data, err := s.leaseData(ctx, e, n)
				if err != nil {
					return nil, nil, err
				}
				add(e, typ, data)
			}
		}
	}
	// The top-ups are priced by the payment service when it charges them.
	return events, topups, nil
}

// The keys of subscription grants (see plans.AllowanceKey, ChangeKey):
// an allowance after an earlier one of the customer is a renewal.
const (
	subscriptionPrefix = "\x1fsubscription"
	allowancePrefix    = "\x1fsubscription\x1f"
)

// CreateEndpoint checks and stores a webhook endpoint: an http or https
// URL and at least one event type of Types (or "*" for all). Its secret
// is made here, returned this once. The API and the dashboard create
// endpoints through here.
func (s *Service) CreateEndpoint(ctx context.Context, rawURL string, events []string) (fb.WebhookEndpoint, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(rawURL) > 2048 || !fb.Printable(rawURL) {
		return fb.WebhookEndpoint{}, fb.Invalid("url", "url must be an http or https URL")
	}
	if len(events) == 0 {
		return fb.WebhookEndpoint{}, fb.Invalid("events", "events must name at least one event type: %s", strings.Join(Types, ", "))
	}
	for _, e := range events {
		if e != "*" && !slices.Contains(Types, e) {
			return fb.WebhookEndpoint{}, fb.Invalid("events", "unknown event type %q; the types are %s (or * for all)", e, strings.Join(Types, ", "))
		}
	}
	ep := fb.WebhookEndpoint{ID: s.newID("we_"), URL: rawURL, Secret: "whsec_" + ids.Secret(32), Events: slices.Clone(events), CreatedAt: s.clock.Now().UTC()}
	return ep, s.store.CreateEndpoint(ctx, ep)
}

// leaseEvent is the webhook a lease's journaled event raises: its start,
// its end and its pre-emption (booked, renewed and billed raise none).
func leaseEvent(ev string) string {
	switch ev {
	case fb.LeaseStarted:
		return LeaseStarted
	case fb.LeaseEndedEv:
		return LeaseEnded
	case fb.LeasePreemptEv:
		return LeasePreempted
	}
	return ""
}

// leaseData is what a lease event says: the lease and its pool, its class,
// GPUs and window as booked (the journal's note, else the stored lease,
// whose booking does not change), and for its end why and when.
func (s *Service) leaseData(ctx context.Context, e *fb.JournalEntry, n *fb.LeaseNote) (map[string]any, error) {
	d := map[string]any{"lease": n.ID, "pool": n.Pool, "at": e.Op.At.UTC(), "version": n.Version}
	class, gpus, start, end := n.Class, n.GPUs, n.Start, n.End
	if class == "" || gpus == 0 || start.IsZero() {
		l, err := s.store.Lease(ctx, n.ID)
		switch {
		case err == nil:
			class, gpus, start = l.Class, l.GPUs, l.Start
			if end.IsZero() {
				end = l.End
			}
		case fb.ErrorType(err) != fb.ENotFound:
			return nil, err
		}
	}
	if !n.SetEnd.IsZero() {
		end = n.SetEnd
	}
	d["class"], d["gpus"], d["start"] = class, gpus, start.UTC()
	if !end.IsZero() {
		d["end"] = end.UTC()
	} else {
		d["end"] = nil // open-ended
	}
	if n.Reason != "" {
		d["reason"] = n.Reason
	}
	return d, nil
}

// Prepare is an event with its deliveries, one per endpoint that takes its
// type, due now.
func (s *Service) Prepare(ctx context.Context, ev fb.WebhookEvent) (fb.NewEvent, error) {
	eps, err := s.store.Endpoints(ctx)
	if err != nil {
		return fb.NewEvent{}, err
	}
	return s.prepare(eps, ev), nil
}

func (s *Service) prepare(eps []fb.WebhookEndpoint, ev fb.WebhookEvent) fb.NewEvent {
	ne := fb.NewEvent{Event: ev}
	now := s.clock.Now().UTC()
	for _, ep := range eps {
		if slices.Contains(ep.Events, ev.Type) || slices.Contains(ep.Events, "*") {
			ne.Deliveries = append(ne.Deliveries, fb.WebhookDelivery{ID: s.newID("wd_"), Endpoint: ep.ID, NextAt: now, CreatedAt: now})
		}
	}
	return ne
}

// emitOnce records an event that is not derived from the journal, once per
// process (and once in all: its id decides).
func (s *Service) emitOnce(ctx context.Context, ev fb.WebhookEvent) error {
	s.mu.Lock()
	done := s.seen[ev.ID]
	s.mu.Unlock()
	if done {
		return nil
	}
	ne, err := s.Prepare(ctx, ev)
	if err != nil {
		return err
	}
	if err := s.store.AddEvents(ctx, []fb.NewEvent{ne}); err != nil {
		return err
	}
	s.cfg.Metrics.ObserveWebhookEvent(ev.Type, 1)
	s.mu.Lock()
	if len(s.seen) > 100_000 {
		clear(s.seen)
	}
	s.seen[ev.ID] = true
	s.mu.Unlock()
	return nil
}

// BudgetExceeded raises key.budget_exceeded for a key whose budget refused
// a request: once per key and budget window.
func (s *Service) BudgetExceeded(ctx context.Context, k fb.APIKey, at time.Time) {
	ref := k.BudgetRef()
	if ref == nil {
		return
	}
	w := ref.Period.Window(at)
	data, _ := json.Marshal(map[string]any{"customer": k.Customer, "key": k.ID, "key_name": k.Name, "budget": ref.Limit,
		"budget_period": ref.Period, "window_start": w})
	ev := fb.WebhookEvent{ID: fmt.Sprintf("evt_budget_%s_%d", k.ID, w.Unix()), Type: KeyBudgetExceeded, Customer: k.Customer, Created: at.UTC(), Data: data}
	if err := s.emitOnce(ctx, ev); err != nil {
		s.log.Warn("recording key.budget_exceeded failed", "key", k.ID, "err", err)
	}
}

// expiring records credits.expiring for every lot whose expiry is within
// its customer's expiring_days.
func (s *Service) expiring(ctx context.Context) error {
	now := s.clock.Now().UTC()
	lots, err := s.store.ExpiringLots(ctx, now.AddDate(0, 0, maxExpiringDays), 1000)
	if err != nil {
		return err
	}
	days := map[string]int{}
	for _, le := range lots {
		d, ok := days[le.Customer]
		if !ok {
			th, err := s.thresholds(ctx, le.Customer)
			if err != nil {
				return err
			}
			d, days[le.Customer] = th.ExpiringDays, th.ExpiringDays
		}
		if d <= 0 || now.Before(le.ExpiresAt.AddDate(0, 0, -d)) || !now.Before(le.ExpiresAt) {
			continue
		}
		id := fmt.Sprintf("evt_expiring_%s_%d", le.Lot, le.ExpiresAt.Unix())
		s.mu.Lock()
		done := s.seen[id]
		s.mu.Unlock()
		if done {
			continue
		}
		var remaining fb.Amount
		if a, err := s.store.Account(ctx, le.Customer); err == nil {
			for _, l := range a.Lots {
				if l.ID == le.Lot {
					remaining = l.Remaining
				}
			}
		}
		data, _ := json.Marshal(map[string]any{"customer": le.Customer, "lot": le.Lot, "expires_at": le.ExpiresAt, "remaining": remaining, "days": d})
		if err := s.emitOnce(ctx, fb.WebhookEvent{ID: id, Type: CreditsExpiring, Customer: le.Customer, Created: now, Data: data}); err != nil {
			return err
		}
	}
	return nil
}

// Deliver sends the deliveries that are due, each the head of its
// endpoint's and customer's line; after a success the next of the line
// goes at once. It returns how many it delivered.
func (s *Service) Deliver(ctx context.Context) (int, error) {
	delivered := 0
	for range 10_000 {
		now := s.clock.Now()
		due, err := s.store.ClaimDeliveries(ctx, now, s.cfg.Lease, deliveryBatch)
		if err != nil || len(due) == 0 {
			return delivered, err
		}
		eps, err := s.store.Endpoints(ctx)
		if err != nil {
			return delivered, err
		}
		byID := map[string]fb.WebhookEndpoint{}
		for _, e := range eps {
			byID[e.ID] = e
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		sem := make(chan struct{}, deliveryConcurrent)
		var errs []error
		ok := 0
		for _, d := range due {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				success, err := s.send(ctx, byID[d.Endpoint], d)
				mu.Lock()
				defer mu.Unlock()
				if success {
					ok++
				}
				if err != nil {
					errs = append(errs, err)
				}
			}()
		}
		wg.Wait()
		delivered += ok
		if err := errors.Join(errs...); err != nil || ok == 0 {
			return delivered, err
		}
	}
	return delivered, nil
}

// Sign is the Farebox-Signature of body sent at t with secret.
func Sign(secret string, t time.Time, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	ts := strconv.FormatInt(t.Unix(), 10)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a Farebox-Signature header of body with secret, at now,
// within tolerance (0: any age). Receivers written in Go may use it.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("notify: the signature has no timestamp")
	}
	t := time.Unix(n, 0)
	if tolerance > 0 && (now.Sub(t) > tolerance || t.Sub(now) > tolerance) {
		return errors.New("notify: the signature is too old")
	}
	want := Sign(secret, t, body)
	_, wantSig, _ := strings.Cut(want, ",v1=")
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(wantSig)) {
			return nil
		}
	}
	return errors.New("notify: no valid signature")
}

// backoff is the wait before attempt n+1 after n failures: FirstRetry
// doubling, at most MaxBackoff, of which a random half is jitter.
func (s *Service) backoff(n int) time.Duration {
	d := s.cfg.FirstRetry
	for i := 1; i < n && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.cfg.MaxBackoff)
	return d/2 + time.Duration(s.cfg.Rand()*float64(d/2))
}

// send makes one attempt of d and records it. It reports whether the
// endpoint took it.
func (s *Service) send(ctx context.Context, ep fb.WebhookEndpoint, d fb.WebhookDelivery) (bool, error) {
	now := s.clock.Now()
	a := fb.DeliveryAttempt{At: now.UTC()}
	if ep.ID == "" {
		d.Status, a.Error = fb.DeliveryFailed, "the endpoint was deleted"
		return false, s.store.FinishDelivery(ctx, d, a)
	}
	actx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, ep.URL, bytes.NewReader(d.Payload))
	if err != nil {
		d.Status, a.Error = fb.DeliveryFailed, "the endpoint's URL is not valid"
		return false, s.store.FinishDelivery(ctx, d, a)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Farebox-Webhooks/1")
	req.Header.Set(SignatureHeader, Sign(ep.Secret, now, d.Payload))
	req.Header.Set("Farebox-Event-Id", d.Event)
	req.Header.Set("Farebox-Event-Type", d.Type)
	t0 := time.Now()
	resp, err := s.cfg.Client.Do(req)
	a.Duration = time.Since(t0)
	if err == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		a.StatusCode = resp.StatusCode
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			d.Status, d.DeliveredAt, d.NextAt = fb.DeliverySucceeded, now.UTC(), time.Time{}
			s.cfg.Metrics.ObserveWebhookAttempt("delivered")
			return true, s.store.FinishDelivery(ctx, d, a)
		}
		a.Error = fmt.Sprintf("HTTP %d", resp.StatusCode)
	} else {
		a.Error = "the endpoint could not be reached"
		if actx.Err() != nil {
			a.Error = "the endpoint did not answer in time"
		}
	}
	if now.Sub(d.CreatedAt) >= s.cfg.RetryFor {
		d.Status, d.NextAt = fb.DeliveryFailed, time.Time{}
		s.cfg.Metrics.ObserveWebhookAttempt("given_up")
		s.log.Warn("a webhook delivery was given up after its retries", "delivery", d.ID, "event", d.Event, "endpoint", ep.ID)
	} else {
		d.Status, d.NextAt = fb.DeliveryPending, now.Add(s.backoff(d.Attempts+1))
		s.cfg.Metrics.ObserveWebhookAttempt("failed")
	}
	return false, s.store.FinishDelivery(ctx, d, a)
}

// Retry makes a delivery due now.
func (s *Service) Retry(ctx context.Context, id string) (fb.WebhookDelivery, error) {
	return s.store.RetryDelivery(ctx, id, s.clock.Now().UTC())
}
