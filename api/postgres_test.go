package api

import (
	"context"
	"testing"

	"farebox/ledger"
	"farebox/store/postgres"
	"farebox/store/postgres/pgtest"
)

// TestEventsRefuseControlCharactersOnPostgres (finding 10): on PostgreSQL,
// which cannot store a NUL in text, a NUL in an event failed the whole
// ledger batch (503 for every event of the request), and a NUL in a path id
// was a 500. Refused at the edge, the batch's other events are accepted.
func TestEventsRefuseControlCharactersOnPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	st, err := postgres.Open(context.Background(), pg.NewDatabase(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessOn(t, st, ledger.Config{Writers: 2})
	testEventsRefuseControlCharacters(t, h)
	h.expectErr(h.call("GET", "/api/v1/customers/ac%00me/balance", ""), 400, "invalid_request", "invalid_request", "id")
	h.expectErr(h.call("GET", "/api/v1/holds/hold_%00", ""), 400, "invalid_request", "invalid_request", "id")
}
