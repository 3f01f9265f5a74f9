// Package postgres is Farebox's store for several replicas on one
// PostgreSQL database (pgx v5). A write batch is one transaction that locks
// the accounts it touches in sorted order (SELECT … FOR UPDATE), so two
// replicas never apply ops to one account at once and never deadlock on
// each other; nothing in memory is trusted across transactions. It
// implements farebox.Store with the stored forms of store/codec.
package postgres

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	fb "farebox"
	"farebox/store/codec"
	"farebox/store/sqlcat"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
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

// schemaV10 keeps the dashboard's verifications of the ledger, and marks
// each row of the daily sums with the transaction that last changed it.
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
// version i+1. Never edit one that has shipped: append.
var migrations = []string{schemaV1, schemaV2, schemaV3, schemaV4, schemaV5, schemaV6, schemaV7, schemaV8, schemaV9, schemaV10, schemaV11}

// SchemaVersion is the version this build needs.
var SchemaVersion = len(migrations)

// migrationLock is the advisory lock key that serialises migrations of
// replicas starting at once.
const migrationLock = 0x66617265626f78 // "farebox"

var _ fb.Store = (*Store)(nil)

// Store is a PostgreSQL-backed farebox.Store.
type Store struct {
	pool *pgxpool.Pool
	db   *sql.DB // database/sql over pool, for the catalog
	ro   bool

	*sqlcat.Catalog
}

// Options for Open.
type Options struct {
	// ReadOnly neither migrates nor writes (farebox ledger verify).
	ReadOnly bool
	// MaxConns bounds the connection pool; 16 when zero.
	MaxConns int32
}

var errReadOnly = errors.New("the store is open read-only")

// IsURL reports whether u names a PostgreSQL database.
func IsURL(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

// Open connects to the database at url and, unless read-only, applies
// the migrations it lacks. Its errors never show the URL's password.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	s, err := open(ctx, url, opts)
	if err != nil {
		// pgx masks the passwords it recognises; whatever it quotes that
		// it did not recognise (a malformed URL), this masks too.
		return nil, hide(err, url)
	}
	return s, nil
}

func open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	cfg.MaxConns = 16
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &Store{pool: pool, ro: opts.ReadOnly, db: stdlib.OpenDBFromPool(pool)}
	s.Catalog = &sqlcat.Catalog{W: s.db, R: s.db, Dollar: true, IsUnique: isUnique}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if opts.ReadOnly {
		v, err := s.Version(ctx)
		if err != nil || v != SchemaVersion {
			pool.Close()
			return nil, fmt.Errorf("not a farebox database at schema version %d (found %d, %v)", SchemaVersion, v, err)
		}
		return s, nil
	}
	if err := s.Migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Version returns the schema version of the database, 0 when empty.
func (s *Store) Version(ctx context.Context) (int, error) {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('farebox_migrations') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM farebox_migrations`).Scan(&v)
	return v, err
}

// Migrate applies the migrations the database lacks, in one transaction
// under an advisory lock, so replicas starting together migrate once.
func (s *Store) Migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS farebox_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var have int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM farebox_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("the database is at schema version %d, newer than this build's %d", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO farebox_migrations (version) VALUES ($1)`, v); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
	}
	return tx.Commit(ctx)
}

// Close closes the pool.
func (s *Store) Close() error {
	err := s.db.Close()
	s.pool.Close()
	return err
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Write runs fn in one read-committed transaction. Its writes are sent in
// one round trip (a pgx batch) before the commit.
func (s *Store) Write(ctx context.Context, fn func(fb.WriteTx) error) error {
	if s.ro {
		return errReadOnly
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	wt := &writeTx{tx: tx, batch: &pgx.Batch{}}
	if err := fn(wt); err != nil {
		tx.Rollback(ctx)
		return rejected(err)
	}
	if err := wt.flush(ctx); err != nil {
		tx.Rollback(ctx)
		return rejected(err)
	}
	return rejected(tx.Commit(ctx))
}

// rejected marks an error the database raised over the data written — a
// data exception (class 22, such as a NUL byte in text) or an integrity
// constraint (class 23, such as an event key another replica recorded
// first) — as farebox.ErrRejected, so that the engine retries the rest of
// its batch without the op that carried it.
func rejected(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23")) {
		return fmt.Errorf("%w: %w", fb.ErrRejected, err)
	}
	return err
}

type writeTx struct {
	tx    pgx.Tx
	batch *pgx.Batch
}

func (t *writeTx) flush(ctx context.Context) error {
	if t.batch.Len() == 0 {
		return nil
	}
	b := t.batch
	t.batch = &pgx.Batch{}
	return t.tx.SendBatch(ctx, b).Close()
}

// LoadAccounts locks the accounts in sorted order until the transaction
// ends.
func (t *writeTx) LoadAccounts(ctx context.Context, customers []string) (map[string]*fb.Account, error) {
	rows, err := t.tx.Query(ctx, `SELECT customer, state FROM accounts WHERE customer = ANY($1) ORDER BY customer FOR UPDATE`, customers)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]*fb.Account, len(customers))
	for rows.Next() {
		var c string
		var state []byte
		if err := rows.Scan(&c, &state); err != nil {
			return nil, err
		}
		a, err := codec.DecodeAccount(c, state)
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", c, err)
		}
		out[c] = a
	}
	return out, rows.Err()
}

func (t *writeTx) LookupKeys(ctx context.Context, keys []fb.KeyRef) (map[fb.KeyRef]*fb.JournalEntry, error) {
	var cs, ks, events []string
	for _, k := range keys {
		if k.Customer == "" {
			events = append(events, k.Key)
		} else {
			cs, ks = append(cs, k.Customer), append(ks, k.Key)
		}
	}
	rows, err := t.tx.Query(ctx, `
		SELECT j.customer, j.idem_key, j.seq, j.op, j.fingerprint, j.result
		FROM journal j JOIN unnest($1::text[], $2::text[]) AS k(customer, idem_key)
		  ON j.customer = k.customer AND j.idem_key = k.idem_key
		UNION ALL
		SELECT '', e.event_key, j.seq, j.op, j.fingerprint, j.result
		FROM events e JOIN journal j ON j.seq = e.seq
		WHERE e.event_key = ANY($3)`, cs, ks, events)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[fb.KeyRef]*fb.JournalEntry{}
	for rows.Next() {
		var ref fb.KeyRef
		var e fb.JournalEntry
		var op, res string
		if err := rows.Scan(&ref.Customer, &ref.Key, &e.Seq, &op, &e.Fingerprint, &res); err != nil {
			return nil, err
		}
		if err := codec.DecodeEntry(&e, op, res); err != nil {
			return nil, err
		}
		out[ref] = &e
	}
	return out, rows.Err()
}

func (t *writeTx) LookupHolds(ctx context.Context, ids []string) (map[string]*fb.Hold, error) {
	rows, err := t.tx.Query(ctx, `SELECT customer, hold FROM holds WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]*fb.Hold{}
	for rows.Next() {
		h, err := scanHold(rows)
		if err != nil {
			return nil, err
		}
		out[h.ID] = h
	}
	return out, rows.Err()
}

// SaveAccount queues the account's writes; they are sent with the journal.
func (t *writeTx) SaveAccount(ctx context.Context, a *fb.Account, lots []*fb.Lot, holds []*fb.Hold) error {
	state, err := codec.EncodeAccount(a)
	if err != nil {
		return err
	}
	customer := a.Customer
	t.batch.Queue(`UPDATE accounts SET state = $1 WHERE customer = $2`, string(state), customer).Exec(func(ct pgconn.CommandTag) error {
		if ct.RowsAffected() != 1 {
			return fmt.Errorf("save account %s: %d rows", customer, ct.RowsAffected())
		}
		return nil
	})
	for _, l := range lots {
		if !l.Live() {
			b, err := jsonString(codec.LotToState(l))
			if err != nil {
				return err
			}
			t.batch.Queue(`INSERT INTO dead_lots (id, customer, lot) VALUES ($1, $2, $3)`, l.ID, l.Customer, b)
		}
		if !l.ExpiresAt.IsZero() && l.Remaining > l.Held {
			t.batch.Queue(`INSERT INTO lot_expiries (lot, customer, expires_at) VALUES ($1, $2, $3) ON CONFLICT (lot) DO UPDATE SET expires_at = excluded.expires_at`, l.ID, l.Customer, codec.Nanos(l.ExpiresAt))
		} else if !l.ExpiresAt.IsZero() {
			t.batch.Queue(`DELETE FROM lot_expiries WHERE lot = $1`, l.ID)
		}
	}
	for _, h := range holds {
		b, err := jsonString(codec.HoldToState(h))
		if err != nil {
			return err
		}
		t.batch.Queue(`INSERT INTO holds (id, customer, status, expires_at, hold) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (id) DO UPDATE SET status = excluded.status, expires_at = excluded.expires_at, hold = excluded.hold`,
			h.ID, h.Customer, string(h.Status), codec.Nanos(h.ExpiresAt), b)
	}
	return nil
}

// AppendJournal queues the entries and sends everything queued, setting
// each entry's Seq.
func (t *writeTx) AppendJournal(ctx context.Context, entries []*fb.JournalEntry) error {
	for _, e := range entries {
		op, res, err := codec.EncodeEntry(e)
		if err != nil {
			return err
		}
		var key *string
		if e.Op.Key != "" {
			k := e.Op.Key
			key = &k
		}
		q := `INSERT INTO journal (customer, idem_key, op, fingerprint, result, balance_before, balance_after, lapsed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq`
		args := []any{e.Op.Customer, key, string(op), e.Fingerprint, string(res), int64(e.Before), int64(e.After), int64(e.Lapsed)}
		if e.Op.Event != "" {
			// A second replica recording the same event fails here, on
			// the primary key, and its whole batch rolls back.
			q = `WITH j AS (` + q + `), ev AS (INSERT INTO events (event_key, seq) SELECT $9, seq FROM j) SELECT seq FROM j`
			args = append(args, e.Op.Event)
		}
		t.batch.Queue(q, args...).QueryRow(func(row pgx.Row) error {
			return row.Scan(&e.Seq)
		})
	}
	return t.flush(ctx)
}

func (t *writeTx) AppendUsage(ctx context.Context, rows []*fb.Usage) error {
	for _, u := range rows {
		t.batch.Queue(usageInsert, codec.UsageValues(u)...)
	}
	t.daily(codec.DailyOfUsage(rows))
	return nil
}

func (t *writeTx) AppendBreakage(ctx context.Context, bs []fb.Breakage) error {
	t.daily(codec.DailyOfBreakage(bs))
	return nil
}

func (t *writeTx) AppendRevenue(ctx context.Context, rs []fb.Revenue) error {
	t.daily(codec.DailyOfRevenue(rs))
	return nil
}

// usageInsert is codec.UsageColumns with PostgreSQL's placeholders.
var usageInsert = `INSERT INTO usage_rows (` + codec.UsageColumns + `) VALUES (` + codec.UsagePlaceholders(true) + `)`

// dailyUpsert is codec.DailyUpsert with PostgreSQL's placeholders, and
// the row marked with this transaction (see DailySumsChanged).
var dailyUpsert = func() string {
	var b strings.Builder
	n := 0
	for _, r := range codec.DailyUpsert {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	q := strings.Replace(b.String(), "breakage_usd)\nVALUES (", "breakage_usd, last_xid)\nVALUES (", 1)
	q = strings.Replace(q, fmt.Sprintf("$%d)", n), fmt.Sprintf("$%d, pg_current_xact_id())", n), 1)
	if !strings.Contains(q, "last_xid)") || !strings.Contains(q, "pg_current_xact_id())") {
		panic("postgres: the daily upsert changed shape: " + q)
	}
	return q + ", last_xid = excluded.last_xid"
}()

func (t *writeTx) daily(ds []*codec.Daily) {
	for _, d := range ds {
		t.batch.Queue(dailyUpsert, d.Values()...)
	}
}

// CreateCustomer inserts a customer and its empty account.
func (s *Store) CreateCustomer(ctx context.Context, c fb.Customer) error {
	return s.CreateCustomers(ctx, []fb.Customer{c})
}

// CreateCustomers inserts customers and their accounts in one transaction.
func (s *Store) CreateCustomers(ctx context.Context, cs []fb.Customer) error {
	if s.ro {
		return errReadOnly
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, c := range cs {
			if _, err := tx.Exec(ctx, `INSERT INTO customers (id, name, kind, sponsored_opt_out, created_at) VALUES ($1, $2, $3, $4, $5)`,
				c.ID, c.Name, string(codec.Kind(c.Kind)), c.SponsoredOptOut, codec.Nanos(c.CreatedAt)); err != nil {
				var pe *pgconn.PgError
				if errors.As(err, &pe) && pe.Code == "23505" {
					return fb.ErrCustomerExists.New("customer %q already exists", c.ID)
				}
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO accounts (customer, state) VALUES ($1, '{}')`, c.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

const customerColumns = `id, name, kind, sponsored_opt_out, created_at`

func scanCustomer(r pgx.Row) (fb.Customer, error) {
	var c fb.Customer
	var created int64
	err := r.Scan(&c.ID, &c.Name, &c.Kind, &c.SponsoredOptOut, &created)
	c.CreatedAt = codec.FromNanos(created)
	return c, err
}

// Customer returns one customer.
func (s *Store) Customer(ctx context.Context, id string) (fb.Customer, error) {
	c, err := scanCustomer(s.pool.QueryRow(ctx, `SELECT `+customerColumns+` FROM customers WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return fb.Customer{ID: id}, fb.Errorf(fb.ENotFound, "no customer %q", id)
	}
	return c, err
}

// Customers lists customers by id.
func (s *Store) Customers(ctx context.Context, after string, limit int) ([]fb.Customer, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+customerColumns+` FROM customers WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
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
	c, err := scanCustomer(s.pool.QueryRow(ctx, `UPDATE customers SET sponsored_opt_out = $1 WHERE id = $2 RETURNING `+customerColumns, optOut, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return fb.Customer{ID: id}, fb.Errorf(fb.ENotFound, "no customer %q", id)
	}
	return c, err
}

// Account reads the committed state of one account.
func (s *Store) Account(ctx context.Context, customer string) (*fb.Account, error) {
	var state []byte
	err := s.pool.QueryRow(ctx, `SELECT state FROM accounts WHERE customer = $1`, customer).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fb.Errorf(fb.ENotFound, "no customer %q", customer)
	}
	if err != nil {
		return nil, err
	}
	return codec.DecodeAccount(customer, state)
}

// Hold reads one hold.
func (s *Store) Hold(ctx context.Context, id string) (*fb.Hold, error) {
	h, err := scanHold(s.pool.QueryRow(ctx, `SELECT customer, hold FROM holds WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fb.Errorf(fb.ENotFound, "no hold %s", id)
	}
	return h, err
}

// DueAccounts lists accounts with a pending hold or a free lot remainder
// whose expiry has come.
func (s *Store) DueAccounts(ctx context.Context, now time.Time, limit int) ([]string, error) {
	n := now.UnixNano()
	rows, err := s.pool.Query(ctx, `
		SELECT customer FROM holds WHERE status = 'pending' AND expires_at <= $1
		UNION
		SELECT customer FROM lot_expiries WHERE expires_at <= $1
		LIMIT $2`, n, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Snapshot reads the journal and all state in one repeatable-read,
// read-only transaction.
func (s *Store) Snapshot(ctx context.Context, journal func(*fb.JournalEntry) error) (*fb.Dump, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	if err := scanRows(ctx, tx, `SELECT seq, op, fingerprint, result FROM journal ORDER BY seq`, func(r pgx.Rows) error {
		var e fb.JournalEntry
		var op, res string
		if err := r.Scan(&e.Seq, &op, &e.Fingerprint, &res); err != nil {
			return err
		}
		if err := codec.DecodeEntry(&e, op, res); err != nil {
			return err
		}
		return journal(&e)
	}); err != nil {
		return nil, err
	}
	d := codec.NewDumper()
	if err := scanRows(ctx, tx, `SELECT customer, state FROM accounts`, func(r pgx.Rows) error {
		var c string
		var state []byte
		if err := r.Scan(&c, &state); err != nil {
			return err
		}
		return d.Account(c, state)
	}); err != nil {
		return nil, err
	}
	if err := scanRows(ctx, tx, `SELECT customer, lot FROM dead_lots`, func(r pgx.Rows) error {
		var c string
		var lot []byte
		if err := r.Scan(&c, &lot); err != nil {
			return err
		}
		return d.DeadLot(c, lot)
	}); err != nil {
		return nil, err
	}
	if err := scanRows(ctx, tx, `SELECT customer, id, status, expires_at, hold FROM holds`, func(r pgx.Rows) error {
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
	if err := scanRows(ctx, tx, `SELECT lot, customer, expires_at FROM lot_expiries`, func(r pgx.Rows) error {
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

func scanRows(ctx context.Context, tx pgx.Tx, q string, fn func(pgx.Rows) error) error {
	rows, err := tx.Query(ctx, q)
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

func scanHold(r pgx.Row) (*fb.Hold, error) {
	var customer string
	var b []byte
	if err := r.Scan(&customer, &b); err != nil {
		return nil, err
	}
	return codec.DecodeHold(customer, b)
}

func jsonString(v any) (string, error) {
	b, err := codec.Marshal(v)
	return string(b), err
}

func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// xminTxn is the oldest transaction still running (or the next to start):
// every transaction before it has committed or rolled back.
const xminTxn = `pg_snapshot_xmin(pg_current_snapshot())::text::bigint`

// JournalAfter reads committed entries after cur in (txn, seq) order, only
// of transactions before every one still running: replicas commit out of
// seq order, and an entry of a transaction still running could otherwise
// be committed before one already read.
func (s *Store) JournalAfter(ctx context.Context, cur fb.JournalCursor, limit int) ([]*fb.JournalEntry, fb.JournalCursor, error) {
	rows, err := s.pool.Query(ctx, `SELECT txn, seq, op, fingerprint, result, balance_before, balance_after, lapsed FROM journal
		WHERE (txn, seq) > ($1, $2) AND txn < `+xminTxn+` ORDER BY txn, seq LIMIT $3`, cur.Txn, cur.Seq, limit)
	if err != nil {
		return nil, cur, err
	}
	defer rows.Close()
	var out []*fb.JournalEntry
	for rows.Next() {
		e := &fb.JournalEntry{}
		var op, res string
		var txn, before, after, lapsed int64
		if err := rows.Scan(&txn, &e.Seq, &op, &e.Fingerprint, &res, &before, &after, &lapsed); err != nil {
			return nil, cur, err
		}
		if err := codec.DecodeEntry(e, op, res); err != nil {
			return nil, cur, err
		}
		e.Before, e.After, e.Lapsed = fb.Amount(before), fb.Amount(after), fb.Amount(lapsed)
		out = append(out, e)
		cur = fb.JournalCursor{Txn: txn, Seq: e.Seq}
	}
	return out, cur, rows.Err()
}

// JournalEnd is a cursor after every entry of the transactions that have
// ended: those still running come after it.
func (s *Store) JournalEnd(ctx context.Context) (fb.JournalCursor, error) {
	var x int64
	err := s.pool.QueryRow(ctx, `SELECT `+xminTxn).Scan(&x)
	return fb.JournalCursor{Txn: x - 1, Seq: math.MaxInt64}, err
}

// DailySumsChanged reads, in one snapshot, the rows of the daily sums that
// transactions invisible to the snapshot named by mark changed (none when
// mark is ""), and every row of the whole UTC days [from, to) (none when
// from is zero); mark names this read's snapshot. A replica keeping the
// sums in memory (store/cache) holds them exact with it: whatever
// committed after its last read is in the rows changed since.
func (s *Store) DailySumsChanged(ctx context.Context, mark string, from, to time.Time) (changed, days []fb.DailySum, next string, err error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, "", err
	}
	defer tx.Rollback(ctx)
	if err := tx.QueryRow(ctx, `SELECT pg_current_snapshot()::text`).Scan(&next); err != nil {
		return nil, nil, "", err
	}
	const cols = `day, customer, model, provider, product, plan, requests, credits, revenue_usd, cost_usd, uncollected, breakage_credits, breakage_usd`
	read := func(q string, args ...any) ([]fb.DailySum, error) {
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []fb.DailySum
		for rows.Next() {
			var r fb.DailySum
			var credits, rev, cost, unc, brc, bru int64
			if err := rows.Scan(&r.Day, &r.Customer, &r.Model, &r.Provider, &r.Product, &r.Plan, &r.Requests, &credits, &rev, &cost, &unc, &brc, &bru); err != nil {
				return nil, err
			}
			r.Credits, r.RevenueUSD, r.CostUSD, r.Uncollected = fb.Amount(credits), fb.USD(rev), fb.USD(cost), fb.Amount(unc)
			r.BreakageCredits, r.BreakageUSD = fb.Amount(brc), fb.USD(bru)
			out = append(out, r)
		}
		return out, rows.Err()
	}
	if mark != "" {
		// From the index on last_xid: transactions from the old
		// snapshot's xmin on, less those it saw. They are few, but a
		// table just written in bulk has no statistics to say so yet, and
		// a scan of it (with its dead row versions) costs what this read
		// saves: the index, always.
		if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
			return nil, nil, "", err
		}
		if changed, err = read(`SELECT `+cols+` FROM usage_daily WHERE last_xid >= pg_snapshot_xmin($1::pg_snapshot)
			AND NOT pg_visible_in_snapshot(last_xid, $1::pg_snapshot)`, mark); err != nil {
			return nil, nil, "", fmt.Errorf("daily sums changed: %w", err)
		}
	}
	if !from.IsZero() {
		if days, err = read(`SELECT `+cols+` FROM usage_daily WHERE day >= $1 AND day < $2`,
			from.UTC().Format(time.DateOnly), to.UTC().Format(time.DateOnly)); err != nil {
			return nil, nil, "", fmt.Errorf("daily sums: %w", err)
		}
	}
	return changed, days, next, tx.Commit(ctx)
}
