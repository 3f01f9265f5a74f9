package gateway

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	fb "farebox"
	"farebox/routing"
)

// Translation between chat completions and Messages, where a model's
// deployment speaks the other protocol than the client: text, system
// prompts, tool definitions, tool calls and their results, stop
// sequences, streaming and usage. What it cannot carry faithfully is
// refused with 400 naming it, never dropped or changed.

// translate is the request in wire, d's protocol.
func (q *request) translate(d *routing.Deployment, wire string, capTokens int64) ([]byte, error) {
	switch {
	case q.proto == routing.ProtoChat && wire == routing.ProtoMessages:
		return q.chatToMessages(d, capTokens)
	case q.proto == routing.ProtoMessages && wire == routing.ProtoChat:
		return q.messagesToChat(d, capTokens)
	}
	return nil, fb.Invalid("model", "the model is not served on this protocol here")
}

func untranslatable(param, to string) *fb.Error {
	return fb.Invalid(param, "%s cannot be carried faithfully to this model's %s deployment; send it without, or use a model served on this protocol", param, to)
}

// chatTranslatable are the chat fields a translation to Messages carries.
var chatTranslatable = map[string]bool{
	"model": true, "messages": true, "stream": true, "stream_options": true, "max_tokens": true, "max_completion_tokens": true,
	"temperature": true, "top_p": true, "stop": true, "user": true, "tools": true, "tool_choice": true, "parallel_tool_calls": true, "n": true,
}

type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	Name       *string         `json:"name"`
	ToolCallID string          `json:"tool_call_id"`
	ToolCalls  []chatToolCall  `json:"tool_calls"`
	Refusal    *string         `json:"refusal"`
	Audio      json.RawMessage `json:"audio"`
}

type chatToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// chatText is a chat content as one string: the string, or its text
// parts; ok is false for any other part.
func chatText(c json.RawMessage) (s string, bad int, ok bool) {
	if len(c) == 0 || isNull(c) {
		return "", -1, true
	}
	if json.Unmarshal(c, &s) == nil {
		return s, -1, true
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(c, &parts) != nil {
		return "", -1, false
	}
	var b strings.Builder
	for i, p := range parts {
		if p.Type != "text" {
			return "", i, false
		}
		b.WriteString(p.Text)
	}
	return b.String(), -1, true
}

func textBlock(s string) map[string]any { return map[string]any{"type": "text", "text": s} }

// chatToMessages is a chat request as a Messages upstream takes it.
func (q *request) chatToMessages(d *routing.Deployment, capTokens int64) ([]byte, error) {
	for k, v := range q.raw {
		if !chatTranslatable[k] && !isNull(v) {
			return nil, untranslatable(k, "Messages")
		}
	}
	if q.n != 1 {
		return nil, untranslatable("n", "Messages")
	}
	out := map[string]any{"model": d.Upstream, "max_tokens": capTokens}
	var msgs []chatMessage
	_ = json.Unmarshal(q.raw["messages"], &msgs) // checked by parseChat
	var system []any
	var conv []any
	for i, m := range msgs {
		param := fmt.Sprintf("messages[%d]", i)
		if m.Name != nil {
			return nil, untranslatable(param+".name", "Messages")
		}
		if m.Refusal != nil || len(m.Audio) > 0 && !isNull(m.Audio) {
			return nil, untranslatable(param, "Messages")
		}
		text, bad, ok := chatText(m.Content)
		if !ok {
			if bad >= 0 {
				return nil, untranslatable(fmt.Sprintf("%s.content[%d].type", param, bad), "Messages")
			}
			return nil, untranslatable(param+".content", "Messages")
		}
		switch m.Role {
		case "system", "developer":
			if len(conv) > 0 {
				return nil, fb.Invalid(param+".role", "a system message after the conversation began cannot be carried faithfully to this model's Messages deployment (its system prompt comes first)")
			}
			system = append(system, textBlock(text))
		case "user":
			conv = append(conv, map[string]any{"role": "user", "content": []any{textBlock(text)}})
		case "assistant":
			var blocks []any
			if text != "" {
				blocks = append(blocks, textBlock(text))
			}
			for j, tc := range m.ToolCalls {
				var input json.RawMessage
				if json.Unmarshal([]byte(tc.Function.Arguments), &input) != nil || len(input) == 0 || input[0] != '{' {
					return nil, fb.Invalid(fmt.Sprintf("%s.tool_calls[%d].function.arguments", param, j), "a tool call's arguments must be a JSON object to be carried to this model's Messages deployment")
				}
				blocks = append(blocks, map[string]any{"type": "tool_use", "id": tc.ID, "name": tc.Function.Name, "input": input})
			}
			if len(blocks) == 0 {
				return nil, untranslatable(param+".content", "Messages")
			}
			conv = append(conv, map[string]any{"role": "assistant", "content": blocks})
		case "tool":
			conv = append(conv, map[string]any{"role": "user", "content": []any{map[string]any{"type": "tool_result", "tool_use_id": m.ToolCallID, "content": text}}})
		default:
			return nil, untranslatable(param+".role", "Messages")
		}
	}
	if len(conv) == 0 {
		return nil, fb.Invalid("messages", "a conversation needs a user message to be carried to this model's Messages deployment")
	}
	out["messages"] = conv
	if len(system) > 0 {
		out["system"] = system
	}
	for _, f := range []string{"temperature", "top_p"} {
		var v *float64
		if err := optional(q.raw, f, &v); err != nil {
			return nil, err
		}
		if v != nil {
			if f == "temperature" && *v > 1 {
				return nil, fb.Invalid("temperature", "temperature above 1 cannot be carried faithfully to this model's Messages deployment (its range is 0 to 1)")
			}
			out[f] = *v
		}
	}
	if s, ok := q.raw["stop"]; ok && !isNull(s) {
		var one string
		var many []string
		if json.Unmarshal(s, &one) == nil {
			many = []string{one}
		} else if json.Unmarshal(s, &many) != nil {
			return nil, fb.Invalid("stop", "stop must be a string or an array of strings")
		}
		out["stop_sequences"] = many
	}
	var user string
	if err := optional(q.raw, "user", &user); err != nil {
		return nil, err
	}
	if user != "" {
		out["metadata"] = map[string]any{"user_id": user}
	}
	if t, ok := q.raw["tools"]; ok && !isNull(t) {
		var tools []struct {
			Type     string `json:"type"`
			Function struct {
				Name        string          `json:"name"`
				Description string          `json:"description"`
				Parameters  json.RawMessage `json:"parameters"`
				Strict      *bool           `json:"strict"`
			} `json:"function"`
		}
		if json.Unmarshal(t, &tools) != nil {
			return nil, fb.Invalid("tools", "tools must be an array of function tools")
		}
		var ts []any
		for i, tool := range tools {
			if tool.Type != "function" {
				return nil, untranslatable(fmt.Sprintf("tools[%d].type", i), "Messages")
			}
			if tool.Function.Strict != nil && *tool.Function.Strict {
				return nil, untranslatable(fmt.Sprintf("tools[%d].function.strict", i), "Messages")
			}
			schema := tool.Function.Parameters
			if len(schema) == 0 || isNull(schema) {
				schema = json.RawMessage(`{"type":"object","properties":{}}`)
			}
			m := map[string]any{"name": tool.Function.Name, "input_schema": schema}
			if tool.Function.Description != "" {
				m["description"] = tool.Function.Description
			}
			ts = append(ts, m)
		}
		if len(ts) > 0 {
			out["tools"] = ts
		}
	}
	var choice map[string]any
	if tc, ok := q.raw["tool_choice"]; ok && !isNull(tc) {
		var s string
		var named struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		switch {
		case json.Unmarshal(tc, &s) == nil && s == "auto":
			choice = map[string]any{"type": "auto"}
		case s == "none":
			choice = map[string]any{"type": "none"}
		case s == "required":
			choice = map[string]any{"type": "any"}
		case s == "" && json.Unmarshal(tc, &named) == nil && named.Function.Name != "":
			choice = map[string]any{"type": "tool", "name": named.Function.Name}
		default:
			return nil, untranslatable("tool_choice", "Messages")
		}
	}
	var parallel *bool
	if err := optional(q.raw, "parallel_tool_calls", &parallel); err != nil {
		return nil, err
	}
	if parallel != nil && !*parallel {
		if choice == nil {
			choice = map[string]any{"type": "auto"}
		}
		choice["disable_parallel_tool_use"] = true
	}
	if choice != nil {
		out["tool_choice"] = choice
	}
	if q.stream {
		out["stream"] = true
	}
	return json.Marshal(out)
}

// messagesTranslatable are the Messages fields a translation to chat
// carries.
var messagesTranslatable = map[string]bool{
	"model": true, "messages": true, "system": true, "max_tokens": true, "stream": true, "temperature": true,
	"top_p": true, "stop_sequences": true, "metadata": true, "tools": true, "tool_choice": true,
}

// messagesToChat is a Messages request as a chat upstream takes it.
func (q *request) messagesToChat(d *routing.Deployment, capTokens int64) ([]byte, error) {
	for k, v := range q.raw {
		if !messagesTranslatable[k] && !isNull(v) {
			return nil, untranslatable(k, "chat completions")
		}
	}
	if len(q.betas) > 0 {
		return nil, untranslatable("anthropic-beta", "chat completions")
	}
	if q.cacheControl != "" {
		return nil, untranslatable(q.cacheControl, "chat completions")
	}
	var msgs []any
	if sys, ok := q.raw["system"]; ok && !isNull(sys) {
		text, err := messagesText("system", sys)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, map[string]any{"role": "system", "content": text})
	}
	var in []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	_ = json.Unmarshal(q.raw["messages"], &in) // checked by parseMessages
	for i, m := range in {
		param := fmt.Sprintf("messages[%d]", i)
		var s string
		if json.Unmarshal(m.Content, &s) == nil {
			msgs = append(msgs, map[string]any{"role": m.Role, "content": s})
			continue
		}
		var blocks []struct {
			Type      string          `json:"type"`
			Text      string          `json:"text"`
			ID        string          `json:"id"`
			Name      string          `json:"name"`
			Input     json.RawMessage `json:"input"`
			ToolUseID string          `json:"tool_use_id"`
			Content   json.RawMessage `json:"content"`
			IsError   bool            `json:"is_error"`
		}
		if json.Unmarshal(m.Content, &blocks) != nil {
			return nil, fb.Invalid(param+".content", "content must be a string or an array of content blocks")
		}
		switch m.Role {
		case "user":
			var text strings.Builder
			pending := false
			flush := func() {
				if pending {
					msgs = append(msgs, map[string]any{"role": "user", "content": text.String()})
					text.Reset()
					pending = false
				}
			}
			for j, b := range blocks {
				bp := fmt.Sprintf("%s.content[%d]", param, j)
				switch b.Type {
				case "text":
					text.WriteString(b.Text)
					pending = true
				case "tool_result":
					if b.IsError {
						return nil, untranslatable(bp+".is_error", "chat completions")
					}
					result, err := messagesText(bp+".content", b.Content)
					if err != nil {
						return nil, err
					}
					flush()
					msgs = append(msgs, map[string]any{"role": "tool", "tool_call_id": b.ToolUseID, "content": result})
				default:
					return nil, untranslatable(bp+".type", "chat completions")
				}
			}
			flush()
		case "assistant":
			var text strings.Builder
			var calls []any
			for j, b := range blocks {
				switch b.Type {
				case "text":
					text.WriteString(b.Text)
				case "tool_use":
					args := string(b.Input)
					if args == "" {
						args = "{}"
					}
					calls = append(calls, map[string]any{"id": b.ID, "type": "function", "function": map[string]any{"name": b.Name, "arguments": args}})
				default:
					return nil, untranslatable(fmt.Sprintf("%s.content[%d].type", param, j), "chat completions")
				}
			}
			am := map[string]any{"role": "assistant", "content": text.String()}
			if len(calls) > 0 {
				am["tool_calls"] = calls
				if text.Len() == 0 {
					am["content"] = nil
				}
			}
			msgs = append(msgs, am)
		default:
			return nil, untranslatable(param+".role", "chat completions")
		}
	}
	out := map[string]any{"model": d.Upstream, "messages": msgs}
	switch d.CapField {
	case routing.CapBoth:
		out[routing.CapMaxTokens], out[routing.CapMaxCompletionTokens] = capTokens, capTokens
	case routing.CapMaxTokens:
		out[routing.CapMaxTokens] = capTokens
	default:
		out[routing.CapMaxCompletionTokens] = capTokens
	}
	for _, f := range []string{"temperature", "top_p"} {
		if v, ok := q.raw[f]; ok && !isNull(v) {
			out[f] = v
		}
	}
	if s, ok := q.raw["stop_sequences"]; ok && !isNull(s) {
		var stops []string
		if json.Unmarshal(s, &stops) != nil {
			return nil, fb.Invalid("stop_sequences", "stop_sequences must be an array of strings")
		}
		if len(stops) > 4 {
			return nil, fb.Invalid("stop_sequences", "more than 4 stop sequences cannot be carried faithfully to this model's chat deployment")
		}
		out["stop"] = stops
	}
	if md, ok := q.raw["metadata"]; ok && !isNull(md) {
		var meta map[string]json.RawMessage
		if json.Unmarshal(md, &meta) != nil {
			return nil, fb.Invalid("metadata", "metadata must be an object")
		}
		for k := range meta {
			if k != "user_id" {
				return nil, untranslatable("metadata."+k, "chat completions")
			}
		}
		if u, ok := meta["user_id"]; ok && !isNull(u) {
			out["user"] = u
		}
	}
	if t, ok := q.raw["tools"]; ok && !isNull(t) {
		var tools []struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			InputSchema json.RawMessage `json:"input_schema"`
		}
		if json.Unmarshal(t, &tools) != nil {
			return nil, fb.Invalid("tools", "tools must be an array of tools")
		}
		var ts []any
		for _, tool := range tools {
			fn := map[string]any{"name": tool.Name, "parameters": tool.InputSchema}
			if tool.Description != "" {
				fn["description"] = tool.Description
			}
			ts = append(ts, map[string]any{"type": "function", "function": fn})
		}
		if len(ts) > 0 {
			out["tools"] = ts
		}
	}
	if tc, ok := q.raw["tool_choice"]; ok && !isNull(tc) {
		var c struct {
			Type                   string `json:"type"`
			Name                   string `json:"name"`
			DisableParallelToolUse *bool  `json:"disable_parallel_tool_use"`
		}
		if json.Unmarshal(tc, &c) != nil {
			return nil, fb.Invalid("tool_choice", "tool_choice must be an object")
		}
		switch c.Type {
		case "auto":
			out["tool_choice"] = "auto"
		case "any":
			out["tool_choice"] = "required"
		case "none":
			out["tool_choice"] = "none"
		case "tool":
			out["tool_choice"] = map[string]any{"type": "function", "function": map[string]any{"name": c.Name}}
		default:
			return nil, untranslatable("tool_choice.type", "chat completions")
		}
		if c.DisableParallelToolUse != nil && *c.DisableParallelToolUse {
			out["parallel_tool_calls"] = false
		}
	}
	if q.stream {
		out["stream"] = true
		out["stream_options"] = map[string]any{"include_usage": true}
	}
	return json.Marshal(out)
}

// messagesText is content that must be text (a system prompt, a tool
// result) as one string: the string, or its text blocks.
func messagesText(param string, c json.RawMessage) (string, error) {
	var s string
	if len(c) == 0 || isNull(c) || json.Unmarshal(c, &s) == nil {
		return s, nil
	}
	var blocks []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(c, &blocks) != nil {
		return "", fb.Invalid(param, "content must be a string or an array of text blocks")
	}
	var b strings.Builder
	for j, bl := range blocks {
		if bl.Type != "text" {
			return "", untranslatable(fmt.Sprintf("%s[%d].type", param, j), "chat completions")
		}
		b.WriteString(bl.Text)
	}
	return b.String(), nil
}

// Stop reasons and finish reasons, each way.
var (
	finishOfStop = map[string]string{"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls", "refusal": "content_filter", "pause_turn": "stop"}
	stopOfFinish = map[string]string{"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use", "content_filter": "refusal"}
)

// messagesAnswerToChat is a Messages answer as a chat completion.
func messagesAnswerToChat(body map[string]json.RawMessage, model string, now time.Time) map[string]json.RawMessage {
	var m struct {
		ID      string `json:"id"`
		Content []struct {
			Type  string          `json:"type"`
			Text  string          `json:"text"`
			ID    string          `json:"id"`
			Name  string          `json:"name"`
			Input json.RawMessage `json:"input"`
		} `json:"content"`
		StopReason string `json:"stop_reason"`
	}
	b, _ := json.Marshal(body)
	_ = json.Unmarshal(b, &m)
	var text strings.Builder
	var calls []any
	for _, c := range m.Content {
		switch c.Type {
		case "text":
			text.WriteString(c.Text)
		case "tool_use":
			calls = append(calls, map[string]any{"id": c.ID, "type": "function", "function": map[string]any{"name": c.Name, "arguments": string(c.Input)}})
		}
	}
	msg := map[string]any{"role": "assistant", "content": text.String(), "refusal": nil}
	if len(calls) > 0 {
		msg["tool_calls"] = calls
		if text.Len() == 0 {
			msg["content"] = nil
		}
	}
	finish := finishOfStop[m.StopReason]
	if finish == "" {
		finish = "stop"
	}
	out := map[string]json.RawMessage{}
	out["id"], _ = json.Marshal("chatcmpl-" + m.ID)
	out["object"] = json.RawMessage(`"chat.completion"`)
	out["created"] = jsonInt(now.Unix())
	out["model"], _ = json.Marshal(model)
	out["choices"], _ = json.Marshal([]any{map[string]any{"index": 0, "message": msg, "finish_reason": finish, "logprobs": nil}})
	return out
}

// chatAnswerToMessages is a chat completion as a Messages answer.
func chatAnswerToMessages(body map[string]json.RawMessage, model string) map[string]json.RawMessage {
	var c struct {
		ID      string `json:"id"`
		Choices []struct {
			Message struct {
				Content   string         `json:"content"`
				ToolCalls []chatToolCall `json:"tool_calls"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	b, _ := json.Marshal(body)
	_ = json.Unmarshal(b, &c)
	content := []any{}
	stop := "end_turn"
	if len(c.Choices) > 0 {
		ch := c.Choices[0]
		if ch.Message.Content != "" {
			content = append(content, textBlock(ch.Message.Content))
		}
		for _, tc := range ch.Message.ToolCalls {
			input := json.RawMessage(tc.Function.Arguments)
			if !json.Valid(input) {
				input, _ = json.Marshal(map[string]string{"arguments": tc.Function.Arguments})
			}
			content = append(content, map[string]any{"type": "tool_use", "id": tc.ID, "name": tc.Function.Name, "input": input})
		}
		if s := stopOfFinish[ch.FinishReason]; s != "" {
			stop = s
		}
	}
	out := map[string]json.RawMessage{}
	out["id"], _ = json.Marshal("msg_" + strings.TrimPrefix(c.ID, "chatcmpl-"))
	out["type"] = json.RawMessage(`"message"`)
	out["role"] = json.RawMessage(`"assistant"`)
	out["model"], _ = json.Marshal(model)
	out["content"], _ = json.Marshal(content)
	out["stop_reason"], _ = json.Marshal(stop)
	out["stop_sequence"] = json.RawMessage("null")
	return out
}

// usageObject is the usage of q in protocol proto's shape.
func usageObject(proto string, q fb.Quantities) map[string]json.RawMessage {
	in, out := q.InputTokens+q.CachedInputTokens+q.CacheWriteTokens, q.OutputTokens+q.ReasoningTokens
	u := map[string]json.RawMessage{}
	switch proto {
	case routing.ProtoResponses:
		u["input_tokens"], u["output_tokens"], u["total_tokens"] = jsonInt(in), jsonInt(out), jsonInt(in+out)
		u["input_tokens_details"] = json.RawMessage(`{"cached_tokens":` + strconv.FormatInt(q.CachedInputTokens, 10) + `}`)
		u["output_tokens_details"] = json.RawMessage(`{"reasoning_tokens":` + strconv.FormatInt(q.ReasoningTokens, 10) + `}`)
	case routing.ProtoMessages:
		u["input_tokens"], u["output_tokens"] = jsonInt(q.InputTokens), jsonInt(out)
		u["cache_creation_input_tokens"], u["cache_read_input_tokens"] = jsonInt(q.CacheWriteTokens), jsonInt(q.CachedInputTokens)
	default:
		u["prompt_tokens"], u["completion_tokens"], u["total_tokens"] = jsonInt(in), jsonInt(out), jsonInt(in+out)
		if q.CachedInputTokens > 0 {
			u["prompt_tokens_details"] = json.RawMessage(`{"cached_tokens":` + strconv.FormatInt(q.CachedInputTokens, 10) + `}`)
		}
	}
	return u
}
