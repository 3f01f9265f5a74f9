package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"farebox/pricing"
)

// greedy is an OpenAI-compatible upstream that bills each request the
// most a real provider could: every byte of its text a token and four
// tokens a message (a chat template's), every image part at its model's
// published maximum for its detail, audio at ten tokens per hundred bytes,
// a file the whole context window, the larger of the cap fields it
// received in full for each of n choices; all prompt tokens reported
// cached and all output as reasoning (the test card prices those
// higher). Like a provider it refuses a prompt beyond the context window
// (400, unbilled). A test that finds a charge above its hold has found a
// hole in the gateway's worst case.
type greedy struct {
	limits pricing.Limits
	// ignoreCap bills this many output tokens whatever the cap (an
	// upstream that does not honour it).
	ignoreCap int64
	// pad adds this many bytes to a non-stream answer, before its usage.
	pad int

	mu     sync.Mutex
	bodies []map[string]json.RawMessage
}

// received is the last body the upstream got.
func (u *greedy) received() map[string]json.RawMessage {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.bodies) == 0 {
		return nil
	}
	return u.bodies[len(u.bodies)-1]
}

// claim is what greedy bills for a request body: prompt and completion
// tokens, or ok false when the prompt is beyond the context window.
func (u *greedy) claim(body map[string]json.RawMessage) (prompt, completion int64, ok bool) {
	var msgs []struct {
		Content json.RawMessage `json:"content"`
	}
	json.Unmarshal(body["messages"], &msgs)
	file := false
	for _, m := range msgs {
		prompt += 4
		var s string
		if json.Unmarshal(m.Content, &s) == nil {
			prompt += int64(len(s))
			continue
		}
		var parts []struct {
			Type     string `json:"type"`
			Text     string `json:"text"`
			Refusal  string `json:"refusal"`
			ImageURL struct {
				Detail string `json:"detail"`
			} `json:"image_url"`
			InputAudio struct {
				Data string `json:"data"`
			} `json:"input_audio"`
		}
		json.Unmarshal(m.Content, &parts)
		for _, p := range parts {
			switch p.Type {
			case "text":
				prompt += int64(len(p.Text))
			case "refusal":
				prompt += int64(len(p.Refusal))
			case "image_url":
				prompt += u.limits.Image.For(p.ImageURL.Detail)
			case "input_audio":
				prompt += int64(len(p.InputAudio.Data))/10 + 1
			case "file":
				file = true
			}
		}
	}
	if t, ok := body["tools"]; ok {
		prompt += int64(len(t))
	}
	switch {
	case prompt > u.limits.ContextWindow:
		return 0, 0, false
	case file:
		prompt = u.limits.ContextWindow // a file fills what the window leaves
	}
	var caps []int64
	for _, f := range []string{"max_tokens", "max_completion_tokens"} {
		var v int64
		if json.Unmarshal(body[f], &v) == nil && v > 0 {
			caps = append(caps, v)
		}
	}
	out := int64(1 << 20) // no cap at all: as much as it likes
	if len(caps) > 0 {
		out = max(caps[0], caps[len(caps)-1])
	}
	n := int64(1)
	json.Unmarshal(body["n"], &n)
	completion = out * n
	if u.ignoreCap > 0 {
		completion = u.ignoreCap
	}
	return prompt, completion, true
}

func (u *greedy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var body map[string]json.RawMessage
	if err := json.Unmarshal(b, &body); err != nil {
		http.Error(w, `{"error":{"message":"bad json","type":"invalid_request_error"}}`, 400)
		return
	}
	u.mu.Lock()
	u.bodies = append(u.bodies, body)
	u.mu.Unlock()
	prompt, completion, ok := u.claim(body)
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		io.WriteString(w, `{"error":{"message":"This model's maximum context length is exceeded.","type":"invalid_request_error","code":"context_length_exceeded"}}`)
		return
	}
	var model string
	json.Unmarshal(body["model"], &model)
	usage := fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":%d},"completion_tokens_details":{"reasoning_tokens":%d}}`,
		prompt, completion, prompt+completion, prompt, completion)
	var stream bool
	json.Unmarshal(body["stream"], &stream)
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-greedy","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"pad":"%s","usage":%s}`,
			model, strings.Repeat("x", u.pad), usage)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	// The output as one-token deltas (as the gateway counts them), spread
	// over the choices, then the usage chunk.
	n := int64(1)
	json.Unmarshal(body["n"], &n)
	for i := int64(0); i < min(completion, 1<<12); i++ {
		fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-greedy\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":%q,\"choices\":[{\"index\":%d,\"delta\":{\"content\":\" a\"}}]}\n\n", model, i%n)
	}
	fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-greedy\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":%q,\"choices\":[],\"usage\":%s}\n\ndata: [DONE]\n\n", model, usage)
}
