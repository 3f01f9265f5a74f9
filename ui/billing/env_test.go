package billing_test

import (
	"html"
	"regexp"
	"strings"
	"testing"

	"farebox/app"
	"farebox/payments"
	"farebox/payments/stripemock"
	"farebox/ui/uitest"
)

const adminToken = "billing-ui-test-admin-token-0123456789abcdef"

// env is Farebox on SQLite behind a real HTTP server, with Stripe at a
// recorder in front of stripe-mock (rec nil: no payment provider).
type env struct {
	uitest.Site
	app *app.App
	rec *stripemock.Recorder
}

func newEnv(t *testing.T, withStripe bool) *env {
	t.Helper()
	cfg := app.Config{DataDir: t.TempDir(), AdminToken: adminToken, CreditsPerUSD: 100,
		Dashboard: app.DashboardConfig{TopUp: "Email billing@example.com to buy credits."}}
	e := &env{Site: uitest.Site{T: t, Token: adminToken}}
	if withStripe {
		e.rec = stripemock.NewRecorder(t, stripemock.Start(t))
		cfg.Stripe = payments.StripeConfig{SecretKey: stripemock.SecretKey, WebhookSecret: stripemock.WebhookSecret, APIBase: e.rec.URL}
	}
	s := uitest.Serve(t, cfg)
	e.URL, e.app = s.URL, s.App
	return e
}

var (
	tableRe = regexp.MustCompile(`(?s)<section><h2>([^<]*)</h2>\s*<div class="scroll"><table[^>]*>(.*?)</table>`)
	rowRe   = regexp.MustCompile(`(?s)<tr>(.*?)</tr>`)
	cellRe  = regexp.MustCompile(`(?s)<td[^>]*>(.*?)</td>`)
	tagRe   = regexp.MustCompile(`<[^>]+>`)
	cardRe  = regexp.MustCompile(`(?s)<div class="card"><div class="label">([^<]*)</div><div class="value">([^<]*)</div>`)
)

// table is the rows of the page's table titled title, each cell's text.
func table(t *testing.T, page, title string) [][]string {
	t.Helper()
	for _, m := range tableRe.FindAllStringSubmatch(page, -1) {
		if html.UnescapeString(m[1]) != title {
			continue
		}
		var rows [][]string
		body := m[2][strings.Index(m[2], "<tbody>"):]
		for _, r := range rowRe.FindAllStringSubmatch(body, -1) {
			var cells []string
			for _, c := range cellRe.FindAllStringSubmatch(r[1], -1) {
				cells = append(cells, strings.TrimSpace(html.UnescapeString(tagRe.ReplaceAllString(c[1], ""))))
			}
			rows = append(rows, cells)
		}
		return rows
	}
	t.Fatalf("no table %q in the page", title)
	return nil
}

// cards are the page's figures by label (the last of a label wins).
func cards(page string) map[string]string {
	out := map[string]string{}
	for _, m := range cardRe.FindAllStringSubmatch(page, -1) {
		out[html.UnescapeString(m[1])] = html.UnescapeString(m[2])
	}
	return out
}
