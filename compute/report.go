package compute

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	fb "farebox"
	"farebox/economics"
)

// GPUSeconds is GPU-time, shown in JSON as GPU-hours: a decimal string
// with up to 6 decimals, rounded down ("1.5").
type GPUSeconds int64

// MicroHours is the GPU-hours in millionths, rounded down: what JSON
// writes (as a decimal) and the dashboard shows.
func (g GPUSeconds) MicroHours() (int64, error) {
	return fb.MulDiv(int64(max(g, 0)), fb.Micro, 3600)
}

// MarshalJSON writes the GPU-hours.
func (g GPUSeconds) MarshalJSON() ([]byte, error) {
	micro, err := g.MicroHours()
	if err != nil {
		return nil, err
	}
	return strconv.AppendQuote(nil, fb.Amount(micro).String()), nil
}

// pct is part ÷ whole in percent with two decimals, nil when whole is 0.
func pct(part, whole GPUSeconds) *string {
	return economics.Percent(fb.USD(part), fb.USD(whole))
}

// Utilization is how much of a pool's leasable GPU-time leases took over
// a range, by class and by tenant, beside own inference's reservation and
// its measured use.
type Utilization struct {
	Pool                 string     `json:"pool"`
	From                 time.Time  `json:"from"`
	To                   time.Time  `json:"to"`
	GPUs                 int64      `json:"gpus"`
	ReservedForInference int64      `json:"reserved_for_inference"`
	CapacityGPUHours     GPUSeconds `json:"capacity_gpu_hours"`
	AvailableGPUHours    GPUSeconds `json:"available_gpu_hours"` // leasable: capacity less inference's
	AllocatedGPUHours    GPUSeconds `json:"allocated_gpu_hours"`
	UtilizationPct       *string    `json:"utilization_pct"` // allocated ÷ available
	IdleGPUHours         GPUSeconds `json:"idle_gpu_hours"`  // available, not allocated: what could still have been sold
	ByClass              []UseGroup `json:"by_class"`
	ByTenant             []UseGroup `json:"by_tenant"`
	Inference            Inference  `json:"inference"`
}

// UseGroup is the leases of one class or one tenant.
type UseGroup struct {
	Key            string     `json:"key"`
	Leases         int        `json:"leases"`
	GPUHours       GPUSeconds `json:"gpu_hours"`
	UtilizationPct *string    `json:"utilization_pct"` // of the available GPU-hours
}

// Inference is own inference's part of the pool: the GPU-hours kept for
// it and what its deployments measurably used (served tokens ÷ their
// throughput), nil when none of them is known to run on GPUs.
type Inference struct {
	ReservedGPUHours GPUSeconds      `json:"reserved_gpu_hours"`
	MeasuredGPUHours *GPUSeconds     `json:"measured_gpu_hours"`
	UtilizationPct   *string         `json:"utilization_pct"` // measured ÷ reserved
	Deployments      []DeploymentUse `json:"deployments"`
}

// DeploymentUse is one deployment's measured GPU use.
type DeploymentUse struct {
	Deployment      string     `json:"deployment"`
	Tokens          int64      `json:"tokens"`
	TokensPerSecond int64      `json:"tokens_per_second"`
	GPUs            int64      `json:"gpus"`
	GPUHours        GPUSeconds `json:"gpu_hours"`
}

// Utilize is the utilization of p over [from, to) by leases (those that
// meet the range), at the pool's current size.
func Utilize(p *fb.Pool, leases []*fb.Lease, from, to time.Time) Utilization {
	secs := GPUSeconds(to.Sub(from) / time.Second)
	u := Utilization{Pool: p.ID, From: from, To: to, GPUs: p.GPUs, ReservedForInference: p.ReservedForInference,
		CapacityGPUHours: secs * GPUSeconds(p.GPUs), AvailableGPUHours: secs * GPUSeconds(p.Leasable()),
		Inference: Inference{ReservedGPUHours: secs * GPUSeconds(p.ReservedForInference), Deployments: []DeploymentUse{}}}
	class, tenant := map[string]*UseGroup{}, map[string]*UseGroup{}
	for _, l := range leases {
		end := l.End
		if end.IsZero() || end.After(to) {
			end = to
		}
		start := later(l.Start, from)
		if !end.After(start) {
			continue
		}
		g := GPUSeconds(end.Sub(start)/time.Second) * GPUSeconds(l.GPUs)
		u.AllocatedGPUHours += g
		for _, m := range []struct {
			groups map[string]*UseGroup
			key    string
		}{{class, string(l.Class)}, {tenant, l.Customer}} {
			if m.groups[m.key] == nil {
				m.groups[m.key] = &UseGroup{Key: m.key}
			}
			m.groups[m.key].Leases++
			m.groups[m.key].GPUHours += g
		}
	}
	u.UtilizationPct = pct(u.AllocatedGPUHours, u.AvailableGPUHours)
	u.IdleGPUHours = max(u.AvailableGPUHours-u.AllocatedGPUHours, 0)
	groups := func(m map[string]*UseGroup) []UseGroup {
		out := []UseGroup{}
		for _, g := range m {
			g.UtilizationPct = pct(g.GPUHours, u.AvailableGPUHours)
			out = append(out, *g)
		}
		slices.SortFunc(out, func(a, b UseGroup) int { return strings.Compare(a.Key, b.Key) })
		return out
	}
	u.ByClass, u.ByTenant = groups(class), groups(tenant)
	return u
}

// Utilization reports a pool's utilization over [from, to), with own
// inference's measured use from its deployments' usage rows.
func (s *Service) Utilization(ctx context.Context, pool string, from, to time.Time) (*Utilization, error) {
	p, err := s.store.Pool(ctx, pool)
	if err != nil {
		return nil, err
	}
	var leases []*fb.Lease
	for after := ""; ; {
		page, err := s.store.Leases(ctx, fb.LeaseFilter{Pool: pool, From: from, To: to, After: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		leases = append(leases, page...)
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].ID
	}
	u := Utilize(p, leases, from, to)
	if len(p.Deployments) == 0 {
		return &u, nil
	}
	rows, err := s.store.Usage(ctx, fb.UsageFilter{From: from, To: to, GroupBy: fb.GroupDeployment})
	if err != nil {
		return nil, err
	}
	served := map[string]fb.UsageRow{}
	for _, r := range rows {
		served[r.Key] = r
	}
	var measured GPUSeconds
	known := false
	for _, d := range p.Deployments {
		gpus, tps, ok := s.serving(d)
		if !ok || tps <= 0 {
			continue
		}
		known = true
		r := served[d]
		tokens := r.InputTokens + r.CachedInputTokens + r.OutputTokens
		busy, err := fb.MulDiv(tokens, gpus, tps)
		if err != nil {
			return nil, err
		}
		measured += GPUSeconds(busy)
		u.Inference.Deployments = append(u.Inference.Deployments, DeploymentUse{Deployment: d, Tokens: tokens, TokensPerSecond: tps, GPUs: gpus, GPUHours: GPUSeconds(busy)})
	}
	if known {
		u.Inference.MeasuredGPUHours = &measured
		u.Inference.UtilizationPct = pct(measured, u.Inference.ReservedGPUHours)
	}
	return &u, nil
}

// Hour is what a pool has free over one hour: FreeGPUs idle at every
// instant of it (leasable as anything, pre-empting nobody), LeasableGPUs
// what a reserved or on-demand lease could still take (spot leases give
// way), and the most that leases use in it.
type Hour struct {
	Start        time.Time `json:"start"`
	End          time.Time `json:"end"`
	FreeGPUs     int64     `json:"free_gpus"`
	LeasableGPUs int64     `json:"leasable_gpus"`
	FirmGPUs     int64     `json:"firm_gpus"` // the most reserved and on-demand leases use
	SpotGPUs     int64     `json:"spot_gpus"` // the most spot leases use
}

// Available is p's free GPUs, hour by hour, over [from, to), from its
// capacity profile.
func Available(p *fb.Pool, prof *Profile, from, to time.Time) []Hour {
	out := []Hour{}
	room := p.Leasable()
	for h := from; h.Before(to); h = h.Add(time.Hour) {
		end := h.Add(time.Hour)
		if end.After(to) {
			end = to
		}
		firm, spot, total := prof.Max(h.Unix(), end.Unix())
		out = append(out, Hour{Start: h, End: end, FreeGPUs: max(room-total, 0), LeasableGPUs: max(room-firm, 0), FirmGPUs: firm, SpotGPUs: spot})
	}
	return out
}

// Availability reports a pool's free GPUs per hour over [from, to).
func (s *Service) Availability(ctx context.Context, pool string, from, to time.Time) ([]Hour, error) {
	p, changes, err := s.store.PoolCapacity(ctx, pool)
	if err != nil {
		return nil, err
	}
	return Available(p, NewProfile(profileChanges(changes)), from, to), nil
}
