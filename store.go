package farebox

import (
	"context"
	"errors"
	"time"
)

// ErrRejected marks a write the database refused because of what an op
// carries (a unique key another writer took first, a value it cannot
// store), not because it is unavailable. Stores wrap such errors with it;
// the ledger engine then commits the rest of the batch without that op.
var ErrRejected = errors.New("the database refused the data")

// Store is the storage contract. Every engine (store/sqlite, store/postgres)
// implements it and passes store/storetest. A store keeps data; the rules
// live in the ledger package.
type Store interface {
	// Write runs fn in one write transaction and commits it durably when fn
	// returns nil; any error rolls everything back.
	Write(ctx context.Context, fn func(WriteTx) error) error

	// CreateCustomer inserts a customer and its empty account. It returns
	// a conflict error if the id is taken.
	CreateCustomer(ctx context.Context, c Customer) error
	// CreateCustomers inserts many customers in one transaction, all or
	// none (imports, benchmarks).
	CreateCustomers(ctx context.Context, cs []Customer) error
	Customer(ctx context.Context, id string) (Customer, error)
	// Customers lists customers ordered by id, after the id startingAfter.
	Customers(ctx context.Context, startingAfter string, limit int) ([]Customer, error)
	// SetSponsoredOptOut sets whether a customer's answers may carry
	// sponsored suggestions, and returns the customer.
	SetSponsoredOptOut(ctx context.Context, id string, optOut bool) (Customer, error)

	// Account returns the committed state of a customer's account with its
	// live lots and pending holds.
	Account(ctx context.Context, customer string) (*Account, error)
	// Hold returns a hold in any state.
	Hold(ctx context.Context, id string) (*Hold, error)

	// Snapshot reads, in one consistent read transaction, the whole journal
	// (passed to journal in sequence order) and then every stored account
	// with all its lots and holds, whatever their state.
	Snapshot(ctx context.Context, journal func(*JournalEntry) error) (*Dump, error)

	// DueAccounts lists customers with a pending hold or an unexpired lot
	// whose expiry is at or before now, at most limit of them.
	DueAccounts(ctx context.Context, now time.Time, limit int) ([]string, error)

	Catalog
	Leasing
	Billing

	Ping(ctx context.Context) error
	Close() error
}

// Catalog is the part of the store that keeps plans, subscriptions, rate
// cards, API keys and usage rows. Missing rows are not_found errors.
type Catalog interface {
	// CreatePlan inserts a plan; a taken id is a conflict.
	CreatePlan(ctx context.Context, p Plan) error
	Plan(ctx context.Context, id string) (Plan, error)
	Plans(ctx context.Context) ([]Plan, error)
	// DeletePlan removes a plan no subscription is on or moving to, else
	// it is a conflict.
	DeletePlan(ctx context.Context, id string) error

	// PutPrice stores a version of a model's rate card, replacing the one
	// with the same effective_from.
	PutPrice(ctx context.Context, p Price) error
	// Prices lists every version of every model's card.
	Prices(ctx context.Context) ([]Price, error)

	CreateKey(ctx context.Context, k APIKey) error
	// Keys lists a customer's keys, revoked ones included, oldest first.
	Keys(ctx context.Context, customer string) ([]APIKey, error)
	// KeyByHash finds a key, revoked or not, by the hash of its secret.
	KeyByHash(ctx context.Context, hash []byte) (APIKey, error)
	// RevokeKey marks a key revoked at at (once: a second revocation keeps
	// the first time) and returns it.
	RevokeKey(ctx context.Context, id string, at time.Time) (APIKey, error)

	// PutSubscription inserts or replaces a customer's subscription.
	PutSubscription(ctx context.Context, s Subscription) error
	// SwapSubscription replaces old with s only if the stored
	// subscription still has old's plan, next plan and period end (a
	// compare-and-swap); otherwise it changes nothing and answers a
	// conflict with code subscription_changed.
	SwapSubscription(ctx context.Context, old, s Subscription) error
	Subscription(ctx context.Context, customer string) (Subscription, error)
	// DueSubscriptions lists subscriptions whose period ended at or before
	// now, at most limit of them.
	DueSubscriptions(ctx context.Context, now time.Time, limit int) ([]Subscription, error)

	// ClaimRequest records the first attempt of a request made under a
	// client's idempotency key (its customer, scope and key, fingerprint
	// and time, no response) unless one is recorded under them, and
	// returns the recorded one: r itself the first time.
	ClaimRequest(ctx context.Context, r KeyedRequest) (KeyedRequest, error)
	// FinishRequest stores the response of a claimed request. A request
	// finishes once: a later response is dropped, the first kept.
	FinishRequest(ctx context.Context, customer, scope, key string, response []byte) error

	// CreateCampaign inserts a campaign at version 1; a taken id is a
	// conflict (campaign_exists).
	CreateCampaign(ctx context.Context, c Campaign) error
	Campaign(ctx context.Context, id string) (Campaign, error)
	// Campaigns lists every campaign, by id.
	Campaigns(ctx context.Context) ([]Campaign, error)
	// SwapCampaign replaces the campaign c.ID with c, at the next version,
	// only if the stored one is still at c.Version (a compare-and-swap);
	// otherwise it changes nothing and answers a conflict with code
	// campaign_changed.
	SwapCampaign(ctx context.Context, c Campaign) error
	DeleteCampaign(ctx context.Context, id string) error
	// CampaignStats counts a campaign's charged impressions and clicks and
	// sums their credits over [from, to) (zero: unbounded), from the usage
	// rows of product ads.
	CampaignStats(ctx context.Context, c Campaign, from, to time.Time) (CampaignStats, error)
	// CountView counts one view of a campaign by an end user (subject, an
	// opaque digest) on a UTC day, unless limit views are counted already:
	// it reports whether it counted, atomically, so concurrent views can
	// never pass the limit. UncountView takes one back (a view that was
	// not shown after all). PruneViews forgets the days before before.
	CountView(ctx context.Context, campaign, subject string, day time.Time, limit int64) (bool, error)
	UncountView(ctx context.Context, campaign, subject string, day time.Time) error
	PruneViews(ctx context.Context, before time.Time) (int64, error)
	// Setting returns the value stored under name, storing def first when
	// there is none, so every replica reads the one value that won.
	Setting(ctx context.Context, name, def string) (string, error)

	// Usage sums usage rows by f.GroupBy, ordered by key.
	Usage(ctx context.Context, f UsageFilter) ([]UsageRow, error)
	// Economics sums the daily rollups of usage and breakage by f.GroupBy
	// and model, ordered by both.
	Economics(ctx context.Context, f EconFilter) ([]EconRow, error)
	// EconomicsBy is Economics of f by each of the groupings (f.GroupBy is
	// ignored), all from one consistent read: a page's tables and totals
	// agree even while usage is written.
	EconomicsBy(ctx context.Context, f EconFilter, groupings ...GroupBy) ([][]EconRow, error)
	// DailySums lists the rows of the daily sums of the whole UTC days
	// [from, to), read in one transaction; pinned, when not nil, is called
	// once that transaction's snapshot is taken, before the rows are read
	// (what a cache of the sums needs to know which writes they include).
	DailySums(ctx context.Context, from, to time.Time, pinned func()) ([]DailySum, error)

	// UsageRows lists one customer's usage rows, newest first (by time,
	// then id), from the index on customer and time: the dashboard's
	// recent requests.
	UsageRows(ctx context.Context, f UsageList) ([]Usage, error)
	// LastUsage is the time of each of these customers' latest usage row
	// (absent: none), one index probe each.
	LastUsage(ctx context.Context, customers []string) (map[string]time.Time, error)
	// FindCustomers lists customers, ordered by id after startingAfter,
	// whose id starts with query or whose name contains it (any case);
	// every customer when query is "".
	FindCustomers(ctx context.Context, query, startingAfter string, limit int) ([]Customer, error)
	// JournalSeq is the sequence number of the journal's last entry (0:
	// empty).
	JournalSeq(ctx context.Context) (int64, error)

	// AddVerification records a verification of the ledger.
	AddVerification(ctx context.Context, v Verification) error
	// LastVerification is the latest one recorded (by time, then the
	// order recorded); not_found when there is none.
	LastVerification(ctx context.Context) (Verification, error)

	// CreateSession stores a new dashboard session; a taken id is a
	// conflict.
	CreateSession(ctx context.Context, s Session) error
	// Session reads a session, ended or expired ones included.
	Session(ctx context.Context, id string) (Session, error)
	// EndSession marks a session ended at at (once: the first time stays).
	EndSession(ctx context.Context, id string, at time.Time) error
	// DeleteSessions removes the sessions that expired before before and
	// says how many.
	DeleteSessions(ctx context.Context, before time.Time) (int64, error)
}

// Leasing is the part of the store that keeps GPU pools and leases, as
// committed (package compute writes them, through LeaseTx). Missing rows
// are not_found errors.
type Leasing interface {
	Pool(ctx context.Context, id string) (*Pool, error)
	// Pools lists every pool by id.
	Pools(ctx context.Context) ([]*Pool, error)
	// PoolCapacity reads, in one read transaction, a pool and its whole
	// change log (the capacity it has leased over time).
	PoolCapacity(ctx context.Context, id string) (*Pool, []PoolChange, error)
	Lease(ctx context.Context, id string) (*Lease, error)
	// LeaseByKey finds the lease booked by the ledger op journaled under
	// a customer's idempotency key (the booking's hold).
	LeaseByKey(ctx context.Context, customer, key string) (*Lease, error)
	// Leases lists the leases f selects, by id.
	Leases(ctx context.Context, f LeaseFilter) ([]*Lease, error)
	// DueLeases lists leases with something due (NextAt) at or before now,
	// soonest first, at most limit of them.
	DueLeases(ctx context.Context, now time.Time, limit int) ([]*Lease, error)
}

// LeaseTx is the part of a write transaction package compute uses. Every
// change to a pool's capacity or leases is made under the pool's lock.
type LeaseTx interface {
	// LockPools returns these pools (unknown ones are absent), locked
	// until the transaction ends. Engines with several writers lock them
	// in sorted order, after any account the transaction locked.
	LockPools(ctx context.Context, ids []string) (map[string]*Pool, error)
	// PoolChanges lists a pool's capacity changes written at a Rev above
	// after, in the order they were written.
	PoolChanges(ctx context.Context, pool string, after int64) ([]PoolChange, error)
	// LiveLeases lists a pool's scheduled and active leases of a class.
	LiveLeases(ctx context.Context, pool string, class LeaseClass) ([]*Lease, error)
	// LeasesByID reads leases; unknown ids are absent.
	LeasesByID(ctx context.Context, ids []string) (map[string]*Lease, error)
	// SavePool inserts a pool (a taken id is a pool_exists conflict) or
	// updates it; AppendPoolChanges adds its changes made at rev, and
	// ResetPoolChanges replaces its whole log with changes (written at
	// rev, as a compacted log).
	SavePool(ctx context.Context, p *Pool, insert bool) error
	AppendPoolChanges(ctx context.Context, pool string, rev int64, changes []PoolChange) error
	ResetPoolChanges(ctx context.Context, pool string, rev int64, changes []PoolChange) error
	// SaveLeases inserts or updates leases.
	SaveLeases(ctx context.Context, ls []*Lease) error
}

// WriteTx is the part of a write transaction the ledger engine uses, with
// the lease tables' part that commits with it.
type WriteTx interface {
	LeaseTx
	// LoadAccounts loads the accounts of these customers with their live
	// lots (in any order) and pending holds; unknown customers are absent
	// from the map.
	// Engines with several writers lock the accounts, in sorted order, until
	// the transaction ends.
	LoadAccounts(ctx context.Context, customers []string) (map[string]*Account, error)
	// LookupKeys returns the journal entries recorded under idempotency keys.
	LookupKeys(ctx context.Context, keys []KeyRef) (map[KeyRef]*JournalEntry, error)
	// LookupHolds returns holds by id, in any state.
	LookupHolds(ctx context.Context, ids []string) (map[string]*Hold, error)
	// SaveAccount writes an account's state: its totals, live lots
	// (a.Lots) and pending holds (a.Holds). lots and holds are what the
	// batch changed, including lots that died (left a.Lots) and holds that
	// were resolved or expired (left a.Holds), so the store can keep them.
	SaveAccount(ctx context.Context, a *Account, lots []*Lot, holds []*Hold) error
	// AppendJournal appends entries in order and sets their Seq. An entry
	// whose op has an Event key also records it in the global scope, where
	// a second use is an error that rolls the transaction back.
	AppendJournal(ctx context.Context, entries []*JournalEntry) error
	// AppendUsage stores usage rows, after the journal entries that paid
	// for them.
	AppendUsage(ctx context.Context, rows []*Usage) error
	// AppendBreakage records expired credit, and AppendRevenue what ops
	// without a usage row charged and recognised. Like AppendUsage they
	// keep the daily sums reports read, in the same transaction.
	AppendBreakage(ctx context.Context, b []Breakage) error
	AppendRevenue(ctx context.Context, r []Revenue) error
}

// KeyRef is an idempotency key in its customer's scope, or, with an empty
// Customer, a metered event's key in the global scope.
type KeyRef struct {
	Customer string
	Key      string
}

// Dump is the whole stored ledger state, for verification.
type Dump struct {
	Accounts map[string]*Account // every lot (Lots) and hold (Holds and Closed) included
	// Problems are disagreements the store found between its own copies
	// (an index and the state it indexes).
	Problems []string
}
