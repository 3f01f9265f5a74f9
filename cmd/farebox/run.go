package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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

// parseFlags parses a command's flags; a usage error, and any argument
// left over, exit 2.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return &exitError{2, err}
	}
	if fs.NArg() > 0 {
		return &exitError{2, fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

const usage = `farebox sells AI by usage: a credits ledger, metering and an OpenAI-compatible gateway.

Usage:
  farebox serve [flags]          run the server (embedded SQLite in ./farebox-data)
  farebox ledger verify [flags]  replay the journal and compare it with stored state
  farebox migrate [flags]        bring the database's schema up to date (serve does it too)
  farebox bench ledger [flags]   measure the ledger: hold+capture pairs per second
  farebox bench events [flags]   measure metering: accepted events per second
  farebox bench gateway [flags]  measure the gateway against the simulator and a bare reverse proxy
  farebox bench report [flags]   measure the economics report over 1,000,000 usage rows
  farebox simulate [flags]       run the simulator: an OpenAI-compatible upstream with fault modes
  farebox help                   this text

Run 'farebox <command> -h' for a command's flags.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return &exitError{2, errors.New("no command given")}
	}
	rest := args[2:]
	switch args[1] {
	case "serve":
		return serve(ctx, rest, getenv, stdout, stderr)
	case "ledger":
		if len(rest) == 0 || rest[0] != "verify" {
			fmt.Fprint(stderr, usage)
			return &exitError{2, errors.New("usage: farebox ledger verify [--data-dir DIR | --db URL]")}
		}
		return verify(ctx, rest[1:], getenv, stdout, stderr)
	case "simulate":
		return simulate(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, rest, getenv, stdout, stderr)
	case "bench":
		switch {
		case len(rest) > 0 && rest[0] == "ledger":
			return benchLedger(ctx, rest[1:], stdout, stderr)
		case len(rest) > 0 && rest[0] == "events":
			return benchEvents(ctx, rest[1:], stdout, stderr)
		case len(rest) > 0 && rest[0] == "gateway":
			return benchGateway(ctx, rest[1:], stdout, stderr)
		case len(rest) > 0 && rest[0] == "report":
			return benchReport(ctx, rest[1:], stdout, stderr)
		}
		return &exitError{2, errors.New("usage: farebox bench ledger|events|gateway|report [flags]")}
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage+"\n"+cliUsage)
		return nil
	}
	if cliCommands[args[1]] {
		return cli(ctx, args[1], rest, getenv, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return &exitError{2, fmt.Errorf("unknown command %q", args[1])}
}
