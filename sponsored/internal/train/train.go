// Package train builds the decision-moment classifier from the labelled
// prompts in sponsored/data: it splits them into a training part and a
// held-out part, trains a logistic regression over hashed features
// (package features) by stochastic gradient descent, tunes the decision
// threshold for precision by cross-validation on the training part alone,
// and writes the model (package model).
//
// Everything is deterministic: files and lines are read in order, the
// split is by position, the shuffles come from a fixed-seed generator, the
// epochs are fixed, floating-point products are rounded explicitly (Go may
// otherwise fuse a multiply and an add), and weights are written as
// integers. Building twice gives the same bytes (a test in package
// sponsored demands it of the committed model).
package train

import (
	"bufio"
	"fmt"
	"io/fs"
	"math"
	"path"
	"slices"
	"strings"

	"farebox/sponsored/internal/features"
	"farebox/sponsored/internal/model"
)

// Labels of the data files.
const (
	LabelDecision = "decision"
	LabelOther    = "other"
)

// Example is one labelled prompt.
type Example struct {
	File     string
	Line     int
	Decision bool
	Text     string
}

// Load reads every *.tsv file of fsys's root, in name order: lines of
// label<TAB>text, blank lines and lines starting with # skipped.
func Load(fsys fs.FS) ([]Example, error) {
	names, err := fs.Glob(fsys, "*.tsv")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []Example
	for _, name := range names {
		f, err := fsys.Open(name)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		n := 0
		for sc.Scan() {
			n++
			t := strings.TrimRight(sc.Text(), "\r")
			if t == "" || strings.HasPrefix(t, "#") {
				continue
			}
			label, text, ok := strings.Cut(t, "\t")
			if !ok || (label != LabelDecision && label != LabelOther) || strings.TrimSpace(text) == "" {
				f.Close()
				return nil, fmt.Errorf("%s:%d: want %s or %s, a tab and a prompt", name, n, LabelDecision, LabelOther)
			}
			out = append(out, Example{File: path.Base(name), Line: n, Decision: label == LabelDecision, Text: text})
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return out, nil
}

// HeldOutEvery: one example in this many is held out.
const HeldOutEvery = 5

// Split puts every HeldOutEvery-th example of each file and label (by
// position: the third of each five) in the held-out part, the rest in the
// training part. The files list their prompts in much the same order in
// each language, so a prompt and its translations mostly fall on the same
// side and the held-out part measures prompts the model has not seen in
// any language.
func Split(all []Example) (trainPart, heldOut []Example) {
	for i, p := range positions(all) {
		if p%HeldOutEvery == 2 {
			heldOut = append(heldOut, all[i])
		} else {
			trainPart = append(trainPart, all[i])
		}
	}
	return trainPart, heldOut
}

// positions numbers each example among those of its file and label, so
// that a prompt and its translations, listed in much the same place of
// each language's file, get much the same number.
func positions(ex []Example) []int {
	next := map[string]int{}
	out := make([]int, len(ex))
	for i, e := range ex {
		k := e.File + "\x00" + fmt.Sprint(e.Decision)
		out[i] = next[k]
		next[k]++
	}
	return out
}

// Options are the training's settings; Defaults are the committed model's.
type Options struct {
	Buckets int     // hash buckets, a power of two
	Epochs  int     // passes over the training part
	LR      float64 // the learning rate at the first epoch
	Decay   float64 // lr = LR ÷ (1 + Decay × epoch)
	L2      float64 // weight decay
	Seed    uint64  // of the shuffles
	// Folds of the cross-validation that tunes the threshold, and the
	// precision the threshold must reach in it.
	Folds           int
	TargetPrecision float64
	// MinThreshold bounds the threshold from below, whatever the
	// cross-validation finds.
	MinThreshold float64
	// Prune drops weights smaller than this (absolute, in millionths):
	// they change no decision and would only fill the file.
	Prune int64
}

// Defaults are the settings of the committed model.
var Defaults = Options{Buckets: 1 << 15, Epochs: 80, LR: 2, Decay: 0.1, L2: 1e-3, Seed: 1, Folds: 5,
	TargetPrecision: 0.97, MinThreshold: 0.6, Prune: 1000}

// vector is an example's features: buckets, one per occurrence, and the
// weight of each (1/√n).
type vector struct {
	idx   []uint32
	scale float64
	y     float64
}

func vectorize(ex []Example, buckets int) []vector {
	mask := uint32(buckets - 1)
	out := make([]vector, len(ex))
	var norm []byte
	for i, e := range ex {
		norm = features.Normalize(norm[:0], e.Text)
		var idx []uint32
		features.Hashes(norm, func(h uint32) { idx = append(idx, h&mask) })
		v := vector{idx: idx}
		if len(idx) > 0 {
			v.scale = 1 / math.Sqrt(float64(len(idx)))
		}
		if e.Decision {
			v.y = 1
		}
		out[i] = v
	}
	return out
}

// rng is xorshift64*: a fixed-seed source of shuffles, the same in every
// Go version.
type rng uint64

func (r *rng) next() uint64 {
	x := uint64(*r)
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	*r = rng(x)
	return x * 2685821657736338717
}

// fit trains weights on vs.
func fit(vs []vector, o Options) (w []float64, bias float64) {
	w = make([]float64, o.Buckets)
	order := make([]int, len(vs))
	for i := range order {
		order[i] = i
	}
	r := rng(o.Seed*0x9E3779B97F4A7C15 + 1)
	for epoch := range o.Epochs {
		for i := len(order) - 1; i > 0; i-- {
			j := int(r.next() % uint64(i+1))
			order[i], order[j] = order[j], order[i]
		}
		lr := o.LR / (1 + float64(o.Decay*float64(epoch)))
		for _, k := range order {
			v := &vs[k]
			var dot float64
			for _, f := range v.idx {
				dot += w[f]
			}
			p := model.Sigmoid(bias + float64(v.scale*dot))
			g := p - v.y
			bias -= float64(lr * g)
			gs := float64(g * v.scale)
			for _, f := range v.idx {
				d := gs + float64(o.L2*w[f])
				w[f] -= float64(lr * d)
			}
		}
	}
	return w, bias
}

// quantize turns trained weights into a model, dropping weights below
// o.Prune.
func quantize(w []float64, bias float64, o Options) *model.Model {
	m := &model.Model{Buckets: o.Buckets, Bias: int64(math.Round(bias * 1e6)), Weights: make([]int64, o.Buckets)}
	for i, x := range w {
		q := int64(math.Round(x * 1e6))
		if q >= o.Prune || -q >= o.Prune {
			m.Weights[i] = q
		}
	}
	m.Prepare()
	return m
}

// Train fits a model on ex with o, its threshold o.MinThreshold (Build
// tunes it).
func Train(ex []Example, o Options) *model.Model {
	w, b := fit(vectorize(ex, o.Buckets), o)
	m := quantize(w, b, o)
	m.Threshold = int64(math.Round(o.MinThreshold * 1e6))
	return m
}

// Tune picks the decision threshold: the lowest, in steps of 0.01 from
// o.MinThreshold, at which the models of a Folds-fold cross-validation on
// ex reach o.TargetPrecision on the examples each did not see. A missed
// decision moment only loses revenue; a suggestion where there is none is
// a defect, so the threshold is chosen by precision first.
func Tune(ex []Example, o Options) (threshold float64, cvPrecision, cvRecall float64) {
	probs := make([]float64, len(ex))
	folds := positions(ex)
	var norm []byte
	for fold := range o.Folds {
		var in []Example
		var outIdx []int
		for i, e := range ex {
			if folds[i]%o.Folds == fold {
				outIdx = append(outIdx, i)
			} else {
				in = append(in, e)
			}
		}
		m := Train(in, o)
		for _, i := range outIdx {
			norm = features.Normalize(norm[:0], ex[i].Text)
			probs[i] = m.Probability(norm)
		}
	}
	at := func(t float64) (prec, rec float64) {
		var tp, fp, fn int
		for i, e := range ex {
			pos := probs[i] >= t
			switch {
			case pos && e.Decision:
				tp++
			case pos:
				fp++
			case e.Decision:
				fn++
			}
		}
		if tp+fp > 0 {
			prec = float64(tp) / float64(tp+fp)
		}
		if tp+fn > 0 {
			rec = float64(tp) / float64(tp+fn)
		}
		return prec, rec
	}
	for step := int(math.Round(o.MinThreshold * 100)); step <= 99; step++ {
		t := float64(step) / 100
		if p, r := at(t); p >= o.TargetPrecision {
			return t, p, r
		}
	}
	p, r := at(0.99)
	return 0.99, p, r
}

// Build loads the data of fsys, trains the model on its training part with
// o (the threshold tuned on that part too) and returns the model file.
func Build(fsys fs.FS, o Options) ([]byte, error) {
	all, err := Load(fsys)
	if err != nil {
		return nil, err
	}
	trainPart, heldOut := Split(all)
	t, p, r := Tune(trainPart, o)
	m := Train(trainPart, o)
	m.Threshold = int64(math.Round(t * 1e6))
	nonzero := 0
	for _, w := range m.Weights {
		if w != 0 {
			nonzero++
		}
	}
	pos := 0
	for _, e := range trainPart {
		if e.Decision {
			pos++
		}
	}
	m.Notes = []string{
		"The decision-moment classifier of package sponsored: logistic regression over hashed word",
		"unigrams and bigrams and byte 3- and 4-grams of words (sponsored/internal/features).",
		"Generated by `go generate ./sponsored` (sponsored/internal/gen) from sponsored/data: do not edit.",
		fmt.Sprintf("Trained on %d prompts (%d decision moments), %d held out; %d epochs, lr %s, decay %s, l2 %s, seed %d.",
			len(trainPart), pos, len(heldOut), o.Epochs, ftoa(o.LR), ftoa(o.Decay), ftoa(o.L2), o.Seed),
		fmt.Sprintf("Threshold %s: the lowest from %s reaching precision %s in %d-fold cross-validation (precision %s, recall %s).",
			ftoa(t), ftoa(o.MinThreshold), ftoa(o.TargetPrecision), o.Folds, fmt.Sprintf("%.3f", p), fmt.Sprintf("%.3f", r)),
		fmt.Sprintf("Weights in millionths; %d of %d buckets non-zero (smaller than %d pruned).", nonzero, o.Buckets, o.Prune),
	}
	return m.Marshal(), nil
}

func ftoa(f float64) string { return fmt.Sprintf("%g", f) }
