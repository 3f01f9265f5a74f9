package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	fb "farebox"
	"farebox/sponsored"
)

// benchSponsored measures the sponsored decision of one request — the
// decision-moment classifier on the last user message, then its matching
// against every campaign — in process, per request, against a baseline of
// the same run: the obvious matcher, lower-casing the message and scanning
// it for every phrase of every campaign.
func benchSponsored(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench sponsored", flag.ContinueOnError)
	fs.SetOutput(stderr)
	requests := fs.Int("requests", 20_000, "decisions per run")
	levels := fs.String("campaigns", "10,100,1000", "campaigns, comma-separated")
	rounds := fs.Int("rounds", 3, "runs of each; the median is reported")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var counts []int
	for _, f := range strings.Split(*levels, ",") {
		var n int
		if _, err := fmt.Sscan(f, &n); err != nil || n < 1 {
			return &exitError{2, fmt.Errorf("--campaigns: bad level %q", f)}
		}
		counts = append(counts, n)
	}
	if *requests < 100 || *rounds < 1 {
		return &exitError{2, fmt.Errorf("--requests must be at least 100 and --rounds positive")}
	}
	s, err := sponsored.New(sponsored.Deps{Clock: fb.SystemClock, Secret: []byte("bench-secret-0123456789abcdef")}, sponsored.Config{})
	if err != nil {
		return err
	}
	prompts := sponsored.BenchPrompts()
	moments := 0
	for _, p := range prompts {
		if s.Decide(p).Moment {
			moments++
		}
	}
	fmt.Fprintf(stdout, "farebox bench sponsored: GOMAXPROCS=%d, %d decisions a run over %d prompts (%d decision moments, up to %d bytes), median of %d runs\n",
		runtime.GOMAXPROCS(0), *requests, len(prompts), moments, maxLen(prompts), *rounds)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "campaigns\tdecide p50\tp99\tmax\tclassify only p99\tbaseline (substring scan) p50\tp99\t")
	for _, n := range counts {
		cs := sponsored.BenchCampaigns(n)
		s.Use(cs)
		base := newScanMatcher(cs)
		var dec, clf, scan [][3]time.Duration
		for range *rounds {
			dec = append(dec, timeEach(*requests, prompts, func(p string) { s.Decide(p) }))
			clf = append(clf, timeEach(*requests, prompts, func(p string) { s.Classifier().Score(p) }))
			scan = append(scan, timeEach(*requests, prompts, func(p string) {
				if _, moment := s.Classifier().Score(p); moment {
					base.match(p)
				}
			}))
		}
		d, c, b := medianOf(dec), medianOf(clf), medianOf(scan)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", n, fmtUS(d[0]), fmtUS(d[1]), fmtUS(d[2]), fmtUS(c[1]), fmtUS(b[0]), fmtUS(b[1]))
	}
	tw.Flush()
	fmt.Fprintln(stdout, "per request, in process, no I/O; goal: decide p99 under 100µs")
	return nil
}

// timeEach runs f n times over prompts in turn and returns the p50, p99
// and max of its times.
func timeEach(n int, prompts []string, f func(string)) [3]time.Duration {
	ds := make([]time.Duration, n)
	for i := range n {
		p := prompts[i%len(prompts)]
		t := time.Now()
		f(p)
		ds[i] = time.Since(t)
	}
	slices.Sort(ds)
	return [3]time.Duration{ds[n/2], ds[n*99/100], ds[n-1]}
}

// medianOf is the median of each of the runs' figures.
func medianOf(runs [][3]time.Duration) [3]time.Duration {
	var out [3]time.Duration
	for k := range out {
		var v []time.Duration
		for _, r := range runs {
			v = append(v, r[k])
		}
		slices.Sort(v)
		out[k] = v[len(v)/2]
	}
	return out
}

func fmtUS(d time.Duration) string {
	return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
}

func maxLen(ss []string) int {
	n := 0
	for _, s := range ss {
		n = max(n, len(s))
	}
	return n
}

// scanMatcher is the baseline: every phrase of every campaign looked for
// in the lower-cased message.
type scanMatcher struct {
	phrases [][]string
}

func newScanMatcher(cs []fb.Campaign) *scanMatcher {
	m := &scanMatcher{}
	for _, c := range cs {
		var ps []string
		for _, p := range append(append([]string{}, c.Phrases...), c.Topics...) {
			ps = append(ps, strings.ToLower(p))
		}
		m.phrases = append(m.phrases, ps)
	}
	return m
}

func (m *scanMatcher) match(text string) int {
	lower := strings.ToLower(text)
	n := 0
	for _, ps := range m.phrases {
		for _, p := range ps {
			if strings.Contains(lower, p) {
				n++
				break
			}
		}
	}
	return n
}
