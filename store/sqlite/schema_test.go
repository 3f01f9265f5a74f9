package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
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
// had a cache-write rate (the schema before the cache-write migration,
// schemaV8, its document without the field) migrates, and reads with the
// default, 1.25 × its input rate; a version stored with one keeps it, 0
// included; usage rows gain their cache writes, 0 for the old ones.
func TestPriceWithoutCacheWrite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "farebox.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	// The migration is found by its text, not its number: a renumbering
	// when branches land leaves this test as it is.
	before := slices.Index(migrations, schemaV8)
	if before < 0 {
		t.Fatal("the cache-write migration is not in the list")
	}
	for _, m := range migrations[:before] {
		if _, err := db.Exec(m); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		fmt.Sprintf(`PRAGMA user_version = %d`, before),
		`INSERT INTO prices (model, effective_from, price) VALUES ('old', 1, '{"model":"old","input_per_mtok":"3","output_per_mtok":"15","cached_input_per_mtok":"0.3","reasoning_per_mtok":"15","effective_from":"2025-01-01T00:00:00Z","created_at":"2025-01-01T00:00:00Z"}')`,
		`INSERT INTO usage_rows (id, source, customer, model, provider, at, day, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, images, audio_us, video_us, gpu_us, requests, credits, cost_usd) VALUES ('u1', 'gateway', 'c', 'old', 'p', 1, '1970-01-01', 10, 5, 0, 0, 0, 0, 0, 0, 1, 7, 0)`,
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
	var writes int64
	if err := s.r.QueryRowContext(ctx, `SELECT cache_write_tokens FROM usage_rows WHERE id = 'u1'`).Scan(&writes); err != nil || writes != 0 {
		t.Errorf("an old usage row's cache writes: %d, %v; want 0", writes, err)
	}
}
