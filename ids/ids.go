// Package ids mints identifiers and secrets: ids for what Farebox stores
// (lots, holds, keys, requests), sortable by when they were made, and
// secrets (API keys, tokens) from the system's random source.
package ids

import (
	"crypto/rand"
	"time"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// New returns prefix followed by 11 base62 characters of the current time
// and 11 random ones (65 bits). Ids made later sort later, so new rows
// land at the end of their index instead of on a random page.
func New(prefix string) string {
	var b [11]byte
	n := uint64(time.Now().UnixNano())
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = base62[n%62]
		n /= 62
	}
	return prefix + string(b[:]) + Secret(11)
}

// Secret returns n random base62 characters from crypto/rand, without bias.
func Secret(n int) string {
	b := make([]byte, n)
	buf := make([]byte, n*2)
	i := 0
	for i < n {
		if _, err := rand.Read(buf); err != nil {
			panic(err) // crypto/rand does not fail on a supported system
		}
		for _, c := range buf {
			if c < 248 && i < n { // 248 = 4×62: unbiased
				b[i] = base62[c%62]
				i++
			}
		}
	}
	return string(b)
}
