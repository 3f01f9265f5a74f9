// Package sqlcat implements farebox.Catalog (plans, subscriptions, rate
// cards, API keys, usage queries) over database/sql, for every engine. The
// SQL is plain and the same on SQLite and PostgreSQL; what differs (the
// placeholder style, how a unique violation looks, which handle writes)
// comes from the driver, and each driver owns the tables' schema.
package sqlcat

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	fb "farebox"
	"farebox/pricing"
	"farebox/store/codec"
)

// Catalog is a farebox.Catalog on database handles.
type Catalog struct {
	W, R *sql.DB // writes go to W, reads to R (the same handle is fine)
	// Dollar numbers placeholders $1, $2… (PostgreSQL) instead of ?.
	Dollar bool
	// IsUnique reports a unique-constraint violation.
	IsUnique func(error) bool
}

var _ fb.Catalog = (*Catalog)(nil)

// q rewrites ? placeholders for the driver.
func (c *Catalog) q(query string) string {
	if !c.Dollar {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func notFound(what, id string) error {
	return fb.Errorf(fb.ENotFound, "no %s %q", what, id)
}

// CreatePlan inserts a plan.
func (c *Catalog) CreatePlan(ctx context.Context, p fb.Plan) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = c.W.ExecContext(ctx, c.q(`INSERT INTO plans (id, plan) VALUES (?, ?)`), p.ID, string(b))
	if err != nil && c.IsUnique(err) {
		return fb.ErrPlanExists.New("plan %q already exists", p.ID)
	}
	return err
}

// Plan reads a plan.
func (c *Catalog) Plan(ctx context.Context, id string) (fb.Plan, error) {
	var p fb.Plan
	var doc string
	err := c.R.QueryRowContext(ctx, c.q(`SELECT plan FROM plans WHERE id = ?`), id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return p, notFound("plan", id)
	}
	if err != nil {
		return p, err
	}
	return p, json.Unmarshal([]byte(doc), &p)
}

// Plans lists plans by id.
func (c *Catalog) Plans(ctx context.Context) ([]fb.Plan, error) {
	return list(ctx, c.R, c.q(`SELECT plan FROM plans ORDER BY id`), func(doc string) (fb.Plan, error) {
		var p fb.Plan
		return p, json.Unmarshal([]byte(doc), &p)
	})
}

// DeletePlan removes a plan that no subscription is on or moving to.
func (c *Catalog) DeletePlan(ctx context.Context, id string) error {
	res, err := c.W.ExecContext(ctx, c.q(`DELETE FROM plans WHERE id = ?
		AND NOT EXISTS (SELECT 1 FROM subscriptions WHERE plan = ?)
		AND NOT EXISTS (SELECT 1 FROM subscriptions WHERE next_plan = ?)`), id, id, id)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	if _, err := c.Plan(ctx, id); err != nil {
		return err
	}
	return fb.ErrPlanInUse.New("plan %q is in use by a subscription", id)
}

// PutPrice stores one version of a model's card.
func (c *Catalog) PutPrice(ctx context.Context, p fb.Price) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = c.W.ExecContext(ctx, c.q(`INSERT INTO prices (model, effective_from, price) VALUES (?, ?, ?)
		ON CONFLICT (model, effective_from) DO UPDATE SET price = excluded.price`),
		p.Model, codec.Nanos(p.EffectiveFrom), string(b))
	return err
}

// Prices lists every version of every card. A version stored before the
// card had a cache-write rate gets the default one (pricing.CacheWriteFor).
func (c *Catalog) Prices(ctx context.Context) ([]fb.Price, error) {
	return list(ctx, c.R, c.q(`SELECT price FROM prices ORDER BY model, effective_from`), func(doc string) (fb.Price, error) {
		var p fb.Price
		if err := json.Unmarshal([]byte(doc), &p); err != nil {
			return p, err
		}
		var has struct {
			CacheWrite *json.RawMessage `json:"cache_write_per_mtok"`
		}
		if json.Unmarshal([]byte(doc), &has) == nil && has.CacheWrite == nil {
			p.CacheWritePerMTok = pricing.CacheWriteFor(p.InputPerMTok)
		}
		return p, nil
	})
}

// CreateKey stores a key (its hash, never its secret).
func (c *Catalog) CreateKey(ctx context.Context, k fb.APIKey) error {
	b, err := json.Marshal(k)
	if err != nil {
		return err
	}
	_, err = c.W.ExecContext(ctx, c.q(`INSERT INTO api_keys (id, customer, hash, api_key) VALUES (?, ?, ?, ?)`), k.ID, k.Customer, k.Hash, string(b))
	if err != nil && c.IsUnique(err) {
		return fb.Errorf(fb.EConflict, "key %q already exists", k.ID)
	}
	return err
}

func scanKey(doc string, hash []byte) (fb.APIKey, error) {
	var k fb.APIKey
	err := json.Unmarshal([]byte(doc), &k)
	k.Hash = hash
	return k, err
}

// Keys lists a customer's keys, oldest first.
func (c *Catalog) Keys(ctx context.Context, customer string) ([]fb.APIKey, error) {
	rows, err := c.R.QueryContext(ctx, c.q(`SELECT api_key, hash FROM api_keys WHERE customer = ? ORDER BY id`), customer)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []fb.APIKey
	for rows.Next() {
		var doc string
		var hash []byte
		if err := rows.Scan(&doc, &hash); err != nil {
			return nil, err
		}
		k, err := scanKey(doc, hash)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// KeyByHash finds a key by the hash of its secret.
func (c *Catalog) KeyByHash(ctx context.Context, hash []byte) (fb.APIKey, error) {
	var doc string
	var got []byte
	err := c.R.QueryRowContext(ctx, c.q(`SELECT api_key, hash FROM api_keys WHERE hash = ?`), hash).Scan(&doc, &got)
	if errors.Is(err, sql.ErrNoRows) {
		return fb.APIKey{}, fb.Errorf(fb.ENotFound, "no such key")
	}
	if err != nil {
		return fb.APIKey{}, err
	}
	return scanKey(doc, got)
}

// RevokeKey marks a key revoked, once.
func (c *Catalog) RevokeKey(ctx context.Context, id string, at time.Time) (fb.APIKey, error) {
	tx, err := c.W.BeginTx(ctx, nil)
	if err != nil {
		return fb.APIKey{}, err
	}
	defer tx.Rollback()
	var doc string
	var hash []byte
	err = tx.QueryRowContext(ctx, c.q(`SELECT api_key, hash FROM api_keys WHERE id = ?`), id).Scan(&doc, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return fb.APIKey{}, notFound("key", id)
	}
	if err != nil {
		return fb.APIKey{}, err
	}
	k, err := scanKey(doc, hash)
	if err != nil || !k.RevokedAt.IsZero() {
		return k, err
	}
	k.RevokedAt = at
	b, err := json.Marshal(k)
	if err != nil {
		return k, err
	}
	if _, err := tx.ExecContext(ctx, c.q(`UPDATE api_keys SET api_key = ? WHERE id = ?`), string(b), id); err != nil {
		return k, err
	}
	return k, tx.Commit()
}

// PutSubscription inserts or replaces a customer's subscription.
func (c *Catalog) PutSubscription(ctx context.Context, s fb.Subscription) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = c.W.ExecContext(ctx, c.q(`INSERT INTO subscriptions (customer, plan, next_plan, period_end, sub) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (customer) DO UPDATE SET plan = excluded.plan, next_plan = excluded.next_plan, period_end = excluded.period_end, sub = excluded.sub`),
		s.Customer, s.Plan, s.NextPlan, codec.Nanos(s.PeriodEnd), string(b))
	return err
}

// SwapSubscription replaces old with s if plan, next plan and period end
// are still old's.
func (c *Catalog) SwapSubscription(ctx context.Context, old, s fb.Subscription) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	res, err := c.W.ExecContext(ctx, c.q(`UPDATE subscriptions SET plan = ?, next_plan = ?, period_end = ?, sub = ?
		WHERE customer = ? AND plan = ? AND next_plan = ? AND period_end = ?`),
		s.Plan, s.NextPlan, codec.Nanos(s.PeriodEnd), string(b), old.Customer, old.Plan, old.NextPlan, codec.Nanos(old.PeriodEnd))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		if err != nil {
			return err
		}
		return fb.ErrSubscriptionChanged.New("the subscription of %s changed meanwhile", old.Customer)
	}
	return nil
}

// Subscription reads a customer's subscription.
func (c *Catalog) Subscription(ctx context.Context, customer string) (fb.Subscription, error) {
	var s fb.Subscription
	var doc string
	err := c.R.QueryRowContext(ctx, c.q(`SELECT sub FROM subscriptions WHERE customer = ?`), customer).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return s, notFound("subscription of customer", customer)
	}
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal([]byte(doc), &s)
}

// DueSubscriptions lists subscriptions whose period has ended.
func (c *Catalog) DueSubscriptions(ctx context.Context, now time.Time, limit int) ([]fb.Subscription, error) {
	return list(ctx, c.R, c.q(`SELECT sub FROM subscriptions WHERE period_end <= ? ORDER BY period_end LIMIT ?`), func(doc string) (fb.Subscription, error) {
		var s fb.Subscription
		return s, json.Unmarshal([]byte(doc), &s)
	}, codec.Nanos(now), limit)
}

// ClaimRequest records r unless a request is recorded under its customer,
// scope and key, and returns the recorded one.
func (c *Catalog) ClaimRequest(ctx context.Context, r fb.KeyedRequest) (fb.KeyedRequest, error) {
	_, err := c.W.ExecContext(ctx, c.q(`INSERT INTO keyed_requests (customer, scope, idem_key, fingerprint, at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (customer, scope, idem_key) DO NOTHING`), r.Customer, r.Scope, r.Key, r.Fingerprint, codec.Nanos(r.At))
	if err != nil {
		return r, err
	}
	got := fb.KeyedRequest{Customer: r.Customer, Scope: r.Scope, Key: r.Key}
	var at int64
	var resp sql.NullString
	err = c.W.QueryRowContext(ctx, c.q(`SELECT fingerprint, at, response FROM keyed_requests WHERE customer = ? AND scope = ? AND idem_key = ?`),
		r.Customer, r.Scope, r.Key).Scan(&got.Fingerprint, &at, &resp)
	if err != nil {
		return r, err
	}
	got.At = codec.FromNanos(at)
	if resp.Valid {
		got.Response = []byte(resp.String)
	}
	return got, nil
}

// FinishRequest stores a claimed request's response, once.
func (c *Catalog) FinishRequest(ctx context.Context, customer, scope, key string, response []byte) error {
	res, err := c.W.ExecContext(ctx, c.q(`UPDATE keyed_requests SET response = ? WHERE customer = ? AND scope = ? AND idem_key = ? AND response IS NULL`),
		string(response), customer, scope, key)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	var one int
	err = c.W.QueryRowContext(ctx, c.q(`SELECT 1 FROM keyed_requests WHERE customer = ? AND scope = ? AND idem_key = ?`), customer, scope, key).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fb.Errorf(fb.ENotFound, "no request of %s under key %q", customer, key)
	}
	return err
}

// productColumn names an inference row (product ”) as inference.
const productColumn = "CASE WHEN product = '' THEN 'inference' ELSE product END"

var groupColumns = map[fb.GroupBy]string{fb.GroupModel: "model", fb.GroupDay: "day", fb.GroupProvider: "provider", fb.GroupCustomer: "customer",
	fb.GroupDeployment: "deployment", fb.GroupStatus: "status", fb.GroupProduct: productColumn, fb.GroupPlan: "plan"}

var econColumns = map[fb.GroupBy]string{fb.GroupCustomer: "customer", fb.GroupModel: "model", fb.GroupProvider: "provider", fb.GroupDay: "day",
	fb.GroupProduct: productColumn, fb.GroupPlan: "plan"}

// Usage sums usage rows by f.GroupBy.
func (c *Catalog) Usage(ctx context.Context, f fb.UsageFilter) ([]fb.UsageRow, error) {
	col, ok := groupColumns[f.GroupBy]
	if !ok {
		return nil, fb.Invalid("group_by", "group_by must be model, day, provider, customer, deployment, status, product or plan")
	}
	var where []string
	var args []any
	if f.Customer != "" {
		where, args = append(where, "customer = ?"), append(args, f.Customer)
	}
	if !f.From.IsZero() {
		where, args = append(where, "at >= ?"), append(args, codec.Nanos(f.From))
	}
	if !f.To.IsZero() {
		where, args = append(where, "at < ?"), append(args, codec.Nanos(f.To))
	}
	q := `SELECT ` + col + `, count(*)`
	for _, c := range []string{"input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "cache_write_tokens", "images", "audio_us", "video_us", "gpu_us", "credits", "cost_usd"} {
		q += `, CAST(sum(` + c + `) AS BIGINT)`
	}
	q += ` FROM usage_rows`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " GROUP BY " + col + " ORDER BY " + col
	rows, err := c.R.QueryContext(ctx, c.q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("usage query: %w", err)
	}
	defer rows.Close()
	out := []fb.UsageRow{}
	for rows.Next() {
		var r fb.UsageRow
		var credits, cost int64
		q := &r.Quantities
		if err := rows.Scan(&r.Key, &r.Requests, &q.InputTokens, &q.OutputTokens, &q.CachedInputTokens, &q.ReasoningTokens, &q.CacheWriteTokens,
			&q.Images, &q.AudioMicros, &q.VideoMicros, &q.GPUMicros, &credits, &cost); err != nil {
			return nil, err
		}
		r.Credits, r.CostUSD = fb.Amount(credits), fb.USD(cost)
		out = append(out, r)
	}
	return out, rows.Err()
}

func list[T any](ctx context.Context, db *sql.DB, q string, decode func(string) (T, error), args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		v, err := decode(doc)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// querier is a handle or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Economics sums usage_daily over whole days, by the group and model.
func (c *Catalog) Economics(ctx context.Context, f fb.EconFilter) ([]fb.EconRow, error) {
	return c.economics(ctx, c.R, f)
}

// EconomicsBy runs Economics for each grouping in one read-only
// transaction (one snapshot on either engine).
func (c *Catalog) EconomicsBy(ctx context.Context, f fb.EconFilter, groupings ...fb.GroupBy) ([][]fb.EconRow, error) {
	tx, err := c.R.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: c.snapshot()})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	out := make([][]fb.EconRow, len(groupings))
	for i, g := range groupings {
		f.GroupBy = g
		if out[i], err = c.economics(ctx, tx, f); err != nil {
			return nil, err
		}
	}
	return out, tx.Commit()
}

// snapshot is the isolation under which a read transaction sees one
// snapshot: SQLite's transactions always do (WAL), PostgreSQL's from
// REPEATABLE READ.
func (c *Catalog) snapshot() sql.IsolationLevel {
	if c.Dollar {
		return sql.LevelRepeatableRead
	}
	return sql.LevelDefault
}

// DailySums reads the rows of usage_daily of [from, to) in one read
// transaction, pinning its snapshot with a first read before calling
// pinned.
func (c *Catalog) DailySums(ctx context.Context, from, to time.Time, pinned func()) ([]fb.DailySum, error) {
	tx, err := c.R.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: c.snapshot()})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	// A transaction's snapshot is taken at its first read, on both
	// engines: this one.
	var one int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM usage_daily LIMIT 1) AS pin`).Scan(&one); err != nil {
		return nil, err
	}
	if pinned != nil {
		pinned()
	}
	rows, err := tx.QueryContext(ctx, c.q(`SELECT day, customer, model, provider, product, plan, requests, credits, revenue_usd, cost_usd,
		uncollected, breakage_credits, breakage_usd FROM usage_daily WHERE day >= ? AND day < ?`),
		from.UTC().Format(time.DateOnly), to.UTC().Format(time.DateOnly))
	if err != nil {
		return nil, fmt.Errorf("daily sums query: %w", err)
	}
	defer rows.Close()
	out := []fb.DailySum{}
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
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, tx.Commit()
}

func (c *Catalog) economics(ctx context.Context, db querier, f fb.EconFilter) ([]fb.EconRow, error) {
	col, ok := econColumns[f.GroupBy]
	if !ok {
		return nil, fb.Invalid("group_by", "group_by must be customer, model, provider, day, product or plan")
	}
	var where []string
	var args []any
	if !f.From.IsZero() {
		where, args = append(where, "day >= ?"), append(args, f.From.UTC().Format(time.DateOnly))
	}
	if !f.To.IsZero() {
		where, args = append(where, "day < ?"), append(args, f.To.UTC().Format(time.DateOnly))
	}
	if f.Customer != "" {
		where, args = append(where, "customer = ?"), append(args, f.Customer)
	}
	q := `SELECT ` + col + `, model`
	for _, s := range []string{"requests", "credits", "revenue_usd", "cost_usd", "uncollected", "breakage_credits", "breakage_usd"} {
		q += `, CAST(sum(` + s + `) AS BIGINT)`
	}
	q += ` FROM usage_daily`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " GROUP BY " + col + ", model ORDER BY " + col + ", model"
	rows, err := db.QueryContext(ctx, c.q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("economics query: %w", err)
	}
	defer rows.Close()
	var out []fb.EconRow
	for rows.Next() {
		var r fb.EconRow
		var credits, rev, cost, unc, brc, bru int64
		if err := rows.Scan(&r.Key, &r.Model, &r.Requests, &credits, &rev, &cost, &unc, &brc, &bru); err != nil {
			return nil, err
		}
		r.Credits, r.RevenueUSD, r.CostUSD, r.Uncollected = fb.Amount(credits), fb.USD(rev), fb.USD(cost), fb.Amount(unc)
		r.BreakageCredits, r.BreakageUSD = fb.Amount(brc), fb.USD(bru)
		out = append(out, r)
	}
	return out, rows.Err()
}
