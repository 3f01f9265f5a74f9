package gateway_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	fb "farebox"
	"farebox/gateway"
	"farebox/routing"
	"farebox/simulator"
)

// TestResponsesSDK: the official OpenAI Go SDK's Responses.New and its
// streaming form through Farebox: the answer, its cost in usage (and, on
// a stream, in the final event's response.usage), a stream the cap ended
// as response.incomplete with its cost, and a 402 as *openai.Error.
func TestResponsesSDK(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	key, _ := e.customer("acme", "100", nil)
	client := openai.NewClient(option.WithBaseURL(e.url+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0),
		option.WithHTTPClient(e.client), option.WithHeader(simulator.TokensHeader, "12"))
	ctx := context.Background()
	params := responses.ResponseNewParams{Model: "gpt-4o-mini", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Say something short.")}}
	want := cost(promptTokens, 12)

	t.Run("non-stream", func(t *testing.T) {
		before := e.available("acme")
		r, err := client.Responses.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if r.Object != "response" || r.Status != "completed" || strings.Count(r.OutputText(), " ") != 12 || r.Usage.OutputTokens != 12 || r.Usage.InputTokens != promptTokens {
			t.Errorf("response %s", r.RawJSON())
		}
		if got := extra(t, r.Usage.RawJSON(), "cost"); got != want.String() {
			t.Errorf("usage.cost %q, want %s", got, want)
		}
		if got := extra(t, r.Usage.RawJSON(), "balance"); got != (before - want).String() {
			t.Errorf("usage.balance %q, want %s", got, before-want)
		}
		if got := e.available("acme"); got != before-want {
			t.Errorf("available %s, want %s", got, before-want)
		}
	})

	t.Run("stream", func(t *testing.T) {
		before := e.available("acme")
		s := client.Responses.NewStreaming(ctx, params)
		var text strings.Builder
		var final responses.Response
		var finalType string
		for s.Next() {
			ev := s.Current()
			switch ev.Type {
			case "response.output_text.delta":
				text.WriteString(ev.Delta)
			case "response.completed", "response.incomplete", "response.failed":
				final, finalType = ev.Response, ev.Type
			}
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		if strings.Count(text.String(), " ") != 12 || finalType != "response.completed" || final.Usage.OutputTokens != 12 {
			t.Errorf("streamed %q, final %s %s", text.String(), finalType, final.RawJSON())
		}
		if got := extra(t, final.Usage.RawJSON(), "cost"); got != want.String() {
			t.Errorf("final response.usage.cost %q, want %s", got, want)
		}
		if got := e.available("acme"); got != before-want {
			t.Errorf("available %s, want %s", got, before-want)
		}
	})

	t.Run("stream ended at the cap", func(t *testing.T) {
		// Credit for the input bound and 20 output tokens: the cap is
		// lowered to 20, the upstream stops there, and the stream ends
		// as the protocol ends one, response.incomplete, with its cost.
		body := `{"input":"Say something short.","model":"gpt-4o-mini","stream":true}`
		credits := fb.Amount(int64(len(body))*1000 + 20*2000)
		poor, _ := e.customer("capped", credits.String(), nil)
		c := openai.NewClient(option.WithBaseURL(e.url+"/v1"), option.WithAPIKey(poor), option.WithMaxRetries(0),
			option.WithHTTPClient(e.client), option.WithHeader(simulator.TokensHeader, "500"))
		s := c.Responses.NewStreaming(ctx, params)
		var deltas int
		var final responses.Response
		var finalType string
		for s.Next() {
			ev := s.Current()
			switch ev.Type {
			case "response.output_text.delta":
				deltas++
			case "response.completed", "response.incomplete":
				final, finalType = ev.Response, ev.Type
			}
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		wantCap := cost(promptTokens, 20)
		if finalType != "response.incomplete" || final.IncompleteDetails.Reason != "max_output_tokens" || deltas != 20 {
			t.Fatalf("final %s (%s) after %d deltas; want response.incomplete, max_output_tokens, 20", finalType, final.RawJSON(), deltas)
		}
		if got := extra(t, final.Usage.RawJSON(), "cost"); got != wantCap.String() {
			t.Errorf("response.incomplete's usage.cost %q, want %s", got, wantCap)
		}
		if acct := e.account("capped"); acct.Charged != wantCap || acct.Charged > credits || acct.Uncollected != 0 {
			t.Errorf("charged %s uncollected %s, want %s within %s", acct.Charged, acct.Uncollected, wantCap, credits)
		}
	})

	t.Run("402 as an API error", func(t *testing.T) {
		poor, _ := e.customer("poor", "0.000001", nil)
		c := openai.NewClient(option.WithBaseURL(e.url+"/v1"), option.WithAPIKey(poor), option.WithMaxRetries(0), option.WithHTTPClient(e.client))
		_, err := c.Responses.New(ctx, params)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 402 || apiErr.Type != "insufficient_credits" {
			t.Fatalf("want a 402 *openai.Error, got %v", err)
		}
	})

	t.Run("other Responses routes are 404", func(t *testing.T) {
		_, err := client.Responses.Get(ctx, "resp_123", responses.ResponseGetParams{})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
			t.Fatalf("GET /v1/responses/{id}: want a 404 *openai.Error, got %v", err)
		}
	})
}

// TestMessagesSDK: the official Anthropic Go SDK's Messages.New and its
// streaming form through Farebox (key as x-api-key): the answer, its cost
// in usage and in the final message_delta's, and a 402 as
// *anthropic.Error.
func TestMessagesSDK(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	key, _ := e.customer("acme", "100", nil)
	client := anthropic.NewClient(aoption.WithBaseURL(e.url), aoption.WithAPIKey(key), aoption.WithMaxRetries(0),
		aoption.WithHTTPClient(e.client), aoption.WithHeader(simulator.TokensHeader, "12"))
	ctx := context.Background()
	params := anthropic.MessageNewParams{Model: "gpt-4o-mini", MaxTokens: 100,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say something short."))}}
	want := cost(promptTokens, 12)

	t.Run("non-stream", func(t *testing.T) {
		before := e.available("acme")
		m, err := client.Messages.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Content) != 1 || strings.Count(m.Content[0].Text, " ") != 12 || m.Usage.OutputTokens != 12 || m.Usage.InputTokens != promptTokens || m.StopReason != "end_turn" {
			t.Errorf("message %s", m.RawJSON())
		}
		if got := extra(t, m.Usage.RawJSON(), "cost"); got != want.String() {
			t.Errorf("usage.cost %q, want %s", got, want)
		}
		if got := extra(t, m.Usage.RawJSON(), "balance"); got != (before - want).String() {
			t.Errorf("usage.balance %q, want %s", got, before-want)
		}
	})

	t.Run("stream", func(t *testing.T) {
		before := e.available("acme")
		s := client.Messages.NewStreaming(ctx, params)
		var acc anthropic.Message
		var deltaCost string
		for s.Next() {
			ev := s.Current()
			if err := acc.Accumulate(ev); err != nil {
				t.Fatal(err)
			}
			if ev.Type == "message_delta" {
				deltaCost = extra(t, ev.Usage.RawJSON(), "cost")
			}
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		if len(acc.Content) != 1 || strings.Count(acc.Content[0].Text, " ") != 12 || acc.Usage.OutputTokens != 12 || acc.StopReason != "end_turn" {
			t.Errorf("accumulated %s", acc.RawJSON())
		}
		if deltaCost != want.String() {
			t.Errorf("message_delta usage.cost %q, want %s", deltaCost, want)
		}
		if got := e.available("acme"); got != before-want {
			t.Errorf("available %s, want %s", got, before-want)
		}
	})

	t.Run("stream ended at the cap", func(t *testing.T) {
		poor, _ := e.customer("capped", "0.9", nil) // the input bound and ~20 output tokens
		c := anthropic.NewClient(aoption.WithBaseURL(e.url), aoption.WithAPIKey(poor), aoption.WithMaxRetries(0),
			aoption.WithHTTPClient(e.client), aoption.WithHeader(simulator.TokensHeader, "500"))
		p := params
		p.MaxTokens = 1000
		s := c.Messages.NewStreaming(ctx, p)
		var acc anthropic.Message
		for s.Next() {
			if err := acc.Accumulate(s.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		acct := e.account("capped")
		if acc.StopReason != "max_tokens" || acct.Charged > mustAmount(t, "0.9") || acct.Uncollected != 0 || acct.Charged != cost(promptTokens, acc.Usage.OutputTokens) {
			t.Errorf("stop %q after %d tokens; charged %s uncollected %s", acc.StopReason, acc.Usage.OutputTokens, acct.Charged, acct.Uncollected)
		}
	})

	t.Run("402 as an API error", func(t *testing.T) {
		poor, _ := e.customer("poor", "0.000001", nil)
		c := anthropic.NewClient(aoption.WithBaseURL(e.url), aoption.WithAPIKey(poor), aoption.WithMaxRetries(0), aoption.WithHTTPClient(e.client))
		_, err := c.Messages.New(ctx, params)
		var apiErr *anthropic.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 402 || string(apiErr.Type()) != "insufficient_credits" {
			t.Fatalf("want a 402 *anthropic.Error of type insufficient_credits, got %v", err)
		}
	})

	t.Run("count_tokens", func(t *testing.T) {
		n, err := client.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{Model: "gpt-4o-mini", Messages: params.Messages})
		if err != nil {
			t.Fatal(err)
		}
		if n.InputTokens != promptTokens {
			t.Errorf("count_tokens %d, want %d", n.InputTokens, promptTokens)
		}
	})
}

// TestAzureSDK: openai-go, calling Farebox's plain /v1 routes, served by an
// azure deployment (the simulator in Azure's URL shape: the deployment in
// the path, api-version, api-key), with its cost; and a 402.
func TestAzureSDK(t *testing.T) {
	sim := &simulator.Simulator{}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	router, err := routing.NewRouter([]*routing.Deployment{
		{Name: "azure/gpt-4o-mini", Provider: "azure", Type: routing.TypeAzure, Model: "gpt-4o-mini", Upstream: "my-4o-mini",
			BaseURL: srv.URL, APIKey: "azure-key", Protocols: []string{routing.ProtoChat, routing.ProtoResponses}, ForwardHeaders: simHeaders},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, envOptions{router: router})
	key, _ := e.customer("acme", "100", nil)
	client := openai.NewClient(option.WithBaseURL(e.url+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0),
		option.WithHTTPClient(e.client), option.WithHeader(simulator.TokensHeader, "9"))
	ctx := context.Background()
	want := cost(promptTokens, 9)
	c, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say something short.")}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Model != "gpt-4o-mini" || c.Usage.CompletionTokens != 9 || extra(t, c.Usage.RawJSON(), "cost") != want.String() {
		t.Errorf("chat through azure: model %q, %d tokens, cost %q; want %s", c.Model, c.Usage.CompletionTokens, extra(t, c.Usage.RawJSON(), "cost"), want)
	}
	r, err := client.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o-mini", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Say something short.")}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Model != "gpt-4o-mini" || r.Usage.OutputTokens != 9 || extra(t, r.Usage.RawJSON(), "cost") != want.String() {
		t.Errorf("responses through azure: %s", r.RawJSON())
	}
	if acct := e.account("acme"); acct.Charged != 2*want {
		t.Errorf("charged %s, want %s", acct.Charged, 2*want)
	}
	poor, _ := e.customer("poor", "0.000001", nil)
	pc := openai.NewClient(option.WithBaseURL(e.url+"/v1"), option.WithAPIKey(poor), option.WithMaxRetries(0), option.WithHTTPClient(e.client))
	_, err = pc.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 402 {
		t.Errorf("want a 402 *openai.Error, got %v", err)
	}
	// The simulator refuses what is not Azure's URL shape (no
	// api-version: 400, no api-key: 401), so the answers above prove
	// it. Messages reach the deployment by translation.
	if a := e.do("GET", "/v1/models", key, ""); !strings.Contains(a.raw, `"protocols":["chat","responses","messages"]`) {
		t.Errorf("models: %s", a.raw)
	}
}
