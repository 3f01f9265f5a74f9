package openapi

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"farebox/api"
)

func loadEmbedded(t *testing.T) *Doc {
	t.Helper()
	d, err := Load(api.OpenAPI)
	if err != nil {
		t.Fatalf("Load(api.OpenAPI): %v", err)
	}
	return d
}

// TestEmbeddedDocumentLoads: the embedded document is OpenAPI 3.1, every
// schema of every operation compiles (Load compiles them all), and it
// documents the operations the server has, each with a summary, a success
// and, on the authenticated surfaces, a 401 and a 500.
func TestEmbeddedDocumentLoads(t *testing.T) {
	d := loadEmbedded(t)
	var got []string
	for _, op := range d.Operations() {
		got = append(got, op.String())
		if op.Summary == "" || op.ID == "" {
			t.Errorf("%s: summary %q, operationId %q; want both", op, op.Summary, op.ID)
		}
		statuses := op.Statuses()
		// A success: a 2xx, or the redirect a click link is.
		if !slices.ContainsFunc(statuses, func(s string) bool { return s[0] == '2' || s == "302" }) {
			t.Errorf("%s documents no success: %v", op, statuses)
		}
		if strings.HasPrefix(op.Path, "/api/v1/") || strings.HasPrefix(op.Path, "/v1/") {
			for _, want := range []string{"401", "500"} {
				if !slices.Contains(statuses, want) {
					t.Errorf("%s: statuses %v, want %s among them", op, statuses, want)
				}
			}
		}
	}
	// The route table of api/server.go, by path then method.
	want := []string{
		"POST /api/v1/advertisers", "GET /api/v1/campaigns", "POST /api/v1/campaigns", "GET /api/v1/campaigns/{id}",
		"DELETE /api/v1/campaigns/{id}", "PATCH /api/v1/campaigns/{id}", "GET /api/v1/campaigns/{id}/stats",
		"GET /api/v1/customers", "POST /api/v1/customers", "GET /api/v1/customers/{id}", "PATCH /api/v1/customers/{id}",
		"GET /api/v1/customers/{id}/alerts", "PUT /api/v1/customers/{id}/alerts",
		"GET /api/v1/customers/{id}/auto-topup", "PUT /api/v1/customers/{id}/auto-topup", "DELETE /api/v1/customers/{id}/auto-topup",
		"GET /api/v1/customers/{id}/balance", "POST /api/v1/customers/{id}/checkout", "POST /api/v1/customers/{id}/grants",
		"GET /api/v1/customers/{id}/keys", "POST /api/v1/customers/{id}/keys",
		"PUT /api/v1/customers/{id}/subscription", "GET /api/v1/deployments", "POST /api/v1/events",
		"POST /api/v1/holds", "GET /api/v1/holds/{id}", "POST /api/v1/holds/{id}/capture",
		"POST /api/v1/holds/{id}/release", "DELETE /api/v1/keys/{key_id}", "GET /api/v1/leases",
		"POST /api/v1/leases", "GET /api/v1/leases/{id}", "POST /api/v1/leases/{id}/end", "GET /api/v1/plans",
		"POST /api/v1/plans", "GET /api/v1/plans/{id}", "DELETE /api/v1/plans/{id}", "GET /api/v1/pools",
		"POST /api/v1/pools", "GET /api/v1/pools/{id}", "PATCH /api/v1/pools/{id}", "GET /api/v1/pools/{id}/availability",
		"GET /api/v1/pools/{id}/utilization", "GET /api/v1/prices",
		"PUT /api/v1/prices/{model}", "GET /api/v1/reports/economics", "GET /api/v1/reports/forecast",
		"GET /api/v1/usage", "POST /api/v1/webhook-deliveries/{id}/retry", "GET /api/v1/webhook-endpoints",
		"POST /api/v1/webhook-endpoints", "DELETE /api/v1/webhook-endpoints/{id}", "GET /api/v1/webhook-endpoints/{id}/deliveries",
		"GET /healthz", "GET /metrics", "GET /openapi.json", "GET /readyz", "GET /s/{id}",
		"GET /v1/account/balance", "GET /v1/account/usage", "POST /v1/chat/completions", "POST /v1/embeddings",
		"POST /v1/messages", "POST /v1/messages/count_tokens", "GET /v1/models", "POST /v1/responses", "POST /webhooks/stripe",
	}
	if !slices.Equal(got, want) {
		t.Errorf("operations:\n got %q\nwant %q", got, want)
	}
}

// TestLoadRefuses: documents Load must not accept, each with an error
// naming the problem.
func TestLoadRefuses(t *testing.T) {
	ok := `{"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}}`
	doc := func(paths string, extra ...string) string {
		return `{"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {` + paths + `}` + strings.Join(extra, "") + `}`
	}
	for _, c := range []struct {
		name, doc, want string
	}{
		{"not JSON", `{"openapi": `, "not JSON"},
		{"version 3.0", strings.Replace(doc(`"/a": {"get": {"responses": `+ok+`}}`), "3.1.0", "3.0.3", 1), "want 3.1"},
		{"no paths", `{"openapi": "3.1.0", "info": {}}`, "no paths"},
		{"undeclared path parameter", doc(`"/a/{id}": {"get": {"responses": ` + ok + `}}`), `path parameter "id" is not declared`},
		{"parameter not in the template", doc(`"/a": {"get": {"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": ` + ok + `}}`), `"id" is declared in path but not in the template`},
		{"partial-segment parameter", doc(`"/a/{id}.json": {"get": {"responses": ` + ok + `}}`), "whole segment"},
		{"duplicate operationId", doc(`"/a": {"get": {"operationId": "x", "responses": ` + ok + `}}, "/b": {"get": {"operationId": "x", "responses": ` + ok + `}}`), `operationId "x"`},
		{"no responses", doc(`"/a": {"get": {}}`), "has no responses"},
		{"bad status key", doc(`"/a": {"get": {"responses": {"2xx": {"description": "x"}}}}`), `response key "2xx"`},
		{"unresolved schema ref", doc(`"/a": {"get": {"responses": {"200": {"description": "x", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Nope"}}}}}}}`), "does not compile"},
		{"unresolved response ref", doc(`"/a": {"get": {"responses": {"200": {"$ref": "#/components/responses/Nope"}}}}`), `$ref "#/components/responses/Nope"`},
		{"remote ref", doc(`"/a": {"get": {"responses": {"200": {"$ref": "https://example.com/x.json"}}}}`), "not local"},
		{"bad regexp", doc(`"/a": {"get": {"responses": {"200": {"description": "x", "content": {"application/json": {"schema": {"pattern": "("}}}}}}}`), "does not compile"},
		{"sse data on JSON", doc(`"/a": {"get": {"responses": {"200": {"description": "x", "content": {"application/json": {"x-farebox-sse-data": {}}}}}}}`), "belongs to text/event-stream"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load([]byte(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load: got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestMatch: concrete paths find their templates and parameters; literal
// segments win over parameters; anything else matches nothing.
func TestMatch(t *testing.T) {
	d := loadEmbedded(t)
	for _, c := range []struct {
		method, path string
		want         string // "" : no match
		params       map[string]string
	}{
		{"GET", "/healthz", "GET /healthz", map[string]string{}},
		{"get", "/api/v1/customers", "GET /api/v1/customers", map[string]string{}},
		{"GET", "/api/v1/customers?limit=2&starting_after=c-1", "GET /api/v1/customers", map[string]string{}},
		{"GET", "/api/v1/customers/acme", "GET /api/v1/customers/{id}", map[string]string{"id": "acme"}},
		{"GET", "/api/v1/customers/acme/balance", "GET /api/v1/customers/{id}/balance", map[string]string{"id": "acme"}},
		{"PUT", "/api/v1/customers/acme/subscription", "PUT /api/v1/customers/{id}/subscription", map[string]string{"id": "acme"}},
		{"POST", "/api/v1/holds/hold_1/capture", "POST /api/v1/holds/{id}/capture", map[string]string{"id": "hold_1"}},
		{"DELETE", "/api/v1/keys/key_9", "DELETE /api/v1/keys/{key_id}", map[string]string{"key_id": "key_9"}},
		{"PUT", "/api/v1/prices/gpt%2F4o%20mini", "PUT /api/v1/prices/{model}", map[string]string{"model": "gpt/4o mini"}},
		{"POST", "/v1/chat/completions", "POST /v1/chat/completions", map[string]string{}},
		{"DELETE", "/api/v1/customers/acme", "", nil},        // no such method on the path
		{"GET", "/api/v1/customers/", "", nil},               // an empty parameter
		{"GET", "/api/v1/customers/acme/", "", nil},          // a trailing slash is another path
		{"GET", "/api/v1/customers/acme/balance/x", "", nil}, // too long
		{"GET", "/v1/responses", "", nil},
		{"GET", "", "", nil},
	} {
		op, params, ok := d.Match(c.method, c.path)
		switch {
		case c.want == "" && ok:
			t.Errorf("Match(%s, %q) = %s, want no match", c.method, c.path, op)
		case c.want != "" && !ok:
			t.Errorf("Match(%s, %q): no match, want %s", c.method, c.path, c.want)
		case ok && (op.String() != c.want || !equalMaps(params, c.params)):
			t.Errorf("Match(%s, %q) = %s %v, want %s %v", c.method, c.path, op, params, c.want, c.params)
		}
	}
}

// TestMatchPrefersLiterals: /a/new is the literal route, not /a/{id}.
func TestMatchPrefersLiterals(t *testing.T) {
	resp := `{"responses": {"200": {"description": "x"}}}`
	param := `{"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "x"}}}`
	d, err := Load([]byte(`{"openapi": "3.1.0", "info": {}, "paths": {"/a/{id}": {"get": ` + param + `}, "/a/new": {"get": ` + resp + `}, "/{id}/new": {"get": ` + param + `}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/a/new": "GET /a/new", "/a/old": "GET /a/{id}", "/b/new": "GET /{id}/new"} {
		if op, _, ok := d.Match("GET", path); !ok || op.String() != want {
			t.Errorf("Match(GET, %s) = %v, %v; want %s", path, op, ok, want)
		}
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Literal bodies as the server writes them, from api/server_test.go,
// api/billing_test.go, gateway/gateway_test.go and the handlers.
const (
	balanceBody = `{"customer":"acme","available":"1499.5","held":"0.5","overdraft_limit":"0","debt":"0","uncollected":"0",` +
		`"lots":[{"id":"lot_1","customer":"acme","source":"subscription","priority":10,"amount":"2000","remaining":"1500",` +
		`"held":"0.5","consumed":"500","expired":"0","effective_at":"2026-11-23T10:00:00Z","expires_at":"2026-12-23T10:00:00Z",` +
		`"paid_usd":"20","cost_basis_usd":"0.01","created_at":"2026-11-23T10:00:00Z"}]}`
	planBody = `{"id":"pro","name":"Pro","price_usd":"20","period":"month","credits":"2000","rollover_max":"500",` +
		`"overdraft_limit":"0","models":["*"],"rpm":600,"tpm":1000000,"sponsored":false,"created_at":"2026-11-23T10:00:00Z"}`
	errorBody = `{"error":{"type":"insufficient_credits","code":"insufficient_credits","message":"insufficient credits: 5.5 available, 8 requested","param":null}}`
	econBody  = `{"from":"2026-11-01","to":"2026-12-01","group_by":"customer","rows":[{"key":"acme","requests":3,` +
		`"revenue_usd":"0.02","cost_usd":"0.0075","margin_usd":"0.0125","margin_pct":"62.50","credits_consumed":"2",` +
		`"breakage_usd":"0","breakage_credits":"0","uncollected_usd":"0","uncollected_credits":"0","partner_share_usd":"0"}],` +
		`"totals":{"key":"total","requests":3,"revenue_usd":"0.02","cost_usd":"0.0075","margin_usd":"0.0125","margin_pct":"62.50",` +
		`"credits_consumed":"2","breakage_usd":"0","breakage_credits":"0","uncollected_usd":"0","uncollected_credits":"0","partner_share_usd":"0"}}`
	chatBody = `{"id":"chatcmpl-1","object":"chat.completion","created":1795000000,"model":"gpt-4o-mini",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":" the of and"},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42,"prompt_tokens_details":{"cached_tokens":0},` +
		`"completion_tokens_details":{"reasoning_tokens":0},"cost":"0.072","balance":"999.928"}}`
	streamBody = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1795000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":" the"},"finish_reason":null}]}` + "\n\n" +
		": keep-alive\n\n" +
		`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1795000000,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13,"cost":"0.014","balance":null}}` + "\n\n" +
		"data: [DONE]\n\n"
)

// TestValidateResponseAccepts: real bodies pass.
func TestValidateResponseAccepts(t *testing.T) {
	d := loadEmbedded(t)
	for _, c := range []struct {
		method, path string
		status       int
		ct, body     string
	}{
		{"GET", "/api/v1/customers/acme/balance", 200, "application/json", balanceBody},
		{"GET", "/v1/account/balance", 200, "application/json", strings.TrimSuffix(balanceBody, "}") +
			`,"key":{"budget":"50","budget_period":"day","budget_remaining":"12.5","budget_resets_at":"2026-11-24T00:00:00Z"}}`},
		{"POST", "/api/v1/plans", 201, "application/json", planBody},
		{"GET", "/api/v1/plans/pro", 200, "application/json; charset=utf-8", planBody},
		{"GET", "/api/v1/plans", 200, "application/json", `{"data":[` + planBody + `],"has_more":false}`},
		{"POST", "/api/v1/holds", 402, "application/json", errorBody},
		{"POST", "/api/v1/customers/acme/grants", 400, "application/json", `{"error":{"type":"invalid_request","code":"invalid_request","message":"amount has more than 6 decimal places","param":"amount"}}`},
		{"GET", "/readyz", 503, "application/json", `{"error":{"type":"no_capacity","code":"store_unavailable","message":"the database does not answer","param":null}}`},
		{"GET", "/api/v1/reports/economics", 200, "application/json", econBody},
		{"GET", "/api/v1/reports/economics", 200, "application/json", strings.ReplaceAll(econBody, `"62.50"`, `null`)},
		{"POST", "/v1/chat/completions", 200, "application/json", chatBody},
		{"POST", "/v1/chat/completions", 200, "text/event-stream", streamBody},
		{"POST", "/v1/chat/completions", 422, "application/json", `{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}`},
		{"POST", "/api/v1/events", 200, "application/json", `{"results":[{"id":"evt-1","source":"video-service","status":"accepted","cost":"6"},` +
			`{"id":"evt-2","source":"video-service","status":"rejected","error":"unknown_model","message":"no price"}]}`},
		{"POST", "/api/v1/holds/h1/capture", 200, "application/json", `{"id":"h1","status":"captured","captured":"2.25","released":"0.75","uncollected":"0"}`},
		{"GET", "/healthz", 200, "application/json", `{"status":"ok"}` + "\n"},
		{"GET", "/metrics", 200, "text/plain; version=0.0.4; charset=utf-8", "# HELP x y\nx 1\n"},
	} {
		if err := d.ValidateResponse(c.method, c.path, c.status, c.ct, []byte(c.body)); err != nil {
			t.Errorf("ValidateResponse(%s %s %d): got %v, want nil", c.method, c.path, c.status, err)
		}
	}
}

// TestValidateResponseRejects: wrong bodies fail, and the error names the
// operation, the status and the JSON pointer of what is wrong.
func TestValidateResponseRejects(t *testing.T) {
	d := loadEmbedded(t)
	for _, c := range []struct {
		name, method, path string
		status             int
		ct, body           string
		want               []string // in the error's text
		pointer            string   // of the first problem; "-": not checked
	}{
		{"missing required field", "GET", "/api/v1/customers/acme/balance", 200, "application/json",
			strings.Replace(balanceBody, `"available":"1499.5",`, "", 1),
			[]string{"GET /api/v1/customers/{id}/balance", "response 200", "available"}, ""},
		{"amount as a number", "GET", "/api/v1/plans/pro", 200, "application/json",
			strings.Replace(planBody, `"credits":"2000"`, `"credits":2000`, 1),
			[]string{"GET /api/v1/plans/{id}", "response 200", `"/credits"`, "want string"}, "/credits"},
		{"amount with trailing zeros", "POST", "/api/v1/plans", 201, "application/json",
			strings.Replace(planBody, `"price_usd":"20"`, `"price_usd":"20.50"`, 1),
			[]string{"response 201", `"/price_usd"`}, "/price_usd"},
		{"nested amount as a number", "GET", "/api/v1/customers/acme/balance", 200, "application/json",
			strings.Replace(balanceBody, `"remaining":"1500"`, `"remaining":1500`, 1),
			[]string{`"/lots/0/remaining"`}, "/lots/0/remaining"},
		{"wrong type", "GET", "/api/v1/plans", 200, "application/json", `{"data":[],"has_more":"false"}`,
			[]string{"GET /api/v1/plans", `"/has_more"`, "want boolean"}, "/has_more"},
		{"not a date-time", "GET", "/api/v1/plans/pro", 200, "application/json",
			strings.Replace(planBody, `"2026-11-23T10:00:00Z"`, `"2026-11-23"`, 1),
			[]string{`"/created_at"`, "date-time"}, "/created_at"},
		{"error with the wrong type for its status", "GET", "/api/v1/plans/pro", 404, "application/json", errorBody,
			[]string{"response 404", `"/error/type"`}, "/error/type"},
		{"error with an extra field", "POST", "/api/v1/holds", 402, "application/json",
			strings.Replace(errorBody, `"param":null`, `"param":null,"detail":"x"`, 1), []string{"response 402", "detail"}, "/error"},
		{"error without param", "POST", "/api/v1/holds", 402, "application/json",
			strings.Replace(errorBody, `,"param":null`, "", 1), []string{"param"}, "/error"},
		{"chat completion without usage.cost", "POST", "/v1/chat/completions", 200, "application/json",
			strings.Replace(chatBody, `"cost":"0.072",`, "", 1), []string{"POST /v1/chat/completions", "response 200", `"/usage"`, "cost"}, "/usage"},
		{"stream usage chunk without cost", "POST", "/v1/chat/completions", 200, "text/event-stream",
			strings.Replace(streamBody, `"cost":"0.014",`, "", 1), []string{"event 2"}, "-"},
		{"stream event not JSON", "POST", "/v1/chat/completions", 200, "text/event-stream", "data: {\n\n", []string{"event 1", "not JSON"}, "-"},
		{"undocumented status", "GET", "/api/v1/plans", 418, "application/json", errorBody, []string{"response 418", "not documented"}, "-"},
		{"undocumented content type", "GET", "/api/v1/plans/pro", 200, "text/html", planBody, []string{"text/html is not documented"}, "-"},
		{"not JSON", "GET", "/api/v1/plans/pro", 200, "application/json", planBody + "x", []string{"not one JSON value"}, "-"},
		{"event result rejected without error", "POST", "/api/v1/events", 200, "application/json",
			`{"results":[{"id":"e","status":"rejected"}]}`, []string{`"/results/0"`, "error"}, "/results/0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := d.ValidateResponse(c.method, c.path, c.status, c.ct, []byte(c.body))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("got %v, want a *ValidationError", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if c.pointer != "-" && ve.Problems[0].Pointer != c.pointer {
				t.Errorf("first problem at %q, want %q: %v", ve.Problems[0].Pointer, c.pointer, err)
			}
		})
	}
	if err := d.ValidateResponse("GET", "/nowhere", 200, "application/json", []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "no operation matches GET /nowhere") {
		t.Errorf("unknown path: got %v, want no operation", err)
	}
}

// TestValidateRequest: request bodies as the decoders take them: amounts as
// strings or numbers with at most 6 decimals; unknown fields, missing
// required ones and wrong types refused with the field's pointer.
func TestValidateRequest(t *testing.T) {
	d := loadEmbedded(t)
	grants := "/api/v1/customers/acme/grants"
	for _, c := range []struct {
		method, path, ct, body string
		valid                  bool
		pointer                string // of a problem, when not valid
	}{
		{"POST", grants, "application/json", `{"amount":"500","source":"purchase","paid_usd":"5","priority":10,"expires_at":"2027-01-01T00:00:00Z","idempotency_key":"order-991"}`, true, ""},
		{"POST", grants, "application/json", `{"amount":0.000001,"source":"adjustment","priority":5}`, true, ""},
		{"POST", grants, "application/json", `{"amount":"2.500000","expires_at":"","source":null}`, true, ""},
		{"POST", grants, "application/json", `{"amount":"0.0000001"}`, false, "/amount"},
		{"POST", grants, "application/json", `{"amount":1.1234567}`, false, "/amount"},
		{"POST", grants, "application/json", `{"amount":"1e3"}`, false, "/amount"},
		{"POST", grants, "application/json", `{"amount":"+1"}`, false, "/amount"},
		{"POST", grants, "application/json", `{"amount":null}`, false, "/amount"},
		{"POST", grants, "application/json", `{"amount":true}`, false, "/amount"},
		{"POST", grants, "application/json", `{"source":"purchase"}`, false, ""},
		{"POST", grants, "application/json", `{"amount":"1","amout":"1"}`, false, ""}, // an unknown field is reported at its object
		{"POST", grants, "application/json", `{"amount":"1","priority":"1"}`, false, "/priority"},
		{"POST", grants, "application/json", `{"amount":"1","source":"gift"}`, false, "/source"},
		{"POST", grants, "application/json", `{"amount":"1","expires_at":"2027-01-01"}`, false, "/expires_at"},
		{"POST", "/api/v1/holds", "application/json", `{"customer":"acme","amount":"3","ttl_seconds":60,"allow_partial":false,"idempotency_key":"job-7"}`, true, ""},
		{"POST", "/api/v1/holds", "application/json", `{"customer":"a b","amount":"1"}`, false, "/customer"},
		{"POST", "/api/v1/holds", "application/json", `{"customer":"acme","amount":"1","ttl_seconds":86401}`, false, "/ttl_seconds"},
		{"POST", "/api/v1/holds/h1/capture", "application/json", ``, true, ""},
		{"POST", "/api/v1/holds/h1/release", "application/json", `{"amount":"1"}`, false, ""},
		{"POST", "/api/v1/plans", "application/json", `{"id":"pro","name":"Pro","price_usd":"20","period":"month","credits":"2000","rollover_max":"0","overdraft_limit":"0","models":["*"],"rpm":600,"tpm":1000000}`, true, ""},
		{"POST", "/api/v1/events", "application/cloudevents-batch+json", `[{"specversion":"1.0","id":"evt-1","source":"video-service","type":"usage","subject":"acme","time":"2026-11-23T10:00:00Z","data":{"model":"sora-1","video_seconds":12}}]`, true, ""},
		{"POST", "/api/v1/events", "application/json", `{"specversion":"1.0","id":"evt-1","source":"s","type":"usage","subject":"acme","data":{"model":"m","frames":3}}`, false, "/data"},
		{"POST", "/v1/chat/completions", "application/json", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}],"stream":true,"stream_options":{"include_usage":true}}`, true, ""},
		{"POST", "/v1/chat/completions", "application/json", `{"model":"gpt-4o-mini","messages":[]}`, false, "/messages"},
		{"POST", "/v1/embeddings", "application/json", `{"model":"text-embedding-3-small","input":["a","b"]}`, true, ""},
	} {
		err := d.ValidateRequest(c.method, c.path, c.ct, []byte(c.body))
		if c.valid {
			if err != nil {
				t.Errorf("ValidateRequest(%s %s %s): got %v, want nil", c.method, c.path, c.body, err)
			}
			continue
		}
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("ValidateRequest(%s %s %s): got %v, want a *ValidationError", c.method, c.path, c.body, err)
			continue
		}
		if !slices.ContainsFunc(ve.Problems, func(p Problem) bool { return p.Pointer == c.pointer }) || !strings.Contains(err.Error(), ": request") {
			t.Errorf("ValidateRequest(%s %s %s): got %v, want a problem at %q", c.method, c.path, c.body, err, c.pointer)
		}
	}
	if err := d.ValidateRequest("POST", grants, "application/json", nil); err == nil {
		t.Errorf("a required body missing: got nil, want an error")
	}
	if err := d.ValidateRequest("GET", "/api/v1/plans", "application/json", []byte(`{}`)); err == nil {
		t.Errorf("a body where none is taken: got nil, want an error")
	}
}

// TestComponentExamples: every example of a component schema matches its
// schema, so the document never shows a body the server would not send or
// take.
func TestComponentExamples(t *testing.T) {
	root, err := decodeJSON(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newCompiler(root)
	if err != nil {
		t.Fatal(err)
	}
	schemas := root.(map[string]any)["components"].(map[string]any)["schemas"].(map[string]any)
	n := 0
	for _, name := range sortedKeys(schemas) {
		examples, _ := schemas[name].(map[string]any)["examples"].([]any)
		if len(examples) == 0 {
			continue
		}
		s, err := c.Compile(base + "#/components/schemas/" + name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, ex := range examples {
			n++
			if err := s.Validate(ex); err != nil {
				t.Errorf("example %d of %s: got %v, want it to match", i, name, err)
			}
		}
	}
	if n < 10 {
		t.Errorf("%d examples checked, want at least 10", n)
	}
}
