package farebox

import (
	"errors"
	"fmt"
)

// Error types. Each maps to one HTTP status in the api package's table; the
// type is what a client switches on, the code may be more specific.
const (
	EInvalid             = "invalid_request"
	EUnauthorized        = "unauthorized"
	EInvalidAPIKey       = "invalid_api_key"
	EInsufficientCredits = "insufficient_credits"
	EForbidden           = "forbidden"
	EModelNotAllowed     = "model_not_allowed"
	ENotFound            = "not_found"
	EMethodNotAllowed    = "method_not_allowed"
	EIdempotencyConflict = "idempotency_conflict"
	EConflict            = "conflict"
	ETooLarge            = "request_too_large"
	EUnsupportedMedia    = "unsupported_media_type"
	ERequestTimeout      = "request_timeout" // the request (its body) did not arrive in time
	ERateLimited         = "rate_limited"
	EUpstream            = "upstream_error"
	EUnavailable         = "no_capacity"
	EUpstreamTimeout     = "upstream_timeout"
	EInternal            = "internal_error"
)

// Error is an error a client may see. Anything that is not an *Error is
// reported to clients as internal_error, its text never shown.
type Error struct {
	Type    string // one of the E* constants
	Code    string // Type, or something more specific such as "hold_expired"
	Message string // for people; never internals
	Param   string // the offending field, for invalid_request
}

func (e *Error) Error() string {
	if e.Param != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Param)
	}
	return e.Code + ": " + e.Message
}

// Errorf returns an *Error of type typ with a formatted message.
func Errorf(typ, format string, args ...any) *Error {
	return &Error{Type: typ, Code: typ, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an invalid_request error naming the field param.
func Invalid(param, format string, args ...any) *Error {
	return &Error{Type: EInvalid, Code: EInvalid, Message: fmt.Sprintf(format, args...), Param: param}
}

// WithCode returns a copy of e with a more specific code.
func (e *Error) WithCode(code string) *Error {
	c := *e
	c.Code = code
	return &c
}

// ErrorType returns the type of err if it is (or wraps) an *Error, else EInternal.
func ErrorType(err error) string {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Type
	}
	return EInternal
}

// ErrorCode returns the code of err if it is (or wraps) an *Error, else EInternal.
func ErrorCode(err error) string {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return EInternal
}

// WithParam returns a copy of e naming the offending field.
func (e *Error) WithParam(param string) *Error {
	c := *e
	c.Param = param
	return &c
}
