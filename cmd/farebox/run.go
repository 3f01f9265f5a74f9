package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// exitError carries a process exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// runFunc is what every command runs.
type runFunc func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// command is one verb of the binary: how it is called, what it does (the
// first line is its summary in `farebox help`) and what runs it.
type command struct {
	name     string // "serve", "ledger verify", "plans create"
	synopsis string // what follows the name on its usage line
	about    string
	group    string
	run      runFunc
}

const (
	groupServer = "Server and data"
	groupBench  = "Benchmarks (their flags, workloads and columns are stable: scripts parse them)"
	groupAPI    = "Management (over the API of a running server: --server, --token, --json)"
)

// commands lists every command in the order help shows them. It is a
// function, not a variable, because the commands' own flag parsing looks
// their help up here (an initialisation cycle otherwise).
func commands() []command {
	cs := []command{
		{name: "serve", group: groupServer, run: serve,
			synopsis: "[--config FILE] [--addr HOST:PORT] [--data-dir DIR] [--db sqlite:///path | postgres://…] [--demo] [flags]",
			about: `Run the server: management API, gateway, dashboard.
It serves the management API, the OpenAI-compatible gateway and the dashboard. The
ledger is embedded SQLite in the data directory unless --db names PostgreSQL.
FAREBOX_ADMIN_TOKEN (or admin_token in the config) sets the admin token, of at least
32 characters; without one, a token is generated into <data-dir>/admin-token (0600).`},
		{name: "ledger verify", group: groupServer, run: verify,
			synopsis: "[--data-dir DIR | --db URL]",
			about: `Replay the journal and compare it with stored state.
It replays the journal from nothing and compares it with every stored account, lot and
hold. Exit 0 consistent, 1 mismatch, 2 cannot open. Safe on a live server's data.`},
		{name: "migrate", group: groupServer, run: migrate,
			synopsis: "[--data-dir DIR | --db URL]",
			about: `Bring the database's schema up to date.
It applies the schema migrations the database lacks. Serve does it at start too, under
a lock; this is for doing it ahead of a rollout.`},
		{name: "backup", group: groupServer, run: backup,
			synopsis: "--to FILE [--data-dir DIR | --db sqlite:///path]",
			about: `Copy the SQLite database to FILE, online and consistent.
A server may be running on the data directory. The copy is one committed state of the
ledger (SQLite's VACUUM INTO, read in one transaction, without the directory's lock).
FILE must not exist; it is written 0600, synced, checked (integrity_check) and what it
holds is printed. For PostgreSQL (--db postgres://…) it prints the pg_dump and
pg_restore commands to use instead, and exits 2.`},
		{name: "restore", group: groupServer, run: restore,
			synopsis: "--from FILE [--data-dir DIR]",
			about: `Restore a backup into a new data directory and verify it.
DIR must not exist or be empty. FILE is copied to DIR/farebox.db (0600, synced), checked
(integrity, schema version; an older schema is migrated) and its journal replayed as
'ledger verify' does. Exit 0 verified, 1 damaged or not verified (nothing is left in DIR),
2 usage (a non-empty DIR, a missing FILE). The admin token and the spool are not in a backup.`},
		{name: "simulate", group: groupServer, run: simulate,
			synopsis: "[--addr HOST:PORT] [--ttft D] [--tps N] [--models M,…]",
			about: `Run the simulator: an OpenAI-compatible upstream.
It answers with deterministic text and usage, and with faults per request on the header
X-Farebox-Simulate: 500|429|hang|disconnect|no_usage|malformed.`},
		{name: "bench ledger", group: groupBench, run: bench(benchLedger), synopsis: "[flags]",
			about: `Measure the ledger: hold+capture pairs per second.
Pairs per second and acknowledgement latency, batched and unbatched, in-process and over
HTTP, uniform over many customers and on one hot customer.`},
		{name: "bench events", group: groupBench, run: bench(benchEvents), synopsis: "[flags]",
			about: `Measure metering: accepted events per second.
Batches of 1 and 100, new and duplicate events.`},
		{name: "bench gateway", group: groupBench, run: bench(benchGateway), synopsis: "[flags]",
			about: `Measure the gateway against a bare reverse proxy.
Requests per second and latency through Farebox, against the simulator directly and a
bare httputil.ReverseProxy, stream and not.`},
		{name: "bench leases", group: groupBench, run: bench(benchLeases), synopsis: "[flags]",
			about: `Measure lease admission: bookings per second, durable with their holds.
A year of reserved, on-demand and spot bookings on one pool by concurrent callers, each
admitted (or refused with the instant that lacks GPUs) in the transaction of its first
hold, batched and one per transaction; then no instant may be overbooked.`},
		{name: "bench report", group: groupBench, run: bench(benchReport), synopsis: "[flags]",
			about: `Measure the economics report over many usage rows.
The report's queries over daily sums, against aggregating the raw rows.`},
		{name: "bench ui", group: groupBench, run: bench(benchUI), synopsis: "[flags]",
			about: `Measure the dashboard's pages over many usage rows.
Server time (median, p99) and weight of each customer and operator page, against summing
the raw rows.`},
		{name: "bench sponsored", group: groupBench, run: bench(benchSponsored), synopsis: "[flags]",
			about: `Measure the sponsored decision of a request.
The decision-moment classifier and the matching against every campaign, per request, in
process: p50, p99 and max, against a substring scan of every campaign's phrases.`},
	}
	for _, c := range append(cliCommands(), leaseCommands()...) {
		cs = append(cs, command{name: c.name, synopsis: c.synopsis, about: c.about, group: groupAPI, run: c.runner()})
	}
	return cs
}

// bench adapts a bench command, which needs no environment.
func bench(f func(ctx context.Context, args []string, stdout, stderr io.Writer) error) runFunc {
	return func(ctx context.Context, args []string, _ func(string) string, stdout, stderr io.Writer) error {
		return f(ctx, args, stdout, stderr)
	}
}

// defaultVerb is what a group alone means: `farebox plans` lists plans.
var defaultVerb = map[string]string{"plans": "list", "customers": "list", "prices": "list", "pools": "list", "leases": "list"}

// lookup finds the command args name: one word or two. It returns the
// command and the arguments that follow its name.
func lookup(args []string) (command, []string, bool) {
	cs := commands()
	find := func(name string) (command, bool) {
		for _, c := range cs {
			if c.name == name {
				return c, true
			}
		}
		return command{}, false
	}
	if len(args) == 0 {
		return command{}, nil, false
	}
	if len(args) > 1 {
		if c, ok := find(args[0] + " " + args[1]); ok {
			return c, args[2:], true
		}
	}
	if c, ok := find(args[0]); ok {
		return c, args[1:], true
	}
	if v, ok := defaultVerb[args[0]]; ok && (len(args) == 1 || strings.HasPrefix(args[1], "-")) && !wantsHelp(args[1:]) {
		c, _ := find(args[0] + " " + v)
		return c, args[1:], true
	}
	return command{}, nil, false
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		printUsage(stderr)
		return &exitError{2, errors.New("no command given")}
	}
	switch args[1] {
	case "help", "-h", "-help", "--help":
		return help(ctx, args[2:], getenv, stdout)
	}
	c, rest, ok := lookup(args[1:])
	if !ok {
		if len(args) > 2 && isGroup(args[1]) && wantsHelp(args[2:]) {
			return help(ctx, args[1:2], getenv, stdout)
		}
		printUsage(stderr)
		name := args[1]
		if isGroup(name) && len(args) > 2 && !strings.HasPrefix(args[2], "-") {
			name += " " + args[2]
		}
		return &exitError{2, fmt.Errorf("unknown command %q", name)}
	}
	if wantsHelp(rest) {
		return showHelp(ctx, c, getenv, stdout)
	}
	err := c.run(ctx, rest, getenv, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // the help was asked for, and shown
	}
	return err
}
