package api

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

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

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Type    string  `json:"type"`
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
}

// writeError writes err as the API's error body. Errors that are not
// *farebox.Error are logged with their cause and shown as internal_error.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var fe *fb.Error
	if !errors.As(err, &fe) {
		log.Error("internal error", "method", r.Method, "path", r.URL.Path, "request_id", w.Header().Get("X-Request-Id"), "err", err)
		fe = &fb.Error{Type: fb.EInternal, Code: fb.EInternal, Message: "internal error; see the server log"}
	}
	status, ok := statusOf[fe.Type]
	if !ok {
		status = http.StatusInternalServerError
	}
	body := errorBody{Error: errorDetail{Type: fe.Type, Code: fe.Code, Message: fe.Message}}
	if body.Error.Code == "" {
		body.Error.Code = fe.Type
	}
	if fe.Param != "" {
		p := fe.Param
		body.Error.Param = &p
	}
	switch status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="farebox"`)
	case http.StatusTooManyRequests:
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", strconv.Itoa(1))
		}
	}
	writeJSON(w, status, body)
}
