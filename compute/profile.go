// Package compute owns GPU pools, their leases and their capacity over
// time: which leases a pool can admit at every instant of their windows,
// which spot leases give way when a reserved or on-demand lease, a larger
// inference reservation or a smaller pool needs their GPUs, and how a
// lease is billed through the credits ledger (a reserved window held
// whole at booking, on-demand and spot per second, an hour ahead). The
// rules are pure functions over values (Profile, Capacity, Step, Advance);
// Service runs them in the ledger's transactions, under each pool's lock.
package compute

import (
	"cmp"
	"math"
	"slices"
	"sort"
)

// Forever is the end of an open-ended window.
const Forever = math.MaxInt64

// NoLimit is a limit FirstOver never finds passed.
const NoLimit = math.MaxInt64

// Profile is the GPUs a pool's leases use over time, firm (reserved and
// on-demand) and spot apart, as a step function: sorted change points,
// each with the levels that hold from it to the next (0 before the first,
// the last one's for ever). The points are kept in blocks of a few
// hundred, each knowing its highest levels and an add not yet spread over
// it, so that adding a lease and asking whether a window fits touch a
// window's blocks, not each of its points: a sorted structure of change
// points, never a scan of leases. Instants are any int64 unit (compute
// uses Unix seconds).
type Profile struct {
	blocks []*block
}

// blockSize is the points a block is split at twice of.
const blockSize = 128

type block struct {
	at         []int64
	firm, spot []int64
	// addF and addS are added to every level of the block (not yet in
	// firm and spot); maxF and maxT are the highest firm and firm+spot
	// levels stored, the adds left out.
	addF, addS, maxF, maxT int64
}

// Change is a step of a Profile: from At on, firm and spot levels change
// by Firm and Spot.
type Change struct {
	At, Firm, Spot int64
}

// NewProfile is the profile whose steps are changes (in any order; steps
// at one instant add up).
func NewProfile(changes []Change) *Profile {
	cs := slices.Clone(changes)
	slices.SortFunc(cs, func(a, b Change) int { return cmp.Compare(a.At, b.At) })
	p := &Profile{}
	var b *block
	var f, s int64
	for i, c := range cs {
		f, s = f+c.Firm, s+c.Spot
		if i+1 < len(cs) && cs[i+1].At == c.At {
			continue // summed with the next
		}
		if b == nil || len(b.at) == blockSize {
			b = &block{}
			p.blocks = append(p.blocks, b)
		}
		b.at, b.firm, b.spot = append(b.at, c.At), append(b.firm, f), append(b.spot, s)
	}
	for _, b := range p.blocks {
		b.recompute()
	}
	return p
}

func (b *block) recompute() {
	b.maxF, b.maxT = math.MinInt64, math.MinInt64
	for i := range b.at {
		b.maxF = max(b.maxF, b.firm[i])
		b.maxT = max(b.maxT, b.firm[i]+b.spot[i])
	}
}

// push spreads the block's pending adds over its levels.
func (b *block) push() {
	if b.addF == 0 && b.addS == 0 {
		return
	}
	for i := range b.at {
		b.firm[i] += b.addF
		b.spot[i] += b.addS
	}
	b.maxF += b.addF
	b.maxT += b.addF + b.addS
	b.addF, b.addS = 0, 0
}

func (b *block) level(i int) (firm, spot int64) { return b.firm[i] + b.addF, b.spot[i] + b.addS }

// locate finds the last point at or before t: its block and index, and
// false when there is none.
func (p *Profile) locate(t int64) (bi, i int, ok bool) {
	bi = sort.Search(len(p.blocks), func(k int) bool { return p.blocks[k].at[0] > t }) - 1
	if bi < 0 {
		return 0, 0, false
	}
	b := p.blocks[bi]
	return bi, sort.Search(len(b.at), func(k int) bool { return b.at[k] > t }) - 1, true
}

// At is the firm and spot levels at instant t.
func (p *Profile) At(t int64) (firm, spot int64) {
	bi, i, ok := p.locate(t)
	if !ok {
		return 0, 0
	}
	return p.blocks[bi].level(i)
}

// Points is how many change points the profile keeps.
func (p *Profile) Points() int {
	n := 0
	for _, b := range p.blocks {
		n += len(b.at)
	}
	return n
}

// split makes t a change point (its levels those just before it).
func (p *Profile) split(t int64) {
	bi, i, ok := p.locate(t)
	if ok && p.blocks[bi].at[i] == t {
		return
	}
	var f, s int64
	if ok {
		f, s = p.blocks[bi].level(i)
	} else {
		if len(p.blocks) == 0 {
			p.blocks = []*block{{}}
		}
		bi, i = 0, -1
	}
	b := p.blocks[bi]
	b.push()
	b.at = slices.Insert(b.at, i+1, t)
	b.firm = slices.Insert(b.firm, i+1, f)
	b.spot = slices.Insert(b.spot, i+1, s)
	b.recompute()
	if len(b.at) >= 2*blockSize {
		h := len(b.at) / 2
		nb := &block{at: slices.Clone(b.at[h:]), firm: slices.Clone(b.firm[h:]), spot: slices.Clone(b.spot[h:])}
		b.at, b.firm, b.spot = b.at[:h:h], b.firm[:h:h], b.spot[:h:h]
		b.recompute()
		nb.recompute()
		p.blocks = slices.Insert(p.blocks, bi+1, nb)
	}
}

// Add adds firm and spot GPUs over [from, to) (to Forever: from on).
func (p *Profile) Add(from, to, firm, spot int64) {
	if from >= to || firm == 0 && spot == 0 {
		return
	}
	p.split(from)
	if to != Forever {
		p.split(to)
	}
	bi, i, _ := p.locate(from)
	for ; bi < len(p.blocks); bi, i = bi+1, 0 {
		b := p.blocks[bi]
		if b.at[i] >= to {
			return
		}
		if i == 0 && b.at[len(b.at)-1] < to {
			b.addF += firm
			b.addS += spot
			continue
		}
		b.push()
		for j := i; j < len(b.at) && b.at[j] < to; j++ {
			b.firm[j] += firm
			b.spot[j] += spot
		}
		b.recompute()
	}
}

// FirstOver is the first instant of [from, to) at which the firm level is
// above firmLimit or the firm and spot levels together are above
// totalLimit, and false when there is none.
func (p *Profile) FirstOver(from, to, firmLimit, totalLimit int64) (int64, bool) {
	if from >= to {
		return 0, false
	}
	over := func(f, s int64) bool { return f > firmLimit || f+s > totalLimit }
	bi, i, ok := p.locate(from)
	if !ok {
		if over(0, 0) {
			return from, true
		}
		bi, i = 0, 0
	}
	for ; bi < len(p.blocks); bi, i = bi+1, 0 {
		b := p.blocks[bi]
		if b.at[i] >= to {
			return 0, false
		}
		if i == 0 && b.maxF+b.addF <= firmLimit && b.maxT+b.addF+b.addS <= totalLimit {
			continue
		}
		for j := i; j < len(b.at); j++ {
			if b.at[j] >= to {
				return 0, false
			}
			if over(b.level(j)) {
				return max(b.at[j], from), true
			}
		}
	}
	return 0, false
}

// Max is the highest firm level, spot level and firm and spot levels
// together over [from, to).
func (p *Profile) Max(from, to int64) (firm, spot, total int64) {
	if from >= to {
		return 0, 0, 0
	}
	bi, i, ok := p.locate(from)
	if !ok {
		bi, i = 0, 0
	}
	for ; bi < len(p.blocks); bi, i = bi+1, 0 {
		b := p.blocks[bi]
		if b.at[i] >= to {
			break
		}
		for j := i; j < len(b.at) && b.at[j] < to; j++ {
			f, s := b.level(j)
			firm, spot, total = max(firm, f), max(spot, s), max(total, f+s)
		}
	}
	return firm, spot, total
}
