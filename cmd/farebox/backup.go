package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"farebox/ledger"
	"farebox/store/postgres"
	"farebox/store/sqlite"
)

// backup is `farebox backup`: an online, consistent copy of the SQLite
// database, checked before it is reported written.
func backup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", envOr(getenv, "FAREBOX_DATA_DIR", "./farebox-data"), "the data directory whose database is copied [FAREBOX_DATA_DIR]")
	db := fs.String("db", getenv("FAREBOX_DB"), "the database `URL` instead: sqlite:///path (postgres://… prints the pg_dump command) [FAREBOX_DB]")
	to := fs.String("to", "", "the backup `FILE` to write; it must not exist")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if postgres.IsURL(*db) {
		file := *to
		if file == "" {
			file = "farebox.dump"
		}
		fmt.Fprintf(stderr, pgAdvice, redact(*db), file, file)
		return &exitError{2, errors.New("backup copies the embedded SQLite database; back PostgreSQL up with pg_dump, as above")}
	}
	if *to == "" {
		printHelp(stderr, fs)
		return &exitError{2, errors.New("backup needs --to FILE")}
	}
	if _, err := os.Lstat(*to); err == nil {
		return &exitError{2, fmt.Errorf("%s exists: a backup never overwrites a file; name a new one", *to)}
	}
	path, err := sqlitePath(*db, *dataDir)
	if err != nil {
		return &exitError{2, err}
	}
	// Read-only: no directory lock, so a server may go on running on it.
	s, err := sqlite.Open(ctx, path, sqlite.Options{ReadOnly: true})
	if err != nil {
		return &exitError{2, fmt.Errorf("cannot open the database: %w", err)}
	}
	defer s.Close()
	start := time.Now()
	if err := s.Backup(ctx, *to); err != nil {
		if errors.Is(err, os.ErrExist) {
			return &exitError{2, fmt.Errorf("%s exists: a backup never overwrites a file; name a new one", *to)}
		}
		return fmt.Errorf("backup of sqlite://%s: %w", path, err)
	}
	took := time.Since(start)
	info, err := sqlite.Inspect(ctx, *to)
	if err != nil {
		os.Remove(*to)
		return fmt.Errorf("the backup written to %s does not check, and was removed: %w", *to, err)
	}
	fmt.Fprintf(stdout, "backup of sqlite://%s written to %s in %s: %d journal entries, %d accounts, %s (schema version %d); integrity ok\n",
		path, *to, took.Round(time.Millisecond), info.Entries, info.Accounts, size(info.Bytes), info.SchemaVersion)
	fmt.Fprintf(stdout, "restore it with: farebox restore --from %s --data-dir NEW_DIR\n", *to)
	return nil
}

// pgAdvice is what backup says about PostgreSQL: its own tools take one
// consistent snapshot while replicas run, which is all backup would do.
const pgAdvice = `farebox backup copies the embedded SQLite database. PostgreSQL has its own tools,
which read one consistent snapshot while replicas keep running. With FAREBOX_DB the URL
of the database (%s):

  pg_dump --format=custom --file=%s "$FAREBOX_DB"

To restore: create a new, empty database (createdb farebox_restored), then, with NEW_DB its URL,

  pg_restore --no-owner --single-transaction --dbname="$NEW_DB" %s
  farebox ledger verify --db "$NEW_DB"

`

// sqlitePath is the database file a --db URL or data directory names.
func sqlitePath(dbURL, dataDir string) (string, error) {
	if dbURL == "" {
		return filepath.Join(dataDir, "farebox.db"), nil
	}
	if !strings.HasPrefix(dbURL, "sqlite:") {
		return "", fmt.Errorf("--db %q: want sqlite:///path or postgres://…", redact(dbURL))
	}
	return sqlite.PathFromURL(dbURL), nil
}

// restore is `farebox restore`: a backup into a new data directory,
// checked and verified, or nothing left there.
func restore(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the backup `FILE`, as farebox backup wrote it")
	dataDir := fs.String("data-dir", envOr(getenv, "FAREBOX_DATA_DIR", "./farebox-data"), "the data directory to restore into; it must not exist or be empty [FAREBOX_DATA_DIR]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *from == "" {
		printHelp(stderr, fs)
		return &exitError{2, errors.New("restore needs --from FILE")}
	}
	fi, err := os.Stat(*from)
	if err != nil {
		return &exitError{2, fmt.Errorf("cannot read the backup: %w", err)}
	}
	if !fi.Mode().IsRegular() {
		return &exitError{2, fmt.Errorf("%s is not a file", *from)}
	}
	// A backup is one self-contained file. A log beside it means a live
	// database's file, whose latest commits the copy would lack.
	if wal, err := os.Stat(*from + "-wal"); err == nil && wal.Size() > 0 {
		return &exitError{2, fmt.Errorf("%s has a write-ahead log beside it (%s-wal): it is a database in use, not a backup; make one with farebox backup", *from, *from)}
	}
	dir := *dataDir
	created, err := emptyDir(dir)
	if err != nil {
		return err
	}
	dst := filepath.Join(dir, "farebox.db")
	// Whatever fails from here leaves the directory as it was: a server
	// must never start on a copy that did not check and verify.
	undo := func() {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal", ".lock"} {
			os.Remove(dst + suffix)
		}
		if created {
			os.Remove(dir)
		}
	}
	if err := copyFile(*from, dst); err != nil {
		undo()
		return fmt.Errorf("restore: %w", err)
	}
	info, err := sqlite.Inspect(ctx, dst)
	if err != nil {
		undo()
		if errors.Is(err, sqlite.ErrDamaged) {
			return fmt.Errorf("the backup %s is damaged; nothing was restored: %w", *from, err)
		}
		return &exitError{2, fmt.Errorf("cannot restore %s; nothing was restored: %w", *from, err)}
	}
	fmt.Fprintf(stdout, "copied %s to %s: %d journal entries, %d accounts, %s (schema version %d); integrity ok\n",
		*from, dst, info.Entries, info.Accounts, size(info.Bytes), info.SchemaVersion)
	if info.SchemaVersion < sqlite.SchemaVersion() {
		// What serve would do at its first start; verification reads the
		// current schema only.
		s, err := sqlite.Open(ctx, dst, sqlite.Options{})
		if err != nil {
			undo()
			return fmt.Errorf("migrating the restored copy; nothing was restored: %w", err)
		}
		s.Close()
		fmt.Fprintf(stdout, "schema migrated from version %d to %d\n", info.SchemaVersion, sqlite.SchemaVersion())
	}
	s, err := sqlite.Open(ctx, dst, sqlite.Options{ReadOnly: true})
	if err != nil {
		undo()
		return fmt.Errorf("cannot open the restored copy; nothing was restored: %w", err)
	}
	rep, err := ledger.Verify(ctx, s)
	s.Close()
	if err != nil {
		undo()
		return fmt.Errorf("cannot read the restored copy; nothing was restored: %w", err)
	}
	if !printVerify(stdout, "sqlite://"+dst, rep) {
		undo()
		return &exitError{1, fmt.Errorf("the backup's ledger does not verify, so nothing was restored into %s ('farebox ledger verify --db sqlite://%s' shows the same on the backup)", dir, *from)}
	}
	fmt.Fprintf(stdout, "restored into %s; serve it with: farebox serve --data-dir %s\n"+
		"(the admin token is not in a backup: set FAREBOX_ADMIN_TOKEN or copy the old admin-token file, else serve generates a new one)\n", dir, dir)
	return nil
}

// emptyDir makes sure dir does not exist or is empty, creating it 0700,
// and reports whether it created it.
func emptyDir(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, err
		}
		return true, nil
	case err != nil:
		return false, &exitError{2, fmt.Errorf("cannot restore into %s: %w", dir, err)}
	case len(entries) > 0:
		var names []string
		for _, e := range entries[:min(len(entries), 3)] {
			names = append(names, e.Name())
		}
		return false, &exitError{2, fmt.Errorf("%s is not empty (it holds %s): restore only into a new or empty directory, so that it can never replace a ledger", dir, strings.Join(names, ", "))}
	}
	return false, nil
}

// copyFile copies from to a new file to, 0600, and syncs the file and its
// directory before reporting it done.
func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(to))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// size is a byte count for people.
func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
