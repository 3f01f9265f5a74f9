package pricing

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"errors"
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

// listHeader is the first line every list-price CSV must have.
var listHeader = []string{"provider", "model", "input_usd_per_mtok", "output_usd_per_mtok", "cached_input_usd_per_mtok", "kind", "note"}

// DefaultPrices is the default card: providers' 2025 list prices (the
// embedded model-prices-2025.csv) at creditsPerUSD credits per dollar,
// times markup, each version in force from effective. See ParseListPrices.
func DefaultPrices(creditsPerUSD int64, markup string, effective time.Time) ([]fb.Price, error) {
	return ParseListPrices(bytes.NewReader(listPrices), creditsPerUSD, markup, effective)
}

// ListPriceProviders maps each model of the embedded list prices to its
// provider. The map is the caller's own.
func ListPriceProviders() map[string]string {
	rows, err := parseList(bytes.NewReader(listPrices), DefaultCreditsPerUSD, DefaultMarkup, DefaultEffective)
	if err != nil {
		panic("pricing: embedded list prices: " + err.Error()) // the embedded file is tested
	}
	m := make(map[string]string, len(rows))
	for _, r := range rows {
		m[r.price.Model] = r.provider
	}
	return m
}

// ParseListPrices reads a list-price CSV into a card, one version per model
// in force from effective (which is also each version's CreatedAt), in the
// file's order.
//
// The CSV has the header provider,model,input_usd_per_mtok,
// output_usd_per_mtok,cached_input_usd_per_mtok,kind,note; prices are
// plain decimal US dollars per 1M tokens with at most 6 decimals. markup is
// an exact decimal such as "1" or "1.25" (at most 6 decimals, above 0).
//
// A rate in credits is usd × creditsPerUSD × markup, computed exactly and
// rounded UP to a micro-credit: that is the card's one rounding. Input maps
// to InputPerMTok and output to OutputPerMTok; reasoning tokens cost the
// output rate; a blank cached-input price means no discount (the input
// rate); cache writes cost 1.25 × input (CacheWriteFor). Per-image, per-second and per-request rates are 0.
//
// Errors name the CSV line and column. A model listed twice, a blank
// provider or model, a negative or malformed price are errors; a rate
// beyond farebox.MaxTotal is farebox.ErrOverflow (wrapped).
func ParseListPrices(r io.Reader, creditsPerUSD int64, markup string, effective time.Time) ([]fb.Price, error) {
	rows, err := parseList(r, creditsPerUSD, markup, effective)
	if err != nil {
		return nil, err
	}
	out := make([]fb.Price, len(rows))
	for i, r := range rows {
		out[i] = r.price
	}
	return out, nil
}

type listRow struct {
	provider string
	price    fb.Price
}

func parseList(r io.Reader, creditsPerUSD int64, markup string, effective time.Time) ([]listRow, error) {
	if creditsPerUSD <= 0 {
		return nil, fmt.Errorf("list prices: credits per USD must be positive, not %d", creditsPerUSD)
	}
	m, err := fb.ParseAmount(markup)
	if err != nil || m <= 0 {
		return nil, fmt.Errorf("list prices: markup %q must be a positive decimal with at most 6 decimals, such as 1.25", markup)
	}
	rd := csv.NewReader(r)
	rd.FieldsPerRecord = len(listHeader)
	header, err := rd.Read() // a *csv.ParseError names the line and column
	if err == io.EOF {
		return nil, errors.New("list prices: empty file; line 1 must be the header " + strings.Join(listHeader, ","))
	}
	if err != nil {
		return nil, fmt.Errorf("list prices: %w", err)
	}
	for i, h := range listHeader {
		if got := strings.TrimPrefix(strings.TrimSpace(header[i]), "\ufeff"); got != h {
			line, _ := rd.FieldPos(i)
			return nil, fmt.Errorf("list prices line %d column %d: header %q, want %q (the header is %s)", line, i+1, got, h, strings.Join(listHeader, ","))
		}
	}
	// conv is usd (micro-dollars) × creditsPerUSD × markup (micro) / 10⁶,
	// rounded up, in micro-credits.
	conv := func(col int, v string) (fb.Amount, error) {
		line, _ := rd.FieldPos(col)
		usd, err := fb.ParseUSD(strings.TrimSpace(v))
		if err != nil || usd < 0 {
			return 0, fmt.Errorf("list prices line %d column %d (%s): %q is not a non-negative dollar amount with at most 6 decimals", line, col+1, listHeader[col], v)
		}
		n := new(big.Int).Mul(big.NewInt(int64(usd)), big.NewInt(creditsPerUSD))
		n.Mul(n, big.NewInt(int64(m)))
		n.Add(n, big.NewInt(fb.Micro-1))
		n.Quo(n, big.NewInt(fb.Micro))
		if !n.IsInt64() || n.Int64() > int64(fb.MaxTotal) {
			return 0, fmt.Errorf("list prices line %d column %d (%s): %s dollars at %d credits per USD × %s: %w", line, col+1, listHeader[col], usd, creditsPerUSD, m, fb.ErrOverflow)
		}
		return fb.Amount(n.Int64()), nil
	}
	seen := map[string]int{}
	var out []listRow
	for {
		row, err := rd.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list prices: %w", err)
		}
		line, _ := rd.FieldPos(0)
		provider, model := strings.TrimSpace(row[0]), strings.TrimSpace(row[1])
		if provider == "" {
			return nil, fmt.Errorf("list prices line %d column 1 (provider): blank", line)
		}
		if model == "" {
			return nil, fmt.Errorf("list prices line %d column 2 (model): blank", line)
		}
		if first, dup := seen[model]; dup {
			return nil, fmt.Errorf("list prices line %d column 2 (model): %s is already listed on line %d", line, model, first)
		}
		seen[model] = line
		p := fb.Price{Model: model, EffectiveFrom: effective, CreatedAt: effective}
		if p.InputPerMTok, err = conv(2, row[2]); err != nil {
			return nil, err
		}
		if p.OutputPerMTok, err = conv(3, row[3]); err != nil {
			return nil, err
		}
		p.CachedInputPerMTok = p.InputPerMTok
		if strings.TrimSpace(row[4]) != "" {
			if p.CachedInputPerMTok, err = conv(4, row[4]); err != nil {
				return nil, err
			}
		}
		p.ReasoningPerMTok = p.OutputPerMTok
		p.CacheWritePerMTok = CacheWriteFor(p.InputPerMTok)
		out = append(out, listRow{provider: provider, price: p})
	}
	return out, nil
}
