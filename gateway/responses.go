package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	fb "farebox"
	"farebox/pricing"
	"farebox/routing"
)

// The Responses API (POST /v1/responses): what it takes, how its input is
// bounded, and how its answer reports usage.

// responsesFields are the Responses parameters forwarded by default: those
// the official SDKs send in ordinary use that change neither what a
// provider bills beyond what the hold bounds, nor what it keeps. Left out:
// background (work billed after the exchange), store: true, costlier
// service tiers. previous_response_id, conversation and prompt name state
// the provider keeps: they are bounded by the context window where a
// deployment allows them (request.state).
var responsesFields = map[string]fieldCheck{
	"model": anyValue, "input": anyValue, "instructions": anyValue, "stream": anyValue, "stream_options": anyValue,
	"max_output_tokens": anyValue, "temperature": anyValue, "top_p": anyValue, "top_logprobs": anyValue,
	"tools": anyValue, "tool_choice": anyValue, "parallel_tool_calls": anyValue, "max_tool_calls": anyValue,
	"metadata": anyValue, "user": anyValue, "safety_identifier": anyValue, "prompt_cache_key": anyValue,
	"reasoning": anyValue, "text": anyValue, "truncation": anyValue, "include": anyValue,
	"previous_response_id": anyValue, "conversation": anyValue, "prompt": anyValue,
	"store":        oneOf("false"),
	"background":   oneOf("false"),
	"service_tier": oneOf(`"default"`, `"flex"`),
}

// The Responses input items and content parts the gateway can bound: text
// by its bytes, an image at its model's most, a file by the context
// window; items that refer to what the provider stored make the input
// unknown (request.state).
const (
	responsesItemList = "message, function_call, function_call_output, custom_tool_call, custom_tool_call_output, reasoning (with encrypted_content), item_reference"
	responsesPartList = "input_text, output_text, refusal, input_image, input_file"
)

// responsesTools are the tool types whose use costs nothing beyond tokens:
// a hosted tool (web_search, file_search, code_interpreter, …) is billed
// per call, at rates the card does not hold.
var responsesTools = map[string]bool{"function": true, "custom": true}

// parseResponses reads a Responses request.
func parseResponses(body []byte, _ http.Header) (*request, error) {
	q, err := parseCommon(body, responsesFields)
	if err != nil {
		return nil, err
	}
	q.proto, q.n = routing.ProtoResponses, 1
	if err := optional(q.raw, "stream", &q.stream); err != nil {
		return nil, err
	}
	for _, f := range []string{"previous_response_id", "conversation", "prompt"} {
		if v, ok := q.raw[f]; ok && !isNull(v) && q.state == "" {
			q.state = f
		}
	}
	in, ok := q.raw["input"]
	if !ok || isNull(in) {
		if q.state == "" {
			return nil, fb.Invalid("input", "input is required: a string or an array of input items")
		}
	} else if err := q.parseItems(in); err != nil {
		return nil, err
	}
	var v *int64
	if err := optional(q.raw, "max_output_tokens", &v); err != nil || (v != nil && *v < 1) {
		return nil, fb.Invalid("max_output_tokens", "max_output_tokens must be a positive integer")
	}
	if v != nil {
		q.capFields, q.capTokens = []string{"max_output_tokens"}, *v
	}
	if t, ok := q.raw["tools"]; ok && !isNull(t) {
		var tools []struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(t, &tools); err != nil {
			return nil, fb.Invalid("tools", "tools must be an array of tool objects")
		}
		for i, tool := range tools {
			if !responsesTools[tool.Type] {
				return nil, fb.Invalid(fmt.Sprintf("tools[%d].type", i), "the hosted tool %q is billed per call, at a rate the rate card does not hold; the gateway takes function and custom tools", tool.Type)
			}
		}
		q.tools = len(tools) > 0
	}
	return q, nil
}

// parseItems reads the input: a string, or an array of items.
func (q *request) parseItems(in json.RawMessage) error {
	if t := bytes.TrimSpace(in); len(t) > 0 && t[0] == '"' {
		return nil
	}
	var items []struct {
		Type             string          `json:"type"`
		Role             string          `json:"role"`
		Content          json.RawMessage `json:"content"`
		EncryptedContent *string         `json:"encrypted_content"`
	}
	if err := json.Unmarshal(in, &items); err != nil {
		return fb.Invalid("input", "input must be a string or an array of input items")
	}
	for i, it := range items {
		param := fmt.Sprintf("input[%d]", i)
		switch it.Type {
		case "message", "":
			if err := q.parseResponsesContent(param, it.Content); err != nil {
				return err
			}
		case "function_call", "function_call_output", "custom_tool_call", "custom_tool_call_output":
		case "reasoning":
			// Reasoning passed back in full (encrypted_content) is in the
			// body; one by id alone is the provider's to look up.
			if it.EncryptedContent == nil && q.state == "" {
				q.state = param
			}
		case "item_reference":
			first(&q.state, param)
		default:
			return fb.Invalid(param+".type", "input item type %q cannot be billed safely here; the gateway takes %s", it.Type, responsesItemList)
		}
	}
	return nil
}

// parseResponsesContent reads a message item's content: a string or parts.
func (q *request) parseResponsesContent(param string, c json.RawMessage) error {
	if len(c) == 0 || c[0] != '[' {
		return nil
	}
	var parts []struct {
		Type     string `json:"type"`
		Detail   string `json:"detail"`
		ImageURL string `json:"image_url"`
	}
	if err := json.Unmarshal(c, &parts); err != nil {
		return fb.Invalid(param+".content", "a message's content must be a string or an array of content parts")
	}
	for j, p := range parts {
		pp := fmt.Sprintf("%s.content[%d]", param, j)
		switch p.Type {
		case "input_text", "output_text", "refusal":
		case "input_image":
			// An image by file_id is the provider's own.
			if err := q.image(pp, p.Detail, p.ImageURL, ".image_url"); err != nil {
				return err
			}
		case "input_file":
			first(&q.unbounded, pp)
		default:
			return fb.Invalid(pp+".type", "content part type %q cannot be billed safely here; the gateway takes %s", p.Type, responsesPartList)
		}
	}
	return nil
}

// responsesUsage is the usage object of a Responses answer.
type responsesUsage struct {
	InputTokens        int64 `json:"input_tokens"`
	OutputTokens       int64 `json:"output_tokens"`
	InputTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
}

// quantities splits reported usage into what is priced, as chat's.
func (u *responsesUsage) quantities() fb.Quantities {
	c := usageJSON{PromptTokens: u.InputTokens, CompletionTokens: u.OutputTokens}
	if u.InputTokensDetails != nil {
		c.PromptTokensDetails = &struct {
			CachedTokens int64 `json:"cached_tokens"`
		}{u.InputTokensDetails.CachedTokens}
	}
	if u.OutputTokensDetails != nil {
		c.CompletionTokensDetails = &struct {
			ReasoningTokens int64 `json:"reasoning_tokens"`
		}{u.OutputTokensDetails.ReasoningTokens}
	}
	return c.quantities()
}

// responsesOutput is the gateway's count of a Responses answer's output:
// its text, refusals and tool call arguments.
func responsesOutput(output json.RawMessage) int64 {
	var items []struct {
		Type      string `json:"type"`
		Arguments string `json:"arguments"`
		Input     string `json:"input"`
		Content   []struct {
			Text    string `json:"text"`
			Refusal string `json:"refusal"`
		} `json:"content"`
		Summary []struct {
			Text string `json:"text"`
		} `json:"summary"`
	}
	_ = json.Unmarshal(output, &items)
	var n int64
	for _, it := range items {
		n += pricing.CountTokens(it.Arguments) + pricing.CountTokens(it.Input)
		for _, c := range it.Content {
			n += pricing.CountTokens(c.Text) + pricing.CountTokens(c.Refusal)
		}
		for _, s := range it.Summary {
			n += pricing.CountTokens(s.Text)
		}
	}
	return n
}
