package farebox

import (
	"errors"
	"fmt"
	"time"
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
	EUnavailable         = "unavailable" // the database or the server cannot take it now: retry
	ENoCapacity          = "no_capacity" // nothing can serve it (no deployment, no free GPUs, too busy)
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
	// At is the first instant a lease's pool lacks the GPUs it asks for
	// (ErrLeaseNoCapacity); zero otherwise.
	At time.Time
}

func (e *Error) Error() string {
	if e.Param != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Param)
	}
	return e.Code + ": " + e.Message
}

// Is reports whether target is an *Error of the same type and code, so
// that errors.Is matches every error made from a sentinel below, whatever
// its message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Type == e.Type && t.Code == e.Code
}

// New returns an error of e's type and code with a formatted message: a
// sentinel's instance.
func (e *Error) New(format string, args ...any) *Error {
	c := *e
	c.Message = fmt.Sprintf(format, args...)
	return &c
}

// The errors other packages act on, by code: make one with New, test for
// one with errors.Is.
var (
	ErrHoldExpired         = &Error{Type: EConflict, Code: "hold_expired"}
	ErrHoldResolved        = &Error{Type: EConflict, Code: "hold_resolved"}
	ErrCustomerExists      = &Error{Type: EConflict, Code: "customer_exists"}
	ErrPlanExists          = &Error{Type: EConflict, Code: "plan_exists"}
	ErrPlanInUse           = &Error{Type: EConflict, Code: "plan_in_use"}
	ErrSubscriptionChanged = &Error{Type: EConflict, Code: "subscription_changed"}
	ErrUnknownCustomer     = &Error{Type: ENotFound, Code: "unknown_customer"}
	ErrModelNotFound       = &Error{Type: ENotFound, Code: "model_not_found"}
	ErrStoreUnavailable    = &Error{Type: EUnavailable, Code: "store_unavailable"}
	ErrShuttingDown        = &Error{Type: EUnavailable, Code: "shutting_down"}
	ErrStoreRejected       = &Error{Type: EInvalid, Code: "store_rejected"}
	ErrCampaignExists      = &Error{Type: EConflict, Code: "campaign_exists"}
	ErrCampaignChanged     = &Error{Type: EConflict, Code: "campaign_changed"}
	// ErrBudgetExceeded: an op would pass the budget it counts against.
	ErrBudgetExceeded = &Error{Type: EInsufficientCredits, Code: "budget_exceeded"}
	// ErrLeaseNoCapacity: a pool lacks the GPUs a lease (or a change of
	// the pool) needs, from the error's At.
	ErrLeaseNoCapacity = &Error{Type: EConflict, Code: "no_capacity"}
	// ErrLeaseChanged: a lease changed since the op about it was made;
	// made afresh, it applies to the lease as it is now.
	ErrLeaseChanged = &Error{Type: EConflict, Code: "lease_changed"}
	ErrPoolExists   = &Error{Type: EConflict, Code: "pool_exists"}
	// ErrKeyBudgetExceeded: a request the API key's remaining budget
	// cannot pay (the gateway's answer to ErrBudgetExceeded on a key).
	ErrKeyBudgetExceeded = &Error{Type: EInsufficientCredits, Code: "key_budget_exceeded"}
)

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
