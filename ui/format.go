package ui

import (
	"fmt"
	"html/template"
	"slices"
	"strconv"
	"strings"
	"time"

	fb "farebox"
)

// Figures are shown exactly: amounts as the API writes them (every
// decimal kept), only grouped by thousands for the eye. A test reads them
// back by dropping the commas.

// group puts thousands separators into the integer part of a decimal.
func group(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	out := b.String()
	if hasFrac {
		out += "." + frac
	}
	if neg {
		out = "-" + out
	}
	return out
}

// Credits is an amount of credits as the page shows it.
func Credits(a fb.Amount) string { return group(a.String()) }

// Dollars is an amount of micro-dollars as the page shows it.
func Dollars(u fb.USD) string {
	if u < 0 {
		return "-$" + group((-u).String())
	}
	return "$" + group(u.String())
}

// Count is an integer with thousands separators.
func Count(n int64) string { return group(strconv.FormatInt(n, 10)) }

func pct(p *string) string {
	if p == nil {
		return "—"
	}
	return *p + "%"
}

// Day is a date as the pages show it ("2 Jan 2026"; "—" for none).
func Day(t time.Time) string { return day(t) }

// Stamp is a time as the pages show it, to the second in UTC.
func Stamp(t time.Time) string { return stamp(t) }

func day(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2 Jan 2006")
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2 Jan 2006 15:04:05 UTC")
}

func millis(d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
}

// within says how far off t is from now in days or hours, for expiry
// warnings: "in 3 days", "in 5 hours".
func within(t, now time.Time) string {
	d := t.Sub(now)
	switch {
	case d <= 0:
		return "now"
	case d < 2*time.Hour:
		return fmt.Sprintf("in %d minutes", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("in %d hours", int(d.Hours()))
	}
	return fmt.Sprintf("in %d days", int(d.Hours()/24))
}

var funcs = template.FuncMap{
	"credits": Credits,
	"usd":     Dollars,
	"count":   Count,
	"pct":     pct,
	"day":     day,
	"stamp":   stamp,
	"millis":  millis,
	"within":  within,
	"micro":   func(a fb.Amount) int64 { return int64(a) },
	"microd":  func(u fb.USD) int64 { return int64(u) },
	"iso":     func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"sec":     sectionOf,
	"has":     slices.Contains[[]string],
}
