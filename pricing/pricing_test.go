package pricing

import (
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	fb "farebox"
)

func cr(s string) fb.Amount {
	a, err := fb.ParseAmount(s)
	if err != nil {
		panic(err)
	}
	return a
}

func TestCost(t *testing.T) {
	gpt4o := fb.Rates{InputPerMTok: cr("250"), OutputPerMTok: cr("1000"), CachedInputPerMTok: cr("125"), ReasoningPerMTok: cr("1000")}
	half := fb.Rates{InputPerMTok: cr("0.5"), CachedInputPerMTok: cr("0.5")}
	for _, c := range []struct {
		name string
		r    fb.Rates
		q    fb.Quantities
		want string
	}{
		{"tokens", gpt4o, fb.Quantities{InputTokens: 1000, OutputTokens: 500}, "0.75"},
		{"every token kind", gpt4o, fb.Quantities{InputTokens: 1000, OutputTokens: 500, CachedInputTokens: 3, ReasoningTokens: 7}, "0.757375"},
		{"half a micro-credit rounds up", half, fb.Quantities{InputTokens: 1}, "0.000001"},
		{"two halves round once", half, fb.Quantities{InputTokens: 1, CachedInputTokens: 1}, "0.000001"},
		{"three halves", half, fb.Quantities{InputTokens: 3}, "0.000002"},
		{"video seconds", fb.Rates{PerVideoSecond: cr("0.5")}, fb.Quantities{VideoMicros: 12_000_000}, "6"},
		{"audio 1.5 s", fb.Rates{PerAudioSecond: cr("0.1")}, fb.Quantities{AudioMicros: 1_500_000}, "0.15"},
		{"a micro-second of GPU", fb.Rates{PerGPUSecond: cr("0.07")}, fb.Quantities{GPUMicros: 1}, "0.000001"},
		{"images and requests", fb.Rates{PerImage: cr("4"), PerRequest: cr("0.01")}, fb.Quantities{Images: 3, Requests: 2}, "12.02"},
		{"nothing", gpt4o, fb.Quantities{}, "0"},
	} {
		got, err := Cost(c.r, c.q)
		if err != nil || got != cr(c.want) {
			t.Errorf("%s: %s, %v; want %s", c.name, got, err, c.want)
		}
	}
	if _, err := Cost(gpt4o, fb.Quantities{InputTokens: -1}); err == nil {
		t.Error("a negative quantity priced")
	}
	if _, err := Cost(fb.Rates{PerImage: fb.MaxTotal}, fb.Quantities{Images: 2}); !errors.Is(err, fb.ErrOverflow) {
		t.Errorf("overflow: %v", err)
	}
}

// FuzzCost checks Cost against a plain math/big evaluation of the formula.
func FuzzCost(f *testing.F) {
	f.Add(int64(1000), int64(500), int64(1), int64(12_000_000), int64(3), int64(250_000_000), int64(1_000_000_000), int64(500_000), int64(4_000_000))
	f.Fuzz(func(t *testing.T, in, out, img, video, req, rIn, rOut, rVideo, rImg int64) {
		r := fb.Rates{InputPerMTok: fb.Amount(rIn), OutputPerMTok: fb.Amount(rOut), PerVideoSecond: fb.Amount(rVideo), PerImage: fb.Amount(rImg), PerRequest: fb.Amount(rImg)}
		q := fb.Quantities{InputTokens: in, OutputTokens: out, Images: img, VideoMicros: video, Requests: req}
		got, err := Cost(r, q)
		for _, v := range []int64{in, out, img, video, req, rIn, rOut, rVideo, rImg} {
			if v < 0 {
				if err == nil {
					t.Fatalf("negative input priced: %s", got)
				}
				return
			}
		}
		b := func(v int64) *big.Int { return big.NewInt(v) }
		n := new(big.Int).Mul(b(in), b(rIn))
		n.Add(n, new(big.Int).Mul(b(out), b(rOut)))
		n.Add(n, new(big.Int).Mul(b(video), b(rVideo)))
		w := new(big.Int).Mul(b(img), b(rImg))
		w.Add(w, new(big.Int).Mul(b(req), b(rImg)))
		n.Add(n, w.Mul(w, b(fb.Micro)))
		want, rem := new(big.Int).QuoRem(n, b(fb.Micro), new(big.Int))
		if rem.Sign() > 0 {
			want.Add(want, b(1))
		}
		if !want.IsInt64() || want.Int64() > int64(fb.MaxTotal) {
			if !errors.Is(err, fb.ErrOverflow) {
				t.Fatalf("want overflow, got %s, %v", got, err)
			}
			return
		}
		if err != nil || int64(got) != want.Int64() {
			t.Fatalf("Cost = %s, %v; want %s micro-credits", got, err, want)
		}
	})
}

func TestCard(t *testing.T) {
	t1 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	t2 := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewCard([]fb.Price{
		{Model: "gpt-4o", Rates: fb.Rates{InputPerMTok: cr("200")}, EffectiveFrom: t2},
		{Model: "gpt-4o", Rates: fb.Rates{InputPerMTok: cr("250")}, EffectiveFrom: t1},
		{Model: "sora-1", Rates: fb.Rates{PerVideoSecond: cr("0.5")}, EffectiveFrom: t2},
	})
	for _, x := range []struct {
		model string
		at    time.Time
		ok    bool
		input string
	}{
		{"gpt-4o", t1.Add(-time.Nanosecond), false, ""},
		{"gpt-4o", t1, true, "250"},
		{"gpt-4o", t2.Add(-time.Nanosecond), true, "250"},
		{"gpt-4o", t2, true, "200"},
		{"GPT-4o", t2, false, ""},
		{"nope", t2, false, ""},
	} {
		p, ok := c.At(x.model, x.at)
		if ok != x.ok || ok && p.InputPerMTok != cr(x.input) {
			t.Errorf("At(%s, %s) = %+v, %v", x.model, x.at, p, ok)
		}
	}
	if cur := c.Current(t1); len(cur) != 1 || cur[0].Model != "gpt-4o" {
		t.Errorf("current at t1: %+v", cur)
	}
	if m := c.Models(); strings.Join(m, ",") != "gpt-4o,sora-1" {
		t.Errorf("models: %v", m)
	}
}

func TestDefaultPrices(t *testing.T) {
	at := DefaultEffective
	ps, err := DefaultPrices(100, "1", at)
	if err != nil || len(ps) != 18 {
		t.Fatalf("%d prices, %v", len(ps), err)
	}
	by := map[string]fb.Price{}
	for _, p := range ps {
		by[p.Model] = p
	}
	// gpt-4o: $2.50 / $10 / $1.25 per 1M at 100 credits per dollar.
	if p := by["gpt-4o"]; p.InputPerMTok != cr("250") || p.OutputPerMTok != cr("1000") || p.CachedInputPerMTok != cr("125") || p.ReasoningPerMTok != cr("1000") {
		t.Errorf("gpt-4o: %+v", p.Rates)
	}
	// A blank cached price is the input price.
	if p := by["llama-3.3-70b-instruct-turbo"]; p.CachedInputPerMTok != cr("88") || p.InputPerMTok != cr("88") {
		t.Errorf("llama: %+v", p.Rates)
	}
	// Markup 1.25: $0.075 × 100 × 1.25 = 9.375 credits.
	ps, err = DefaultPrices(100, "1.25", at)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Model == "gpt-4o-mini" && p.CachedInputPerMTok != cr("9.375") {
			t.Errorf("gpt-4o-mini cached with markup: %s", p.CachedInputPerMTok)
		}
	}
	for _, bad := range []string{
		"provider,model,input_usd_per_mtok,output_usd_per_mtok,cached_input_usd_per_mtok,kind,note\nx,m,abc,1,,chat,\n",
		"provider,model,input_usd_per_mtok,output_usd_per_mtok,cached_input_usd_per_mtok,kind,note\nx,m,1,1,,chat,\nx,m,1,1,,chat,\n",
		"provider,model,input_usd_per_mtok,output_usd_per_mtok,cached_input_usd_per_mtok,kind,note\nx,,1,1,,chat,\n",
		"model,provider\n",
	} {
		if _, err := ParseListPrices(strings.NewReader(bad), 100, "1", at); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if _, err := DefaultPrices(100, "0", at); err == nil {
		t.Error("markup 0 accepted")
	}
}
