package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	fb "farebox"
	"farebox/ledger"
	"farebox/store/sqlite"
	"farebox/store/storetest"
)

func open(t *testing.T, path string, opts sqlite.Options) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) fb.Store {
		return open(t, filepath.Join(t.TempDir(), "farebox.db"), sqlite.Options{})
	})
}

// seed writes one customer with a grant and a hold through the engine.
func seed(t *testing.T, s fb.Store) {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateCustomer(ctx, fb.Customer{ID: "cus_a", Name: "A", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	e := ledger.NewEngine(s, ledger.Config{})
	defer e.Close()
	if _, err := e.Submit(ctx, fb.Op{Kind: fb.OpGrant, Customer: "cus_a", Amount: 10_000_000, Source: fb.SourcePurchase}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Submit(ctx, fb.Op{Kind: fb.OpHold, Customer: "cus_a", Amount: 1_000_000, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
}

// TestOneWriter: a second writer on the same file is refused while the
// first is open, and allowed once it closed.
func TestOneWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "farebox.db")
	s := open(t, path, sqlite.Options{})
	_, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if !errors.Is(err, sqlite.ErrLocked) {
		t.Fatalf("second writer: %v", err)
	}
	if !strings.Contains(err.Error(), "in use by another farebox process") {
		t.Fatalf("unclear message: %v", err)
	}
	s.Close()
	s = open(t, path, sqlite.Options{})
	s.Close()
}

// TestReadOnlyBesideWriter: verify opens a live server's database read-only
// and sees a consistent snapshot.
func TestReadOnlyBesideWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "farebox.db")
	w := open(t, path, sqlite.Options{})
	defer w.Close()
	seed(t, w)
	r := open(t, path, sqlite.Options{ReadOnly: true})
	defer r.Close()
	rep, err := ledger.Verify(context.Background(), r)
	if err != nil || len(rep.Problems) != 0 || rep.Entries != 2 {
		t.Fatalf("verify beside the writer: %+v, %v", rep, err)
	}
	if err := r.Write(context.Background(), func(fb.WriteTx) error { return nil }); err == nil {
		t.Fatal("a read-only store accepted a write")
	}
	if err := r.CreateCustomer(context.Background(), fb.Customer{ID: "cus_x"}); err == nil {
		t.Fatal("a read-only store created a customer")
	}
	if _, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "missing.db"), sqlite.Options{ReadOnly: true}); err == nil {
		t.Fatal("read-only open of a missing file succeeded")
	}
}

// TestJournalAppendOnly: the database itself refuses to change the journal.
func TestJournalAppendOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "farebox.db")
	s := open(t, path, sqlite.Options{})
	seed(t, s)
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range []string{`UPDATE journal SET result = '{}'`, `DELETE FROM journal`} {
		_, err := db.Exec(stmt)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v", stmt, err)
		}
	}
}

// TestNotAFareboxDatabase: verify refuses a file that is not ours.
func TestNotAFareboxDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE x (y)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := sqlite.Open(context.Background(), path, sqlite.Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "not a farebox database") {
		t.Fatalf("open: %v", err)
	}
}

func TestPathFromURL(t *testing.T) {
	for in, want := range map[string]string{
		"sqlite:///var/lib/farebox.db": "/var/lib/farebox.db",
		"sqlite://data/farebox.db":     "data/farebox.db",
		"sqlite:data/farebox.db":       "data/farebox.db",
		"/abs/farebox.db":              "/abs/farebox.db",
	} {
		if got := sqlite.PathFromURL(in); got != want {
			t.Errorf("PathFromURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestFileModes: the database and its -wal and -shm files are private to
// their owner (0600), also in a data directory that already exists and
// under the usual umask 022, which gives SQLite's own files 0644 (security
// review, finding 16).
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "farebox.db")
	s := open(t, path, sqlite.Options{})
	defer s.Close()
	seed(t, s) // writes, so the WAL has frames
	for _, suffix := range []string{"", "-wal", "-shm"} {
		fi, err := os.Stat(path + suffix)
		if err != nil {
			t.Fatalf("stat %s: %v", path+suffix, err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("farebox.db%s: mode %v, want 0600", suffix, got)
		}
	}
}
