// Package plans owns subscriptions: billing periods, the allowance a plan
// grants each period (a subscription lot with its cost basis, expiry and
// rollover), plan changes, and the renewal job that grants each period's
// allowance exactly once, however many replicas run it and however often
// it restarts. Credits move only through the ledger; a subscription row
// only says where the customer is.
package plans

import (
	"time"

	fb "farebox"
)

// PeriodStart returns the start of the k-th period (k ≥ 0) counted from
// anchor, in UTC. Months and years keep the anchor's day of the month,
// clamped to the month's last day: a month anchored on Jan 31 runs to
// Feb 28 (or 29), then Mar 31.
func PeriodStart(anchor time.Time, p fb.Period, k int) time.Time {
	a := anchor.UTC()
	switch p {
	case fb.PeriodDay:
		return a.AddDate(0, 0, k)
	case fb.PeriodWeek:
		return a.AddDate(0, 0, 7*k)
	case fb.PeriodYear:
		return addMonths(a, 12*k)
	}
	return addMonths(a, k)
}

func addMonths(a time.Time, k int) time.Time {
	y, m, d := a.Date()
	first := time.Date(y, m+time.Month(k), 1, a.Hour(), a.Minute(), a.Second(), a.Nanosecond(), time.UTC)
	last := time.Date(first.Year(), first.Month()+1, 0, 0, 0, 0, 0, time.UTC).Day()
	return first.AddDate(0, 0, min(d, last)-1)
}

// PeriodAt returns the period, counted from anchor, that contains t: the
// greatest k with PeriodStart(k) ≤ t, and that period's bounds. Before the
// anchor it is period 0.
func PeriodAt(anchor time.Time, p fb.Period, t time.Time) (k int, start, end time.Time) {
	a, t := anchor.UTC(), t.UTC()
	if t.Before(a) {
		return 0, a, PeriodStart(a, p, 1)
	}
	switch p {
	case fb.PeriodDay:
		k = int(t.Sub(a) / (24 * time.Hour))
	case fb.PeriodWeek:
		k = int(t.Sub(a) / (7 * 24 * time.Hour))
	case fb.PeriodYear:
		k = t.Year() - a.Year()
	default:
		k = (t.Year()-a.Year())*12 + int(t.Month()) - int(a.Month())
	}
	for k > 0 && PeriodStart(a, p, k).After(t) {
		k--
	}
	for !PeriodStart(a, p, k+1).After(t) {
		k++
	}
	return k, PeriodStart(a, p, k), PeriodStart(a, p, k+1)
}
