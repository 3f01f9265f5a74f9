package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	fb "farebox"
	"farebox/app"
	"farebox/economics"
	"farebox/fakeclock"
	"farebox/ids"
	"farebox/keys"

	"github.com/jackc/pgx/v5"
)

// benchUI measures the dashboard's pages over many usage rows on a
// temporary SQLite database: the server time of each customer and
// operator page (median and p99, through the whole handler, as a browser
// asks for it) and its weight (HTML with its inline SVG, plus the CSS, JS
// and icon it loads); the baseline is the same figures summed from the raw
// usage rows, in the same run.
func benchUI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench ui", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rows := fs.Int("rows", 1_000_000, "usage rows")
	customers := fs.Int("customers", 1000, "customers they belong to")
	days := fs.Int("days", 30, "days they are spread over")
	heavy := fs.Float64("heavy", 0.1, "the share of the rows that are the first customer's (the customer whose pages are measured): a big customer's")
	runs := fs.Int("runs", 101, "requests of each page; the median and p99 are reported")
	dbURL := fs.String("db", "", "benchmark this database instead of a temporary SQLite one: an empty PostgreSQL database (postgres://…)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *rows < 1 || *customers < 1 || *days < 1 || *runs < 1 {
		return &exitError{2, fmt.Errorf("--rows, --customers, --days and --runs must be positive")}
	}
	if *heavy < 0 || *heavy > 1 {
		return &exitError{2, fmt.Errorf("--heavy is a share from 0 to 1")}
	}
	dir, err := os.MkdirTemp("", "farebox-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	models := []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "llama-3.3-70b", "o3", "text-embedding-3-small"}
	providers := map[string]string{"gpt-4o": "openai", "gpt-4o-mini": "openai", "claude-sonnet-4": "anthropic", "llama-3.3-70b": "gpu-pool", "o3": "openai", "text-embedding-3-small": "openai"}
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	span := time.Duration(*days) * 24 * time.Hour
	clock := fakeclock.New(start)
	dbName := "embedded SQLite"
	if *dbURL != "" {
		dbName = "PostgreSQL (" + redact(*dbURL) + ")"
	}
	a, err := app.New(ctx, app.Config{DB: *dbURL, DataDir: dir, AdminToken: benchToken, Clock: clock, Providers: app.DemoProviders,
		Economics: economics.Config{CreditsPerUSD: 100, Shares: []economics.Share{{Partner: "meta", Models: []string{"llama-*"}, Percent: 20 * fb.Micro}}}})
	if err != nil {
		return err
	}
	defer a.Close()
	store := a.Store
	if *dbURL != "" {
		// The pages read every customer's sums: other data would be measured too.
		if cs, err := store.Customers(ctx, "", 1); err != nil || len(cs) > 0 {
			return fmt.Errorf("--db: want an empty database (%d customers, %v)", len(cs), err)
		}
	}
	fmt.Fprintf(stdout, "farebox bench ui: %s, %d usage rows, %d customers, %d days, %d models; %s of the rows are %s's\n",
		dbName, *rows, *customers, *days, len(models), strconv.FormatFloat(*heavy*100, 'f', -1, 64)+"%", "cus-0000")

	// Customers with accounts, a plan for each and a purchase each.
	t0 := time.Now()
	plan := fb.Plan{ID: "pro", Name: "Pro", PriceUSD: 20 * fb.Micro, Period: fb.PeriodMonth, Credits: 2000 * fb.Micro, Models: []string{"*"}, CreatedAt: start}
	if err := store.CreatePlan(ctx, plan); err != nil {
		return err
	}
	cs := make([]fb.Customer, *customers)
	for i := range cs {
		cs[i] = fb.Customer{ID: fmt.Sprintf("cus-%04d", i), Name: fmt.Sprintf("Customer %d", i), CreatedAt: start}
	}
	if err := store.CreateCustomers(ctx, cs); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(cs))
	sem := make(chan struct{}, 64)
	for _, c := range cs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := a.Plans.Subscribe(ctx, c.ID, plan.ID); err != nil {
				errs <- err
				return
			}
			_, err := a.Engine.Submit(ctx, fb.Op{Kind: fb.OpGrant, Customer: c.ID, Key: "bench-buy", Amount: 1_000_000 * fb.Micro, Source: fb.SourcePurchase, PaidUSD: 10_000 * fb.Micro})
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	key, secret := keys.Mint(cs[0].ID, "bench", start, ids.New)
	if err := store.CreateKey(ctx, key); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d customers with a plan and a purchase in %s\n", len(cs), time.Since(t0).Round(time.Millisecond))

	t0 = time.Now()
	const perTx = 10_000
	for done := 0; done < *rows; {
		n := min(perTx, *rows-done)
		batch := make([]*fb.Usage, n)
		for i := range batch {
			k := done + i
			c := k % *customers
			if float64(k%1000) < *heavy*1000 {
				c = 0
			}
			m := models[(c+k/(*customers)%2)%len(models)] // each customer uses two models
			in, out := int64(100+k%900), int64(20+k%300)
			batch[i] = &fb.Usage{
				ID: fmt.Sprintf("req-%d", k), Source: "gateway", Customer: cs[c].ID, Model: m, Provider: providers[m], Plan: plan.ID,
				At:         start.Add(time.Duration(int64(span) / int64(*rows) * int64(k))),
				Quantities: fb.Quantities{InputTokens: in, OutputTokens: out, Requests: 1},
				Credits:    fb.Amount(in*250 + out*1000), CostUSD: fb.USD(in*2 + out*8), RevenueUSD: fb.USD(in*3 + out*10),
				KeyID: key.ID, Deployment: "bench", Latency: time.Duration(200+k%800) * time.Millisecond, TTFT: 80 * time.Millisecond, Status: "ok",
			}
		}
		if err := store.Write(ctx, func(tx fb.WriteTx) error { return tx.AppendUsage(ctx, batch) }); err != nil {
			return err
		}
		done += n
		if done%200_000 == 0 || done == *rows {
			fmt.Fprintf(stderr, "  %d rows written (%s)\n", done, time.Since(t0).Round(time.Second))
		}
	}
	fmt.Fprintf(stdout, "%d rows written in %s (usage rows and their daily sums, %d rows a transaction)\n", *rows, time.Since(t0).Round(time.Millisecond), perTx)
	if *dbURL != "" {
		// What autovacuum does a while after a bulk write, done now: the
		// pages are measured on a settled database, not beside a vacuum.
		t0 = time.Now()
		conn, err := pgx.Connect(ctx, *dbURL)
		if err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "VACUUM ANALYZE")
		conn.Close(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "VACUUM ANALYZE in %s\n", time.Since(t0).Round(time.Millisecond))
	}
	// The dashboard as of the last day of the rows.
	clock.Set(start.Add(span - time.Hour))

	h := a.Handler
	customer, err := benchSignIn(h, secret)
	if err != nil {
		return err
	}
	operator, err := benchSignIn(h, benchToken)
	if err != nil {
		return err
	}
	assets := map[string]int{}
	for _, p := range []string{"/ui/assets/style.css", "/ui/assets/app.js", "/ui/assets/icon.svg"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", p, nil))
		if w.Code != 200 {
			return fmt.Errorf("GET %s: %d", p, w.Code)
		}
		assets[p] = w.Body.Len()
	}
	pages := []struct{ side, path, cookie string }{
		{"customer", "/ui/account", customer},
		{"customer", "/ui/account/requests", customer},
		{"customer", "/ui/account/keys", customer},
		{"operator", "/ui/admin", operator},
		{"operator", "/ui/admin/customers", operator},
		{"operator", "/ui/admin/customers/" + cs[0].ID, operator},
		{"operator", "/ui/admin/system", operator},
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "page\tside\tfirst\tmedian\tp99\tCPU median\tHTML+SVG\t+CSS+JS+icon\t")
	for _, p := range pages {
		var ds, cpus []time.Duration
		var body []byte
		for range *runs + 1 {
			req := httptest.NewRequest("GET", p.path, nil)
			req.Header.Set("Cookie", p.cookie)
			w := httptest.NewRecorder()
			t, c := time.Now(), cpuTime()
			h.ServeHTTP(w, req)
			ds, cpus = append(ds, time.Since(t)), append(cpus, cpuTime()-c)
			if w.Code != http.StatusOK {
				return fmt.Errorf("GET %s: %d %s", p.path, w.Code, w.Body.String())
			}
			body = w.Body.Bytes()
		}
		// The first is apart: it may read into memory what the others find
		// there (serve does so at start, in the background).
		first := ds[0]
		ds, cpus = ds[1:], cpus[1:]
		slices.Sort(ds)
		slices.Sort(cpus)
		weight := len(body)
		for path, n := range assets {
			if strings.Contains(string(body), path) {
				weight += n
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", p.path, p.side, fmtMS(first), fmtMS(ds[len(ds)/2]), fmtMS(ds[(len(ds)*99)/100]),
			fmtMS(cpus[len(cpus)/2]), kb(len(body)), kb(weight))
		fmt.Fprintf(stderr, "  %s: median %s\n", p.path, fmtMS(ds[len(ds)/2]))
	}
	// The baseline: the same sums from the raw usage rows.
	from, to := start.Add(span).Truncate(24*time.Hour).AddDate(0, 0, -29), start.Add(span).Truncate(24*time.Hour).AddDate(0, 0, 1)
	base := func(f func() error) (time.Duration, error) {
		var ds []time.Duration
		for range min(*runs, 5) {
			t := time.Now()
			if err := f(); err != nil {
				return 0, err
			}
			ds = append(ds, time.Since(t))
		}
		slices.Sort(ds)
		return ds[len(ds)/2], nil
	}
	cb, err := base(func() error {
		_, err := store.Usage(ctx, fb.UsageFilter{Customer: cs[0].ID, From: from, To: to, GroupBy: fb.GroupDay})
		return err
	})
	if err != nil {
		return err
	}
	ob, err := base(func() error {
		for _, g := range []fb.GroupBy{fb.GroupDay, fb.GroupCustomer, fb.GroupModel, fb.GroupProvider} {
			if _, err := store.Usage(ctx, fb.UsageFilter{From: from, To: to, GroupBy: g}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(tw, "baseline: a customer's 30 days from raw rows\tcustomer\t\t%s\t\t\t\t\t\n", fmtMS(cb))
	fmt.Fprintf(tw, "baseline: the economics page's 4 groupings from raw rows\toperator\t\t%s\t\t\t\t\t\n", fmtMS(ob))
	tw.Flush()
	fmt.Fprintf(stdout, "%d requests of each page after the first (server time through the whole handler; CPU: the process's, user and system, over the request); goal: under 50ms and 150 KB each\n", *runs)
	return nil
}

func kb(n int) string { return fmt.Sprintf("%.1f KB", float64(n)/1024) }

var benchCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// benchSignIn signs in through the sign-in form and returns the session's
// Cookie header.
func benchSignIn(h http.Handler, secret string) (string, error) {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	m := benchCSRF.FindStringSubmatch(w.Body.String())
	if m == nil {
		return "", fmt.Errorf("the sign-in page has no form: %d", w.Code)
	}
	var jar []string
	for _, c := range w.Result().Cookies() {
		jar = append(jar, c.Name+"="+c.Value)
	}
	req := httptest.NewRequest("POST", "/ui/signin", strings.NewReader(url.Values{"csrf": {m[1]}, "secret": {secret}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", strings.Join(jar, "; "))
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	for _, c := range w.Result().Cookies() {
		if c.Name == "farebox_session" && c.Value != "" {
			return c.Name + "=" + c.Value, nil
		}
	}
	return "", fmt.Errorf("sign-in: %d %s", w.Code, w.Body.String())
}
