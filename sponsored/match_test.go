package sponsored

import (
	"context"
	"math"
	"strings"
	"testing"

	fb "farebox"
	"farebox/fakeclock"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// newTestService is a service over st (campaigns loaded) and ledger.
func newTestService(t testing.TB, st Store, ledger Ledger, cfg Config) *Service {
	t.Helper()
	s, err := New(Deps{Store: st, Ledger: ledger, Clock: fakeclock.New(clockStart), Secret: testSecret}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestNoSuggestionsOnNonDecisions: none of the committed 100 prompts that
// are no decision moment gets a suggestion, though campaigns are relevant
// to most of them.
func TestNoSuggestionsOnNonDecisions(t *testing.T) {
	s := newTestService(t, newMemStore(testCampaigns()...), nil, Config{})
	prompts := nonDecisions(t)
	if len(prompts) != 100 {
		t.Fatalf("%d prompts in data/nondecisions.txt, want 100", len(prompts))
	}
	relevant := 0
	for _, p := range prompts {
		d := s.Decide(p)
		if d.Moment || len(d.Candidates) > 0 {
			t.Errorf("a suggestion (score %.3f, %d campaigns) on %q", d.Score, len(d.Candidates), p)
		}
		// What the campaigns would have matched at a decision moment.
		if len(s.rank(p)) > 0 {
			relevant++
		}
	}
	t.Logf("0 suggestions on %d non-decision prompts, %d of which a campaign is relevant to", len(prompts), relevant)
	if relevant < 70 {
		t.Errorf("only %d of the prompts are relevant to a campaign: the test would not show the classifier keeps suggestions off them", relevant)
	}
}

// rank is the candidates of text as if it were a decision moment.
func (s *Service) rank(text string) []Candidate {
	return s.decide(s.idx.Load(), text, 0).Candidates
}

// TestDecisionsFindTheirCampaign: decision moments in each language reach
// the campaign they are about.
func TestDecisionsFindTheirCampaign(t *testing.T) {
	s := newTestService(t, newMemStore(testCampaigns()...), nil, Config{})
	for _, tc := range []struct{ text, want string }{
		{"Which laptop should I buy for university?", "laptops"},
		{"Welke laptop moet ik kopen voor mijn studie?", "laptops"},
		{"Hvilken bærbar pc bør jeg kjøpe til studiene?", "laptops"},
		{"Kan du anbefale gode hodetelefoner med støydemping?", "headphones"},
		{"Welk hotel in Parijs raad je aan voor een romantisch weekend?", "hotels"},
		{"Hvilken robotstøvsuger anbefaler du til et hus med hund?", "vacuum"},
		{"Vaste of variabele hypotheekrente, wat moet ik nu kiezen?", "mortgage"},
		{"What electric car should I buy for around 40k?", "ev"},
		{"Which energy supplier is cheapest for a small flat?", "energy"},
	} {
		d := s.Decide(tc.text)
		if !d.Moment || len(d.Candidates) == 0 || d.Candidates[0].Campaign.ID != tc.want {
			var got []string
			for _, c := range d.Candidates {
				got = append(got, c.Campaign.ID)
			}
			t.Errorf("%q: moment %v (%.3f), campaigns %v; want %s first", tc.text, d.Moment, d.Score, got, tc.want)
		}
	}
}

func TestRelevance(t *testing.T) {
	c := func(id string, bid int64, topics, phrases, exclude []string) fb.Campaign {
		return fb.Campaign{ID: id, Advertiser: "shop", Topics: topics, Phrases: phrases, ExcludeTopics: exclude, Title: id, URL: "https://x.example",
			BidPerImpression: fb.Amount(bid), Active: true}
	}
	cs := []fb.Campaign{
		c("laptops", 500_000, []string{"laptops"}, []string{"laptop", "bærbar pc"}, []string{"children"}),
		c("gaming", 900_000, []string{"gaming laptops"}, []string{"gaming laptop"}, nil),
		c("cafe", 100_000, []string{"cafés"}, []string{"café au lait"}, nil),
		c("tv", 300_000, []string{"tv"}, []string{"tv"}, nil),
		c("off", 5_000_000, []string{"laptops"}, []string{"laptop"}, nil),
	}
	cs[4].Active = false
	ix := buildIndex(cs)
	for _, tc := range []struct {
		text string
		want map[string]float64
	}{
		{"which laptop should I buy", map[string]float64{"laptops": 1 - (1-0.6)*(1-0.6*stemFactor)}},
		{"welke laptops zijn goed", map[string]float64{"laptops": 1 - (1-0.6)*(1-0.6*stemFactor)}},
		{"hvilken laptopen", map[string]float64{"laptops": 0.6 * stemFactor}},
		{"hvilken bærbar PC bør jeg kjøpe", map[string]float64{"laptops": 0.9}},
		{"a gaming laptop for my son", map[string]float64{"laptops": 1 - (1-0.6)*(1-0.6*stemFactor), "gaming": 1 - (1-0.9)*(1-0.9*stemFactor)}},
		{"a laptop for children", map[string]float64{}}, // excluded
		{"CAFE AU LAIT or espresso?", map[string]float64{"cafe": 1 - (1-0.9)*(1-0.6*stemFactor)}},
		{"which tv", map[string]float64{"tv": 1 - 0.4*0.4}},
		{"which tvs", map[string]float64{}}, // short words match exactly only
		{"lap top", map[string]float64{}},
		{"", map[string]float64{}},
	} {
		got := map[string]float64{}
		var words [][]byte
		for _, w := range normWords(tc.text) {
			words = append(words, w)
		}
		ix.matchWords(words, nil, func(cc *compiled, m match) { got[cc.c.ID] = m.relevance })
		if len(got) != len(tc.want) {
			t.Errorf("%q: matched %v, want %v", tc.text, got, tc.want)
			continue
		}
		for id, w := range tc.want {
			if math.Abs(got[id]-w) > 1e-9 {
				t.Errorf("%q: relevance of %s %.4f, want %.4f", tc.text, id, got[id], w)
			}
		}
	}
}

// TestRanking: at most the eligible campaigns, highest bid × relevance
// first, and only above the relevance threshold.
func TestRanking(t *testing.T) {
	mk := func(id string, bid int64, phrases ...string) fb.Campaign {
		return fb.Campaign{ID: id, Advertiser: "shop", Topics: []string{id}, Phrases: phrases, Title: id, URL: "https://x.example",
			BidPerImpression: fb.Amount(bid), BidPerClick: 1, Active: true}
	}
	st := newMemStore(mk("cheap", 100_000, "laptop", "notebook", "student"), mk("rich", 300_000, "laptop"), mk("richer", 1_000_000, "macbook"))
	s := newTestService(t, st, nil, Config{})
	const q = "Which laptop or notebook should a student buy?"
	d := s.Decide(q)
	if !d.Moment {
		t.Fatalf("%q is no decision moment (%.3f)", q, d.Score)
	}
	var got []string
	for _, c := range d.Candidates {
		got = append(got, c.Campaign.ID)
	}
	// cheap: 0.1 × (1 − 0.4³) = 0.0936; rich: 0.3 × 0.6 = 0.18; richer is not relevant.
	if strings.Join(got, ",") != "rich,cheap" {
		t.Errorf("ranking %v, want rich,cheap", got)
	}
	strict := newTestService(t, st, nil, Config{RelevanceThreshold: 0.9})
	got = nil
	for _, c := range strict.Decide(q).Candidates {
		got = append(got, c.Campaign.ID)
	}
	if strings.Join(got, ",") != "cheap" {
		t.Errorf("with relevance ≥ 0.9: %v, want only cheap (three phrases)", got)
	}
}

func BenchmarkDecide(b *testing.B) {
	s := newTestService(b, newMemStore(benchCampaigns(1000)...), nil, Config{})
	prompts := BenchPrompts()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		s.Decide(prompts[i%len(prompts)])
	}
}
