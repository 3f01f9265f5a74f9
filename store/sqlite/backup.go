package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrDamaged is returned by Inspect for a file that fails SQLite's
// integrity check.
var ErrDamaged = errors.New("the database file is damaged")

// ErrNotFarebox is returned by Inspect for a file that is not a Farebox
// database (not SQLite, or no Farebox schema).
var ErrNotFarebox = errors.New("not a farebox database")

// SchemaVersion is the schema version this build writes; Open migrates an
// older database to it.
func SchemaVersion() int { return schemaVersion }

// readOnlyDB opens path for reading only, on a pool of its own. mode=ro,
// not the readers' query_only: VACUUM INTO writes only its new file, yet
// query_only refuses it.
func readOnlyDB(path string) (*sql.DB, error) {
	q := url.Values{}
	q.Add("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	return sql.Open("sqlite", "file:"+path+"?"+q.Encode())
}

// Backup writes a consistent copy of the database to path, which must not
// exist. VACUUM INTO reads in one transaction, so the copy is one committed
// state even while the writer commits (WAL readers never block it), and
// it needs no directory lock: a store opened ReadOnly beside a live server
// can take it. path is created 0600 before SQLite writes into it (SQLite
// keeps an existing file's mode, and accepts an empty one) and removed if
// the backup fails. SQLite does not sync VACUUM INTO's output; Backup
// syncs the file and its directory, so a backup it reports survives a
// power loss.
func (s *Store) Backup(ctx context.Context, path string) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()
	db, err := readOnlyDB(s.path)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		return fmt.Errorf("VACUUM INTO %s: %w", path, err)
	}
	if err := syncPath(path); err != nil {
		return err
	}
	return syncPath(filepath.Dir(path))
}

// syncPath fsyncs a file or a directory (a directory's sync makes a new
// entry in it durable).
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Info is what a database file holds.
type Info struct {
	SchemaVersion int
	Entries       int64 // journal entries
	Accounts      int64
	Bytes         int64 // the file's size
}

// Inspect checks the database file at path without writing to it or
// taking a lock: every page and index (PRAGMA integrity_check), then a
// schema version this build knows. An older version is no error (Open
// migrates it); Info.SchemaVersion says which it is.
func Inspect(ctx context.Context, path string) (Info, error) {
	var info Info
	fi, err := os.Stat(path)
	if err != nil {
		return info, err
	}
	info.Bytes = fi.Size()
	db, err := readOnlyDB(path)
	if err != nil {
		return info, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return info, inspectError(path, err)
	}
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return info, inspectError(path, err)
		}
		if line != "ok" && len(problems) < 5 {
			problems = append(problems, line)
		}
	}
	if err := rows.Close(); err != nil {
		return info, inspectError(path, err)
	}
	if err := rows.Err(); err != nil {
		return info, inspectError(path, err)
	}
	if len(problems) > 0 {
		return info, fmt.Errorf("%w: %s: %s", ErrDamaged, path, strings.Join(problems, "; "))
	}
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&info.SchemaVersion); err != nil {
		return info, inspectError(path, err)
	}
	switch v := info.SchemaVersion; {
	case v == 0:
		return info, fmt.Errorf("%s: %w (schema version 0)", path, ErrNotFarebox)
	case v > schemaVersion:
		return info, fmt.Errorf("%s has schema version %d, newer than this farebox's %d: use a farebox at least as new as the one that wrote it", path, v, schemaVersion)
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM journal").Scan(&info.Entries); err != nil {
		return info, inspectError(path, err)
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM accounts").Scan(&info.Accounts); err != nil {
		return info, inspectError(path, err)
	}
	return info, nil
}

// inspectError tells a file that is not SQLite at all, or not Farebox's,
// from a damaged one; other errors (a permission, a cancelled context)
// are neither.
func inspectError(path string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch {
		case se.Code()&0xff == sqlite3.SQLITE_NOTADB, strings.Contains(err.Error(), "no such table"):
			return fmt.Errorf("%s: %w (%v)", path, ErrNotFarebox, err)
		case se.Code()&0xff == sqlite3.SQLITE_CORRUPT:
			return fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
		}
	}
	return fmt.Errorf("%s: %w", path, err)
}
