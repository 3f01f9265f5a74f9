package gateway

import (
	"math/bits"
	"sync"
	"time"
)

// limiter enforces a plan's requests and tokens per minute for each
// customer, in this process: with several replicas each admits up to the
// limit. It uses the generic cell rate algorithm: a customer's state is the
// theoretical arrival time (tat) of its next request, or token, at the
// steady rate; a burst of a whole minute's allowance is admitted at once.
type limiter struct {
	mu sync.Mutex
	m  map[string]*rate
}

type rate struct {
	reqTAT, tokTAT time.Time
}

func newLimiter() *limiter { return &limiter{m: map[string]*rate{}} }

// admitRequest admits one request for customer under rpm (0: unlimited),
// or reports how long until it could be. It is checked before the body is
// read, so a client past its rate costs no body reading.
func (l *limiter) admitRequest(customer string, rpm int64, now time.Time) (ok bool, retry time.Duration) {
	if rpm <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.rate(customer)
	next, wait := gcra(r.reqTAT, now, 1, rpm)
	if wait > 0 {
		return false, wait
	}
	r.reqTAT = next
	return true, 0
}

// admitTokens admits tokens (estimated) for customer under tpm (0:
// unlimited), or reports how long until it could.
func (l *limiter) admitTokens(customer string, tpm, tokens int64, now time.Time) (ok bool, retry time.Duration) {
	if tpm <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.rate(customer)
	next, wait := gcra(r.tokTAT, now, min(tokens, tpm), tpm)
	if wait > 0 {
		return false, wait
	}
	r.tokTAT = next
	return true, 0
}

func (l *limiter) rate(customer string) *rate {
	r := l.m[customer]
	if r == nil {
		r = &rate{}
		l.m[customer] = r
	}
	return r
}

// refund gives back tokens admitted but not used.
func (l *limiter) refund(customer string, tokens, tpm int64, now time.Time) {
	if tpm <= 0 || tokens <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.m[customer]; r != nil {
		r.tokTAT = r.tokTAT.Add(-interval(min(tokens, tpm), tpm))
		if r.tokTAT.Before(now) {
			r.tokTAT = now
		}
	}
}

// gcra admits n units at perMinute: the new tat, or how long to wait.
func gcra(tat, now time.Time, n, perMinute int64) (time.Time, time.Duration) {
	if tat.Before(now) {
		tat = now
	}
	next := tat.Add(interval(n, perMinute))
	if over := next.Sub(now) - time.Minute; over > 0 {
		return tat, over
	}
	return next, 0
}

// interval is n units' share of a minute at perMinute (n ≤ perMinute, so
// it is at most a minute).
func interval(n, perMinute int64) time.Duration {
	hi, lo := bits.Mul64(uint64(n), uint64(time.Minute))
	q, _ := bits.Div64(hi, lo, uint64(perMinute))
	return time.Duration(q)
}
