package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	fb "farebox"
)

// testDashboardReads: a customer's usage rows page newest first (ties on
// time by id), every quantity kept, and never show another customer's; the latest usage per
// customer; customers found by id prefix or name, paged; the journal's
// last sequence number.
func testDashboardReads(t *testing.T, s fb.Store) {
	ctx := context.Background()
	for _, c := range []fb.Customer{{ID: "acme", Name: "Acme Corp"}, {ID: "acme-labs", Name: "Labs"}, {ID: "beta", Name: "Beta 100%_off"}, {ID: "zed", Name: "ACMEish"}} {
		c.CreatedAt = t0
		if err := s.CreateCustomer(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if seq, err := s.JournalSeq(ctx); err != nil || seq != 0 {
		t.Fatalf("JournalSeq of an empty journal = %d, %v; want 0", seq, err)
	}
	apply(t, s, "acme", grant("lot_a", "100", t0, time.Time{}))
	var rows []*fb.Usage
	for i := range 5 {
		rows = append(rows, &fb.Usage{ID: fmt.Sprintf("r%d", i), Source: "gateway", Customer: "acme", Model: "gpt-4o", Provider: "openai",
			At: t0.Add(time.Duration(i/2) * time.Minute), Quantities: fb.Quantities{InputTokens: int64(i), CacheWriteTokens: 7 * int64(i), Requests: 1}, Credits: amt("0.5"),
			CostUSD: 10, RevenueUSD: 20, KeyID: "key_1", Deployment: "d1", Latency: 1500 * time.Microsecond, TTFT: time.Millisecond, Status: "ok"})
	}
	rows = append(rows, &fb.Usage{ID: "b0", Source: "gateway", Customer: "beta", Model: "gpt-4o", At: t0.Add(time.Hour), Credits: 1})
	if err := s.Write(ctx, func(tx fb.WriteTx) error { return tx.AppendUsage(ctx, rows) }); err != nil {
		t.Fatal(err)
	}
	if seq, err := s.JournalSeq(ctx); err != nil || seq < 1 {
		t.Fatalf("JournalSeq after a grant = %d, %v; want at least 1", seq, err)
	}

	// Times: r0 r1 at +0, r2 r3 at +1m, r4 at +2m.
	page, err := s.UsageRows(ctx, fb.UsageList{Customer: "acme", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(page); got != "r4 r3" {
		t.Fatalf("first page = %s, want r4 r3", got)
	}
	u := page[1]
	if u.Customer != "acme" || u.Model != "gpt-4o" || u.Provider != "openai" || u.Quantities != rows[3].Quantities || u.Credits != amt("0.5") ||
		u.CostUSD != 10 || u.RevenueUSD != 20 || u.KeyID != "key_1" || u.Deployment != "d1" || u.Latency != 1500*time.Microsecond ||
		u.TTFT != time.Millisecond || u.Status != "ok" || !u.At.Equal(t0.Add(time.Minute)) {
		t.Fatalf("row r3 read back as %+v", u)
	}
	page, err = s.UsageRows(ctx, fb.UsageList{Customer: "acme", BeforeAt: u.At, BeforeID: u.ID, Limit: 2})
	if err != nil || ids(page) != "r2 r1" {
		t.Fatalf("second page = %s, %v; want r2 r1", ids(page), err)
	}
	page, err = s.UsageRows(ctx, fb.UsageList{Customer: "acme", BeforeAt: page[1].At, BeforeID: page[1].ID, Limit: 2})
	if err != nil || ids(page) != "r0" {
		t.Fatalf("last page = %s, %v; want r0", ids(page), err)
	}
	if page, err := s.UsageRows(ctx, fb.UsageList{Customer: "nobody", Limit: 10}); err != nil || len(page) != 0 {
		t.Fatalf("another customer's rows: %s, %v", ids(page), err)
	}

	last, err := s.LastUsage(ctx, []string{"acme", "beta", "zed"})
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 2 || !last["acme"].Equal(t0.Add(2*time.Minute)) || !last["beta"].Equal(t0.Add(time.Hour)) {
		t.Fatalf("LastUsage = %v; want acme at +2m, beta at +1h, zed absent", last)
	}

	for _, tc := range []struct{ q, after, want string }{
		{"", "", "acme acme-labs beta zed"},
		{"acme", "", "acme acme-labs zed"}, // id prefix, and zed by its name, any case
		{"ACME", "acme", "acme-labs zed"},
		{"labs", "", "acme-labs"},
		{"cme", "", "acme zed"}, // names only: "cme" starts no id
		{"%_", "", "beta"},      // LIKE's wildcards are literal
		{"_", "", "beta"},
		{"e_", "", ""}, // as a wildcard, _ would match "acme" and "beta"
	} {
		cs, err := s.FindCustomers(ctx, tc.q, tc.after, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		for i, c := range cs {
			if i > 0 {
				got += " "
			}
			got += c.ID
		}
		if got != tc.want {
			t.Errorf("FindCustomers(%q, after %q) = %q, want %q", tc.q, tc.after, got, tc.want)
		}
	}
	if cs, err := s.FindCustomers(ctx, "", "", 2); err != nil || len(cs) != 2 || cs[0].Name != "Acme Corp" || !cs[0].CreatedAt.Equal(t0) {
		t.Fatalf("FindCustomers limit 2 = %+v, %v", cs, err)
	}
}

func ids(us []fb.Usage) string {
	var s string
	for i, u := range us {
		if i > 0 {
			s += " "
		}
		s += u.ID
	}
	return s
}

// testSessions: a session round trips, ends once, and is deleted once
// expired.
func testSessions(t *testing.T, s fb.Store) {
	ctx := context.Background()
	op := fb.Session{ID: "ses_op", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	cu := fb.Session{ID: "ses_cu", Customer: "acme", KeyID: "key_1", CreatedAt: t0, ExpiresAt: t0.Add(12 * time.Hour)}
	for _, x := range []fb.Session{op, cu} {
		if err := s.CreateSession(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateSession(ctx, op); fb.ErrorType(err) != fb.EConflict {
		t.Fatalf("a taken session id: %v, want a conflict", err)
	}
	got, err := s.Session(ctx, "ses_cu")
	if err != nil || got != cu || !got.Live(t0) || got.Operator() {
		t.Fatalf("Session = %+v, %v; want %+v", got, err, cu)
	}
	if got, err := s.Session(ctx, "ses_op"); err != nil || !got.Operator() || got.Live(t0.Add(time.Hour)) {
		t.Fatalf("the operator's session = %+v, %v (live at its expiry?)", got, err)
	}
	if _, err := s.Session(ctx, "ses_none"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("an unknown session: %v", err)
	}
	end := t0.Add(time.Minute)
	if err := s.EndSession(ctx, "ses_cu", end); err != nil {
		t.Fatal(err)
	}
	if err := s.EndSession(ctx, "ses_cu", end.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Session(ctx, "ses_cu"); err != nil || !got.EndedAt.Equal(end) || got.Live(end) {
		t.Fatalf("ended twice: %+v, %v; want ended at %s, not live", got, err, end)
	}
	if err := s.EndSession(ctx, "ses_none", end); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("ending an unknown session: %v", err)
	}
	n, err := s.DeleteSessions(ctx, t0.Add(2*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("DeleteSessions = %d, %v; want 1 (the operator's, expired)", n, err)
	}
	if _, err := s.Session(ctx, "ses_op"); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("a deleted session: %v", err)
	}
	if _, err := s.Session(ctx, "ses_cu"); err != nil {
		t.Fatalf("a session not yet expired was deleted: %v", err)
	}
}

// testVerifications: the last verification recorded is the latest by
// time (the order recorded among equal times), with its problems, or
// not_found when none is.
func testVerifications(t *testing.T, s fb.Store) {
	ctx := context.Background()
	if _, err := s.LastVerification(ctx); fb.ErrorType(err) != fb.ENotFound {
		t.Fatalf("LastVerification of none: %v; want not_found", err)
	}
	vs := []fb.Verification{
		{At: t0, Took: 1500 * time.Microsecond, Entries: 10, Accounts: 2},
		{At: t0.Add(time.Hour), Took: time.Second, Entries: 12, Accounts: 3, Problems: []string{"lot l1: remaining 5, journal 4", "account a: debt"}},
		{At: t0.Add(30 * time.Minute), Err: "the journal could not be read"},
	}
	for _, v := range vs {
		if err := s.AddVerification(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.LastVerification(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := vs[1]; !got.At.Equal(want.At) || got.Took != want.Took || got.Entries != 12 || got.Accounts != 3 || got.Err != "" ||
		fmt.Sprint(got.Problems) != fmt.Sprint(want.Problems) {
		t.Fatalf("LastVerification = %+v; want %+v", got, want)
	}
	later := fb.Verification{At: t0.Add(time.Hour), Entries: 13, Accounts: 3}
	if err := s.AddVerification(ctx, later); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LastVerification(ctx); err != nil || got.Entries != 13 || got.Problems != nil {
		t.Fatalf("after a second at the same time: %+v, %v; want the one recorded last, without problems", got, err)
	}
}
