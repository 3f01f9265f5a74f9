// Package pricing turns usage into credits: rate cards versioned by date,
// the exact price of a usage, and the default card built from providers'
// list prices.
package pricing

import (
	"fmt"
	"math/big"
	"slices"
	"sort"
	"time"

	fb "farebox"
)

// Cost is the price of q at rates r: Σ quantity × rate, computed exactly
// and rounded UP once, to the next micro-credit.
//
// Token rates are per 1M tokens and second rates per second while seconds
// are counted in micro-seconds, so those terms are exact in units of 10⁻⁶
// micro-credits; images and requests are whole micro-credits. With
//
//	N = input×InputPerMTok + output×OutputPerMTok + cached×CachedInputPerMTok
//	  + reasoning×ReasoningPerMTok + cacheWrite×CacheWritePerMTok
//	  + audioµs×PerAudioSecond
//	  + videoµs×PerVideoSecond + gpuµs×PerGPUSecond
//	  + 10⁶×(images×PerImage + requests×PerRequest)
//
// (rates in micro-credits) the price is ceil(N / 10⁶) micro-credits. Only
// the sum is rounded: rounding each term would overcharge a usage made of
// many small parts. A negative quantity or rate is an error, and a price
// beyond farebox.MaxTotal is farebox.ErrOverflow (wrapped).
func Cost(r fb.Rates, q fb.Quantities) (fb.Amount, error) {
	type term struct {
		name string
		q, r int64
	}
	fine := [...]term{ // in 10⁻⁶ micro-credits
		{"input tokens", q.InputTokens, int64(r.InputPerMTok)},
		{"output tokens", q.OutputTokens, int64(r.OutputPerMTok)},
		{"cached input tokens", q.CachedInputTokens, int64(r.CachedInputPerMTok)},
		{"reasoning tokens", q.ReasoningTokens, int64(r.ReasoningPerMTok)},
		{"cache write tokens", q.CacheWriteTokens, int64(r.CacheWritePerMTok)},
		{"audio seconds", q.AudioMicros, int64(r.PerAudioSecond)},
		{"video seconds", q.VideoMicros, int64(r.PerVideoSecond)},
		{"GPU seconds", q.GPUMicros, int64(r.PerGPUSecond)},
	}
	whole := [...]term{ // in micro-credits
		{"images", q.Images, int64(r.PerImage)},
		{"requests", q.Requests, int64(r.PerRequest)},
	}
	neg := func(t term) error {
		if t.q < 0 || t.r < 0 {
			return fmt.Errorf("pricing: negative quantity or rate of %s", t.name)
		}
		return nil
	}
	sum, wsum := new(big.Int), new(big.Int)
	var x, y, p big.Int
	for _, t := range fine {
		if err := neg(t); err != nil {
			return 0, err
		}
		sum.Add(sum, p.Mul(x.SetInt64(t.q), y.SetInt64(t.r)))
	}
	for _, t := range whole {
		if err := neg(t); err != nil {
			return 0, err
		}
		wsum.Add(wsum, p.Mul(x.SetInt64(t.q), y.SetInt64(t.r)))
	}
	million := big.NewInt(fb.Micro)
	sum.Add(sum, wsum.Mul(wsum, million))
	// ceil(sum / 10⁶)
	sum.Add(sum, big.NewInt(fb.Micro-1))
	sum.Quo(sum, million)
	if !sum.IsInt64() || sum.Int64() > int64(fb.MaxTotal) {
		return 0, fmt.Errorf("pricing: price beyond %s credits: %w", fb.MaxTotal, fb.ErrOverflow)
	}
	return fb.Amount(sum.Int64()), nil
}

// CacheWriteFor is the default cache-write rate of a card whose input rate
// is input: 1.25 × input, rounded up to a micro-credit (Anthropic's
// five-minute cache writes cost a quarter more than input). It is the
// rate of a version stored or put without one.
func CacheWriteFor(input fb.Amount) fb.Amount {
	return input + (input+3)/4
}

// Card is every version of every model's rate card, for looking up the
// version in force at a time. It is immutable after NewCard, so any number
// of goroutines may read it at once. Models are matched exactly
// (case-sensitively).
type Card struct {
	models map[string][]fb.Price // by EffectiveFrom
}

// NewCard returns a card of these versions. It keeps its own copy: later
// changes to prices do not reach the card. Of two versions of a model with
// the same EffectiveFrom, the later in prices wins.
func NewCard(prices []fb.Price) *Card {
	c := &Card{models: map[string][]fb.Price{}}
	for _, p := range prices {
		c.models[p.Model] = append(c.models[p.Model], p)
	}
	for _, vs := range c.models {
		sort.SliceStable(vs, func(i, j int) bool { return vs[i].EffectiveFrom.Before(vs[j].EffectiveFrom) })
	}
	return c
}

// At returns the version of model's card in force at t: the one with the
// greatest EffectiveFrom at or before t. It reports false when the model is
// unknown or none of its versions is in force yet.
func (c *Card) At(model string, t time.Time) (fb.Price, bool) {
	vs := c.models[model]
	i := sort.Search(len(vs), func(i int) bool { return vs[i].EffectiveFrom.After(t) })
	if i == 0 {
		return fb.Price{}, false
	}
	return vs[i-1], true
}

// Current lists, sorted by model, the version of each model in force at t.
// Models whose versions all start after t are left out (Models lists them).
func (c *Card) Current(t time.Time) []fb.Price {
	out := []fb.Price{}
	for _, m := range c.Models() {
		if p, ok := c.At(m, t); ok {
			out = append(out, p)
		}
	}
	return out
}

// Models lists every model the card has a version of, whenever in force,
// sorted.
func (c *Card) Models() []string {
	ms := make([]string, 0, len(c.models))
	for m := range c.models {
		ms = append(ms, m)
	}
	slices.Sort(ms)
	return ms
}
