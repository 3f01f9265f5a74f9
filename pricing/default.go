package pricing

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"

	fb "farebox"
)

// The default card's terms: one credit is one US cent, and list prices are
// resold at cost (markup 1). Both are configurable.
const (
	DefaultCreditsPerUSD = 100
	DefaultMarkup        = "1"
)

//go:embed model-prices-2025.csv
var listPrices []byte

// DefaultEffective is when the default card takes effect.
var DefaultEffective = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// DefaultPrices is the default card: providers' 2025 list prices (the
// embedded model-prices-2025.csv) at creditsPerUSD credits per dollar,
// times markup.
func DefaultPrices(creditsPerUSD int64, markup string, effective time.Time) ([]fb.Price, error) {
	return ParseListPrices(bytes.NewReader(listPrices), creditsPerUSD, markup, effective)
}

// ParseListPrices reads a list-price CSV (provider, model, input, output
// and cached-input USD per 1M tokens, kind, note) into a card. A rate in
// credits is usd × creditsPerUSD × markup, rounded up to a micro-credit:
// the card's one rounding. Reasoning tokens cost the output rate; a blank
// cached-input price means no discount (the input rate).
func ParseListPrices(r io.Reader, creditsPerUSD int64, markup string, effective time.Time) ([]fb.Price, error) {
	if creditsPerUSD <= 0 {
		return nil, fmt.Errorf("credits per USD must be positive, not %d", creditsPerUSD)
	}
	m, err := fb.ParseAmount(markup)
	if err != nil || m <= 0 {
		return nil, fmt.Errorf("markup %q must be a positive decimal such as 1.25", markup)
	}
	rd := csv.NewReader(r)
	rd.FieldsPerRecord = 7
	rows, err := rd.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("list prices: %w", err)
	}
	if len(rows) == 0 || strings.Join(rows[0][:5], ",") != "provider,model,input_usd_per_mtok,output_usd_per_mtok,cached_input_usd_per_mtok" {
		return nil, fmt.Errorf("list prices: line 1 must be the header provider,model,input_usd_per_mtok,output_usd_per_mtok,cached_input_usd_per_mtok,kind,note")
	}
	conv := func(line int, col, v string) (fb.Amount, error) {
		usd, err := fb.ParseUSD(strings.TrimSpace(v))
		if err != nil || usd < 0 {
			return 0, fmt.Errorf("list prices line %d: %s %q is not a non-negative dollar amount", line, col, v)
		}
		// usd (micro-dollars) × credits per USD × markup (micro) / 10⁶, up.
		n := new(big.Int).Mul(big.NewInt(int64(usd)), big.NewInt(creditsPerUSD))
		n.Mul(n, big.NewInt(int64(m)))
		n.Add(n, big.NewInt(fb.Micro-1))
		n.Quo(n, big.NewInt(fb.Micro))
		if !n.IsInt64() || n.Int64() > int64(fb.MaxTotal) {
			return 0, fmt.Errorf("list prices line %d: %s overflows", line, col)
		}
		return fb.Amount(n.Int64()), nil
	}
	seen := map[string]bool{}
	var out []fb.Price
	for i, row := range rows[1:] {
		line := i + 2
		model := strings.TrimSpace(row[1])
		if model == "" {
			return nil, fmt.Errorf("list prices line %d: no model", line)
		}
		if seen[model] {
			return nil, fmt.Errorf("list prices line %d: model %s listed twice", line, model)
		}
		seen[model] = true
		p := fb.Price{Model: model, EffectiveFrom: effective, CreatedAt: effective}
		if p.InputPerMTok, err = conv(line, "input_usd_per_mtok", row[2]); err != nil {
			return nil, err
		}
		if p.OutputPerMTok, err = conv(line, "output_usd_per_mtok", row[3]); err != nil {
			return nil, err
		}
		p.CachedInputPerMTok = p.InputPerMTok
		if strings.TrimSpace(row[4]) != "" {
			if p.CachedInputPerMTok, err = conv(line, "cached_input_usd_per_mtok", row[4]); err != nil {
				return nil, err
			}
		}
		p.ReasoningPerMTok = p.OutputPerMTok
		out = append(out, p)
	}
	return out, nil
}
