package pricing

import (
	"bytes"
	"errors"
	"math"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	fb "farebox"
)

// cr parses a decimal credit amount such as "0.75".
func cr(s string) fb.Amount {
	a, err := fb.ParseAmount(s)
	if err != nil {
		panic(err)
	}
	return a
}

// gpt4o is gpt-4o's list price at 100 credits per dollar: $2.50, $10 and
// $1.25 per 1M input, output and cached input tokens.
var gpt4o = fb.Rates{InputPerMTok: cr("250"), OutputPerMTok: cr("1000"), CachedInputPerMTok: cr("125"), ReasoningPerMTok: cr("1000")}

// tiny is the smallest rate of every kind: one micro-credit per 1M tokens,
// per second, per image, per request.
var tiny = fb.Rates{InputPerMTok: 1, OutputPerMTok: 1, CachedInputPerMTok: 1, ReasoningPerMTok: 1, PerImage: 1, PerAudioSecond: 1, PerVideoSecond: 1, PerGPUSecond: 1, PerRequest: 1}

func TestCost(t *testing.T) {
	fourTenths := fb.Rates{InputPerMTok: cr("0.4"), OutputPerMTok: cr("0.4"), CachedInputPerMTok: cr("0.4"), PerAudioSecond: cr("0.3")}
	half := fb.Rates{InputPerMTok: cr("0.5"), CachedInputPerMTok: cr("0.5")}
	for _, c := range []struct {
		name string
		r    fb.Rates
		q    fb.Quantities
		want string
		// perTerm is the price if each term were rounded up on its own;
		// "" when it equals want.
		perTerm string
	}{
		{name: "nothing", r: gpt4o, q: fb.Quantities{}, want: "0"},
		{name: "no rates", r: fb.Rates{}, q: fb.Quantities{InputTokens: math.MaxInt64, Images: math.MaxInt64, GPUMicros: math.MaxInt64}, want: "0"},
		{name: "gpt-4o 1000 in + 500 out", r: gpt4o, q: fb.Quantities{InputTokens: 1000, OutputTokens: 500}, want: "0.75"},
		{name: "gpt-4o 1 in + 1 out", r: gpt4o, q: fb.Quantities{InputTokens: 1, OutputTokens: 1}, want: "0.00125"},
		{name: "gpt-4o every token kind", r: gpt4o, q: fb.Quantities{InputTokens: 1000, OutputTokens: 500, CachedInputTokens: 3, ReasoningTokens: 7}, want: "0.757375"},
		{name: "gpt-4o 1M input tokens", r: gpt4o, q: fb.Quantities{InputTokens: 1_000_000}, want: "250"},
		{name: "1 token at the smallest rate rounds up", r: tiny, q: fb.Quantities{InputTokens: 1}, want: "0.000001"},
		{name: "1M tokens at the smallest rate is exact", r: tiny, q: fb.Quantities{OutputTokens: 1_000_000}, want: "0.000001"},
		{name: "1M+1 tokens at the smallest rate", r: tiny, q: fb.Quantities{OutputTokens: 1_000_001}, want: "0.000002"},
		{name: "one of each token at the smallest rate", r: tiny, q: fb.Quantities{InputTokens: 1, OutputTokens: 1, CachedInputTokens: 1, ReasoningTokens: 1}, want: "0.000001", perTerm: "0.000004"},
		{name: "half a micro-credit rounds up", r: half, q: fb.Quantities{InputTokens: 1}, want: "0.000001"},
		{name: "two halves round once", r: half, q: fb.Quantities{InputTokens: 1, CachedInputTokens: 1}, want: "0.000001", perTerm: "0.000002"},
		{name: "three halves", r: half, q: fb.Quantities{InputTokens: 3}, want: "0.000002"},
		{name: "0.4+0.4+0.4+0.3 micro-credits round once", r: fourTenths, q: fb.Quantities{InputTokens: 1, OutputTokens: 1, CachedInputTokens: 1, AudioMicros: 1}, want: "0.000002", perTerm: "0.000004"},
		{name: "video 12 s at 0.5/s", r: fb.Rates{PerVideoSecond: cr("0.5")}, q: fb.Quantities{VideoMicros: 12_000_000}, want: "6"},
		{name: "audio 1.5 s at 0.1/s", r: fb.Rates{PerAudioSecond: cr("0.1")}, q: fb.Quantities{AudioMicros: 1_500_000}, want: "0.15"},
		{name: "a micro-second of GPU", r: fb.Rates{PerGPUSecond: cr("0.07")}, q: fb.Quantities{GPUMicros: 1}, want: "0.000001"},
		{name: "90 s of GPU", r: fb.Rates{PerGPUSecond: cr("0.069167")}, q: fb.Quantities{GPUMicros: 90_000_000}, want: "6.22503"},
		{name: "images and requests", r: fb.Rates{PerImage: cr("4"), PerRequest: cr("0.01")}, q: fb.Quantities{Images: 3, Requests: 2}, want: "12.02"},
		{name: "a request plus half a micro-credit of tokens", r: fb.Rates{PerRequest: cr("0.01"), InputPerMTok: cr("0.5")}, q: fb.Quantities{Requests: 1, InputTokens: 1}, want: "0.010001"},
		{name: "every kind at the smallest rate", r: tiny, q: fb.Quantities{InputTokens: 1, OutputTokens: 1, CachedInputTokens: 1, ReasoningTokens: 1, AudioMicros: 1, VideoMicros: 1, GPUMicros: 1, Images: 1, Requests: 1}, want: "0.000003", perTerm: "0.000009"},
		{name: "MaxInt64 tokens at the smallest rate", r: tiny, q: fb.Quantities{InputTokens: math.MaxInt64}, want: "9223372.036855"},
		{name: "exactly MaxTotal", r: fb.Rates{PerImage: fb.MaxTotal}, q: fb.Quantities{Images: 1}, want: fb.MaxTotal.String()},
		{name: "exactly MaxTotal from tokens", r: fb.Rates{InputPerMTok: cr("1")}, q: fb.Quantities{InputTokens: int64(fb.MaxTotal)}, want: fb.MaxTotal.String()},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Cost(c.r, c.q)
			if err != nil || got != cr(c.want) {
				t.Fatalf("Cost = %s, %v; want %s", got, err, c.want)
			}
			want := c.perTerm
			if want == "" {
				want = c.want
			}
			if pt := perTermCost(t, c.r, c.q); pt != cr(want) {
				t.Errorf("rounding each term: %s, want %s", pt, want)
			}
		})
	}
}

// perTermCost is what rounding each term up on its own would charge.
func perTermCost(t *testing.T, r fb.Rates, q fb.Quantities) fb.Amount {
	var sum fb.Amount
	for _, f := range quantityFields {
		var one fb.Quantities
		*f(&one) = *f(&q)
		c, err := Cost(r, one)
		if err != nil {
			t.Fatal(err)
		}
		if sum, err = sum.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	return sum
}

var quantityFields = []func(*fb.Quantities) *int64{
	func(q *fb.Quantities) *int64 { return &q.InputTokens },
	func(q *fb.Quantities) *int64 { return &q.OutputTokens },
	func(q *fb.Quantities) *int64 { return &q.CachedInputTokens },
	func(q *fb.Quantities) *int64 { return &q.ReasoningTokens },
	func(q *fb.Quantities) *int64 { return &q.Images },
	func(q *fb.Quantities) *int64 { return &q.AudioMicros },
	func(q *fb.Quantities) *int64 { return &q.VideoMicros },
	func(q *fb.Quantities) *int64 { return &q.GPUMicros },
	func(q *fb.Quantities) *int64 { return &q.Requests },
}

var rateFields = []func(*fb.Rates) *fb.Amount{
	func(r *fb.Rates) *fb.Amount { return &r.InputPerMTok },
	func(r *fb.Rates) *fb.Amount { return &r.OutputPerMTok },
	func(r *fb.Rates) *fb.Amount { return &r.CachedInputPerMTok },
	func(r *fb.Rates) *fb.Amount { return &r.ReasoningPerMTok },
	func(r *fb.Rates) *fb.Amount { return &r.PerImage },
	func(r *fb.Rates) *fb.Amount { return &r.PerAudioSecond },
	func(r *fb.Rates) *fb.Amount { return &r.PerVideoSecond },
	func(r *fb.Rates) *fb.Amount { return &r.PerGPUSecond },
	func(r *fb.Rates) *fb.Amount { return &r.PerRequest },
}

func TestCostOverflow(t *testing.T) {
	for _, c := range []struct {
		name string
		r    fb.Rates
		q    fb.Quantities
	}{
		{"MaxTotal plus a micro-credit", fb.Rates{PerImage: fb.MaxTotal, PerRequest: 1}, fb.Quantities{Images: 1, Requests: 1}},
		{"two images at MaxTotal", fb.Rates{PerImage: fb.MaxTotal}, fb.Quantities{Images: 2}},
		{"MaxTotal from tokens plus a fraction", fb.Rates{InputPerMTok: cr("1"), OutputPerMTok: 1}, fb.Quantities{InputTokens: int64(fb.MaxTotal), OutputTokens: 1}},
		{"MaxInt64 tokens at MaxInt64", fb.Rates{InputPerMTok: math.MaxInt64}, fb.Quantities{InputTokens: math.MaxInt64}},
		{"every term at MaxInt64", maxRates(), maxQuantities()},
		{"MaxInt64 requests at 1", fb.Rates{PerRequest: 1}, fb.Quantities{Requests: math.MaxInt64}},
		{"GPU seconds", fb.Rates{PerGPUSecond: math.MaxInt64}, fb.Quantities{GPUMicros: math.MaxInt64}},
	} {
		got, err := Cost(c.r, c.q)
		if !errors.Is(err, fb.ErrOverflow) {
			t.Errorf("%s: %s, %v; want ErrOverflow", c.name, got, err)
		}
	}
}

func maxRates() fb.Rates {
	var r fb.Rates
	for _, f := range rateFields {
		*f(&r) = math.MaxInt64
	}
	return r
}

func maxQuantities() fb.Quantities {
	var q fb.Quantities
	for _, f := range quantityFields {
		*f(&q) = math.MaxInt64
	}
	return q
}

func TestCostNegative(t *testing.T) {
	for i, f := range quantityFields {
		for _, v := range []int64{-1, math.MinInt64} {
			q := fb.Quantities{InputTokens: 1000}
			*f(&q) = v
			if got, err := Cost(gpt4o, q); err == nil {
				t.Errorf("quantity field %d = %d: priced %s", i, v, got)
			}
		}
	}
	for i, f := range rateFields {
		for _, v := range []fb.Amount{-1, math.MinInt64} {
			r := gpt4o
			*f(&r) = v
			// Even with no quantity of that kind: a negative rate is a bad card.
			if got, err := Cost(r, fb.Quantities{}); err == nil {
				t.Errorf("rate field %d = %d: priced %s", i, v, got)
			}
		}
	}
}

// refCost evaluates the formula of Cost's doc with math/big.
func refCost(r fb.Rates, q fb.Quantities) (*big.Int, bool) {
	b := func(v int64) *big.Int { return big.NewInt(v) }
	mul := func(x int64, y fb.Amount) *big.Int { return new(big.Int).Mul(b(x), b(int64(y))) }
	for _, f := range quantityFields {
		if *f(&q) < 0 {
			return nil, false
		}
	}
	for _, f := range rateFields {
		if *f(&r) < 0 {
			return nil, false
		}
	}
	n := new(big.Int)
	n.Add(n, mul(q.InputTokens, r.InputPerMTok))
	n.Add(n, mul(q.OutputTokens, r.OutputPerMTok))
	n.Add(n, mul(q.CachedInputTokens, r.CachedInputPerMTok))
	n.Add(n, mul(q.ReasoningTokens, r.ReasoningPerMTok))
	n.Add(n, mul(q.AudioMicros, r.PerAudioSecond))
	n.Add(n, mul(q.VideoMicros, r.PerVideoSecond))
	n.Add(n, mul(q.GPUMicros, r.PerGPUSecond))
	w := new(big.Int).Add(mul(q.Images, r.PerImage), mul(q.Requests, r.PerRequest))
	n.Add(n, w.Mul(w, b(fb.Micro)))
	want, rem := new(big.Int).QuoRem(n, b(fb.Micro), new(big.Int))
	if rem.Sign() > 0 {
		want.Add(want, b(1))
	}
	return want, true
}

// FuzzCost checks Cost against a plain math/big evaluation of the formula.
func FuzzCost(f *testing.F) {
	f.Add(int64(1000), int64(500), int64(3), int64(7), int64(0), int64(1_500_000), int64(12_000_000), int64(1), int64(2),
		int64(250_000_000), int64(1_000_000_000), int64(125_000_000), int64(1_000_000_000), int64(4_000_000), int64(100_000), int64(500_000), int64(70_000), int64(10_000))
	f.Add(int64(1), int64(1), int64(1), int64(1), int64(1), int64(1), int64(1), int64(1), int64(1),
		int64(1), int64(1), int64(1), int64(1), int64(1), int64(1), int64(1), int64(1), int64(1))
	f.Add(int64(fb.MaxTotal), int64(1), int64(0), int64(0), int64(0), int64(0), int64(0), int64(0), int64(0),
		int64(fb.Micro), int64(1), int64(0), int64(0), int64(0), int64(0), int64(0), int64(0), int64(0))
	f.Add(int64(math.MaxInt64), int64(-1), int64(0), int64(0), int64(0), int64(0), int64(0), int64(0), int64(0),
		int64(math.MaxInt64), int64(0), int64(0), int64(0), int64(0), int64(0), int64(0), int64(0), int64(math.MinInt64))
	f.Fuzz(func(t *testing.T, in, out, cached, reasoning, img, audio, video, gpu, req,
		rIn, rOut, rCached, rReasoning, rImg, rAudio, rVideo, rGPU, rReq int64) {
		q := fb.Quantities{InputTokens: in, OutputTokens: out, CachedInputTokens: cached, ReasoningTokens: reasoning,
			Images: img, AudioMicros: audio, VideoMicros: video, GPUMicros: gpu, Requests: req}
		r := fb.Rates{InputPerMTok: fb.Amount(rIn), OutputPerMTok: fb.Amount(rOut), CachedInputPerMTok: fb.Amount(rCached),
			ReasoningPerMTok: fb.Amount(rReasoning), PerImage: fb.Amount(rImg), PerAudioSecond: fb.Amount(rAudio),
			PerVideoSecond: fb.Amount(rVideo), PerGPUSecond: fb.Amount(rGPU), PerRequest: fb.Amount(rReq)}
		got, err := Cost(r, q)
		want, ok := refCost(r, q)
		switch {
		case !ok:
			if err == nil {
				t.Fatalf("negative input priced: %s", got)
			}
		case !want.IsInt64() || want.Int64() > int64(fb.MaxTotal):
			if !errors.Is(err, fb.ErrOverflow) {
				t.Fatalf("want ErrOverflow for %s micro-credits, got %s, %v", want, got, err)
			}
		case err != nil || int64(got) != want.Int64():
			t.Fatalf("Cost = %s, %v; want %s micro-credits", got, err, want)
		}
	})
}

func TestCard(t *testing.T) {
	t1 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	t2 := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	t3 := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
	prices := []fb.Price{
		{Model: "gpt-4o", Rates: fb.Rates{InputPerMTok: cr("200")}, EffectiveFrom: t2},
		{Model: "gpt-4o", Rates: fb.Rates{InputPerMTok: cr("250")}, EffectiveFrom: t1},
		{Model: "sora-1", Rates: fb.Rates{InputPerMTok: cr("5")}, EffectiveFrom: t2},
		{Model: "claude-opus-4", Rates: fb.Rates{InputPerMTok: cr("1500")}, EffectiveFrom: t1},
		{Model: "claude-opus-4", Rates: fb.Rates{InputPerMTok: cr("1400")}, EffectiveFrom: t3},
		{Model: "claude-opus-4", Rates: fb.Rates{InputPerMTok: cr("1300")}, EffectiveFrom: t3}, // same time: the later wins
		{Model: "future", Rates: fb.Rates{InputPerMTok: cr("1")}, EffectiveFrom: t3},
	}
	c := NewCard(prices)
	prices[1].InputPerMTok = cr("999") // the card keeps its own copy
	prices[1].Model = "changed"
	for _, x := range []struct {
		name  string
		model string
		at    time.Time
		ok    bool
		input string
	}{
		{"before any version", "gpt-4o", t1.Add(-time.Nanosecond), false, ""},
		{"exactly at the first", "gpt-4o", t1, true, "250"},
		{"just before the second", "gpt-4o", t2.Add(-time.Nanosecond), true, "250"},
		{"exactly at the second", "gpt-4o", t2, true, "200"},
		{"long after", "gpt-4o", t3.AddDate(10, 0, 0), true, "200"},
		{"another zone, same instant", "gpt-4o", t2.In(time.FixedZone("X", -5*3600)), true, "200"},
		{"case-sensitive", "GPT-4o", t2, false, ""},
		{"no trimming", " gpt-4o", t2, false, ""},
		{"unknown", "nope", t2, false, ""},
		{"empty model", "", t2, false, ""},
		{"only future versions", "future", t2, false, ""},
		{"future version in force", "future", t3, true, "1"},
		{"same EffectiveFrom: later in input wins", "claude-opus-4", t3, true, "1300"},
		{"before the tie", "claude-opus-4", t3.Add(-time.Nanosecond), true, "1500"},
	} {
		p, ok := c.At(x.model, x.at)
		if ok != x.ok || ok && (p.InputPerMTok != cr(x.input) || p.Model != x.model) || !ok && p != (fb.Price{}) {
			t.Errorf("%s: At(%q, %s) = %+v, %v; want %v %s", x.name, x.model, x.at, p, ok, x.ok, x.input)
		}
	}
	models := func(ps []fb.Price) string {
		var s []string
		for _, p := range ps {
			s = append(s, p.Model+"="+p.InputPerMTok.String())
		}
		return strings.Join(s, ",")
	}
	for _, x := range []struct {
		at   time.Time
		want string
	}{
		{t1.Add(-1), ""},
		{t1, "claude-opus-4=1500,gpt-4o=250"},
		{t2, "claude-opus-4=1500,gpt-4o=200,sora-1=5"},
		{t3, "claude-opus-4=1300,future=1,gpt-4o=200,sora-1=5"},
	} {
		if got := models(c.Current(x.at)); got != x.want {
			t.Errorf("Current(%s) = %s, want %s", x.at, got, x.want)
		}
	}
	if m := c.Models(); strings.Join(m, ",") != "claude-opus-4,future,gpt-4o,sora-1" {
		t.Errorf("Models() = %v", m)
	}
	// Callers own what they get back.
	c.Models()[0] = "x"
	c.Current(t3)[0].Model = "x"
	if m := c.Models(); m[0] != "claude-opus-4" || c.Current(t3)[0].Model != "claude-opus-4" {
		t.Error("a caller changed the card")
	}

	empty := NewCard(nil)
	if _, ok := empty.At("gpt-4o", t1); ok || len(empty.Current(t1)) != 0 || len(empty.Models()) != 0 {
		t.Error("an empty card prices something")
	}
}

// TestCardConcurrent is for -race: readers share a card.
func TestCardConcurrent(t *testing.T) {
	ps, err := DefaultPrices(DefaultCreditsPerUSD, DefaultMarkup, DefaultEffective)
	if err != nil {
		t.Fatal(err)
	}
	c := NewCard(ps)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if p, ok := c.At("gpt-4o", DefaultEffective); !ok || p.InputPerMTok != cr("250") {
					t.Error("gpt-4o not priced")
					return
				}
				if len(c.Current(DefaultEffective)) != len(ps) || len(c.Models()) != len(ps) {
					t.Error("card changed")
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestDefaultPrices(t *testing.T) {
	at := DefaultEffective
	for _, c := range []struct {
		perUSD                           int64
		markup, model                    string
		input, output, cached, reasoning string
	}{
		{100, "1", "gpt-4o", "250", "1000", "125", "1000"},
		{100, "1", "gpt-4o-mini", "15", "60", "7.5", "60"},
		{100, "1", "o4-mini", "110", "440", "27.5", "440"},
		{100, "1", "claude-sonnet-4", "300", "1500", "30", "1500"},
		{100, "1", "text-embedding-3-small", "2", "0", "2", "0"},                           // blank cached: the input rate
		{100, "1", "llama-3.3-70b-instruct-turbo", "88", "88", "88", "88"},                 // blank cached
		{100, "1.25", "gpt-4o", "312.5", "1250", "156.25", "1250"},                         // markup
		{100, "1.25", "gpt-4o-mini", "18.75", "75", "9.375", "75"},                         // $0.075 × 100 × 1.25
		{100, "1.25", "llama-3.1-405b-instruct-turbo", "437.5", "437.5", "437.5", "437.5"}, // markup, blank cached
		{100, "1.333333", "gpt-4o-mini", "19.999995", "79.99998", "9.999998", "79.99998"},  // 9.9999975 rounds up
		{1, "1.000001", "gpt-4o-mini", "0.150001", "0.600001", "0.075001", "0.600001"},     // 0.15000015 rounds up
		{1, "1", "o4-mini", "1.1", "4.4", "0.275", "4.4"},
		{1_000_000, "2", "gpt-4.5-preview", "150000000", "300000000", "75000000", "300000000"},
	} {
		ps, err := DefaultPrices(c.perUSD, c.markup, at)
		if err != nil {
			t.Fatalf("%d × %s: %v", c.perUSD, c.markup, err)
		}
		i := slices.IndexFunc(ps, func(p fb.Price) bool { return p.Model == c.model })
		if i < 0 {
			t.Fatalf("%s missing", c.model)
		}
		want := fb.Price{Model: c.model, EffectiveFrom: at, CreatedAt: at, Rates: fb.Rates{
			InputPerMTok: cr(c.input), OutputPerMTok: cr(c.output), CachedInputPerMTok: cr(c.cached), ReasoningPerMTok: cr(c.reasoning),
			CacheWritePerMTok: CacheWriteFor(cr(c.input))}}
		if got := ps[i]; got != want {
			t.Errorf("%s at %d credits/USD × %s:\n got %+v\nwant %+v", c.model, c.perUSD, c.markup, got, want)
		}
	}

	ps, err := DefaultPrices(DefaultCreditsPerUSD, DefaultMarkup, at)
	if err != nil || len(ps) != 18 || ps[0].Model != "gpt-4o" || ps[17].Model != "llama-v3p1-405b-instruct" {
		t.Fatalf("%d prices, %v", len(ps), err)
	}
	provs := ListPriceProviders()
	if len(provs) != len(ps) {
		t.Errorf("%d providers for %d prices", len(provs), len(ps))
	}
	for m, want := range map[string]string{"gpt-4o": "openai", "o3": "openai", "claude-opus-4": "anthropic", "llama-3.3-70b-instruct-turbo": "together", "llama-v3p1-405b-instruct": "fireworks"} {
		if provs[m] != want {
			t.Errorf("provider of %s: %q, want %q", m, provs[m], want)
		}
	}
	provs["gpt-4o"] = "x"
	if ListPriceProviders()["gpt-4o"] != "openai" {
		t.Error("ListPriceProviders shares its map")
	}
}

const header = "provider,model,input_usd_per_mtok,output_usd_per_mtok,cached_input_usd_per_mtok,kind,note\n"

func TestParseListPrices(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ps, err := ParseListPrices(strings.NewReader("\ufeff"+header+" p , m , 1.5 , 2,,chat,\"a, quoted\nnote\"\np,n,0,0,0,chat,\n"), 100, "1", at)
	if err != nil {
		t.Fatal(err)
	}
	want := []fb.Price{
		{Model: "m", Rates: fb.Rates{InputPerMTok: cr("150"), OutputPerMTok: cr("200"), CachedInputPerMTok: cr("150"), ReasoningPerMTok: cr("200"), CacheWritePerMTok: cr("187.5")}, EffectiveFrom: at, CreatedAt: at},
		{Model: "n", EffectiveFrom: at, CreatedAt: at},
	}
	if !slices.Equal(ps, want) {
		t.Errorf("got %+v\nwant %+v", ps, want)
	}
	if ps, err := ParseListPrices(strings.NewReader(header), 100, "1", at); err != nil || len(ps) != 0 {
		t.Errorf("header only: %v, %v", ps, err)
	}
}

func TestParseListPricesErrors(t *testing.T) {
	at := DefaultEffective
	for _, c := range []struct {
		name     string
		csv      string
		perUSD   int64
		markup   string
		want     []string // in the error's text
		overflow bool
	}{
		{"not a number", header + "x,m,abc,1,,chat,\n", 100, "1", []string{"line 2 column 3 (input_usd_per_mtok)", `"abc"`}, false},
		{"blank input", header + "x,m,,1,,chat,\n", 100, "1", []string{"line 2 column 3 (input_usd_per_mtok)"}, false},
		{"negative output", header + "x,m,1,-1,,chat,\n", 100, "1", []string{"line 2 column 4 (output_usd_per_mtok)"}, false},
		{"seven decimals", header + "x,m,1,1,0.0000001,chat,\n", 100, "1", []string{"line 2 column 5 (cached_input_usd_per_mtok)"}, false},
		{"exponent", header + "x,m,1e3,1,,chat,\n", 100, "1", []string{"line 2 column 3"}, false},
		{"dollar sign", header + "x,m,$1,1,,chat,\n", 100, "1", []string{"line 2 column 3"}, false},
		{"duplicate", header + "x,m,1,1,,chat,\ny,m,2,2,,chat,\n", 100, "1", []string{"line 3 column 2 (model)", "line 2"}, false},
		{"duplicate after trimming", header + "x,m,1,1,,chat,\ny, m ,2,2,,chat,\n", 100, "1", []string{"line 3 column 2"}, false},
		{"blank model", header + "x,,1,1,,chat,\n", 100, "1", []string{"line 2 column 2 (model)"}, false},
		{"blank provider", header + " ,m,1,1,,chat,\n", 100, "1", []string{"line 2 column 1 (provider)"}, false},
		{"too few fields", header + "x,m,1,1,,chat\n", 100, "1", []string{"line 2", "wrong number of fields"}, false},
		{"too many fields", header + "x,m,1,1,,chat,,\n", 100, "1", []string{"line 2", "wrong number of fields"}, false},
		{"bad quote", header + "x,m\"x,1,1,,chat,\n", 100, "1", []string{"line 2"}, false},
		{"line after a multi-line note", header + "x,a,1,1,,chat,\"two\nlines\"\nx,b,oops,1,,chat,\n", 100, "1", []string{"line 4 column 3"}, false},
		{"header renamed", "provider,model,input,output_usd_per_mtok,cached_input_usd_per_mtok,kind,note\n", 100, "1", []string{"line 1 column 3", `"input"`}, false},
		{"header reordered", "model,provider,input_usd_per_mtok,output_usd_per_mtok,cached_input_usd_per_mtok,kind,note\nm,x,1,1,,chat,\n", 100, "1", []string{"line 1 column 1"}, false},
		{"header missing", "x,m,1,1,,chat,\n", 100, "1", []string{"line 1 column 1"}, false},
		{"short header", "model,provider\n", 100, "1", []string{"line 1", "wrong number of fields"}, false},
		{"empty", "", 100, "1", []string{"empty"}, false},
		{"rate overflows", header + "x,m,9000000000000,1,,chat,\n", 1_000_000, "1", []string{"line 2 column 3"}, true},
		{"rate overflows by markup", header + "x,m,1,1000000000,,chat,\n", 1_000_000, "1000", []string{"line 2 column 4"}, true},
		{"zero credits per USD", header, 0, "1", []string{"credits per USD"}, false},
		{"negative credits per USD", header, -100, "1", []string{"credits per USD"}, false},
		{"zero markup", header, 100, "0", []string{"markup"}, false},
		{"minus zero markup", header, 100, "-0", []string{"markup"}, false},
		{"negative markup", header, 100, "-1.25", []string{"markup"}, false},
		{"markup not a number", header, 100, "abc", []string{"markup"}, false},
		{"markup percent", header, 100, "125%", []string{"markup"}, false},
		{"markup seven decimals", header, 100, "1.0000001", []string{"markup"}, false},
		{"blank markup", header, 100, "", []string{"markup"}, false},
	} {
		ps, err := ParseListPrices(strings.NewReader(c.csv), c.perUSD, c.markup, at)
		if err == nil {
			t.Errorf("%s: accepted: %+v", c.name, ps)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.name, err, w)
			}
		}
		if errors.Is(err, fb.ErrOverflow) != c.overflow {
			t.Errorf("%s: errors.Is(%v, ErrOverflow) = %v", c.name, err, !c.overflow)
		}
	}
}

// FuzzParseListPrices checks that any input is priced sensibly or refused.
func FuzzParseListPrices(f *testing.F) {
	f.Add(listPrices, int64(100), "1")
	f.Add([]byte(header+"x,m,1,1,,chat,\nx,n,0.000001,2,0.5,chat,\n"), int64(1), "1.25")
	f.Add([]byte(header+"x,m,1,1,,chat,\"a\nb\"\n"), int64(3), "0.000001")
	f.Fuzz(func(t *testing.T, data []byte, perUSD int64, markup string) {
		ps, err := ParseListPrices(bytes.NewReader(data), perUSD, markup, DefaultEffective)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, p := range ps {
			if p.Model == "" || seen[p.Model] {
				t.Fatalf("model %q blank or repeated", p.Model)
			}
			seen[p.Model] = true
			for _, f := range rateFields {
				if v := *f(&p.Rates); v < 0 || v > fb.MaxTotal {
					t.Fatalf("%s: rate %s out of range", p.Model, v)
				}
			}
			if p.ReasoningPerMTok != p.OutputPerMTok || p.PerImage != 0 || p.PerRequest != 0 || p.PerAudioSecond != 0 || p.PerVideoSecond != 0 || p.PerGPUSecond != 0 {
				t.Fatalf("%s: %+v", p.Model, p.Rates)
			}
		}
	})
}

// TestCacheWriteFor: the default cache-write rate is 1.25 × input, rounded
// up once to a micro-credit.
func TestCacheWriteFor(t *testing.T) {
	for _, c := range []struct{ input, want string }{
		{"0", "0"}, {"0.000001", "0.000002"}, {"0.000004", "0.000005"}, {"15", "18.75"},
		{"0.150001", "0.187502"}, {"300", "375"}, {"0.000003", "0.000004"},
	} {
		if got := CacheWriteFor(cr(c.input)); got != cr(c.want) {
			t.Errorf("CacheWriteFor(%s) = %s, want %s", c.input, got, c.want)
		}
	}
}
