package farebox

import (
	"time"
)

// Period is the length of a plan's billing period.
type Period string

// Billing periods. Periods are in UTC; a month or a year anchored on a day
// a shorter month lacks ends on that month's last day.
const (
	PeriodDay   Period = "day"
	PeriodWeek  Period = "week"
	PeriodMonth Period = "month"
	PeriodYear  Period = "year"
)

// Valid reports whether p is a known period.
func (p Period) Valid() bool {
	switch p {
	case PeriodDay, PeriodWeek, PeriodMonth, PeriodYear:
		return true
	}
	return false
}

// Plan is what a subscription buys each period: a credit allowance for a
// price, how much unused credit rolls over, the overdraft allowed, the
// models it may use and its rate limits.
type Plan struct {
	ID             string   `json:"id"`
	Name           string   `json:"name"`
	PriceUSD       USD      `json:"price_usd"`
	Period         Period   `json:"period"`
	Credits        Amount   `json:"credits"`
	RolloverMax    Amount   `json:"rollover_max"`
	OverdraftLimit Amount   `json:"overdraft_limit"`
	Models         []string `json:"models"` // globs; "*" is every model
	RPM            int64    `json:"rpm"`    // 0: unlimited
	TPM            int64    `json:"tpm"`    // 0: unlimited
	// Downgrade names, for a model, the cheaper model that serves a
	// request the balance or the key's budget cannot pay the requested
	// model's minimum for, instead of a 402. Off unless it names pairs.
	Downgrade map[string]string `json:"downgrade,omitempty"`
	// LowBalance and ExpiringDays are the plan's default thresholds for
	// its customers' webhooks (see Alerts); 0: none.
	LowBalance   Amount `json:"low_balance,omitempty"`
	ExpiringDays int    `json:"expiring_days,omitempty"`
	// Sponsored opts the plan in to sponsored suggestions at decision
	// moments (a free tier they pay for).
	Sponsored bool      `json:"sponsored"`
	CreatedAt time.Time `json:"created_at"`
}

// Subscription is a customer's place on a plan: the current period, and a
// plan change waiting for the period's end.
type Subscription struct {
	Customer    string    `json:"customer"`
	Plan        string    `json:"plan"`
	Anchor      time.Time `json:"anchor"` // periods are counted from here
	PeriodStart time.Time `json:"current_period_start"`
	PeriodEnd   time.Time `json:"current_period_end"`
	NextPlan    string    `json:"next_plan,omitempty"` // takes effect at PeriodEnd
	UpdatedAt   time.Time `json:"updated_at"`
}

// KeyedRequest is a management request made under a client's idempotency
// key that is not one ledger op (whose key the journal keeps): what was
// asked (Fingerprint), when it was first tried, and its response once it
// finished (nil until then), so a retry answers the first response or
// finishes the first attempt as of its time.
type KeyedRequest struct {
	Customer    string
	Scope       string // what kind of request, e.g. "subscription"
	Key         string
	Fingerprint string
	At          time.Time
	Response    []byte
}

// Rates is a rate card for one model, in credits: per 1M tokens of each
// kind, per image, per second of audio, video and GPU, per request.
type Rates struct {
	InputPerMTok       Amount `json:"input_per_mtok"`
	OutputPerMTok      Amount `json:"output_per_mtok"`
	CachedInputPerMTok Amount `json:"cached_input_per_mtok"`
	ReasoningPerMTok   Amount `json:"reasoning_per_mtok"`
	// CacheWritePerMTok prices input tokens written to a provider's
	// prompt cache (Anthropic bills them above the input rate).
	CacheWritePerMTok Amount `json:"cache_write_per_mtok"`
	PerImage          Amount `json:"per_image"`
	PerAudioSecond    Amount `json:"per_audio_second"`
	PerVideoSecond    Amount `json:"per_video_second"`
	PerGPUSecond      Amount `json:"per_gpu_second"`
	PerRequest        Amount `json:"per_request"`
}

// Price is one version of a model's rate card, in force from EffectiveFrom
// until the next version's.
type Price struct {
	Model         string    `json:"model"`
	Rates                   // inlined in JSON
	EffectiveFrom time.Time `json:"effective_from"`
	CreatedAt     time.Time `json:"created_at"`
}

// Quantities is what a usage consumed. Seconds are in micro-seconds (the
// API takes them with up to 6 decimals, like amounts).
type Quantities struct {
	InputTokens       int64 `json:"input_tokens,omitempty"`
	OutputTokens      int64 `json:"output_tokens,omitempty"`
	CachedInputTokens int64 `json:"cached_input_tokens,omitempty"`
	ReasoningTokens   int64 `json:"reasoning_tokens,omitempty"`
	// CacheWriteTokens are input tokens written to the provider's prompt
	// cache (Anthropic's cache_creation_input_tokens).
	CacheWriteTokens int64 `json:"cache_write_tokens,omitempty"`
	Images           int64 `json:"images,omitempty"`
	AudioMicros      int64 `json:"audio_us,omitempty"`
	VideoMicros      int64 `json:"video_us,omitempty"`
	GPUMicros        int64 `json:"gpu_us,omitempty"`
	Requests         int64 `json:"requests,omitempty"`
}

// Usage is one priced use of a model (a metered event, or later a gateway
// request), stored with the debit that paid for it.
type Usage struct {
	ID       string    `json:"id"`     // the event's id or the request id
	Source   string    `json:"source"` // the event's source, or "gateway"
	Customer string    `json:"customer"`
	Model    string    `json:"model"`
	Provider string    `json:"provider,omitempty"`
	At       time.Time `json:"at"`
	Quantities
	Credits Amount `json:"credits"`
	CostUSD USD    `json:"cost_usd"`
	// Of a gateway request: the key that made it, the deployment that
	// served it, its latency and time to first token, and how it ended
	// (see gateway's Status values).
	// RevenueUSD is what the credits it took had been paid for (each
	// lot's cost basis, recognised exactly: see ledger.Recognize);
	// Uncollected the part of its price no credit covered. The engine
	// fills both in.
	RevenueUSD  USD    `json:"revenue_usd"`
	Uncollected Amount `json:"uncollected"`
	// Product is what the usage sells: "" (inference), "lease" or "ads";
	// Plan the plan of the customer it is reported under by plan (the
	// requester's, or for an ad the plan of the request that carried it).
	Product string `json:"product,omitempty"`
	Plan    string `json:"plan,omitempty"`
	// RequestedModel is the model the request asked for when its plan
	// served it by a cheaper one (Model); "" when it was served as asked.
	RequestedModel string `json:"requested_model,omitempty"`
	// Of a sponsored suggestion's charge (product "ads"): the campaign's
	// topic it was shown for and the decision score (the classifier's
	// probability, in millionths). No text of the request is kept.
	Topic      string        `json:"topic,omitempty"`
	Score      int64         `json:"score,omitempty"`
	KeyID      string        `json:"key_id,omitempty"`
	Deployment string        `json:"deployment,omitempty"`
	Latency    time.Duration `json:"latency,omitempty"`
	TTFT       time.Duration `json:"ttft,omitempty"`
	Status     string        `json:"status,omitempty"`
}

// APIKey is a customer's key to the gateway. Only a hash of the secret is
// kept; the secret is shown once, when the key is made.
type APIKey struct {
	ID        string    `json:"id"`
	Customer  string    `json:"customer"`
	Name      string    `json:"name"`
	Prefix    string    `json:"prefix"`
	Hash      []byte    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// Budget, when set, caps what the key's requests may spend in each
	// BudgetPeriod (enforced inside the hold that guards the balance:
	// see BudgetRef); RPM, when set, is the key's own requests per minute.
	Budget       *Amount      `json:"budget,omitempty"`
	BudgetPeriod BudgetPeriod `json:"budget_period,omitempty"`
	RPM          int64        `json:"rpm"`
}

// BudgetRef is the budget the key's requests count against, nil for none.
func (k *APIKey) BudgetRef() *BudgetRef {
	if k.Budget == nil {
		return nil
	}
	p := k.BudgetPeriod
	if p == "" {
		p = BudgetMonth
	}
	return &BudgetRef{ID: "key:" + k.ID, Limit: *k.Budget, Period: p}
}

// GroupBy is what usage and economics rows are grouped by.
type GroupBy string

// Groupings. Usage takes all of them; economics reports customer, model,
// provider, day, product and plan.
const (
	GroupModel      GroupBy = "model"
	GroupDay        GroupBy = "day"
	GroupProvider   GroupBy = "provider"
	GroupCustomer   GroupBy = "customer"
	GroupDeployment GroupBy = "deployment"
	GroupStatus     GroupBy = "status"
	GroupProduct    GroupBy = "product"
	GroupPlan       GroupBy = "plan"
)

// Products a usage sells: inference is the default, "".
const (
	ProductInference = "inference"
	ProductLease     = "lease"
	ProductAds       = "ads"
)

// UsageFilter selects usage rows and how to group them.
type UsageFilter struct {
	Customer string
	From, To time.Time // [From, To); zero: unbounded
	GroupBy  GroupBy
}

// UsageRow is one group of usage. Requests counts its usages; it hides the
// billable request units of Quantities, which a row does not report.
type UsageRow struct {
	Key      string `json:"key"`
	Requests int64  `json:"requests"`
	Quantities
	Credits Amount `json:"credits"`
	CostUSD USD    `json:"cost_usd"`
}

// Breakage is credit that expired unused, with what it had been paid for.
type Breakage struct {
	Customer string
	At       time.Time
	Credits  Amount
	USD      USD
}

// Revenue is what an op without a usage row charged and recognised: a
// capture or debit made through the API (not the gateway or metering), or a
// grant that repaid debt, whose credits are consumed, and their revenue
// recognised, at the grant (the debt itself was charged to the usage that
// drew it). The daily sums keep it under model and provider "", so the
// report's revenue is every dollar the ledger recognised.
type Revenue struct {
	Customer    string
	At          time.Time
	Credits     Amount // charged: a capture's or debit's amount; 0 for a grant
	USD         USD    // revenue of the credits consumed
	Uncollected Amount // the part of Credits no credit covered
}

// EconFilter selects the daily sums an economics report reads: whole UTC
// days from From (inclusive) to To (exclusive), grouped by GroupBy
// (customer, model, provider or day) and always by model.
type EconFilter struct {
	From, To time.Time
	GroupBy  GroupBy
	Customer string // "": all
}

// EconRow is one group's sums, of one model ("" holds breakage and the
// Revenue of ops without a usage row).
type EconRow struct {
	Key             string
	Model           string
	Requests        int64
	Credits         Amount
	RevenueUSD      USD
	CostUSD         USD
	Uncollected     Amount
	BreakageCredits Amount
	BreakageUSD     USD
}

// DailySum is one row of the daily sums: what the usage, revenue and
// breakage of one UTC day, customer, model, provider, product and plan add
// up to.
type DailySum struct {
	Day, Customer, Model, Provider, Product, Plan string
	EconRow                                       // its Key and Model are empty
}

// UsageList pages through one customer's usage rows, newest first: those
// before the row (BeforeAt, BeforeID) when BeforeAt is set, at most Limit.
type UsageList struct {
	Customer string
	BeforeAt time.Time
	BeforeID string
	Limit    int
}

// Verification is the outcome of one replay of the journal against the
// stored state (ledger verify), as the dashboard keeps it.
type Verification struct {
	At       time.Time
	Took     time.Duration
	Entries  int
	Accounts int
	Problems []string // disagreements found; none: consistent
	Err      string   // what kept the replay from finishing; "" when it finished
}

// Session is a dashboard sign-in: an operator's (Customer "") or a
// customer's, made with one of its keys (KeyID). It lasts until ExpiresAt
// or until it is ended (EndedAt: signed out).
type Session struct {
	ID        string    `json:"id"`
	Customer  string    `json:"customer,omitempty"`
	KeyID     string    `json:"key_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
}

// Operator reports whether the session was opened with the admin token.
func (s Session) Operator() bool { return s.Customer == "" }

// Live reports whether the session may be used at now.
func (s Session) Live(now time.Time) bool {
	return s.EndedAt.IsZero() && now.Before(s.ExpiresAt)
}
