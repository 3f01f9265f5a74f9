package campaigns_test

import (
	"fmt"
	"testing"
	"time"

	"farebox/app"
	"farebox/fakeclock"
	"farebox/ui/uitest"
)

const adminToken = "campaigns-ui-test-admin-token-0123456789abc"

var start = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)

// env is Farebox on SQLite behind a real HTTP server, on a fake clock,
// with a simulated gpt-4o-mini and a customer acme on plan pro (bought
// credits, a key, a few requests): the customer side's non-advertiser.
type env struct {
	uitest.Site
	clock   *fakeclock.Clock
	acmeKey string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clock := fakeclock.New(start)
	s := uitest.Serve(t, app.Config{DataDir: t.TempDir(), AdminToken: adminToken, Clock: clock,
		Providers: []app.Provider{{Name: "sim", Type: "simulated", Models: []app.Model{{Model: "gpt-4o-mini", MaxOutputTokens: 16384}}}}})
	e := &env{Site: uitest.Site{T: t, URL: s.URL, Token: adminToken}, clock: clock}
	e.API("POST", "/api/v1/plans", `{"id": "pro", "name": "Pro", "price_usd": "20", "period": "month", "credits": "2000", "models": ["*"]}`, 201)
	e.API("POST", "/api/v1/customers", `{"id": "acme", "name": "Acme Corp", "plan": "pro"}`, 201)
	e.API("POST", "/api/v1/customers/acme/grants", `{"amount": "500", "source": "purchase", "paid_usd": "5", "idempotency_key": "buy-1"}`, 201)
	e.acmeKey, _ = e.Key("acme", `{"name": "laptop"}`)
	for i := range 3 {
		e.Chat(e.acmeKey, "gpt-4o-mini", fmt.Sprintf("Which laptop should I buy? (question %d)", i), 50)
	}
	return e
}
