package model

import (
	"bytes"
	"strings"
	"testing"
)

func TestMarshalParse(t *testing.T) {
	m := &Model{Buckets: 8, Threshold: 720_000, Bias: -1_500_000, Weights: []int64{0, 5, 0, -7, 0, 0, 0, 1_000_000}, Notes: []string{"a note"}}
	b := m.Marshal()
	want := "farebox-decision-model v1\n# a note\nbuckets 8\nthreshold 720000\nbias -1500000\n1 5\n3 -7\n7 1000000\n"
	if string(b) != want {
		t.Fatalf("Marshal:\n%s\nwant:\n%s", b, want)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), b) || got.Threshold != m.Threshold || got.Bias != m.Bias {
		t.Errorf("round trip: %+v", got)
	}
	if p := got.Probability(nil); p < 0.18 || p > 0.19 { // sigmoid(-1.5)
		t.Errorf("probability of an empty text %v, want sigmoid of the bias", p)
	}
	for _, bad := range []string{"", "other v1\n", "farebox-decision-model v1\nbias 1\n", "farebox-decision-model v1\nbuckets 3\n",
		"farebox-decision-model v1\nbuckets 8\n9 1\n", "farebox-decision-model v1\nbuckets 8\n1 x\n"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) took it", strings.TrimSpace(bad))
		}
	}
}
