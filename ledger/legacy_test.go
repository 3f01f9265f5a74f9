package ledger_test

import (
	"context"
	"database/sql"
	"os"
	"testing"

	fb "farebox"
	"farebox/ledger"
)

// TestVerifyReplaysLegacyOverCapture (issue 12, finding 14): journals
// written before a capture above its hold needed allow_over_capture hold
// such captures without the flag. `farebox ledger verify` must still
// replay them to the stored state, while the engine refuses the same op
// from now on. The rows in testdata were written by the engine at commit
// ed6cdbc.
func TestVerifyReplaysLegacyOverCapture(t *testing.T) {
	e := newEnv(t, ledger.Config{Cache: true})
	e.close()
	rows, err := os.ReadFile("testdata/legacy-over-capture.sql")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", e.path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(string(rows)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	e.open()
	rep, err := ledger.Verify(context.Background(), e.store)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 || rep.Entries != 5 || rep.Holds != 2 || rep.LegacyOverCaptures != 2 {
		t.Fatalf("verify of the legacy journal: got %d entries, %d holds, %d legacy over-captures, problems %v; want 5, 2, 2 and no problems", rep.Entries, rep.Holds, rep.LegacyOverCaptures, rep.Problems)
	}
	// The same captures replayed by their requests answer their first
	// result; a new capture above its hold is refused.
	res := e.ok(fb.Op{Kind: fb.OpCapture, HoldID: "hold_typo", Amount: cr("20"), Key: "cap-typo"})
	if res.Captured != cr("20") || res.Uncollected != cr("15") {
		t.Fatalf("legacy capture replayed: %+v", res)
	}
	e.ok(fb.Op{Kind: fb.OpGrant, Customer: "cus_legacy", Amount: cr("10"), Source: fb.SourcePurchase})
	h := e.ok(hold("cus_legacy", "1", ""))
	e.fails(fb.Op{Kind: fb.OpCapture, HoldID: h.Hold.ID, Amount: cr("5")}, fb.EInvalid, fb.EInvalid)
	e.verify()
}
