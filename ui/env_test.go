package ui_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/app"
	"farebox/economics"
	"farebox/fakeclock"
	"farebox/ui/uitest"
)

const adminToken = "ui-test-admin-token-0123456789abcdefghij"

// env is Farebox on SQLite behind a real HTTP server, its clock fake, with
// two customers: acme (on plan pro, with a promo lot soon used up, a
// refund lot expiring in 3 days and a purchase, and ten days of metered usage on two models) and beta.
type env struct {
	uitest.Site
	app               *app.App
	clock             *fakeclock.Clock
	logs              *syncBuffer
	dir               string // the data directory
	stop              func()
	acmeKey, acmeID   string // the key's secret and id
	betaKey, betaID   string
	acmeKey2, acmeID2 string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var start = time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC)

// providers: two simulated deployments of gpt-4o-mini (the cheaper one
// first), answering at once.
var providers = []app.Provider{
	{Name: "sim-a", Type: "simulated", Models: []app.Model{{Model: "gpt-4o-mini", MaxOutputTokens: 16384}}},
	{Name: "sim-b", Type: "simulated", Models: []app.Model{{Model: "gpt-4o-mini", MaxOutputTokens: 16384, Priority: 1}}},
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{Site: uitest.Site{T: t, Token: adminToken}, clock: fakeclock.New(start), logs: &syncBuffer{}, dir: t.TempDir()}
	e.start()
	e.API("POST", "/api/v1/plans", `{"id": "pro", "name": "Pro", "price_usd": "20", "period": "month", "credits": "2000", "models": ["*"]}`, 201)
	e.API("POST", "/api/v1/plans", `{"id": "team", "name": "Team", "price_usd": "100", "period": "month", "credits": "12000", "models": ["*"]}`, 201)
	e.API("POST", "/api/v1/customers", `{"id": "acme", "name": "Acme Corp", "plan": "pro"}`, 201)
	e.API("POST", "/api/v1/customers", `{"id": "beta", "name": "Beta Ltd"}`, 201)
	e.API("POST", "/api/v1/customers/acme/grants", `{"amount": "5", "source": "promo", "expires_at": "2026-11-23T09:00:00Z", "idempotency_key": "promo-1"}`, 201)
	e.API("POST", "/api/v1/customers/acme/grants", `{"amount": "50", "source": "refund", "priority": 30, "paid_usd": "0.5", "expires_at": "2026-11-23T09:00:00Z", "idempotency_key": "refund-1"}`, 201)
	e.API("POST", "/api/v1/customers/acme/grants", `{"amount": "500", "source": "purchase", "paid_usd": "5", "idempotency_key": "buy-1"}`, 201)
	e.API("POST", "/api/v1/customers/beta/grants", `{"amount": "777.5", "source": "purchase", "paid_usd": "7.775", "idempotency_key": "buy-b"}`, 201)
	e.acmeKey, e.acmeID = e.Key("acme", `{"name": "laptop"}`)
	e.acmeKey2, e.acmeID2 = e.Key("acme", `{"name": "ci"}`)
	e.betaKey, e.betaID = e.Key("beta", `{"name": "prod"}`)
	// Ten days of usage, a batch a day, moving the clock.
	for d := range 10 {
		var evs []string
		for i := range 3 + d%4 {
			model := "gpt-4o"
			if i%2 == 1 {
				model = "gpt-4o-mini"
			}
			evs = append(evs, fmt.Sprintf(`{"specversion": "1.0", "id": "a-%d-%d", "source": "app", "type": "usage", "subject": "acme", "data": {"model": %q, "input_tokens": %d, "output_tokens": %d}}`,
				d, i, model, 1000+d*137+i, 200+d*31))
		}
		evs = append(evs, fmt.Sprintf(`{"specversion": "1.0", "id": "b-%d", "source": "app", "type": "usage", "subject": "beta", "data": {"model": "gpt-4o", "input_tokens": 5000, "output_tokens": 900}}`, d))
		e.Events("[" + strings.Join(evs, ",") + "]")
		for i := range 2 {
			e.Chat(e.acmeKey, "gpt-4o-mini", fmt.Sprintf("Day %d, question %d: how are my credits doing?", d, i), 200)
		}
		e.clock.Advance(24 * time.Hour)
	}
	return e
}

// econConfig values uncollected credit and gives a partner 10% of gpt-4o.
var econConfig = economics.Config{CreditsPerUSD: 100, Shares: []economics.Share{{Partner: "openai-partner", Models: []string{"gpt-4o"}, Percent: 10 * fb.Micro}}}

// start starts Farebox on the env's data directory and clock.
func (e *env) start() {
	e.T.Helper()
	s := uitest.Serve(e.T, app.Config{
		DataDir: e.dir, AdminToken: adminToken, Clock: e.clock, Providers: providers,
		Log:       slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Economics: econConfig,
		Dashboard: app.DashboardConfig{TopUp: "Email billing@example.com to buy credits."},
	})
	e.stop = s.Close
	e.URL, e.app = s.URL, s.App
}

// restart stops Farebox and starts it again on the same data.
func (e *env) restart() {
	e.T.Helper()
	e.stop()
	e.start()
}
