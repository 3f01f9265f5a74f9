package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/ledger"
	"farebox/store/sqlite"
)

// TestBackupBesideWriter: a store opened read-only (no directory lock)
// backs up the database while the writer commits; the copy is private,
// passes its checks and is one committed state whose ledger verifies.
func TestBackupBesideWriter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w := open(t, filepath.Join(dir, "farebox.db"), sqlite.Options{})
	defer w.Close()
	seed(t, w)
	e := ledger.NewEngine(w, ledger.Config{})
	defer e.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := e.Submit(ctx, fb.Op{Kind: fb.OpGrant, Customer: "cus_a", Amount: 1, Source: fb.SourcePromo}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	time.Sleep(50 * time.Millisecond)
	r := open(t, filepath.Join(dir, "farebox.db"), sqlite.Options{ReadOnly: true})
	defer r.Close()
	to := filepath.Join(t.TempDir(), "backup.db")
	err := r.Backup(ctx, to)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup beside the writer: %v", err)
	}
	fi, err := os.Stat(to)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("backup mode %v, want 0600", got)
	}
	info, err := sqlite.Inspect(ctx, to)
	if err != nil {
		t.Fatalf("inspect the backup: %v", err)
	}
	if info.Entries < 3 || info.Accounts != 1 || info.SchemaVersion != sqlite.SchemaVersion() || info.Bytes != fi.Size() {
		t.Errorf("inspect: %+v, want ≥3 entries (seed and grants), 1 account, schema %d, %d bytes", info, sqlite.SchemaVersion(), fi.Size())
	}
	b := open(t, to, sqlite.Options{ReadOnly: true})
	defer b.Close()
	rep, err := ledger.Verify(ctx, b)
	if err != nil || len(rep.Problems) != 0 || int64(rep.Entries) != info.Entries {
		t.Fatalf("verify the backup: %+v, %v; want no problems over %d entries", rep, err, info.Entries)
	}
	// The source lives on, and a second backup to the same name is refused
	// and leaves the first as it was.
	before, _ := os.ReadFile(to)
	if err := r.Backup(ctx, to); !errors.Is(err, os.ErrExist) {
		t.Fatalf("backup over an existing file: %v, want os.ErrExist", err)
	}
	if after, _ := os.ReadFile(to); string(after) != string(before) {
		t.Fatal("a refused backup changed the existing file")
	}
}

// TestInspectRefuses: Inspect tells a damaged database, a file that is not
// SQLite and an SQLite file that is not Farebox's apart.
func TestInspectRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "farebox.db"), sqlite.Options{})
	seed(t, s)
	good := filepath.Join(dir, "good.db")
	if err := s.Backup(ctx, good); err != nil {
		t.Fatal(err)
	}
	s.Close()

	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// Every page after the first (the schema) overwritten.
	for i := 4096; i < len(b); i++ {
		b[i] = 0x55
	}
	damaged := filepath.Join(dir, "damaged.db")
	os.WriteFile(damaged, b, 0o600)
	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, []byte("this is not a database, though it is long enough to look like one to a careless reader......"), 0o600)
	other := filepath.Join(dir, "other.db")
	db, err := sql.Open("sqlite", other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE x (y)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	for _, c := range []struct {
		path string
		want error
	}{
		{damaged, sqlite.ErrDamaged},
		{garbage, sqlite.ErrNotFarebox},
		{other, sqlite.ErrNotFarebox},
		{filepath.Join(dir, "missing.db"), os.ErrNotExist},
	} {
		if _, err := sqlite.Inspect(ctx, c.path); !errors.Is(err, c.want) {
			t.Errorf("inspect %s: %v, want %v", filepath.Base(c.path), err, c.want)
		}
	}
	if info, err := sqlite.Inspect(ctx, good); err != nil || info.Entries != 2 || info.Accounts != 1 {
		t.Errorf("inspect good.db: %+v, %v; want 2 entries, 1 account", info, err)
	}
}
