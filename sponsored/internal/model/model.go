// Package model is the decision-moment classifier's weights and how they
// score a message: logistic regression over the hashed features of
// package features, each occurrence weighing 1/√n in a message of n
// feature occurrences. Weights are kept as integers of millionths, written
// as text one non-zero bucket a line, so that the committed file is the
// same bytes wherever it is generated and every platform reads the same
// numbers back.
package model

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"

	"farebox/sponsored/internal/features"
)

// Model is a trained classifier.
type Model struct {
	// Buckets is the number of hash buckets, a power of two.
	Buckets int
	// Threshold is the probability at and above which a message is a
	// decision moment, in millionths (tuned for precision by the trainer).
	Threshold int64
	// Bias and Weights (by bucket) are in millionths.
	Bias    int64
	Weights []int64
	// Notes are comment lines written at the top of the file (what
	// trained it, on what).
	Notes []string

	// w is Weights ÷ 10⁶, for scoring: float32, so that the table of a
	// model of 2^15 buckets (128 KiB) stays in a core's cache.
	w []float32
}

const magic = "farebox-decision-model v1"

// Marshal writes the model: a header of notes and settings, then
// "bucket weight" for every non-zero weight, in bucket order.
func (m *Model) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(magic + "\n")
	for _, n := range m.Notes {
		b.WriteString("# " + n + "\n")
	}
	fmt.Fprintf(&b, "buckets %d\nthreshold %d\nbias %d\n", m.Buckets, m.Threshold, m.Bias)
	for i, w := range m.Weights {
		if w != 0 {
			b.WriteString(strconv.Itoa(i))
			b.WriteByte(' ')
			b.WriteString(strconv.FormatInt(w, 10))
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// Parse reads a model Marshal wrote.
func Parse(data []byte) (*Model, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() || sc.Text() != magic {
		return nil, fmt.Errorf("model: not a %s file", magic)
	}
	m := &Model{}
	line := 1
	header := map[string]*int64{"threshold": &m.Threshold, "bias": &m.Bias}
	for sc.Scan() {
		line++
		t := sc.Text()
		if n, ok := strings.CutPrefix(t, "# "); ok {
			m.Notes = append(m.Notes, n)
			continue
		}
		k, v, ok := strings.Cut(t, " ")
		if !ok {
			return nil, fmt.Errorf("model: line %d: %q", line, t)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("model: line %d: %v", line, err)
		}
		if k == "buckets" {
			if n <= 0 || n > 1<<24 || n&(n-1) != 0 {
				return nil, fmt.Errorf("model: line %d: buckets %d is not a power of two up to 2^24", line, n)
			}
			m.Buckets, m.Weights = int(n), make([]int64, n)
			continue
		}
		if p, ok := header[k]; ok {
			*p = n
			continue
		}
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i >= m.Buckets {
			return nil, fmt.Errorf("model: line %d: bucket %q out of range", line, k)
		}
		m.Weights[i] = n
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if m.Buckets == 0 {
		return nil, fmt.Errorf("model: no buckets line")
	}
	m.Prepare()
	return m, nil
}

// Prepare readies a model built in memory (by the trainer) for Score.
func (m *Model) Prepare() {
	m.w = make([]float32, len(m.Weights))
	for i, w := range m.Weights {
		m.w[i] = float32(float64(w) / 1e6)
	}
}

// Logit is the model's log-odds that a normalised message is a decision
// moment.
func (m *Model) Logit(norm []byte) float64 {
	mask := uint32(m.Buckets - 1)
	var sum float64
	n := 0
	features.Hashes(norm, func(h uint32) {
		sum += float64(m.w[h&mask])
		n++
	})
	z := float64(m.Bias) / 1e6
	if n > 0 {
		z += sum / math.Sqrt(float64(n))
	}
	return z
}

// Probability is the model's probability that a normalised message is a
// decision moment.
func (m *Model) Probability(norm []byte) float64 {
	return Sigmoid(m.Logit(norm))
}

// Decides reports whether a probability clears the model's threshold.
func (m *Model) Decides(p float64) bool {
	return int64(math.Round(p*1e6)) >= m.Threshold
}

// Sigmoid is the logistic function.
func Sigmoid(z float64) float64 {
	return 1 / (1 + math.Exp(-z))
}
