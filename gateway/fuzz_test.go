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
