// Package features turns a message into what the sponsored package's
// models read: a normalised form (lower case, common accents folded,
// digits as 0, punctuation as blanks but "?" kept as a word), its words,
// and hashed features — word unigrams and bigrams (with the message's
// start and end as words) and byte 3- and 4-grams of each word within its
// boundaries. Nothing here knows a language: the same rules serve English,
// Dutch and Norwegian, and the classifier learns what matters in each.
//
// The trainer (sponsored/internal/train) and the runtime classifier
// share this code, so a model is always read the way it was trained.
package features

import (
	"unicode"
	"unicode/utf8"
)

// MaxBytes bounds what is read of a message: its first and last
// MaxBytes/2 bytes, where the question usually is. A pasted article or
// file in between changes nothing but the time spent.
const MaxBytes = 1024

// fold maps the accented letters of western European languages to their
// base letter. æ, ø and å are letters of their own in Norwegian (and "å"
// a word), so they stay.
var fold = map[rune]rune{
	'à': 'a', 'á': 'a', 'â': 'a', 'ä': 'a', 'ã': 'a',
	'è': 'e', 'é': 'e', 'ê': 'e', 'ë': 'e',
	'ì': 'i', 'í': 'i', 'î': 'i', 'ï': 'i',
	'ò': 'o', 'ó': 'o', 'ô': 'o', 'ö': 'o', 'õ': 'o',
	'ù': 'u', 'ú': 'u', 'û': 'u', 'ü': 'u',
	'ç': 'c', 'ñ': 'n', 'ß': 's',
}

// Normalize appends the normalised form of s to dst: words of lower-case
// letters separated by one blank, a run of digits as "0", "?" as a word of
// its own, everything else a separator. Of a message longer than MaxBytes
// only the first and last MaxBytes/2 bytes are read.
func Normalize(dst []byte, s string) []byte {
	if len(s) > MaxBytes {
		head, tail := s[:MaxBytes/2], s[len(s)-MaxBytes/2:]
		for len(head) > 0 && !utf8.RuneStart(head[len(head)-1]) {
			head = head[:len(head)-1]
		}
		for len(tail) > 0 && !utf8.RuneStart(tail[0]) {
			tail = tail[1:]
		}
		dst = Normalize(dst, head)
		return Normalize(append(dst, ' '), tail)
	}
	blank := len(dst) == 0 || dst[len(dst)-1] == ' '
	digits := false
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf && ('a' <= r && r <= 'z'):
			dst, blank, digits = append(dst, byte(r)), false, false
		case r < utf8.RuneSelf && ('A' <= r && r <= 'Z'):
			dst, blank, digits = append(dst, byte(r+'a'-'A')), false, false
		case '0' <= r && r <= '9':
			if !digits {
				dst = append(dst, '0')
			}
			blank, digits = false, true
		case r == '?':
			if !blank {
				dst = append(dst, ' ')
			}
			dst, blank, digits = append(dst, '?', ' '), true, false
		case r == '\'' || r == '’':
			// Inside a word (don't, zzp'ers): kept out, the word whole.
		case unicode.IsLetter(r):
			r = unicode.ToLower(r)
			if f, ok := fold[r]; ok {
				r = f
			}
			dst, blank, digits = utf8.AppendRune(dst, r), false, false
		default:
			if !blank {
				dst = append(dst, ' ')
			}
			blank, digits = true, false
		}
	}
	for len(dst) > 0 && dst[len(dst)-1] == ' ' {
		dst = dst[:len(dst)-1]
	}
	return dst
}

// Words calls fn with each word of a normalised text, in order.
func Words(norm []byte, fn func(w []byte)) {
	start := -1
	for i, c := range norm {
		if c == ' ' {
			if start >= 0 {
				fn(norm[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		fn(norm[start:])
	}
}

// FNV-1a, 32 bits: cheap, stable across platforms and Go versions, and
// good enough to spread features over buckets.
const (
	offset32 = 2166136261
	prime32  = 16777619
)

func hashBytes(h uint32, b []byte) uint32 {
	for _, c := range b {
		h ^= uint32(c)
		h *= prime32
	}
	return h
}

func hashByte(h uint32, c byte) uint32 {
	h ^= uint32(c)
	return h * prime32
}

// Feature kinds, hashed first so that a word and a character n-gram of the
// same bytes are different features.
const (
	kindWord   = 'w'
	kindBigram = 'b'
	kindGram   = 'g'
)

// maxGramWord is the longest word whose character n-grams are features.
const maxGramWord = 40

// Hashes calls fn with the hash of each feature of a normalised text: each
// word; each pair of adjacent words, the first word after the start mark
// "^" and the last before the end mark "$"; and each byte 3- and 4-gram of
// each word (of at most maxGramWord bytes) written as <word>. A feature
// that occurs twice is passed twice.
func Hashes(norm []byte, fn func(h uint32)) {
	var prev []byte
	first := true
	Words(norm, func(w []byte) {
		fn(hashBytes(hashByte(offset32, kindWord), w))
		b := hashByte(offset32, kindBigram)
		if first {
			b = hashByte(b, '^')
			first = false
		} else {
			b = hashBytes(b, prev)
		}
		fn(hashBytes(hashByte(b, ' '), w))
		prev = w
		// <word>: n-grams over the word within its boundaries. A word
		// longer than maxGramWord (a URL, base64, a hash) has none: it
		// says nothing of a question, and would only cost time.
		if len(w) > maxGramWord {
			return
		}
		var buf [maxGramWord + 2]byte
		buf[0] = '<'
		n := copy(buf[1:], w) + 2
		buf[n-1] = '>'
		bounded := buf[:n]
		for size := 3; size <= 4; size++ {
			for i := 0; i+size <= n; i++ {
				fn(hashBytes(hashByte(offset32, kindGram), bounded[i:i+size]))
			}
		}
	})
	if prev != nil {
		fn(hashByte(hashByte(hashBytes(hashByte(offset32, kindBigram), prev), ' '), '$'))
	}
}
