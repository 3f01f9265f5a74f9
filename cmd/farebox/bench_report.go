package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	fb "farebox"
	"farebox/app"
	"farebox/economics"
	"farebox/fakeclock"
)

// benchReport measures the economics report over many usage rows on a
// temporary SQLite database: the API's answer (read from the daily sums
// the write path keeps) for each grouping, against the baseline of the
// same sums computed from the raw usage rows.
func benchReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rows := fs.Int("rows", 1_000_000, "usage rows")
	customers := fs.Int("customers", 1000, "customers they belong to")
	days := fs.Int("days", 30, "days they are spread over")
	runs := fs.Int("runs", 11, "queries of each kind; the median is reported")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *rows < 1 || *customers < 1 || *days < 1 || *runs < 1 {
		return &exitError{2, fmt.Errorf("--rows, --customers, --days and --runs must be positive")}
	}
	dir, err := os.MkdirTemp("", "farebox-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	models := []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "llama-3.3-70b", "o3", "text-embedding-3-small"}
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	span := time.Duration(*days) * 24 * time.Hour
	// Farebox as of the end of the span, so that the report's range is
	// the rows'.
	a, err := app.New(ctx, app.Config{DataDir: dir, AdminToken: benchToken, Clock: fakeclock.New(start.Add(span)),
		Economics: economics.Config{CreditsPerUSD: 100, Shares: []economics.Share{{Partner: "meta", Models: []string{"llama-*"}, Percent: 20 * fb.Micro}}}})
	if err != nil {
		return err
	}
	defer a.Close()
	store := a.Store

	providers := map[string]string{"gpt-4o": "openai", "gpt-4o-mini": "openai", "claude-sonnet-4": "anthropic", "llama-3.3-70b": "gpu-pool", "o3": "openai", "text-embedding-3-small": "openai"}
	fmt.Fprintf(stdout, "farebox bench report: embedded SQLite, %d usage rows, %d customers, %d days, %d models\n", *rows, *customers, *days, len(models))
	t0 := time.Now()
	const perTx = 10_000
	for done := 0; done < *rows; {
		n := min(perTx, *rows-done)
		batch := make([]*fb.Usage, n)
		for i := range batch {
			k := done + i
			c := k % *customers
			m := models[(c+k/(*customers)%2)%len(models)] // each customer uses two models
			in, out := int64(100+k%900), int64(20+k%300)
			batch[i] = &fb.Usage{
				ID: fmt.Sprintf("req-%d", k), Source: "gateway", Customer: fmt.Sprintf("cus-%04d", c), Model: m, Provider: providers[m],
				At:         start.Add(time.Duration(int64(span) / int64(*rows) * int64(k))),
				Quantities: fb.Quantities{InputTokens: in, OutputTokens: out, Requests: 1},
				Credits:    fb.Amount(in*250 + out*1000), CostUSD: fb.USD(in*2 + out*8), RevenueUSD: fb.USD(in*3 + out*10),
				Status: "ok",
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

	h := a.Handler
	from, to := start.Format(time.DateOnly), start.Add(span).Format(time.DateOnly)
	median := func(f func() error) (time.Duration, error) {
		var ds []time.Duration
		for range *runs {
			t := time.Now()
			if err := f(); err != nil {
				return 0, err
			}
			ds = append(ds, time.Since(t))
		}
		slices.Sort(ds)
		return ds[len(ds)/2], nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "group_by\treport (daily sums, via the API)\tbaseline (raw rows)\tspeed-up\trows\t")
	for _, g := range []string{"customer", "model", "provider", "day"} {
		var nrows int
		report, err := median(func() error {
			req := httptest.NewRequest("GET", "/api/v1/reports/economics?from="+from+"&to="+to+"&group_by="+g, nil)
			req.Header.Set("Authorization", "Bearer "+benchToken)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				return fmt.Errorf("report by %s: %d %s", g, w.Code, w.Body.String())
			}
			var body struct {
				Rows []json.RawMessage `json:"rows"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				return err
			}
			nrows = len(body.Rows)
			return nil
		})
		if err != nil {
			return err
		}
		col := g
		base, err := median(func() error {
			_, err := store.Usage(ctx, fb.UsageFilter{From: start, To: start.Add(span), GroupBy: fb.GroupBy(col)})
			return err
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f×\t%d\t\n", g, fmtMS(report), fmtMS(base), float64(base)/float64(report), nrows)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "median of %d runs each; goal: a report under 200ms\n", *runs)
	return nil
}
