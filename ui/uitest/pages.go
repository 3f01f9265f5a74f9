package uitest

import (
	"strings"
	"testing"

	fb "farebox"
)

// Figure is a shown amount as the API writes it: thousands separators,
// the dollar sign and the percent sign dropped.
func Figure(s string) string {
	return strings.NewReplacer(",", "", "$", "", "%", "").Replace(strings.TrimSpace(s))
}

// Plus adds two amounts of credits as the API writes them.
func Plus(t testing.TB, a, b string) string {
	t.Helper()
	x, err := fb.ParseAmount(a)
	y, err2 := fb.ParseAmount(b)
	if err != nil || err2 != nil {
		t.Fatalf("not amounts: %q, %q", a, b)
	}
	return (x + y).String()
}

// Between is the part of s after the first from and before the next to
// ("" when s has no from).
func Between(s, from, to string) string {
	_, after, _ := strings.Cut(s, from)
	before, _, _ := strings.Cut(after, to)
	return before
}
