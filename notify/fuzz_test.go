package notify

import (
	"testing"
	"time"
)

// FuzzVerify: any header and body are answered without a panic; a body
// signed with Sign verifies with its secret and with no other, and a
// changed body never does.
func FuzzVerify(f *testing.F) {
	f.Add("whsec_x", "t=1700000000,v1=00", []byte(`{"id":"evt_1"}`))
	f.Add("s", "t=,v1=,v1=zz", []byte(""))
	f.Add("", "v1=ab,t=12", []byte("x"))
	f.Fuzz(func(t *testing.T, secret, header string, body []byte) {
		_ = Verify(secret, header, body, time.Unix(1700000000, 0), time.Minute)
		at := time.Unix(1700000000, 0)
		sig := Sign(secret, at, body)
		if err := Verify(secret, sig, body, at, time.Minute); err != nil {
			t.Fatalf("Sign(%q) did not verify: %v", secret, err)
		}
		if err := Verify(secret+"x", sig, body, at, time.Minute); err == nil {
			t.Fatalf("verified with another secret")
		}
		if err := Verify(secret, sig, append(append([]byte(nil), body...), '!'), at, time.Minute); err == nil {
			t.Fatalf("verified a changed body")
		}
		if err := Verify(secret, sig, body, at.Add(2*time.Minute), time.Minute); err == nil {
			t.Fatalf("verified past the tolerance")
		}
	})
}
