-- Migration 11: sponsored suggestions. Accounts are customers' or
-- advertisers' (kind), and a customer may opt out of suggestions. A usage
-- row of product ads keeps the campaign's topic and the decision score it
-- was shown at (never any text of the request). Campaigns are JSON
-- documents beside the columns queries use; ad_views counts each end
-- user's views of a campaign per UTC day, for frequency caps (subject is a
-- digest, not the user's id); settings keeps values every replica shares
-- (the key that signs click links).
ALTER TABLE customers ADD COLUMN kind              text    NOT NULL DEFAULT 'customer';
ALTER TABLE customers ADD COLUMN sponsored_opt_out boolean NOT NULL DEFAULT false;
ALTER TABLE usage_rows ADD COLUMN topic text   NOT NULL DEFAULT '';
ALTER TABLE usage_rows ADD COLUMN score bigint NOT NULL DEFAULT 0;
CREATE INDEX usage_ads ON usage_rows (model, at) WHERE product = 'ads';

CREATE TABLE campaigns (
    id         text   PRIMARY KEY,
    advertiser text   NOT NULL,
    version    bigint NOT NULL,
    campaign   text   NOT NULL
);

CREATE TABLE ad_views (
    campaign text   NOT NULL,
    subject  text   NOT NULL,
    day      text   NOT NULL,
    views    bigint NOT NULL,
    PRIMARY KEY (campaign, subject, day)
);
CREATE INDEX ad_views_day ON ad_views (day);

CREATE TABLE settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);
