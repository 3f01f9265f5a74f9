package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestCLILeases: pools and leases through the CLI against the real
// binary: a pool made and listed, leases booked, refused with the instant
// that lacks GPUs, listed by state and ended, the pool's availability and
// a change it refuses.
func TestCLILeases(t *testing.T) {
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
	cli(0, "pools", "create", "--id", "h100-eu", "--gpu-type", "H100", "--region", "eu", "--gpus", "16", "--reserved-for-inference", "4",
		"--cost-usd-per-gpu-hour", "1.9", "--on-demand", "250", "--reserved", "190", "--spot", "120")
	if out := cli(0, "pools"); !strings.Contains(out, "h100-eu") || !strings.Contains(out, "LEASABLE_GPUS") || !strings.Contains(out, " 12 ") {
		t.Fatalf("pools:\n%s", out)
	}
	cli(0, "customers", "create", "--id", "acme")
	cli(0, "grants", "create", "acme", "--amount", "100000")
	day := time.Now().UTC().Truncate(time.Hour).Add(24 * time.Hour)
	var lease struct{ ID, State, Held string }
	if err := json.Unmarshal([]byte(cli(0, "leases", "book", "--customer", "acme", "--pool", "h100-eu", "--gpus", "8", "--class", "on_demand", "--json")), &lease); err != nil {
		t.Fatal(err)
	}
	if lease.State != "active" || lease.Held != "2000" {
		t.Fatalf("booked %+v", lease)
	}
	if out := cli(1, "leases", "book", "--customer", "acme", "--pool", "h100-eu", "--gpus", "5", "--class", "reserved", "--start", day.Format(time.RFC3339), "--end", day.Add(time.Hour).Format(time.RFC3339)); !strings.Contains(out, "no_capacity") {
		t.Fatalf("over capacity:\n%s", out)
	}
	if out := cli(0, "leases", "--state", "active"); !strings.Contains(out, lease.ID) || !strings.Contains(out, "on_demand") {
		t.Fatalf("active leases:\n%s", out)
	}
	if out := cli(0, "pools", "availability", "h100-eu"); !strings.Contains(out, "FREE_GPUS") || !strings.Contains(out, " 4 ") {
		t.Fatalf("availability:\n%s", out)
	}
	if out := cli(1, "pools", "update", "h100-eu", "--gpus", "10"); !strings.Contains(out, "no_capacity") {
		t.Fatalf("shrink past the lease:\n%s", out)
	}
	cli(0, "pools", "update", "h100-eu", "--gpus", "20", "--spot", "100")
	if out := cli(0, "leases", "end", lease.ID); !strings.Contains(out, "state:") || !strings.Contains(out, "ended") {
		t.Fatalf("end:\n%s", out)
	}
	if out := cli(0, "pools", "utilization", "h100-eu"); !strings.Contains(out, "allocated_gpu_hours") {
		t.Fatalf("utilization:\n%s", out)
	}
	cli(2, "pools", "update", "h100-eu", "--gpus", "many")
	cli(2, "leases", "end")
	cli(2, "leases", "list", "--gpus", "3")
}
