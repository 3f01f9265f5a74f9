package routing

import (
	"testing"
	"time"

	fb "farebox"
)

func TestGPUCost(t *testing.T) {
	// $2 per GPU-hour × 8 GPUs = $16 an hour for 4,000 tokens/s at 50%
	// busy: 7.2M tokens an hour, $2.2222…/1M, rounded up.
	c, err := GPUCost(2*fb.Micro, 8, 4000, fb.Micro/2)
	if err != nil || c.InputPerMTok != 2_222_223 || c.OutputPerMTok != 2_222_223 || c.CachedInputPerMTok != 2_222_223 {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range [][4]int64{{-1, 1, 1, 1}, {1, 0, 1, 1}, {1, 1, 0, 1}, {1, 1, 1, 0}, {1, 1, 1, fb.Micro + 1}} {
		if _, err := GPUCost(fb.USD(bad[0]), bad[1], bad[2], fb.Amount(bad[3])); err == nil {
			t.Errorf("GPUCost%v accepted", bad)
		}
	}
}

func TestOrderAndHealth(t *testing.T) {
	now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	dep := func(name string, in, out fb.USD, prio int) *Deployment {
		return &Deployment{Name: name, Provider: name, Model: "m", Upstream: "m", BaseURL: "http://x", Priority: prio,
			Cost: CostCard{InputPerMTok: in * fb.Micro, OutputPerMTok: out * fb.Micro, CachedInputPerMTok: in * fb.Micro}}
	}
	// b is cheap on input, c cheap on output; a costs most; d is last by
	// priority whatever its cost.
	a, b, c, d := dep("a", 5, 5, 0), dep("b", 1, 10, 0), dep("c", 10, 1, 0), dep("d", 0, 0, 1)
	r, err := NewRouter([]*Deployment{a, b, c, d})
	if err != nil {
		t.Fatal(err)
	}
	r.Now = func() time.Time { return now }
	r.MaxAttempts = 4
	names := func(q fb.Quantities) string {
		s := ""
		for _, x := range r.Order("m", q, nil) {
			s += x.Name
		}
		return s
	}
	if got := names(fb.Quantities{InputTokens: 1000, OutputTokens: 10}); got != "bacd" {
		t.Errorf("input-heavy order %s", got)
	}
	if got := names(fb.Quantities{InputTokens: 10, OutputTokens: 1000}); got != "cabd" {
		t.Errorf("output-heavy order %s", got)
	}
	// Three failures in a row take b out for 5 s; before that it stays.
	q := fb.Quantities{InputTokens: 1000, OutputTokens: 10}
	r.Failure(b)
	r.Failure(b)
	if got := names(q); got != "bacd" {
		t.Errorf("after 2 failures %s", got)
	}
	r.Failure(b)
	if got := names(q); got != "acdb" {
		t.Errorf("b in back-off: %s", got)
	}
	now = now.Add(5 * time.Second)
	if got := names(q); got != "bacd" {
		t.Errorf("b after its back-off: %s", got)
	}
	// Failing again at once sends it back for twice as long.
	r.Failure(b)
	now = now.Add(9 * time.Second)
	if got := names(q); got != "acdb" {
		t.Errorf("b in its second back-off: %s", got)
	}
	now = now.Add(time.Second)
	r.Success(b, 20*time.Millisecond)
	if got := names(q); got != "bacd" {
		t.Errorf("b recovered: %s", got)
	}
	r.MaxAttempts = 2
	if got := names(q); got != "ba" {
		t.Errorf("attempts bound: %s", got)
	}
	st := r.Statuses()
	if len(st) != 4 || st[1].Name != "b" || !st[1].Healthy || st[1].Failed != 4 || st[1].Served != 1 || st[1].TTFTEWMAMS != 20 {
		t.Errorf("statuses %+v", st)
	}
}

func TestWeights(t *testing.T) {
	x := &Deployment{Name: "x", Model: "m", Upstream: "m", BaseURL: "http://x", Weight: 3}
	y := &Deployment{Name: "y", Model: "m", Upstream: "m", BaseURL: "http://y"}
	r, err := NewRouter([]*Deployment{x, y})
	if err != nil {
		t.Fatal(err)
	}
	seed := uint64(1)
	r.Rand = func(n int) int { // a fixed sequence: injected randomness
		seed = seed*6364136223846793005 + 1442695040888963407
		return int(seed>>33) % n
	}
	first := map[string]int{}
	for range 4000 {
		first[r.Order("m", fb.Quantities{}, nil)[0].Name]++
	}
	// Weight 3 against 1: x first about 3/4 of the time.
	if first["x"] < 2800 || first["x"] > 3200 {
		t.Errorf("x first %d times of 4000", first["x"])
	}
}
