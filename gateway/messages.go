package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	fb "farebox"
	"farebox/httpx"
	"farebox/pricing"
	"farebox/routing"
)

// Anthropic's Messages API (POST /v1/messages): what it takes, how its
// content blocks are bounded, its usage, and its own error shape.

// messagesFields are the Messages parameters forwarded by default. Left
// out: container and mcp_servers (work billed beyond tokens),
// context_management, and the service tier that may mean priority
// capacity ("auto").
var messagesFields = map[string]fieldCheck{
	"model": anyValue, "messages": anyValue, "system": anyValue, "max_tokens": anyValue,
	"metadata": anyValue, "stop_sequences": anyValue, "stream": anyValue, "temperature": anyValue,
	"top_k": anyValue, "top_p": anyValue, "tools": anyValue, "tool_choice": anyValue, "thinking": anyValue,
	"cache_control": anyValue,
	"service_tier":  oneOf(`"standard_only"`),
}

// defaultBetas are the anthropic-beta features passed on by default: they
// change how an answer is streamed or lift an output limit the held cap
// bounds anyway, never what a token costs.
var defaultBetas = map[string]bool{
	"token-efficient-tools-2025-02-19":       true,
	"fine-grained-tool-streaming-2025-05-14": true,
	"output-128k-2025-02-19":                 true,
	"prompt-caching-2024-07-31":              true,
}

// The content block types the gateway can bound: text-like ones by their
// bytes, an image at its model's most, a document by the context window.
// Server tools' blocks are billed per call, at rates the card lacks.
const messagesBlockList = "text, image, document, search_result, tool_use, tool_result, thinking, redacted_thinking"

// parseMessages reads a Messages request and the headers that shape it.
func parseMessages(body []byte, h http.Header) (*request, error) {
	q, err := parseCommon(body, messagesFields)
	if err != nil {
		return nil, err
	}
	q.proto, q.n = routing.ProtoMessages, 1
	q.version = h.Get("anthropic-version")
	for _, v := range h.Values("anthropic-beta") {
		for _, b := range strings.Split(v, ",") {
			if b = strings.TrimSpace(b); b != "" {
				q.betas = append(q.betas, b)
			}
		}
	}
	if err := optional(q.raw, "stream", &q.stream); err != nil {
		return nil, err
	}
	if cc, ok := q.raw["cache_control"]; ok && !isNull(cc) {
		q.cacheControl = "cache_control"
	}
	var v *int64
	if err := optional(q.raw, "max_tokens", &v); err != nil || v == nil || *v < 1 {
		return nil, fb.Invalid("max_tokens", "max_tokens is required, a positive integer")
	}
	q.capFields, q.capTokens = []string{"max_tokens"}, *v
	if sys, ok := q.raw["system"]; ok && !isNull(sys) {
		if err := q.parseBlocks("system", sys, false); err != nil {
			return nil, err
		}
	}
	msgs, ok := q.raw["messages"]
	if !ok || isNull(msgs) {
		return nil, fb.Invalid("messages", "messages is required")
	}
	var messages []struct {
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(msgs, &messages); err != nil || len(messages) == 0 {
		return nil, fb.Invalid("messages", "messages must be a non-empty array of message objects")
	}
	for i, m := range messages {
		if err := q.parseBlocks(fmt.Sprintf("messages[%d].content", i), m.Content, true); err != nil {
			return nil, err
		}
	}
	if t, ok := q.raw["tools"]; ok && !isNull(t) {
		var tools []struct {
			Type         string          `json:"type"`
			CacheControl json.RawMessage `json:"cache_control"`
		}
		if err := json.Unmarshal(t, &tools); err != nil {
			return nil, fb.Invalid("tools", "tools must be an array of tool objects")
		}
		for i, tool := range tools {
			if tool.Type != "" && tool.Type != "custom" {
				return nil, fb.Invalid(fmt.Sprintf("tools[%d].type", i), "the tool type %q is the provider's own (billed per call, or with a hidden prompt the gateway cannot bound); the gateway takes custom tools", tool.Type)
			}
			if len(tool.CacheControl) > 0 && q.cacheControl == "" {
				q.cacheControl = fmt.Sprintf("tools[%d].cache_control", i)
			}
		}
		q.tools = len(tools) > 0
	}
	return q, nil
}

// block is what the gateway reads of a content block.
type block struct {
	Type         string          `json:"type"`
	CacheControl json.RawMessage `json:"cache_control"`
	Content      json.RawMessage `json:"content"` // tool_result's
	Source       *struct {
		Type string `json:"type"`
		URL  string `json:"url"`
	} `json:"source"`
}

// parseBlocks reads content at param: a string, or blocks (in a message,
// every type the gateway can bound; in system, text).
func (q *request) parseBlocks(param string, c json.RawMessage, message bool) error {
	if len(c) == 0 || c[0] != '[' {
		return nil
	}
	var blocks []block
	if err := json.Unmarshal(c, &blocks); err != nil {
		return fb.Invalid(param, "content must be a string or an array of content blocks")
	}
	for j, b := range blocks {
		bp := fmt.Sprintf("%s[%d]", param, j)
		if len(b.CacheControl) > 0 && q.cacheControl == "" {
			q.cacheControl = bp + ".cache_control"
		}
		switch {
		case b.Type == "text":
		case !message:
			return fb.Invalid(bp+".type", "system blocks must be text")
		case b.Type == "image":
			q.images[1]++ // Anthropic has no detail: each image at the model's most
			if b.Source != nil && b.Source.Type == "url" && q.remote == "" {
				q.remote = bp + ".source.url"
			}
		case b.Type == "document":
			first(&q.unbounded, bp)
		case b.Type == "tool_result":
			if err := q.parseBlocks(bp+".content", b.Content, true); err != nil {
				return err
			}
		case b.Type == "search_result", b.Type == "tool_use", b.Type == "thinking", b.Type == "redacted_thinking":
		default:
			return fb.Invalid(bp+".type", "content block type %q cannot be billed safely here; the gateway takes %s", b.Type, messagesBlockList)
		}
	}
	return nil
}

// messagesUsage is the usage object of a Messages answer (and of its
// stream's message_start and message_delta events).
type messagesUsage struct {
	InputTokens              *int64 `json:"input_tokens"`
	OutputTokens             *int64 `json:"output_tokens"`
	CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
}

// quantities is what the usage prices: input, cache writes, cache reads
// (cached input) and output, each as reported (Anthropic's input_tokens
// exclude the cache's), negatives as 0.
func (u *messagesUsage) quantities() fb.Quantities {
	v := func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return max(*p, 0)
	}
	return fb.Quantities{Requests: 1, InputTokens: v(u.InputTokens), CacheWriteTokens: v(u.CacheCreationInputTokens),
		CachedInputTokens: v(u.CacheReadInputTokens), OutputTokens: v(u.OutputTokens)}
}

// merge takes what a later event reports over what an earlier one did:
// message_delta's counts are cumulative.
func (u *messagesUsage) merge(later *messagesUsage) {
	for _, f := range [...]struct{ dst, src **int64 }{{&u.InputTokens, &later.InputTokens}, {&u.OutputTokens, &later.OutputTokens},
		{&u.CacheCreationInputTokens, &later.CacheCreationInputTokens}, {&u.CacheReadInputTokens, &later.CacheReadInputTokens}} {
		if *f.src != nil {
			*f.dst = *f.src
		}
	}
}

// messagesOutput is the gateway's count of a Messages answer's output.
func messagesOutput(content json.RawMessage) int64 {
	var blocks []struct {
		Text     string          `json:"text"`
		Thinking string          `json:"thinking"`
		Input    json.RawMessage `json:"input"`
	}
	_ = json.Unmarshal(content, &blocks)
	var n int64
	for _, b := range blocks {
		n += pricing.CountTokens(b.Text) + pricing.CountTokens(b.Thinking) + pricing.CountTokens(string(b.Input))
	}
	return n
}

// anthropicTypes are the error types of Anthropic's error shape, by
// status.
var anthropicTypes = map[int]string{
	http.StatusBadRequest: "invalid_request_error", http.StatusUnauthorized: "authentication_error",
	http.StatusPaymentRequired: "insufficient_credits", http.StatusForbidden: "permission_error",
	http.StatusNotFound: "not_found_error", http.StatusTooManyRequests: "rate_limit_error",
	http.StatusServiceUnavailable: "overloaded_error",
}

func anthropicType(status int) string {
	if t, ok := anthropicTypes[status]; ok {
		return t
	}
	if status < 500 {
		return "invalid_request_error"
	}
	return "api_error"
}

// anthropicErrorJSON is err in Anthropic's error shape:
// {"type": "error", "error": {"type", "message"}}.
func anthropicErrorJSON(err error) []byte {
	fe := httpx.ClientError(err)
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": anthropicType(httpx.Status(err)), "message": fe.Message}})
	return b
}

// writeAnthropicError answers err in Anthropic's error shape, with the
// status, headers and log line Farebox's own error table gives it.
func (g *Gateway) writeAnthropicError(w http.ResponseWriter, r *http.Request, err error) {
	status := httpx.Prepare(w, r, g.log, err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(anthropicErrorJSON(err), '\n'))
}
