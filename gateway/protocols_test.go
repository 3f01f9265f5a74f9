package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	fb "farebox"
	"farebox/gateway"
	"farebox/ledger"
	"farebox/pricing"
	"farebox/routing"
	"farebox/simulator"
)

// randText is a random text in several scripts.
func randText(rng *rand.Rand) string {
	words := []string{"hello", "world", "漢字", "テスト", "🙂", "ø", "naïve", `"q"`, "tab\t", "x"}
	var b strings.Builder
	for range rng.IntN(40) {
		b.WriteString(words[rng.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.String()
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

// responsesShape draws a random Responses request: a string input or
// items (messages with text, images of every detail, files; tool calls
// and their outputs), instructions, tools, a cap or none, stream or not.
// bad reports a part the gateway must refuse.
func responsesShape(rng *rand.Rand) (body string, bad bool) {
	var input string
	if rng.IntN(4) == 0 {
		input = jsonString(randText(rng))
	} else {
		var items []string
		for range 1 + rng.IntN(4) {
			switch rng.IntN(6) {
			case 0:
				items = append(items, fmt.Sprintf(`{"type":"function_call","call_id":"c1","name":"f","arguments":%s}`, jsonString(`{"a":`+jsonString(randText(rng))+`}`)))
			case 1:
				items = append(items, fmt.Sprintf(`{"type":"function_call_output","call_id":"c1","output":%s}`, jsonString(randText(rng))))
			default:
				var parts []string
				for range 1 + rng.IntN(3) {
					switch rng.IntN(7) {
					case 0, 1:
						parts = append(parts, fmt.Sprintf(`{"type":"input_text","text":%s}`, jsonString(randText(rng))))
					case 2, 3:
						detail := []string{"", `,"detail":"low"`, `,"detail":"high"`, `,"detail":"auto"`}[rng.IntN(4)]
						parts = append(parts, fmt.Sprintf(`{"type":"input_image","image_url":"data:image/png;base64,iVBORw0KGgo="%s}`, detail))
					case 4:
						parts = append(parts, `{"type":"input_file","file_id":"file-abc"}`)
					default:
						if rng.IntN(3) == 0 {
							parts, bad = append(parts, `{"type":"input_video","url":"x"}`), true
						} else {
							parts = append(parts, fmt.Sprintf(`{"type":"input_text","text":%s}`, jsonString(randText(rng))))
						}
					}
				}
				items = append(items, fmt.Sprintf(`{"role":"user","content":[%s]}`, strings.Join(parts, ",")))
			}
		}
		input = "[" + strings.Join(items, ",") + "]"
	}
	b := `{"model":"gpt-4o-mini","input":` + input
	if rng.IntN(2) == 0 {
		b += `,"instructions":` + jsonString(randText(rng))
	}
	if rng.IntN(2) == 0 {
		b += fmt.Sprintf(`,"max_output_tokens":%d`, 1+rng.IntN(200))
	}
	if rng.IntN(4) == 0 {
		b += `,"tools":[{"type":"function","name":"f","parameters":{"type":"object","properties":{"a":{"type":"string"}}}}]`
	}
	if rng.IntN(8) == 0 {
		b, bad = b+`,"tools":[{"type":"web_search"}]`, true
	}
	if rng.IntN(2) == 0 {
		b += `,"stream":true`
	}
	return b + "}", bad
}

// messagesShape draws a random Messages request: a system prompt, text,
// images, documents, tool use and results, cache_control, tools, stream
// or not. bad reports a part the gateway must refuse.
func messagesShape(rng *rand.Rand) (body string, bad bool) {
	var msgs []string
	for i := range 1 + rng.IntN(4) {
		role := []string{"user", "assistant"}[i%2]
		if rng.IntN(3) == 0 {
			msgs = append(msgs, fmt.Sprintf(`{"role":%q,"content":%s}`, role, jsonString(randText(rng))))
			continue
		}
		var blocks []string
		for range 1 + rng.IntN(3) {
			switch rng.IntN(8) {
			case 0, 1:
				cc := ""
				if rng.IntN(3) == 0 {
					cc = `,"cache_control":{"type":"ephemeral"}`
				}
				blocks = append(blocks, fmt.Sprintf(`{"type":"text","text":%s%s}`, jsonString(randText(rng)), cc))
			case 2, 3:
				blocks = append(blocks, `{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}`)
			case 4:
				blocks = append(blocks, `{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="}}`)
			case 5:
				blocks = append(blocks, fmt.Sprintf(`{"type":"tool_result","tool_use_id":"t1","content":%s}`, jsonString(randText(rng))))
			case 6:
				blocks = append(blocks, fmt.Sprintf(`{"type":"tool_use","id":"t1","name":"f","input":{"a":%s}}`, jsonString(randText(rng))))
			default:
				if rng.IntN(3) == 0 {
					blocks, bad = append(blocks, `{"type":"container_upload","file_id":"f"}`), true
				} else {
					blocks = append(blocks, fmt.Sprintf(`{"type":"text","text":%s}`, jsonString(randText(rng))))
				}
			}
		}
		msgs = append(msgs, fmt.Sprintf(`{"role":%q,"content":[%s]}`, role, strings.Join(blocks, ",")))
	}
	b := fmt.Sprintf(`{"model":"gpt-4o-mini","max_tokens":%d,"messages":[%s]`, 1+rng.IntN(200), strings.Join(msgs, ","))
	if rng.IntN(2) == 0 {
		b += `,"system":` + jsonString(randText(rng))
	}
	if rng.IntN(4) == 0 {
		b += `,"tools":[{"name":"f","input_schema":{"type":"object","properties":{"a":{"type":"string"}}}}]`
	}
	if rng.IntN(8) == 0 {
		b, bad = b+`,"tools":[{"type":"web_search_20250305","name":"web_search"}]`, true
	}
	if rng.IntN(2) == 0 {
		b += `,"stream":true`
	}
	return b + "}", bad
}

// greedyProtoEnv is an env whose gpt-4o-mini is served by u alone on a
// deployment speaking every protocol, with a hidden tool prompt of 346
// tokens, an output limit of maxOut, at greedyRates (cache writes the
// dearest input).
func greedyProtoEnv(t *testing.T, u *greedy, maxOut int64) *env {
	t.Helper()
	up := httptest.NewServer(u)
	t.Cleanup(up.Close)
	router, err := routing.NewRouter([]*routing.Deployment{{Name: "greedy/gpt-4o-mini", Provider: "greedy", Type: routing.TypeSimulated,
		Model: "gpt-4o-mini", Upstream: "gpt-4o-mini-up", BaseURL: up.URL + "/v1", MaxOutputTokens: maxOut, Limits: u.limits, ToolOverhead: u.toolOverhead,
		Cost: routing.CostCard{InputPerMTok: 150_000, OutputPerMTok: 600_000}}})
	if err != nil {
		t.Fatal(err)
	}
	rates := greedyRates
	rates.CacheWritePerMTok = 2500 * fb.Micro
	return newEnvWith(t, envOptions{router: router, prices: map[string]fb.Rates{"gpt-4o-mini": rates}})
}

// TestWorstCaseHoldsEveryProtocolShape is the holes issue's property on
// the two new request shapes: random Responses and Messages requests,
// concurrently, from customers with random balances, against an upstream
// billing the most each answer allows (cached or cache-written input,
// reasoning output, the hidden tool prompt, the whole window for files):
// nothing is charged above its hold, nothing uncollected or left held,
// every charge announced is the one taken, and the ledger verifies.
func TestWorstCaseHoldsEveryProtocolShape(t *testing.T) {
	for _, c := range []struct {
		path  string
		shape func(*rand.Rand) (string, bool)
	}{{"/v1/responses", responsesShape}, {"/v1/messages", messagesShape}} {
		t.Run(strings.TrimPrefix(c.path, "/v1/"), func(t *testing.T) {
			lim := pricing.Limits{Image: pricing.MaxImageTokens, ContextWindow: 128_000}
			u := &greedy{limits: lim, toolOverhead: 346}
			holdsEveryShape(t, greedyProtoEnv(t, u, 64), c.path, c.shape, 40, 3)
		})
	}
}

// TestZeroOverspendPerProtocol: 300 concurrent requests, half streaming,
// on /v1/responses and on /v1/messages, from a customer whose credit pays
// for about 30: spent ≤ granted, the ledger charged exactly the costs the
// answers announced, nothing is held after, and the ledger verifies.
func TestZeroOverspendPerProtocol(t *testing.T) {
	for _, c := range []struct {
		path string
		body func(stream bool) string
	}{
		{"/v1/responses", func(stream bool) string {
			return fmt.Sprintf(`{"model":"gpt-4o-mini","input":"Say something short.","max_output_tokens":64,"stream":%v}`, stream)
		}},
		{"/v1/messages", func(stream bool) string {
			return fmt.Sprintf(`{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"user","content":"Say something short."}],"stream":%v}`, stream)
		}},
	} {
		t.Run(strings.TrimPrefix(c.path, "/v1/"), func(t *testing.T) {
			e := newEnv(t, gateway.Config{FirstByteTimeout: 5 * time.Second, RequestTimeout: 10 * time.Second})
			grant := cost(promptTokens, 40) * 30
			key, _ := e.customer("acme", grant.String(), nil)
			var (
				mu       sync.Mutex
				paid     fb.Amount
				statuses = map[int]int{}
				wg       sync.WaitGroup
			)
			for i := range 300 {
				wg.Go(func() {
					stream := i%2 == 0
					a := e.do("POST", c.path, key, c.body(stream), simulator.TokensHeader, "40")
					var charged fb.Amount
					switch {
					case a.status == 200 && stream:
						charged = mustAmount(t, a.trailer.Get("X-Farebox-Cost"))
					case a.status == 200:
						charged = mustAmount(t, a.header.Get("X-Farebox-Cost"))
						if got := a.get("usage", "cost"); got != charged.String() {
							t.Errorf("usage.cost %s, header %s", got, charged)
						}
					case a.status == 402:
					default:
						t.Errorf("unexpected %d: %s", a.status, a.raw)
					}
					if a.status == 200 && !stream {
						// Served whole, or with the cap lowered to what was left.
						out := a.get("usage", "output_tokens")
						n, _ := strconv.ParseInt(out, 10, 64)
						if charged != cost(promptTokens, n) || n > 40 {
							t.Errorf("an answer of %s tokens charged %s, want %s", out, charged, cost(promptTokens, n))
						}
					}
					mu.Lock()
					statuses[a.status]++
					paid += charged
					mu.Unlock()
				})
			}
			wg.Wait()
			acct := e.account("acme")
			t.Logf("statuses %v, paid %s of %s", statuses, paid, grant)
			if acct.Charged != paid || acct.Charged > grant || acct.Uncollected != 0 || acct.Debt != 0 || ledger.Held(acct) != 0 {
				t.Errorf("charged %s (announced %s) of %s; uncollected %s, debt %s, held %s", acct.Charged, paid, grant, acct.Uncollected, acct.Debt, ledger.Held(acct))
			}
			if statuses[200] < 10 {
				t.Errorf("only %d served", statuses[200])
			}
			if rep, err := ledger.Verify(context.Background(), e.store); err != nil || len(rep.Problems) > 0 {
				t.Errorf("ledger verify: %v %+v", err, rep)
			}
		})
	}
}

// TestTranslation: the same conversation (a system prompt, a user turn,
// a tool the request forces) through chat → an anthropic deployment and
// Messages → an openai one gives the text and the tool calls the
// simulator gives natively, its usage mapped exactly, charged at the card.
func TestTranslation(t *testing.T) {
	sim := &simulator.Simulator{}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cards := routing.CostCard{InputPerMTok: 3_000_000, OutputPerMTok: 15_000_000}
	router, err := routing.NewRouter([]*routing.Deployment{
		{Name: "anthropic/claude-x", Provider: "anthropic", Type: routing.TypeAnthropic, Model: "claude-x", Upstream: "claude-x-up", BaseURL: srv.URL + "/v1", APIKey: "sk-ant", ForwardHeaders: simHeaders, Cost: cards},
		{Name: "openai/gpt-x", Provider: "openai", Type: routing.TypeOpenAI, Model: "gpt-x", Upstream: "gpt-x-up", BaseURL: srv.URL + "/v1", ForwardHeaders: simHeaders, Cost: cards},
		{Name: "sim/native", Provider: "sim", Type: routing.TypeSimulated, Model: "native", Upstream: "native", BaseURL: srv.URL + "/v1", ForwardHeaders: simHeaders, Cost: cards},
	})
	if err != nil {
		t.Fatal(err)
	}
	rates := fb.Rates{InputPerMTok: 300 * fb.Micro, OutputPerMTok: 1500 * fb.Micro, CachedInputPerMTok: 30 * fb.Micro, ReasoningPerMTok: 1500 * fb.Micro, CacheWritePerMTok: 375 * fb.Micro}
	e := newEnvWith(t, envOptions{router: router, prices: map[string]fb.Rates{"claude-x": rates, "gpt-x": rates, "native": rates}})
	key, _ := e.customer("acme", "1000", nil)
	at := func(q fb.Quantities) string { c, _ := pricing.Cost(rates, q); return c.String() }
	system, user := "You are terse.", "What is the weather in Paris?"
	prompt := pricing.PromptTokens([]string{system, user})
	chat := func(model, extra string) string {
		return fmt.Sprintf(`{"model":%q,"messages":[{"role":"system","content":%q},{"role":"user","content":%q}]%s}`, model, system, user, extra)
	}
	messages := func(model, extra string) string {
		return fmt.Sprintf(`{"model":%q,"max_tokens":200,"system":%q,"messages":[{"role":"user","content":%q}]%s}`, model, system, user, extra)
	}
	chatTools := `,"tools":[{"type":"function","function":{"name":"weather","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}}],"tool_choice":"required"`
	msgTools := `,"tools":[{"name":"weather","input_schema":{"type":"object","properties":{"q":{"type":"string"}}}}],"tool_choice":{"type":"any"}`

	t.Run("chat to an anthropic deployment", func(t *testing.T) {
		native := e.do("POST", "/v1/chat/completions", key, chat("native", ""), simulator.TokensHeader, "7")
		a := e.do("POST", "/v1/chat/completions", key, chat("claude-x", ""), simulator.TokensHeader, "7")
		if a.status != 200 || native.status != 200 {
			t.Fatalf("%d %s / %d %s", a.status, a.raw, native.status, native.raw)
		}
		var got, want struct {
			Choices []struct {
				Message struct {
					Content string `json:"content"`
				} `json:"message"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
		}
		json.Unmarshal([]byte(a.raw), &got)
		json.Unmarshal([]byte(native.raw), &want)
		if got.Choices[0].Message.Content != want.Choices[0].Message.Content || got.Choices[0].FinishReason != "stop" || a.get("object") != "chat.completion" || a.get("model") != "claude-x" {
			t.Errorf("translated %s\nnative %s", a.raw, native.raw)
		}
		if a.get("usage", "prompt_tokens") != strconv.FormatInt(prompt, 10) || a.get("usage", "completion_tokens") != "7" {
			t.Errorf("usage %s, want prompt %d completion 7", a.get("usage"), prompt)
		}
		if want := at(fb.Quantities{InputTokens: prompt, OutputTokens: 7, Requests: 1}); a.get("usage", "cost") != want {
			t.Errorf("cost %s, want %s", a.get("usage", "cost"), want)
		}
		// Tool calls, and the stream.
		tc := e.do("POST", "/v1/chat/completions", key, chat("claude-x", chatTools))
		if tc.status != 200 || tc.get("choices") == "<missing>" || !strings.Contains(tc.raw, `"name":"weather"`) || !strings.Contains(tc.raw, `"finish_reason":"tool_calls"`) {
			t.Errorf("tool call: %d %s", tc.status, tc.raw)
		}
		s := e.do("POST", "/v1/chat/completions", key, chat("claude-x", `,"stream":true,"stream_options":{"include_usage":true}`), simulator.TokensHeader, "7")
		sum := summarize(t, s.events)
		if sum.text != want.Choices[0].Message.Content || !sum.done || len(sum.finish) != 1 || sum.finish[0] != "stop" || sum.usage["cost"] != at(fb.Quantities{InputTokens: prompt, OutputTokens: 7, Requests: 1}) {
			t.Errorf("stream: text %q finish %v usage %v done %v: %s", sum.text, sum.finish, sum.usage, sum.done, s.raw)
		}
		ts := e.do("POST", "/v1/chat/completions", key, chat("claude-x", chatTools+`,"stream":true`))
		var args strings.Builder
		for _, ev := range ts.events {
			var c struct {
				Choices []struct {
					Delta struct {
						ToolCalls []struct {
							Function struct {
								Name, Arguments string
							} `json:"function"`
						} `json:"tool_calls"`
					} `json:"delta"`
				} `json:"choices"`
			}
			json.Unmarshal([]byte(ev), &c)
			for _, ch := range c.Choices {
				for _, t := range ch.Delta.ToolCalls {
					args.WriteString(t.Function.Arguments)
				}
			}
		}
		var parsed map[string]string
		if json.Unmarshal([]byte(args.String()), &parsed) != nil || parsed["q"] == "" || !strings.Contains(ts.raw, `"finish_reason":"tool_calls"`) {
			t.Errorf("streamed tool call arguments %q: %s", args.String(), ts.raw)
		}
		// What the translation cannot carry is refused, naming it.
		if b := e.do("POST", "/v1/chat/completions", key, chat("claude-x", `,"logprobs":true`)); b.status != 400 || b.get("error", "param") != "logprobs" {
			t.Errorf("logprobs to Messages: %d %s", b.status, b.raw)
		}
		if b := e.do("POST", "/v1/chat/completions", key, chat("claude-x", `,"n":2`)); b.status != 400 || b.get("error", "param") != "n" {
			t.Errorf("n=2 to Messages: %d %s", b.status, b.raw)
		}
		// The upstream's own refusal, in the client's protocol's shape.
		if b := e.do("POST", "/v1/chat/completions", key, chat("claude-x", ""), simulator.FaultHeader, "bogus"); b.status != 400 || b.get("error", "message") == "<missing>" || b.get("type") != "<missing>" {
			t.Errorf("an Anthropic refusal to a chat client: %d %s", b.status, b.raw)
		}
	})

	t.Run("messages to an openai deployment", func(t *testing.T) {
		native := e.do("POST", "/v1/messages", key, messages("native", ""), simulator.TokensHeader, "7")
		a := e.do("POST", "/v1/messages", key, messages("gpt-x", ""), simulator.TokensHeader, "7")
		if a.status != 200 || native.status != 200 {
			t.Fatalf("%d %s / %d %s", a.status, a.raw, native.status, native.raw)
		}
		if a.get("content") != native.get("content") || a.get("type") != "message" || a.get("stop_reason") != "end_turn" || a.get("model") != "gpt-x" {
			t.Errorf("translated %s\nnative %s", a.raw, native.raw)
		}
		if a.get("usage", "input_tokens") != strconv.FormatInt(prompt, 10) || a.get("usage", "output_tokens") != "7" {
			t.Errorf("usage %s, want input %d output 7", a.get("usage"), prompt)
		}
		if want := at(fb.Quantities{InputTokens: prompt, OutputTokens: 7, Requests: 1}); a.get("usage", "cost") != want || native.get("usage", "cost") != want {
			t.Errorf("cost %s (native %s), want %s", a.get("usage", "cost"), native.get("usage", "cost"), want)
		}
		tc := e.do("POST", "/v1/messages", key, messages("gpt-x", msgTools))
		if tc.status != 200 || !strings.Contains(tc.raw, `"type":"tool_use"`) || tc.get("stop_reason") != "tool_use" || !strings.Contains(tc.raw, `"name":"weather"`) {
			t.Errorf("tool use: %d %s", tc.status, tc.raw)
		}
		s := e.do("POST", "/v1/messages", key, messages("gpt-x", `,"stream":true`), simulator.TokensHeader, "7")
		var text strings.Builder
		var stop, streamCost string
		for _, ev := range s.events {
			var m struct {
				Type  string `json:"type"`
				Delta struct {
					Text       string `json:"text"`
					StopReason string `json:"stop_reason"`
				} `json:"delta"`
				Usage map[string]any `json:"usage"`
			}
			json.Unmarshal([]byte(ev), &m)
			text.WriteString(m.Delta.Text)
			if m.Type == "message_delta" {
				stop, streamCost = m.Delta.StopReason, fmt.Sprint(m.Usage["cost"])
			}
		}
		var nb struct {
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		}
		json.Unmarshal([]byte(native.raw), &nb)
		if text.String() != nb.Content[0].Text || stop != "end_turn" || streamCost != at(fb.Quantities{InputTokens: prompt, OutputTokens: 7, Requests: 1}) || !strings.Contains(s.raw, "event: message_stop") {
			t.Errorf("stream: text %q stop %q cost %s: %s", text.String(), stop, streamCost, s.raw)
		}
		if b := e.do("POST", "/v1/messages", key, messages("gpt-x", `,"top_k":5`)); b.status != 400 || b.get("type") != "error" || b.get("error", "type") != "invalid_request_error" {
			t.Errorf("top_k to chat: %d %s", b.status, b.raw)
		}
	})

	// Cache writes are charged at the card's cache-write rate.
	t.Run("cache writes", func(t *testing.T) {
		body := fmt.Sprintf(`{"model":"claude-x","max_tokens":50,"system":[{"type":"text","text":%q,"cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":%q}]}`, system, user)
		a := e.do("POST", "/v1/messages", key, body, simulator.TokensHeader, "5")
		want := at(fb.Quantities{CacheWriteTokens: prompt, OutputTokens: 5, Requests: 1})
		if a.status != 200 || a.get("usage", "cache_creation_input_tokens") != strconv.FormatInt(prompt, 10) || a.get("usage", "cost") != want {
			t.Errorf("cache write: %d cost %s, want %s: %s", a.status, a.get("usage", "cost"), want, a.raw)
		}
	})
	if acct := e.account("acme"); acct.Uncollected != 0 || ledger.Held(acct) != 0 || e.gw.Stats().OverCaptures != 0 {
		t.Errorf("uncollected %s held %s stats %+v", acct.Uncollected, ledger.Held(acct), e.gw.Stats())
	}
}

// TestCapEndsStreamPerProtocol: an upstream that ignores the cap it was
// sent streams past it; the gateway ends the stream there the way its
// protocol ends one (response.incomplete with reason max_output_tokens;
// stop_reason max_tokens after closing the open block), charges the hold
// and no more, and counts the excess as a capture above its hold.
func TestCapEndsStreamPerProtocol(t *testing.T) {
	for _, c := range []struct {
		path, body string
		check      func(a answer) string
	}{
		{"/v1/responses", `{"model":"gpt-4o-mini","input":"Write a long story.","max_output_tokens":30,"stream":true}`, func(a answer) string {
			last := a.events[len(a.events)-1]
			var ev struct {
				Type     string `json:"type"`
				Response struct {
					Status            string `json:"status"`
					IncompleteDetails struct {
						Reason string `json:"reason"`
					} `json:"incomplete_details"`
					Usage map[string]any `json:"usage"`
				} `json:"response"`
			}
			json.Unmarshal([]byte(last), &ev)
			if ev.Type != "response.incomplete" || ev.Response.Status != "incomplete" || ev.Response.IncompleteDetails.Reason != "max_output_tokens" || ev.Response.Usage["cost"] == nil {
				return "last event " + last
			}
			if n := strings.Count(a.raw, "event: response.output_text.delta"); n != 30 {
				return fmt.Sprintf("%d deltas, want the cap's 30", n)
			}
			return fmt.Sprint(ev.Response.Usage["cost"])
		}},
		{"/v1/messages", `{"model":"gpt-4o-mini","max_tokens":30,"stream":true,"messages":[{"role":"user","content":"Write a long story."}]}`, func(a answer) string {
			if !strings.Contains(a.raw, "event: content_block_stop") || !strings.HasSuffix(a.raw, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n") {
				return "no block stop or message_stop: " + a.raw[max(0, len(a.raw)-300):]
			}
			var ev struct {
				Delta struct {
					StopReason string `json:"stop_reason"`
				} `json:"delta"`
				Usage map[string]any `json:"usage"`
			}
			json.Unmarshal([]byte(a.events[len(a.events)-2]), &ev)
			if ev.Delta.StopReason != "max_tokens" || ev.Usage["cost"] == nil {
				return "message_delta " + a.events[len(a.events)-2]
			}
			if n := strings.Count(a.raw, "event: content_block_delta"); n != 30 {
				return fmt.Sprintf("%d deltas, want the cap's 30", n)
			}
			return fmt.Sprint(ev.Usage["cost"])
		}},
	} {
		t.Run(strings.TrimPrefix(c.path, "/v1/"), func(t *testing.T) {
			u := &greedy{limits: pricing.Limits{Image: pricing.MaxImageTokens, ContextWindow: 128_000}, ignoreCap: 100_000}
			e := greedyProtoEnv(t, u, 64)
			key, _ := e.customer("acme", "1000", nil)
			a := e.do("POST", c.path, key, c.body)
			if a.status != 200 {
				t.Fatalf("%d %s", a.status, a.raw)
			}
			got := c.check(a)
			acct := e.account("acme")
			if got != acct.Charged.String() || a.trailer.Get("X-Farebox-Cost") != got {
				t.Errorf("final event says %s, trailer %s, charged %s", got, a.trailer.Get("X-Farebox-Cost"), acct.Charged)
			}
			if st := e.gw.Stats(); st.OverCaptures != 1 || acct.Uncollected != 0 || ledger.Held(acct) != 0 {
				t.Errorf("stats %+v, uncollected %s, held %s; want one capture above its hold, charged the hold", st, acct.Uncollected, ledger.Held(acct))
			}
		})
	}
}
