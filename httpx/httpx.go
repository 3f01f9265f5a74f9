// Package httpx is what every HTTP surface of Farebox shares: reading a
// request body within its limits, and the one table from an error to its
// status and body. Handlers return errors; WriteError answers them, and
// only internal errors are logged with their cause, never shown.
package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	fb "farebox"
)

// statusOf is the one table from error type to HTTP status.
var statusOf = map[string]int{
	fb.EInvalid:             http.StatusBadRequest,
	fb.EUnauthorized:        http.StatusUnauthorized,
	fb.EInvalidAPIKey:       http.StatusUnauthorized,
	fb.EInsufficientCredits: http.StatusPaymentRequired,
	fb.EForbidden:           http.StatusForbidden,
	fb.EModelNotAllowed:     http.StatusForbidden,
	fb.ENotFound:            http.StatusNotFound,
	fb.EMethodNotAllowed:    http.StatusMethodNotAllowed,
	fb.EIdempotencyConflict: http.StatusConflict,
	fb.EConflict:            http.StatusConflict,
	fb.ERequestTimeout:      http.StatusRequestTimeout,
	fb.ETooLarge:            http.StatusRequestEntityTooLarge,
	fb.EUnsupportedMedia:    http.StatusUnsupportedMediaType,
	fb.ERateLimited:         http.StatusTooManyRequests,
	fb.EUpstream:            http.StatusBadGateway,
	fb.EUnavailable:         http.StatusServiceUnavailable,
	fb.ENoCapacity:          http.StatusServiceUnavailable,
	fb.EUpstreamTimeout:     http.StatusGatewayTimeout,
	fb.EInternal:            http.StatusInternalServerError,
}

// Status is the HTTP status of err.
func Status(err error) int {
	if s, ok := statusOf[ClientError(err).Type]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Body is the error body every surface answers.
type Body struct {
	Error Detail `json:"error"`
}

// Detail is what a Body says of the error.
type Detail struct {
	Type    string  `json:"type"`
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
	// At is the first instant a lease's pool lacks its GPUs (no_capacity
	// of a lease).
	At *time.Time `json:"at,omitempty"`
}

// internal is what a client sees of an error that is not a *farebox.Error.
var internal = &fb.Error{Type: fb.EInternal, Code: fb.EInternal, Message: "internal error; see the server log"}

// ClientError is err as a client may see it: err itself when it is (or
// wraps) a *farebox.Error, else internal_error, its text never shown.
func ClientError(err error) *fb.Error {
	var fe *fb.Error
	if errors.As(err, &fe) {
		return fe
	}
	if isContext(err) {
		return busy
	}
	return internal
}

// busy is what a client sees when its request's context ended before the
// server was done with it (the gateway's request deadline passed while it
// waited for the ledger, say): nothing about the request was wrong, and
// a retry with the same idempotency key is safe.
var busy = &fb.Error{Type: fb.EUnavailable, Code: "server_busy", Message: "the server could not finish the request in time; retry with the same idempotency key"}

// isContext reports whether err is a context's end (deadline or
// cancellation), not a fault of the server.
func isContext(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// BodyOf is err's error body.
func BodyOf(err error) Body {
	fe := ClientError(err)
	b := Body{Error: Detail{Type: fe.Type, Code: fe.Code, Message: fe.Message}}
	if b.Error.Code == "" {
		b.Error.Code = fe.Type
	}
	if fe.Param != "" {
		p := fe.Param
		b.Error.Param = &p
	}
	if !fe.At.IsZero() {
		at := fe.At.UTC()
		b.Error.At = &at
	}
	return b
}

// ErrorJSON is err's error body as JSON (a stream's error event).
func ErrorJSON(err error) []byte {
	b, _ := json.Marshal(BodyOf(err))
	return b
}

// WriteError answers err with its status and body. An error that is not a
// *farebox.Error is logged with its cause and the request's id.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	WriteJSON(w, Prepare(w, r, log, err), BodyOf(err))
}

// Prepare does for err what WriteError does but write the body: it logs
// err as WriteError would and sets the headers its status takes
// (WWW-Authenticate, Retry-After), and returns the status. It is for a
// route answering errors in another shape (Anthropic's), with the same
// statuses, headers and logs.
func Prepare(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) int {
	var fe *fb.Error
	switch {
	case errors.As(err, &fe) || log == nil:
	case isContext(err):
		log.WarnContext(r.Context(), "request ended before the server was done", "method", r.Method, "path", r.URL.Path, "request_id", w.Header().Get("X-Request-Id"), "err", err)
	default:
		log.ErrorContext(r.Context(), "internal error", "method", r.Method, "path", r.URL.Path, "request_id", w.Header().Get("X-Request-Id"), "err", err)
	}
	status := Status(err)
	switch status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="farebox"`)
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", strconv.Itoa(1))
		}
	}
	return status
}

// WriteJSON answers v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"type":"internal_error","code":"internal_error","message":"could not encode the response","param":null}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
	w.Write([]byte{'\n'})
}

// ReadBody reads a JSON request body of at most limit bytes. Its
// Content-Type, when given, must be application/json (or, with suffixes,
// any type ending in +json, as CloudEvents'). A body that does not arrive
// in time (the server's body deadline) is 408.
func ReadBody(r *http.Request, limit int64, suffixes bool) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" && !(suffixes && strings.HasSuffix(mt, "+json")) {
			return nil, fb.Errorf(fb.EUnsupportedMedia, "Content-Type must be application/json, got %q", ct)
		}
	}
	if r.ContentLength > limit {
		return nil, fb.Errorf(fb.ETooLarge, "the request body is %d bytes; the limit is %d", r.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, bodyError(err)
	}
	if int64(len(b)) > limit {
		return nil, fb.Errorf(fb.ETooLarge, "the request body is over the limit of %d bytes", limit)
	}
	return b, nil
}

// bodyError is the client's error for a body that could not be read: the
// server guard's own refusals (too many bodies in flight, too slow) as
// they are, a read deadline hit as 408, anything else as a bad request.
func bodyError(err error) error {
	var fe *fb.Error
	switch {
	case errors.As(err, &fe):
		return fe
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fb.Errorf(fb.ERequestTimeout, "the request body did not arrive in time")
	}
	return fb.Invalid("", "could not read the request body: %v", err)
}
