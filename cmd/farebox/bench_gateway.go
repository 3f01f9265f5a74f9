package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	fb "farebox"
	"farebox/app"
	"farebox/ids"
	"farebox/keys"
	"farebox/ledger"
	"farebox/routing"
	"farebox/simulator"
)

// benchGateway measures requests per second and latency of chat
// completions (and, with --protocols, Responses and Messages requests),
// non-stream and stream, at several concurrency levels, in the same run
// for three targets: the simulator directly, a bare
// httputil.ReverseProxy in front of it (no auth, no billing: the floor any
// gateway stands on), and Farebox (key, plan, hold, forward, count, settle,
// usage row, all durable in SQLite).
func benchGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dur := fs.Duration("duration", 2*time.Second, "how long each run lasts")
	levels := fs.String("concurrency", "1,16,64", "concurrency levels, comma-separated")
	rounds := fs.Int("rounds", 3, "runs of each target per row, interleaved; the median is reported")
	tokens := fs.Int("tokens", 16, "completion tokens per answer")
	customers := fs.Int("customers", 64, "customers (each with a key) the requests are spread over")
	only := fs.String("targets", "direct,proxy,farebox", "targets measured, comma-separated (for profiling one)")
	modes := fs.String("modes", "non-stream,stream", "modes measured, comma-separated")
	protos := fs.String("protocols", "chat", "protocols measured, comma-separated: chat, responses, messages")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the whole run (every target) to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var conc []int
	for _, s := range strings.Split(*levels, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err != nil || n < 1 {
			return &exitError{2, fmt.Errorf("--concurrency %q: want positive integers such as 1,16,64", *levels)}
		}
		conc = append(conc, n)
	}
	var protocols []benchProtocol
	for _, name := range strings.Split(*protos, ",") {
		p, ok := benchProtocols[strings.TrimSpace(name)]
		if !ok {
			return &exitError{2, fmt.Errorf("--protocols %q: want chat, responses or messages, comma-separated", *protos)}
		}
		protocols = append(protocols, p)
	}
	if *rounds < 1 || *tokens < 1 || *customers < 1 {
		return &exitError{2, fmt.Errorf("--rounds, --tokens and --customers must be positive")}
	}

	// The simulator, answering at once.
	simAddr, simSrv, err := simulator.ServeLoopback(&simulator.Simulator{})
	if err != nil {
		return err
	}
	defer simSrv.Close()
	simURL := "http://" + simAddr

	// A bare reverse proxy.
	target, _ := url.Parse(simURL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1
	rp.Transport = &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 512}
	proxyAddr, proxySrv, err := simulator.ServeLoopback(rp)
	if err != nil {
		return err
	}
	defer proxySrv.Close()
	proxyURL := "http://" + proxyAddr

	// Farebox on a temporary SQLite database.
	dir, err := os.MkdirTemp("", "farebox-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	a, err := app.New(ctx, app.Config{DataDir: dir, AdminToken: benchToken, Deployments: []*routing.Deployment{{Name: "sim/gpt-4o-mini", Provider: "sim", Type: routing.TypeSimulated,
		Model: "gpt-4o-mini", Upstream: "gpt-4o-mini", BaseURL: simURL + "/v1", MaxOutputTokens: 16384, ForwardHeaders: []string{simulator.TokensHeader},
		Cost: routing.CostCard{InputPerMTok: 150_000, OutputPerMTok: 600_000, CachedInputPerMTok: 75_000}}}})
	if err != nil {
		return err
	}
	defer a.Close()
	store, engine := a.Store, a.Engine
	fbAddr, fbSrv, err := simulator.ServeLoopback(a.Handler)
	if err != nil {
		return err
	}
	defer fbSrv.Close()
	fbURL := "http://" + fbAddr
	secrets := make([]string, *customers)
	prefix := ids.Secret(6)
	for i := range secrets {
		id := fmt.Sprintf("%s-c%d", prefix, i)
		if err := store.CreateCustomer(ctx, fb.Customer{ID: id, Name: id, CreatedAt: time.Now().UTC()}); err != nil {
			return err
		}
		if _, err := engine.Submit(ctx, fb.Op{Kind: fb.OpGrant, Customer: id, Amount: 1_000_000 * fb.Micro, Source: fb.SourcePurchase, PaidUSD: 10_000 * fb.Micro}); err != nil {
			return err
		}
		var k fb.APIKey
		k, secrets[i] = keys.Mint(id, "bench", time.Now(), ids.New)
		if err := store.CreateKey(ctx, k); err != nil {
			return err
		}
	}

	var answered int64 // Farebox's answers, all runs
	fmt.Fprintf(stdout, "farebox bench gateway: GOMAXPROCS=%d, %d tokens per answer, %s per run, median of %d interleaved rounds, %d customers\n",
		runtime.GOMAXPROCS(0), *tokens, *dur, *rounds, *customers)
	fmt.Fprintln(stdout, "Farebox: key lookup, plan, hold of the worst case, forward, count, capture, usage row; SQLite WAL synchronous=FULL.")
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "protocol\tmode\tconc\ttarget\treq/s\tp50\tp99\tadded p50\tvs proxy\terrors\t")
	for _, mode := range strings.Split(*modes, ",") {
		if mode != "stream" && mode != "non-stream" {
			return &exitError{2, fmt.Errorf("--modes %q: want non-stream, stream or both", *modes)}
		}
	}
	for _, proto := range protocols {
		for _, mode := range strings.Split(*modes, ",") {
			stream := mode == "stream"
			for _, c := range conc {
				type target struct {
					name, url string
					keys      []string
				}
				var targets []target
				for _, tg := range []target{{"direct", simURL, nil}, {"bare proxy", proxyURL, nil}, {"farebox", fbURL, secrets}} {
					if strings.Contains(","+*only+",", ","+strings.Fields(tg.name)[len(strings.Fields(tg.name))-1]+",") {
						targets = append(targets, tg)
					}
				}
				results := make([][]loadResult, len(targets))
				for range *rounds {
					for i, tg := range targets {
						r := runLoad(ctx, tg.url, tg.keys, proto, c, *dur, *tokens, stream)
						results[i] = append(results[i], r)
						if tg.name == "farebox" {
							answered += r.answered
						}
					}
				}
				med := make([]loadResult, len(targets))
				for i := range targets {
					med[i] = medianResult(results[i])
				}
				for i, tg := range targets {
					m := med[i]
					added, vs := "", ""
					if i > 0 && targets[0].name == "direct" {
						added = fmtMS(m.p50 - med[0].p50)
					}
					if tg.name == "farebox" && i > 0 && targets[i-1].name == "bare proxy" {
						vs = fmt.Sprintf("%.0f%%, %s p50", 100*m.rps/med[i-1].rps, fmtMS(m.p50-med[i-1].p50))
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.0f\t%s\t%s\t%s\t%s\t%d\t\n", proto.name, mode, c, tg.name, m.rps, fmtMS(m.p50), fmtMS(m.p99), added, vs, m.errors)
				}
				fmt.Fprintf(stderr, "  %s %s at concurrency %d measured\n", proto.name, mode, c)
			}
		}
	}
	tw.Flush() // one table, aligned as a whole
	st := engine.Stats()
	fmt.Fprintf(stdout, "ledger: %d ops in %d commits (%.1f ops/commit)\n", st.Ops, st.Batches, float64(st.Ops)/float64(max(st.Batches, 1)))
	// What Farebox's own /metrics counted meanwhile.
	rec := httptest.NewRecorder()
	a.Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	var counted int64
	for _, p := range protocols {
		counted += sumMetric(rec.Body.String(), "farebox_http_requests_total{", `route="POST `+p.path+`"`)
	}
	batches := sumMetric(rec.Body.String(), "farebox_ledger_commit_duration_seconds_count", "")
	fmt.Fprintf(stdout, "metrics: %d gateway requests counted by /metrics (the bench got %d answers); %d batches in the commit histogram (the engine committed %d)\n",
		counted, answered, batches, st.Batches)
	rep, err := ledger.Verify(ctx, store)
	if err != nil {
		return err
	}
	if len(rep.Problems) > 0 {
		return fmt.Errorf("ledger verify after the bench: %v", rep.Problems)
	}
	fmt.Fprintf(stdout, "ledger verified after the bench: %d journal entries replayed\n", rep.Entries)
	return nil
}

// sumMetric sums the samples of Prometheus's text exposition whose line
// starts with prefix and contains has.
func sumMetric(text, prefix, has string) int64 {
	var n float64
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, prefix) || !strings.Contains(line, has) {
			continue
		}
		f := strings.Fields(line)
		var v float64
		fmt.Sscan(f[len(f)-1], &v)
		n += v
	}
	return int64(n)
}

type loadResult struct {
	rps      float64
	p50, p99 time.Duration
	errors   int64
	answered int64 // requests that got an answer (whatever its status)
}

// benchProtocol is a protocol the bench sends: its route, a request of
// one user turn (a cap of 256 tokens), and the line its stream ends with.
type benchProtocol struct {
	name, path, body, end string
}

var benchProtocols = map[string]benchProtocol{
	"chat": {"chat", "/v1/chat/completions",
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Write one sentence about the sea."}],"max_tokens":256`, "data: [DONE]"},
	"responses": {"responses", "/v1/responses",
		`{"model":"gpt-4o-mini","input":"Write one sentence about the sea.","max_output_tokens":256`, "event: response.completed"},
	"messages": {"messages", "/v1/messages",
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Write one sentence about the sea."}],"max_tokens":256`, "event: message_stop"},
}

// runLoad sends requests of protocol p from c workers for d and measures
// each until its last byte.
func runLoad(ctx context.Context, base string, keys []string, p benchProtocol, c int, d time.Duration, tokens int, stream bool) loadResult {
	tr := &http.Transport{MaxIdleConns: c * 2, MaxIdleConnsPerHost: c * 2, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	body := p.body
	if stream {
		body += `,"stream":true`
	}
	body += "}"
	var (
		mu       sync.Mutex
		lat      []time.Duration
		errs     atomic.Int64
		answered atomic.Int64
		wg       sync.WaitGroup
		start    = time.Now()
		cutoff   = start.Add(d)
	)
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for i := 0; time.Now().Before(cutoff); i++ {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+p.path, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(simulator.TokensHeader, fmt.Sprint(tokens))
				if keys != nil {
					req.Header.Set("Authorization", "Bearer "+keys[(w+i*c)%len(keys)])
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				answered.Add(1)
				ok := resp.StatusCode == http.StatusOK
				if stream {
					ok = drainSSE(resp.Body, p.end) && ok
				} else {
					_, err = io.Copy(io.Discard, resp.Body)
					ok = ok && err == nil
				}
				resp.Body.Close()
				if !ok {
					errs.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	r := loadResult{rps: float64(len(lat)) / elapsed.Seconds(), errors: errs.Load(), answered: answered.Load()}
	if len(lat) > 0 {
		r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return r
}

// drainSSE reads a stream to its end and reports whether it had its
// protocol's last line, end.
func drainSSE(r io.Reader, end string) bool {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	done := false
	for sc.Scan() {
		if sc.Text() == end {
			done = true
		}
	}
	return done && sc.Err() == nil
}

// medianResult is the round with the median throughput.
func medianResult(rs []loadResult) loadResult {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b loadResult) int {
		switch {
		case a.rps < b.rps:
			return -1
		case a.rps > b.rps:
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

// fmtMS shows a duration, or a difference, in milliseconds.
func fmtMS(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}
