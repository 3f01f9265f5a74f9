package main

import (
	"context"
	"strings"
	"testing"
)

// runCmd runs the binary's run in-process and returns its exit code,
// stdout and stderr.
func runCmd(vars map[string]string, args ...string) (int, string, string) {
	var out, errOut syncBuffer
	err := run(context.Background(), append([]string{"farebox"}, args...), env(vars), &out, &errOut)
	if err != nil {
		return exitCode(err), out.String(), errOut.String() + "farebox: " + err.Error()
	}
	return 0, out.String(), errOut.String()
}

// TestHelp: `farebox help` lists every command; each command's help, by
// `farebox help <command>` or `-h`, is its usage line, what it does and
// its flags, on stdout with exit 0.
func TestHelp(t *testing.T) {
	code, list, stderr := runCmd(nil, "help")
	if code != 0 || stderr != "" {
		t.Fatalf("help: exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	for _, c := range commands() {
		if !strings.Contains(list, "farebox "+c.name+" ") {
			t.Errorf("help does not list %q:\n%s", c.name, list)
		}
		usage := "Usage: farebox " + c.name
		for _, args := range [][]string{strings.Fields("help " + c.name), append(strings.Fields(c.name), "-h"), append(strings.Fields(c.name), "--help")} {
			code, out, stderr := runCmd(nil, args...)
			if code != 0 || stderr != "" {
				t.Errorf("farebox %s: exit %d, stderr %q; want 0 and nothing", strings.Join(args, " "), code, stderr)
			}
			if !strings.HasPrefix(out, usage) || !strings.Contains(out, summary(c.about)) || !strings.Contains(out, "\n  --") {
				t.Errorf("farebox %s: got\n%s\nwant %q, its summary and its flags", strings.Join(args, " "), out, usage)
			}
		}
	}
	// A group lists its verbs.
	for _, args := range [][]string{{"help", "plans"}, {"plans", "-h"}} {
		code, out, _ := runCmd(nil, args...)
		if code != 0 || !strings.Contains(out, "farebox plans create") || !strings.Contains(out, "farebox plans delete") {
			t.Errorf("farebox %v: exit %d\n%s\nwant 0 and the plans verbs", args, code, out)
		}
	}
	if code, _, stderr := runCmd(nil, "help", "frobnicate"); code != 2 || !strings.Contains(stderr, "frobnicate") {
		t.Errorf("help frobnicate: exit %d, %q; want 2 naming it", code, stderr)
	}
	// Flags documented are the flags taken: a bench's own.
	if _, out, _ := runCmd(nil, "help", "bench", "ledger"); !strings.Contains(out, "--callers") || !strings.Contains(out, "--batching") {
		t.Errorf("help bench ledger lacks its flags:\n%s", out)
	}
}

// TestVerbFlags: each command takes only its own flags and arguments; a
// flag of another command, or an argument too many, is a usage error
// (exit 2) that shows the command's usage. Nothing is sent: no server runs.
func TestVerbFlags(t *testing.T) {
	vars := map[string]string{"FAREBOX_SERVER": "http://127.0.0.1:1", "FAREBOX_ADMIN_TOKEN": testToken}
	for _, c := range []struct {
		args  []string
		usage string
		want  string
	}{
		{[]string{"plans", "list", "--amount", "5"}, "Usage: farebox plans list", "-amount"},
		{[]string{"plans", "--amount", "5"}, "Usage: farebox plans list", "-amount"},
		{[]string{"balance", "acme", "--plan", "pro"}, "Usage: farebox balance CUSTOMER", "-plan"},
		{[]string{"customers", "create", "--id", "a", "--amount", "1"}, "Usage: farebox customers create", "-amount"},
		{[]string{"usage", "--days", "3"}, "Usage: farebox usage", "-days"},
		{[]string{"report", "forecast", "--group-by", "day"}, "Usage: farebox report forecast", "-group-by"},
		{[]string{"grants", "create", "acme", "--rpm", "5"}, "Usage: farebox grants create", "-rpm"},
		{[]string{"balance", "acme", "bob"}, "Usage: farebox balance", `unexpected argument "bob"`},
		{[]string{"balance"}, "Usage: farebox balance", "needs CUSTOMER"},
		{[]string{"keys", "revoke"}, "Usage: farebox keys revoke", "needs KEY_ID"},
		{[]string{"ledger", "verify", "--to", "x"}, "Usage: farebox ledger verify", "-to"},
		{[]string{"migrate", "--bogus"}, "Usage: farebox migrate", "-bogus"},
		{[]string{"serve", "--bogus"}, "Usage: farebox serve", "-bogus"},
		{[]string{"bench", "ledger", "--bogus"}, "Usage: farebox bench ledger", "-bogus"},
		{[]string{"simulate", "extra"}, "Usage: farebox simulate", `unexpected argument "extra"`},
	} {
		code, out, stderr := runCmd(vars, c.args...)
		if code != 2 || out != "" || !strings.Contains(stderr, c.usage) || !strings.Contains(stderr, c.want) {
			t.Errorf("farebox %s: exit %d, stdout %q, stderr\n%s\nwant exit 2 with %q and %q", strings.Join(c.args, " "), code, out, stderr, c.usage, c.want)
		}
	}
}

// TestHelpHidesSecrets: help shows the defaults that come from the
// environment, but never the admin token nor a --db URL's password.
func TestHelpHidesSecrets(t *testing.T) {
	vars := map[string]string{"FAREBOX_ADMIN_TOKEN": "fba_very_secret_token_value_0123456789", "FAREBOX_DB": "postgres://farebox:hunter2pw@db:5432/farebox"}
	for _, c := range commands() {
		_, out, _ := runCmd(vars, strings.Fields("help "+c.name)...)
		if strings.Contains(out, "very_secret") || strings.Contains(out, "hunter2pw") {
			t.Errorf("help %s shows a secret:\n%s", c.name, out)
		}
	}
}
