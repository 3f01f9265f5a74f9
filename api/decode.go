package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	fb "farebox"
)

// MaxBodyBytes bounds a management request body.
const MaxBodyBytes = 1 << 20

// decodeStrict decodes one JSON object into v, a pointer to a struct:
// unknown fields, fields spelled in another case, repeated fields, wrong
// types, trailing data, null and an empty body (unless allowEmpty) are
// errors naming the field.
func decodeStrict(body []byte, v any, allowEmpty bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return fb.Invalid("", "request body must be a JSON object")
	}
	if err := checkKeys(body, fieldNames(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return fb.Invalid("", "request body must hold exactly one JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return fb.Invalid("", "request body must hold exactly one JSON object")
	}
	return nil
}

// checkKeys reads the top level of body, which must be a JSON object, and
// refuses a key that is not exactly one of names or appears twice:
// encoding/json would match it case-insensitively and keep the last of
// repeated keys, so {"AMOUNT":"1"} or {"amount":"1","amount":"1000"} would
// mean something the client may not have meant.
func checkKeys(body []byte, names map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return jsonError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fb.Invalid("", "request body must be a JSON object")
	}
	seen := make(map[string]bool, len(names))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return jsonError(err)
		}
		key, _ := tok.(string)
		if !names[key] {
			return fb.Invalid(key, "unknown field %q", key)
		}
		if seen[key] {
			return fb.Invalid(key, "field %q appears twice", key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return jsonError(err)
		}
	}
	return nil
}

// fieldNames lists the JSON names of the fields of the struct v points to.
func fieldNames(v any) map[string]bool {
	t := reflect.TypeOf(v).Elem()
	if names, ok := fieldCache.Load(t); ok {
		return names.(map[string]bool)
	}
	names := map[string]bool{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case name == "":
			names[f.Name] = true
		default:
			names[name] = true
		}
	}
	fieldCache.Store(t, names)
	return names
}

var fieldCache sync.Map // reflect.Type → map[string]bool

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fb.Invalid("", "malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		want := typ.Type.String()
		switch want {
		case "json.RawMessage":
			want = "a value"
		case "int", "int64":
			want = "an integer"
		case "bool":
			want = "true or false"
		}
		return fb.Invalid(typ.Field, "%s must be %s, not a JSON %s", typ.Field, want, typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fb.Invalid("", "malformed JSON: the body ends too early")
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return fb.Invalid(f, "unknown field %q", f)
	}
	return fb.Invalid("", "malformed JSON: %s", strings.TrimPrefix(msg, "json: "))
}

// amountField parses an optional amount given as a JSON string or number.
func amountField(param string, raw json.RawMessage) (fb.Amount, bool, error) {
	if raw == nil {
		return 0, false, nil
	}
	var a fb.Amount
	if err := a.UnmarshalJSON(raw); err != nil {
		return 0, false, amountError(param, err)
	}
	return a, true, nil
}

func usdField(param string, raw json.RawMessage) (fb.USD, bool, error) {
	if raw == nil {
		return 0, false, nil
	}
	var u fb.USD
	if err := u.UnmarshalJSON(raw); err != nil {
		return 0, false, amountError(param, err)
	}
	return u, true, nil
}

func amountError(param string, err error) error {
	if errors.Is(err, fb.ErrOverflow) {
		return fb.Invalid(param, "%s is too large", param)
	}
	return fb.Invalid(param, "%s must be a decimal string or number with at most 6 decimals, such as \"12.5\": %v", param, err)
}

// timeField parses an optional RFC 3339 time.
func timeField(param string, s *string) (time.Time, error) {
	if s == nil || *s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return time.Time{}, fb.Invalid(param, "%s must be an RFC 3339 time such as \"2027-01-01T00:00:00Z\"", param)
	}
	return t.UTC(), nil
}

// idempotencyKey merges the header and body keys.
func idempotencyKey(h, body string) (string, error) {
	if h != "" && body != "" && h != body {
		return "", fb.Invalid("idempotency_key", "the Idempotency-Key header and the idempotency_key field differ")
	}
	k := h
	if k == "" {
		k = body
	}
	if len(k) > 255 {
		return "", fb.Invalid("idempotency_key", "idempotency keys are at most 255 characters")
	}
	if !fb.Printable(k) {
		return "", fb.Invalid("idempotency_key", "idempotency keys must be printable UTF-8, without control characters")
	}
	return k, nil
}

// validID checks a customer's or a plan's id (farebox.ValidID).
func validID(param, id string) error {
	if id == "" || len(id) > fb.MaxIDLength {
		return fb.Invalid(param, "%s must be 1 to %d characters", param, fb.MaxIDLength)
	}
	if !fb.ValidID(id) {
		return fb.Invalid(param, "%s may hold only letters, digits, '_', '-' and '.'", param)
	}
	return nil
}

// maxTextID bounds the ids checked by textID.
const maxTextID = 255

// textID checks an id the API only looks up (a hold's, a key's, a plan's in
// a path): 1 to 255 bytes of printable UTF-8. Anything else can name
// nothing, and must not reach a store (PostgreSQL cannot hold a NUL).
func textID(param, id string) error {
	if id == "" || len(id) > maxTextID {
		return fb.Invalid(param, "%s must be 1 to %d characters", param, maxTextID)
	}
	if !fb.Printable(id) {
		return fb.Invalid(param, "%s must be printable UTF-8, without control characters", param)
	}
	return nil
}

// textField checks a free-text field such as a name: at most max bytes of
// printable UTF-8.
func textField(param, s string, max int) error {
	if len(s) > max {
		return fb.Invalid(param, "%s is at most %d characters", param, max)
	}
	if !fb.Printable(s) {
		return fb.Invalid(param, "%s must be printable UTF-8, without control characters", param)
	}
	return nil
}

// customerPath returns the {id} of a /customers/{id}/… path, checked as a
// customer id: a malformed one is a 400, an unknown one the handler's 404.
func customerPath(r *http.Request) (string, error) {
	id := r.PathValue("id")
	return id, validID("id", id)
}

// idPath returns the path wildcard name, checked by textID.
func idPath(r *http.Request, name string) (string, error) {
	id := r.PathValue(name)
	return id, textID(name, id)
}

// customerQuery returns the optional customer query parameter, checked as
// a customer id when given.
func customerQuery(r *http.Request) (string, error) {
	c := r.URL.Query().Get("customer")
	if c == "" {
		return "", nil
	}
	return c, validID("customer", c)
}
