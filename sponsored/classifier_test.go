package sponsored

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"farebox/sponsored/internal/train"
)

// TestModelRegenerates: the committed weights are what the trainer makes
// of the committed data, byte for byte (run `go generate ./sponsored`
// after changing either).
func TestModelRegenerates(t *testing.T) {
	got, err := train.Build(os.DirFS("data"), train.Defaults)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, modelFile) {
		t.Fatalf("decision.model is not what go generate writes (%d bytes, want %d): run go generate ./sponsored", len(modelFile), len(got))
	}
}

// confusion counts a classifier's answers against labels.
type confusion struct{ tp, fp, fn, tn int }

func (c *confusion) add(moment, decision bool) {
	switch {
	case moment && decision:
		c.tp++
	case moment:
		c.fp++
	case decision:
		c.fn++
	default:
		c.tn++
	}
}

func (c confusion) precision() float64 { return float64(c.tp) / float64(max(c.tp+c.fp, 1)) }
func (c confusion) recall() float64    { return float64(c.tp) / float64(max(c.tp+c.fn, 1)) }

func (c confusion) String() string {
	return fmt.Sprintf("                      predicted decision   predicted other\n"+
		"  actual decision     %18d   %15d\n"+
		"  actual other        %18d   %15d\n"+
		"  precision %.3f, recall %.3f (%d prompts)", c.tp, c.fn, c.fp, c.tn, c.precision(), c.recall(), c.tp+c.fp+c.fn+c.tn)
}

// TestClassifierQuality measures the committed classifier on the held-out
// part of the data, which it was not trained or tuned on: a decision
// moment must be one (precision ≥ 0.95), and most of them found (recall ≥
// 0.7).
func TestClassifierQuality(t *testing.T) {
	clf, err := NewClassifier(0)
	if err != nil {
		t.Fatal(err)
	}
	all, err := train.Load(os.DirFS("data"))
	if err != nil {
		t.Fatal(err)
	}
	_, heldOut := train.Split(all)
	var total confusion
	byLang := map[string]*confusion{}
	var wrong []string
	for _, e := range heldOut {
		p, moment := clf.Score(e.Text)
		total.add(moment, e.Decision)
		if byLang[e.File] == nil {
			byLang[e.File] = &confusion{}
		}
		byLang[e.File].add(moment, e.Decision)
		if moment != e.Decision {
			wrong = append(wrong, fmt.Sprintf("  %s:%d labelled %v, p=%.3f: %s", e.File, e.Line, map[bool]string{true: "decision", false: "other"}[e.Decision], p, e.Text))
		}
	}
	t.Logf("held-out confusion matrix, threshold %.2f:\n%s", clf.Threshold(), total)
	for _, f := range []string{"en.tsv", "nl.tsv", "no.tsv"} {
		if c := byLang[f]; c != nil {
			t.Logf("%s: tp %d fp %d fn %d tn %d, precision %.3f, recall %.3f", f, c.tp, c.fp, c.fn, c.tn, c.precision(), c.recall())
		}
	}
	t.Logf("misclassified:\n%s", strings.Join(wrong, "\n"))
	if total.tp+total.fn < 100 || total.fp+total.tn < 100 {
		t.Fatalf("the held-out part is too small to measure: %+v", total)
	}
	if p := total.precision(); p < 0.95 {
		t.Errorf("precision %.3f, want ≥ 0.95", p)
	}
	if r := total.recall(); r < 0.7 {
		t.Errorf("recall %.3f, want ≥ 0.7", r)
	}
}

// nonDecisions reads the committed list of prompts that are no decision
// moments (not used in training).
func nonDecisions(t testing.TB) []string {
	f, err := os.Open("data/nondecisions.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func TestClassifierScoresAreProbabilities(t *testing.T) {
	clf, err := NewClassifier(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", "?", strings.Repeat("which laptop ", 2000), "🙂🙂🙂", "\x00\xff"} {
		if p, _ := clf.Score(s); !(p >= 0 && p <= 1) {
			t.Errorf("Score(%.20q) = %v, want a probability", s, p)
		}
	}
	if got := clf.Threshold(); got < 0.6 || got > 0.99 {
		t.Errorf("threshold %v out of the trainer's range", got)
	}
	if c, _ := NewClassifier(0.99); c.Threshold() != 0.99 {
		t.Errorf("a threshold given: %v", c.Threshold())
	}
}
