package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	fb "farebox"
	"farebox/ledger"
	"farebox/store/sqlite"
)

// runBin runs the binary with args and returns its exit code and output.
func runBin(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// journalRow is one journal row as stored.
type journalRow struct {
	seq                     int64
	op, fingerprint, result string
}

// journalRows reads a database's journal, in order, beside any server.
func journalRows(t *testing.T, path string) []journalRow {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT seq, op, fingerprint, result FROM journal ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []journalRow
	for rows.Next() {
		var r journalRow
		if err := rows.Scan(&r.seq, &r.op, &r.fingerprint, &r.result); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// replayedBalances replays the first n journal entries of the database at
// path from nothing and returns each customer's balance as the API shows
// it at now: the state the ledger had right after entry n.
func replayedBalances(t *testing.T, path string, n int, now time.Time) map[string]string {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	accts := map[string]*fb.Account{}
	touched := ledger.NewTouched()
	seen := 0
	if _, err := st.Snapshot(context.Background(), func(e *fb.JournalEntry) error {
		if seen++; seen > n {
			return nil
		}
		a := accts[e.Op.Customer]
		if a == nil {
			a = fb.NewAccount(e.Op.Customer)
			accts[e.Op.Customer] = a
		}
		if e.Op.Kind == fb.OpExpire {
			ledger.Advance(a, e.Op.At, touched)
			return nil
		}
		_, err := ledger.Replay(a, &e.Op, touched)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for c, a := range accts {
		ledger.SortLots(a.Lots)
		ledger.Advance(a, now, nil)
		out[c] = balanceLine(max(ledger.Available(a, now), 0), ledger.Held(a))
	}
	return out
}

func balanceLine(available, held fb.Amount) string {
	return fmt.Sprintf("available %s held %s", available, held)
}

// servedBalances reads each customer's balance from a server.
func servedBalances(t *testing.T, c *client, customers []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, cus := range customers {
		b := c.must(t, "GET", "/api/v1/customers/"+cus+"/balance", "", "", 200)
		out[cus] = balanceLine(amountField(t, b, "available"), amountField(t, b, "held"))
	}
	return out
}

// TestBackupRestoreUnderLoad takes a backup with the real binary while a
// server on the data directory grants, holds, captures and releases under
// load, restores it into a new directory, and proves the copy is one state
// the source had: its journal is exactly the source's first n entries, it
// verifies, and a server on it serves the balances a replay of those n
// entries gives. Backup never overwrites a file; restore never writes into
// a directory that is not empty.
func TestBackupRestoreUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary under load")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "farebox.db")
	p := startServe(t, dir)
	c := newClient(p.url)
	var customers []string
	for i := range 8 {
		id := fmt.Sprintf("bk-%d", i)
		c.must(t, "POST", "/api/v1/customers", `{"id":"`+id+`"}`, "", 201)
		c.must(t, "POST", "/api/v1/customers/"+id+"/grants", `{"amount":"100","source":"purchase","paid_usd":"1"}`, "", 201)
		customers = append(customers, id)
	}

	// Concurrent grants, holds, captures and releases until stopped.
	var stop atomic.Bool
	var ops atomic.Int64
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for n := 0; !stop.Load(); n++ {
				cus := customers[(w+n)%len(customers)]
				key := fmt.Sprintf("w%d-n%d", w, n)
				if st, b, err := c.call(context.Background(), "POST", "/api/v1/customers/"+cus+"/grants", `{"amount":"1","source":"purchase","paid_usd":"0.01"}`, key+"-g"); err != nil || st != 201 {
					t.Errorf("grant: %d %v %v", st, b, err)
					return
				}
				st, h, err := c.call(context.Background(), "POST", "/api/v1/holds", `{"customer":"`+cus+`","amount":"0.5","ttl_seconds":3600}`, key+"-h")
				if err != nil || st != 201 {
					t.Errorf("hold: %d %v %v", st, h, err)
					return
				}
				path, body, want := "/api/v1/holds/"+str(h, "id")+"/release", "", 200
				if n%2 == 0 {
					path, body = "/api/v1/holds/"+str(h, "id")+"/capture", `{"amount":"0.3"}`
				}
				if n%5 == 4 {
					continue // left open: the backup holds pending holds too
				}
				if st, b, err := c.call(context.Background(), "POST", path, body, key+"-r"); err != nil || st != want {
					t.Errorf("%s: %d %v %v", path, st, b, err)
					return
				}
				ops.Add(3)
			}
		})
	}
	time.Sleep(700 * time.Millisecond)
	before := len(journalRows(t, src))
	file := filepath.Join(t.TempDir(), "farebox-backup.db")
	start := time.Now()
	code, out := runBin(t, "backup", "--data-dir", dir, "--to", file)
	t.Logf("backup after %d journal entries, in %s, beside the load:\n%s", before, time.Since(start).Round(time.Millisecond), out)
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()
	if code != 0 || !strings.Contains(out, "integrity ok") {
		t.Fatalf("backup under load: exit %d, want 0 and integrity ok\n%s", code, out)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	backupJournal := journalRows(t, file)
	n := len(backupJournal)
	if n < before {
		t.Fatalf("the backup has %d journal entries, fewer than the %d before it began", n, before)
	}
	if want := fmt.Sprintf("%d journal entries, %d accounts", n, len(customers)); !strings.Contains(out, want) {
		t.Errorf("backup output: got\n%s\nwant %q", out, want)
	}

	// Backup never overwrites.
	saved, _ := os.ReadFile(file)
	if code, out := runBin(t, "backup", "--data-dir", dir, "--to", file); code != 2 || !strings.Contains(out, "exists") {
		t.Errorf("backup to an existing file: exit %d, want 2 saying it exists\n%s", code, out)
	}
	if now, _ := os.ReadFile(file); string(now) != string(saved) {
		t.Error("a refused backup changed the existing file")
	}

	// The source's final state, then it stops; the load went on after the
	// backup, so the backup is a state in the middle of it.
	final := servedBalances(t, c, customers)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(); code != 0 {
		t.Fatalf("source server: exit %d\n%s", code, p.stderr)
	}
	sourceJournal := journalRows(t, src)
	t.Logf("%d ops acknowledged; the source has %d journal entries, the backup %d", ops.Load(), len(sourceJournal), n)
	if len(sourceJournal) <= n {
		t.Fatalf("the source has %d journal entries, the backup %d: the load did not go on after the backup", len(sourceJournal), n)
	}
	for i, r := range backupJournal {
		if r != sourceJournal[i] {
			t.Fatalf("journal entry %d: backup %+v, source %+v; want the source's first %d entries exactly", i, r, sourceJournal[i], n)
		}
	}

	// Restore into a new directory: checked, verified, private.
	d2 := filepath.Join(t.TempDir(), "restored")
	code, out = runBin(t, "restore", "--from", file, "--data-dir", d2)
	t.Logf("restore:\n%s", out)
	if code != 0 || !strings.Contains(out, "ok: the stored state is exactly the journal's") || !strings.Contains(out, fmt.Sprintf("replayed %d journal entries", n)) {
		t.Fatalf("restore: exit %d, want 0 with %d entries verified\n%s", code, n, out)
	}
	for path, want := range map[string]os.FileMode{d2: 0o700, filepath.Join(d2, "farebox.db"): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, %v; want mode %v", path, fi.Mode().Perm(), err, want)
		}
	}
	if code, out := runVerify(t, d2); code != 0 {
		t.Fatalf("ledger verify on the restored directory: exit %d, want 0\n%s", code, out)
	}

	// Restore never writes into a directory that is not empty.
	if code, out := runBin(t, "restore", "--from", file, "--data-dir", d2); code != 2 || !strings.Contains(out, "not empty") {
		t.Errorf("restore over the restored directory: exit %d, want 2 saying it is not empty\n%s", code, out)
	}
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o600)
	if code, out := runBin(t, "restore", "--from", file, "--data-dir", other); code != 2 || !strings.Contains(out, "notes.txt") {
		t.Errorf("restore into a directory with a file: exit %d, want 2 naming it\n%s", code, out)
	}
	if entries, _ := os.ReadDir(other); len(entries) != 1 {
		t.Errorf("a refused restore left %d entries in the directory, want the 1 it had", len(entries))
	}

	// A server on the restored copy serves the balances of the source's
	// state right after entry n, which is not its final state.
	p2 := startServe(t, d2)
	got := servedBalances(t, newClient(p2.url), customers)
	want := replayedBalances(t, src, n, time.Now())
	differs := 0
	for _, cus := range customers {
		if got[cus] != want[cus] {
			t.Errorf("%s: the restored server serves %s; a replay of the source's first %d entries gives %s", cus, got[cus], n, want[cus])
		}
		if got[cus] != final[cus] {
			differs++
		}
	}
	if differs == 0 {
		t.Errorf("every restored balance is the source's final one: the backup was not taken in the middle of the load")
	}
}

// TestBackupRestoreRefusals: the usage errors and damaged inputs of backup
// and restore, in-process. A restore that fails leaves nothing behind.
func TestBackupRestoreRefusals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := sqlite.Open(ctx, filepath.Join(dir, "farebox.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateCustomer(ctx, fb.Customer{ID: "acme", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	e := ledger.NewEngine(s, ledger.Config{})
	if _, err := e.Submit(ctx, fb.Op{Kind: fb.OpGrant, Customer: "acme", Key: "g1", Amount: 10 * fb.Micro, Source: fb.SourcePurchase}); err != nil {
		t.Fatal(err)
	}
	e.Close()
	s.Close()
	good := filepath.Join(t.TempDir(), "good.db")
	if code, _, stderr := runCmd(nil, "backup", "--data-dir", dir, "--to", good); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, stderr)
	}
	// A sound file whose stored state is not its journal's: a lot's
	// remaining changed behind the ledger's back.
	tampered := filepath.Join(t.TempDir(), "tampered.db")
	tb, _ := os.ReadFile(good)
	os.WriteFile(tampered, tb, 0o600)
	tdb, err := sql.Open("sqlite", tampered)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tdb.Exec(`UPDATE accounts SET state = json_set(state, '$.lots[0].r', json_extract(state, '$.lots[0].r') + 1) WHERE customer = 'acme'`); err != nil {
		t.Fatal(err)
	}
	tdb.Close()
	b, _ := os.ReadFile(good)
	for i := 4096; i < len(b); i++ {
		b[i] = 0x55
	}
	damaged := filepath.Join(t.TempDir(), "damaged.db")
	os.WriteFile(damaged, b, 0o600)
	garbage := filepath.Join(t.TempDir(), "garbage.db")
	os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 40)), 0o600)
	live := filepath.Join(t.TempDir(), "live.db")
	os.WriteFile(live, b, 0o600)
	os.WriteFile(live+"-wal", []byte("frames"), 0o600)

	fresh := func() string { return filepath.Join(t.TempDir(), "new") }
	for _, c := range []struct {
		name  string
		args  []string
		code  int
		want  string
		clean string // a directory that must not exist afterwards
	}{
		{"postgres", []string{"backup", "--db", "postgres://farebox:hunter2pw@db/farebox", "--to", "f.dump"}, 2, `pg_dump --format=custom --file=f.dump "$FAREBOX_DB"`, ""},
		{"postgres restore advice", []string{"backup", "--db", "postgres://farebox:hunter2pw@db/farebox"}, 2, `pg_restore --no-owner --single-transaction --dbname="$NEW_DB" farebox.dump`, ""},
		{"no --to", []string{"backup", "--data-dir", dir}, 2, "needs --to FILE", ""},
		{"no database", []string{"backup", "--data-dir", filepath.Join(dir, "missing"), "--to", filepath.Join(t.TempDir(), "x.db")}, 2, "cannot open", filepath.Join(dir, "missing")},
		{"bad --db", []string{"backup", "--db", "mysql://x", "--to", "x.db"}, 2, "want sqlite:///path", ""},
		{"no --from", []string{"restore", "--data-dir", fresh()}, 2, "needs --from FILE", ""},
		{"missing backup", []string{"restore", "--from", filepath.Join(dir, "nope.db"), "--data-dir", fresh()}, 2, "cannot read the backup", ""},
		{"live database", []string{"restore", "--from", live, "--data-dir", fresh()}, 2, "write-ahead log", ""},
	} {
		code, out, stderr := runCmd(nil, c.args...)
		all := out + stderr
		if code != c.code || !strings.Contains(all, c.want) || strings.Contains(all, "hunter2pw") {
			t.Errorf("%s: exit %d\n%s\nwant exit %d with %q (and no password)", c.name, code, all, c.code, c.want)
		}
		if c.clean != "" {
			if _, err := os.Stat(c.clean); !os.IsNotExist(err) {
				t.Errorf("%s: %s exists afterwards (%v)", c.name, c.clean, err)
			}
		}
	}
	// A damaged or foreign file is not restored, and what restore created
	// is gone; a directory that existed empty stays, empty.
	for _, c := range []struct {
		name, from string
		code       int
		want       string
	}{
		{"damaged", damaged, 1, "damaged"},
		{"not verified", tampered, 1, "does not verify"},
		{"not a database", garbage, 2, "not a farebox database"},
	} {
		for _, existed := range []bool{false, true} {
			d := fresh()
			if existed {
				os.Mkdir(d, 0o700)
			}
			code, out, stderr := runCmd(nil, "restore", "--from", c.from, "--data-dir", d)
			if code != c.code || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "nothing was restored") {
				t.Errorf("restore %s: exit %d\n%s%s\nwant exit %d with %q", c.name, code, out, stderr, c.code, c.want)
			}
			entries, err := os.ReadDir(d)
			switch {
			case existed && (err != nil || len(entries) != 0):
				t.Errorf("restore %s into an empty directory: left %v, %v; want it empty", c.name, entries, err)
			case !existed && !os.IsNotExist(err):
				t.Errorf("restore %s: left the directory it created (%v, %v)", c.name, entries, err)
			}
		}
	}
}

// TestRestoreOlderSchema: a backup written by an older farebox is
// restored, migrated as serve would migrate it, and verified.
func TestRestoreOlderSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v3.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	old := sqlite.SchemaVersion() - 1
	for i := 1; i <= old; i++ {
		name := "schema.sql"
		if i > 1 {
			name = fmt.Sprintf("schema%d.sql", i)
		}
		m, err := os.ReadFile(filepath.Join("..", "..", "store", "sqlite", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(string(m)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", old)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	d := filepath.Join(t.TempDir(), "restored")
	code, out, stderr := runCmd(nil, "restore", "--from", path, "--data-dir", d)
	want := fmt.Sprintf("schema migrated from version %d to %d", old, sqlite.SchemaVersion())
	if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "ok:") {
		t.Fatalf("restore of a version %d backup: exit %d\n%s%s\nwant 0, %q and verified", old, code, out, stderr, want)
	}
	if code, out := verifyInProcess("--data-dir", d); code != 0 {
		t.Fatalf("verify the restored copy: exit %d\n%s", code, out)
	}
}
