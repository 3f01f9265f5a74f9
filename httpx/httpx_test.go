package httpx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	fb "farebox"
)

// TestWriteError: the one table from an error to what a client sees, and
// what the server log says of it.
func TestWriteError(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		status     int
		typ, code  string
		retryAfter string
		log        string // the level logged, "" for nothing
	}{
		{"a farebox error", fb.Errorf(fb.EInsufficientCredits, "short"), 402, "insufficient_credits", "insufficient_credits", "", ""},
		{"unavailable", fb.ErrStoreUnavailable.New("down"), 503, "unavailable", "store_unavailable", "1", ""},
		{"a bare error", errors.New("disk on fire"), 500, "internal_error", "internal_error", "", "ERROR"},
		{"a deadline while waiting", fmt.Errorf("ledger: %w", context.DeadlineExceeded), 503, "unavailable", "server_busy", "1", "WARN"},
		{"a client that left", context.Canceled, 503, "unavailable", "server_busy", "1", "WARN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logged bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logged, nil))
			w := httptest.NewRecorder()
			WriteError(w, httptest.NewRequest("POST", "/v1/chat/completions", nil), log, c.err)
			if w.Code != c.status {
				t.Errorf("status %d, want %d", w.Code, c.status)
			}
			body := w.Body.String()
			if !strings.Contains(body, `"type":"`+c.typ+`"`) || !strings.Contains(body, `"code":"`+c.code+`"`) {
				t.Errorf("body %s, want type %s code %s", body, c.typ, c.code)
			}
			if got := w.Header().Get("Retry-After"); got != c.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, c.retryAfter)
			}
			switch {
			case c.log == "" && logged.Len() > 0:
				t.Errorf("logged %q, want nothing", logged.String())
			case c.log != "" && !strings.Contains(logged.String(), "level="+c.log):
				t.Errorf("logged %q, want a %s", logged.String(), c.log)
			}
			if strings.Contains(body, "disk on fire") {
				t.Errorf("an internal cause reached the client: %s", body)
			}
		})
	}
}
