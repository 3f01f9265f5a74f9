// Package keys owns customers' API keys: their form (fbk_ and 40 base62
// characters), their minting, and the hash that is all a store keeps of
// them.
package keys

import (
	"crypto/sha256"
	"time"

	fb "farebox"
	"farebox/ids"
)

// Prefix starts every customer API key.
const Prefix = "fbk_"

// secretLen is the random part of a key: 40 base62 characters, 238 bits.
const secretLen = 40

// Hash is what is stored of a key.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Mint makes a new key of customer named name: the record to store (its
// id from newID, its hash and a prefix to recognise it by) and the secret,
// to be shown once.
func Mint(customer, name string, now time.Time, newID func(prefix string) string) (fb.APIKey, string) {
	secret := Prefix + ids.Secret(secretLen)
	return fb.APIKey{
		ID: newID("key_"), Customer: customer, Name: name, Prefix: secret[:len(Prefix)+4],
		Hash: Hash(secret), CreatedAt: now.UTC(),
	}, secret
}

// Limit gives a key its own limits, checked: a budget (nil: none) per
// period (day, month or total; month when ""), and its own requests per
// minute (0: its plan's only). The API and the dashboard create keys
// with it.
func Limit(k *fb.APIKey, budget *fb.Amount, period fb.BudgetPeriod, rpm int64) error {
	if budget != nil && (*budget < 0 || *budget > fb.MaxTotal) {
		return fb.Invalid("budget", "budget must be an amount of credits between 0 and %s", fb.MaxTotal)
	}
	switch {
	case period != "" && !period.Valid():
		return fb.Invalid("budget_period", "budget_period must be day, month or total")
	case period != "" && budget == nil:
		return fb.Invalid("budget_period", "budget_period needs a budget")
	case period == "":
		period = fb.BudgetMonth
	}
	if rpm < 0 {
		return fb.Invalid("rpm", "rpm must not be negative (0: the plan's limit only)")
	}
	if budget != nil {
		b := *budget
		k.Budget, k.BudgetPeriod = &b, period
	}
	k.RPM = rpm
	return nil
}
