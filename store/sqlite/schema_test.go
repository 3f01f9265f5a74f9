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
