package app

import (
	"log/slog"
	"slices"
	"strings"
	"testing"

	"farebox/routing"
)

// TestProviderTypes: anthropic and azure providers become deployments
// that speak their protocols, with their URL shape and key header; the
// config's protocols, api_version and cache-write cost are checked.
func TestProviderTypes(t *testing.T) {
	env := func(k string) string { return map[string]string{"AK": "ant-key", "ZK": "az-key"}[k] }
	ps := []Provider{
		{Name: "anthropic", Type: routing.TypeAnthropic, BaseURL: "https://api.anthropic.com/v1/", APIKeyEnv: "AK",
			Models: []Model{{Model: "claude-sonnet-4", Upstream: "claude-sonnet-4-20250514", AllowBetas: []string{"context-1m-2025-08-07"}}}},
		{Name: "azure", Type: routing.TypeAzure, BaseURL: "https://res.openai.azure.com", APIKeyEnv: "ZK", APIVersion: "2025-01-01",
			Protocols: []string{"chat", "responses"}, Models: []Model{{Model: "gpt-4o", Upstream: "my-4o", ProviderState: true},
				{Model: "text-embedding-3-small", Upstream: "my-emb"}}},
	}
	u, err := buildUpstreams(ps, nil, env, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer u.close()
	a := u.router.Deployments("claude-sonnet-4")[0]
	if !slices.Equal(a.Protocols, []string{"messages"}) || a.Endpoint("messages") != "https://api.anthropic.com/v1/messages" || a.ToolOverhead != 346 || !a.AllowBetas["context-1m-2025-08-07"] {
		t.Errorf("anthropic: %+v", a)
	}
	if a.Cost.CacheWritePerMTok != 3_750_000 {
		t.Errorf("anthropic cache write cost %s, want the list price × 1.25 (3.75)", a.Cost.CacheWritePerMTok)
	}
	z := u.router.Deployments("gpt-4o")[0]
	if !slices.Equal(z.Protocols, []string{"chat", "responses"}) || !z.ProviderState ||
		z.Endpoint("chat") != "https://res.openai.azure.com/openai/deployments/my-4o/chat/completions?api-version=2025-01-01" ||
		z.Endpoint("responses") != "https://res.openai.azure.com/openai/responses?api-version=2025-01-01" {
		t.Errorf("azure: %+v %s", z, z.Endpoint("chat"))
	}
	if emb := u.router.Deployments("text-embedding-3-small")[0]; !slices.Equal(emb.Protocols, []string{"embeddings"}) {
		t.Errorf("azure embeddings: %v", emb.Protocols)
	}
	for _, c := range []struct {
		p    Provider
		want string
	}{
		{Provider{Name: "x", Type: routing.TypeAnthropic, BaseURL: "https://a/v1", Protocols: []string{"chat"}, Models: []Model{{Model: "claude-x"}}}, "protocols is for openai and azure"},
		{Provider{Name: "x", Type: routing.TypeOpenAI, BaseURL: "https://a/v1", APIVersion: "1", Models: []Model{{Model: "gpt-4o"}}}, "api_version is for azure"},
		{Provider{Name: "x", Type: routing.TypeOpenAI, BaseURL: "https://a/v1", Protocols: []string{"messages"}, Models: []Model{{Model: "gpt-4o"}}}, "does not speak messages"},
		{Provider{Name: "x", Type: "bedrock", BaseURL: "https://a", Models: []Model{{Model: "gpt-4o"}}}, "must be openai, anthropic, azure or simulated"},
	} {
		if _, err := buildUpstreams([]Provider{c.p}, nil, env, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.p, err, c.want)
		}
	}
}
