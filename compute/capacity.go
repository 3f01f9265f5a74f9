package compute

import (
	"cmp"
	"fmt"
	"slices"
)

// Span is a lease as capacity sees it: GPUs over [Start, End), End
// Forever for an open-ended lease, and Seq its place in the pool's
// admission order.
type Span struct {
	ID         string
	Seq        int64
	GPUs       int64
	Start, End int64
}

// Capacity is a pool's GPUs over time: how many it has, how many its own
// inference keeps, what its leases use (Profile) and its live spot leases.
// At no instant from now on may firm leases and inference need more than
// the pool has; spot leases use what is left, and give way. It records
// every change to its profile, for the store's change log (Changes).
//
// Notice is how long, from now, spot leases are safe from firm bookings:
// within it they count as firm (a smaller pool or a larger inference
// reservation pre-empts at once).
type Capacity struct {
	GPUs, Inference int64
	Notice          int64
	Profile         *Profile
	Spot            []*Span // by Seq

	pending map[int64][2]int64
}

// Cut is a spot lease pre-empted: it ends at End instead of Was.
type Cut struct {
	ID       string
	GPUs     int64
	Was, End int64
}

// Admission is a lease Admit let in and the spot leases it cut, so that
// Undo can take it back.
type Admission struct {
	Span Span
	Firm bool
	Cuts []Cut
}

// NewCapacity is a pool's capacity with the given profile and live spot
// leases.
func NewCapacity(gpus, inference, notice int64, p *Profile, spot []*Span) *Capacity {
	spot = slices.Clone(spot)
	slices.SortFunc(spot, func(a, b *Span) int { return cmp.Compare(a.Seq, b.Seq) })
	return &Capacity{GPUs: gpus, Inference: inference, Notice: notice, Profile: p, Spot: spot}
}

// add changes the profile and records the change.
func (c *Capacity) add(from, to, firm, spot int64) {
	if from >= to {
		return
	}
	c.Profile.Add(from, to, firm, spot)
	if c.pending == nil {
		c.pending = map[int64][2]int64{}
	}
	d := c.pending[from]
	c.pending[from] = [2]int64{d[0] + firm, d[1] + spot}
	if to != Forever {
		d := c.pending[to]
		c.pending[to] = [2]int64{d[0] - firm, d[1] - spot}
	}
}

// Changes returns the profile's changes since the last call, by instant,
// and forgets them.
func (c *Capacity) Changes() []Change {
	var out []Change
	for at, d := range c.pending {
		if d[0] != 0 || d[1] != 0 {
			out = append(out, Change{At: at, Firm: d[0], Spot: d[1]})
		}
	}
	clear(c.pending)
	slices.SortFunc(out, func(a, b Change) int { return cmp.Compare(a.At, b.At) })
	return out
}

// Leasable is the GPUs leases may take.
func (c *Capacity) Leasable() int64 { return c.GPUs - c.Inference }

// Admit books s at now, firm (reserved, on-demand) or spot. A firm lease
// fits where firm leases and inference leave it its GPUs at every instant
// of its window (and, within the notice, spot leases too); it then
// pre-empts, newest first, the spot leases it needs the GPUs of, each
// ending at the first instant it is needed. A spot lease fits where
// nothing at all uses its GPUs. When s does not fit, Admit changes
// nothing and returns the first instant that lacks GPUs.
func (c *Capacity) Admit(s Span, firm bool, now int64) (Admission, int64, bool) {
	room := c.Leasable() - s.GPUs
	if !firm {
		if t, over := c.Profile.FirstOver(s.Start, s.End, NoLimit, room); over {
			return Admission{}, t, false
		}
		c.add(s.Start, s.End, 0, s.GPUs)
		sp := s
		c.Spot = append(c.Spot, &sp)
		slices.SortStableFunc(c.Spot, func(a, b *Span) int { return cmp.Compare(a.Seq, b.Seq) })
		return Admission{Span: s}, 0, true
	}
	at, over := c.Profile.FirstOver(s.Start, s.End, room, NoLimit)
	if c.Notice > 0 && now < Forever-c.Notice {
		if t, o := c.Profile.FirstOver(s.Start, min(s.End, now+c.Notice), NoLimit, room); o && (!over || t < at) {
			at, over = t, true
		}
	}
	if over {
		return Admission{}, at, false
	}
	c.add(s.Start, s.End, s.GPUs, 0)
	cuts, err := c.preempt(s.Start, s.End, s.ID)
	if err != nil {
		panic(err) // the firm check above leaves only spot leases over
	}
	return Admission{Span: s, Firm: true, Cuts: cuts}, 0, true
}

// preempt cuts spot leases, newest first at each instant of [from, to)
// that is overbooked, until none is.
func (c *Capacity) preempt(from, to int64, by string) ([]Cut, error) {
	var cuts []Cut
	for {
		t, over := c.Profile.FirstOver(from, to, NoLimit, c.Leasable())
		if !over {
			return cuts, nil
		}
		var victim *Span
		for i := len(c.Spot) - 1; i >= 0; i-- {
			if s := c.Spot[i]; s.Start <= t && t < s.End {
				victim = s
				break
			}
		}
		if victim == nil {
			return cuts, fmt.Errorf("compute: %d GPUs overbooked at %d with no spot lease to pre-empt (for %s)", c.overBy(t), t, by)
		}
		cuts = append(cuts, Cut{ID: victim.ID, GPUs: victim.GPUs, Was: victim.End, End: t})
		c.add(t, victim.End, 0, -victim.GPUs)
		victim.End = t
	}
}

func (c *Capacity) overBy(t int64) int64 {
	f, s := c.Profile.At(t)
	return f + s - c.Leasable()
}

// Undo takes back an admission.
func (c *Capacity) Undo(a Admission) {
	for i := len(a.Cuts) - 1; i >= 0; i-- {
		cut := a.Cuts[i]
		c.add(cut.End, cut.Was, 0, cut.GPUs)
		if s := c.span(cut.ID); s != nil {
			s.End = cut.Was
		}
	}
	if a.Firm {
		c.add(a.Span.Start, a.Span.End, -a.Span.GPUs, 0)
		return
	}
	c.add(a.Span.Start, a.Span.End, 0, -a.Span.GPUs)
	c.Spot = slices.DeleteFunc(c.Spot, func(s *Span) bool { return s.ID == a.Span.ID })
}

func (c *Capacity) span(id string) *Span {
	for _, s := range c.Spot {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// Resize gives the pool gpus GPUs of which inference are kept for own
// inference, at now. It is refused, changing nothing, when firm leases
// would then need more than the pool has at some instant from now on (the
// first is returned); spot leases are pre-empted instead, at once.
func (c *Capacity) Resize(gpus, inference, now int64) ([]Cut, int64, bool) {
	if t, over := c.Profile.FirstOver(now, Forever, gpus-inference, NoLimit); over {
		return nil, t, false
	}
	c.GPUs, c.Inference = gpus, inference
	cuts, err := c.preempt(now, Forever, "pool")
	if err != nil {
		panic(err)
	}
	return cuts, 0, true
}

// Shorten ends a lease of gpus GPUs at end instead of was (a lease that
// ended early, or never started: its window is [max(start, end), was)).
func (c *Capacity) Shorten(id string, firm bool, gpus, start, was, end int64) {
	from := max(start, end)
	if firm {
		c.add(from, was, -gpus, 0)
		return
	}
	c.add(from, was, 0, -gpus)
	if s := c.span(id); s != nil {
		s.End = min(s.End, from)
	}
}

// Drop forgets a spot lease that is over.
func (c *Capacity) Drop(id string) {
	c.Spot = slices.DeleteFunc(c.Spot, func(s *Span) bool { return s.ID == id })
}
