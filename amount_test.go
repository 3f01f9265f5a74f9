package farebox

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"strings"
	"testing"
)

func TestParseAmount(t *testing.T) {
	ok := []struct {
		in   string
		want Amount
	}{
		{"0", 0},
		{"1", 1_000_000},
		{"12", 12_000_000},
		{"0.5", 500_000},
		{"0.000001", 1},
		{"0.000125", 125},
		{"1.50", 1_500_000},
		{"-2.25", -2_250_000},
		{"007", 7_000_000},
		{"00000000000000000000000000001", 1_000_000},
		{"9223372036854.775807", math.MaxInt64},
		{"9223372036854", 9_223_372_036_854_000_000},
	}
	for _, c := range ok {
		got, err := ParseAmount(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseAmount(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	bad := []struct {
		in       string
		overflow bool
	}{
		{"", false},
		{"-", false},
		{".5", false},
		{"1.", false},
		{"1.0000001", false}, // 7 decimals: never rounded
		{"0.0000000", false}, // 7 decimals even if zero
		{"1e3", false},       // no exponents
		{"1E3", false},
		{"+1", false}, // no plus sign
		{" 1", false}, // no blanks
		{"1 ", false},
		{"NaN", false},
		{"Infinity", false},
		{"-Infinity", false},
		{"0x10", false},
		{"1,5", false},
		{"1_000", false},
		{"--1", false},
		{"1.2.3", false},
		{"١", false}, // non-ASCII digit
		{"9223372036854.775808", true},
		{"9223372036855", true},
		{"99999999999999999999", true},
		{"-9223372036854.775808", true},
		{strings.Repeat("9", 400), true},
	}
	for _, c := range bad {
		got, err := ParseAmount(c.in)
		if err == nil {
			t.Errorf("ParseAmount(%q) = %d, want an error", c.in, got)
			continue
		}
		if c.overflow != errors.Is(err, ErrOverflow) {
			t.Errorf("ParseAmount(%q) error %v; overflow expected %v", c.in, err, c.overflow)
		}
	}
}

func TestAmountString(t *testing.T) {
	cases := []struct {
		in   Amount
		want string
	}{
		{0, "0"},
		{1, "0.000001"},
		{10, "0.00001"},
		{500_000, "0.5"},
		{1_000_000, "1"},
		{12_340_000, "12.34"},
		{-1, "-0.000001"},
		{-1_500_000, "-1.5"},
		{math.MaxInt64, "9223372036854.775807"},
		{math.MinInt64, "-9223372036854.775808"},
	}
	for _, c := range cases {
		if got := c.in.String(); got != c.want {
			t.Errorf("Amount(%d).String() = %q, want %q", int64(c.in), got, c.want)
		}
		if got := USD(c.in).String(); got != c.want {
			t.Errorf("USD(%d).String() = %q, want %q", int64(c.in), got, c.want)
		}
	}
}

func TestAmountJSON(t *testing.T) {
	var v struct {
		A Amount `json:"a"`
		U USD    `json:"u"`
	}
	for _, in := range []string{`{"a":"1.5","u":"0.25"}`, `{"a":1.5,"u":0.25}`, `{"a":1.500000,"u":"0.250"}`} {
		v.A, v.U = 0, 0
		if err := json.Unmarshal([]byte(in), &v); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if v.A != 1_500_000 || v.U != 250_000 {
			t.Errorf("%s: got %d %d", in, v.A, v.U)
		}
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"a":"1.5","u":"0.25"}` {
		t.Errorf("marshal = %s", out)
	}
	for _, in := range []string{`{"a":null}`, `{"a":true}`, `{"a":"1e2"}`, `{"a":1e2}`, `{"a":"1.0000001"}`, `{"a":1.0000001}`, `{"a":{}}`, `{"a":[]}`, `{"a":"9999999999999999"}`, `{"a":"\u0031"}x`} {
		if err := json.Unmarshal([]byte(in), &v); err == nil {
			t.Errorf("Unmarshal(%s) succeeded with %d", in, v.A)
		}
	}
}

func TestAdd(t *testing.T) {
	if s, err := Amount(1).Add(2); s != 3 || err != nil {
		t.Errorf("1+2 = %d, %v", s, err)
	}
	if _, err := Amount(math.MaxInt64).Add(1); !errors.Is(err, ErrOverflow) {
		t.Errorf("max+1: %v", err)
	}
	if _, err := Amount(math.MinInt64).Add(-1); !errors.Is(err, ErrOverflow) {
		t.Errorf("min-1: %v", err)
	}
	if s, err := Amount(math.MaxInt64).Add(-1); s != math.MaxInt64-1 || err != nil {
		t.Errorf("max-1 = %d, %v", s, err)
	}
	if _, err := USD(math.MaxInt64).Add(1); !errors.Is(err, ErrOverflow) {
		t.Errorf("usd max+1: %v", err)
	}
}

func TestMulDiv(t *testing.T) {
	cases := []struct {
		a, b, c, want int64
		err           bool
	}{
		{10, 3, 4, 7, false},
		{0, 5, 3, 0, false},
		{math.MaxInt64, 2, 2, math.MaxInt64, false}, // intermediate needs 64 bits more
		{math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64, false},
		{math.MaxInt64, 3, 2, 0, true},
		{-1, 1, 1, 0, true},
		{1, 1, 0, 0, true},
	}
	for _, c := range cases {
		got, err := MulDiv(c.a, c.b, c.c)
		if (err != nil) != c.err || (!c.err && got != c.want) {
			t.Errorf("MulDiv(%d,%d,%d) = %d, %v", c.a, c.b, c.c, got, err)
		}
	}
	// Against math/big on a spread of values.
	vals := []int64{1, 7, 999_999, 1_000_000, 1 << 31, 1<<40 + 3, 1<<62 - 1, math.MaxInt64}
	for _, a := range vals {
		for _, b := range vals {
			for _, c := range vals {
				want := new(big.Int).Mul(big.NewInt(a), big.NewInt(b))
				want.Quo(want, big.NewInt(c))
				got, err := MulDiv(a, b, c)
				if !want.IsInt64() {
					if !errors.Is(err, ErrOverflow) {
						t.Errorf("MulDiv(%d,%d,%d) = %d, %v; want overflow", a, b, c, got, err)
					}
					continue
				}
				if err != nil || got != want.Int64() {
					t.Errorf("MulDiv(%d,%d,%d) = %d, %v; want %s", a, b, c, got, err, want)
				}
			}
		}
	}
}

// FuzzParseAmount checks that parsing never rounds: whatever parses formats
// back to a string that parses to the same value, and agrees with math/big.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"0", "1", "0.5", "-2.25", "0.000001", "1.0000001", "1e3", "9223372036854.775807", "9223372036854.775808", "NaN", "", ".", "-0", "00.100"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAmount(s)
		r, ok := new(big.Rat).SetString(s)
		if err != nil {
			if errors.Is(err, ErrOverflow) && ok {
				m := new(big.Rat).Mul(r, big.NewRat(Micro, 1))
				if m.IsInt() && m.Num().IsInt64() {
					t.Fatalf("ParseAmount(%q) overflowed but %s fits", s, m)
				}
			}
			return
		}
		if !ok {
			t.Fatalf("ParseAmount(%q) = %d but it is not a number", s, a)
		}
		m := new(big.Rat).Mul(r, big.NewRat(Micro, 1))
		if !m.IsInt() || m.Num().Int64() != int64(a) || !m.Num().IsInt64() {
			t.Fatalf("ParseAmount(%q) = %d, exact value %s", s, a, m.RatString())
		}
		back, err := ParseAmount(a.String())
		if err != nil || back != a {
			t.Fatalf("round trip %q -> %d -> %q -> %d, %v", s, a, a.String(), back, err)
		}
	})
}

// FuzzAmountJSON checks JSON decoding: anything accepted re-encodes to a
// string that decodes to the same amount.
func FuzzAmountJSON(f *testing.F) {
	for _, s := range []string{`"1.5"`, `1.5`, `"0.000001"`, `1e3`, `null`, `true`, `"\u0031"`, `-0.000001`, `"9223372036854.775807"`, `{}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var a Amount
		if err := json.Unmarshal([]byte(s), &a); err != nil {
			return
		}
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		var back Amount
		if err := json.Unmarshal(b, &back); err != nil || back != a {
			t.Fatalf("%s -> %d -> %s -> %d, %v", s, a, b, back, err)
		}
	})
}
