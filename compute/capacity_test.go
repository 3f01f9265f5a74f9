package compute

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// model is the brute-force reference: every lease as an interval of whole
// minutes, every level recounted minute by minute from all of them.
type model struct {
	gpus, inf, notice int64
	leases            []*mlease
}

type mlease struct {
	id         string
	seq, gpus  int64
	firm       bool
	start, end int64 // end: horizon for an open one
	open       bool
}

// horizon bounds the minutes the model looks at; every finite lease ends
// well before it, so what lies beyond is the open leases' alone.
const horizon = 1200

func (m *model) levels(t int64) (firm, spot int64) {
	for _, l := range m.leases {
		if l.start <= t && t < l.end {
			if l.firm {
				firm += l.gpus
			} else {
				spot += l.gpus
			}
		}
	}
	return
}

func (m *model) admit(l *mlease, now int64) (at int64, ok bool, cuts []string) {
	room := m.gpus - m.inf - l.gpus
	for t := l.start; t < l.end; t++ {
		f, s := m.levels(t)
		switch {
		case !l.firm && f+s > room,
			l.firm && f > room,
			l.firm && m.notice > 0 && t < now+m.notice && f+s > room:
			return t, false, nil
		}
	}
	m.leases = append(m.leases, l)
	if l.firm {
		cuts = m.preempt(l.start, l.end)
	}
	return 0, true, cuts
}

// preempt walks the minutes in order; at each that is overbooked it ends
// the newest spot lease running then, until it is not.
func (m *model) preempt(from, to int64) []string {
	var cuts []string
	for t := from; t < to; t++ {
		for {
			f, s := m.levels(t)
			if f+s <= m.gpus-m.inf {
				break
			}
			var v *mlease
			for _, l := range m.leases {
				if !l.firm && l.start <= t && t < l.end && (v == nil || l.seq > v.seq) {
					v = l
				}
			}
			v.end, v.open = t, false
			cuts = append(cuts, fmt.Sprintf("%s@%d", v.id, t))
		}
	}
	return cuts
}

func (m *model) resize(gpus, inf, now int64) (int64, bool, []string) {
	for t := now; t < horizon; t++ {
		if f, _ := m.levels(t); f > gpus-inf {
			return t, false, nil
		}
	}
	m.gpus, m.inf = gpus, inf
	return 0, true, m.preempt(now, horizon)
}

func cutNames(cs []Cut) []string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s@%d", c.ID, c.End))
	}
	return out
}

// TestCapacityAgainstModel: random sequences of lease requests, early
// ends, pre-emptions (by firm bookings), pool resizes and inference
// reservation changes give the same decisions, the same first instant
// lacking GPUs, the same pre-empted leases and the same levels at every
// minute as the brute-force model, and no minute from now on is ever
// overbooked.
func TestCapacityAgainstModel(t *testing.T) {
	seen := map[string]int{}
	defer func() {
		for _, k := range []string{"admitted", "refused", "pre-empted", "resized", "resize refused"} {
			if seen[k] == 0 {
				t.Errorf("no case of %s: the sequences test too little", k)
			}
		}
		t.Logf("%v", seen)
	}()
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			notice := int64(0)
			if seed%2 == 1 {
				notice = 5
			}
			m := &model{gpus: 16, inf: 2, notice: notice}
			c := NewCapacity(16, 2, notice, NewProfile(nil), nil)
			now, seq := int64(0), int64(0)
			for step := range 200 {
				what := ""
				switch r := rng.IntN(100); {
				case r < 50:
					seq++
					l := &mlease{id: fmt.Sprintf("l%d", seq), seq: seq, gpus: 1 + rng.Int64N(8), firm: rng.IntN(5) < 3,
						start: now + rng.Int64N(60)}
					span := Span{ID: l.id, Seq: seq, GPUs: l.gpus, Start: l.start, End: l.start + 1 + rng.Int64N(120)}
					l.end = span.End
					if rng.IntN(4) == 0 {
						span.End, l.end, l.open = Forever, horizon, true
					}
					ad, at, ok := c.Admit(span, l.firm, now)
					if ok && rng.IntN(10) == 0 {
						c.Undo(ad) // the hold was refused
						what = "admit+undo " + l.id
						break
					}
					wat, wok, wcuts := m.admit(l, now)
					what = fmt.Sprintf("admit %s %+v firm=%v", l.id, span, l.firm)
					if ok != wok || at != wat || !slices.Equal(cutNames(ad.Cuts), wcuts) {
						t.Fatalf("step %d %s: got ok=%v at=%d cuts=%v, model ok=%v at=%d cuts=%v", step, what, ok, at, cutNames(ad.Cuts), wok, wat, wcuts)
					}
					seen[map[bool]string{true: "admitted", false: "refused"}[ok]]++
					seen["pre-empted"] += len(ad.Cuts)
				case r < 65:
					var live []*mlease
					for _, l := range m.leases {
						if l.end > now {
							live = append(live, l)
						}
					}
					if len(live) == 0 {
						continue
					}
					l := live[rng.IntN(len(live))]
					was := int64(Forever)
					if !l.open {
						was = l.end
					}
					c.Shorten(l.id, l.firm, l.gpus, l.start, was, now)
					l.end, l.open = max(l.start, now), false
					what = "end " + l.id
				case r < 75:
					gpus := 8 + rng.Int64N(17)
					inf := rng.Int64N(gpus/2 + 1)
					cuts, at, ok := c.Resize(gpus, inf, now)
					wat, wok, wcuts := m.resize(gpus, inf, now)
					what = fmt.Sprintf("resize %d/%d", gpus, inf)
					if ok != wok || at != wat || !slices.Equal(cutNames(cuts), wcuts) {
						t.Fatalf("step %d %s: got ok=%v at=%d cuts=%v, model ok=%v at=%d cuts=%v", step, what, ok, at, cutNames(cuts), wok, wat, wcuts)
					}
					seen[map[bool]string{true: "resized", false: "resize refused"}[ok]]++
					seen["pre-empted"] += len(cuts)
				default:
					now = min(now+rng.Int64N(30), horizon-400)
					what = "advance"
				}
				for tm := int64(0); tm < horizon; tm++ {
					f, s := c.Profile.At(tm)
					wf, ws := m.levels(tm)
					if f != wf || s != ws {
						t.Fatalf("step %d (%s): minute %d: profile %d firm %d spot, model %d %d", step, what, tm, f, s, wf, ws)
					}
					if tm >= now && (f+m.inf > m.gpus || f+s+m.inf > m.gpus) {
						t.Fatalf("step %d (%s): minute %d overbooked: %d firm + %d spot + %d inference > %d", step, what, tm, f, s, m.inf, m.gpus)
					}
				}
				// The profile's own queries agree with a scan of its levels.
				a, b := rng.Int64N(horizon), rng.Int64N(horizon)
				a, b = min(a, b), max(a, b)+1
				var mf, ms, mt int64
				for tm := a; tm < b; tm++ {
					f, s := m.levels(tm)
					mf, ms, mt = max(mf, f), max(ms, s), max(mt, f+s)
				}
				if gf, gs, gt := c.Profile.Max(a, b); gf != mf || gs != ms || gt != mt {
					t.Fatalf("step %d: Max(%d, %d) = %d, %d, %d; want %d, %d, %d", step, a, b, gf, gs, gt, mf, ms, mt)
				}
			}
		})
	}
}

// TestProfileBlocks: many points split blocks, and queries across them
// agree with a flat scan.
func TestProfileBlocks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	p := NewProfile(nil)
	flat := make([]int64, 5000)
	for range 3000 {
		a := rng.Int64N(5000)
		b := a + 1 + rng.Int64N(200)
		g := rng.Int64N(5) - 1
		p.Add(a, min(b, 5000), g, 0)
		for i := a; i < min(b, 5000); i++ {
			flat[i] += g
		}
	}
	if len(p.blocks) < 10 {
		t.Fatalf("only %d blocks", len(p.blocks))
	}
	for i, v := range flat {
		if f, _ := p.At(int64(i)); f != v {
			t.Fatalf("At(%d) = %d, want %d", i, f, v)
		}
	}
	for range 500 {
		a := rng.Int64N(5000)
		b := a + 1 + rng.Int64N(2000)
		lim := rng.Int64N(20)
		want, ok := int64(0), false
		for i := a; i < min(b, 5000); i++ {
			if flat[i] > lim {
				want, ok = i, true
				break
			}
		}
		if got, gok := p.FirstOver(a, b, lim, NoLimit); gok != ok || got != want {
			t.Fatalf("FirstOver(%d, %d, %d) = %d, %v; want %d, %v", a, b, lim, got, gok, want, ok)
		}
	}
	// A profile rebuilt from its changes is the same.
	var cs []Change
	prev := int64(0)
	for i, v := range flat {
		if v != prev {
			cs = append(cs, Change{At: int64(i), Firm: v - prev})
			prev = v
		}
	}
	q := NewProfile(cs)
	for i, v := range flat {
		if f, _ := q.At(int64(i)); f != v {
			t.Fatalf("rebuilt At(%d) = %d, want %d", i, f, v)
		}
	}
}
