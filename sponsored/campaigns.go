package sponsored

import (
	"context"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	fb "farebox"
)

// Bounds of a campaign's fields.
const (
	maxTopics   = 20
	maxPhrases  = 200
	maxLabel    = 100 // a topic or phrase, in characters
	maxTitle    = 100
	maxText     = 300
	maxURL      = 2048
	maxFreqCap  = 1000
	maxCampaign = 64 // id length (ids are checked at the edge)
)

// Validate checks a campaign's own fields and fills in defaults (empty
// lists). The advertiser is checked by Create and Update.
func Validate(c *fb.Campaign) error {
	if c.ID == "" || len(c.ID) > maxCampaign {
		return fb.Invalid("id", "id is required")
	}
	lists := []struct {
		name string
		v    *[]string
		min  int
		max  int
	}{{"topics", &c.Topics, 1, maxTopics}, {"phrases", &c.Phrases, 0, maxPhrases}, {"exclude_topics", &c.ExcludeTopics, 0, maxTopics}}
	for _, l := range lists {
		if *l.v == nil {
			*l.v = []string{}
		}
		if len(*l.v) < l.min || len(*l.v) > l.max {
			return fb.Invalid(l.name, "%s must have from %d to %d entries", l.name, l.min, l.max)
		}
		for i, s := range *l.v {
			if s == "" || utf8.RuneCountInString(s) > maxLabel || !fb.Printable(s) {
				return fb.Invalid(l.name, "%s[%d] must be 1 to %d printable characters", l.name, i, maxLabel)
			}
			if len(normWords(s)) == 0 {
				return fb.Invalid(l.name, "%s[%d] %q has no words to match", l.name, i, s)
			}
		}
	}
	for _, f := range []struct {
		name     string
		v        string
		min, max int
	}{{"title", c.Title, 1, maxTitle}, {"text", c.Text, 0, maxText}} {
		if n := utf8.RuneCountInString(f.v); n < f.min || n > f.max || !fb.Printable(f.v) {
			return fb.Invalid(f.name, "%s must be %d to %d printable characters", f.name, f.min, f.max)
		}
	}
	u, err := url.Parse(c.URL)
	if err != nil || len(c.URL) > maxURL || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || strings.ContainsAny(c.URL, " \t\r\n") {
		return fb.Invalid("url", "url must be an absolute http or https URL of at most %d bytes, without credentials", maxURL)
	}
	for _, a := range []struct {
		name string
		v    fb.Amount
	}{{"bid_per_impression", c.BidPerImpression}, {"bid_per_click", c.BidPerClick}, {"daily_budget", c.DailyBudget}} {
		if a.v < 0 || a.v > fb.MaxTotal {
			return fb.Invalid(a.name, "%s must be between 0 and %s", a.name, fb.MaxTotal)
		}
	}
	if c.FrequencyCap < 0 || c.FrequencyCap > maxFreqCap {
		return fb.Invalid("frequency_cap_per_user_per_day", "frequency_cap_per_user_per_day must be from 0 (none) to %d", maxFreqCap)
	}
	return nil
}

// checkAdvertiser makes sure a campaign's advertiser is an advertiser's
// account.
func (s *Service) checkAdvertiser(ctx context.Context, id string) error {
	a, err := s.store.Customer(ctx, id)
	if fb.ErrorType(err) == fb.ENotFound {
		return fb.ErrUnknownCustomer.New("no advertiser %q", id).WithParam("advertiser")
	}
	if err != nil {
		return err
	}
	if a.Kind != fb.KindAdvertiser {
		return fb.Invalid("advertiser", "%q is a customer, not an advertiser (POST /api/v1/advertisers makes one)", id)
	}
	return nil
}

// Create stores a new campaign and serves it at once.
func (s *Service) Create(ctx context.Context, c fb.Campaign) (fb.Campaign, error) {
	if err := Validate(&c); err != nil {
		return c, err
	}
	if err := s.checkAdvertiser(ctx, c.Advertiser); err != nil {
		return c, err
	}
	now := s.clock.Now().UTC().Truncate(time.Microsecond)
	c.CreatedAt, c.UpdatedAt = now, now
	if err := s.store.CreateCampaign(ctx, c); err != nil {
		return c, err
	}
	c.Version = 1
	return c, s.Load(ctx)
}

// Get reads a campaign.
func (s *Service) Get(ctx context.Context, id string) (fb.Campaign, error) {
	return s.store.Campaign(ctx, id)
}

// List reads every campaign, by id.
func (s *Service) List(ctx context.Context) ([]fb.Campaign, error) {
	return s.store.Campaigns(ctx)
}

// Update applies change to the stored campaign and stores it, validated,
// if nobody changed it meanwhile (else it reads it again and retries), and
// serves it at once.
func (s *Service) Update(ctx context.Context, id string, change func(*fb.Campaign) error) (fb.Campaign, error) {
	for {
		c, err := s.store.Campaign(ctx, id)
		if err != nil {
			return c, err
		}
		advertiser := c.Advertiser
		if err := change(&c); err != nil {
			return c, err
		}
		c.ID = id
		if err := Validate(&c); err != nil {
			return c, err
		}
		if c.Advertiser != advertiser {
			if err := s.checkAdvertiser(ctx, c.Advertiser); err != nil {
				return c, err
			}
		}
		c.UpdatedAt = s.clock.Now().UTC().Truncate(time.Microsecond)
		err = s.store.SwapCampaign(ctx, c)
		if fb.ErrorCode(err) == fb.ErrCampaignChanged.Code {
			continue
		}
		if err != nil {
			return c, err
		}
		c.Version++
		return c, s.Load(ctx)
	}
}

// Delete removes a campaign: it is no longer served, and its links no
// longer charged (they answer 404). Its charges stay in the reports.
func (s *Service) Delete(ctx context.Context, id string) error {
	if err := s.store.DeleteCampaign(ctx, id); err != nil {
		return err
	}
	return s.Load(ctx)
}

// Stats counts a campaign's charged impressions and clicks and its spend
// over [from, to).
func (s *Service) Stats(ctx context.Context, id string, from, to time.Time) (fb.CampaignStats, error) {
	c, err := s.store.Campaign(ctx, id)
	if err != nil {
		return fb.CampaignStats{}, err
	}
	return s.store.CampaignStats(ctx, c, from, to)
}
