package farebox

import "time"

// Clock is time as services see it: the time now, and a channel that
// fires after a while. Every expiry, renewal, sweep and ticker takes one,
// so that tests move time instead of waiting for it (see fakeclock).
type Clock interface {
	Now() time.Time
	// After is time.After on this clock.
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the real clock.
var SystemClock Clock = systemClock{}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
