package features

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Which laptop should I buy?", "which laptop should i buy ?"},
		{"  Welke   TV—OLED of QLED?? ", "welke tv oled of qled ? ?"},
		{"Hvilken bærbar PC, under 10 000 kr?", "hvilken bærbar pc under 0 0 kr ?"},
		{"Ideeën voor een café", "ideeen voor een cafe"},
		{"Don't ZZP'ers pay €1.299,95?", "dont zzpers pay 0 0 0 ?"},
		{"ÅRETS BESTE KJØP", "årets beste kjøp"},
		{"", ""},
		{"?!", "?"},
	} {
		if got := string(Normalize(nil, tc.in)); got != tc.want {
			t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := strings.Repeat("a", MaxBytes) + " middle " + strings.Repeat("b ", MaxBytes)
	got := Normalize(nil, long)
	if len(got) > MaxBytes+1 || strings.Contains(string(got), "middle") {
		t.Errorf("a long text: %d bytes, middle kept: %v", len(got), strings.Contains(string(got), "middle"))
	}
}

func TestHashes(t *testing.T) {
	var a, b []uint32
	Hashes([]byte("which laptop ?"), func(h uint32) { a = append(a, h) })
	Hashes([]byte("which laptop ?"), func(h uint32) { b = append(b, h) })
	// 3 words, 3 bigrams with the start, 1 end bigram, and the n-grams of
	// <which> (5+4), <laptop> (6+5) and <?> (1+0).
	if len(a) != 3+3+1+9+11+1 || len(a) != len(b) {
		t.Fatalf("%d features, want 28", len(a))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("features differ between runs")
		}
	}
	n := 0
	Hashes([]byte(strings.Repeat("x", maxGramWord+1)), func(uint32) { n++ })
	if n != 3 { // the word, its start and end bigrams, no n-grams
		t.Errorf("a very long word has %d features, want 3", n)
	}
}

// FuzzNormalize: any text normalises to words of valid UTF-8 separated by
// single blanks, whose features can be hashed.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"Which laptop?", "Hvilken bærbar PC?", "\xff\xfe", strings.Repeat("é", 3000), "a?b?c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := Normalize(nil, s)
		if !utf8.Valid(n) && utf8.ValidString(s) {
			t.Fatalf("Normalize(%q) = %q, not UTF-8", s, n)
		}
		if bytes.Contains(n, []byte("  ")) || bytes.HasPrefix(n, []byte(" ")) || bytes.HasSuffix(n, []byte(" ")) {
			t.Fatalf("Normalize(%q) = %q: blanks", s, n)
		}
		if len(n) > 2*MaxBytes+8 {
			t.Fatalf("Normalize of %d bytes kept %d", len(s), len(n))
		}
		Hashes(n, func(uint32) {})
	})
}
