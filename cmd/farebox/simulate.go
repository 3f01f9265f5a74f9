package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"farebox/simulator"
)

// simulate runs the simulator as a standalone OpenAI-compatible server.
func simulate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", envOr(getenv, "FAREBOX_SIMULATE_ADDR", "127.0.0.1:9090"), "listen address (port 0 picks a free one)")
	ttft := fs.Duration("ttft", 0, "time to first token (the response's headers)")
	tps := fs.Int("tps", 0, "streamed tokens per second after the first; 0: as fast as possible")
	models := fs.String("models", "", "models served, comma-separated; empty: any model")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *ttft < 0 || *tps < 0 {
		return &exitError{2, errors.New("--ttft and --tps must not be negative")}
	}
	sim := &simulator.Simulator{TTFT: *ttft, TokensPerSecond: *tps}
	if *models != "" {
		for _, m := range strings.Split(*models, ",") {
			if m = strings.TrimSpace(m); m != "" {
				sim.Models = append(sim.Models, m)
			}
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "simulator listening on http://%s/v1 (faults: header %s: 500|429|hang|disconnect|no_usage|malformed; length: %s: N)\n",
		ln.Addr(), simulator.FaultHeader, simulator.TokensHeader)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return nil
}
