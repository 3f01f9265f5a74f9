package sqlcat

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	fb "farebox"
	"farebox/store/codec"
)

// CreateCampaign inserts a campaign at version 1.
func (c *Catalog) CreateCampaign(ctx context.Context, cp fb.Campaign) error {
	cp.Version = 1
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	_, err = c.W.ExecContext(ctx, c.q(`INSERT INTO campaigns (id, advertiser, version, campaign) VALUES (?, ?, ?, ?)`), cp.ID, cp.Advertiser, cp.Version, string(b))
	if err != nil && c.IsUnique(err) {
		return fb.ErrCampaignExists.New("campaign %q already exists", cp.ID)
	}
	return err
}

func scanCampaign(doc string, version int64) (fb.Campaign, error) {
	var cp fb.Campaign
	err := json.Unmarshal([]byte(doc), &cp)
	cp.Version = version
	return cp, err
}

// Campaign reads a campaign.
func (c *Catalog) Campaign(ctx context.Context, id string) (fb.Campaign, error) {
	var doc string
	var v int64
	err := c.R.QueryRowContext(ctx, c.q(`SELECT campaign, version FROM campaigns WHERE id = ?`), id).Scan(&doc, &v)
	if errors.Is(err, sql.ErrNoRows) {
		return fb.Campaign{}, notFound("campaign", id)
	}
	if err != nil {
		return fb.Campaign{}, err
	}
	return scanCampaign(doc, v)
}

// Campaigns lists every campaign by id.
func (c *Catalog) Campaigns(ctx context.Context) ([]fb.Campaign, error) {
	rows, err := c.R.QueryContext(ctx, c.q(`SELECT campaign, version FROM campaigns ORDER BY id`))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []fb.Campaign{}
	for rows.Next() {
		var doc string
		var v int64
		if err := rows.Scan(&doc, &v); err != nil {
			return nil, err
		}
		cp, err := scanCampaign(doc, v)
		if err != nil {
			return nil, err
		}
		out = append(out, cp)
	}
	return out, rows.Err()
}

// SwapCampaign replaces a campaign still at cp.Version with cp, at the
// next version.
func (c *Catalog) SwapCampaign(ctx context.Context, cp fb.Campaign) error {
	old := cp.Version
	cp.Version++
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	res, err := c.W.ExecContext(ctx, c.q(`UPDATE campaigns SET version = ?, advertiser = ?, campaign = ? WHERE id = ? AND version = ?`),
		cp.Version, cp.Advertiser, string(b), cp.ID, old)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	if _, err := c.Campaign(ctx, cp.ID); err != nil {
		return err
	}
	return fb.ErrCampaignChanged.New("campaign %q changed meanwhile", cp.ID)
}

// DeleteCampaign removes a campaign (its charges stay in the usage rows).
func (c *Catalog) DeleteCampaign(ctx context.Context, id string) error {
	res, err := c.W.ExecContext(ctx, c.q(`DELETE FROM campaigns WHERE id = ?`), id)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	return notFound("campaign", id)
}

// CampaignStats counts a campaign's charged impressions and clicks and sums
// their credits over [from, to).
func (c *Catalog) CampaignStats(ctx context.Context, cp fb.Campaign, from, to time.Time) (fb.CampaignStats, error) {
	q := `SELECT status, count(*), CAST(coalesce(sum(credits), 0) AS BIGINT) FROM usage_rows WHERE product = ? AND model = ?`
	args := []any{fb.ProductAds, cp.UsageModel()}
	if !from.IsZero() {
		q, args = q+` AND at >= ?`, append(args, codec.Nanos(from))
	}
	if !to.IsZero() {
		q, args = q+` AND at < ?`, append(args, codec.Nanos(to))
	}
	rows, err := c.R.QueryContext(ctx, c.q(q+` GROUP BY status`), args...)
	if err != nil {
		return fb.CampaignStats{}, err
	}
	defer rows.Close()
	var st fb.CampaignStats
	for rows.Next() {
		var status string
		var n, credits int64
		if err := rows.Scan(&status, &n, &credits); err != nil {
			return st, err
		}
		switch status {
		case fb.StatusImpression:
			st.Impressions += n
		case fb.StatusClick:
			st.Clicks += n
		}
		if st.Spend, err = st.Spend.Add(fb.Amount(credits)); err != nil {
			return st, err
		}
	}
	return st, rows.Err()
}

// CountView counts a view of a campaign by subject on day unless limit are
// counted: the upsert's condition and its increment are one statement, so
// concurrent views (on any replica) never pass the limit.
func (c *Catalog) CountView(ctx context.Context, campaign, subject string, day time.Time, limit int64) (bool, error) {
	if limit <= 0 {
		return false, nil
	}
	res, err := c.W.ExecContext(ctx, c.q(`INSERT INTO ad_views (campaign, subject, day, views) VALUES (?, ?, ?, 1)
		ON CONFLICT (campaign, subject, day) DO UPDATE SET views = ad_views.views + 1 WHERE ad_views.views < ?`),
		campaign, subject, day.UTC().Format(time.DateOnly), limit)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// UncountView takes back one counted view.
func (c *Catalog) UncountView(ctx context.Context, campaign, subject string, day time.Time) error {
	_, err := c.W.ExecContext(ctx, c.q(`UPDATE ad_views SET views = views - 1 WHERE campaign = ? AND subject = ? AND day = ? AND views > 0`),
		campaign, subject, day.UTC().Format(time.DateOnly))
	return err
}

// PruneViews forgets the views of days before before.
func (c *Catalog) PruneViews(ctx context.Context, before time.Time) (int64, error) {
	res, err := c.W.ExecContext(ctx, c.q(`DELETE FROM ad_views WHERE day < ?`), before.UTC().Format(time.DateOnly))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Setting returns the value stored under name, storing def when there is
// none: the first writer's value wins, and every reader gets it.
func (c *Catalog) Setting(ctx context.Context, name, def string) (string, error) {
	if _, err := c.W.ExecContext(ctx, c.q(`INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`), name, def); err != nil {
		return "", err
	}
	var v string
	err := c.W.QueryRowContext(ctx, c.q(`SELECT value FROM settings WHERE name = ?`), name).Scan(&v)
	return v, err
}
