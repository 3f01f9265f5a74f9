package sponsored

import (
	"cmp"
	"slices"
	"unicode/utf8"

	fb "farebox"
	"farebox/sponsored/internal/features"
)

// How a message's words tie it to a campaign. Phrases and topics are
// normalised as messages are (package features: lower case, accents
// folded), so they match in any language and script. A word of a phrase
// matches a word of the message when they are equal; or, both being at
// least minStem bytes, when one is the other with at most maxSuffix more
// bytes (laptop, laptops, laptopen; hotell, hotellet): a stemmer for no
// language in particular, and cheap; or, the phrase's word being at least
// minPart bytes, when it begins or ends the message's word, as the parts
// of Dutch and Norwegian compounds do (hypotheekrente, robotstøvsuger).
// Words longer than maxCompound are not looked into.
const (
	minStem     = 4
	maxSuffix   = 3
	minPart     = 5
	maxCompound = 40
	// The weight of one matched phrase of one word, and of several words;
	// a match through a suffix counts stemFactor of it. A campaign's
	// relevance is 1 − Π(1 − weight) over the distinct phrases and topics
	// that match.
	wordWeight   = 0.6
	phraseWeight = 0.9
	stemFactor   = 0.85
)

// phrase is a campaign's phrase, topic or excluded topic, normalised.
type phrase struct {
	words [][]byte
	topic int // the index of the topic it is, -1 for a phrase
}

// compiled is a campaign ready to match.
type compiled struct {
	c       fb.Campaign
	phrases []phrase // the phrases, then the topics
	exclude []phrase
}

// posting says that a phrase of a campaign may start at a word.
type posting struct {
	campaign int32
	phrase   int32 // into phrases, or into exclude when excluded
	excluded bool
}

// index is every campaign, compiled, with its phrases' first words (and
// their stems) pointing at them: matching a message costs a few map
// look-ups per word, however many campaigns there are. It is built once
// per change and read without locks.
type index struct {
	campaigns []*compiled
	first     map[string][]posting
	// seen is a filter of first's keys (a bit per hash): most of the
	// keys a message's words try are in no phrase, and a bit answers
	// that faster than the map.
	seen []uint64
}

// seenBits is the size of the filter, in bits: a few per key of a
// thousand campaigns.
const seenBits = 1 << 18

func (ix *index) mayHave(h uint32) bool {
	h &= seenBits - 1
	return ix.seen[h>>6]&(1<<(h&63)) != 0
}

func normWords(s string) [][]byte {
	norm := features.Normalize(nil, s)
	var out [][]byte
	features.Words(norm, func(w []byte) {
		if string(w) != "?" {
			out = append(out, w)
		}
	})
	return out
}

// buildIndex compiles campaigns (active ones only: the others never
// match).
func buildIndex(cs []fb.Campaign) *index {
	ix := &index{first: map[string][]posting{}, seen: make([]uint64, seenBits/64)}
	for _, c := range cs {
		if !c.Active {
			continue
		}
		cc := &compiled{c: c}
		add := func(s string, topic int) {
			if ws := normWords(s); len(ws) > 0 {
				cc.phrases = append(cc.phrases, phrase{words: ws, topic: topic})
			}
		}
		for _, p := range c.Phrases {
			add(p, -1)
		}
		for i, t := range c.Topics {
			add(t, i)
		}
		for _, t := range c.ExcludeTopics {
			if ws := normWords(t); len(ws) > 0 {
				cc.exclude = append(cc.exclude, phrase{words: ws, topic: -1})
			}
		}
		ci := int32(len(ix.campaigns))
		ix.campaigns = append(ix.campaigns, cc)
		post := func(ps []phrase, excluded bool) {
			for pi, p := range ps {
				k := keyOf(p.words[0])
				ix.first[string(k)] = append(ix.first[string(k)], posting{campaign: ci, phrase: int32(pi), excluded: excluded})
				h := keyHash(k) & (seenBits - 1)
				ix.seen[h>>6] |= 1 << (h & 63)
			}
		}
		post(cc.phrases, false)
		post(cc.exclude, true)
	}
	return ix
}

// keyOf is the key a phrase's first word is found under, and that a
// message's word (or the end of a compound) looks up: its first minStem
// bytes (to the end of a character), or the whole of a shorter word. Every
// word that wordMatch can match to a phrase's word has its key, so one
// look-up finds every candidate, once, and wordMatch decides.
func keyOf(w []byte) []byte {
	if len(w) <= minStem {
		return w
	}
	n := minStem
	for n < len(w) && !utf8.RuneStart(w[n]) {
		n++
	}
	return w[:n]
}

// wordMatch reports whether message word m matches phrase word p, and
// whether exactly.
func wordMatch(m, p []byte) (ok, exact bool) {
	if string(m) == string(p) {
		return true, true
	}
	if len(p) >= minPart && len(m) > len(p) && len(m) <= maxCompound &&
		(string(m[:len(p)]) == string(p) && utf8.RuneStart(m[len(p)]) || string(m[len(m)-len(p):]) == string(p)) {
		return true, false
	}
	short, long := m, p
	if len(short) > len(long) {
		short, long = long, short
	}
	if len(short) < minStem || len(long)-len(short) > maxSuffix {
		return false, false
	}
	return string(long[:len(short)]) == string(short), false
}

// keyHash is FNV-1a of a key, for the filter; keyStep adds a byte.
func keyHash(k []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range k {
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

// keys calls fn with every key a message word may find a phrase under
// that the filter does not rule out: the word's own (which finds phrases
// it equals, extends by a suffix, or begins, and the longer forms of it),
// and those of the ends of the word, where the last part of a compound is.
func (ix *index) keys(w []byte, fn func(k []byte)) {
	if k := keyOf(w); ix.mayHave(keyHash(k)) {
		fn(k)
	}
	if len(w) > maxCompound {
		return
	}
	for i := 1; i <= len(w)-minPart; i++ {
		if utf8.RuneStart(w[i]) {
			if k := keyOf(w[i:]); ix.mayHave(keyHash(k)) {
				fn(k)
			}
		}
	}
}

// match is what a message matched of one campaign.
type match struct {
	relevance float64
	topic     int // the first topic matched, -1 for none
}

// hit is a phrase of a campaign that a message matched, at a weight.
type hit struct {
	campaign, phrase int32
	excluded         bool
	weight           float64
}

// matchWords scores the message's words against every campaign and calls
// fn with each campaign that matched something and is not excluded, in
// index order. hits is scratch space, returned for reuse.
func (ix *index) matchWords(words [][]byte, hits []hit, fn func(c *compiled, m match)) []hit {
	hits = hits[:0]
	for i, w := range words {
		ix.keys(w, func(k []byte) {
			for _, pg := range ix.first[string(k)] {
				cc := ix.campaigns[pg.campaign]
				ps := cc.phrases
				if pg.excluded {
					ps = cc.exclude
				}
				p := ps[pg.phrase]
				if i+len(p.words) > len(words) {
					continue
				}
				exact, ok := true, true
				for j, pw := range p.words {
					m, e := wordMatch(words[i+j], pw)
					if !m {
						ok = false
						break
					}
					exact = exact && e
				}
				if !ok {
					continue
				}
				w := wordWeight
				if len(p.words) > 1 {
					w = phraseWeight
				}
				if !exact {
					w *= stemFactor
				}
				hits = append(hits, hit{campaign: pg.campaign, phrase: pg.phrase, excluded: pg.excluded, weight: w})
			}
		})
	}
	slices.SortFunc(hits, func(a, b hit) int {
		if a.campaign != b.campaign {
			return int(a.campaign - b.campaign)
		}
		if a.excluded != b.excluded {
			if a.excluded {
				return -1
			}
			return 1
		}
		if a.phrase != b.phrase {
			return int(a.phrase - b.phrase)
		}
		return cmp.Compare(b.weight, a.weight) // the best match of a phrase first
	})
	for i := 0; i < len(hits); {
		j := i
		for j < len(hits) && hits[j].campaign == hits[i].campaign {
			j++
		}
		group := hits[i:j]
		i = j
		if group[0].excluded {
			continue
		}
		cc := ix.campaigns[group[0].campaign]
		m := match{topic: -1}
		miss := 1.0
		for k, h := range group {
			if k > 0 && h.phrase == group[k-1].phrase {
				continue // a worse match of the same phrase
			}
			miss *= 1 - h.weight
			if t := cc.phrases[h.phrase].topic; t >= 0 && (m.topic < 0 || t < m.topic) {
				m.topic = t
			}
		}
		m.relevance = 1 - miss
		fn(cc, m)
	}
	return hits
}

// topicOf is the topic a suggestion of c for m is recorded under.
func topicOf(c *fb.Campaign, m match) string {
	if m.topic >= 0 && m.topic < len(c.Topics) {
		return c.Topics[m.topic]
	}
	if len(c.Topics) > 0 {
		return c.Topics[0]
	}
	return ""
}
