package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLI drives the management API through the CLI against the real
// binary: tables by default, JSON with --json, clear errors and exit codes.
func TestCLI(t *testing.T) {
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
	cli(0, "plans", "create", "--id", "pro", "--price-usd", "20", "--credits", "2000", "--rollover-max", "500", "--models", "gpt-4o*,o3")
	if out := cli(0, "plans", "list"); !strings.Contains(out, "pro") || !strings.Contains(out, "gpt-4o*,o3") || !strings.Contains(out, "PRICE_USD") {
		t.Fatalf("plans list:\n%s", out)
	}
	// A group alone is its list; positional arguments may follow flags.
	if out := cli(0, "plans"); !strings.Contains(out, "gpt-4o*,o3") {
		t.Fatalf("plans:\n%s", out)
	}
	if out := cli(0, "plans", "--json"); !strings.Contains(out, `"id": "pro"`) {
		t.Fatalf("plans --json:\n%s", out)
	}
	cli(0, "customers", "create", "--id", "acme", "--plan", "pro")
	if out := cli(0, "keys", "create", "--name", "first", "acme"); !strings.Contains(out, "fbk_") {
		t.Fatalf("keys create --name first acme:\n%s", out)
	}
	cli(0, "grants", "create", "acme", "--amount", "100", "--paid-usd", "1")
	out := cli(0, "balance", "acme")
	if !strings.Contains(out, "available:        2100") || !strings.Contains(out, "subscription") || !strings.Contains(out, "purchase") {
		t.Fatalf("balance:\n%s", out)
	}
	key := cli(0, "keys", "create", "acme", "--name", "ci", "--json")
	if !strings.Contains(key, `"key": "fbk_`) {
		t.Fatalf("keys create --json:\n%s", key)
	}
	f := filepath.Join(t.TempDir(), "events.json")
	os.WriteFile(f, []byte(`[{"specversion":"1.0","id":"e1","source":"cli","type":"usage","subject":"acme","data":{"model":"gpt-4o","input_tokens":1000,"output_tokens":500}},
		{"specversion":"1.0","id":"e2","source":"cli","type":"usage","subject":"acme","data":{"model":"nope","input_tokens":1}}]`), 0o600)
	out = cli(0, "events", "send", f)
	if !strings.Contains(out, "accepted  0.75") || !strings.Contains(out, "unknown_model") {
		t.Fatalf("events send:\n%s", out)
	}
	if out := cli(0, "events", "send", f); !strings.Contains(out, "duplicate") {
		t.Fatalf("events sent again:\n%s", out)
	}
	if out := cli(0, "usage", "--group-by", "model"); !strings.Contains(out, "gpt-4o  1         1000") {
		t.Fatalf("usage:\n%s", out)
	}
	if out := cli(1, "plans", "delete", "pro"); !strings.Contains(out, "409") || !strings.Contains(out, "plan_in_use") {
		t.Fatalf("plans delete in use:\n%s", out)
	}
	cli(2, "balance")
	cli(2, "plans", "frobnicate")
	cli(2, "plans", "list", "--amount", "5")
	cli(2, "balance", "acme", "extra")
	vars["FAREBOX_ADMIN_TOKEN"] = "wrong"
	if out := cli(1, "plans", "list"); !strings.Contains(out, "401") {
		t.Fatalf("bad token:\n%s", out)
	}
}
