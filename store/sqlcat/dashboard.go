package sqlcat

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	fb "farebox"
	"farebox/store/codec"
)

// The dashboard's reads (each served by an index: usage rows by customer
// and time, customers by id, the journal by seq) and its sessions.

// UsageRows lists a customer's usage rows newest first, from the index on
// (customer, at).
func (c *Catalog) UsageRows(ctx context.Context, f fb.UsageList) ([]fb.Usage, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	q := `SELECT id, source, customer, model, provider, at, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens,
		images, audio_us, video_us, gpu_us, requests, credits, cost_usd, key_id, deployment, latency_us, ttft_us, status,
		revenue_usd, uncollected, product, plan, cache_write_tokens FROM usage_rows WHERE customer = ?`
	args := []any{f.Customer}
	if !f.BeforeAt.IsZero() {
		at := codec.Nanos(f.BeforeAt)
		q += ` AND (at < ? OR (at = ? AND id < ?))`
		args = append(args, at, at, f.BeforeID)
	}
	q += ` ORDER BY at DESC, id DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := c.R.QueryContext(ctx, c.q(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []fb.Usage{}
	for rows.Next() {
		var u fb.Usage
		var at, credits, cost, lat, ttft, rev, unc int64
		q := &u.Quantities
		if err := rows.Scan(&u.ID, &u.Source, &u.Customer, &u.Model, &u.Provider, &at, &q.InputTokens, &q.OutputTokens,
			&q.CachedInputTokens, &q.ReasoningTokens, &q.Images, &q.AudioMicros, &q.VideoMicros, &q.GPUMicros, &q.Requests,
			&credits, &cost, &u.KeyID, &u.Deployment, &lat, &ttft, &u.Status, &rev, &unc, &u.Product, &u.Plan, &q.CacheWriteTokens); err != nil {
			return nil, err
		}
		u.At = codec.FromNanos(at)
		u.Credits, u.CostUSD, u.RevenueUSD, u.Uncollected = fb.Amount(credits), fb.USD(cost), fb.USD(rev), fb.Amount(unc)
		u.Latency, u.TTFT = time.Duration(lat)*time.Microsecond, time.Duration(ttft)*time.Microsecond
		out = append(out, u)
	}
	return out, rows.Err()
}

// LastUsage probes the (customer, at) index once per customer.
func (c *Catalog) LastUsage(ctx context.Context, customers []string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	if len(customers) == 0 {
		return out, nil
	}
	st, err := c.R.PrepareContext(ctx, c.q(`SELECT max(at) FROM usage_rows WHERE customer = ?`))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	for _, id := range customers {
		var at sql.NullInt64
		if err := st.QueryRowContext(ctx, id).Scan(&at); err != nil {
			return nil, err
		}
		if at.Valid {
			out[id] = codec.FromNanos(at.Int64)
		}
	}
	return out, nil
}

// FindCustomers pages through customers by id; a query matches an id
// prefix or a name's substring, case-insensitively.
func (c *Catalog) FindCustomers(ctx context.Context, query, startingAfter string, limit int) ([]fb.Customer, error) {
	q := `SELECT id, name, kind, sponsored_opt_out, created_at FROM customers WHERE id > ?`
	args := []any{startingAfter}
	if query != "" {
		// LIKE's own wildcards in the query are matched literally.
		esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(strings.ToLower(query))
		q += ` AND (lower(id) LIKE ? ESCAPE '\' OR lower(name) LIKE ? ESCAPE '\')`
		args = append(args, esc+"%", "%"+esc+"%")
	}
	q += ` ORDER BY id LIMIT ?`
	args = append(args, limit)
	rows, err := c.R.QueryContext(ctx, c.q(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []fb.Customer{}
	for rows.Next() {
		var cu fb.Customer
		var at int64
		if err := rows.Scan(&cu.ID, &cu.Name, &cu.Kind, &cu.SponsoredOptOut, &at); err != nil {
			return nil, err
		}
		cu.CreatedAt = codec.FromNanos(at)
		out = append(out, cu)
	}
	return out, rows.Err()
}

// JournalSeq reads the journal's last sequence number from its key.
func (c *Catalog) JournalSeq(ctx context.Context) (int64, error) {
	var seq sql.NullInt64
	err := c.R.QueryRowContext(ctx, `SELECT max(seq) FROM journal`).Scan(&seq)
	return seq.Int64, err
}

// CreateSession stores a session.
func (c *Catalog) CreateSession(ctx context.Context, s fb.Session) error {
	_, err := c.W.ExecContext(ctx, c.q(`INSERT INTO sessions (id, customer, key_id, created_at, expires_at, ended_at) VALUES (?, ?, ?, ?, ?, 0)`),
		s.ID, s.Customer, s.KeyID, codec.Nanos(s.CreatedAt), codec.Nanos(s.ExpiresAt))
	if err != nil && c.IsUnique(err) {
		return fb.Errorf(fb.EConflict, "session %q already exists", s.ID)
	}
	return err
}

// Session reads a session by id.
func (c *Catalog) Session(ctx context.Context, id string) (fb.Session, error) {
	s := fb.Session{ID: id}
	var created, expires, ended int64
	err := c.R.QueryRowContext(ctx, c.q(`SELECT customer, key_id, created_at, expires_at, ended_at FROM sessions WHERE id = ?`), id).
		Scan(&s.Customer, &s.KeyID, &created, &expires, &ended)
	if errors.Is(err, sql.ErrNoRows) {
		return s, fb.Errorf(fb.ENotFound, "no such session")
	}
	if err != nil {
		return s, err
	}
	s.CreatedAt, s.ExpiresAt = codec.FromNanos(created), codec.FromNanos(expires)
	if ended != 0 {
		s.EndedAt = codec.FromNanos(ended)
	}
	return s, nil
}

// EndSession ends a session once.
func (c *Catalog) EndSession(ctx context.Context, id string, at time.Time) error {
	res, err := c.W.ExecContext(ctx, c.q(`UPDATE sessions SET ended_at = ? WHERE id = ? AND ended_at = 0`), codec.Nanos(at), id)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	_, err = c.Session(ctx, id)
	return err
}

// DeleteSessions removes sessions that expired before before.
func (c *Catalog) DeleteSessions(ctx context.Context, before time.Time) (int64, error) {
	res, err := c.W.ExecContext(ctx, c.q(`DELETE FROM sessions WHERE expires_at < ?`), codec.Nanos(before))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// keptVerifications is how many verifications are kept: the page shows
// the last, the others are there to look at by hand.
const keptVerifications = 100

// AddVerification inserts a verification and forgets the oldest past
// keptVerifications.
func (c *Catalog) AddVerification(ctx context.Context, v fb.Verification) error {
	problems, err := json.Marshal(append([]string{}, v.Problems...))
	if err != nil {
		return err
	}
	if _, err := c.W.ExecContext(ctx, c.q(`INSERT INTO verifications (at, took_us, entries, accounts, problems, error) VALUES (?, ?, ?, ?, ?, ?)`),
		codec.Nanos(v.At), v.Took.Microseconds(), v.Entries, v.Accounts, string(problems), v.Err); err != nil {
		return err
	}
	_, err = c.W.ExecContext(ctx, c.q(`DELETE FROM verifications WHERE id <= (SELECT max(id) FROM verifications) - ?`), keptVerifications)
	return err
}

// LastVerification reads the latest verification.
func (c *Catalog) LastVerification(ctx context.Context) (fb.Verification, error) {
	var v fb.Verification
	var at, took int64
	var problems string
	err := c.R.QueryRowContext(ctx, `SELECT at, took_us, entries, accounts, problems, error FROM verifications ORDER BY at DESC, id DESC LIMIT 1`).
		Scan(&at, &took, &v.Entries, &v.Accounts, &problems, &v.Err)
	if errors.Is(err, sql.ErrNoRows) {
		return v, fb.Errorf(fb.ENotFound, "the ledger has not been verified from the dashboard")
	}
	if err != nil {
		return v, err
	}
	v.At, v.Took = codec.FromNanos(at), time.Duration(took)*time.Microsecond
	if err := json.Unmarshal([]byte(problems), &v.Problems); err != nil {
		return v, fmt.Errorf("verification problems: %w", err)
	}
	if len(v.Problems) == 0 {
		v.Problems = nil
	}
	return v, nil
}
