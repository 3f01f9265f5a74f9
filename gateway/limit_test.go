package gateway

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := newLimiter()
	now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	// 60 rpm: a burst of 60, then one a second.
	for i := range 60 {
		if ok, _ := l.admitRequest("a", 60, now); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, wait := l.admitRequest("a", 60, now)
	if ok || wait != time.Second {
		t.Fatalf("61st: %v, wait %s", ok, wait)
	}
	if ok, _ := l.admitRequest("a", 60, now.Add(time.Second)); !ok {
		t.Fatal("a second later")
	}
	// Another customer is not affected.
	if ok, _ := l.admitRequest("b", 60, now); !ok {
		t.Fatal("b refused")
	}
	// 1,000 tpm: 600 then 400 fit; 1 more waits 60 ms; a refund of 300
	// unused makes room at once. A request above the whole minute's
	// budget counts as the budget (it can pass when the bucket is full).
	if ok, _ := l.admitTokens("c", 1000, 600, now); !ok {
		t.Fatal("600")
	}
	if ok, _ := l.admitTokens("c", 1000, 400, now); !ok {
		t.Fatal("400")
	}
	if ok, wait := l.admitTokens("c", 1000, 1, now); ok || wait != 60*time.Millisecond {
		t.Fatalf("1001st token: %v %s", ok, wait)
	}
	l.refund("c", 300, 1000, now)
	if ok, _ := l.admitTokens("c", 1000, 300, now); !ok {
		t.Fatal("after the refund")
	}
	if ok, _ := l.admitTokens("d", 1000, 5000, now); !ok {
		t.Fatal("an oversized request on a full bucket")
	}
	// A refusal takes nothing of the budget it was refused by.
	if ok, _ := l.admitTokens("e", 100, 100, now); !ok {
		t.Fatal("e first")
	}
	if ok, _ := l.admitTokens("e", 100, 1, now); ok {
		t.Fatal("e over tpm")
	}
	if ok, _ := l.admitTokens("e", 100, 1, now.Add(600*time.Millisecond)); !ok {
		t.Fatal("e 600 ms later: the refusal took tokens")
	}
	// Unlimited.
	if ok, _ := l.admitRequest("f", 0, now); !ok {
		t.Fatal("unlimited requests refused")
	}
	if ok, _ := l.admitTokens("f", 0, 1<<40, now); !ok {
		t.Fatal("unlimited tokens refused")
	}
}
