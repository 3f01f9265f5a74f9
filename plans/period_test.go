package plans

import (
	"testing"
	"time"

	fb "farebox"
)

func day(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestPeriodStart(t *testing.T) {
	for _, c := range []struct {
		anchor string
		p      fb.Period
		k      int
		want   string
	}{
		{"2026-01-31T10:00:00Z", fb.PeriodMonth, 1, "2026-02-28T10:00:00Z"},
		{"2026-01-31T10:00:00Z", fb.PeriodMonth, 2, "2026-03-31T10:00:00Z"},
		{"2026-01-31T10:00:00Z", fb.PeriodMonth, 3, "2026-04-30T10:00:00Z"},
		{"2028-01-31T00:00:00Z", fb.PeriodMonth, 1, "2028-02-29T00:00:00Z"},
		{"2026-11-24T09:30:00Z", fb.PeriodMonth, 2, "2027-01-24T09:30:00Z"},
		{"2028-02-29T00:00:00Z", fb.PeriodYear, 1, "2029-02-28T00:00:00Z"},
		{"2028-02-29T00:00:00Z", fb.PeriodYear, 4, "2032-02-29T00:00:00Z"},
		{"2026-11-24T09:30:00Z", fb.PeriodWeek, 2, "2026-12-08T09:30:00Z"},
		{"2026-11-24T09:30:00Z", fb.PeriodDay, 10, "2026-12-04T09:30:00Z"},
		{"2026-11-24T09:30:00Z", fb.PeriodDay, 0, "2026-11-24T09:30:00Z"},
	} {
		if got := PeriodStart(day(c.anchor), c.p, c.k); !got.Equal(day(c.want)) {
			t.Errorf("PeriodStart(%s, %s, %d) = %s, want %s", c.anchor, c.p, c.k, got.Format(time.RFC3339), c.want)
		}
	}
}

func TestPeriodAt(t *testing.T) {
	for _, c := range []struct {
		anchor, at string
		p          fb.Period
		k          int
		start, end string
	}{
		{"2026-01-31T10:00:00Z", "2026-01-31T10:00:00Z", fb.PeriodMonth, 0, "2026-01-31T10:00:00Z", "2026-02-28T10:00:00Z"},
		{"2026-01-31T10:00:00Z", "2026-02-28T09:59:59Z", fb.PeriodMonth, 0, "2026-01-31T10:00:00Z", "2026-02-28T10:00:00Z"},
		{"2026-01-31T10:00:00Z", "2026-02-28T10:00:00Z", fb.PeriodMonth, 1, "2026-02-28T10:00:00Z", "2026-03-31T10:00:00Z"},
		{"2026-01-31T10:00:00Z", "2026-03-30T00:00:00Z", fb.PeriodMonth, 1, "2026-02-28T10:00:00Z", "2026-03-31T10:00:00Z"},
		{"2026-01-31T10:00:00Z", "2027-01-31T09:00:00Z", fb.PeriodMonth, 11, "2026-12-31T10:00:00Z", "2027-01-31T10:00:00Z"},
		{"2026-11-24T00:00:00Z", "2026-12-01T00:00:00Z", fb.PeriodWeek, 1, "2026-12-01T00:00:00Z", "2026-12-08T00:00:00Z"},
		{"2026-11-24T00:00:00Z", "2026-11-30T23:59:59Z", fb.PeriodWeek, 0, "2026-11-24T00:00:00Z", "2026-12-01T00:00:00Z"},
		{"2026-11-24T12:00:00Z", "2026-11-26T11:00:00Z", fb.PeriodDay, 1, "2026-11-25T12:00:00Z", "2026-11-26T12:00:00Z"},
		{"2028-02-29T00:00:00Z", "2030-03-01T00:00:00Z", fb.PeriodYear, 2, "2030-02-28T00:00:00Z", "2031-02-28T00:00:00Z"},
		{"2026-11-24T00:00:00Z", "2026-11-01T00:00:00Z", fb.PeriodMonth, 0, "2026-11-24T00:00:00Z", "2026-12-24T00:00:00Z"},
	} {
		k, start, end := PeriodAt(day(c.anchor), c.p, day(c.at))
		if k != c.k || !start.Equal(day(c.start)) || !end.Equal(day(c.end)) {
			t.Errorf("PeriodAt(%s, %s, %s) = %d [%s, %s), want %d [%s, %s)", c.anchor, c.p, c.at, k,
				start.Format(time.RFC3339), end.Format(time.RFC3339), c.k, c.start, c.end)
		}
	}
}
