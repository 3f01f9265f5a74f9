package simulator

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestSimulatorAzureShape: Azure's deployment URLs answer with the
// deployment's name as the model, and refuse a request without an
// api-version (400) or a key (401), as Azure does.
func TestSimulatorAzureShape(t *testing.T) {
	srv := newServer(t, &Simulator{})
	key := map[string]string{"api-key": "k"}
	for _, c := range []struct {
		path   string
		hdr    map[string]string
		status int
		model  string
	}{
		{"/openai/deployments/my-dep/chat/completions?api-version=2024-10-21", key, 200, "my-dep"},
		{"/openai/deployments/my-emb/embeddings?api-version=2024-10-21", key, 200, "my-emb"},
		{"/openai/responses?api-version=2025-04-01-preview", key, 200, "m"},
		{"/openai/deployments/my-dep/chat/completions", key, 400, ""},
		{"/openai/deployments/my-dep/chat/completions?api-version=2024-10-21", nil, 401, ""},
		{"/openai/deployments/my-dep/completions?api-version=2024-10-21", key, 404, ""},
	} {
		body := `{"model":"m","messages":[{"role":"user","content":"hi"}],"input":"hi"}`
		resp, b := mustDo(t, srv, "POST", c.path, body, c.hdr)
		if resp.StatusCode != c.status {
			t.Errorf("%s: %d %s, want %d", c.path, resp.StatusCode, b, c.status)
			continue
		}
		var m struct {
			Model string `json:"model"`
		}
		if c.status == 200 && (json.Unmarshal(b, &m) != nil || m.Model != c.model) {
			t.Errorf("%s: model %q, want %q", c.path, m.Model, c.model)
		}
	}
}

// TestSimulatorResponses: a Responses answer in OpenAI's wire format, its
// cap (status incomplete), and the stream's events with their event:
// lines, sequence numbers and the final response's usage.
func TestSimulatorResponses(t *testing.T) {
	srv := newServer(t, &Simulator{})
	resp, b := mustDo(t, srv, "POST", "/v1/responses", `{"model":"m","input":"hi","max_output_tokens":5}`, map[string]string{TokensHeader: "9"})
	var r struct {
		Object, Status    string
		IncompleteDetails struct{ Reason string } `json:"incomplete_details"`
		Usage             struct {
			OutputTokens int64 `json:"output_tokens"`
		}
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &r) != nil || r.Object != "response" || r.Status != "incomplete" || r.IncompleteDetails.Reason != "max_output_tokens" || r.Usage.OutputTokens != 5 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	resp, b = mustDo(t, srv, "POST", "/v1/responses", `{"model":"m","input":"hi","stream":true}`, map[string]string{TokensHeader: "3"})
	raw := string(b)
	for _, want := range []string{"event: response.created\ndata: ", "event: response.output_text.delta\n", `"sequence_number":0`, "event: response.completed\n", `"output_tokens":3`} {
		if !strings.Contains(raw, want) {
			t.Errorf("stream lacks %q: %s", want, raw)
		}
	}
	if n := strings.Count(raw, "event: response.output_text.delta"); resp.StatusCode != 200 || n != 3 {
		t.Errorf("%d deltas: %s", n, raw)
	}
}

// TestSimulatorMessages: a Messages answer in Anthropic's wire format, a
// cache write reported where cache_control asks, a forced tool call, the
// stream's events, and errors in Anthropic's shape.
func TestSimulatorMessages(t *testing.T) {
	srv := newServer(t, &Simulator{})
	resp, b := mustDo(t, srv, "POST", "/v1/messages", `{"model":"m","max_tokens":50,"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}]}`, map[string]string{TokensHeader: "4"})
	var m struct {
		Type  string
		Usage map[string]int64
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &m) != nil || m.Type != "message" || m.Usage["output_tokens"] != 4 || m.Usage["cache_creation_input_tokens"] == 0 || m.Usage["input_tokens"] != 0 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	_, b = mustDo(t, srv, "POST", "/v1/messages", `{"model":"m","max_tokens":50,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"w","input_schema":{}}],"tool_choice":{"type":"any"}}`, nil)
	if !strings.Contains(string(b), `"type":"tool_use"`) || !strings.Contains(string(b), `"stop_reason":"tool_use"`) {
		t.Errorf("forced tool: %s", b)
	}
	_, b = mustDo(t, srv, "POST", "/v1/messages", `{"model":"m","max_tokens":2,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, map[string]string{TokensHeader: "9"})
	raw := string(b)
	for _, want := range []string{"event: message_start\n", "event: content_block_start\n", "event: ping\n", "event: content_block_delta\n", "event: message_delta\n", `"stop_reason":"max_tokens"`, `"output_tokens":2`, "event: message_stop\n"} {
		if !strings.Contains(raw, want) {
			t.Errorf("stream lacks %q: %s", want, raw)
		}
	}
	for _, c := range []struct {
		fault  string
		status int
		typ    string
	}{{"500", 500, "api_error"}, {"429", 429, "rate_limit_error"}, {"bogus", 400, "invalid_request_error"}} {
		resp, b := mustDo(t, srv, "POST", "/v1/messages", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, map[string]string{FaultHeader: c.fault})
		var e struct {
			Type  string
			Error struct{ Type string }
		}
		if resp.StatusCode != c.status || json.Unmarshal(b, &e) != nil || e.Type != "error" || e.Error.Type != c.typ {
			t.Errorf("fault %s: %d %s, want %d %s in Anthropic's shape", c.fault, resp.StatusCode, b, c.status, c.typ)
		}
	}
	resp, b = mustDo(t, srv, "POST", "/v1/messages/count_tokens", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"input_tokens":`) {
		t.Errorf("count_tokens: %d %s", resp.StatusCode, b)
	}
}
