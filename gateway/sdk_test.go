package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	fb "farebox"
	"farebox/gateway"
	"farebox/pricing"
	"farebox/simulator"
)

// The official OpenAI Go SDK, pointed at Farebox by its base URL.
func TestOpenAISDK(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	key, _ := e.customer("acme", "100", nil)
	client := openai.NewClient(option.WithBaseURL(e.url+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0),
		option.WithHTTPClient(e.client), option.WithHeader(simulator.TokensHeader, "12"))
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say something short.")},
	}
	want := cost(promptTokens, 12)

	t.Run("non-stream", func(t *testing.T) {
		c, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if c.Usage.CompletionTokens != 12 || c.Usage.PromptTokens != promptTokens || len(c.Choices) != 1 || c.Choices[0].Message.Content == "" {
			t.Errorf("completion %+v", c)
		}
		if got := extra(t, c.Usage.RawJSON(), "cost"); got != want.String() {
			t.Errorf("usage.cost %q, want %s", got, want)
		}
	})

	for _, asked := range []bool{false, true} {
		name := "stream"
		p := params
		if asked {
			name = "stream with include_usage"
			p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		}
		t.Run(name, func(t *testing.T) {
			s := client.Chat.Completions.NewStreaming(ctx, p)
			acc := openai.ChatCompletionAccumulator{}
			var usageChunks int
			var usageCost string
			for s.Next() {
				ch := s.Current()
				acc.AddChunk(ch)
				if ch.JSON.Usage.Valid() && ch.Usage.TotalTokens > 0 {
					usageChunks++
					usageCost = extra(t, ch.Usage.RawJSON(), "cost")
				}
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			if text := acc.Choices[0].Message.Content; strings.Count(text, " ") != 12 {
				t.Errorf("streamed text %q is not 12 tokens", text)
			}
			switch {
			case asked && (usageChunks != 1 || usageCost != want.String()):
				t.Errorf("usage chunks %d with cost %q, want 1 with %s", usageChunks, usageCost, want)
			case !asked && usageChunks != 0:
				t.Errorf("%d usage chunks the client did not ask for", usageChunks)
			}
		})
	}

	t.Run("embeddings", func(t *testing.T) {
		r, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: "text-embedding-3-small",
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"hello", "world"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data) != 2 || len(r.Data[0].Embedding) == 0 || r.Usage.PromptTokens != 2*pricing.CountTokens("hello") {
			t.Errorf("embeddings %+v", r)
		}
	})

	t.Run("402 as an API error", func(t *testing.T) {
		poor, _ := e.customer("poor", "0.000001", nil)
		c := openai.NewClient(option.WithBaseURL(e.url+"/v1"), option.WithAPIKey(poor), option.WithMaxRetries(0), option.WithHTTPClient(e.client))
		_, err := c.Chat.Completions.New(ctx, params)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("want *openai.Error, got %v", err)
		}
		if apiErr.StatusCode != 402 || apiErr.Type != "insufficient_credits" || apiErr.Code != "insufficient_credits" {
			t.Errorf("status %d type %q code %q", apiErr.StatusCode, apiErr.Type, apiErr.Code)
		}
		if a := e.account("poor"); a.Charged != 0 {
			t.Errorf("a refused request charged %s", a.Charged)
		}
	})
	if acct := e.account("acme"); acct.Charged <= 0 || acct.Charged > fb.Amount(100*fb.Micro) {
		t.Errorf("charged %s", acct.Charged)
	}
}

// extra reads a field of a raw JSON object as a string.
func extra(t *testing.T, raw, field string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("usage %q: %v", raw, err)
	}
	s, _ := m[field].(string)
	return s
}
