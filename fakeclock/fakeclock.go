// Package fakeclock is a farebox.Clock for tests: it stands still until
// told to move, and fires the channels of After when it passes their time.
package fakeclock

import (
	"sync"
	"time"

	fb "farebox"
)

// Clock is a settable farebox.Clock, safe for concurrent use.
type Clock struct {
	mu      sync.Mutex
	t       time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	c  chan time.Time
}

var _ fb.Clock = (*Clock)(nil)

// New returns a clock standing at t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// After returns a channel that receives the clock's time once it has
// moved d on (at once when d ≤ 0).
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	at := c.t.Add(d)
	if !at.After(c.t) {
		ch <- c.t
		return ch
	}
	c.waiters = append(c.waiters, waiter{at, ch})
	return ch
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// Set moves the clock to t and fires every After whose time has come.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.t) {
			w.c <- c.t
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// Waiters is how many After channels wait to fire: a test can wait for a
// loop to be asleep before it moves the clock.
func (c *Clock) Waiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// Func is a farebox.Clock whose time is the function's (a test that keeps
// its own time); its After waits on the real clock.
type Func func() time.Time

// Now is f().
func (f Func) Now() time.Time { return f() }

// After is time.After.
func (f Func) After(d time.Duration) <-chan time.Time { return time.After(d) }
