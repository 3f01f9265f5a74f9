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
