package gateway

import (
	"bytes"
	"encoding/json"
	"math/big"
	"strconv"

	fb "farebox"
	"farebox/pricing"
)

// request is a client's body, parsed only as far as billing needs; every
// other field is passed on untouched.
type request struct {
	raw    map[string]json.RawMessage
	size   int // bytes of the body
	model  string
	stream bool
	// usageAsked: the client asked for the stream's usage chunk.
	usageAsked bool
	// capField is the output cap the client set (max_completion_tokens or
	// max_tokens), "" for none; capTokens its value.
	capField  string
	capTokens int64
	n         int64 // choices
	images    int   // image parts, each bounded by pricing.ImageTokenBound
	embedding bool
}

// parseChat reads a chat completion request.
func parseChat(body []byte) (*request, error) {
	q, err := parseCommon(body)
	if err != nil {
		return nil, err
	}
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
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(msgs, &messages); err != nil || len(messages) == 0 {
		return nil, fb.Invalid("messages", "messages must be a non-empty array of message objects")
	}
	for _, m := range messages {
		if len(m.Content) == 0 || m.Content[0] != '[' {
			continue
		}
		var parts []struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(m.Content, &parts); err != nil {
			return nil, fb.Invalid("messages", "a message's content must be a string or an array of content parts")
		}
		for _, p := range parts {
			if p.Type == "image_url" || p.Type == "input_image" || p.Type == "image" {
				q.images++
			}
		}
	}
	for _, f := range []string{"max_completion_tokens", "max_tokens"} {
		var v *int64
		if err := optional(q.raw, f, &v); err != nil || (v != nil && *v < 1) {
			return nil, fb.Invalid(f, "%s must be a positive integer", f)
		}
		if v != nil && (q.capField == "" || *v < q.capTokens) {
			q.capField, q.capTokens = f, *v
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
	return q, nil
}

// parseEmbeddings reads an embeddings request.
func parseEmbeddings(body []byte) (*request, error) {
	q, err := parseCommon(body)
	if err != nil {
		return nil, err
	}
	if in, ok := q.raw["input"]; !ok || isNull(in) {
		return nil, fb.Invalid("input", "input is required")
	}
	q.embedding, q.n = true, 1
	return q, nil
}

func parseCommon(body []byte) (*request, error) {
	q := &request{size: len(body)}
	if err := json.Unmarshal(body, &q.raw); err != nil || q.raw == nil {
		return nil, fb.Invalid("", "the body must be a JSON object")
	}
	if err := optional(q.raw, "model", &q.model); err != nil || q.model == "" {
		return nil, fb.Invalid("model", "model is required, a string such as \"gpt-4o-mini\"")
	}
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

// inputBound is a proven upper bound of the request's input tokens.
func (q *request) inputBound() int64 { return pricing.InputBound(q.size, q.images) }

// worstRates are the rates the worst case is held at: an input token may
// turn out cached and an output token reasoning, whichever costs more.
func worstRates(p fb.Rates) fb.Rates {
	return fb.Rates{
		InputPerMTok:  max(p.InputPerMTok, p.CachedInputPerMTok),
		OutputPerMTok: max(p.OutputPerMTok, p.ReasoningPerMTok),
		PerRequest:    p.PerRequest,
	}
}

// worstCase is what a request of in input and out output tokens can cost
// at most.
func worstCase(p fb.Rates, in, out int64) (fb.Amount, error) {
	return pricing.Cost(worstRates(p), fb.Quantities{InputTokens: in, OutputTokens: out, Requests: 1})
}

// affordable is the most output tokens, after in input tokens, that held
// credits pay for at the worst rates: the largest out with
// worstCase(in, out) ≤ held. -1 when not even the input is paid for;
// maxInt64 when output is free.
func affordable(p fb.Rates, held fb.Amount, in int64) int64 {
	w := worstRates(p)
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

// upstreamBody is the request as the deployment gets it: the upstream's
// model name, the output cap (lowered, or set where the client set none),
// and a stream's usage asked for. Everything else is the client's.
func (q *request) upstreamBody(upstream string, capTokens int64) ([]byte, error) {
	out := make(map[string]json.RawMessage, len(q.raw)+2)
	for k, v := range q.raw {
		out[k] = v
	}
	out["model"], _ = json.Marshal(upstream)
	if !q.embedding {
		f := q.capField
		if f == "" {
			f = "max_completion_tokens"
		}
		out[f] = json.RawMessage(strconv.FormatInt(capTokens, 10))
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

// promptEstimate is the gateway's own count of a request's input tokens,
// charged when the upstream reports no usage (see pricing.PromptTokens).
func (q *request) promptEstimate() int64 {
	if q.embedding {
		var n int64
		for _, s := range inputTexts(q.raw["input"]) {
			n += pricing.CountTokens(s)
		}
		return n
	}
	var messages []struct {
		Content json.RawMessage `json:"content"`
	}
	_ = json.Unmarshal(q.raw["messages"], &messages) // checked by parseChat
	texts := make([]string, 0, len(messages))
	for _, m := range messages {
		texts = append(texts, contentText(m.Content))
	}
	return pricing.PromptTokens(texts) + int64(q.images)*pricing.ImageTokenBound
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
