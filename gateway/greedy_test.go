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
	// toolOverhead is the hidden tool prompt a Messages provider adds.
	toolOverhead int64

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
	switch r.URL.Path {
	case "/v1/responses":
		u.responses(w, body)
		return
	case "/v1/messages":
		u.messages(w, body)
		return
	}
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

// claimText is what greedy bills for the prompt of a Responses or
// Messages request: every byte of every string in its prompt fields a
// token, four tokens an item or message, each image at its model's most
// for its detail, the tools' JSON and the provider's hidden tool prompt
// (overhead), the context window for a file or a document (or state
// the provider keeps); ok is false beyond the window.
func (u *greedy) claimText(body map[string]json.RawMessage, overhead int64, fields ...string) (prompt int64, ok bool) {
	window := false
	var walk func(any)
	walk = func(x any) {
		switch t := x.(type) {
		case string:
			prompt += int64(len(t))
		case []any:
			for _, e := range t {
				prompt += 4
				walk(e)
			}
		case map[string]any:
			switch t["type"] {
			case "input_image", "image":
				detail, _ := t["detail"].(string)
				prompt += u.limits.Image.For(detail)
				return
			case "input_file", "document", "item_reference":
				window = true
			}
			for _, e := range t {
				walk(e)
			}
		}
	}
	for _, f := range fields {
		var x any
		if json.Unmarshal(body[f], &x) == nil {
			walk(x)
		}
	}
	if t, ok := body["tools"]; ok {
		prompt += int64(len(t)) + overhead
	}
	if _, ok := body["previous_response_id"]; ok {
		window = true
	}
	if prompt > u.limits.ContextWindow {
		return 0, false
	}
	if window {
		prompt = u.limits.ContextWindow
	}
	return prompt, true
}

// responses bills a Responses request its most: the prompt all cached
// input, max_output_tokens all reasoning.
func (u *greedy) responses(w http.ResponseWriter, body map[string]json.RawMessage) {
	prompt, ok := u.claimText(body, 0, "input", "instructions")
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		io.WriteString(w, `{"error":{"message":"context length exceeded","type":"invalid_request_error","code":"context_length_exceeded"}}`)
		return
	}
	var out int64 = 1 << 20
	json.Unmarshal(body["max_output_tokens"], &out)
	if u.ignoreCap > 0 {
		out = u.ignoreCap
	}
	usage := fmt.Sprintf(`{"input_tokens":%d,"input_tokens_details":{"cached_tokens":%d},"output_tokens":%d,"output_tokens_details":{"reasoning_tokens":%d},"total_tokens":%d}`,
		prompt, prompt, out, out, prompt+out)
	resp := fmt.Sprintf(`{"id":"resp_greedy","object":"response","status":"completed","model":"m","output":[{"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"ok","annotations":[]}]}],"usage":%s}`, usage)
	var stream bool
	json.Unmarshal(body["stream"], &stream)
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, resp)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprintf(w, "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_greedy\",\"object\":\"response\",\"status\":\"in_progress\",\"output\":[],\"usage\":null}}\n\n")
	for i := int64(0); i < min(out, 1<<12); i++ {
		fmt.Fprintf(w, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":%d,\"delta\":\" a\"}\n\n", i+1)
	}
	fmt.Fprintf(w, "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":%d,\"response\":%s}\n\n", min(out, 1<<12)+1, resp)
}

// messages bills a Messages request its most: the prompt all written to
// the cache (the dearest input rate), max_tokens of output.
func (u *greedy) messages(w http.ResponseWriter, body map[string]json.RawMessage) {
	prompt, ok := u.claimText(body, u.toolOverhead, "messages", "system")
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		io.WriteString(w, `{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long"}}`)
		return
	}
	var out int64
	json.Unmarshal(body["max_tokens"], &out)
	if u.ignoreCap > 0 {
		out = u.ignoreCap
	}
	usage := fmt.Sprintf(`{"input_tokens":0,"cache_creation_input_tokens":%d,"cache_read_input_tokens":0,"output_tokens":%d}`, prompt, out)
	var stream bool
	json.Unmarshal(body["stream"], &stream)
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"msg_greedy","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"ok"}],"stop_reason":"max_tokens","stop_sequence":null,"usage":%s}`, usage)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprintf(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_greedy\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":0,\"cache_creation_input_tokens\":%d,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n", prompt)
	fmt.Fprint(w, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
	for i := int64(0); i < min(out, 1<<12); i++ {
		fmt.Fprint(w, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" a\"}}\n\n")
	}
	fmt.Fprintf(w, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":%d}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", out)
}
