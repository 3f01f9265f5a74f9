package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"farebox/ledger"
)

// verify replays the journal: exit 0 consistent, 1 mismatch, 2 cannot open.
func verify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ledger verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", envOr(getenv, "FAREBOX_DATA_DIR", "./farebox-data"), "data directory [FAREBOX_DATA_DIR]")
	db := fs.String("db", getenv("FAREBOX_DB"), "database URL [FAREBOX_DB]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	store, where, _, err := openStore(ctx, *db, *dataDir, true)
	if err != nil {
		return &exitError{2, fmt.Errorf("cannot open the database: %w", err)}
	}
	defer store.Close()
	rep, err := ledger.Verify(ctx, store)
	if err != nil {
		return &exitError{2, fmt.Errorf("cannot read %s: %w", where, err)}
	}
	if !printVerify(stdout, where, rep) {
		return &exitError{1, errors.New("the stored state differs from the journal")}
	}
	return nil
}

// printVerify prints a verification's outcome and reports whether the
// stored state is exactly the journal's.
func printVerify(w io.Writer, where string, rep *ledger.Report) bool {
	fmt.Fprintf(w, "%s: replayed %d journal entries over %d accounts, %d lots, %d holds\n", where, rep.Entries, rep.Accounts, rep.Lots, rep.Holds)
	if rep.LegacyOverCaptures > 0 {
		fmt.Fprintf(w, "note: %d captures above their hold from before allow_over_capture was required, replayed as they were made\n", rep.LegacyOverCaptures)
	}
	if len(rep.Problems) == 0 {
		fmt.Fprintln(w, "ok: the stored state is exactly the journal's")
		return true
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(w, "MISMATCH:", p)
	}
	return false
}

// migrate opens the database, which applies the migrations it lacks, and
// says so. Replicas also migrate at start, under a lock; this is for doing
// it ahead of a rollout.
func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", envOr(getenv, "FAREBOX_DATA_DIR", "./farebox-data"), "data directory [FAREBOX_DATA_DIR]")
	db := fs.String("db", getenv("FAREBOX_DB"), "database URL [FAREBOX_DB]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	store, where, _, err := openStore(ctx, *db, *dataDir, false)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer store.Close()
	fmt.Fprintf(stdout, "%s: schema up to date\n", where)
	return nil
}
