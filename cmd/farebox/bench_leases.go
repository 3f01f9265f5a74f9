package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	fb "farebox"
	"farebox/app"
	"farebox/compute"
	"farebox/ids"
	"farebox/ledger"
	"farebox/simulator"
)

// benchLeases measures lease admission: a year's worth of reserved,
// on-demand and spot bookings on one pool, each admitted (or refused with
// the instant that lacks GPUs) and its first hold taken in the same
// durable transaction, by concurrent callers. Batched (admissions
// group-committed with the ledger's ops) against the baseline of one
// admission per transaction, from the same run, each on a fresh database,
// in interleaved rounds (the median round is reported); after each run
// the admitted leases are checked: no instant of the year is overbooked.
func benchLeases(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench leases", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("leases", 10_000, "lease requests in each run")
	gpus := fs.Int64("gpus", 1000, "the pool's GPUs")
	callers := fs.Int("callers", 64, "concurrent callers")
	customers := fs.Int("customers", 1000, "tenants the leases are spread over")
	dbURL := fs.String("db", "", "benchmark this database (postgres://…) instead of a temporary SQLite file")
	skipHTTP := fs.Bool("no-http", false, "skip the run over HTTP")
	batchModes := fs.String("batching", "both", "on, off or both (off is the one-admission-per-transaction baseline)")
	seed := fs.Uint64("seed", 1, "the requests' random seed")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the runs to this file")
	rounds := fs.Int("rounds", 3, "runs of each configuration, interleaved; the median is reported")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *rounds < 1 || *n < 1 || *callers < 1 || *customers < 1 || *gpus < 1 {
		return &exitError{2, fmt.Errorf("--rounds, --leases, --callers, --customers and --gpus must be positive")}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	modes := map[string][]bool{"both": {true, false}, "on": {true}, "off": {false}}[*batchModes]
	if modes == nil {
		return &exitError{2, fmt.Errorf("--batching: want on, off or both, not %q", *batchModes)}
	}
	dbName := "embedded SQLite (WAL, synchronous=FULL)"
	if *dbURL != "" {
		dbName = "PostgreSQL (" + redact(*dbURL) + ")"
	}
	now := time.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	reqs := leaseRequests(*n, *seed, now)
	fmt.Fprintf(stdout, "farebox bench leases: %s, GOMAXPROCS=%d, %d lease requests over a year on a %d-GPU pool, %d callers, %d tenants, median of %d interleaved rounds\n",
		dbName, runtime.GOMAXPROCS(0), *n, *gpus, *callers, *customers, *rounds)

	type run struct {
		batching, http bool
	}
	var runs []run
	for _, b := range modes {
		runs = append(runs, run{b, false})
	}
	if !*skipHTTP && slices.Contains(modes, true) {
		runs = append(runs, run{true, true})
	}
	results := make([][]leaseRun, len(runs))
	for round := range *rounds {
		for i, r := range runs {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			res, err := leaseRound(ctx, r.batching, r.http, *dbURL, reqs, *gpus, *callers, *customers)
			if err != nil {
				return err
			}
			if res.overbooked > 0 || res.errors > 0 {
				return fmt.Errorf("round %d, batching %v, HTTP %v: %d instants overbooked, %d errors", round+1, r.batching, r.http, res.overbooked, res.errors)
			}
			results[i] = append(results[i], res)
		}
		fmt.Fprintf(stderr, "  round %d of %d measured\n", round+1, *rounds)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "batching\tvia\tadmissions/s\tp50\tp99\tCPU/admission\tadmitted\tno capacity\terrors\tops/commit\toverbooked\trounds (admissions/s)\t")
	rates := map[bool]float64{}
	for i, r := range runs {
		m, all := medianLeaseRun(results[i])
		on, via := "on", "in-process"
		if !r.batching {
			on = "off"
		}
		if r.http {
			via = "HTTP"
		} else {
			rates[r.batching] = m.perSec
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%s\t%d\t%d\t%d\t%.1f\t%d\t%s\t\n", on, via, m.perSec, fmtDur(m.p50), fmtDur(m.p99), fmtDur(m.cpu),
			m.admitted, m.refused, m.errors, m.perCommit, m.overbooked, all)
	}
	tw.Flush()
	if on, off := rates[true], rates[false]; on > 0 && off > 0 {
		fmt.Fprintf(stdout, "\nbatching on vs off (baseline), in-process: %.1fx\n", on/off)
	}
	return nil
}

// leaseRound is one run of the requests on a fresh database (a temporary
// SQLite file), or on a pool and tenants of its own in the database at
// dbURL.
func leaseRound(ctx context.Context, batching, overHTTP bool, dbURL string, reqs []compute.Booking, gpus int64, callers, customers int) (leaseRun, error) {
	dir, err := os.MkdirTemp("", "farebox-bench-")
	if err != nil {
		return leaseRun{}, err
	}
	defer os.RemoveAll(dir)
	db := dbURL
	if db == "" {
		db = "sqlite://" + filepath.Join(dir, "bench.db")
	}
	maxBatch := 4096
	if !batching {
		maxBatch = 1
	}
	a, err := app.New(ctx, app.Config{DB: db, DataDir: dir, AdminToken: benchToken, Engine: func(c *ledger.Config) { c.MaxBatch = maxBatch }})
	if err != nil {
		return leaseRun{}, err
	}
	defer a.Close()
	return runLeases(ctx, a, reqs, gpus, callers, customers, overHTTP)
}

// medianLeaseRun is the run of median admissions per second, and every
// run's rate in order.
func medianLeaseRun(rs []leaseRun) (leaseRun, string) {
	var all []string
	for _, r := range rs {
		all = append(all, fmt.Sprintf("%.0f", r.perSec))
	}
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b leaseRun) int {
		switch {
		case a.perSec < b.perSec:
			return -1
		case a.perSec > b.perSec:
			return 1
		}
		return 0
	})
	return sorted[len(sorted)/2], strings.Join(all, " ")
}

// leaseRequests are n bookings over the year from start: reserved for an
// hour to two weeks (60%), finite on-demand (30%) and spot (10%) of up to
// a week, 1 to 16 GPUs each.
func leaseRequests(n int, seed uint64, start time.Time) []compute.Booking {
	rng := rand.New(rand.NewPCG(seed, 0x6c65617365))
	out := make([]compute.Booking, n)
	for i := range out {
		b := compute.Booking{GPUs: 1 + rng.Int64N(16), Class: fb.ClassReserved}
		maxLen := 14 * 24
		switch r := rng.IntN(10); {
		case r >= 9:
			b.Class, maxLen = fb.ClassSpot, 7*24
		case r >= 6:
			b.Class, maxLen = fb.ClassOnDemand, 7*24
		}
		b.Start = start.Add(time.Duration(rng.IntN(365*24)) * time.Hour)
		b.End = b.Start.Add(time.Duration(1+rng.IntN(maxLen)) * time.Hour)
		out[i] = b
	}
	return out
}

type leaseRun struct {
	perSec, perCommit         float64
	p50, p99                  time.Duration
	cpu                       time.Duration // the process's CPU time (user and system) per request
	admitted, refused, errors int64
	overbooked                int
}

// cpuTime is the process's CPU time so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func runLeases(ctx context.Context, a *app.App, reqs []compute.Booking, gpus int64, callers, customers int, overHTTP bool) (leaseRun, error) {
	var out leaseRun
	pool := "bench-" + ids.Secret(6)
	if _, _, err := a.Compute.CreatePool(ctx, &fb.Pool{ID: pool, GPUType: "H100", Region: "bench", GPUs: gpus, CostUSDPerGPUHour: 1_900_000,
		Prices: []fb.PoolPrices{{OnDemand: 250 * fb.Micro, Reserved: 190 * fb.Micro, Spot: 120 * fb.Micro}}}); err != nil {
		return out, err
	}
	custs, err := benchCustomers(ctx, a, ids.Secret(6), customers)
	if err != nil {
		return out, err
	}
	book := func(ctx context.Context, b compute.Booking) error {
		_, _, err := a.Compute.Book(ctx, b)
		return err
	}
	if overHTTP {
		var stop func()
		if book, stop, err = httpBook(a.Handler); err != nil {
			return out, err
		}
		defer stop()
	}
	before := a.Engine.Stats()
	var next atomic.Int64
	lats := make([][]time.Duration, callers)
	var admitted, refused, errs atomic.Int64
	var wg sync.WaitGroup
	cpu0, start := cpuTime(), time.Now()
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) || ctx.Err() != nil {
					return
				}
				b := reqs[i]
				b.Pool, b.Customer, b.Key = pool, custs[i%len(custs)], fmt.Sprintf("%s-%d", pool, i)
				t := time.Now()
				err := book(ctx, b)
				lats[c] = append(lats[c], time.Since(t))
				switch {
				case err == nil:
					admitted.Add(1)
				case fb.ErrorCode(err) == "no_capacity":
					refused.Add(1)
				default:
					if errs.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "bench leases:", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	after := a.Engine.Stats()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(int(p*float64(len(all))), len(all)-1)]
	}
	out = leaseRun{perSec: float64(len(all)) / elapsed.Seconds(), p50: pct(0.5), p99: pct(0.99), cpu: cpu / time.Duration(max(len(all), 1)),
		admitted: admitted.Load(), refused: refused.Load(), errors: errs.Load()}
	if b := after.Batches - before.Batches; b > 0 {
		out.perCommit = float64(after.Ops-before.Ops) / float64(b)
	}
	out.overbooked, err = overbooked(ctx, a, pool, gpus)
	return out, err
}

// overbooked counts the instants at which the stored leases of the bench
// pool, recounted from scratch, need more GPUs than it has.
func overbooked(ctx context.Context, a *app.App, pool string, gpus int64) (int, error) {
	var changes []compute.Change
	for after := ""; ; {
		page, err := a.Store.Leases(ctx, fb.LeaseFilter{Pool: pool, After: after, Limit: 1000})
		if err != nil {
			return 0, err
		}
		for _, l := range page {
			end := l.End.Unix()
			if l.Class.Firm() {
				changes = append(changes, compute.Change{At: l.Start.Unix(), Firm: l.GPUs}, compute.Change{At: end, Firm: -l.GPUs})
			} else {
				changes = append(changes, compute.Change{At: l.Start.Unix(), Spot: l.GPUs}, compute.Change{At: end, Spot: -l.GPUs})
			}
		}
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].ID
	}
	slices.SortFunc(changes, func(x, y compute.Change) int { return int(min(max(x.At-y.At, -1), 1)) })
	over := 0
	var level int64
	for i, c := range changes {
		level += c.Firm + c.Spot
		if (i+1 == len(changes) || changes[i+1].At != c.At) && level > gpus {
			over++
		}
	}
	return over, nil
}

// httpBook books over the API.
func httpBook(h http.Handler) (func(context.Context, compute.Booking) error, func(), error) {
	addr, srv, err := simulator.ServeLoopback(h)
	if err != nil {
		return nil, nil, err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 1024}}
	book := func(ctx context.Context, b compute.Booking) error {
		body, _ := json.Marshal(map[string]any{"customer": b.Customer, "pool": b.Pool, "gpus": b.GPUs, "class": b.Class,
			"start": b.Start.Format(time.RFC3339), "end": b.End.Format(time.RFC3339), "idempotency_key": b.Key})
		req, err := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/api/v1/leases", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+benchToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 201 {
			return nil
		}
		var e struct {
			Error struct{ Type, Code, Message string }
		}
		json.Unmarshal(raw, &e)
		return &fb.Error{Type: e.Error.Type, Code: e.Error.Code, Message: e.Error.Message}
	}
	stop := func() {
		srv.Close()
		client.CloseIdleConnections()
	}
	return book, stop, nil
}
