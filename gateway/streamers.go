package gateway

import (
	"bytes"
	"encoding/json"
	"time"

	fb "farebox"
	"farebox/httpx"
	"farebox/pricing"
	"farebox/routing"
)

// A streamer is one protocol's side of a relayed stream: it reads the
// upstream's events (in the deployment's protocol), says what each
// delivers and what to send the client (in the client's), and writes the
// stream's end and its error events. relayStream does the rest: the cap,
// the writes and their deadlines, the drain, settlement.
type streamer interface {
	// event reads one upstream event: name is its event: field (empty
	// when it has none), data its data, room the output tokens the client
	// may still be sent (negative once nothing more is sent: the stream is
	// drained for its usage). An event whose output passes room is not
	// sent (over), and changes nothing the streamer tracks of what the
	// client got. What it keeps must be copied.
	event(name, data []byte, room int64) upEvent
	// end is the stream's last events after settlement, cost and balance
	// in them: ended by the gateway at the cap, or as the upstream ended
	// it.
	end(capped bool, q fb.Quantities) []byte
	// fail is an error event.
	fail(err error) []byte
}

// upEvent is what one upstream event means.
type upEvent struct {
	out    [3][]byte      // sent to the client in order, within the cap; out[0] nil: nothing
	tokens int64          // output it delivers, counted
	usage  *fb.Quantities // usage reported so far (replacing any earlier)
	done   bool           // the stream's natural end: nothing after it is read
	failed bool           // the upstream's error: out is forwarded, the stream ends
	bad    bool           // not understood: the stream is malformed
	over   bool           // its output passes the cap: not sent, the stream ends there
}

// held says whether an event of n output tokens is not sent with room
// left, and marks e over when it is the cap that stops it.
func (e *upEvent) held(n, room int64) bool {
	e.tokens = n
	if room >= 0 && n > room {
		e.over = true
	}
	return room < 0 || e.over
}

var (
	dataPrefix = []byte("data: ")
	eventEnd   = []byte("\n\n")
)

// newStreamer is the streamer of x: its client's protocol, read from its
// deployment's.
func newStreamer(x *exchange, now func() time.Time) streamer {
	c := streamBase{x: x}
	if x.dep.Upstream != x.req.model {
		up, _ := json.Marshal(x.dep.Upstream)
		pub, _ := json.Marshal(x.req.model)
		c.upModel, c.pubModel = append([]byte(`"model":`), up...), append([]byte(`"model":`), pub...)
	}
	switch {
	case x.req.proto == routing.ProtoResponses:
		return &responsesStream{streamBase: c}
	case x.req.proto == routing.ProtoMessages && x.wire == routing.ProtoMessages:
		return &messagesStream{streamBase: c}
	case x.req.proto == routing.ProtoMessages:
		return &chatToMessagesStream{streamBase: c}
	case x.wire == routing.ProtoMessages:
		return &messagesToChatStream{streamBase: c, created: now().Unix()}
	}
	return &chatStream{streamBase: c, indices: map[int]bool{}}
}

// streamBase is what every streamer has: the exchange, and the model's
// name upstream and public, as JSON members, when they differ.
type streamBase struct {
	x                 *exchange
	upModel, pubModel []byte
}

// public is data with the model named as the client asked for it.
func (c *streamBase) public(data []byte) []byte {
	if c.upModel != nil {
		return bytes.Replace(data, c.upModel, c.pubModel, 1)
	}
	return data
}

// withCost is the usage object u (JSON) with cost and balance added, or
// q's usage in proto's shape when u is none.
func (c *streamBase) withCost(u json.RawMessage, proto string, q fb.Quantities) map[string]json.RawMessage {
	var m map[string]json.RawMessage
	if len(u) > 0 && json.Unmarshal(u, &m) != nil || m == nil {
		m = usageObject(proto, q)
	}
	m["cost"], _ = json.Marshal(c.x.cost.String())
	m["balance"] = c.x.balanceJSON()
	return m
}

// sse is one event: an event: line when name is set, and its data.
func sse(name string, v any) []byte {
	b, _ := json.Marshal(v)
	out := make([]byte, 0, len(name)+len(b)+16)
	if name != "" {
		out = append(append(append(out, "event: "...), name...), '\n')
	}
	return append(append(append(out, dataPrefix...), b...), eventEnd...)
}

// --- chat completions, relayed ---

// chatStream relays a chat stream as it comes, but for the usage chunk
// (kept for the end) and the model's name.
type chatStream struct {
	streamBase
	usageChunk []byte // the upstream's usage chunk
	last       chunk
	indices    map[int]bool
}

func (c *chatStream) event(_, data []byte, room int64) upEvent {
	if string(data) == "[DONE]" {
		return upEvent{done: true}
	}
	var ch chunk
	if err := json.Unmarshal(data, &ch); err != nil {
		return upEvent{bad: true}
	}
	if len(ch.Error) > 0 && !isNull(ch.Error) {
		return upEvent{failed: true, out: [3][]byte{dataPrefix, data, eventEnd}}
	}
	var e upEvent
	if len(ch.Usage) > 0 && !isNull(ch.Usage) {
		e.usage = usageFrom(routing.ProtoChat, ch.Usage)
		if len(ch.Choices) == 0 {
			c.usageChunk = append(c.usageChunk[:0], data...)
			return e
		}
		// Usage riding on a content chunk: sent at the end instead.
		data = withoutUsage(data)
	}
	if e.held(ch.tokens(), room) {
		return e
	}
	c.last.ID, c.last.Created = ch.ID, ch.Created
	for _, choice := range ch.Choices {
		c.indices[choice.Index] = true
	}
	e.out = [3][]byte{dataPrefix, c.public(data), eventEnd}
	return e
}

func (c *chatStream) end(capped bool, q fb.Quantities) []byte {
	var out []byte
	if capped {
		for i := range c.indices {
			out = append(out, sse("", map[string]any{"id": c.last.ID, "object": "chat.completion.chunk", "created": c.last.Created, "model": c.x.req.model,
				"choices": []any{map[string]any{"index": i, "delta": map[string]any{}, "finish_reason": "length"}}})...)
		}
	}
	if c.x.req.usageAsked {
		out = append(append(append(out, dataPrefix...), usageEvent(c.usageChunk, q, c.x, c.last)...), eventEnd...)
	}
	return append(out, "data: [DONE]\n\n"...)
}

func (c *chatStream) identity() (string, int64) { return c.last.ID, c.last.Created }

func (c *chatStream) fail(err error) []byte {
	return append(append(append([]byte(nil), dataPrefix...), httpx.ErrorJSON(err)...), eventEnd...)
}

// --- Responses, relayed ---

// responsesStream relays a Responses stream as it comes, but for its
// final event (response.completed, .incomplete or .failed), kept for the
// end to carry cost and balance in its response.usage.
type responsesStream struct {
	streamBase
	final     []byte // the final event's data
	finalName string
	snapshot  []byte // the response object of response.created
	seq       int64
}

type responsesEvent struct {
	Type     string          `json:"type"`
	Delta    string          `json:"delta"`
	Response json.RawMessage `json:"response"`
	Seq      int64           `json:"sequence_number"`
}

// responsesDeltas are the events whose delta is output.
var responsesDeltas = map[string]bool{
	"response.output_text.delta": true, "response.refusal.delta": true, "response.function_call_arguments.delta": true,
	"response.reasoning_summary_text.delta": true, "response.reasoning_text.delta": true, "response.custom_tool_call_input.delta": true,
}

func (c *responsesStream) event(name, data []byte, room int64) upEvent {
	var ev responsesEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return upEvent{bad: true}
	}
	c.seq = max(c.seq, ev.Seq)
	var e upEvent
	switch ev.Type {
	case "error":
		return upEvent{failed: true, out: [3][]byte{[]byte("event: error\ndata: "), data, eventEnd}}
	case "response.completed", "response.incomplete", "response.failed":
		var r struct {
			Usage json.RawMessage `json:"usage"`
		}
		_ = json.Unmarshal(ev.Response, &r)
		e.usage = usageFrom(routing.ProtoResponses, r.Usage)
		c.final, c.finalName = append(c.final[:0], data...), ev.Type
		e.done = true
		return e
	case "response.created":
		c.snapshot = append(c.snapshot[:0], ev.Response...)
	}
	var n int64
	if responsesDeltas[ev.Type] {
		n = pricing.CountTokens(ev.Delta)
	}
	if e.held(n, room) {
		return e
	}
	e.out = [3][]byte{eventLine(name), c.public(data), eventEnd}
	return e
}

// eventLine is an event's event: line and the data: that follows it.
func eventLine(name []byte) []byte {
	if len(name) == 0 {
		return dataPrefix
	}
	b := make([]byte, 0, len(name)+16)
	return append(append(append(b, "event: "...), name...), "\ndata: "...)
}

func (c *responsesStream) end(capped bool, q fb.Quantities) []byte {
	name, raw := c.finalName, c.final
	var ev map[string]json.RawMessage
	var resp map[string]json.RawMessage
	if raw != nil && json.Unmarshal(raw, &ev) == nil {
		_ = json.Unmarshal(ev["response"], &resp)
	}
	if resp == nil {
		// No final event (the gateway ended the stream before it): the
		// response as it began.
		_ = json.Unmarshal(c.snapshot, &resp)
		if resp == nil {
			resp = map[string]json.RawMessage{"object": json.RawMessage(`"response"`), "output": json.RawMessage("[]")}
		}
		ev = map[string]json.RawMessage{}
		name = "response.completed"
		resp["status"] = json.RawMessage(`"completed"`)
	}
	if capped {
		name = "response.incomplete"
		resp["status"] = json.RawMessage(`"incomplete"`)
		resp["incomplete_details"] = json.RawMessage(`{"reason":"max_output_tokens"}`)
	}
	u := resp["usage"]
	if usageFrom(routing.ProtoResponses, u) == nil {
		u = nil // none, or the snapshot's null: the charged quantities'
	}
	resp["usage"], _ = json.Marshal(c.withCost(u, routing.ProtoResponses, q))
	resp["model"], _ = json.Marshal(c.x.req.model)
	ev["type"], _ = json.Marshal(name)
	ev["response"], _ = json.Marshal(resp)
	c.seq++
	ev["sequence_number"] = jsonInt(c.seq)
	return sse(name, ev)
}

func (c *responsesStream) fail(err error) []byte {
	fe := httpx.BodyOf(err).Error
	c.seq++
	return sse("error", map[string]any{"type": "error", "code": fe.Code, "message": fe.Message, "param": fe.Param, "sequence_number": c.seq})
}

// --- Messages, relayed ---

// messagesStream relays a Messages stream as it comes, but for its last
// message_delta (kept for the end, to carry cost and balance in its usage)
// and message_stop.
type messagesStream struct {
	streamBase
	usage  messagesUsage
	delta  []byte // the last message_delta's data
	open   int    // the content block open, when opened
	opened bool
}

type messagesEvent struct {
	Type    string `json:"type"`
	Index   int    `json:"index"`
	Message *struct {
		Usage messagesUsage `json:"usage"`
	} `json:"message"`
	Usage *messagesUsage `json:"usage"`
	Delta struct {
		Type        string `json:"type"`
		Text        string `json:"text"`
		PartialJSON string `json:"partial_json"`
		Thinking    string `json:"thinking"`
		StopReason  string `json:"stop_reason"`
	} `json:"delta"`
}

// tokens is the output a content_block_delta delivers; 0 for any other
// event.
func (d *messagesEvent) tokens() int64 {
	if d.Type != "content_block_delta" {
		return 0
	}
	return pricing.CountTokens(d.Delta.Text) + pricing.CountTokens(d.Delta.PartialJSON) + pricing.CountTokens(d.Delta.Thinking)
}

func (c *messagesStream) event(name, data []byte, room int64) upEvent {
	var ev messagesEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return upEvent{bad: true}
	}
	var e upEvent
	switch ev.Type {
	case "error":
		return upEvent{failed: true, out: [3][]byte{[]byte("event: error\ndata: "), data, eventEnd}}
	case "message_start":
		if ev.Message != nil {
			c.usage.merge(&ev.Message.Usage)
			q := c.usage.quantities()
			e.usage = &q
		}
	case "message_delta":
		if ev.Usage != nil {
			c.usage.merge(ev.Usage)
			q := c.usage.quantities()
			e.usage = &q
		}
		c.delta = append(c.delta[:0], data...)
		return e
	case "message_stop":
		e.done = true
		return e
	}
	if e.held(ev.tokens(), room) {
		return e
	}
	switch ev.Type {
	case "content_block_start":
		c.open, c.opened = ev.Index, true
	case "content_block_stop":
		c.opened = false
	}
	e.out = [3][]byte{eventLine(name), c.public(data), eventEnd}
	return e
}

func (c *messagesStream) end(capped bool, q fb.Quantities) []byte {
	var out []byte
	var ev map[string]json.RawMessage
	if c.delta == nil || json.Unmarshal(c.delta, &ev) != nil || ev == nil {
		ev = map[string]json.RawMessage{"type": json.RawMessage(`"message_delta"`), "delta": json.RawMessage(`{"stop_reason":"end_turn","stop_sequence":null}`)}
	}
	if capped {
		if c.opened {
			out = append(out, sse("content_block_stop", map[string]any{"type": "content_block_stop", "index": c.open})...)
		}
		ev["delta"] = json.RawMessage(`{"stop_reason":"max_tokens","stop_sequence":null}`)
	}
	ev["usage"], _ = json.Marshal(c.withCost(nil, routing.ProtoMessages, q))
	out = append(out, sse("message_delta", ev)...)
	return append(out, sse("message_stop", map[string]string{"type": "message_stop"})...)
}

func (c *messagesStream) fail(err error) []byte {
	return append(append([]byte("event: error\ndata: "), anthropicErrorJSON(err)...), eventEnd...)
}

// --- chat client, Messages upstream ---

// messagesToChatStream turns a Messages stream into chat chunks: text
// deltas into content, tool_use blocks into tool_calls, the stop reason
// into the finish reason.
type messagesToChatStream struct {
	streamBase
	usage   messagesUsage
	id      string
	created int64
	stop    string
	tools   map[int]int // content block index → tool call index
}

func (c *messagesToChatStream) chunk(delta map[string]any, finish any) []byte {
	return sse("", map[string]any{"id": c.id, "object": "chat.completion.chunk", "created": c.created, "model": c.x.req.model,
		"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}})
}

func (c *messagesToChatStream) event(_, data []byte, room int64) upEvent {
	var ev struct {
		messagesEvent
		Message *struct {
			ID    string        `json:"id"`
			Usage messagesUsage `json:"usage"`
		} `json:"message"`
		ContentBlock struct {
			Type string `json:"type"`
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"content_block"`
		Error json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return upEvent{bad: true}
	}
	var e upEvent
	switch ev.Type {
	case "error":
		var m struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(ev.Error, &m)
		return upEvent{failed: true, out: [3][]byte{c.fail(fb.Errorf(fb.EUpstream, "%s", m.Message))}}
	case "message_delta":
		if ev.Usage != nil {
			c.usage.merge(ev.Usage)
			q := c.usage.quantities()
			e.usage = &q
		}
		c.stop = ev.Delta.StopReason
		return e
	case "message_stop":
		e.done = true
		return e
	case "message_start":
		if ev.Message != nil {
			c.id = "chatcmpl-" + ev.Message.ID
			c.usage.merge(&ev.Message.Usage)
			q := c.usage.quantities()
			e.usage = &q
		}
	}
	if e.held(ev.tokens(), room) {
		return e
	}
	switch ev.Type {
	case "message_start":
		e.out[0] = c.chunk(map[string]any{"role": "assistant", "content": ""}, nil)
	case "content_block_start":
		if ev.ContentBlock.Type == "tool_use" {
			if c.tools == nil {
				c.tools = map[int]int{}
			}
			i := len(c.tools)
			c.tools[ev.Index] = i
			e.out[0] = c.chunk(map[string]any{"tool_calls": []any{map[string]any{"index": i, "id": ev.ContentBlock.ID, "type": "function",
				"function": map[string]any{"name": ev.ContentBlock.Name, "arguments": ""}}}}, nil)
		}
	case "content_block_delta":
		switch ev.Delta.Type {
		case "text_delta":
			e.out[0] = c.chunk(map[string]any{"content": ev.Delta.Text}, nil)
		case "input_json_delta":
			e.out[0] = c.chunk(map[string]any{"tool_calls": []any{map[string]any{"index": c.tools[ev.Index], "function": map[string]any{"arguments": ev.Delta.PartialJSON}}}}, nil)
		}
	}
	return e
}

func (c *messagesToChatStream) end(capped bool, q fb.Quantities) []byte {
	finish := finishOfStop[c.stop]
	if capped || finish == "" && c.stop == "max_tokens" {
		finish = "length"
	}
	if finish == "" {
		finish = "stop"
	}
	out := c.chunk(map[string]any{}, finish)
	if c.x.req.usageAsked {
		out = append(out, sse("", map[string]any{"id": c.id, "object": "chat.completion.chunk", "created": c.created, "model": c.x.req.model,
			"choices": []any{}, "usage": c.withCost(nil, routing.ProtoChat, q)})...)
	}
	return append(out, "data: [DONE]\n\n"...)
}

func (c *messagesToChatStream) identity() (string, int64) { return c.id, c.created }

func (c *messagesToChatStream) fail(err error) []byte {
	return append(append(append([]byte(nil), dataPrefix...), httpx.ErrorJSON(err)...), eventEnd...)
}

// --- Messages client, chat upstream ---

// chatToMessagesStream turns chat chunks into Messages events: a
// message_start, a text block for content, a tool_use block for each tool
// call, and at the end message_delta (stop reason, usage) and
// message_stop.
type chatToMessagesStream struct {
	streamBase
	started bool
	block   int  // index of the open content block; -1 before the first
	text    bool // the open block is text
	tool    int  // the chat tool call index of the open block
	stop    string
}

func (c *chatToMessagesStream) event(_, data []byte, room int64) upEvent {
	if string(data) == "[DONE]" {
		return upEvent{done: true}
	}
	var ch struct {
		ID      string `json:"id"`
		Choices []struct {
			Delta struct {
				Content   string `json:"content"`
				ToolCalls []struct {
					Index    int    `json:"index"`
					ID       string `json:"id"`
					Function struct {
						Name      string `json:"name"`
						Arguments string `json:"arguments"`
					} `json:"function"`
				} `json:"tool_calls"`
			} `json:"delta"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage json.RawMessage `json:"usage"`
		Error json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(data, &ch); err != nil {
		return upEvent{bad: true}
	}
	if len(ch.Error) > 0 && !isNull(ch.Error) {
		var m struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(ch.Error, &m)
		return upEvent{failed: true, out: [3][]byte{c.fail(fb.Errorf(fb.EUpstream, "%s", m.Message))}}
	}
	var e upEvent
	e.usage = usageFrom(routing.ProtoChat, ch.Usage)
	var n int64
	for _, choice := range ch.Choices {
		n += pricing.CountTokens(choice.Delta.Content)
		for _, tc := range choice.Delta.ToolCalls {
			n += pricing.CountTokens(tc.Function.Arguments)
		}
		if choice.FinishReason != "" {
			c.stop = stopOfFinish[choice.FinishReason]
		}
	}
	if e.held(n, room) {
		return e
	}
	var out []byte
	if !c.started {
		c.started, c.block = true, -1
		out = append(out, sse("message_start", map[string]any{"type": "message_start", "message": map[string]any{
			"id": "msg_" + ch.ID, "type": "message", "role": "assistant", "model": c.x.req.model, "content": []any{},
			"stop_reason": nil, "stop_sequence": nil, "usage": map[string]int{"input_tokens": 0, "output_tokens": 0}}})...)
	}
	for _, choice := range ch.Choices {
		d := choice.Delta
		if d.Content != "" {
			if !c.text {
				out = c.open(out, map[string]any{"type": "text", "text": ""})
				c.text = true
			}
			out = append(out, sse("content_block_delta", map[string]any{"type": "content_block_delta", "index": c.block, "delta": map[string]any{"type": "text_delta", "text": d.Content}})...)
		}
		for _, tc := range d.ToolCalls {
			if tc.ID != "" || c.text || c.block < 0 || tc.Index != c.tool {
				out = c.open(out, map[string]any{"type": "tool_use", "id": tc.ID, "name": tc.Function.Name, "input": map[string]any{}})
				c.text, c.tool = false, tc.Index
			}
			if tc.Function.Arguments != "" {
				out = append(out, sse("content_block_delta", map[string]any{"type": "content_block_delta", "index": c.block, "delta": map[string]any{"type": "input_json_delta", "partial_json": tc.Function.Arguments}})...)
			}
		}
	}
	if out != nil {
		e.out[0] = out
	}
	return e
}

// open closes the open content block, if any, and opens the next.
func (c *chatToMessagesStream) open(out []byte, cb map[string]any) []byte {
	if c.block >= 0 {
		out = append(out, sse("content_block_stop", map[string]any{"type": "content_block_stop", "index": c.block})...)
	}
	c.block++
	return append(out, sse("content_block_start", map[string]any{"type": "content_block_start", "index": c.block, "content_block": cb})...)
}

func (c *chatToMessagesStream) end(capped bool, q fb.Quantities) []byte {
	var out []byte
	if !c.started {
		c.started = true
		out = append(out, sse("message_start", map[string]any{"type": "message_start", "message": map[string]any{
			"id": "msg_" + c.x.id, "type": "message", "role": "assistant", "model": c.x.req.model, "content": []any{},
			"stop_reason": nil, "stop_sequence": nil, "usage": map[string]int{"input_tokens": 0, "output_tokens": 0}}})...)
	}
	if c.block >= 0 {
		out = append(out, sse("content_block_stop", map[string]any{"type": "content_block_stop", "index": c.block})...)
	}
	stop := c.stop
	if capped {
		stop = "max_tokens"
	}
	if stop == "" {
		stop = "end_turn"
	}
	out = append(out, sse("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil},
		"usage": c.withCost(nil, routing.ProtoMessages, q)})...)
	return append(out, sse("message_stop", map[string]string{"type": "message_stop"})...)
}

func (c *chatToMessagesStream) fail(err error) []byte {
	return append(append([]byte("event: error\ndata: "), anthropicErrorJSON(err)...), eventEnd...)
}
