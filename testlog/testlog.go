// Package testlog gives tests a server log that is shown only when the test
// fails: a server answers internal_error and logs why, and a failed run in
// CI must say why without a rerun.
package testlog

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
)

// New returns a logger of warnings and errors, printed with t's output when
// t has failed by its end.
func New(t testing.TB) *slog.Logger {
	w := &buffer{}
	t.Cleanup(func() {
		if s := w.String(); t.Failed() && s != "" {
			t.Logf("server log (warnings and errors):\n%s", s)
		}
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
