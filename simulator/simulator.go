// Package simulator is an upstream for the demo, the tests and the
// benchmarks: an OpenAI-compatible model server with deterministic answers,
// realistic usage, a pace, and faults on request — so that everything runs
// without a network.
package simulator

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"farebox/pricing"
)

// FaultHeader selects a fault mode of the Simulator for one request. Its
// value, compared case-insensitively, is one of 500, 429, hang, disconnect,
// no_usage and malformed.
const FaultHeader = "X-Farebox-Simulate"

// TokensHeader fixes the number of completion tokens per choice of
// one chat completion (an integer ≥ 0), instead of the hash-derived length.
const TokensHeader = "X-Farebox-Simulate-Tokens"

// Limits of the simulator's requests.
const (
	maxRequestBody     = 16 << 20 // bytes of a request body
	maxSimulatedTokens = 1 << 20  // value of TokensHeader
	maxChoices         = 128      // n of a chat completion, as OpenAI
	maxEmbeddingInputs = 2048     // inputs of one embeddings request, as OpenAI
	defaultDimensions  = 8
	maxDimensions      = 3072
	modelsCreated      = 1700000000
)

// defaultModels are the models GET /v1/models lists when Simulator.Models
// is empty.
var defaultModels = []string{"gpt-4o-mini", "text-embedding-3-small"}

// vocabulary holds the words of simulated completions: each has a leading
// space and at most four bytes, so pricing.CountTokens counts each as
// exactly one token, and none needs JSON escaping.
var vocabulary = [32]string{
	" the", " of", " and", " to", " in", " a", " is", " it",
	" you", " we", " for", " on", " as", " at", " by", " be",
	" or", " an", " so", " if", " no", " up", " go", " do",
	" my", " me", " he", " us", " all", " but", " not", " can",
}

// Simulator is an OpenAI-compatible upstream for the demo, the tests and
// the benchmarks: an http.Handler serving POST /v1/chat/completions (plain
// and streamed), POST /v1/embeddings and GET /v1/models. Its answers are
// deterministic functions of the request, apart from "created"; its usage
// counts tokens with pricing.CountTokens and pricing.PromptTokens, so a
// gateway counting one token per streamed delta agrees with it. The header
// FaultHeader injects faults and TokensHeader fixes the length
// of a completion.
//
// A Simulator must not be modified while it serves requests; it is
// otherwise safe for concurrent use.
type Simulator struct {
	TTFT            time.Duration                                    // delay before the first byte of a response (headers); 0: none
	TokensPerSecond int                                              // pace of streamed tokens after the first; 0: as fast as possible
	Models          []string                                         // served by GET /v1/models; empty: any model is accepted and /v1/models lists "gpt-4o-mini","text-embedding-3-small"
	Sleep           func(ctx context.Context, d time.Duration) error // nil: a real timer honouring ctx
}

type fault uint8

const (
	faultNone fault = iota
	faultServerError
	faultRateLimit
	faultHang
	faultDisconnect
	faultNoUsage
	faultMalformed
)

func parseFault(v string) (fault, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "":
		return faultNone, true
	case "500":
		return faultServerError, true
	case "429":
		return faultRateLimit, true
	case "hang":
		return faultHang, true
	case "disconnect":
		return faultDisconnect, true
	case "no_usage":
		return faultNoUsage, true
	case "malformed":
		return faultMalformed, true
	}
	return faultNone, false
}

// malformedBody is what the malformed fault sends in place of JSON.
const malformedBody = `{"id": malformed`

// ServeHTTP answers one request: OpenAI's routes under /v1 (chat
// completions, Responses, embeddings, models), Anthropic's Messages under
// /v1/messages, and Azure OpenAI's URL shape under /openai (deployment
// URLs with the model in the path, an api-version query and an api-key
// header). Client errors (4xx other than 429) are answered at once; every
// other response is delayed by TTFT before its headers.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method, route, deployment := http.MethodPost, "", ""
	proto := protoOpenAI
	switch p := r.URL.Path; {
	case p == "/v1/chat/completions", p == "/v1/embeddings", p == "/v1/responses":
		route = p
	case p == "/v1/messages", p == "/v1/messages/count_tokens":
		route, proto = p, protoAnthropic
	case p == "/v1/models":
		route, method = p, http.MethodGet
	case strings.HasPrefix(p, "/openai/"):
		route, deployment = azureRoute(p)
		if route == "" {
			break
		}
		if r.URL.Query().Get("api-version") == "" {
			writeError(w, http.StatusBadRequest, "Missing required query parameter: api-version", "invalid_request_error", "api-version", "missing_api_version")
			return
		}
		if r.Header.Get("api-key") == "" && r.Header.Get("Authorization") == "" {
			writeError(w, http.StatusUnauthorized, "Access denied due to missing subscription key. Make sure to include the api-key header.", "invalid_request_error", "", "401")
			return
		}
	}
	if route == "" {
		writeError(w, http.StatusNotFound, "Unknown request URL: "+r.Method+" "+r.URL.Path, "invalid_request_error", "", "unknown_url")
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		s.fail(w, proto, http.StatusMethodNotAllowed, "Method "+r.Method+" not allowed for "+r.URL.Path+"; use "+method, "invalid_request_error", "", "method_not_allowed")
		return
	}
	f, ok := parseFault(r.Header.Get(FaultHeader))
	if !ok {
		s.fail(w, proto, http.StatusBadRequest, "Invalid "+FaultHeader+" value "+strconv.Quote(r.Header.Get(FaultHeader))+"; allowed: 500|429|hang|disconnect|no_usage|malformed", "invalid_request_error", "", "invalid_simulate_header")
		return
	}

	// The body is read in full first: besides being needed, on HTTP/1 the
	// server notices a client going away (and cancels the request's
	// context) only once the body has been consumed.
	var body []byte
	if method == http.MethodPost {
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				s.fail(w, proto, http.StatusRequestEntityTooLarge, "Request body larger than "+strconv.Itoa(maxRequestBody)+" bytes", "invalid_request_error", "", "request_too_large")
				return
			}
			s.fail(w, proto, http.StatusBadRequest, "Could not read the request body: "+err.Error(), "invalid_request_error", "", "")
			return
		}
		if deployment != "" {
			// Azure's deployment URL names the model.
			body = withModel(body, deployment)
		}
	}

	ctx := r.Context()
	switch f {
	case faultHang:
		<-ctx.Done()
		return
	case faultServerError:
		if s.sleep(ctx, s.TTFT) != nil {
			return
		}
		s.fail(w, proto, http.StatusInternalServerError, "The simulator failed, as asked by "+FaultHeader+".", "server_error", "", "")
		return
	case faultRateLimit:
		if s.sleep(ctx, s.TTFT) != nil {
			return
		}
		w.Header().Set("Retry-After", "1")
		s.fail(w, proto, http.StatusTooManyRequests, "Rate limit reached, as asked by "+FaultHeader+". Please try again in 1s.", "rate_limit_error", "", "rate_limit_exceeded")
		return
	}

	switch route {
	case "/v1/chat/completions":
		s.chat(w, r, body, f)
	case "/v1/embeddings":
		s.embeddings(w, r, body, f)
	case "/v1/responses":
		s.responses(w, r, body, f)
	case "/v1/messages":
		s.messages(w, r, body, f)
	case "/v1/messages/count_tokens":
		s.countTokens(w, body)
	default:
		s.models(w, r, f)
	}
}

// sleep waits d, or until ctx is done; d ≤ 0 returns at once.
func (s *Simulator) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if s.Sleep != nil {
		return s.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// acceptsModel reports whether the simulator serves model.
func (s *Simulator) acceptsModel(model string) bool {
	if len(s.Models) == 0 {
		return true
	}
	for _, m := range s.Models {
		if m == model {
			return true
		}
	}
	return false
}

// checkModel answers 400 or 404 and reports false when model is missing
// or not served.
func (s *Simulator) checkModel(w http.ResponseWriter, model string) bool {
	if model == "" {
		writeError(w, http.StatusBadRequest, "you must provide a model parameter", "invalid_request_error", "model", "")
		return false
	}
	if !s.acceptsModel(model) {
		writeError(w, http.StatusNotFound, "The model `"+model+"` does not exist or you do not have access to it.", "invalid_request_error", "model", "model_not_found")
		return false
	}
	return true
}

// writeMalformed answers the malformed fault of a non-streamed response.
func (s *Simulator) writeMalformed(w http.ResponseWriter, r *http.Request) {
	if s.sleep(r.Context(), s.TTFT) != nil {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, malformedBody)
}

// --- chat completions ---

type chatRequest struct {
	Model         string        `json:"model"`
	Messages      []chatMessage `json:"messages"`
	Stream        bool          `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int64          `json:"max_tokens"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens"`
	N                   *int            `json:"n"`
	Tools               json.RawMessage `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
}

type chatMessage struct {
	Content json.RawMessage `json:"content"`
}

type contentPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// messageText is the text of a message's content: the string itself, the
// concatenated text parts of an array, "" for null or absent.
func messageText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	switch raw[0] {
	case '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	case '[':
		var parts []contentPart
		if err := json.Unmarshal(raw, &parts); err != nil {
			return "", err
		}
		var b strings.Builder
		for _, p := range parts {
			if p.Type == "text" {
				b.WriteString(p.Text)
			}
		}
		return b.String(), nil
	}
	return "", errors.New("content must be a string, an array of parts or null")
}

// FNV-1a, 32 bits.
const (
	fnvOffset32 uint32 = 2166136261
	fnvPrime32  uint32 = 16777619
)

func fnvAdd(h uint32, s string) uint32 {
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= fnvPrime32
	}
	return h
}

// splitmix64 is the generator of the simulator's words and vectors.
type splitmix64 uint64

func (x *splitmix64) next() uint64 {
	*x += 0x9E3779B97F4A7C15
	z := uint64(*x)
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func (x *splitmix64) word() string { return vocabulary[x.next()%uint64(len(vocabulary))] }

func appendHex8(b []byte, h uint32) []byte {
	const digits = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, digits[(h>>uint(shift))&0xf])
	}
	return b
}

type chatUsage struct {
	PromptTokens            int64             `json:"prompt_tokens"`
	CompletionTokens        int64             `json:"completion_tokens"`
	TotalTokens             int64             `json:"total_tokens"`
	PromptTokensDetails     promptDetails     `json:"prompt_tokens_details"`
	CompletionTokensDetails completionDetails `json:"completion_tokens_details"`
}

type promptDetails struct {
	CachedTokens int64 `json:"cached_tokens"`
}

type completionDetails struct {
	ReasoningTokens int64 `json:"reasoning_tokens"`
}

type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *chatUsage   `json:"usage,omitempty"`
}

type chatChoice struct {
	Index        int             `json:"index"`
	Message      assistantOutput `json:"message"`
	FinishReason string          `json:"finish_reason"`
}

type assistantOutput struct {
	Role      string     `json:"role"`
	Content   *string    `json:"content"`
	ToolCalls []toolCall `json:"tool_calls,omitempty"`
}

type toolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function toolFunction `json:"function"`
}

type toolFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// chatPlan is what a chat completion will answer.
type chatPlan struct {
	id      string
	created int64
	model   string
	hash    uint32
	tokens  int // L, per choice
	n       int
	finish  string
	usage   chatUsage
	// tool, when set, is the function the answer calls (the request
	// forced one), with args its arguments.
	tool, args string
}

func (s *Simulator) chat(w http.ResponseWriter, r *http.Request, body []byte, f fault) {
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "We could not parse the JSON body of your request: "+err.Error(), "invalid_request_error", "", "")
		return
	}
	if len(req.Messages) == 0 {
		writeError(w, http.StatusBadRequest, "[] is too short - 'messages'", "invalid_request_error", "messages", "")
		return
	}
	if !s.checkModel(w, req.Model) {
		return
	}

	texts := make([]string, len(req.Messages))
	h := fnvOffset32
	for i, m := range req.Messages {
		t, err := messageText(m.Content)
		if err != nil {
			writeError(w, http.StatusBadRequest, "Invalid content of messages["+strconv.Itoa(i)+"]: "+err.Error(), "invalid_request_error", "messages", "")
			return
		}
		texts[i] = t
		h = fnvAdd(h, t)
	}

	n := 1
	if req.N != nil {
		n = *req.N
		if n < 1 || n > maxChoices {
			writeError(w, http.StatusBadRequest, "n must be between 1 and "+strconv.Itoa(maxChoices), "invalid_request_error", "n", "")
			return
		}
	}

	length := 16 + int(h%48)
	if vs, ok := r.Header[TokensHeader]; ok {
		v, err := strconv.Atoi(strings.TrimSpace(vs[0]))
		if err != nil || v < 0 || v > maxSimulatedTokens {
			writeError(w, http.StatusBadRequest, "Invalid "+TokensHeader+" value "+strconv.Quote(vs[0])+"; want an integer from 0 to "+strconv.Itoa(maxSimulatedTokens), "invalid_request_error", "", "invalid_simulate_header")
			return
		}
		length = v
	}

	limit := int64(-1)
	for _, c := range [2]struct {
		v    *int64
		name string
	}{{req.MaxTokens, "max_tokens"}, {req.MaxCompletionTokens, "max_completion_tokens"}} {
		if c.v == nil {
			continue
		}
		if *c.v < 0 {
			writeError(w, http.StatusBadRequest, c.name+" must be at least 0", "invalid_request_error", c.name, "")
			return
		}
		if limit < 0 || *c.v < limit {
			limit = *c.v
		}
	}
	finish := "stop"
	if limit >= 0 && int64(length) > limit {
		length = int(limit)
		finish = "length"
	}

	tool := forcedTool(req.Tools, req.ToolChoice, false)
	var args string
	if tool != "" {
		args = toolArguments(h, length)
		length, finish = int(pricing.CountTokens(args)), "tool_calls"
	}
	prompt := pricing.PromptTokens(texts)
	completion := int64(length) * int64(n)
	p := chatPlan{
		tool: tool, args: args,
		id:      string(appendHex8([]byte("chatcmpl-sim-"), h)),
		created: time.Now().Unix(),
		model:   req.Model,
		hash:    h,
		tokens:  length,
		n:       n,
		finish:  finish,
		usage: chatUsage{
			PromptTokens:     prompt,
			CompletionTokens: completion,
			TotalTokens:      prompt + completion,
		},
	}

	if req.Stream {
		includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage && f != faultNoUsage
		s.stream(w, r, &p, includeUsage, f)
		return
	}

	switch f {
	case faultDisconnect:
		panic(http.ErrAbortHandler)
	case faultMalformed:
		s.writeMalformed(w, r)
		return
	}
	rng := splitmix64(h)
	var text strings.Builder
	text.Grow(4 * length)
	for range length {
		text.WriteString(rng.word())
	}
	content := text.String()
	resp := chatCompletion{
		ID:      p.id,
		Object:  "chat.completion",
		Created: p.created,
		Model:   p.model,
		Choices: make([]chatChoice, n),
	}
	for i := range resp.Choices {
		resp.Choices[i] = chatChoice{Index: i, Message: assistantOutput{Role: "assistant", Content: &content}, FinishReason: finish}
		if p.tool != "" {
			resp.Choices[i].Message = assistantOutput{Role: "assistant", ToolCalls: []toolCall{{ID: callID(h), Type: "function", Function: toolFunction{p.tool, p.args}}}}
		}
	}
	if f != faultNoUsage {
		resp.Usage = &p.usage
	}
	if s.sleep(r.Context(), s.TTFT) != nil {
		return
	}
	writeJSON(w, http.StatusOK, &resp)
}

// stream answers a streamed chat completion, honouring the disconnect and
// malformed faults.
func (s *Simulator) stream(w http.ResponseWriter, r *http.Request, p *chatPlan, includeUsage bool, f fault) {
	ctx := r.Context()
	if s.sleep(ctx, s.TTFT) != nil {
		return
	}
	rc := http.NewResponseController(w)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	// Every chunk starts alike: the prefix ends just inside "choices":[.
	model, _ := json.Marshal(p.model)
	prefix := make([]byte, 0, 128+len(model))
	prefix = append(prefix, `data: {"id":"`...)
	prefix = append(prefix, p.id...)
	prefix = append(prefix, `","object":"chat.completion.chunk","created":`...)
	prefix = strconv.AppendInt(prefix, p.created, 10)
	prefix = append(prefix, `,"model":`...)
	prefix = append(prefix, model...)
	prefix = append(prefix, `,"choices":[`...)
	buf := make([]byte, 0, len(prefix)+128)

	send := func(b []byte) bool {
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	choice := func(i int) []byte {
		b := append(buf[:0], prefix...)
		b = append(b, `{"index":`...)
		return strconv.AppendInt(b, int64(i), 10)
	}

	for i := range p.n {
		buf = append(choice(i), `,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`+"\n\n"...)
		if !send(buf) {
			return
		}
	}

	emit := p.tokens
	if f == faultDisconnect || f == faultMalformed {
		emit = p.tokens / 2
		if emit == 0 && p.tokens > 0 {
			emit = 1
		}
	}
	var gap time.Duration
	if s.TokensPerSecond > 0 {
		gap = time.Second / time.Duration(s.TokensPerSecond)
	}
	rng := splitmix64(p.hash)
	if p.tool != "" {
		name, _ := json.Marshal(p.tool)
		for i := range p.n {
			buf = append(choice(i), `,"delta":{"tool_calls":[{"index":0,"id":"`...)
			buf = append(buf, callID(p.hash)...)
			buf = append(buf, `","type":"function","function":{"name":`...)
			buf = append(buf, name...)
			buf = append(buf, `,"arguments":""}}]},"finish_reason":null}]}`+"\n\n"...)
			if !send(buf) {
				return
			}
		}
	}
	for k := range emit {
		if k > 0 && s.sleep(ctx, gap) != nil {
			return
		}
		word := rng.word()
		for i := range p.n {
			if p.tool != "" {
				piece, _ := json.Marshal(argPiece(p.args, k))
				buf = append(choice(i), `,"delta":{"tool_calls":[{"index":0,"function":{"arguments":`...)
				buf = append(buf, piece...)
				buf = append(buf, `}}]},"finish_reason":null}]}`+"\n\n"...)
			} else {
				buf = append(choice(i), `,"delta":{"content":"`...)
				buf = append(buf, word...)
				buf = append(buf, `"},"finish_reason":null}]}`+"\n\n"...)
			}
			if !send(buf) {
				return
			}
		}
	}

	switch f {
	case faultDisconnect:
		panic(http.ErrAbortHandler)
	case faultMalformed:
		send([]byte("data: " + malformedBody + "\n\n"))
		return
	}

	for i := range p.n {
		buf = append(choice(i), `,"delta":{},"finish_reason":"`...)
		buf = append(buf, p.finish...)
		buf = append(buf, `"}]}`+"\n\n"...)
		if !send(buf) {
			return
		}
	}
	if includeUsage {
		usage, _ := json.Marshal(&p.usage)
		buf = append(buf[:0], prefix...)
		buf = append(buf, `],"usage":`...)
		buf = append(buf, usage...)
		buf = append(buf, "}\n\n"...)
		if !send(buf) {
			return
		}
	}
	send([]byte("data: [DONE]\n\n"))
}

// --- embeddings ---

type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
}

// embeddingInput is one input as the simulator sees it: the seed of its
// vector and its tokens.
type embeddingInput struct {
	hash   uint32
	tokens int64
}

func tokenArrayInput(ids []int64) embeddingInput {
	h := fnvOffset32
	var b [8]byte
	for _, id := range ids {
		binary.LittleEndian.PutUint64(b[:], uint64(id))
		for _, c := range b {
			h ^= uint32(c)
			h *= fnvPrime32
		}
	}
	return embeddingInput{hash: h, tokens: int64(len(ids))}
}

// parseEmbeddingInput reads input: a string, an array of strings, an array
// of integers (one tokenized input) or an array of such arrays. Empty
// inputs are refused.
func parseEmbeddingInput(raw json.RawMessage) ([]embeddingInput, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New("'input' is a required property")
	}
	empty := errors.New("'input' must not be empty")
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		if s == "" {
			return nil, empty
		}
		return []embeddingInput{{hash: fnvAdd(fnvOffset32, s), tokens: pricing.CountTokens(s)}}, nil
	case '[':
	default:
		return nil, errors.New("'input' must be a string or an array")
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		if len(strs) == 0 {
			return nil, empty
		}
		if len(strs) > maxEmbeddingInputs {
			return nil, errors.New("'input' has more than " + strconv.Itoa(maxEmbeddingInputs) + " elements")
		}
		in := make([]embeddingInput, len(strs))
		for i, s := range strs {
			if s == "" {
				return nil, errors.New("'input' element " + strconv.Itoa(i) + " must not be empty")
			}
			in[i] = embeddingInput{hash: fnvAdd(fnvOffset32, s), tokens: pricing.CountTokens(s)}
		}
		return in, nil
	}
	var ids []int64
	if err := json.Unmarshal(raw, &ids); err == nil {
		if len(ids) == 0 {
			return nil, empty
		}
		return []embeddingInput{tokenArrayInput(ids)}, nil
	}
	var arrays [][]int64
	if err := json.Unmarshal(raw, &arrays); err != nil {
		return nil, errors.New("'input' must be a string, an array of strings, an array of integers or an array of arrays of integers")
	}
	if len(arrays) == 0 {
		return nil, empty
	}
	if len(arrays) > maxEmbeddingInputs {
		return nil, errors.New("'input' has more than " + strconv.Itoa(maxEmbeddingInputs) + " elements")
	}
	in := make([]embeddingInput, len(arrays))
	for i, a := range arrays {
		if len(a) == 0 {
			return nil, errors.New("'input' element " + strconv.Itoa(i) + " must not be empty")
		}
		in[i] = tokenArrayInput(a)
	}
	return in, nil
}

// embedding fills v with the unit vector seeded by h.
func embedding(v []float32, h uint32) {
	rng := splitmix64(uint64(h)<<32 | uint64(h))
	var norm float64
	for i := range v {
		x := float64(int32(rng.next()>>32)) / (1 << 31) // [-1, 1)
		v[i] = float32(x)
		norm += x * x
	}
	if norm == 0 {
		return
	}
	inv := 1 / math.Sqrt(norm)
	for i := range v {
		v[i] = float32(float64(v[i]) * inv)
	}
}

type embeddingList struct {
	Object string           `json:"object"`
	Data   []embeddingDatum `json:"data"`
	Model  string           `json:"model"`
	Usage  *embeddingUsage  `json:"usage,omitempty"`
}

type embeddingDatum struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32, or a string of base64
}

type embeddingUsage struct {
	PromptTokens int64 `json:"prompt_tokens"`
	TotalTokens  int64 `json:"total_tokens"`
}

func (s *Simulator) embeddings(w http.ResponseWriter, r *http.Request, body []byte, f fault) {
	var req embeddingRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "We could not parse the JSON body of your request: "+err.Error(), "invalid_request_error", "", "")
		return
	}
	inputs, err := parseEmbeddingInput(req.Input)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "invalid_request_error", "input", "")
		return
	}
	if !s.checkModel(w, req.Model) {
		return
	}
	base64Format := false
	switch req.EncodingFormat {
	case "", "float":
	case "base64":
		base64Format = true
	default:
		writeError(w, http.StatusBadRequest, "encoding_format must be float or base64", "invalid_request_error", "encoding_format", "")
		return
	}
	dims := defaultDimensions
	if req.Dimensions != nil {
		dims = *req.Dimensions
		if dims < 1 || dims > maxDimensions {
			writeError(w, http.StatusBadRequest, "dimensions must be between 1 and "+strconv.Itoa(maxDimensions), "invalid_request_error", "dimensions", "")
			return
		}
	}

	switch f {
	case faultDisconnect:
		panic(http.ErrAbortHandler)
	case faultMalformed:
		s.writeMalformed(w, r)
		return
	}

	resp := embeddingList{Object: "list", Data: make([]embeddingDatum, len(inputs)), Model: req.Model}
	var prompt int64
	var raw []byte
	if base64Format {
		raw = make([]byte, 4*dims)
	}
	for i, in := range inputs {
		prompt += in.tokens
		v := make([]float32, dims)
		embedding(v, in.hash)
		resp.Data[i] = embeddingDatum{Object: "embedding", Index: i, Embedding: v}
		if base64Format {
			for j, x := range v {
				binary.LittleEndian.PutUint32(raw[4*j:], math.Float32bits(x))
			}
			resp.Data[i].Embedding = base64.StdEncoding.EncodeToString(raw)
		}
	}
	if f != faultNoUsage {
		resp.Usage = &embeddingUsage{PromptTokens: prompt, TotalTokens: prompt}
	}
	if s.sleep(r.Context(), s.TTFT) != nil {
		return
	}
	writeJSON(w, http.StatusOK, &resp)
}

// --- models ---

type modelList struct {
	Object string  `json:"object"`
	Data   []model `json:"data"`
}

type model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func (s *Simulator) models(w http.ResponseWriter, r *http.Request, f fault) {
	switch f {
	case faultDisconnect:
		panic(http.ErrAbortHandler)
	case faultMalformed:
		s.writeMalformed(w, r)
		return
	}
	ids := s.Models
	if len(ids) == 0 {
		ids = defaultModels
	}
	resp := modelList{Object: "list", Data: make([]model, len(ids))}
	for i, id := range ids {
		resp.Data[i] = model{ID: id, Object: "model", Created: modelsCreated, OwnedBy: "farebox-simulator"}
	}
	if s.sleep(r.Context(), s.TTFT) != nil {
		return
	}
	writeJSON(w, http.StatusOK, &resp)
}

// --- responses ---

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// writeError answers status with an OpenAI error body; an empty param or
// code is written as null.
func writeError(w http.ResponseWriter, status int, message, typ, param, code string) {
	e := errorBody{Error: errorDetail{Message: message, Type: typ}}
	if param != "" {
		e.Error.Param = &param
	}
	if code != "" {
		e.Error.Code = &code
	}
	writeJSON(w, status, &e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // the simulator's own types always marshal
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// ServeLoopback serves h on a free loopback port until the server is
// closed: an in-process simulator, or a benchmark's target.
func ServeLoopback(h http.Handler) (addr string, srv *http.Server, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listening on loopback: %w", err)
	}
	srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return ln.Addr().String(), srv, nil
}
