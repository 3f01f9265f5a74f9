package notify

import (
	"testing"
	"time"
)

// TestBackoff: the wait after n failures doubles from FirstRetry up to
// MaxBackoff, of which the jitter takes a random half.
func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		n        int
		min, max time.Duration // Rand at 0 and just below 1
	}{
		{1, 5 * time.Second, 10 * time.Second},
		{2, 10 * time.Second, 20 * time.Second},
		{3, 20 * time.Second, 40 * time.Second},
		{8, 640 * time.Second, 1280 * time.Second},
		{9, 1280 * time.Second, 2560 * time.Second},
		{10, 30 * time.Minute, time.Hour}, // 5120 s, capped at the hour
		{200, 30 * time.Minute, time.Hour},
	} {
		for _, r := range []float64{0, 0.999999} {
			s := New(nil, nil, nil, nil, Config{Rand: func() float64 { return r }})
			got := s.backoff(c.n)
			want := c.min
			if r > 0 {
				want = c.max
			}
			if d := got - want; d < -time.Millisecond*10 || d > 0 {
				t.Errorf("backoff(%d) with jitter %v = %s, want %s", c.n, r, got, want)
			}
		}
	}
	// Retried for 3 days: about 3 days ÷ an hour's back-off attempts.
	s := New(nil, nil, nil, nil, Config{Rand: func() float64 { return 0.5 }})
	var at time.Duration
	n := 0
	for ; at < s.cfg.RetryFor; n++ {
		at += s.backoff(n + 1)
	}
	if n < 72 || n > 120 {
		t.Fatalf("%d attempts in 3 days, want about one every 45 minutes once backed off", n)
	}
}
