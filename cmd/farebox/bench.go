package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	fb "farebox"
	"farebox/app"
	"farebox/ids"
	"farebox/ledger"
	"farebox/simulator"
)

// benchLedger measures hold+capture pairs per second and acknowledgement
// latency on the embedded store, batched and with batching off (the
// baseline), in-process and over HTTP.
func benchLedger(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench ledger", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dur := fs.Duration("duration", 3*time.Second, "how long each run lasts")
	customers := fs.Int("customers", 10_000, "customers in the uniform runs")
	callers := fs.String("callers", "1,256", "concurrent callers, comma-separated")
	dir := fs.String("dir", "", "directory for the benchmark database (default: a new temp dir, removed after)")
	dbURL := fs.String("db", "", "benchmark this database instead (postgres://…); its customers are named per run")
	skipHTTP := fs.Bool("no-http", false, "skip the runs over HTTP")
	batchModes := fs.String("batching", "both", "on, off or both (off is the one-op-per-transaction baseline)")
	only := fs.String("only", "", "run only workloads whose name contains this (uniform, hot)")
	maxWait := fs.Duration("max-wait", 0, "how long a batch may wait for more ops (engine MaxWait)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the runs to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var levels []int
	for _, f := range bytes.Split([]byte(*callers), []byte(",")) {
		var n int
		if _, err := fmt.Sscan(string(f), &n); err != nil || n < 1 {
			return &exitError{2, fmt.Errorf("--callers: bad level %q", f)}
		}
		levels = append(levels, n)
	}
	dbName := "embedded SQLite (WAL, synchronous=FULL)"
	prefix := ""
	if *dir == "" {
		d, err := os.MkdirTemp("", "farebox-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	if *dbURL == "" {
		*dbURL = "sqlite://" + filepath.Join(*dir, "bench.db")
	} else {
		dbName = "PostgreSQL (" + redact(*dbURL) + ")"
		prefix = ids.Secret(6) + "-" // the database may hold earlier runs
	}
	// Each run starts Farebox afresh on the same database, its engine tuned
	// to the run (the spool in the bench's own directory).
	start := func(tune func(*ledger.Config)) (*app.App, error) {
		return app.New(ctx, app.Config{DB: *dbURL, DataDir: *dir, AdminToken: benchToken, Engine: tune})
	}
	setup, err := start(nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "farebox bench ledger: %s, GOMAXPROCS=%d, %s per run\n", dbName, runtime.GOMAXPROCS(0), *dur)
	fmt.Fprintf(stdout, "setting up %d customers and one hot customer...\n", *customers)
	uniform, err := benchCustomers(ctx, setup, prefix+"u", *customers)
	if err == nil {
		var hot []string
		hot, err = benchCustomers(ctx, setup, prefix+"hot", 1)
		uniform = append(uniform, hot...)
	}
	setup.Close()
	if err != nil {
		return err
	}
	uniform, hot := uniform[:*customers], uniform[*customers:]

	type run struct {
		name     string
		ids      []string
		callers  int
		batching bool
		http     bool
	}
	var runs []run
	modes := map[string][]bool{"both": {true, false}, "on": {true}, "off": {false}}[*batchModes]
	if modes == nil {
		return &exitError{2, fmt.Errorf("--batching: want on, off or both, not %q", *batchModes)}
	}
	for _, batching := range modes {
		for _, set := range []struct {
			name string
			ids  []string
		}{{fmt.Sprintf("uniform, %d customers", *customers), uniform}, {"one hot customer", hot}} {
			for _, n := range levels {
				runs = append(runs, run{set.name, set.ids, n, batching, false})
			}
		}
	}
	if !*skipHTTP {
		maxLevel := slices.Max(levels)
		runs = append(runs,
			run{fmt.Sprintf("uniform, %d customers", *customers), uniform, maxLevel, true, true},
			run{"one hot customer", hot, maxLevel, true, true})
	}

	if *only != "" {
		runs = slices.DeleteFunc(runs, func(r run) bool { return !strings.Contains(r.name, *only) })
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
	const row = "%-26s %7s %8s %10s %9s %9s %9s %10s %6s\n"
	fmt.Fprintf(stdout, row, "workload", "callers", "batching", "via", "pairs/s", "p50 ack", "p99 ack", "ops/commit", "errors")
	results := map[string]float64{}
	for _, r := range runs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		maxBatch := 4096
		if !r.batching {
			maxBatch = 1
		}
		a, err := start(func(c *ledger.Config) { c.MaxBatch, c.MaxWait = maxBatch, *maxWait })
		if err != nil {
			return err
		}
		var do pairFunc = enginePair(a.Engine)
		var stop func()
		via := "in-process"
		if r.http {
			via = "HTTP"
			do, stop, err = httpPair(a.Handler)
			if err != nil {
				a.Close()
				return err
			}
		}
		res := measure(ctx, r.ids, r.callers, *dur, do)
		if stop != nil {
			stop()
		}
		st := a.Engine.Stats()
		a.Close()
		perCommit := 0.0
		if st.Batches > 0 {
			perCommit = float64(st.Ops) / float64(st.Batches)
		}
		on := "on"
		if !r.batching {
			on = "off"
		}
		fmt.Fprintf(stdout, row, r.name, fmt.Sprint(r.callers), on, via, fmt.Sprintf("%.0f", res.pairsPerSec),
			fmtDur(res.p50), fmtDur(res.p99), fmt.Sprintf("%.1f", perCommit), fmt.Sprint(res.errors))
		results[fmt.Sprintf("%s/%d/%v/%v", r.name, r.callers, r.batching, r.http)] = res.pairsPerSec
	}
	fmt.Fprintln(stdout)
	for _, set := range []string{fmt.Sprintf("uniform, %d customers", *customers), "one hot customer"} {
		for _, n := range levels {
			on, off := results[fmt.Sprintf("%s/%d/true/false", set, n)], results[fmt.Sprintf("%s/%d/false/false", set, n)]
			if off > 0 {
				fmt.Fprintf(stdout, "batching on vs off (baseline), %s, %d callers: %.1fx\n", set, n, on/off)
			}
		}
	}
	return nil
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}

// benchToken is the benchmarks' admin token.
var benchToken = "fba_" + ids.Secret(40)

// benchCustomers creates n customers, each with far more credit than a run
// can spend.
func benchCustomers(ctx context.Context, a *app.App, prefix string, n int) ([]string, error) {
	store := a.Store
	now := time.Now().UTC()
	ids := make([]string, n)
	cs := make([]fb.Customer, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%s-%d", prefix, i)
		cs[i] = fb.Customer{ID: ids[i], Name: "bench", CreatedAt: now}
	}
	if err := store.CreateCustomers(ctx, cs); err != nil {
		return nil, err
	}
	e := a.Engine
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 256)
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := e.Submit(ctx, fb.Op{Kind: fb.OpGrant, Customer: id, Amount: 1e9 * fb.Micro, Source: fb.SourcePurchase, Priority: 20, PaidUSD: 1e7 * fb.Micro})
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return ids, <-errs
}

// pairFunc holds 1 credit for customer under key and captures 0.5 of it.
type pairFunc func(ctx context.Context, customer, key string, lat *[]time.Duration) error

func enginePair(e *ledger.Engine) pairFunc {
	return func(ctx context.Context, customer, key string, lat *[]time.Duration) error {
		t0 := time.Now()
		res, err := e.Submit(ctx, fb.Op{Kind: fb.OpHold, Customer: customer, Key: key, Amount: fb.Micro, TTL: time.Minute})
		t1 := time.Now()
		*lat = append(*lat, t1.Sub(t0))
		if err != nil {
			return err
		}
		_, err = e.Submit(ctx, fb.Op{Kind: fb.OpCapture, HoldID: res.Hold.ID, Amount: fb.Micro / 2})
		*lat = append(*lat, time.Since(t1))
		return err
	}
}

func httpPair(h http.Handler) (pairFunc, func(), error) {
	addr, srv, err := simulator.ServeLoopback(h)
	if err != nil {
		return nil, nil, err
	}
	base := "http://" + addr
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 1024}}
	post := func(ctx context.Context, path string, body []byte, out any) error {
		req, err := http.NewRequestWithContext(ctx, "POST", base+path, bytes.NewReader(body))
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
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s: %d %s", path, resp.StatusCode, b)
		}
		if out != nil {
			return json.Unmarshal(b, out)
		}
		return nil
	}
	do := func(ctx context.Context, customer, key string, lat *[]time.Duration) error {
		t0 := time.Now()
		var h struct{ ID string }
		err := post(ctx, "/api/v1/holds", fmt.Appendf(nil, `{"customer":%q,"amount":"1","idempotency_key":%q}`, customer, key), &h)
		t1 := time.Now()
		*lat = append(*lat, t1.Sub(t0))
		if err != nil {
			return err
		}
		err = post(ctx, "/api/v1/holds/"+h.ID+"/capture", []byte(`{"amount":"0.5"}`), nil)
		*lat = append(*lat, time.Since(t1))
		return err
	}
	stop := func() {
		srv.Close()
		client.CloseIdleConnections()
	}
	return do, stop, nil
}

type benchResult struct {
	pairsPerSec float64
	p50, p99    time.Duration
	errors      int64
}

var benchRun atomic.Int64

// measure runs callers goroutines doing pairs against customers (caller i
// starts at customer i and strides through them) for d, after a short
// warm-up that is not counted.
func measure(ctx context.Context, customers []string, callers int, d time.Duration, do pairFunc) benchResult {
	runID := benchRun.Add(1)
	warm := min(d/5, 500*time.Millisecond)
	start := time.Now()
	measureFrom, deadline := start.Add(warm), start.Add(warm+d)
	var pairs, errs atomic.Int64
	lats := make([][]time.Duration, callers)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			for i := 0; ; i++ {
				now := time.Now()
				if now.After(deadline) || ctx.Err() != nil {
					break
				}
				cust := customers[(c+i*callers)%len(customers)]
				key := fmt.Sprintf("bench-%d-%d-%d-%d", time.Now().UnixNano(), runID, c, i)
				var l []time.Duration
				err := do(ctx, cust, key, &l)
				if now.Before(measureFrom) {
					continue
				}
				lat = append(lat, l...)
				if err != nil {
					errs.Add(1)
					continue
				}
				pairs.Add(1)
			}
			lats[c] = lat
		}()
	}
	wg.Wait()
	elapsed := time.Since(measureFrom)
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
	return benchResult{pairsPerSec: float64(pairs.Load()) / elapsed.Seconds(), p50: pct(0.50), p99: pct(0.99), errors: errs.Load()}
}
