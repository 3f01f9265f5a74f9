package sponsored

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"time"

	fb "farebox"
)

// Ask is a request that may carry a suggestion: whose it is (the customer,
// its plan, the key), the end user the frequency cap counts (the request's
// user field; "" counts the key), the last user message, the base of the
// click link when no PublicURL is set, and how long the bid may be held
// before the response is delivered.
type Ask struct {
	Customer, Plan, KeyID, User string
	Text                        string
	BaseURL                     string
	HoldFor                     time.Duration
}

// Suggestion is what a response carries, at its top level as
// farebox_suggestion.
type Suggestion struct {
	ID    string `json:"id"`
	Label string `json:"label"`
	Title string `json:"title"`
	Text  string `json:"text"`
	URL   string `json:"url"`
}

// Label is every suggestion's label.
const Label = "Sponsored"

// Placement is a suggestion placed on one response: its view counted and
// its bid held. The response's writer calls Shown once it delivered the
// response, or Dropped when it did not; whichever comes first counts, once.
type Placement struct {
	Suggestion Suggestion

	s       *Service
	c       fb.Campaign
	hold    string // "" for a campaign whose impressions are free
	subject string
	day     time.Time
	plan    string
	topic   string
	score   int64
	once    sync.Once
}

// JSON is the suggestion's object.
func (p *Placement) JSON() json.RawMessage {
	b, _ := json.Marshal(p.Suggestion)
	return b
}

// Place decides whether ask's message is a decision moment a campaign is
// relevant to and, if so, places the best eligible campaign: its frequency
// cap counted and its bid per impression held within its daily budget. It
// answers nil when no suggestion is to be shown (opted out, no decision
// moment, no campaign, every candidate capped or spent, or the ledger not
// answering): a request is never failed for a suggestion.
func (s *Service) Place(ctx context.Context, a Ask) *Placement {
	now := s.clock.Now()
	cust, err := s.store.Customer(ctx, a.Customer)
	if err != nil || cust.SponsoredOptOut {
		s.obs.ObserveSuggestion(OutcomeOptedOut)
		return nil
	}
	t0 := time.Now()
	d := s.Decide(a.Text)
	s.obs.ObserveDecision(time.Since(t0))
	if !d.Moment {
		s.obs.ObserveSuggestion(OutcomeNoDecision)
		return nil
	}
	subject := subjectOf(a)
	day := fb.BudgetDay.Window(now)
	tries := 0
	outcome := OutcomeNoCampaign
	for _, cand := range d.Candidates {
		c := cand.Campaign
		if tries == s.cfg.MaxTries {
			break
		}
		if s.hinted(c, now) {
			outcome = OutcomeBudget
			continue
		}
		tries++
		if c.FrequencyCap > 0 {
			ok, err := s.store.CountView(ctx, c.ID, subject, day, c.FrequencyCap)
			if err != nil {
				s.log.Warn("counting a sponsored view failed; no suggestion", "campaign", c.ID, "err", err)
				s.obs.ObserveSuggestion(OutcomeUnavailable)
				return nil
			}
			if !ok {
				outcome = OutcomeCapped
				continue
			}
		}
		p := &Placement{s: s, c: *c, subject: subject, day: day, plan: a.Plan, topic: cand.Topic, score: micros(d.Score)}
		if c.BidPerImpression > 0 {
			res, err := s.ledger.Submit(ctx, fb.Op{Kind: fb.OpHold, Customer: c.Advertiser, Amount: c.BidPerImpression,
				TTL: min(max(a.HoldFor, time.Minute), 24*time.Hour), Budget: c.Budget()})
			if err != nil {
				s.uncount(p)
				switch {
				case errors.Is(err, fb.ErrBudgetExceeded):
					until := now.Add(hintTTL)
					if end := day.AddDate(0, 0, 1); end.Before(until) {
						until = end // a new day, a new budget
					}
					s.hint(s.spent, c.ID, until)
					outcome = OutcomeBudget
					continue
				case fb.ErrorType(err) == fb.EInsufficientCredits:
					s.hint(s.broke, c.Advertiser, now.Add(hintTTL))
					outcome = OutcomeNoCredit
					continue
				case fb.ErrorType(err) == fb.ENotFound:
					outcome = OutcomeNoCredit // the advertiser's account is gone
					continue
				}
				s.log.Warn("holding a sponsored bid failed; no suggestion", "campaign", c.ID, "err", err)
				s.obs.ObserveSuggestion(OutcomeUnavailable)
				return nil
			}
			p.hold = res.Hold.ID
		}
		p.Suggestion = s.suggestion(p, a.BaseURL, now)
		s.stats.placed.Add(1)
		s.obs.ObserveSuggestion(OutcomePlaced)
		return p
	}
	s.obs.ObserveSuggestion(outcome)
	return nil
}

// subjectOf is the end user a frequency cap counts, as an opaque digest:
// the request's user within its customer, or else its key. The user's own
// id is not stored.
func subjectOf(a Ask) string {
	h := sha256.New()
	h.Write([]byte(a.Customer))
	h.Write([]byte{0x1f})
	if a.User != "" {
		h.Write([]byte("user\x1f" + a.User))
	} else {
		h.Write([]byte("key\x1f" + a.KeyID))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// suggestion builds what the response carries: a fresh id and its signed
// click link.
func (s *Service) suggestion(p *Placement, baseURL string, now time.Time) Suggestion {
	var nonce [nonceSize]byte
	rand.Read(nonce[:])
	id := suggestionID(nonce)
	tok := s.sign(token{nonce: nonce, issued: now.Unix(), bid: p.c.BidPerClick, score: p.score, topic: topicIndex(&p.c, p.topic),
		campaign: p.c.ID, plan: p.plan})
	base := s.cfg.PublicURL
	if base == "" {
		base = baseURL
	}
	return Suggestion{ID: id, Label: Label, Title: p.c.Title, Text: p.c.Text, URL: base + "/s/" + tok}
}

func suggestionID(nonce [nonceSize]byte) string {
	return "sug_" + stringsToLower(idEncoding.EncodeToString(nonce[:]))
}

func stringsToLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func topicIndex(c *fb.Campaign, topic string) int {
	for i, t := range c.Topics {
		if t == topic {
			return i
		}
	}
	return 0
}

// The ledger keys of a suggestion's charges. They begin with a control
// character, which no client's idempotency key or metered event may hold,
// so they can never collide with one.
func impressionKey(id string) string { return "\x1esponsored\x1fimpression\x1f" + id }
func clickKey(id string) string      { return "\x1esponsored\x1fclick\x1f" + id }

// usage is the row a charge of the suggestion writes.
func (p *Placement) usage(status string, credits fb.Amount, at time.Time) *fb.Usage {
	return &fb.Usage{ID: p.Suggestion.ID, Source: "sponsored", Customer: p.c.Advertiser, Model: p.c.UsageModel(), Provider: "sponsored",
		At: at.UTC(), Credits: credits, Product: fb.ProductAds, Plan: p.plan, Status: status, Topic: p.topic, Score: p.score}
}

// chargeTimeout bounds the ledger op of a charge: the response has gone,
// nobody waits for it but the caller's goroutine.
const chargeTimeout = 30 * time.Second

// Shown charges the impression: the held bid captured, with its usage row.
// The response was delivered, so the charge is kept even if ctx ends. A
// hold that expired meanwhile (a very long stream) becomes a debit within
// the same budget, keyed by the suggestion, which the ledger may refuse:
// then the impression was free, never past the budget.
func (p *Placement) Shown(ctx context.Context) {
	p.once.Do(func() {
		s := p.s
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), chargeTimeout)
		defer cancel()
		now := s.clock.Now()
		var err error
		if p.hold != "" {
			_, err = s.ledger.Submit(ctx, fb.Op{Kind: fb.OpCapture, HoldID: p.hold, Amount: p.c.BidPerImpression, Usage: p.usage(fb.StatusImpression, p.c.BidPerImpression, now)})
			if errors.Is(err, fb.ErrHoldExpired) {
				_, err = s.ledger.Submit(ctx, fb.Op{Kind: fb.OpDebit, Customer: p.c.Advertiser, Amount: p.c.BidPerImpression, Event: impressionKey(p.Suggestion.ID),
					Digest: "impression", Budget: p.c.Budget(), Usage: p.usage(fb.StatusImpression, p.c.BidPerImpression, now)})
			}
		} else {
			// Free impressions are recorded too (the campaign's stats),
			// once, by the suggestion's key.
			_, err = s.ledger.Submit(ctx, fb.Op{Kind: fb.OpDebit, Customer: p.c.Advertiser, Event: impressionKey(p.Suggestion.ID),
				Digest: "impression", Usage: p.usage(fb.StatusImpression, 0, now)})
		}
		if err != nil {
			s.stats.uncharged.Add(1)
			s.obs.ObserveSuggestion(OutcomeUncharged)
			s.log.Warn("a sponsored impression was shown but not charged", "campaign", p.c.ID, "suggestion", p.Suggestion.ID, "err", err)
			return
		}
		s.stats.charged.Add(1)
		s.obs.ObserveSuggestion(OutcomeCharged)
	})
}

// Dropped gives back what Place took for a response that was not
// delivered: the hold released, the view uncounted.
func (p *Placement) Dropped(ctx context.Context) {
	p.once.Do(func() {
		s := p.s
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), chargeTimeout)
		defer cancel()
		if p.hold != "" {
			if _, err := s.ledger.Submit(ctx, fb.Op{Kind: fb.OpRelease, HoldID: p.hold}); err != nil {
				s.log.Warn("releasing a sponsored bid failed; it expires by itself", "hold", p.hold, "err", err)
			}
		}
		s.uncount(p)
		s.stats.dropped.Add(1)
		s.obs.ObserveSuggestion(OutcomeDropped)
	})
}

func (s *Service) uncount(p *Placement) {
	if p.c.FrequencyCap <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), chargeTimeout)
	defer cancel()
	if err := s.store.UncountView(ctx, p.c.ID, p.subject, p.day); err != nil {
		s.log.Warn("uncounting a sponsored view failed (the cap errs on the side of fewer)", "campaign", p.c.ID, "err", err)
	}
}
