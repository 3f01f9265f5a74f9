// Package sqlite is Farebox's embedded store: one SQLite file in WAL mode
// with synchronous=FULL, one writer connection and a pool of readers
// (modernc.org/sqlite, pure Go). It implements farebox.Store.
package sqlite

import (
	"context"
	"database/sql"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	fb "farebox"
	"farebox/store/codec"
	"farebox/store/sqlcat"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed schema.sql
var schemaV1 string

//go:embed schema2.sql
var schemaV2 string

//go:embed schema3.sql
var schemaV3 string

//go:embed schema4.sql
var schemaV4 string

//go:embed schema5.sql
var schemaV5 string

// schemaV6 is the dashboard's: sessions and the daily sums by customer.
//
//go:embed schema6.sql
var schemaV6 string

// schemaV7 is leasing's: GPU pools, their capacity change logs and leases.
//
//go:embed schema7.sql
var schemaV7 string

// schemaV8 is the gateway protocols': usage rows' cache writes.
//
//go:embed schema8.sql
var schemaV8 string

// schemaV9 is payments, top-ups, thresholds and webhooks.
//
//go:embed schema9.sql
var schemaV9 string

// schemaV10 keeps the dashboard's verifications of the ledger.
//
//go:embed schema10.sql
var schemaV10 string

// schemaV11 is sponsored suggestions': account kinds and opt-outs,
// campaigns, frequency-cap counters, settings, and the topic and score of
// ads' usage rows.
//
//go:embed schema11.sql
var schemaV11 string

// migrations are applied in order; migration i brings the schema to
// version i+1 (PRAGMA user_version). Never edit one that has shipped:
// append.
var migrations = []string{schemaV1, schemaV2, schemaV3, schemaV4, schemaV5, schemaV6, schemaV7, schemaV8, schemaV9, schemaV10, schemaV11}

var schemaVersion = len(migrations)

var _ fb.Store = (*Store)(nil)

// Store is an SQLite-backed farebox.Store.
type Store struct {
	path string
	w    *sql.DB // the only writer
	r    *sql.DB // readers
	lock *os.File
	ro   bool

	stmts map[string]*sql.Stmt

	*sqlcat.Catalog
}

// Options for Open.
type Options struct {
	// ReadOnly opens an existing database without taking the directory
	// lock, for `farebox ledger verify` on a live server's data.
	ReadOnly bool
}

// ErrLocked is returned when another process holds the database.
var ErrLocked = errors.New("the data directory is in use by another farebox process")

var errReadOnly = errors.New("the store is open read-only")

// Open opens (creating if needed) the database at path.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	s := &Store{path: path, ro: opts.ReadOnly}
	if opts.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	} else {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			return nil, fmt.Errorf("%w (%s is locked)", ErrLocked, path+".lock")
		}
		s.lock = f
		// Created here, 0600, before SQLite would create it 0644 (less the
		// umask): the ledger is private, and SQLite gives its -wal and -shm
		// files the database file's mode.
		db, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			s.Close()
			return nil, err
		}
		db.Close()
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(OFF)")
	dsn := "file:" + path + "?" + q.Encode()
	var err error
	if !opts.ReadOnly {
		s.w, err = sql.Open("sqlite", dsn+"&_txlock=immediate")
		if err != nil {
			s.Close()
			return nil, err
		}
		s.w.SetMaxOpenConns(1)
		s.w.SetMaxIdleConns(1)
		s.w.SetConnMaxLifetime(0)
		if err := s.migrate(ctx); err != nil {
			s.Close()
			return nil, err
		}
		if err := s.prepare(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	rq := url.Values{}
	rq.Add("_pragma", "busy_timeout(10000)")
	rq.Add("_pragma", "query_only(1)")
	s.r, err = sql.Open("sqlite", "file:"+path+"?"+rq.Encode())
	if err != nil {
		s.Close()
		return nil, err
	}
	s.r.SetMaxOpenConns(8)
	s.r.SetMaxIdleConns(8)
	if err := s.r.PingContext(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.Catalog = &sqlcat.Catalog{W: s.w, R: s.r, IsUnique: isConstraint}
	if opts.ReadOnly {
		s.Catalog.W = s.r // query_only: writes fail
		var v int
		if err := s.r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
			s.Close()
			return nil, err
		}
		switch {
		case v == 0:
			s.Close()
			return nil, fmt.Errorf("%s is not a farebox database (schema version 0)", path)
		case v < schemaVersion:
			s.Close()
			return nil, fmt.Errorf("%s has schema version %d, older than this farebox's %d: farebox migrate brings it up to date", path, v, schemaVersion)
		case v > schemaVersion:
			s.Close()
			return nil, fmt.Errorf("%s has schema version %d, newer than this farebox's %d", path, v, schemaVersion)
		}
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	var v int
	if err := s.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	switch {
	case v == schemaVersion:
		return nil
	case v > schemaVersion:
		return fmt.Errorf("database schema version %d is newer than this farebox (%d)", v, schemaVersion)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for i := v; i < schemaVersion; i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migrate to version %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return err
	}
	return tx.Commit()
}

var statements = map[string]string{
	"account":     `SELECT state FROM accounts WHERE customer = ?`,
	"hold":        `SELECT customer, hold FROM holds WHERE id = ?`,
	"key":         `SELECT seq, op, fingerprint, result FROM journal WHERE customer = ? AND idem_key = ?`,
	"saveAccount": `UPDATE accounts SET state = ? WHERE customer = ?`,
	"deadLot":     `INSERT INTO dead_lots (id, customer, lot) VALUES (?,?,?)`,
	"expiryOn":    `INSERT INTO lot_expiries (lot, customer, expires_at) VALUES (?,?,?) ON CONFLICT (lot) DO UPDATE SET expires_at = excluded.expires_at`,
	"expiryOff":   `DELETE FROM lot_expiries WHERE lot = ?`,
	"upsertHold":  `INSERT INTO holds (id, customer, status, expires_at, hold) VALUES (?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET status = excluded.status, expires_at = excluded.expires_at, hold = excluded.hold`,
	"journal":     `INSERT INTO journal (customer, idem_key, op, fingerprint, result, balance_before, balance_after, lapsed) VALUES (?,?,?,?,?,?,?,?)`,
	"eventKey":    `SELECT j.seq, j.op, j.fingerprint, j.result FROM events e JOIN journal j ON j.seq = e.seq WHERE e.event_key = ?`,
	"event":       `INSERT INTO events (event_key, seq) VALUES (?,?)`,
	"usage":       `INSERT INTO usage_rows (` + codec.UsageColumns + `) VALUES (` + codec.UsagePlaceholders(false) + `)`,
	"daily":       codec.DailyUpsert,
}

func (s *Store) prepare(ctx context.Context) error {
	s.stmts = map[string]*sql.Stmt{}
	for _, m := range []map[string]string{statements, leaseStatements} {
		for name, q := range m {
			st, err := s.w.PrepareContext(ctx, q)
			if err != nil {
				return fmt.Errorf("prepare %s: %w", name, err)
			}
			s.stmts[name] = st
		}
	}
	return nil
}

// Close closes the database and releases the directory lock.
func (s *Store) Close() error {
	var errs []error
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
	}
	return errors.Join(errs...)
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// Write runs fn in one immediate transaction on the writer connection.
func (s *Store) Write(ctx context.Context, fn func(fb.WriteTx) error) error {
	if s.ro {
		return errReadOnly
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	wt := &writeTx{s: s, tx: tx, st: map[string]*sql.Stmt{}}
	if err := fn(wt); err != nil {
		tx.Rollback()
		if isConstraint(err) {
			// A key recorded twice: the op that carried it fails alone.
			return fmt.Errorf("%w: %w", fb.ErrRejected, err)
		}
		return err
	}
	return tx.Commit()
}

type writeTx struct {
	s  *Store
	tx *sql.Tx
	st map[string]*sql.Stmt
}

func (t *writeTx) stmt(ctx context.Context, name string) *sql.Stmt {
	st, ok := t.st[name]
	if !ok {
		st = t.tx.StmtContext(ctx, t.s.stmts[name])
		t.st[name] = st
	}
	return st
}

func (t *writeTx) LoadAccounts(ctx context.Context, customers []string) (map[string]*fb.Account, error) {
	out := make(map[string]*fb.Account, len(customers))
	st := t.stmt(ctx, "account")
	for _, c := range customers {
		var state []byte
		err := st.QueryRowContext(ctx, c).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		a, err := codec.DecodeAccount(c, state)
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", c, err)
		}
		out[c] = a
	}
	return out, nil
}

func (t *writeTx) LookupKeys(ctx context.Context, keys []fb.KeyRef) (map[fb.KeyRef]*fb.JournalEntry, error) {
	out := map[fb.KeyRef]*fb.JournalEntry{}
	for _, k := range keys {
		var e fb.JournalEntry
		var op, res string
		var row *sql.Row
		if k.Customer == "" {
			row = t.stmt(ctx, "eventKey").QueryRowContext(ctx, k.Key)
		} else {
			row = t.stmt(ctx, "key").QueryRowContext(ctx, k.Customer, k.Key)
		}
		err := row.Scan(&e.Seq, &op, &e.Fingerprint, &res)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := codec.DecodeEntry(&e, op, res); err != nil {
			return nil, err
		}
		out[k] = &e
	}
	return out, nil
}

func (t *writeTx) LookupHolds(ctx context.Context, ids []string) (map[string]*fb.Hold, error) {
	out := map[string]*fb.Hold{}
	st := t.stmt(ctx, "hold")
	for _, id := range ids {
		h, err := scanHold(st.QueryRowContext(ctx, id))
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[h.ID] = h
	}
	return out, nil
}

// SaveAccount writes the account's state (totals, live lots, pending
// holds) as one row; of the changed lots, those that died move to dead_lots;
// changed holds are inserted or updated by id.
func (t *writeTx) SaveAccount(ctx context.Context, a *fb.Account, lots []*fb.Lot, holds []*fb.Hold) error {
	state, err := codec.EncodeAccount(a)
	if err != nil {
		return err
	}
	res, err := t.stmt(ctx, "saveAccount").ExecContext(ctx, state, a.Customer)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("save account %s: %d rows, %v", a.Customer, n, err)
	}
	for _, l := range lots {
		if !l.Live() {
			b, err := json.Marshal(codec.LotToState(l))
			if err != nil {
				return err
			}
			if _, err := t.stmt(ctx, "deadLot").ExecContext(ctx, l.ID, l.Customer, b); err != nil {
				return fmt.Errorf("archive lot %s: %w", l.ID, err)
			}
		}
		if !l.ExpiresAt.IsZero() && l.Remaining > l.Held {
			_, err = t.stmt(ctx, "expiryOn").ExecContext(ctx, l.ID, l.Customer, codec.Nanos(l.ExpiresAt))
		} else if !l.ExpiresAt.IsZero() {
			_, err = t.stmt(ctx, "expiryOff").ExecContext(ctx, l.ID)
		}
		if err != nil {
			return err
		}
	}
	for _, h := range holds {
		b, err := json.Marshal(codec.HoldToState(h))
		if err != nil {
			return err
		}
		if _, err := t.stmt(ctx, "upsertHold").ExecContext(ctx, h.ID, h.Customer, string(h.Status), codec.Nanos(h.ExpiresAt), b); err != nil {
			return fmt.Errorf("save hold %s: %w", h.ID, err)
		}
	}
	return nil
}

func (t *writeTx) AppendJournal(ctx context.Context, entries []*fb.JournalEntry) error {
	st := t.stmt(ctx, "journal")
	for _, e := range entries {
		op, err := json.Marshal(&e.Op)
		if err != nil {
			return err
		}
		res, err := json.Marshal(&e.Result)
		if err != nil {
			return err
		}
		var key any
		if e.Op.Key != "" {
			key = e.Op.Key
		}
		r, err := st.ExecContext(ctx, e.Op.Customer, key, string(op), e.Fingerprint, string(res), int64(e.Before), int64(e.After), int64(e.Lapsed))
		if err != nil {
			if isConstraint(err) {
				return fmt.Errorf("journal: idempotency key %q of %s recorded twice: %w", e.Op.Key, e.Op.Customer, err)
			}
			return err
		}
		if e.Seq, err = r.LastInsertId(); err != nil {
			return err
		}
		if e.Op.Event != "" {
			if _, err := t.stmt(ctx, "event").ExecContext(ctx, e.Op.Event, e.Seq); err != nil {
				return fmt.Errorf("journal: event %q recorded twice: %w", e.Op.Event, err)
			}
		}
	}
	return nil
}

func (t *writeTx) AppendUsage(ctx context.Context, rows []*fb.Usage) error {
	st := t.stmt(ctx, "usage")
	for _, u := range rows {
		if _, err := st.ExecContext(ctx, codec.UsageValues(u)...); err != nil {
			return fmt.Errorf("usage %s: %w", u.ID, err)
		}
	}
	return t.daily(ctx, codec.DailyOfUsage(rows))
}

func (t *writeTx) AppendBreakage(ctx context.Context, bs []fb.Breakage) error {
	return t.daily(ctx, codec.DailyOfBreakage(bs))
}

func (t *writeTx) AppendRevenue(ctx context.Context, rs []fb.Revenue) error {
	return t.daily(ctx, codec.DailyOfRevenue(rs))
}

func (t *writeTx) daily(ctx context.Context, ds []*codec.Daily) error {
	st := t.stmt(ctx, "daily")
	for _, d := range ds {
		if _, err := st.ExecContext(ctx, d.Values()...); err != nil {
			return fmt.Errorf("daily usage: %w", err)
		}
	}
	return nil
}

func isConstraint(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}

// CreateCustomer inserts a customer and its empty account.
func (s *Store) CreateCustomer(ctx context.Context, c fb.Customer) error {
	return s.CreateCustomers(ctx, []fb.Customer{c})
}

// CreateCustomers inserts customers and their empty accounts in one
// transaction.
func (s *Store) CreateCustomers(ctx context.Context, cs []fb.Customer) error {
	if s.ro {
		return errReadOnly
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, c := range cs {
		if _, err := tx.ExecContext(ctx, `INSERT INTO customers (id, name, kind, sponsored_opt_out, created_at) VALUES (?,?,?,?,?)`,
			c.ID, c.Name, string(codec.Kind(c.Kind)), c.SponsoredOptOut, codec.Nanos(c.CreatedAt)); err != nil {
			if isConstraint(err) {
				return fb.ErrCustomerExists.New("customer %q already exists", c.ID)
			}
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (customer, state) VALUES (?, '{}')`, c.ID); err != nil {
			return err
		}
	}
	return tx.Commit()
}

const customerColumns = `id, name, kind, sponsored_opt_out, created_at`

func scanCustomer(r scanner) (fb.Customer, error) {
	var c fb.Customer
	var created int64
	err := r.Scan(&c.ID, &c.Name, &c.Kind, &c.SponsoredOptOut, &created)
	c.CreatedAt = codec.FromNanos(created)
	return c, err
}

// Customer returns one customer.
func (s *Store) Customer(ctx context.Context, id string) (fb.Customer, error) {
	c, err := scanCustomer(s.r.QueryRowContext(ctx, `SELECT `+customerColumns+` FROM customers WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return fb.Customer{ID: id}, fb.Errorf(fb.ENotFound, "no customer %q", id)
	}
	return c, err
}

// Customers lists customers by id.
func (s *Store) Customers(ctx context.Context, after string, limit int) ([]fb.Customer, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+customerColumns+` FROM customers WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []fb.Customer
	for rows.Next() {
		c, err := scanCustomer(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// SetSponsoredOptOut sets a customer's opt-out of sponsored suggestions.
func (s *Store) SetSponsoredOptOut(ctx context.Context, id string, optOut bool) (fb.Customer, error) {
	if s.ro {
		return fb.Customer{}, errReadOnly
	}
	c, err := scanCustomer(s.w.QueryRowContext(ctx, `UPDATE customers SET sponsored_opt_out = ? WHERE id = ? RETURNING `+customerColumns, optOut, id))
	if errors.Is(err, sql.ErrNoRows) {
		return fb.Customer{ID: id}, fb.Errorf(fb.ENotFound, "no customer %q", id)
	}
	return c, err
}

// Account reads the committed state of one account.
func (s *Store) Account(ctx context.Context, customer string) (*fb.Account, error) {
	var state []byte
	err := s.r.QueryRowContext(ctx, statements["account"], customer).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fb.Errorf(fb.ENotFound, "no customer %q", customer)
	}
	if err != nil {
		return nil, err
	}
	return codec.DecodeAccount(customer, state)
}

// Hold reads one hold.
func (s *Store) Hold(ctx context.Context, id string) (*fb.Hold, error) {
	h, err := scanHold(s.r.QueryRowContext(ctx, statements["hold"], id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fb.Errorf(fb.ENotFound, "no hold %s", id)
	}
	return h, err
}

// DueAccounts lists accounts with a pending hold or a free lot remainder
// whose expiry has come.
func (s *Store) DueAccounts(ctx context.Context, now time.Time, limit int) ([]string, error) {
	n := now.UnixNano()
	rows, err := s.r.QueryContext(ctx, `
		SELECT customer FROM holds WHERE status = 'pending' AND expires_at <= ?
		UNION
		SELECT customer FROM lot_expiries WHERE expires_at <= ?
		LIMIT ?`, n, n, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Snapshot reads the journal and all state in one read transaction.
func (s *Store) Snapshot(ctx context.Context, journal func(*fb.JournalEntry) error) (*fb.Dump, error) {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT seq, op, fingerprint, result FROM journal ORDER BY seq`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var e fb.JournalEntry
		var op, res string
		if err := rows.Scan(&e.Seq, &op, &e.Fingerprint, &res); err != nil {
			rows.Close()
			return nil, err
		}
		if err := codec.DecodeEntry(&e, op, res); err != nil {
			rows.Close()
			return nil, err
		}
		if err := journal(&e); err != nil {
			rows.Close()
			return nil, err
		}
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	d := codec.NewDumper()
	if err := scanRows(ctx, tx, `SELECT customer, state FROM accounts`, func(r *sql.Rows) error {
		var c string
		var state []byte
		if err := r.Scan(&c, &state); err != nil {
			return err
		}
		return d.Account(c, state)
	}); err != nil {
		return nil, err
	}
	if err := scanRows(ctx, tx, `SELECT customer, lot FROM dead_lots`, func(r *sql.Rows) error {
		var c string
		var lot []byte
		if err := r.Scan(&c, &lot); err != nil {
			return err
		}
		return d.DeadLot(c, lot)
	}); err != nil {
		return nil, err
	}
	if err := scanRows(ctx, tx, `SELECT customer, id, status, expires_at, hold FROM holds`, func(r *sql.Rows) error {
		var c, id, status string
		var expires int64
		var hold []byte
		if err := r.Scan(&c, &id, &status, &expires, &hold); err != nil {
			return err
		}
		return d.Hold(c, id, status, expires, hold)
	}); err != nil {
		return nil, err
	}
	if err := scanRows(ctx, tx, `SELECT lot, customer, expires_at FROM lot_expiries`, func(r *sql.Rows) error {
		var lot, c string
		var expires int64
		if err := r.Scan(&lot, &c, &expires); err != nil {
			return err
		}
		d.LotExpiry(lot, c, expires)
		return nil
	}); err != nil {
		return nil, err
	}
	return d.Dump(), nil
}

// scanRows runs a query and calls fn for each row.
func scanRows(ctx context.Context, tx *sql.Tx, q string, fn func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

type scanner interface{ Scan(...any) error }

// scanHold reads a (customer, hold) row.
func scanHold(r scanner) (*fb.Hold, error) {
	var customer string
	var b []byte
	if err := r.Scan(&customer, &b); err != nil {
		return nil, err
	}
	return codec.DecodeHold(customer, b)
}

// PathFromURL turns "sqlite:///abs/path", "sqlite://rel/path" or a plain
// path into a file path.
func PathFromURL(u string) string {
	if p, ok := strings.CutPrefix(u, "sqlite://"); ok {
		return p
	}
	return strings.TrimPrefix(u, "sqlite:")
}

// JournalAfter reads committed entries after cur in seq order: the one
// writer commits in that order, so no later commit comes before them.
func (s *Store) JournalAfter(ctx context.Context, cur fb.JournalCursor, limit int) ([]*fb.JournalEntry, fb.JournalCursor, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT seq, op, fingerprint, result, balance_before, balance_after, lapsed FROM journal WHERE seq > ? ORDER BY seq LIMIT ?`, cur.Seq, limit)
	if err != nil {
		return nil, cur, err
	}
	defer rows.Close()
	var out []*fb.JournalEntry
	for rows.Next() {
		e := &fb.JournalEntry{}
		var op, res string
		var before, after, lapsed int64
		if err := rows.Scan(&e.Seq, &op, &e.Fingerprint, &res, &before, &after, &lapsed); err != nil {
			return nil, cur, err
		}
		if err := codec.DecodeEntry(e, op, res); err != nil {
			return nil, cur, err
		}
		e.Before, e.After, e.Lapsed = fb.Amount(before), fb.Amount(after), fb.Amount(lapsed)
		out = append(out, e)
		cur.Seq = e.Seq
	}
	return out, cur, rows.Err()
}

// JournalEnd is the cursor after every committed entry.
func (s *Store) JournalEnd(ctx context.Context) (fb.JournalCursor, error) {
	var cur fb.JournalCursor
	err := s.r.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM journal`).Scan(&cur.Seq)
	return cur, err
}
