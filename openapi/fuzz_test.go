package openapi

import (
	"encoding/json"
	"errors"
	"testing"

	"farebox/api"
)

// FuzzValidateResponse: any method, path, status, content type and body is
// answered without a panic, and a body that passes a JSON media type is
// JSON; a stream that passes has only JSON data events (and [DONE]).
func FuzzValidateResponse(f *testing.F) {
	d, err := Load(api.OpenAPI)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("GET", "/api/v1/customers/acme/balance", 200, "application/json", []byte(balanceBody))
	f.Add("POST", "/v1/chat/completions", 200, "text/event-stream", []byte(streamBody))
	f.Add("POST", "/v1/chat/completions", 200, "application/json", []byte(chatBody))
	f.Add("POST", "/api/v1/holds", 402, "application/json; charset=utf-8", []byte(errorBody))
	f.Add("GET", "/api/v1/reports/economics?from=2026-11-01", 200, "application/json", []byte(econBody))
	f.Add("PUT", "/api/v1/prices/a%2Fb", 400, "text/*", []byte("{"))
	f.Fuzz(func(t *testing.T, method, path string, status int, ct string, body []byte) {
		err := d.ValidateResponse(method, path, status, ct, body)
		if err != nil {
			var ve *ValidationError
			if errors.As(err, &ve) && ve.Operation == "" {
				t.Fatalf("a ValidationError without its operation: %v", err)
			}
			return
		}
		key, kerr := mediaKey(ct)
		switch {
		case kerr != nil:
		case isJSON(key) && !json.Valid(body):
			t.Fatalf("%s %s %d %s: a body that is not JSON passed: %q", method, path, status, ct, body)
		case key == "text/event-stream":
			for _, data := range sseData(body) {
				if data != "[DONE]" && !json.Valid([]byte(data)) {
					t.Fatalf("%s %s %d: a stream event that is not JSON passed: %q", method, path, status, data)
				}
			}
		}
	})
}
