// Package sponsored owns sponsored suggestions: advertisers' campaigns and
// how a request is matched to one, the decision-moment classifier
// (weights trained from sponsored/data and embedded), and what a
// suggestion costs its advertiser.
//
// A suggestion is placed only at a decision moment (Classifier) that a
// campaign's topics or phrases tie the message to (relevance above a
// threshold), and at most one: the eligible campaign of the highest bid ×
// relevance. Before it is added to a response, the end user's frequency
// cap is counted (atomically, in the store) and the bid per impression is
// held on the advertiser's account with the campaign's daily budget inside
// the same ledger op, so that neither can be passed however many requests
// run at once; after the response is delivered the hold is captured (the
// impression charged, once), and if it was not, released. A click on the
// suggestion's link (a signed token) is one debit of the bid per click,
// keyed by the suggestion, within the same budget: charged once however
// often the link is followed. Each charge writes a usage row of product
// "ads" under the advertiser, with the plan of the request that carried
// it, the campaign, its topic and the decision score: never any text of
// the request.
package sponsored

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	fb "farebox"
	"farebox/sponsored/internal/features"
)

// Store is what the service keeps campaigns and frequency caps in, and
// reads customers from (the store, through its cache).
type Store interface {
	Customer(ctx context.Context, id string) (fb.Customer, error)
	CreateCampaign(ctx context.Context, c fb.Campaign) error
	Campaign(ctx context.Context, id string) (fb.Campaign, error)
	Campaigns(ctx context.Context) ([]fb.Campaign, error)
	SwapCampaign(ctx context.Context, c fb.Campaign) error
	DeleteCampaign(ctx context.Context, id string) error
	CampaignStats(ctx context.Context, c fb.Campaign, from, to time.Time) (fb.CampaignStats, error)
	CountView(ctx context.Context, campaign, subject string, day time.Time, limit int64) (bool, error)
	UncountView(ctx context.Context, campaign, subject string, day time.Time) error
	PruneViews(ctx context.Context, before time.Time) (int64, error)
}

// Ledger applies the service's holds, captures, releases and debits.
type Ledger interface {
	Submit(ctx context.Context, op fb.Op) (fb.Result, error)
}

// Observer is told how each placement and click ended, and how long each
// decision took (the metrics).
type Observer interface {
	ObserveSuggestion(outcome string)
	ObserveClick(outcome string)
	ObserveDecision(d time.Duration)
}

// Outcomes of a placement (Place, then Shown or Dropped) and of a click.
const (
	OutcomeOptedOut      = "opted_out"
	OutcomeNoDecision    = "not_decision"
	OutcomeNoCampaign    = "no_campaign"
	OutcomeCapped        = "capped"
	OutcomeBudget        = "budget_spent"
	OutcomeNoCredit      = "no_credit"
	OutcomeUnavailable   = "unavailable"
	OutcomePlaced        = "placed"
	OutcomeCharged       = "charged"
	OutcomeDropped       = "dropped"
	OutcomeUncharged     = "shown_uncharged"
	OutcomeClickCharged  = "charged"
	OutcomeClickRepeated = "repeated"
	OutcomeClickRefused  = "refused"
	OutcomeClickFailed   = "failed"
	OutcomeClickInvalid  = "invalid"
)

// Config tunes the service; zero fields take the defaults.
type Config struct {
	// PublicURL is the base of click links (https://farebox.example); ""
	// is the address each request came to.
	PublicURL string
	// RelevanceThreshold is the relevance a campaign needs, from 0 to 1:
	// 0.5 when 0 (one phrase or topic of one word matches).
	RelevanceThreshold float64
	// DecisionThreshold, above 0, replaces the classifier's own threshold
	// (the probability at which a message is a decision moment).
	DecisionThreshold float64
	// Refresh is how often campaigns are read again from the store (the
	// changes of other replicas); 10 s when 0.
	Refresh time.Duration
	// ClickTTL is how long a click link is charged and followed; 7 days
	// when 0.
	ClickTTL time.Duration
	// MaxTries bounds the campaigns tried for one request when the best
	// is capped or its budget spent; 3 when 0.
	MaxTries int
}

func (c Config) withDefaults() Config {
	if c.RelevanceThreshold <= 0 {
		c.RelevanceThreshold = 0.5
	}
	if c.Refresh <= 0 {
		c.Refresh = 10 * time.Second
	}
	if c.ClickTTL <= 0 {
		c.ClickTTL = 7 * 24 * time.Hour
	}
	if c.MaxTries <= 0 {
		c.MaxTries = 3
	}
	return c
}

// Deps are what a Service works with. Secret signs click links: the same
// on every replica (the app keeps it in the store's settings). Metrics may
// be nil.
type Deps struct {
	Store   Store
	Ledger  Ledger
	Clock   fb.Clock
	Log     *slog.Logger
	Metrics Observer
	Secret  []byte
}

// Service places sponsored suggestions and keeps campaigns. Make one with
// New.
type Service struct {
	store  Store
	ledger Ledger
	clock  fb.Clock
	log    *slog.Logger
	obs    Observer
	secret []byte
	cfg    Config
	clf    *Classifier

	idx atomic.Pointer[index]
	// rebuild serialises reloads of the index, so that an older read
	// never replaces a newer one.
	rebuild sync.Mutex

	// Hints of campaigns whose budget was spent and advertisers out of
	// credit, until a time: the ledger refuses them anyway, this only
	// spares asking it on every request. A refusal sets one; they end
	// after hintTTL (a grant or a release may have made room).
	hintMu sync.Mutex
	spent  map[string]time.Time
	broke  map[string]time.Time
	stats  counters
}

// hintTTL is how long a refusal keeps a campaign or advertiser out of the
// running.
const hintTTL = 5 * time.Second

type counters struct {
	placed, charged, dropped, uncharged, clicks atomic.Int64
}

// Counts are what a service did since it started.
type Counts struct {
	Campaigns                           int // active, in the index
	Placed, Charged, Dropped, Uncharged int64
	Clicks                              int64
}

// Counts returns the service's counts.
func (s *Service) Counts() Counts {
	return Counts{Campaigns: len(s.idx.Load().campaigns), Placed: s.stats.placed.Load(), Charged: s.stats.charged.Load(),
		Dropped: s.stats.dropped.Load(), Uncharged: s.stats.uncharged.Load(), Clicks: s.stats.clicks.Load()}
}

// New returns a service with no campaigns loaded: Load reads them.
func New(d Deps, cfg Config) (*Service, error) {
	cfg = cfg.withDefaults()
	clf, err := NewClassifier(cfg.DecisionThreshold)
	if err != nil {
		return nil, err
	}
	if len(d.Secret) < 16 {
		return nil, errors.New("sponsored: the click links' secret must have at least 16 bytes")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = noObserver{}
	}
	s := &Service{store: d.Store, ledger: d.Ledger, clock: d.Clock, log: d.Log, obs: d.Metrics, secret: d.Secret, cfg: cfg, clf: clf,
		spent: map[string]time.Time{}, broke: map[string]time.Time{}}
	s.idx.Store(buildIndex(nil))
	return s, nil
}

type noObserver struct{}

func (noObserver) ObserveSuggestion(string)      {}
func (noObserver) ObserveClick(string)           {}
func (noObserver) ObserveDecision(time.Duration) {}

// NewSecret returns a fresh secret for click links, base64 (for the
// store's settings).
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawStdEncoding.EncodeToString(b)
}

// Classifier is the service's decision-moment classifier.
func (s *Service) Classifier() *Classifier { return s.clf }

// Load reads every campaign from the store and rebuilds the index.
func (s *Service) Load(ctx context.Context) error {
	s.rebuild.Lock()
	defer s.rebuild.Unlock()
	cs, err := s.store.Campaigns(ctx)
	if err != nil {
		return err
	}
	s.idx.Store(buildIndex(cs))
	return nil
}

// Use serves cs, without the store, until the next Load: the benchmark's
// campaigns.
func (s *Service) Use(cs []fb.Campaign) {
	s.rebuild.Lock()
	defer s.rebuild.Unlock()
	s.idx.Store(buildIndex(cs))
}

// Run reloads the campaigns every Refresh (so a change made on another
// replica is served within it) and, once a day, forgets the frequency
// caps' counts of the days before yesterday, until ctx ends.
func (s *Service) Run(ctx context.Context) {
	var pruned time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.clock.After(s.cfg.Refresh):
		}
		if err := s.Load(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("reloading the sponsored campaigns failed; serving the ones loaded", "err", err)
		}
		today := fb.BudgetDay.Window(s.clock.Now())
		if today.After(pruned) {
			if _, err := s.store.PruneViews(ctx, today.AddDate(0, 0, -1)); err != nil && ctx.Err() == nil {
				s.log.Warn("pruning the frequency caps' counts failed", "err", err)
				continue
			}
			pruned = today
		}
	}
}

// Candidate is a campaign a message is relevant to.
type Candidate struct {
	Campaign  *fb.Campaign
	Relevance float64
	Topic     string
}

// Decision is what the service makes of a message: whether it is a
// decision moment (its probability Score), and when it is, the campaigns
// it is relevant to enough, best first (highest bid per impression ×
// relevance; then bid per click; then relevance; then id).
type Decision struct {
	Score      float64
	Moment     bool
	Candidates []Candidate
}

// scratch is one decision's working memory, pooled.
type scratch struct {
	norm  []byte
	words [][]byte
	hits  []hit
}

var scratches = sync.Pool{New: func() any { return &scratch{} }}

// Decide classifies text and, at a decision moment, ranks the campaigns
// relevant to it. It does no I/O: a few microseconds (see the benchmark
// and `farebox bench sponsored`).
func (s *Service) Decide(text string) Decision {
	return s.decide(s.idx.Load(), text, s.clf.threshold)
}

func (s *Service) decide(ix *index, text string, threshold int64) Decision {
	sc := scratches.Get().(*scratch)
	defer scratches.Put(sc)
	sc.norm = features.Normalize(sc.norm[:0], text)
	d := Decision{Score: s.clf.m.Probability(sc.norm)}
	d.Moment = micros(d.Score) >= threshold
	if !d.Moment || len(ix.campaigns) == 0 {
		return d
	}
	sc.words = sc.words[:0]
	features.Words(sc.norm, func(w []byte) {
		if string(w) != "?" {
			sc.words = append(sc.words, w)
		}
	})
	sc.hits = ix.matchWords(sc.words, sc.hits, func(c *compiled, m match) {
		if m.relevance+1e-9 < s.cfg.RelevanceThreshold {
			return
		}
		d.Candidates = append(d.Candidates, Candidate{Campaign: &c.c, Relevance: m.relevance, Topic: topicOf(&c.c, m)})
	})
	slices.SortFunc(d.Candidates, func(a, b Candidate) int {
		ra, rb := float64(a.Campaign.BidPerImpression)*a.Relevance, float64(b.Campaign.BidPerImpression)*b.Relevance
		switch {
		case ra != rb:
			return cmp.Compare(rb, ra)
		case a.Campaign.BidPerClick != b.Campaign.BidPerClick:
			return cmp.Compare(b.Campaign.BidPerClick, a.Campaign.BidPerClick)
		case a.Relevance != b.Relevance:
			return cmp.Compare(b.Relevance, a.Relevance)
		}
		return cmp.Compare(a.Campaign.ID, b.Campaign.ID)
	})
	return d
}

// hinted reports whether a campaign's budget or its advertiser's credit
// was found spent a moment ago.
func (s *Service) hinted(c *fb.Campaign, now time.Time) bool {
	s.hintMu.Lock()
	defer s.hintMu.Unlock()
	return now.Before(s.spent[c.ID]) || now.Before(s.broke[c.Advertiser])
}

func (s *Service) hint(m map[string]time.Time, key string, until time.Time) {
	s.hintMu.Lock()
	defer s.hintMu.Unlock()
	if len(m) > 10_000 {
		clear(m)
	}
	m[key] = until
}
