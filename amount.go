// Package farebox holds the domain of Farebox: exact money amounts, customers,
// credit lots and holds, the ledger's operations and results, error codes and
// the storage contract that every engine implements. It does no I/O.
package farebox

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Micro is the number of micro-units in one unit (credit or dollar).
const Micro = 1_000_000

// Amount is a quantity of credits in micro-credits (1 credit = 1,000,000).
// It is exact: parsing rejects anything that would round and arithmetic
// reports overflow instead of wrapping.
type Amount int64

// USD is a quantity of US dollars in micro-dollars.
type USD int64

// ErrOverflow is returned when a sum or product leaves the int64 range.
var ErrOverflow = errors.New("amount overflows")

// ParseAmount parses a decimal string such as "12", "0.5" or "0.000125".
// It accepts at most 6 fractional digits and an optional leading minus sign;
// exponents, '+', blanks, NaN, Infinity and values beyond int64 micro-units
// are errors.
func ParseAmount(s string) (Amount, error) {
	v, err := parseMicros(s)
	return Amount(v), err
}

// ParseUSD parses a decimal dollar string the way ParseAmount parses credits.
func ParseUSD(s string) (USD, error) {
	v, err := parseMicros(s)
	return USD(v), err
}

func parseMicros(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty amount")
	}
	neg := false
	body := s
	if body[0] == '-' {
		neg = true
		body = body[1:]
	}
	intPart, frac, hasDot := strings.Cut(body, ".")
	if intPart == "" {
		return 0, errors.New("amount needs digits before the decimal point")
	}
	if hasDot && frac == "" {
		return 0, errors.New("amount needs digits after the decimal point")
	}
	if !allDigits(intPart) || !allDigits(frac) {
		return 0, errors.New("amount must be a plain decimal number such as \"12.5\"")
	}
	if len(frac) > 6 {
		return 0, errors.New("amount has more than 6 decimal places")
	}
	// Leading zeros are harmless; strip them so long zero runs do not overflow.
	intPart = strings.TrimLeft(intPart, "0")
	if intPart == "" {
		intPart = "0"
	}
	if len(intPart) > 19 {
		return 0, ErrOverflow
	}
	whole, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil {
		return 0, ErrOverflow
	}
	if whole > math.MaxInt64/Micro {
		return 0, ErrOverflow
	}
	fracVal := int64(0)
	if frac != "" {
		frac += strings.Repeat("0", 6-len(frac))
		fracVal, _ = strconv.ParseInt(frac, 10, 64)
	}
	v := whole * Micro
	if v > math.MaxInt64-fracVal {
		return 0, ErrOverflow
	}
	v += fracVal
	if neg {
		v = -v
	}
	return v, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func formatMicros(v int64) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	u := uint64(v)
	if v < 0 {
		b = append(b, '-')
		u = uint64(-(v + 1)) + 1 // safe for MinInt64
	}
	whole, frac := u/Micro, u%Micro
	b = strconv.AppendUint(b, whole, 10)
	if frac != 0 {
		fs := strconv.FormatUint(frac+Micro, 10)[1:] // zero-padded to 6 digits
		b = append(b, '.')
		b = append(b, strings.TrimRight(fs, "0")...)
	}
	return string(b)
}

// String formats the amount as a decimal string without trailing zeros.
func (a Amount) String() string { return formatMicros(int64(a)) }

// String formats the dollars as a decimal string without trailing zeros.
func (u USD) String() string { return formatMicros(int64(u)) }

// MarshalJSON writes the amount as a decimal string.
func (a Amount) MarshalJSON() ([]byte, error) { return strconv.AppendQuote(nil, a.String()), nil }

// MarshalJSON writes the dollars as a decimal string.
func (u USD) MarshalJSON() ([]byte, error) { return strconv.AppendQuote(nil, u.String()), nil }

// UnmarshalJSON accepts a decimal string or a JSON number.
func (a *Amount) UnmarshalJSON(b []byte) error {
	v, err := unmarshalMicros(b)
	if err != nil {
		return err
	}
	*a = Amount(v)
	return nil
}

// UnmarshalJSON accepts a decimal string or a JSON number.
func (u *USD) UnmarshalJSON(b []byte) error {
	v, err := unmarshalMicros(b)
	if err != nil {
		return err
	}
	*u = USD(v)
	return nil
}

func unmarshalMicros(b []byte) (int64, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return 0, err
		}
		return parseMicros(s)
	}
	if string(b) == "null" {
		return 0, errors.New("amount must not be null")
	}
	return parseMicros(string(b))
}

// Add returns a+b or ErrOverflow.
func (a Amount) Add(b Amount) (Amount, error) {
	s, ok := addInt64(int64(a), int64(b))
	if !ok {
		return 0, ErrOverflow
	}
	return Amount(s), nil
}

// Add returns u+v or ErrOverflow.
func (u USD) Add(v USD) (USD, error) {
	s, ok := addInt64(int64(u), int64(v))
	if !ok {
		return 0, ErrOverflow
	}
	return USD(s), nil
}

func addInt64(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}

// MulDiv returns floor(a*b/c) for non-negative a, b and positive c, exactly,
// using 128-bit intermediate arithmetic. It reports overflow when the result
// does not fit in int64.
func MulDiv(a, b, c int64) (int64, error) {
	if a < 0 || b < 0 || c <= 0 {
		return 0, errors.New("muldiv: negative operand")
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi >= uint64(c) {
		return 0, ErrOverflow
	}
	q, _ := bits.Div64(hi, lo, uint64(c))
	if q > math.MaxInt64 {
		return 0, ErrOverflow
	}
	return int64(q), nil
}
