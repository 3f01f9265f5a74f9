package farebox

import (
	"unicode"
	"unicode/utf8"
)

// Printable reports whether s is valid UTF-8 without control characters
// (C0, DEL and C1). Ids, keys and names from clients must be: a store may
// not hold a NUL (PostgreSQL's text cannot) or bytes that are not UTF-8,
// and the ledger's own keys use control characters as separators (see
// metering.EventKey, plans.AllowanceKey), which a client's part must never
// contain.
func Printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// MaxIDLength bounds a customer's or a plan's id.
const MaxIDLength = 64

// ValidID reports whether s may be a customer's or a plan's id: 1 to 64
// ASCII letters, digits, '_', '-' and '.'.
func ValidID(s string) bool {
	if s == "" || len(s) > MaxIDLength {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
