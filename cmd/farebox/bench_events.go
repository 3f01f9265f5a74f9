package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	fb "farebox"
	"farebox/app"
	"farebox/ids"
	"farebox/metering"
)

// benchEvents measures accepted metered events per second: batches of 1
// (the baseline) and of 100, every event new (priced, deduplicated against
// all earlier ones, debited, its usage row written), then the same events
// again (all duplicates).
func benchEvents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench events", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dur := fs.Duration("duration", 3*time.Second, "how long each run lasts")
	callers := fs.Int("callers", 32, "concurrent callers")
	customers := fs.Int("customers", 1000, "customers the events are spread over")
	dbURL := fs.String("db", "", "benchmark this database (postgres://…) instead of a temporary SQLite file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dbName := "embedded SQLite (WAL, synchronous=FULL)"
	d, err := os.MkdirTemp("", "farebox-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(d)
	if *dbURL == "" {
		*dbURL = "sqlite://" + filepath.Join(d, "bench.db")
	} else {
		dbName = "PostgreSQL (" + redact(*dbURL) + ")"
	}
	a, err := app.New(ctx, app.Config{DB: *dbURL, DataDir: d, AdminToken: benchToken})
	if err != nil {
		return err
	}
	defer a.Close()
	engine := a.Engine
	prefix := ids.Secret(6) + "-"
	fmt.Fprintf(stdout, "farebox bench events: %s, GOMAXPROCS=%d, %d callers, %s per run\n", dbName, runtime.GOMAXPROCS(0), *callers, *dur)
	custs, err := benchCustomers(ctx, a, prefix+"c", *customers)
	if err != nil {
		return err
	}
	if err := a.Store.PutPrice(ctx, fb.Price{Model: "bench-model", Rates: fb.Rates{InputPerMTok: 250 * fb.Micro, OutputPerMTok: 1000 * fb.Micro}, EffectiveFrom: time.Unix(1, 0).UTC(), CreatedAt: time.Now().UTC()}); err != nil {
		return err
	}
	m := a.Meter

	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "events per request\tsent\tevents/s\tp50 request\tp99 request\tops/commit\t")
	var seq atomic.Int64
	var sent [][]json.RawMessage // every batch of the first pass of each size, for the duplicate pass
	var mu sync.Mutex
	for _, size := range []int{1, 100} {
		for _, dup := range []bool{false, true} {
			mu.Lock()
			replay := slices.Clone(sent)
			sent = sent[:0]
			mu.Unlock()
			if dup && len(replay) == 0 {
				continue
			}
			var next atomic.Int64
			before := engine.Stats()
			var lat []time.Duration
			var latMu sync.Mutex
			var total, bad atomic.Int64
			deadline := time.Now().Add(*dur)
			start := time.Now()
			var wg sync.WaitGroup
			for w := 0; w < *callers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []time.Duration
					for time.Now().Before(deadline) {
						var batch []json.RawMessage
						if dup {
							i := int(next.Add(1)) - 1
							if i >= len(replay) {
								break
							}
							batch = replay[i]
						} else {
							for range size {
								n := seq.Add(1)
								batch = append(batch, json.RawMessage(fmt.Sprintf(
									`{"specversion":"1.0","id":"evt-%d","source":"bench","type":"usage","subject":%q,"data":{"model":"bench-model","input_tokens":%d,"output_tokens":20}}`,
									n, custs[int(n)%len(custs)], 100+n%50)))
							}
						}
						t0 := time.Now()
						res, err := m.Meter(ctx, batch)
						mine = append(mine, time.Since(t0))
						if err != nil {
							bad.Add(int64(len(batch)))
							continue
						}
						want := metering.Accepted
						if dup {
							want = metering.Duplicate
						}
						for _, r := range res {
							if r.Status != want {
								bad.Add(1)
							}
						}
						total.Add(int64(len(batch)))
						if !dup {
							mu.Lock()
							sent = append(sent, batch)
							mu.Unlock()
						}
					}
					latMu.Lock()
					lat = append(lat, mine...)
					latMu.Unlock()
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			after := engine.Stats()
			slices.Sort(lat)
			pct := func(p float64) time.Duration {
				if len(lat) == 0 {
					return 0
				}
				return lat[min(len(lat)-1, int(p*float64(len(lat))))]
			}
			perCommit := "-"
			if b := after.Batches - before.Batches; b > 0 {
				perCommit = fmt.Sprintf("%.1f", float64(after.Ops-before.Ops)/float64(b))
			}
			kind := "new"
			if dup {
				kind = "duplicates"
			}
			fmt.Fprintf(tw, "%d (%s)\t%d\t%.0f\t%s\t%s\t%s\t\n", size, kind, total.Load(), float64(total.Load())/elapsed.Seconds(),
				pct(0.5).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), perCommit)
			if bad.Load() > 0 {
				tw.Flush()
				return fmt.Errorf("%d events were not %s", bad.Load(), strings.ToLower(kind))
			}
		}
	}
	return tw.Flush()
}
