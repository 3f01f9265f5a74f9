-- Migration 11: sponsored suggestions. Accounts are customers' or
-- advertisers' (kind), and a customer may opt out of suggestions. A usage
-- row of product ads keeps the campaign's topic and the decision score it
-- was shown at (never any text of the request). Campaigns are JSON
-- documents beside the columns queries use; ad_views counts each end
-- user's views of a campaign per UTC day, for frequency caps (subject is a
-- digest, not the user's id); settings keeps values every replica shares
-- (the key that signs click links).
ALTER TABLE customers ADD COLUMN kind              TEXT    NOT NULL DEFAULT 'customer';
ALTER TABLE customers ADD COLUMN sponsored_opt_out INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_rows ADD COLUMN topic TEXT    NOT NULL DEFAULT '';
ALTER TABLE usage_rows ADD COLUMN score INTEGER NOT NULL DEFAULT 0;
CREATE INDEX usage_ads ON usage_rows (model, at) WHERE product = 'ads';

CREATE TABLE campaigns (
    id         TEXT    PRIMARY KEY,
    advertiser TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    campaign   TEXT    NOT NULL
) WITHOUT ROWID;

CREATE TABLE ad_views (
    campaign TEXT    NOT NULL,
    subject  TEXT    NOT NULL,
    day      TEXT    NOT NULL,
    views    INTEGER NOT NULL,
    PRIMARY KEY (campaign, subject, day)
) WITHOUT ROWID;
CREATE INDEX ad_views_day ON ad_views (day);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
