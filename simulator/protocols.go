package simulator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"farebox/pricing"
)

// The simulator's Responses and Messages routes, Azure's URL shape, and
// the tool calls a request can force: in each provider's wire format, with
// the same deterministic text, usage and fault modes as chat.

// The error shapes: OpenAI's ({"error": {…}}) or Anthropic's ({"type":
// "error", "error": {"type", "message"}}).
const (
	protoOpenAI = iota
	protoAnthropic
)

// fail answers an error in proto's shape.
func (s *Simulator) fail(w http.ResponseWriter, proto, status int, message, typ, param, code string) {
	if proto != protoAnthropic {
		writeError(w, status, message, typ, param, code)
		return
	}
	t := map[int]string{400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 413: "request_too_large",
		429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}[status]
	if t == "" {
		t = "invalid_request_error"
	}
	writeJSON(w, status, map[string]any{"type": "error", "error": map[string]string{"type": t, "message": message}})
}

// azureRoute maps an Azure OpenAI path to the simulator's route and the
// deployment it names: /openai/deployments/{name}/chat/completions,
// …/embeddings, and /openai/responses (the model in the body).
func azureRoute(p string) (route, deployment string) {
	if p == "/openai/responses" || p == "/openai/v1/responses" {
		return "/v1/responses", ""
	}
	rest, ok := strings.CutPrefix(p, "/openai/deployments/")
	if !ok {
		return "", ""
	}
	name, op, ok := strings.Cut(rest, "/")
	if name, err := url.PathUnescape(name); ok && err == nil && name != "" {
		switch op {
		case "chat/completions":
			return "/v1/chat/completions", name
		case "embeddings":
			return "/v1/embeddings", name
		}
	}
	return "", ""
}

// withModel is a JSON body with its model set to model (an Azure
// deployment's name).
func withModel(body []byte, model string) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil || m == nil {
		return body
	}
	m["model"], _ = json.Marshal(model)
	b, _ := json.Marshal(m)
	return b
}

// forcedTool is the tool a request forces (tool_choice "required" or
// naming one; Anthropic's "any" or "tool"), "" when none: the simulator
// then answers with a call to it instead of text.
func forcedTool(tools, choice json.RawMessage, anthropic bool) string {
	var list []struct {
		Name     string `json:"name"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(tools, &list) != nil || len(list) == 0 {
		return ""
	}
	first := list[0].Function.Name
	if anthropic {
		first = list[0].Name
	}
	var s string
	var named struct {
		Type     string `json:"type"`
		Name     string `json:"name"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	switch {
	case json.Unmarshal(choice, &s) == nil:
		if s == "required" && !anthropic {
			return first
		}
	case json.Unmarshal(choice, &named) == nil:
		switch {
		case anthropic && named.Type == "any":
			return first
		case anthropic && named.Type == "tool":
			return named.Name
		case !anthropic && named.Function.Name != "":
			return named.Function.Name
		}
	}
	return ""
}

// toolArguments are a simulated tool call's arguments: a JSON object
// whose one string holds length words.
func toolArguments(h uint32, length int) string {
	rng := splitmix64(h)
	var b strings.Builder
	for range max(length, 1) {
		b.WriteString(rng.word())
	}
	out, _ := json.Marshal(map[string]string{"q": b.String()})
	return string(out)
}

// argPiece is the k-th four bytes of args: each is one token as
// pricing.CountTokens counts, so a gateway counting pieces agrees with
// the usage.
func argPiece(args string, k int) string {
	return args[min(4*k, len(args)):min(4*k+4, len(args))]
}

func callID(h uint32) string { return string(appendHex8([]byte("call_sim"), h)) }

// answerLength is the length of an answer to texts: the hash-derived one,
// or TokensHeader's; ok is false (and the error answered) for a bad
// header.
func (s *Simulator) answerLength(w http.ResponseWriter, r *http.Request, proto int, h uint32) (int, bool) {
	length := 16 + int(h%48)
	if vs, ok := r.Header[TokensHeader]; ok {
		v, err := strconv.Atoi(strings.TrimSpace(vs[0]))
		if err != nil || v < 0 || v > maxSimulatedTokens {
			s.fail(w, proto, http.StatusBadRequest, "Invalid "+TokensHeader+" value "+strconv.Quote(vs[0])+"; want an integer from 0 to "+strconv.Itoa(maxSimulatedTokens), "invalid_request_error", "", "invalid_simulate_header")
			return 0, false
		}
		length = v
	}
	return length, true
}

// sseWriter writes server-sent events, each with its event: line.
type sseWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	seq int64
	buf []byte
}

func startSSE(w http.ResponseWriter) *sseWriter {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	return &sseWriter{w: w, rc: http.NewResponseController(w)}
}

// send writes one event; v is marshalled as its data.
func (e *sseWriter) send(name string, v any) bool {
	b, _ := json.Marshal(v)
	return e.raw(name, b)
}

func (e *sseWriter) raw(name string, data []byte) bool {
	e.buf = append(append(append(append(append(e.buf[:0], "event: "...), name...), "\ndata: "...), data...), "\n\n"...)
	if _, err := e.w.Write(e.buf); err != nil {
		return false
	}
	return e.rc.Flush() == nil
}

// answerWords are an answer's text, word by word.
func answerWords(h uint32, n int) []string {
	rng := splitmix64(h)
	out := make([]string, n)
	for i := range out {
		out[i] = rng.word()
	}
	return out
}

// --- Responses ---

type responsesRequest struct {
	Model           string          `json:"model"`
	Input           json.RawMessage `json:"input"`
	Instructions    *string         `json:"instructions"`
	Stream          bool            `json:"stream"`
	MaxOutputTokens *int64          `json:"max_output_tokens"`
}

// responsesTexts are the texts of a Responses input: the string, or each
// item's text (message content, or a tool call's output).
func responsesTexts(in json.RawMessage) ([]string, bool) {
	var s string
	if json.Unmarshal(in, &s) == nil {
		return []string{s}, true
	}
	var items []struct {
		Content json.RawMessage `json:"content"`
		Output  string          `json:"output"`
	}
	if json.Unmarshal(in, &items) != nil {
		return nil, false
	}
	var out []string
	for _, it := range items {
		if it.Output != "" {
			out = append(out, it.Output)
			continue
		}
		if json.Unmarshal(it.Content, &s) == nil {
			out = append(out, s)
			continue
		}
		var parts []struct {
			Text string `json:"text"`
		}
		_ = json.Unmarshal(it.Content, &parts)
		var b strings.Builder
		for _, p := range parts {
			b.WriteString(p.Text)
		}
		out = append(out, b.String())
	}
	return out, true
}

type responsesUsage struct {
	InputTokens         int64 `json:"input_tokens"`
	InputTokensDetails  any   `json:"input_tokens_details"`
	OutputTokens        int64 `json:"output_tokens"`
	OutputTokensDetails any   `json:"output_tokens_details"`
	TotalTokens         int64 `json:"total_tokens"`
}

func (s *Simulator) responses(w http.ResponseWriter, r *http.Request, body []byte, f fault) {
	var req responsesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "We could not parse the JSON body of your request: "+err.Error(), "invalid_request_error", "", "")
		return
	}
	texts, ok := responsesTexts(req.Input)
	if !ok || len(req.Input) == 0 {
		writeError(w, http.StatusBadRequest, "Invalid input: a string or an array of input items", "invalid_request_error", "input", "")
		return
	}
	if req.Instructions != nil {
		texts = append([]string{*req.Instructions}, texts...)
	}
	if !s.checkModel(w, req.Model) {
		return
	}
	h := fnvOffset32
	for _, t := range texts {
		h = fnvAdd(h, t)
	}
	length, ok := s.answerLength(w, r, protoOpenAI, h)
	if !ok {
		return
	}
	status, incomplete := "completed", any(nil)
	if req.MaxOutputTokens != nil && int64(length) > *req.MaxOutputTokens {
		length, status, incomplete = int(*req.MaxOutputTokens), "incomplete", map[string]string{"reason": "max_output_tokens"}
	}
	prompt := pricing.PromptTokens(texts)
	usage := &responsesUsage{InputTokens: prompt, OutputTokens: int64(length), TotalTokens: prompt + int64(length),
		InputTokensDetails: map[string]int64{"cached_tokens": 0}, OutputTokensDetails: map[string]int64{"reasoning_tokens": 0}}
	id := string(appendHex8([]byte("resp_sim"), h))
	msgID := string(appendHex8([]byte("msg_sim"), h))
	text := strings.Join(answerWords(h, length), "")
	response := func(st string, out []any, u *responsesUsage) map[string]any {
		m := map[string]any{"id": id, "object": "response", "created_at": time.Now().Unix(), "status": st, "model": req.Model,
			"output": out, "error": nil, "incomplete_details": nil, "instructions": req.Instructions, "max_output_tokens": req.MaxOutputTokens,
			"parallel_tool_calls": true, "previous_response_id": nil, "reasoning": map[string]any{"effort": nil, "summary": nil},
			"store": false, "temperature": 1, "text": map[string]any{"format": map[string]string{"type": "text"}},
			"tool_choice": "auto", "tools": []any{}, "top_p": 1, "truncation": "disabled", "metadata": map[string]string{}, "usage": nil}
		if st == "incomplete" {
			m["incomplete_details"] = incomplete
		}
		if u != nil && f != faultNoUsage {
			m["usage"] = u
		}
		return m
	}
	message := func(st, t string) map[string]any {
		return map[string]any{"type": "message", "id": msgID, "status": st, "role": "assistant",
			"content": []any{map[string]any{"type": "output_text", "text": t, "annotations": []any{}}}}
	}
	if !req.Stream {
		s.whole(w, r, f, response(status, []any{message("completed", text)}, usage))
		return
	}
	ctx := r.Context()
	if s.sleep(ctx, s.TTFT) != nil {
		return
	}
	e := startSSE(w)
	ev := func(typ string, fields map[string]any) bool {
		fields["type"], fields["sequence_number"] = typ, e.seq
		e.seq++
		return e.send(typ, fields)
	}
	if !ev("response.created", map[string]any{"response": response("in_progress", []any{}, nil)}) ||
		!ev("response.in_progress", map[string]any{"response": response("in_progress", []any{}, nil)}) ||
		!ev("response.output_item.added", map[string]any{"output_index": 0, "item": map[string]any{"type": "message", "id": msgID, "status": "in_progress", "role": "assistant", "content": []any{}}}) ||
		!ev("response.content_part.added", map[string]any{"item_id": msgID, "output_index": 0, "content_index": 0, "part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}}}) {
		return
	}
	emit := length
	if f == faultDisconnect || f == faultMalformed {
		emit = (length + 1) / 2
	}
	gap := s.gap()
	for k, word := range answerWords(h, emit) {
		if k > 0 && s.sleep(ctx, gap) != nil {
			return
		}
		if !ev("response.output_text.delta", map[string]any{"item_id": msgID, "output_index": 0, "content_index": 0, "delta": word, "logprobs": []any{}}) {
			return
		}
	}
	switch f {
	case faultDisconnect:
		panic(http.ErrAbortHandler)
	case faultMalformed:
		e.raw("response.output_text.delta", []byte(malformedBody))
		return
	}
	part := map[string]any{"type": "output_text", "text": text, "annotations": []any{}}
	_ = ev("response.output_text.done", map[string]any{"item_id": msgID, "output_index": 0, "content_index": 0, "text": text, "logprobs": []any{}}) &&
		ev("response.content_part.done", map[string]any{"item_id": msgID, "output_index": 0, "content_index": 0, "part": part}) &&
		ev("response.output_item.done", map[string]any{"output_index": 0, "item": message("completed", text)}) &&
		ev("response."+status, map[string]any{"response": response(status, []any{message("completed", text)}, usage)})
}

// whole answers v in one piece after TTFT, or the fault f asks for
// instead (a connection cut, a body that is not JSON).
func (s *Simulator) whole(w http.ResponseWriter, r *http.Request, f fault, v any) {
	switch f {
	case faultDisconnect:
		panic(http.ErrAbortHandler)
	case faultMalformed:
		s.writeMalformed(w, r)
		return
	}
	if s.sleep(r.Context(), s.TTFT) != nil {
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// gap is the pause between streamed tokens.
func (s *Simulator) gap() time.Duration {
	if s.TokensPerSecond > 0 {
		return time.Second / time.Duration(s.TokensPerSecond)
	}
	return 0
}

// --- Messages ---

type messagesRequest struct {
	Model      string          `json:"model"`
	MaxTokens  *int64          `json:"max_tokens"`
	System     json.RawMessage `json:"system"`
	Messages   []chatMessage   `json:"messages"`
	Stream     bool            `json:"stream"`
	Tools      json.RawMessage `json:"tools"`
	ToolChoice json.RawMessage `json:"tool_choice"`
}

// messagesTexts are a Messages request's texts: the system prompt's and
// each message's text blocks (tool results' included); cached says
// whether any block asks for the prompt cache.
func messagesTexts(req *messagesRequest, body []byte) (texts []string, cached bool) {
	var sys string
	if json.Unmarshal(req.System, &sys) == nil {
		texts = append(texts, sys)
	} else if t, err := messageText(req.System); err == nil && len(req.System) > 0 {
		texts = append(texts, t)
	}
	for _, m := range req.Messages {
		var blocks []struct {
			Type    string          `json:"type"`
			Text    string          `json:"text"`
			Content json.RawMessage `json:"content"`
		}
		if json.Unmarshal(m.Content, &blocks) == nil {
			var b strings.Builder
			for _, bl := range blocks {
				b.WriteString(bl.Text)
				if bl.Type == "tool_result" {
					t, _ := messageText(bl.Content)
					b.WriteString(t)
				}
			}
			texts = append(texts, b.String())
			continue
		}
		t, _ := messageText(m.Content)
		texts = append(texts, t)
	}
	return texts, bytes.Contains(body, []byte(`"cache_control"`))
}

type messagesUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
}

func (s *Simulator) messages(w http.ResponseWriter, r *http.Request, body []byte, f fault) {
	var req messagesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		s.fail(w, protoAnthropic, http.StatusBadRequest, "invalid JSON body: "+err.Error(), "", "", "")
		return
	}
	switch {
	case req.MaxTokens == nil || *req.MaxTokens < 1:
		s.fail(w, protoAnthropic, http.StatusBadRequest, "max_tokens: Field required", "", "", "")
		return
	case len(req.Messages) == 0:
		s.fail(w, protoAnthropic, http.StatusBadRequest, "messages: Field required", "", "", "")
		return
	case req.Model == "":
		s.fail(w, protoAnthropic, http.StatusBadRequest, "model: Field required", "", "", "")
		return
	case !s.acceptsModel(req.Model):
		s.fail(w, protoAnthropic, http.StatusNotFound, "model: "+req.Model, "", "", "")
		return
	}
	texts, cached := messagesTexts(&req, body)
	h := fnvOffset32
	for _, t := range texts {
		h = fnvAdd(h, t)
	}
	length, ok := s.answerLength(w, r, protoAnthropic, h)
	if !ok {
		return
	}
	tool := forcedTool(req.Tools, req.ToolChoice, true)
	var args string
	stop := "end_turn"
	if tool != "" {
		args = toolArguments(h, length)
		length, stop = int(pricing.CountTokens(args)), "tool_use"
	}
	if int64(length) > *req.MaxTokens {
		length, stop = int(*req.MaxTokens), "max_tokens"
		if tool != "" {
			args = args[:min(len(args), 4*length)]
		}
	}
	prompt := pricing.PromptTokens(texts)
	usage := messagesUsage{InputTokens: prompt, OutputTokens: int64(length)}
	if cached {
		// The whole prompt written to the cache (a first request).
		usage.InputTokens, usage.CacheCreationInputTokens = 0, prompt
	}
	id := string(appendHex8([]byte("msg_sim"), h))
	text := strings.Join(answerWords(h, length), "")
	var content []any
	if tool != "" {
		var input any = map[string]any{}
		_ = json.Unmarshal([]byte(args), &input)
		content = []any{map[string]any{"type": "tool_use", "id": "toolu_" + callID(h), "name": tool, "input": input}}
	} else {
		content = []any{map[string]any{"type": "text", "text": text}}
	}
	message := func(c []any, st any, u any) map[string]any {
		return map[string]any{"id": id, "type": "message", "role": "assistant", "model": req.Model, "content": c,
			"stop_reason": st, "stop_sequence": nil, "usage": u}
	}
	if !req.Stream {
		m := message(content, stop, usage)
		if f == faultNoUsage {
			delete(m, "usage")
		}
		s.whole(w, r, f, m)
		return
	}
	ctx := r.Context()
	if s.sleep(ctx, s.TTFT) != nil {
		return
	}
	e := startSSE(w)
	start := usage
	start.OutputTokens = 1
	var startUsage any = start
	if f == faultNoUsage {
		startUsage = nil
	}
	if !e.send("message_start", map[string]any{"type": "message_start", "message": message([]any{}, nil, startUsage)}) {
		return
	}
	block := map[string]any{"type": "text", "text": ""}
	if tool != "" {
		block = map[string]any{"type": "tool_use", "id": "toolu_" + callID(h), "name": tool, "input": map[string]any{}}
	}
	if !e.send("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": block}) ||
		!e.send("ping", map[string]string{"type": "ping"}) {
		return
	}
	emit := length
	if f == faultDisconnect || f == faultMalformed {
		emit = (length + 1) / 2
	}
	gap := s.gap()
	ws := answerWords(h, emit)
	for k := range emit {
		if k > 0 && s.sleep(ctx, gap) != nil {
			return
		}
		delta := map[string]string{"type": "text_delta", "text": ws[k]}
		if tool != "" {
			delta = map[string]string{"type": "input_json_delta", "partial_json": argPiece(args, k)}
		}
		if !e.send("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": delta}) {
			return
		}
	}
	switch f {
	case faultDisconnect:
		panic(http.ErrAbortHandler)
	case faultMalformed:
		e.raw("content_block_delta", []byte(malformedBody))
		return
	}
	var end any = map[string]int64{"output_tokens": int64(length)}
	if f == faultNoUsage {
		end = nil
	}
	_ = e.send("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0}) &&
		e.send("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil}, "usage": end}) &&
		e.send("message_stop", map[string]string{"type": "message_stop"})
}

// countTokens answers POST /v1/messages/count_tokens: the input tokens a
// Messages request would be billed.
func (s *Simulator) countTokens(w http.ResponseWriter, body []byte) {
	var req messagesRequest
	if err := json.Unmarshal(body, &req); err != nil || len(req.Messages) == 0 {
		s.fail(w, protoAnthropic, http.StatusBadRequest, "messages: Field required", "", "", "")
		return
	}
	if !s.acceptsModel(req.Model) {
		s.fail(w, protoAnthropic, http.StatusNotFound, "model: "+req.Model, "", "", "")
		return
	}
	texts, _ := messagesTexts(&req, body)
	writeJSON(w, http.StatusOK, map[string]int64{"input_tokens": pricing.PromptTokens(texts)})
}
