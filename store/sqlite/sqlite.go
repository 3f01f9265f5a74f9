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

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed schema.sql
var schema string

const schemaVersion = 1

var _ fb.Store = (*Store)(nil)

// Store is an SQLite-backed farebox.Store.
type Store struct {
	path string
	w    *sql.DB // the only writer
	r    *sql.DB // readers
	lock *os.File
	ro   bool

	stmts map[string]*sql.Stmt
}

// Options for Open.
type Options struct {
	// ReadOnly opens an existing database without taking the directory
	// lock, for `farebox ledger verify` on a live server's data.
	ReadOnly bool
}

// ErrLocked is returned when another process holds the database.
var ErrLocked = errors.New("the data directory is in use by another farebox process")

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
	if opts.ReadOnly {
		var v int
		if err := s.r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
			s.Close()
			return nil, err
		}
		if v != schemaVersion {
			s.Close()
			return nil, fmt.Errorf("%s is not a farebox database (schema version %d)", path, v)
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
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return err
	}
	return tx.Commit()
}

var statements = map[string]string{
	"account":      `SELECT overdraft_limit, debt, overdraft_reserved, uncollected, granted, charged, expired FROM accounts WHERE customer = ?`,
	"liveLots":     `SELECT ` + lotCols + ` FROM lots WHERE customer = ? AND live = 1`,
	"pendingHolds": `SELECT ` + holdCols + ` FROM holds WHERE customer = ? AND status = 'pending'`,
	"hold":         `SELECT ` + holdCols + ` FROM holds WHERE id = ?`,
	"key":          `SELECT seq, op, fingerprint, result FROM journal WHERE customer = ? AND idem_key = ?`,
	"saveAccount":  `UPDATE accounts SET overdraft_limit = ?, debt = ?, overdraft_reserved = ?, uncollected = ?, granted = ?, charged = ?, expired = ? WHERE customer = ?`,
	"saveLot": `INSERT INTO lots (` + lotCols + `, live) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (id) DO UPDATE SET remaining = excluded.remaining, held = excluded.held,
		consumed = excluded.consumed, expired = excluded.expired, live = excluded.live`,
	"saveHold": `INSERT INTO holds (` + holdCols + `) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (id) DO UPDATE SET status = excluded.status, resolved_at = excluded.resolved_at,
		resolution = excluded.resolution, result = excluded.result`,
	"journal": `INSERT INTO journal (customer, idem_key, op, fingerprint, result) VALUES (?,?,?,?,?)`,
}

const (
	lotCols  = `id, customer, source, priority, amount, remaining, held, consumed, expired, effective_at, expires_at, paid_usd, created_at`
	holdCols = `id, customer, amount, requested, overdraft, allocations, created_at, expires_at, status, resolved_at, resolution, result`
)

func (s *Store) prepare(ctx context.Context) error {
	s.stmts = map[string]*sql.Stmt{}
	for name, q := range statements {
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %s: %w", name, err)
		}
		s.stmts[name] = st
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
		return errors.New("store opened read-only")
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	wt := &writeTx{s: s, tx: tx, st: map[string]*sql.Stmt{}}
	if err := fn(wt); err != nil {
		tx.Rollback()
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
	for _, c := range customers {
		a, err := loadAccount(ctx, c, t.stmt(ctx, "account"), t.stmt(ctx, "liveLots"), t.stmt(ctx, "pendingHolds"))
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[c] = a
	}
	return out, nil
}

type queryer interface {
	QueryContext(ctx context.Context, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, args ...any) *sql.Row
}

func loadAccount(ctx context.Context, customer string, acct, lots, holds queryer) (*fb.Account, error) {
	a := fb.NewAccount(customer)
	err := acct.QueryRowContext(ctx, customer).Scan((*int64)(&a.OverdraftLimit), (*int64)(&a.Debt),
		(*int64)(&a.OverdraftReserved), (*int64)(&a.Uncollected), (*int64)(&a.Granted), (*int64)(&a.Charged), (*int64)(&a.Expired))
	if err != nil {
		return nil, err
	}
	rows, err := lots.QueryContext(ctx, customer)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		l, err := scanLot(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		a.Lots = append(a.Lots, l)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}

	rows, err = holds.QueryContext(ctx, customer)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		h, err := scanHold(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		a.Holds[h.ID] = h
	}
	return a, rows.Close()
}

func (t *writeTx) LookupKeys(ctx context.Context, keys []fb.KeyRef) (map[fb.KeyRef]*fb.JournalEntry, error) {
	out := map[fb.KeyRef]*fb.JournalEntry{}
	st := t.stmt(ctx, "key")
	for _, k := range keys {
		var e fb.JournalEntry
		var op, res string
		err := st.QueryRowContext(ctx, k.Customer, k.Key).Scan(&e.Seq, &op, &e.Fingerprint, &res)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := decodeEntry(&e, op, res); err != nil {
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
		rows, err := st.QueryContext(ctx, id)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			h, err := scanHold(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			out[h.ID] = h
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (t *writeTx) SaveAccount(ctx context.Context, a *fb.Account, lots []*fb.Lot, holds []*fb.Hold) error {
	res, err := t.stmt(ctx, "saveAccount").ExecContext(ctx, int64(a.OverdraftLimit), int64(a.Debt), int64(a.OverdraftReserved),
		int64(a.Uncollected), int64(a.Granted), int64(a.Charged), int64(a.Expired), a.Customer)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("save account %s: %d rows, %v", a.Customer, n, err)
	}
	st := t.stmt(ctx, "saveLot")
	for _, l := range lots {
		live := 0
		if l.Live() {
			live = 1
		}
		if _, err := st.ExecContext(ctx, l.ID, l.Customer, string(l.Source), l.Priority, int64(l.Amount), int64(l.Remaining),
			int64(l.Held), int64(l.Consumed), int64(l.Expired), nanos(l.EffectiveAt), nanos(l.ExpiresAt), int64(l.PaidUSD),
			nanos(l.CreatedAt), live); err != nil {
			return fmt.Errorf("save lot %s: %w", l.ID, err)
		}
	}
	st = t.stmt(ctx, "saveHold")
	for _, h := range holds {
		allocs, err := json.Marshal(h.Allocations)
		if err != nil {
			return err
		}
		result := ""
		if h.Result != nil {
			b, err := json.Marshal(h.Result)
			if err != nil {
				return err
			}
			result = string(b)
		}
		if _, err := st.ExecContext(ctx, h.ID, h.Customer, int64(h.Amount), int64(h.Requested), int64(h.Overdraft), string(allocs),
			nanos(h.CreatedAt), nanos(h.ExpiresAt), string(h.Status), nanos(h.ResolvedAt), h.Resolution, result); err != nil {
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
		r, err := st.ExecContext(ctx, e.Op.Customer, key, string(op), e.Fingerprint, string(res))
		if err != nil {
			if isConstraint(err) {
				return fmt.Errorf("journal: idempotency key %q of %s recorded twice: %w", e.Op.Key, e.Op.Customer, err)
			}
			return err
		}
		if e.Seq, err = r.LastInsertId(); err != nil {
			return err
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
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO customers (id, name, created_at) VALUES (?,?,?)`, c.ID, c.Name, nanos(c.CreatedAt)); err != nil {
		if isConstraint(err) {
			return fb.Errorf(fb.EConflict, "customer %q already exists", c.ID).WithCode("customer_exists")
		}
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (customer) VALUES (?)`, c.ID); err != nil {
		return err
	}
	return tx.Commit()
}

// Customer returns one customer.
func (s *Store) Customer(ctx context.Context, id string) (fb.Customer, error) {
	c := fb.Customer{ID: id}
	var created int64
	err := s.r.QueryRowContext(ctx, `SELECT name, created_at FROM customers WHERE id = ?`, id).Scan(&c.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fb.Errorf(fb.ENotFound, "no customer %q", id)
	}
	c.CreatedAt = fromNanos(created)
	return c, err
}

// Customers lists customers by id.
func (s *Store) Customers(ctx context.Context, after string, limit int) ([]fb.Customer, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, name, created_at FROM customers WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []fb.Customer
	for rows.Next() {
		var c fb.Customer
		var created int64
		if err := rows.Scan(&c.ID, &c.Name, &created); err != nil {
			return nil, err
		}
		c.CreatedAt = fromNanos(created)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Account reads the committed state of one account.
func (s *Store) Account(ctx context.Context, customer string) (*fb.Account, error) {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	a, err := loadAccount(ctx, customer,
		txQuery{tx, statements["account"]}, txQuery{tx, statements["liveLots"]}, txQuery{tx, statements["pendingHolds"]})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fb.Errorf(fb.ENotFound, "no customer %q", customer)
	}
	return a, err
}

type txQuery struct {
	tx *sql.Tx
	q  string
}

func (t txQuery) QueryContext(ctx context.Context, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.q, args...)
}

func (t txQuery) QueryRowContext(ctx context.Context, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.q, args...)
}

// Hold reads one hold.
func (s *Store) Hold(ctx context.Context, id string) (*fb.Hold, error) {
	rows, err := s.r.QueryContext(ctx, statements["hold"], id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, fb.Errorf(fb.ENotFound, "no hold %s", id)
	}
	return scanHold(rows)
}

// DueAccounts lists accounts with a pending hold or a free lot remainder
// whose expiry has come.
func (s *Store) DueAccounts(ctx context.Context, now time.Time, limit int) ([]string, error) {
	n := now.UnixNano()
	rows, err := s.r.QueryContext(ctx, `
		SELECT customer FROM holds WHERE status = 'pending' AND expires_at <= ?
		UNION
		SELECT customer FROM lots WHERE live = 1 AND expires_at > 0 AND expires_at <= ? AND remaining > held
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
		if err := decodeEntry(&e, op, res); err != nil {
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
	d := &fb.Dump{Accounts: map[string]*fb.Account{}}
	rows, err = tx.QueryContext(ctx, `SELECT customer, overdraft_limit, debt, overdraft_reserved, uncollected, granted, charged, expired FROM accounts`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var c string
		var a fb.Account
		if err := rows.Scan(&c, (*int64)(&a.OverdraftLimit), (*int64)(&a.Debt), (*int64)(&a.OverdraftReserved),
			(*int64)(&a.Uncollected), (*int64)(&a.Granted), (*int64)(&a.Charged), (*int64)(&a.Expired)); err != nil {
			rows.Close()
			return nil, err
		}
		acct := fb.NewAccount(c)
		a.Customer, a.Holds, a.Closed = c, acct.Holds, acct.Closed
		d.Accounts[c] = &a
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT `+lotCols+` FROM lots`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		l, err := scanLot(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		a := d.Accounts[l.Customer]
		if a == nil {
			rows.Close()
			return nil, fmt.Errorf("lot %s belongs to unknown account %s", l.ID, l.Customer)
		}
		a.Lots = append(a.Lots, l)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT `+holdCols+` FROM holds`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		h, err := scanHold(rows)
		if err != nil {
			return nil, err
		}
		a := d.Accounts[h.Customer]
		if a == nil {
			return nil, fmt.Errorf("hold %s belongs to unknown account %s", h.ID, h.Customer)
		}
		if h.Status == fb.HoldPending {
			a.Holds[h.ID] = h
		} else {
			a.Closed[h.ID] = h
		}
	}
	return d, rows.Err()
}

func decodeEntry(e *fb.JournalEntry, op, res string) error {
	if err := json.Unmarshal([]byte(op), &e.Op); err != nil {
		return fmt.Errorf("journal %d: op: %w", e.Seq, err)
	}
	if err := json.Unmarshal([]byte(res), &e.Result); err != nil {
		return fmt.Errorf("journal %d: result: %w", e.Seq, err)
	}
	return nil
}

type scanner interface{ Scan(...any) error }

func scanLot(r scanner) (*fb.Lot, error) {
	var l fb.Lot
	var src string
	var eff, exp, created int64
	err := r.Scan(&l.ID, &l.Customer, &src, &l.Priority, (*int64)(&l.Amount), (*int64)(&l.Remaining), (*int64)(&l.Held),
		(*int64)(&l.Consumed), (*int64)(&l.Expired), &eff, &exp, (*int64)(&l.PaidUSD), &created)
	l.Source = fb.Source(src)
	l.EffectiveAt, l.ExpiresAt, l.CreatedAt = fromNanos(eff), fromNanos(exp), fromNanos(created)
	return &l, err
}

func scanHold(r scanner) (*fb.Hold, error) {
	var h fb.Hold
	var allocs, status, result string
	var created, exp, resolved int64
	err := r.Scan(&h.ID, &h.Customer, (*int64)(&h.Amount), (*int64)(&h.Requested), (*int64)(&h.Overdraft), &allocs,
		&created, &exp, &status, &resolved, &h.Resolution, &result)
	if err != nil {
		return nil, err
	}
	h.Status = fb.HoldStatus(status)
	h.CreatedAt, h.ExpiresAt, h.ResolvedAt = fromNanos(created), fromNanos(exp), fromNanos(resolved)
	if err := json.Unmarshal([]byte(allocs), &h.Allocations); err != nil {
		return nil, fmt.Errorf("hold %s allocations: %w", h.ID, err)
	}
	if result != "" {
		h.Result = new(fb.Result)
		if err := json.Unmarshal([]byte(result), h.Result); err != nil {
			return nil, fmt.Errorf("hold %s result: %w", h.ID, err)
		}
	}
	return &h, nil
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// PathFromURL turns "sqlite:///abs/path", "sqlite://rel/path" or a plain
// path into a file path.
func PathFromURL(u string) string {
	if p, ok := strings.CutPrefix(u, "sqlite://"); ok {
		return p
	}
	return strings.TrimPrefix(u, "sqlite:")
}
