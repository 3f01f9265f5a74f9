package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	fb "farebox"
)

func capture(hold string, amount fb.Amount) fb.Op {
	return fb.Op{Kind: fb.OpCapture, Customer: "acme", HoldID: hold, Amount: amount, Usage: &fb.Usage{ID: "req_" + hold, Model: "m"}}
}

func ids(es []Entry) string {
	var s []string
	for _, e := range es {
		s = append(s, fmt.Sprintf("%s=%s", e.ID, e.Op.Amount))
	}
	return strings.Join(s, ",")
}

// TestReopen: what was flushed is pending after a reopen, the latest put
// of an id wins, done ids are gone, and what was never flushed is lost
// (it was never acknowledged as kept).
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.log")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Put("h1", capture("h1", 1))
	s.Put("h2", capture("h2", 2))
	s.Put("h1", capture("h1", 3))
	s.Done("h2")
	s.Done("never-put")
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.PutNow("h3", capture("h3", 4)); err != nil {
		t.Fatal(err)
	}
	if got, want := ids(s.Pending()), "h1=0.000003,h3=0.000004"; got != want {
		t.Errorf("pending %s, want %s", got, want)
	}
	// A second process cannot open it.
	if _, err := Open(path); err == nil {
		t.Fatal("opened a spool in use")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, want := ids(s.Pending()), "h1=0.000003,h3=0.000004"; got != want {
		t.Errorf("after reopening: pending %s, want %s", got, want)
	}
	if p := s.Pending(); p[0].Op.Usage == nil || p[0].Op.Usage.ID != "req_h1" {
		t.Errorf("the op's usage row did not survive: %+v", p[0].Op)
	}
}

// TestTornTail: a crash in the middle of a write leaves a partial last
// line; it is ignored and cut, and the spool goes on from there.
func TestTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.log")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.PutNow("h1", capture("h1", 1))
	s.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	f.WriteString(`{"id":"h2","op":{"kind":"capt`)
	f.Close()
	s, err = Open(path)
	if err != nil {
		t.Fatalf("a torn tail: %v", err)
	}
	if got := ids(s.Pending()); got != "h1=0.000001" {
		t.Errorf("pending %s", got)
	}
	s.PutNow("h3", capture("h3", 3))
	s.Close()
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := ids(s.Pending()); got != "h1=0.000001,h3=0.000003" {
		t.Errorf("after writing past the cut: pending %s", got)
	}
	// A bad line that is not the last is damage, not a torn write.
	s.Close()
	b, _ := os.ReadFile(path)
	os.WriteFile(path, append([]byte("garbage\n"), b...), 0o600)
	if s, err := Open(path); err == nil {
		s.Close()
		t.Error("a damaged spool opened")
	}
}

// TestCompaction: a spool that is mostly done records is rewritten with
// the pending ones only, which survive.
func TestCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.log")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		id := fmt.Sprintf("h%04d", i)
		s.Put(id, capture(id, fb.Amount(i)))
		if i%1000 != 7 {
			s.Done(id)
		}
		if i%100 == 0 {
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Size() > 64<<10 {
		t.Errorf("the spool is %d bytes after compaction", st.Size())
	}
	s.Close()
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, want := ids(s.Pending()), "h0007=0.000007,h1007=0.001007,h2007=0.002007"; got != want {
		t.Errorf("pending %s, want %s", got, want)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
}
