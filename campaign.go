package farebox

import "time"

// CustomerKind says what a ledger account is for: a customer's credits, or
// an advertiser's, who pays for sponsored suggestions. Both live in one
// namespace of ids and are granted credits and read the same way.
type CustomerKind string

// Kinds of accounts. A customer stored before kinds existed is a customer.
const (
	KindCustomer   CustomerKind = "customer"
	KindAdvertiser CustomerKind = "advertiser"
)

// Valid reports whether k is a known kind.
func (k CustomerKind) Valid() bool { return k == KindCustomer || k == KindAdvertiser }

// Campaign is an advertiser's sponsored suggestion and what it pays: shown
// beside an answer when a request is a decision moment that its topics or
// phrases tie it to. Bids and the daily budget are credits of the
// advertiser's account; FrequencyCap bounds how often one end user sees
// it in a UTC day (0: no bound).
type Campaign struct {
	ID         string `json:"id"`
	Advertiser string `json:"advertiser"`
	// Topics are free-form labels (shown in reports, matched like
	// phrases); Phrases the words, in any language, that tie a message to
	// the campaign; a message that matches one of ExcludeTopics never
	// carries it.
	Topics           []string  `json:"topics"`
	Phrases          []string  `json:"phrases"`
	ExcludeTopics    []string  `json:"exclude_topics"`
	Title            string    `json:"title"`
	Text             string    `json:"text"`
	URL              string    `json:"url"`
	BidPerImpression Amount    `json:"bid_per_impression"`
	BidPerClick      Amount    `json:"bid_per_click"`
	DailyBudget      Amount    `json:"daily_budget"`
	FrequencyCap     int64     `json:"frequency_cap_per_user_per_day"`
	Active           bool      `json:"active"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
	// Version counts the campaign's changes, for SwapCampaign.
	Version int64 `json:"-"`
}

// Budget is the ledger budget every impression and click of the campaign
// counts against, inside its own op: the daily budget, on the advertiser's
// account, so that no number of concurrent charges can pass it.
func (c *Campaign) Budget() *BudgetRef {
	return &BudgetRef{ID: "campaign:" + c.ID, Limit: c.DailyBudget, Period: BudgetDay}
}

// UsageModel is the model a campaign's usage rows name, so that reports
// by model show each campaign apart from the models.
func (c *Campaign) UsageModel() string { return "campaign:" + c.ID }

// CampaignStats is what a campaign was charged for over a time range.
type CampaignStats struct {
	Impressions int64  `json:"impressions"`
	Clicks      int64  `json:"clicks"`
	Spend       Amount `json:"spend"`
}

// Usage statuses of sponsored suggestions' charges.
const (
	StatusImpression = "impression"
	StatusClick      = "click"
)
