package simulator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"farebox/pricing"
)

// --- helpers ---

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// do sends a request and reads the whole response.
func do(t *testing.T, ctx context.Context, srv *httptest.Server, method, path, body string, hdr map[string]string) (*http.Response, []byte, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func mustDo(t *testing.T, srv *httptest.Server, method, path, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	resp, b, err := do(t, context.Background(), srv, method, path, body, hdr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp, b
}

// sseEvents splits an event stream into the payloads of its data lines. It
// returns the events read before an error, and the error (nil at EOF).
func sseEvents(r io.Reader) ([]string, error) {
	var events []string
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && line == "" {
				return events, nil
			}
			if errors.Is(err, io.EOF) {
				return events, io.ErrUnexpectedEOF
			}
			return events, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			return events, fmt.Errorf("not a data line: %q", line)
		}
		events = append(events, data)
	}
}

type apiErr struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func decodeErr(t *testing.T, b []byte) apiErr {
	t.Helper()
	var e apiErr
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body %q: %v", b, err)
	}
	if e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("error body %s lacks message or type", b)
	}
	return e
}

// expectedLength is L without the tokens header, computed independently
// with hash/fnv.
func expectedLength(texts []string) (int, uint32) {
	h := fnv.New32a()
	for _, t := range texts {
		h.Write([]byte(t))
	}
	sum := h.Sum32()
	return 16 + int(sum%48), sum
}

// words splits a simulated completion into its tokens, checking that
// each counts as one.
func words(t *testing.T, content string) []string {
	t.Helper()
	if content == "" {
		return nil
	}
	if !strings.HasPrefix(content, " ") {
		t.Fatalf("content %q does not start with a space", content)
	}
	ws := strings.Split(content[1:], " ")
	for i, w := range ws {
		ws[i] = " " + w
		if pricing.CountTokens(ws[i]) != 1 || len(ws[i]) > 4 || len(ws[i]) < 2 {
			t.Fatalf("token %q is not one token", ws[i])
		}
	}
	return ws
}

type usageJSON struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails *struct {
		CachedTokens *int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens *int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

func checkUsage(t *testing.T, u *usageJSON, prompt, completion int64) {
	t.Helper()
	if u == nil {
		t.Fatal("no usage")
	}
	if u.PromptTokens != prompt || u.CompletionTokens != completion || u.TotalTokens != prompt+completion {
		t.Fatalf("usage %+v, want prompt %d completion %d", *u, prompt, completion)
	}
	if u.PromptTokensDetails == nil || u.PromptTokensDetails.CachedTokens == nil || *u.PromptTokensDetails.CachedTokens != 0 {
		t.Fatal("usage lacks prompt_tokens_details.cached_tokens = 0")
	}
	if u.CompletionTokensDetails == nil || u.CompletionTokensDetails.ReasoningTokens == nil || *u.CompletionTokensDetails.ReasoningTokens != 0 {
		t.Fatal("usage lacks completion_tokens_details.reasoning_tokens = 0")
	}
}

type completionJSON struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usageJSON `json:"usage"`
}

type chunkJSON struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Role    *string `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usageJSON `json:"usage"`
}

// streamResult is a parsed chat stream.
type streamResult struct {
	roles    []int    // role chunks per choice
	contents []string // concatenated content per choice
	deltas   []int    // non-empty content deltas per choice
	finish   []string // finish reasons per choice
	usage    *usageJSON
	usages   int
	done     bool
	after    int // events after [DONE]
	chunks   []chunkJSON
	raw      []string
}

func parseStream(t *testing.T, events []string, n int) streamResult {
	t.Helper()
	res := streamResult{roles: make([]int, n), contents: make([]string, n), deltas: make([]int, n), finish: make([]string, n), raw: events}
	for _, e := range events {
		if res.done {
			res.after++
			continue
		}
		if e == "[DONE]" {
			res.done = true
			continue
		}
		var c chunkJSON
		if err := json.Unmarshal([]byte(e), &c); err != nil {
			t.Fatalf("chunk %q: %v", e, err)
		}
		if c.Object != "chat.completion.chunk" {
			t.Fatalf("chunk object %q", c.Object)
		}
		res.chunks = append(res.chunks, c)
		if c.Usage != nil {
			res.usages++
			res.usage = c.Usage
			if len(c.Choices) != 0 {
				t.Fatalf("usage chunk with choices: %s", e)
			}
			if !strings.Contains(e, `"choices":[]`) {
				t.Fatalf("usage chunk without an empty choices array: %s", e)
			}
			continue
		}
		if len(c.Choices) != 1 {
			t.Fatalf("chunk with %d choices: %s", len(c.Choices), e)
		}
		ch := c.Choices[0]
		if ch.Index < 0 || ch.Index >= n {
			t.Fatalf("choice index %d", ch.Index)
		}
		if ch.Delta.Role != nil {
			if *ch.Delta.Role != "assistant" || ch.Delta.Content == nil || *ch.Delta.Content != "" {
				t.Fatalf("role chunk %s", e)
			}
			res.roles[ch.Index]++
		} else if ch.Delta.Content != nil && *ch.Delta.Content != "" {
			if res.deltas[ch.Index] == 0 && res.roles[ch.Index] == 0 {
				t.Fatal("content before the role chunk")
			}
			if pricing.CountTokens(*ch.Delta.Content) != 1 {
				t.Fatalf("delta %q is not one token", *ch.Delta.Content)
			}
			res.deltas[ch.Index]++
			res.contents[ch.Index] += *ch.Delta.Content
		}
		if ch.FinishReason != nil {
			if ch.Delta.Role != nil || ch.Delta.Content != nil {
				t.Fatalf("finish chunk with a non-empty delta: %s", e)
			}
			res.finish[ch.Index] = *ch.FinishReason
		} else if !strings.Contains(e, `"finish_reason":null`) {
			t.Fatalf("chunk without finish_reason null: %s", e)
		}
	}
	return res
}

func chatBody(stream, includeUsage bool, extra string, msgs ...string) string {
	var b strings.Builder
	b.WriteString(`{"model":"gpt-4o-mini","messages":[`)
	for i, m := range msgs {
		if i > 0 {
			b.WriteByte(',')
		}
		s, _ := json.Marshal(m)
		fmt.Fprintf(&b, `{"role":"user","content":%s}`, s)
	}
	b.WriteString(`]`)
	if stream {
		b.WriteString(`,"stream":true`)
		if includeUsage {
			b.WriteString(`,"stream_options":{"include_usage":true}`)
		}
	}
	b.WriteString(extra)
	b.WriteString(`}`)
	return b.String()
}

// --- chat, non-streamed ---

func TestSimulatorChatNonStream(t *testing.T) {
	srv := newServer(t, &Simulator{})
	defaultTexts := []string{"You are terse.", "Say hello to the simulator."}
	defL, _ := expectedLength(defaultTexts)

	tests := []struct {
		name     string
		body     string
		hdr      map[string]string
		texts    []string
		length   int
		n        int
		finish   string
		idTokens bool // the id's hash is that of texts
	}{
		{name: "default length", body: chatBody(false, false, "", defaultTexts...), texts: defaultTexts, length: defL, n: 1, finish: "stop"},
		{name: "header tokens", body: chatBody(false, false, "", "hi"), hdr: map[string]string{TokensHeader: "5"}, texts: []string{"hi"}, length: 5, n: 1, finish: "stop"},
		{name: "header zero", body: chatBody(false, false, "", "hi"), hdr: map[string]string{TokensHeader: "0"}, texts: []string{"hi"}, length: 0, n: 1, finish: "stop"},
		{name: "max_tokens caps", body: chatBody(false, false, `,"max_tokens":3`, "hi"), hdr: map[string]string{TokensHeader: "10"}, texts: []string{"hi"}, length: 3, n: 1, finish: "length"},
		{name: "smaller of both caps", body: chatBody(false, false, `,"max_tokens":7,"max_completion_tokens":4`, "hi"), hdr: map[string]string{TokensHeader: "10"}, texts: []string{"hi"}, length: 4, n: 1, finish: "length"},
		{name: "max_completion_tokens caps", body: chatBody(false, false, `,"max_completion_tokens":2,"max_tokens":9`, "hi"), hdr: map[string]string{TokensHeader: "10"}, texts: []string{"hi"}, length: 2, n: 1, finish: "length"},
		{name: "cap equal to length", body: chatBody(false, false, `,"max_tokens":10`, "hi"), hdr: map[string]string{TokensHeader: "10"}, texts: []string{"hi"}, length: 10, n: 1, finish: "stop"},
		{name: "cap above default", body: chatBody(false, false, `,"max_tokens":1000`, defaultTexts...), texts: defaultTexts, length: defL, n: 1, finish: "stop"},
		{name: "n choices", body: chatBody(false, false, `,"n":3`, "hi"), hdr: map[string]string{TokensHeader: "6"}, texts: []string{"hi"}, length: 6, n: 3, finish: "stop"},
		{
			name:   "parts and null content",
			body:   `{"model":"m","messages":[{"role":"system","content":null},{"role":"user"},{"role":"user","content":[{"type":"text","text":"look at "},{"type":"image_url","image_url":{"url":"data:x"}},{"type":"text","text":"this picture"}]}]}`,
			texts:  []string{"", "", "look at this picture"},
			length: func() int { l, _ := expectedLength([]string{"look at this picture"}); return l }(),
			n:      1, finish: "stop",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := mustDo(t, srv, "POST", "/v1/chat/completions", tc.body, tc.hdr)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			var c completionJSON
			if err := json.Unmarshal(b, &c); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			_, h := expectedLength(tc.texts)
			if want := fmt.Sprintf("chatcmpl-sim-%08x", h); c.ID != want {
				t.Errorf("id %q, want %q", c.ID, want)
			}
			if c.Object != "chat.completion" || c.Created == 0 {
				t.Errorf("object %q created %d", c.Object, c.Created)
			}
			var req struct{ Model string }
			_ = json.Unmarshal([]byte(tc.body), &req)
			if c.Model != req.Model {
				t.Errorf("model %q, want %q", c.Model, req.Model)
			}
			if len(c.Choices) != tc.n {
				t.Fatalf("%d choices, want %d", len(c.Choices), tc.n)
			}
			for i, ch := range c.Choices {
				if ch.Index != i || ch.Message.Role != "assistant" || ch.FinishReason != tc.finish {
					t.Errorf("choice %d: %+v, want finish %q", i, ch, tc.finish)
				}
				if got := len(words(t, ch.Message.Content)); got != tc.length {
					t.Errorf("choice %d has %d tokens, want %d", i, got, tc.length)
				}
				if ch.Message.Content != c.Choices[0].Message.Content {
					t.Errorf("choice %d differs from choice 0", i)
				}
			}
			checkUsage(t, c.Usage, pricing.PromptTokens(tc.texts), int64(tc.length*tc.n))
		})
	}
}

// The length without the header spans 16..63 and depends on the text.
func TestSimulatorChatDefaultLengthRange(t *testing.T) {
	srv := newServer(t, &Simulator{})
	seen := map[int]bool{}
	for i := range 40 {
		msg := fmt.Sprintf("message number %d", i)
		_, b := mustDo(t, srv, "POST", "/v1/chat/completions", chatBody(false, false, "", msg), nil)
		var c completionJSON
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		l := len(words(t, c.Choices[0].Message.Content))
		want, _ := expectedLength([]string{msg})
		if l != want || l < 16 || l > 63 || c.Usage.CompletionTokens != int64(l) {
			t.Fatalf("%q: %d tokens, usage %d, want %d", msg, l, c.Usage.CompletionTokens, want)
		}
		seen[l] = true
	}
	if len(seen) < 5 {
		t.Fatalf("only %d distinct lengths over 40 texts", len(seen))
	}
}

// --- chat, streamed ---

func TestSimulatorChatStream(t *testing.T) {
	srv := newServer(t, &Simulator{})
	texts := []string{"Stream me a story", "about a bus"}
	defL, _ := expectedLength(texts)
	tests := []struct {
		name         string
		includeUsage bool
		extra        string
		hdr          map[string]string
		length, n    int
		finish       string
	}{
		{name: "no usage asked", length: defL, n: 1, finish: "stop"},
		{name: "include usage", includeUsage: true, length: defL, n: 1, finish: "stop"},
		{name: "header tokens", includeUsage: true, hdr: map[string]string{TokensHeader: "9"}, length: 9, n: 1, finish: "stop"},
		{name: "zero tokens", includeUsage: true, hdr: map[string]string{TokensHeader: "0"}, length: 0, n: 1, finish: "stop"},
		{name: "capped", includeUsage: true, extra: `,"max_tokens":5`, length: 5, n: 1, finish: "length"},
		{name: "two choices", includeUsage: true, extra: `,"n":2`, hdr: map[string]string{TokensHeader: "7"}, length: 7, n: 2, finish: "stop"},
		{name: "include_usage false", extra: `,"stream_options":{"include_usage":false}`, length: defL, n: 1, finish: "stop"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := chatBody(true, tc.includeUsage, tc.extra, texts...)
			resp, b := mustDo(t, srv, "POST", "/v1/chat/completions", body, tc.hdr)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Fatalf("Content-Type %q", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
				t.Fatalf("Cache-Control %q", cc)
			}
			if !bytes.HasSuffix(b, []byte("data: [DONE]\n\n")) {
				t.Fatalf("stream does not end with [DONE]: %q", b[max(0, len(b)-40):])
			}
			events, err := sseEvents(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			res := parseStream(t, events, tc.n)
			if !res.done || res.after != 0 {
				t.Fatalf("done %v, %d events after [DONE]", res.done, res.after)
			}
			// role chunks come first, one per choice
			for i := range tc.n {
				if res.roles[i] != 1 || res.chunks[i].Choices[0].Delta.Role == nil {
					t.Fatalf("choice %d: %d role chunks, or not first", i, res.roles[i])
				}
				if res.deltas[i] != tc.length {
					t.Errorf("choice %d: %d content deltas, want %d", i, res.deltas[i], tc.length)
				}
				if res.finish[i] != tc.finish {
					t.Errorf("choice %d: finish %q, want %q", i, res.finish[i], tc.finish)
				}
				if res.contents[i] != res.contents[0] {
					t.Errorf("choice %d differs from choice 0", i)
				}
			}
			wantUsage := tc.includeUsage
			if wantUsage != (res.usages == 1) || res.usages > 1 {
				t.Fatalf("%d usage chunks, include_usage %v", res.usages, tc.includeUsage)
			}
			if wantUsage {
				checkUsage(t, res.usage, pricing.PromptTokens(texts), int64(tc.length*tc.n))
				if last := res.chunks[len(res.chunks)-1]; last.Usage == nil {
					t.Fatal("the usage chunk is not the last before [DONE]")
				}
			}
			_, h := expectedLength(texts)
			for _, c := range res.chunks {
				if c.ID != fmt.Sprintf("chatcmpl-sim-%08x", h) || c.Model != "gpt-4o-mini" || c.Created == 0 {
					t.Fatalf("chunk header %q %q %d", c.ID, c.Model, c.Created)
				}
			}

			// The stream says what the plain completion says.
			plain := strings.Replace(body, `"stream":true`, `"stream":false`, 1)
			_, pb := mustDo(t, srv, "POST", "/v1/chat/completions", plain, tc.hdr)
			var c completionJSON
			if err := json.Unmarshal(pb, &c); err != nil {
				t.Fatal(err)
			}
			if c.Choices[0].Message.Content != res.contents[0] {
				t.Fatalf("stream %q, plain %q", res.contents[0], c.Choices[0].Message.Content)
			}
		})
	}
}

// Each event reaches the client at once: the simulator is held between
// tokens until the client has read the first token.
func TestSimulatorChatStreamFlushes(t *testing.T) {
	gate := make(chan struct{})
	sim := &Simulator{TokensPerSecond: 10, Sleep: func(ctx context.Context, d time.Duration) error {
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	srv := newServer(t, sim)
	req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(chatBody(true, false, "", "hi")))
	req.Header.Set(TokensHeader, "3")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	readEvent := func() string {
		t.Helper()
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if blank, err := br.ReadString('\n'); err != nil || blank != "\n" {
			t.Fatalf("event not followed by a blank line: %q %v", blank, err)
		}
		return line
	}
	done := make(chan string, 2)
	go func() {
		done <- readEvent() // role
		done <- readEvent() // first token
	}()
	for i := range 2 {
		select {
		case ev := <-done:
			if i == 1 && !strings.Contains(ev, `"content":" `) {
				t.Fatalf("second event %q is not a token", ev)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("event not flushed before the pacing sleep")
		}
	}
	close(gate)
	rest, err := sseEvents(br)
	if err != nil {
		t.Fatal(err)
	}
	if rest[len(rest)-1] != "[DONE]" {
		t.Fatalf("last event %q", rest[len(rest)-1])
	}
}

// TTFT is slept once before the headers, and 1s/TPS between tokens.
func TestSimulatorPacing(t *testing.T) {
	var mu sync.Mutex
	var slept []time.Duration
	sim := &Simulator{TTFT: 250 * time.Millisecond, TokensPerSecond: 100, Sleep: func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		slept = append(slept, d)
		mu.Unlock()
		return nil
	}}
	srv := newServer(t, sim)
	check := func(t *testing.T, want []time.Duration) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if fmt.Sprint(slept) != fmt.Sprint(want) {
			t.Fatalf("slept %v, want %v", slept, want)
		}
		slept = nil
	}

	t.Run("stream", func(t *testing.T) {
		_, b := mustDo(t, srv, "POST", "/v1/chat/completions", chatBody(true, false, `,"n":2`, "x"), map[string]string{TokensHeader: "4"})
		if !bytes.HasSuffix(b, []byte("[DONE]\n\n")) {
			t.Fatalf("body %s", b)
		}
		ms := 10 * time.Millisecond
		check(t, []time.Duration{250 * time.Millisecond, ms, ms, ms})
	})
	t.Run("plain", func(t *testing.T) {
		mustDo(t, srv, "POST", "/v1/chat/completions", chatBody(false, false, "", "x"), nil)
		check(t, []time.Duration{250 * time.Millisecond})
	})
	t.Run("client error", func(t *testing.T) {
		mustDo(t, srv, "POST", "/v1/chat/completions", `{`, nil)
		check(t, nil)
	})

	// The default Sleep really waits.
	realSrv := newServer(t, &Simulator{TTFT: 30 * time.Millisecond, TokensPerSecond: 200})
	start := time.Now()
	mustDo(t, realSrv, "POST", "/v1/chat/completions", chatBody(true, false, "", "x"), map[string]string{TokensHeader: "5"})
	if el := time.Since(start); el < 30*time.Millisecond+4*5*time.Millisecond {
		t.Fatalf("took %v, want at least 50ms", el)
	}
}

// --- errors ---

func TestSimulatorRequestErrors(t *testing.T) {
	srv := newServer(t, &Simulator{})
	limited := newServer(t, &Simulator{Models: []string{"gpt-4o-mini", "text-embedding-3-small"}})
	tests := []struct {
		name             string
		srv              *httptest.Server
		method, path     string
		body             string
		hdr              map[string]string
		status           int
		param, code, msg string
	}{
		{name: "bad json", method: "POST", path: "/v1/chat/completions", body: `{"model":`, status: 400},
		{name: "no messages", method: "POST", path: "/v1/chat/completions", body: `{"model":"m"}`, status: 400, param: "messages"},
		{name: "empty messages", method: "POST", path: "/v1/chat/completions", body: `{"model":"m","messages":[]}`, status: 400, param: "messages"},
		{name: "no model", method: "POST", path: "/v1/chat/completions", body: `{"messages":[{"role":"user","content":"x"}]}`, status: 400, param: "model"},
		{name: "bad content", method: "POST", path: "/v1/chat/completions", body: `{"model":"m","messages":[{"role":"user","content":3}]}`, status: 400},
		{name: "n zero", method: "POST", path: "/v1/chat/completions", body: chatBody(false, false, `,"n":0`, "x"), status: 400, param: "n"},
		{name: "negative cap", method: "POST", path: "/v1/chat/completions", body: chatBody(false, false, `,"max_tokens":-1`, "x"), status: 400, param: "max_tokens"},
		{name: "bad tokens header", method: "POST", path: "/v1/chat/completions", body: chatBody(false, false, "", "x"), hdr: map[string]string{TokensHeader: "-2"}, status: 400},
		{name: "text tokens header", method: "POST", path: "/v1/chat/completions", body: chatBody(false, false, "", "x"), hdr: map[string]string{TokensHeader: "many"}, status: 400},
		{name: "unknown fault", method: "POST", path: "/v1/chat/completions", body: chatBody(false, false, "", "x"), hdr: map[string]string{FaultHeader: "explode"}, status: 400, msg: "500|429|hang|disconnect|no_usage|malformed"},
		{name: "unknown model", srv: limited, method: "POST", path: "/v1/chat/completions", body: `{"model":"gpt-5","messages":[{"role":"user","content":"x"}]}`, status: 404, param: "model", code: "model_not_found"},
		{name: "unknown embedding model", srv: limited, method: "POST", path: "/v1/embeddings", body: `{"model":"gpt-5","input":"x"}`, status: 404, param: "model", code: "model_not_found"},
		{name: "unknown path", method: "GET", path: "/v1/nothing", status: 404},
		{name: "root", method: "GET", path: "/", status: 404},
		{name: "get chat", method: "GET", path: "/v1/chat/completions", status: 405},
		{name: "post models", method: "POST", path: "/v1/models", body: `{}`, status: 405},
		{name: "empty input string", method: "POST", path: "/v1/embeddings", body: `{"model":"m","input":""}`, status: 400, param: "input"},
		{name: "empty input array", method: "POST", path: "/v1/embeddings", body: `{"model":"m","input":[]}`, status: 400, param: "input"},
		{name: "missing input", method: "POST", path: "/v1/embeddings", body: `{"model":"m"}`, status: 400, param: "input"},
		{name: "empty input element", method: "POST", path: "/v1/embeddings", body: `{"model":"m","input":["a",""]}`, status: 400, param: "input"},
		{name: "too many dimensions", method: "POST", path: "/v1/embeddings", body: `{"model":"m","input":"a","dimensions":3073}`, status: 400, param: "dimensions"},
		{name: "bad encoding", method: "POST", path: "/v1/embeddings", body: `{"model":"m","input":"a","encoding_format":"hex"}`, status: 400, param: "encoding_format"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := srv
			if tc.srv != nil {
				s = tc.srv
			}
			resp, b := mustDo(t, s, tc.method, tc.path, tc.body, tc.hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			e := decodeErr(t, b)
			if e.Error.Type != "invalid_request_error" {
				t.Errorf("type %q", e.Error.Type)
			}
			if tc.param != "" && (e.Error.Param == nil || *e.Error.Param != tc.param) {
				t.Errorf("param %v, want %q", e.Error.Param, tc.param)
			}
			if tc.code != "" && (e.Error.Code == nil || *e.Error.Code != tc.code) {
				t.Errorf("code %v, want %q", e.Error.Code, tc.code)
			}
			if !strings.Contains(e.Error.Message, tc.msg) {
				t.Errorf("message %q lacks %q", e.Error.Message, tc.msg)
			}
			if tc.status == 405 && resp.Header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
}

// --- faults ---

func TestSimulatorFaultStatus(t *testing.T) {
	srv := newServer(t, &Simulator{})
	for _, tc := range []struct {
		value, path, body string
		method            string
		status            int
		typ, code         string
	}{
		{"500", "/v1/chat/completions", chatBody(false, false, "", "x"), "POST", 500, "server_error", ""},
		{"500", "/v1/chat/completions", chatBody(true, true, "", "x"), "POST", 500, "server_error", ""},
		{"500", "/v1/embeddings", `{"model":"m","input":"x"}`, "POST", 500, "server_error", ""},
		{"429", "/v1/chat/completions", chatBody(false, false, "", "x"), "POST", 429, "rate_limit_error", "rate_limit_exceeded"},
		{"429", "/v1/chat/completions", chatBody(true, false, "", "x"), "POST", 429, "rate_limit_error", "rate_limit_exceeded"},
		{"429", "/v1/models", "", "GET", 429, "rate_limit_error", "rate_limit_exceeded"},
	} {
		t.Run(tc.value+tc.path, func(t *testing.T) {
			resp, b := mustDo(t, srv, tc.method, tc.path, tc.body, map[string]string{FaultHeader: tc.value})
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			e := decodeErr(t, b)
			if e.Error.Type != tc.typ {
				t.Errorf("type %q, want %q", e.Error.Type, tc.typ)
			}
			if tc.code != "" && (e.Error.Code == nil || *e.Error.Code != tc.code) {
				t.Errorf("code %v, want %q", e.Error.Code, tc.code)
			}
			if ra := resp.Header.Get("Retry-After"); (tc.status == 429) != (ra == "1") {
				t.Errorf("Retry-After %q", ra)
			}
		})
	}
}

func TestSimulatorFaultHang(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprint("stream=", stream), func(t *testing.T) {
			returned := make(chan struct{})
			var once sync.Once
			sim := &Simulator{}
			srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer once.Do(func() { close(returned) })
				sim.ServeHTTP(w, r)
			}))
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, _, err := do(t, ctx, srv, "POST", "/v1/chat/completions", chatBody(stream, false, "", "x"), map[string]string{FaultHeader: "HANG"})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err %v, want the client's deadline", err)
			}
			if time.Since(start) < 90*time.Millisecond {
				t.Fatal("returned before the client gave up")
			}
			select {
			case <-returned:
			case <-time.After(5 * time.Second):
				t.Fatal("handler still hanging after the client went away")
			}
		})
	}
}

func TestSimulatorFaultDisconnect(t *testing.T) {
	srv := newServer(t, &Simulator{})
	t.Run("plain", func(t *testing.T) {
		_, _, err := do(t, context.Background(), srv, "POST", "/v1/chat/completions", chatBody(false, false, "", "x"), map[string]string{FaultHeader: "disconnect"})
		if err == nil {
			t.Fatal("no error from an aborted response")
		}
	})
	t.Run("embeddings", func(t *testing.T) {
		_, _, err := do(t, context.Background(), srv, "POST", "/v1/embeddings", `{"model":"m","input":"x"}`, map[string]string{FaultHeader: "disconnect"})
		if err == nil {
			t.Fatal("no error from an aborted response")
		}
	})
	for _, tc := range []struct{ tokens, sent int }{{10, 5}, {7, 3}, {1, 1}, {0, 0}} {
		t.Run(fmt.Sprintf("stream %d tokens", tc.tokens), func(t *testing.T) {
			req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(chatBody(true, true, "", "x")))
			req.Header.Set(FaultHeader, "Disconnect")
			req.Header.Set(TokensHeader, fmt.Sprint(tc.tokens))
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			events, err := sseEvents(resp.Body)
			if err == nil {
				t.Fatal("no read error from an aborted stream")
			}
			res := parseStream(t, events, 1)
			if res.done || res.usages != 0 || res.finish[0] != "" {
				t.Fatalf("aborted stream finished: %v", events)
			}
			if res.roles[0] != 1 || res.deltas[0] != tc.sent {
				t.Fatalf("%d role chunks and %d deltas, want 1 and %d", res.roles[0], res.deltas[0], tc.sent)
			}
		})
	}
}

func TestSimulatorFaultMalformed(t *testing.T) {
	srv := newServer(t, &Simulator{})
	t.Run("plain", func(t *testing.T) {
		resp, b := mustDo(t, srv, "POST", "/v1/chat/completions", chatBody(false, false, "", "x"), map[string]string{FaultHeader: "MALFORMED"})
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || string(b) != `{"id": malformed` {
			t.Fatalf("status %d type %q body %q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
		if json.Valid(b) {
			t.Fatal("malformed body is valid JSON")
		}
	})
	t.Run("stream", func(t *testing.T) {
		resp, b := mustDo(t, srv, "POST", "/v1/chat/completions", chatBody(true, true, "", "x"), map[string]string{FaultHeader: "malformed", TokensHeader: "8"})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if !bytes.HasSuffix(b, []byte("data: {\"id\": malformed\n\n")) {
			t.Fatalf("stream does not end with the malformed line: %q", b)
		}
		events, err := sseEvents(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		res := parseStream(t, events[:len(events)-1], 1)
		if res.done || res.usages != 0 || res.roles[0] != 1 || res.deltas[0] != 4 {
			t.Fatalf("done %v usages %d roles %d deltas %d", res.done, res.usages, res.roles[0], res.deltas[0])
		}
	})
}

func TestSimulatorFaultNoUsage(t *testing.T) {
	srv := newServer(t, &Simulator{})
	hdr := map[string]string{FaultHeader: "no_usage", TokensHeader: "6"}
	t.Run("plain", func(t *testing.T) {
		resp, b := mustDo(t, srv, "POST", "/v1/chat/completions", chatBody(false, false, "", "x"), hdr)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if _, ok := m["usage"]; ok {
			t.Fatalf("usage present: %s", b)
		}
		var c completionJSON
		_ = json.Unmarshal(b, &c)
		if len(words(t, c.Choices[0].Message.Content)) != 6 {
			t.Fatalf("content %q", c.Choices[0].Message.Content)
		}
	})
	t.Run("stream", func(t *testing.T) {
		_, b := mustDo(t, srv, "POST", "/v1/chat/completions", chatBody(true, true, "", "x"), hdr)
		if bytes.Contains(b, []byte(`"usage"`)) {
			t.Fatalf("usage in stream: %s", b)
		}
		events, err := sseEvents(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		res := parseStream(t, events, 1)
		if !res.done || res.deltas[0] != 6 || res.finish[0] != "stop" {
			t.Fatalf("done %v deltas %d finish %q", res.done, res.deltas[0], res.finish[0])
		}
	})
	t.Run("embeddings", func(t *testing.T) {
		_, b := mustDo(t, srv, "POST", "/v1/embeddings", `{"model":"m","input":"x"}`, hdr)
		if bytes.Contains(b, []byte(`"usage"`)) || !bytes.Contains(b, []byte(`"embedding"`)) {
			t.Fatalf("body %s", b)
		}
	})
}

// --- embeddings ---

type embeddingsJSON struct {
	Object string `json:"object"`
	Data   []struct {
		Object    string          `json:"object"`
		Index     int             `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
	} `json:"data"`
	Model string `json:"model"`
	Usage *struct {
		PromptTokens int64 `json:"prompt_tokens"`
		TotalTokens  int64 `json:"total_tokens"`
	} `json:"usage"`
}

func embeddingVectors(t *testing.T, e embeddingsJSON, base64Format bool) [][]float32 {
	t.Helper()
	var vs [][]float32
	for i, d := range e.Data {
		if d.Object != "embedding" || d.Index != i {
			t.Fatalf("datum %d: object %q index %d", i, d.Object, d.Index)
		}
		var v []float32
		if base64Format {
			var s string
			if err := json.Unmarshal(d.Embedding, &s); err != nil {
				t.Fatalf("base64 embedding %s: %v", d.Embedding, err)
			}
			raw, err := base64.StdEncoding.DecodeString(s)
			if err != nil || len(raw)%4 != 0 {
				t.Fatalf("base64 %q: %v", s, err)
			}
			for j := 0; j < len(raw); j += 4 {
				v = append(v, math.Float32frombits(binary.LittleEndian.Uint32(raw[j:])))
			}
		} else if err := json.Unmarshal(d.Embedding, &v); err != nil {
			t.Fatalf("float embedding %s: %v", d.Embedding, err)
		}
		vs = append(vs, v)
	}
	return vs
}

func TestSimulatorEmbeddings(t *testing.T) {
	srv := newServer(t, &Simulator{})
	tests := []struct {
		name   string
		input  string
		extra  string
		n      int
		dims   int
		prompt int64
	}{
		{name: "string", input: `"The food was delicious"`, n: 1, dims: 8, prompt: pricing.CountTokens("The food was delicious")},
		{name: "strings", input: `["a","hello world","x"]`, extra: `,"dimensions":16`, n: 3, dims: 16, prompt: pricing.CountTokens("a") + pricing.CountTokens("hello world") + pricing.CountTokens("x")},
		{name: "token array", input: `[1,2,3,4,5]`, n: 1, dims: 8, prompt: 5},
		{name: "token arrays", input: `[[1,2],[3,4,5]]`, extra: `,"encoding_format":"float"`, n: 2, dims: 8, prompt: 5},
		{name: "base64", input: `["one","two"]`, extra: `,"encoding_format":"base64","dimensions":12`, n: 2, dims: 12, prompt: 2},
		{name: "large", input: `"big"`, extra: `,"dimensions":3072`, n: 1, dims: 3072, prompt: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"model":"text-embedding-3-small","input":` + tc.input + tc.extra + `}`
			resp, b := mustDo(t, srv, "POST", "/v1/embeddings", body, nil)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			var e embeddingsJSON
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatal(err)
			}
			if e.Object != "list" || e.Model != "text-embedding-3-small" || len(e.Data) != tc.n {
				t.Fatalf("object %q model %q %d data", e.Object, e.Model, len(e.Data))
			}
			if e.Usage == nil || e.Usage.PromptTokens != tc.prompt || e.Usage.TotalTokens != tc.prompt {
				t.Fatalf("usage %+v, want %d", e.Usage, tc.prompt)
			}
			b64 := strings.Contains(tc.extra, "base64")
			vs := embeddingVectors(t, e, b64)
			for i, v := range vs {
				if len(v) != tc.dims {
					t.Fatalf("vector %d has %d values, want %d", i, len(v), tc.dims)
				}
				var norm float64
				for _, x := range v {
					norm += float64(x) * float64(x)
				}
				if math.Abs(norm-1) > 1e-3 {
					t.Fatalf("vector %d has norm² %v", i, norm)
				}
			}
			if len(vs) > 1 && fmt.Sprint(vs[0]) == fmt.Sprint(vs[1]) {
				t.Fatal("different inputs gave the same vector")
			}
			if b64 {
				// base64 carries the very floats the float format does
				fb := strings.Replace(body, `"base64"`, `"float"`, 1)
				_, b2 := mustDo(t, srv, "POST", "/v1/embeddings", fb, nil)
				var e2 embeddingsJSON
				if err := json.Unmarshal(b2, &e2); err != nil {
					t.Fatal(err)
				}
				if got, want := fmt.Sprint(vs), fmt.Sprint(embeddingVectors(t, e2, false)); got != want {
					t.Fatalf("base64 %s, float %s", got, want)
				}
			}
		})
	}
}

// --- models ---

func TestSimulatorModels(t *testing.T) {
	for _, tc := range []struct {
		models, want []string
	}{
		{nil, []string{"gpt-4o-mini", "text-embedding-3-small"}},
		{[]string{"a", "b", "c"}, []string{"a", "b", "c"}},
	} {
		srv := newServer(t, &Simulator{Models: tc.models})
		resp, b := mustDo(t, srv, "GET", "/v1/models", "", nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		var l struct {
			Object string `json:"object"`
			Data   []struct {
				ID      string `json:"id"`
				Object  string `json:"object"`
				Created int64  `json:"created"`
				OwnedBy string `json:"owned_by"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatal(err)
		}
		if l.Object != "list" || len(l.Data) != len(tc.want) {
			t.Fatalf("list %s", b)
		}
		for i, m := range l.Data {
			if m.ID != tc.want[i] || m.Object != "model" || m.Created != 1700000000 || m.OwnedBy != "farebox-simulator" {
				t.Fatalf("model %d: %+v", i, m)
			}
		}
		// a listed model is served
		resp, b = mustDo(t, srv, "POST", "/v1/chat/completions", `{"model":"`+tc.want[0]+`","messages":[{"role":"user","content":"x"}]}`, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("model %q: status %d: %s", tc.want[0], resp.StatusCode, b)
		}
	}
}

// --- determinism ---

var createdField = regexp.MustCompile(`"created":\d+`)

func TestSimulatorDeterminism(t *testing.T) {
	srv := newServer(t, &Simulator{})
	for _, tc := range []struct{ name, path, body string }{
		{"plain", "/v1/chat/completions", chatBody(false, false, `,"n":2`, "same", "request")},
		{"stream", "/v1/chat/completions", chatBody(true, true, "", "same", "request")},
		{"embeddings", "/v1/embeddings", `{"model":"m","input":["same","request"],"dimensions":32}`},
		{"embeddings base64", "/v1/embeddings", `{"model":"m","input":"same","encoding_format":"base64"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, a := mustDo(t, srv, "POST", tc.path, tc.body, nil)
			_, b := mustDo(t, srv, "POST", tc.path, tc.body, nil)
			a = createdField.ReplaceAll(a, []byte(`"created":0`))
			b = createdField.ReplaceAll(b, []byte(`"created":0`))
			if !bytes.Equal(a, b) {
				t.Fatalf("bodies differ:\n%s\n%s", a, b)
			}
		})
	}
	// A different text gives a different answer.
	_, a := mustDo(t, srv, "POST", "/v1/chat/completions", chatBody(false, false, "", "one text"), nil)
	_, b := mustDo(t, srv, "POST", "/v1/chat/completions", chatBody(false, false, "", "another text"), nil)
	if bytes.Equal(createdField.ReplaceAll(a, nil), createdField.ReplaceAll(b, nil)) {
		t.Fatal("different requests gave the same body")
	}
}

// Many concurrent streams on one Simulator (run with -race).
func TestSimulatorConcurrent(t *testing.T) {
	srv := newServer(t, &Simulator{})
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(chatBody(true, true, "", fmt.Sprint("req ", i))))
			resp, err := srv.Client().Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			events, err := sseEvents(resp.Body)
			if err != nil || events[len(events)-1] != "[DONE]" {
				errs <- fmt.Errorf("request %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// --- benchmarks (in-process, no network) ---

func benchmarkChat(b *testing.B, body string) {
	sim := &Simulator{}
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body))
		req.Header.Set(TokensHeader, "64")
		w := httptest.NewRecorder()
		sim.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

func BenchmarkSimulatorChatStream(b *testing.B) {
	benchmarkChat(b, chatBody(true, true, "", "benchmark prompt"))
}

func BenchmarkSimulatorChatPlain(b *testing.B) {
	benchmarkChat(b, chatBody(false, false, "", "benchmark prompt"))
}
