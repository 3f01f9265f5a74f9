package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestOlderSchema: a database of an older schema version is not "not a
// farebox database": Inspect accepts it and says its version, a read-only
// open says to migrate, and a writable open migrates it.
func TestOlderSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "farebox.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	old := schemaVersion - 1
	for _, m := range migrations[:old] {
		if _, err := db.Exec(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", old)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	info, err := Inspect(ctx, path)
	if err != nil || info.SchemaVersion != old {
		t.Fatalf("inspect: %+v, %v; want schema version %d", info, err, old)
	}
	if _, err := Open(ctx, path, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "older") || !strings.Contains(err.Error(), "migrate") {
		t.Fatalf("read-only open of an older schema: %v, want advice to migrate", err)
	}
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if info, err := Inspect(ctx, path); err != nil || info.SchemaVersion != schemaVersion {
		t.Fatalf("after migrating: %+v, %v; want schema version %d", info, err, schemaVersion)
	}
}

// TestPriceWithoutCacheWrite: a rate card version stored before the card
// had a cache-write rate (schema version 5, its document without the
// field) migrates, and reads with the default, 1.25 × its input rate; a
// version stored with one keeps it, 0 included.
func TestPriceWithoutCacheWrite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "farebox.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations[:5] {
		if _, err := db.Exec(m); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		`PRAGMA user_version = 5`,
		`INSERT INTO prices (model, effective_from, price) VALUES ('old', 1, '{"model":"old","input_per_mtok":"3","output_per_mtok":"15","cached_input_per_mtok":"0.3","reasoning_per_mtok":"15","effective_from":"2025-01-01T00:00:00Z","created_at":"2025-01-01T00:00:00Z"}')`,
		`INSERT INTO prices (model, effective_from, price) VALUES ('zero', 1, '{"model":"zero","input_per_mtok":"3","cache_write_per_mtok":"0","effective_from":"2025-01-01T00:00:00Z","created_at":"2025-01-01T00:00:00Z"}')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ps, err := s.Prices(ctx)
	if err != nil || len(ps) != 2 {
		t.Fatalf("prices %+v, %v", ps, err)
	}
	if got := ps[0].CacheWritePerMTok.String(); ps[0].Model != "old" || got != "3.75" {
		t.Errorf("%s: cache write %s, want 3.75 (1.25 × 3)", ps[0].Model, got)
	}
	if got := ps[1].CacheWritePerMTok.String(); got != "0" {
		t.Errorf("%s: cache write %s, want the 0 stored", ps[1].Model, got)
	}
}
