package gateway

import (
	"encoding/json"
	"testing"

	"farebox/pricing"
	"farebox/routing"
)

// FuzzParseChat: any body either is refused or parses into a request whose
// upstream body is a JSON object with the upstream's model, the cap and
// (streaming) include_usage set; and the gateway's own count of its prompt
// never exceeds the input bound it held for.
func FuzzParseChat(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"x"}}]}],"stream":true}`,
		`{"model":"m","messages":[{"role":"user","content":"\u00e9\n"}],"max_tokens":5,"n":2,"stream_options":{"include_usage":false}}`,
		`{"model":"m","messages":[{"content":null},{"role":"assistant","content":"a"}],"max_completion_tokens":7}`,
		`{"model":"m","messages":"x"}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		q, err := parseChat(body, nil)
		if err != nil {
			return
		}
		d := &routing.Deployment{Upstream: "up", Limits: pricing.DefaultLimits("gpt-4o-mini"), CapField: routing.CapMaxCompletionTokens}
		if est, bound := q.promptEstimate(d), q.inputBound(d); est > bound {
			t.Fatalf("prompt estimate %d above the held bound %d for %q", est, bound, body)
		}
		out, err := q.upstreamBody(d, routing.ProtoChat, 9)
		if err != nil {
			return // stream_options not an object
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("upstream body %q: %v", out, err)
		}
		if string(m["model"]) != `"up"` {
			t.Fatalf("model %s", m["model"])
		}
		fields := q.capFields
		if len(fields) == 0 {
			fields = []string{"max_completion_tokens"}
		}
		for _, f := range []string{"max_completion_tokens", "max_tokens"} {
			_, set := m[f]
			if want := slicesContains(fields, f); want && string(m[f]) != "9" || !want && set {
				t.Fatalf("cap %s = %s, want 9 in exactly %v", f, m[f], fields)
			}
		}
		if q.stream {
			var so struct {
				IncludeUsage bool `json:"include_usage"`
			}
			if json.Unmarshal(m["stream_options"], &so) != nil || !so.IncludeUsage {
				t.Fatalf("stream_options %s", m["stream_options"])
			}
		}
	})
}

// FuzzUsage: reported usage, however odd, splits into non-negative
// quantities that add up to what was reported (clamped at zero).
func FuzzUsage(f *testing.F) {
	f.Add([]byte(`{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}`))
	f.Add([]byte(`{"prompt_tokens":-1,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":40}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var u usageJSON
		if json.Unmarshal(b, &u) != nil {
			return
		}
		q := u.quantities()
		if q.InputTokens < 0 || q.CachedInputTokens < 0 || q.OutputTokens < 0 || q.ReasoningTokens < 0 {
			t.Fatalf("negative quantities %+v from %s", q, b)
		}
		if q.InputTokens+q.CachedInputTokens != max(u.PromptTokens, 0) || q.OutputTokens+q.ReasoningTokens != max(u.CompletionTokens, 0) {
			t.Fatalf("%+v does not add up to %s", q, b)
		}
	})
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// fuzzProtocol checks a parsed Responses or Messages request: the gateway's
// own count of its prompt never exceeds the input bound it held for, and
// the upstream body (in the client's protocol and, for Messages, translated
// to chat) is a JSON object with the upstream's model and the held cap in
// every cap field it has.
func fuzzProtocol(t *testing.T, q *request, body []byte, capField string) {
	d := &routing.Deployment{Upstream: "up", Limits: pricing.Limits{Image: pricing.MaxImageTokens, ContextWindow: 1000},
		CapField: routing.CapMaxCompletionTokens, ProviderState: true, Protocols: []string{routing.ProtoChat, routing.ProtoResponses, routing.ProtoMessages}}
	if est, bound := q.promptEstimate(d), q.inputBound(d); est > bound {
		t.Fatalf("prompt estimate %d above the held bound %d for %q", est, bound, body)
	}
	wires := []string{q.proto}
	if q.proto == routing.ProtoMessages {
		wires = append(wires, routing.ProtoChat)
	}
	for _, wire := range wires {
		out, err := q.upstreamBody(d, wire, 9)
		if err != nil {
			if wire == q.proto {
				t.Fatalf("a parsed request has no upstream body: %v", err)
			}
			continue // what the translation cannot carry
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("upstream body %q: %v", out, err)
		}
		f := capField
		if wire != q.proto {
			f = routing.CapMaxCompletionTokens
		}
		if string(m["model"]) != `"up"` || string(m[f]) != "9" {
			t.Fatalf("%s body: model %s, %s %s", wire, m["model"], f, m[f])
		}
	}
}

// FuzzParseResponses: any body either is refused or parses into a request
// that fuzzProtocol accepts.
func FuzzParseResponses(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","input":"hi"}`,
		`{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"hi"},{"type":"input_image","image_url":"x","detail":"low"}]}],"stream":true,"max_output_tokens":5}`,
		`{"model":"m","previous_response_id":"resp_1","input":[{"type":"function_call_output","call_id":"c","output":"o"}]}`,
		`{"model":"m","input":[{"type":"reasoning","id":"r"}],"tools":[{"type":"function","name":"f"}]}`,
		`{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}`,
		`{"model":"m"}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		q, err := parseResponses(body, nil)
		if err != nil {
			return
		}
		fuzzProtocol(t, q, body, "max_output_tokens")
	})
}

// FuzzParseMessages: any body either is refused or parses into a request
// that fuzzProtocol accepts.
func FuzzParseMessages(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","max_tokens":5,"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image","source":{"type":"url","url":"x"}}]}],"stream":true}`,
		`{"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"r"}]}],"tools":[{"name":"f","input_schema":{}}]}`,
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64"}}]}]}`,
		`{"model":"m","messages":[]}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		q, err := parseMessages(body, nil)
		if err != nil {
			return
		}
		fuzzProtocol(t, q, body, "max_tokens")
	})
}
