// Command farebox runs the Farebox server and its tools: serve, ledger
// verify, migrate, backup, restore, bench, simulate and the management
// commands; `farebox help` lists them.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "farebox:", err)
		os.Exit(exitCode(err))
	}
}
