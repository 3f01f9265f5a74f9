// Package pricing turns usage into credits: rate cards versioned by date,
// the exact price of a usage, and the default card built from providers'
// list prices.
package pricing

import (
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sort"
	"time"

	fb "farebox"
)

// Cost is the price of q at rates r: Σ quantity × rate, computed exactly
// and rounded up once, to the next micro-credit. Token rates are per 1M
// tokens and second rates per second (quantities in micro-seconds), so
// those terms are exact in units of 10⁻⁶ micro-credits; images and requests
// are whole micro-credits. Rounding each term instead would overcharge a
// usage of many small parts. Negative inputs and a price beyond
// farebox.MaxTotal are errors.
func Cost(r fb.Rates, q fb.Quantities) (fb.Amount, error) {
	fine := []struct{ q, r int64 }{ // in 10⁻⁶ micro-credits
		{q.InputTokens, int64(r.InputPerMTok)},
		{q.OutputTokens, int64(r.OutputPerMTok)},
		{q.CachedInputTokens, int64(r.CachedInputPerMTok)},
		{q.ReasoningTokens, int64(r.ReasoningPerMTok)},
		{q.AudioMicros, int64(r.PerAudioSecond)},
		{q.VideoMicros, int64(r.PerVideoSecond)},
		{q.GPUMicros, int64(r.PerGPUSecond)},
	}
	whole := []struct{ q, r int64 }{ // in micro-credits
		{q.Images, int64(r.PerImage)},
		{q.Requests, int64(r.PerRequest)},
	}
	sum := new(big.Int)
	var term big.Int
	for _, t := range fine {
		if t.q < 0 || t.r < 0 {
			return 0, errors.New("pricing: negative quantity or rate")
		}
		sum.Add(sum, term.Mul(big.NewInt(t.q), big.NewInt(t.r)))
	}
	million := big.NewInt(fb.Micro)
	for _, t := range whole {
		if t.q < 0 || t.r < 0 {
			return 0, errors.New("pricing: negative quantity or rate")
		}
		term.Mul(big.NewInt(t.q), big.NewInt(t.r))
		sum.Add(sum, term.Mul(&term, million))
	}
	// ceil(sum / 10⁶)
	sum.Add(sum, big.NewInt(fb.Micro-1))
	sum.Quo(sum, million)
	if !sum.IsInt64() || sum.Int64() > int64(fb.MaxTotal) {
		return 0, fmt.Errorf("pricing: price beyond %s credits: %w", fb.MaxTotal, fb.ErrOverflow)
	}
	return fb.Amount(sum.Int64()), nil
}

// Card is every version of every model's rate card. It is immutable.
type Card struct {
	models map[string][]fb.Price // by EffectiveFrom
}

// NewCard returns a card of these versions.
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
// latest EffectiveFrom at or before t.
func (c *Card) At(model string, t time.Time) (fb.Price, bool) {
	vs := c.models[model]
	i := sort.Search(len(vs), func(i int) bool { return vs[i].EffectiveFrom.After(t) })
	if i == 0 {
		return fb.Price{}, false
	}
	return vs[i-1], true
}

// Current lists, by model, the versions in force at t.
func (c *Card) Current(t time.Time) []fb.Price {
	out := []fb.Price{}
	for _, m := range c.Models() {
		if p, ok := c.At(m, t); ok {
			out = append(out, p)
		}
	}
	return out
}

// Models lists the models the card prices, sorted.
func (c *Card) Models() []string {
	ms := make([]string, 0, len(c.models))
	for m := range c.models {
		ms = append(ms, m)
	}
	slices.Sort(ms)
	return ms
}
