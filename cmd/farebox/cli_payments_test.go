package main

import (
	"context"
	"strings"
	"testing"
)

// TestCLIPaymentsAndWebhooks drives the new commands against the real
// binary: keys with budgets, plans with a downgrade, automatic top-ups,
// thresholds and webhook endpoints.
func TestCLIPaymentsAndWebhooks(t *testing.T) {
	p := startServe(t, t.TempDir())
	vars := map[string]string{"FAREBOX_SERVER": p.url, "FAREBOX_ADMIN_TOKEN": testToken}
	cli := func(want int, args ...string) string {
		t.Helper()
		var out, errOut syncBuffer
		err := run(context.Background(), append([]string{"farebox"}, args...), env(vars), &out, &errOut)
		code, msg := 0, ""
		if err != nil {
			code, msg = exitCode(err), err.Error()
		}
		if code != want {
			t.Fatalf("farebox %v: exit %d, want %d\n%s%s%s", args, code, want, out.String(), errOut.String(), msg)
		}
		return out.String() + errOut.String() + msg
	}
	cli(0, "plans", "create", "--id", "starter", "--downgrade", "gpt-4o=gpt-4o-mini", "--low-balance", "10", "--expiring-days", "3")
	if out := cli(0, "plans", "get", "starter", "--json"); !strings.Contains(out, `"gpt-4o": "gpt-4o-mini"`) || !strings.Contains(out, `"low_balance": "10"`) {
		t.Fatalf("plans get:\n%s", out)
	}
	cli(2, "plans", "create", "--id", "bad", "--downgrade", "gpt-4o")
	cli(0, "customers", "create", "--id", "acme", "--plan", "starter")
	if out := cli(0, "keys", "create", "acme", "--name", "ci", "--budget", "50", "--budget-period", "day", "--rpm", "60", "--json"); !strings.Contains(out, `"budget": "50"`) ||
		!strings.Contains(out, `"budget_remaining": "50"`) || !strings.Contains(out, `"rpm": 60`) {
		t.Fatalf("keys create --budget:\n%s", out)
	}
	if out := cli(0, "keys", "list", "acme"); !strings.Contains(out, "BUDGET_REMAINING") || !strings.Contains(out, "day") {
		t.Fatalf("keys list:\n%s", out)
	}
	if out := cli(0, "topup", "auto", "acme", "--threshold", "100", "--credits", "1000", "--cooldown", "30m"); !strings.Contains(out, "cooldown:      30m") {
		t.Fatalf("topup auto:\n%s", out)
	}
	cli(0, "topup", "show", "acme")
	cli(0, "topup", "off", "acme")
	cli(1, "topup", "show", "acme")
	if out := cli(1, "topup", "checkout", "acme", "--credits", "1000", "--success-url", "https://example.com/ok"); !strings.Contains(out, "payments_not_configured") {
		t.Fatalf("topup checkout without Stripe:\n%s", out)
	}
	if out := cli(0, "alerts", "get", "acme"); !strings.Contains(out, "source:         plan") {
		t.Fatalf("alerts get:\n%s", out)
	}
	cli(0, "alerts", "set", "acme", "--low-balance", "100", "--expiring-days", "7")
	if out := cli(0, "alerts", "get", "acme"); !strings.Contains(out, "low_balance:    100") || !strings.Contains(out, "customer") {
		t.Fatalf("alerts get after set:\n%s", out)
	}
	out := cli(0, "webhooks", "create", "--url", "http://127.0.0.1:9/hook", "--events", "balance.low,topup.failed", "--json")
	if !strings.Contains(out, `"secret": "whsec_`) {
		t.Fatalf("webhooks create:\n%s", out)
	}
	id := between(out, `"id": "`, `"`)
	if out := cli(0, "webhooks", "list"); !strings.Contains(out, id) || !strings.Contains(out, "balance.low,topup.failed") {
		t.Fatalf("webhooks list:\n%s", out)
	}
	if out := cli(0, "webhooks", "deliveries", id); !strings.Contains(out, "(none)") {
		t.Fatalf("webhooks deliveries:\n%s", out)
	}
	cli(1, "webhooks", "retry", "wd_ghost")
	cli(0, "webhooks", "delete", id)
	cli(2, "webhooks", "create", "--nope")
}

func between(s, from, to string) string {
	_, rest, _ := strings.Cut(s, from)
	v, _, _ := strings.Cut(rest, to)
	return v
}
