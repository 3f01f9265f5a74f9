package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"

	fb "farebox"
	"farebox/pricing"
	"farebox/routing"
)

// request is a client's body, parsed as far as billing needs: every part
// that can be billed is bounded here, every field is checked against what
// may be forwarded, and the rest is passed on untouched.
type request struct {
	// proto is the protocol the client speaks (routing.ProtoChat, …).
	proto      string
	raw        map[string]json.RawMessage
	size       int // bytes of the body
	model      string
	stream     bool
	usageAsked bool // the client asked for the stream's usage chunk
	// capFields are the output caps the client set (max_completion_tokens,
	// max_tokens); capTokens the smallest of their values, 0 for none.
	capFields []string
	capTokens int64
	n         int64 // choices
	embedding bool
	tools     bool
	// images counts image parts at low [0] and high [1] detail (auto is
	// high): each is held at its model's most, whatever its real size.
	images [2]int64
	// unbounded names the first part that only the model's context
	// window bounds (a file, a stored audio answer), "" when none.
	unbounded string
	// remote names the first image URL a deployment would fetch itself
	// (not a data: URL), "" when none.
	remote string
	// refusable are the fields not forwarded by default, sorted: a
	// deployment serves the request only if it allows all of them.
	refusable []string
	// state names the first part of a Responses request that refers to
	// what the provider keeps (previous_response_id, conversation, a
	// stored item): its input is unknown, so only a deployment that
	// allows it serves it, held at the context window.
	state string
	// Messages: the client's anthropic-version and anthropic-beta
	// features, and the first cache_control (a hint a translation to
	// chat cannot carry).
	version      string
	betas        []string
	cacheControl string
	// lastUser is the text of the last user message (what a sponsored
	// suggestion is decided on) and user the request's user field.
	lastUser string
	user     string
}

// A field check returns nil when the value is one that changes nothing
// the hold does not bound; anything else makes the field refusable.
type fieldCheck func(json.RawMessage) bool

func anyValue(json.RawMessage) bool { return true }

// oneOf accepts null or one of the given JSON values.
func oneOf(vals ...string) fieldCheck {
	return func(b json.RawMessage) bool {
		return isNull(b) || slices.Contains(vals, string(bytes.TrimSpace(b)))
	}
}

// textOnly accepts modalities of text alone: audio output is billed at
// rates the card does not hold.
func textOnly(b json.RawMessage) bool {
	var m []string
	return isNull(b) || json.Unmarshal(b, &m) == nil && len(m) == 1 && m[0] == "text"
}

// chatFields are the chat parameters forwarded by default: those the
// official SDKs send in ordinary use that change neither what a provider
// bills beyond what the hold bounds, nor what it keeps. Left out, among
// others: audio, prediction, web_search_options (billed per call), and
// store or service_tier of a kind that keeps data or costs more.
var chatFields = map[string]fieldCheck{
	"model": anyValue, "messages": anyValue, "stream": anyValue, "stream_options": anyValue,
	"max_tokens": anyValue, "max_completion_tokens": anyValue, "n": anyValue,
	"temperature": anyValue, "top_p": anyValue, "stop": anyValue, "seed": anyValue,
	"presence_penalty": anyValue, "frequency_penalty": anyValue, "logit_bias": anyValue,
	"logprobs": anyValue, "top_logprobs": anyValue, "user": anyValue,
	"tools": anyValue, "tool_choice": anyValue, "parallel_tool_calls": anyValue,
	"functions": anyValue, "function_call": anyValue, "response_format": anyValue,
	"reasoning_effort": anyValue, "verbosity": anyValue, "metadata": anyValue,
	"safety_identifier": anyValue, "prompt_cache_key": anyValue,
	"store":        oneOf("false"),
	"service_tier": oneOf(`"default"`, `"flex"`),
	"modalities":   textOnly,
}

var embeddingFields = map[string]fieldCheck{
	"model": anyValue, "input": anyValue, "encoding_format": anyValue, "dimensions": anyValue, "user": anyValue,
}

// The content part types of a chat message the gateway can bound: text
// by its bytes, an image at its model's most for its detail, audio by its
// bytes (an audio token is a tenth of a second, far more than a byte of
// the base64 that carries it), a file by the context window.
const (
	partText     = "text"
	partImage    = "image_url"
	partAudio    = "input_audio"
	partFile     = "file"
	partRefusal  = "refusal"
	partTypeList = "text, image_url, input_audio, file, refusal"
)

// parseChat reads a chat completion request.
func parseChat(body []byte, _ http.Header) (*request, error) {
	q, err := parseCommon(body, chatFields)
	if err != nil {
		return nil, err
	}
	q.proto = routing.ProtoChat
	if err := optional(q.raw, "stream", &q.stream); err != nil {
		return nil, err
	}
	if so, ok := q.raw["stream_options"]; ok && !isNull(so) {
		var opts struct {
			IncludeUsage *bool `json:"include_usage"`
		}
		if err := json.Unmarshal(so, &opts); err != nil {
			return nil, fb.Invalid("stream_options", "stream_options must be an object such as {\"include_usage\": true}")
		}
		q.usageAsked = opts.IncludeUsage != nil && *opts.IncludeUsage
	}
	msgs, ok := q.raw["messages"]
	if !ok || isNull(msgs) {
		return nil, fb.Invalid("messages", "messages is required")
	}
	var messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
		Audio   json.RawMessage `json:"audio"`
	}
	if err := json.Unmarshal(msgs, &messages); err != nil || len(messages) == 0 {
		return nil, fb.Invalid("messages", "messages must be a non-empty array of message objects")
	}
	for i := len(messages) - 1; i >= 0; i-- {
		if messages[i].Role == "user" {
			q.lastUser = userText(messages[i].Content)
			break
		}
	}
	_ = optional(q.raw, "user", &q.user) // a user that is not a string is the upstream's to refuse
	for i, m := range messages {
		if len(m.Audio) > 0 && !isNull(m.Audio) && q.unbounded == "" {
			// An earlier audio answer, kept by the provider: its tokens
			// are not in the body.
			q.unbounded = fmt.Sprintf("messages[%d].audio", i)
		}
		if err := q.parseContent(i, m.Content); err != nil {
			return nil, err
		}
	}
	for _, f := range []string{"max_completion_tokens", "max_tokens"} {
		var v *int64
		if err := optional(q.raw, f, &v); err != nil || (v != nil && *v < 1) {
			return nil, fb.Invalid(f, "%s must be a positive integer", f)
		}
		if v != nil {
			q.capFields = append(q.capFields, f)
			if q.capTokens == 0 || *v < q.capTokens {
				q.capTokens = *v
			}
		}
	}
	q.n = 1
	var n *int64
	if err := optional(q.raw, "n", &n); err != nil || (n != nil && (*n < 1 || *n > 128)) {
		return nil, fb.Invalid("n", "n must be an integer from 1 to 128")
	}
	if n != nil {
		q.n = *n
	}
	for _, f := range []string{"tools", "functions"} {
		if v, ok := q.raw[f]; ok && !isNull(v) && string(bytes.TrimSpace(v)) != "[]" {
			q.tools = true
		}
	}
	return q, nil
}

// first sets *dst to v unless it names a part already: a request's
// refusal names the first part of a kind.
func first(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// parseContent reads the content of message i: a string, null, or an
// array of parts, each of a type the gateway can bound.
func (q *request) parseContent(i int, c json.RawMessage) error {
	if len(c) == 0 || c[0] != '[' {
		return nil
	}
	var parts []struct {
		Type     string          `json:"type"`
		ImageURL json.RawMessage `json:"image_url"`
	}
	if err := json.Unmarshal(c, &parts); err != nil {
		return fb.Invalid(fmt.Sprintf("messages[%d].content", i), "a message's content must be a string or an array of content parts")
	}
	for j, p := range parts {
		param := fmt.Sprintf("messages[%d].content[%d]", i, j)
		switch p.Type {
		case partText, partAudio, partRefusal:
		case partImage:
			if err := q.parseImage(param+".image_url", p.ImageURL); err != nil {
				return err
			}
		case partFile:
			first(&q.unbounded, param)
		default:
			return fb.Invalid(param+".type", "content part type %q cannot be billed safely here; the gateway takes %s", p.Type, partTypeList)
		}
	}
	return nil
}

func (q *request) parseImage(param string, raw json.RawMessage) error {
	var img struct {
		URL    string `json:"url"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(raw, &img); err != nil {
		if json.Unmarshal(raw, &img.URL) != nil {
			return fb.Invalid(param, "image_url must be an object such as {\"url\": \"https://…\", \"detail\": \"low\"}")
		}
	}
	return q.image(param, img.Detail, img.URL, ".url")
}

// image counts an image part of detail at param, held at its model's most
// for the detail (auto, or none, as high); a URL that is not data: (and
// not "", a provider's own file) is one a deployment would fetch.
func (q *request) image(param, detail, url, urlField string) error {
	switch detail {
	case "low":
		q.images[0]++
	case "", "auto", "high":
		q.images[1]++
	default:
		return fb.Invalid(param+".detail", "detail must be low, high or auto")
	}
	if url != "" && !strings.HasPrefix(url, "data:") && q.remote == "" {
		q.remote = param + urlField
	}
	return nil
}

// parseEmbeddings reads an embeddings request.
func parseEmbeddings(body []byte, _ http.Header) (*request, error) {
	q, err := parseCommon(body, embeddingFields)
	if err != nil {
		return nil, err
	}
	q.proto = routing.ProtoEmbeddings
	if in, ok := q.raw["input"]; !ok || isNull(in) {
		return nil, fb.Invalid("input", "input is required")
	}
	q.embedding, q.n = true, 1
	return q, nil
}

func parseCommon(body []byte, fields map[string]fieldCheck) (*request, error) {
	q := &request{size: len(body)}
	if err := json.Unmarshal(body, &q.raw); err != nil || q.raw == nil {
		return nil, fb.Invalid("", "the body must be a JSON object")
	}
	if err := optional(q.raw, "model", &q.model); err != nil || q.model == "" {
		return nil, fb.Invalid("model", "model is required, a string such as \"gpt-4o-mini\"")
	}
	for f, v := range q.raw {
		if ok := fields[f]; ok == nil || !ok(v) {
			q.refusable = append(q.refusable, f)
		}
	}
	slices.Sort(q.refusable)
	return q, nil
}

// optional decodes field f into v when it is present and not null.
func optional(raw map[string]json.RawMessage, f string, v any) error {
	b, ok := raw[f]
	if !ok || isNull(b) {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fb.Invalid(f, "%s has the wrong type", f)
	}
	return nil
}

func isNull(b json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(b), []byte("null")) }

// wireOf is the protocol deployment d is sent a request of protocol p in:
// p itself where d speaks it, else the one a translation reaches (chat
// to a Messages upstream, Messages to a chat upstream); "" when none.
func wireOf(p string, d *routing.Deployment) string {
	switch {
	case d.Speaks(p):
		return p
	case p == routing.ProtoChat && d.Speaks(routing.ProtoMessages):
		return routing.ProtoMessages
	case p == routing.ProtoMessages && d.Speaks(routing.ProtoChat):
		return routing.ProtoChat
	}
	return ""
}

// servable says why deployment d cannot serve the request, nil when it
// can: a field it does not take, an image URL it would fetch inside the
// operator's network, a part only a context window it lacks bounds, state
// kept by the provider it does not allow, an anthropic-beta feature it
// does not take, or a request a translation to its protocol cannot carry.
func (q *request) servable(d *routing.Deployment) *fb.Error {
	wire := wireOf(q.proto, d)
	for _, f := range q.refusable {
		if !d.AllowFields[f] {
			return fb.Invalid(f, "%s is not forwarded: it (or this value of it) may change what the provider bills or keeps beyond what the request is held for; an operator may allow it per deployment", f)
		}
	}
	if q.remote != "" && d.Hosting == routing.HostingSelf {
		return fb.Invalid(q.remote, "this model is served on the operator's own servers, which take images only as data: URLs")
	}
	if q.unbounded != "" && d.Limits.ContextWindow <= 0 {
		return fb.Invalid(q.unbounded, "the tokens of this part are known only to the provider, and the model's context window, which would bound them, is not configured")
	}
	if q.state != "" {
		if !d.ProviderState {
			return fb.Invalid(q.state, "this names state the provider keeps, whose tokens only the provider knows; this model's deployment does not take it (an operator may allow it: provider_state), so send the whole conversation instead")
		}
		if d.Limits.ContextWindow <= 0 {
			return fb.Invalid(q.state, "this names state the provider keeps, whose tokens only the model's context window would bound, and it is not configured")
		}
	}
	for _, b := range q.betas {
		if !defaultBetas[b] && !d.AllowBetas[b] {
			return fb.Invalid("anthropic-beta", "the anthropic-beta feature %q is not passed on: it may change what the provider bills beyond what the request is held for (an operator may allow it per deployment)", b)
		}
	}
	if wire != q.proto {
		if _, err := q.translate(d, wire, 1); err != nil {
			var fe *fb.Error
			if errors.As(err, &fe) {
				return fe
			}
			return fb.Invalid("", "%v", err)
		}
	}
	return nil
}

// inputBound is a proven upper bound of the input tokens deployment d can
// bill for the request: every token of a text is at least a byte (and the
// JSON spends more bytes on each message than a chat template spends
// tokens), each image part is billed at most its model's bound for its
// detail, the provider's tool prompt is added when tools are present, and
// no prompt is billed beyond the context window (a longer one is refused).
// A part only the window bounds makes the window the bound.
func (q *request) inputBound(d *routing.Deployment) int64 {
	lim := d.Limits
	if q.unbounded != "" || q.state != "" {
		return lim.ContextWindow
	}
	n := int64(q.size) + q.images[0]*lim.Image.Low + q.images[1]*lim.Image.High
	if q.tools {
		n += d.ToolOverhead
	}
	if lim.ContextWindow > 0 {
		n = min(n, lim.ContextWindow)
	}
	return n
}

// worstRates are the rates the worst case is held at: an input token may
// turn out cached (or, where the upstream speaks Messages, written to the
// cache) and an output token reasoning, whichever costs more.
func worstRates(p fb.Rates, cacheWrites bool) fb.Rates {
	in := max(p.InputPerMTok, p.CachedInputPerMTok)
	if cacheWrites {
		in = max(in, p.CacheWritePerMTok)
	}
	return fb.Rates{
		InputPerMTok:  in,
		OutputPerMTok: max(p.OutputPerMTok, p.ReasoningPerMTok),
		PerRequest:    p.PerRequest,
	}
}

// cacheWrites says whether deployment d may bill the request cache writes:
// only a Messages upstream does.
func (q *request) cacheWrites(d *routing.Deployment) bool {
	return wireOf(q.proto, d) == routing.ProtoMessages
}

// worstCase is what a request of in input and out output tokens can cost
// at most.
func worstCase(p fb.Rates, cacheWrites bool, in, out int64) (fb.Amount, error) {
	return pricing.Cost(worstRates(p, cacheWrites), fb.Quantities{InputTokens: in, OutputTokens: out, Requests: 1})
}

// affordable is the most output tokens, after in input tokens, that held
// credits pay for at the worst rates: the largest out with
// worstCase(in, out) ≤ held. -1 when not even the input is paid for;
// maxInt64 when output is free.
func affordable(p fb.Rates, cacheWrites bool, held fb.Amount, in int64) int64 {
	w := worstRates(p, cacheWrites)
	million := big.NewInt(fb.Micro)
	// Room in 10⁻⁶ micro-credits: held×10⁶ − in×rate − 10⁶×per-request.
	room := new(big.Int).Mul(big.NewInt(int64(held)), million)
	room.Sub(room, new(big.Int).Mul(big.NewInt(in), big.NewInt(int64(w.InputPerMTok))))
	room.Sub(room, new(big.Int).Mul(big.NewInt(int64(w.PerRequest)), million))
	if room.Sign() < 0 {
		return -1
	}
	if w.OutputPerMTok == 0 {
		return 1<<63 - 1
	}
	room.Quo(room, big.NewInt(int64(w.OutputPerMTok)))
	if !room.IsInt64() {
		return 1<<63 - 1
	}
	return room.Int64()
}

// upstreamBody is the request as deployment d gets it, in the protocol
// wire it speaks: the client's own, rewritten (see rewrite), or a faithful
// translation.
func (q *request) upstreamBody(d *routing.Deployment, wire string, capTokens int64) ([]byte, error) {
	if wire != q.proto {
		return q.translate(d, wire, capTokens)
	}
	switch q.proto {
	case routing.ProtoResponses:
		return q.rewrite(d, capTokens, "max_output_tokens")
	case routing.ProtoMessages:
		return q.rewrite(d, capTokens, "max_tokens")
	}
	return q.chatBody(d, capTokens)
}

// rewrite is a Responses or Messages request as d gets it: d's name for
// the model and the held cap in the protocol's one cap field.
func (q *request) rewrite(d *routing.Deployment, capTokens int64, capField string) ([]byte, error) {
	out := make(map[string]json.RawMessage, len(q.raw)+1)
	for k, v := range q.raw {
		out[k] = v
	}
	out["model"], _ = json.Marshal(d.Upstream)
	out[capField] = jsonInt(capTokens)
	return json.Marshal(out)
}

// chatBody is a chat or embeddings request as d gets it: d's name for the
// model, the held output cap written into every cap field the client set
// (or, when it set none, the one d expects), and a stream's usage asked
// for. Everything else is the client's.
func (q *request) chatBody(d *routing.Deployment, capTokens int64) ([]byte, error) {
	out := make(map[string]json.RawMessage, len(q.raw)+2)
	for k, v := range q.raw {
		out[k] = v
	}
	out["model"], _ = json.Marshal(d.Upstream)
	if !q.embedding {
		fields := q.capFields
		if len(fields) == 0 {
			switch d.CapField {
			case routing.CapBoth:
				fields = []string{routing.CapMaxCompletionTokens, routing.CapMaxTokens}
			case routing.CapMaxTokens:
				fields = []string{routing.CapMaxTokens}
			default:
				fields = []string{routing.CapMaxCompletionTokens}
			}
		}
		for _, f := range fields {
			out[f] = json.RawMessage(strconv.FormatInt(capTokens, 10))
		}
	}
	if q.stream {
		opts := map[string]json.RawMessage{}
		if so, ok := q.raw["stream_options"]; ok && !isNull(so) {
			if err := json.Unmarshal(so, &opts); err != nil {
				return nil, fb.Invalid("stream_options", "stream_options must be an object")
			}
		}
		opts["include_usage"] = json.RawMessage("true")
		out["stream_options"], _ = json.Marshal(opts)
	}
	return json.Marshal(out)
}

// usageJSON is the usage object of OpenAI's chat and embeddings answers.
type usageJSON struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

// quantities splits reported usage into what is priced: cached input and
// reasoning output are parts of the prompt and completion counts. Numbers
// that do not add up are clamped so that nothing is negative.
func (u *usageJSON) quantities() fb.Quantities {
	q := fb.Quantities{Requests: 1}
	prompt, completion := max(u.PromptTokens, 0), max(u.CompletionTokens, 0)
	var cached, reasoning int64
	if u.PromptTokensDetails != nil {
		cached = min(max(u.PromptTokensDetails.CachedTokens, 0), prompt)
	}
	if u.CompletionTokensDetails != nil {
		reasoning = min(max(u.CompletionTokensDetails.ReasoningTokens, 0), completion)
	}
	q.InputTokens, q.CachedInputTokens = prompt-cached, cached
	q.OutputTokens, q.ReasoningTokens = completion-reasoning, reasoning
	return q
}

// promptEstimate is the gateway's own count of a request's input tokens
// on deployment d, charged when the upstream reports no usage (see
// pricing.PromptTokens): images at d's bound, never above what was held.
func (q *request) promptEstimate(d *routing.Deployment) int64 {
	var n int64
	switch {
	case q.embedding:
		for _, s := range inputTexts(q.raw["input"]) {
			n += pricing.CountTokens(s)
		}
	case q.proto == routing.ProtoResponses || q.proto == routing.ProtoMessages:
		// Every string of the prompt's fields, as text.
		var texts []string
		for _, f := range [...]string{"input", "instructions", "messages", "system"} {
			texts = appendStrings(texts, q.raw[f])
		}
		n = pricing.PromptTokens(texts) + q.images[0]*d.Limits.Image.Low + q.images[1]*d.Limits.Image.High
	default:
		var messages []struct {
			Content json.RawMessage `json:"content"`
		}
		_ = json.Unmarshal(q.raw["messages"], &messages) // checked by parseChat
		texts := make([]string, 0, len(messages))
		for _, m := range messages {
			texts = append(texts, contentText(m.Content))
		}
		n = pricing.PromptTokens(texts) + q.images[0]*d.Limits.Image.Low + q.images[1]*d.Limits.Image.High
	}
	return min(n, q.inputBound(d))
}

// appendStrings appends the strings in a JSON value (its keys aside).
func appendStrings(out []string, v json.RawMessage) []string {
	if len(v) == 0 {
		return out
	}
	var x any
	if json.Unmarshal(v, &x) != nil {
		return out
	}
	var walk func(any)
	walk = func(x any) {
		switch t := x.(type) {
		case string:
			out = append(out, t)
		case []any:
			for _, e := range t {
				walk(e)
			}
		case map[string]any:
			for k, e := range t {
				if k != "type" && k != "role" && k != "id" {
					walk(e)
				}
			}
		}
	}
	walk(x)
	return out
}

// contentText is a message content's text: the string, or the text parts.
func contentText(c json.RawMessage) string {
	var s string
	if json.Unmarshal(c, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	_ = json.Unmarshal(c, &parts)
	var b []byte
	for _, p := range parts {
		if p.Type == "text" {
			b = append(b, p.Text...)
		}
	}
	return string(b)
}

// userText is a message content's text as a sponsored suggestion reads
// it: the string, or the text parts one a line.
func userText(c json.RawMessage) string {
	var s string
	if json.Unmarshal(c, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	_ = json.Unmarshal(c, &parts)
	var texts []string
	for _, p := range parts {
		if p.Type == "text" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n")
}

// inputTexts lists an embeddings input: a string, strings, or token
// arrays (each token counted as four bytes, one token).
func inputTexts(in json.RawMessage) []string {
	var s string
	if json.Unmarshal(in, &s) == nil {
		return []string{s}
	}
	var ss []string
	if json.Unmarshal(in, &ss) == nil {
		return ss
	}
	var toks [][]int64
	if json.Unmarshal(in, &toks) != nil {
		var one []int64
		if json.Unmarshal(in, &one) == nil {
			toks = [][]int64{one}
		}
	}
	out := make([]string, len(toks))
	for i, t := range toks {
		out[i] = string(make([]byte, 4*len(t)))
	}
	return out
}
