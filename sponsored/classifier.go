package sponsored

import (
	_ "embed"
	"sync"

	"farebox/sponsored/internal/features"
	"farebox/sponsored/internal/model"
)

// The committed weights of the decision-moment classifier, trained on
// sponsored/data by `go generate` (TestModelRegenerates checks that they
// are what the trainer writes).
//
//go:generate go run ./internal/gen -data data -out decision.model
//go:embed decision.model
var modelFile []byte

// Classifier says whether a message is a decision moment: the user asks to
// choose, to compare for a choice, for a recommendation, or to buy, book
// or subscribe. It is logistic regression over hashed word unigrams and
// bigrams and character n-grams, the same in every language, trained for
// precision: its threshold is set where cross-validation reached 97%
// precision, since a suggestion where there is no decision is a defect and
// a missed decision only lost revenue.
type Classifier struct {
	m         *model.Model
	threshold int64 // in millionths
}

// NewClassifier returns the committed classifier. threshold, when above 0,
// replaces its own (a probability from 0 to 1).
func NewClassifier(threshold float64) (*Classifier, error) {
	m, err := model.Parse(modelFile)
	if err != nil {
		return nil, err
	}
	c := &Classifier{m: m, threshold: m.Threshold}
	if threshold > 0 {
		c.threshold = int64(threshold * 1e6)
	}
	return c, nil
}

// Threshold is the probability at and above which a message is a decision
// moment.
func (c *Classifier) Threshold() float64 { return float64(c.threshold) / 1e6 }

// bufs hold the normalised text of a message while it is read.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Score is the probability that text is a decision moment, and whether it
// clears the threshold.
func (c *Classifier) Score(text string) (p float64, moment bool) {
	bp := bufs.Get().(*[]byte)
	norm := features.Normalize((*bp)[:0], text)
	p = c.m.Probability(norm)
	*bp = norm
	bufs.Put(bp)
	return p, micros(p) >= c.threshold
}

// micros is a probability in millionths, as thresholds and usage rows keep
// it.
func micros(p float64) int64 { return int64(p*1e6 + 0.5) }
