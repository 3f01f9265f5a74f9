package sponsored

import (
	"testing"
	"unicode/utf8"

	fb "farebox"
	"farebox/fakeclock"
)

// FuzzClickToken: a click link's token, however made up or damaged, is
// either refused or read without panicking; and every token the service
// signs reads back as what it signed, under its secret only.
func FuzzClickToken(f *testing.F) {
	s, err := New(Deps{Clock: fakeclock.New(clockStart), Secret: testSecret}, Config{})
	if err != nil {
		f.Fatal(err)
	}
	other, err := New(Deps{Clock: fakeclock.New(clockStart), Secret: []byte("another secret, another server!!")}, Config{})
	if err != nil {
		f.Fatal(err)
	}
	good := s.sign(token{issued: 1_763_719_200, bid: 2 * fb.Micro, score: 912_345, topic: 1, campaign: "laptops", plan: "free"})
	f.Add(good, []byte("0123456789"), int64(1_763_719_200), int64(2_000_000), uint32(912_345), uint8(1), "laptops", "free")
	f.Add("", []byte{}, int64(0), int64(0), uint32(0), uint8(0), "", "")
	f.Add(good[:len(good)-2], []byte("x"), int64(-1), int64(-5), uint32(1<<31), uint8(255), "a b", "ø")
	f.Fuzz(func(t *testing.T, tok string, nonce []byte, issued, bid int64, score uint32, topic uint8, campaign, plan string) {
		if _, err := s.verify(tok); err == nil && tok != good {
			// A token that verifies was signed here: it must sign back
			// to one that verifies the same.
			got, _ := s.verify(tok)
			if again, err := s.verify(s.sign(got)); err != nil || again != got {
				t.Fatalf("token %q read as %+v, signed again as %+v, %v", tok, got, again, err)
			}
		}
		if len(campaign) > maxCampaign || len(plan) > maxCampaign || !utf8.ValidString(campaign) || !utf8.ValidString(plan) {
			return
		}
		want := token{issued: issued, bid: fb.Amount(bid), score: int64(score), topic: int(topic), campaign: campaign, plan: plan}
		copy(want.nonce[:], nonce)
		signed := s.sign(want)
		got, err := s.verify(signed)
		if err != nil || got != want {
			t.Fatalf("signed %+v, read %+v, %v", want, got, err)
		}
		if _, err := other.verify(signed); err == nil {
			t.Fatal("a token verified under another server's secret")
		}
	})
}
