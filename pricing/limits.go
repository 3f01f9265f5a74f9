package pricing

import "strings"

// What a model may bill for input beyond the text of a request: an image
// part and the whole context window. The gateway holds a request's worst
// case before it runs, so these are maxima, never averages: whatever the
// image's real size, it is held at its model's largest.

// ImageTokens is the most input tokens one image part can be billed at,
// by the detail the request asks for (auto counts as high).
type ImageTokens struct {
	Low  int64 `json:"low"`
	High int64 `json:"high"`
}

// For is the bound of an image of detail ("low", "high", "auto" or "").
func (t ImageTokens) For(detail string) int64 {
	if detail == "low" {
		return t.Low
	}
	return t.High
}

// Limits are the input limits of a model.
type Limits struct {
	// Image bounds one image part.
	Image ImageTokens
	// ContextWindow is the most tokens a prompt may have: a provider
	// refuses a longer one (400, unbilled), so no request is billed for
	// more input. 0: unknown.
	ContextWindow int64
}

// OpenAI's published image costs (2025). Tile models: an image is scaled
// to fit 2048×2048, then its short side to 768, and costs base + per tile
// of 512×512 at high detail — at most 2×4 = 8 tiles — and base at low.
// Patch models: 32×32 patches, capped at 1,536, times a multiplier,
// whatever the detail.
func tiles(base, perTile int64) ImageTokens {
	return ImageTokens{Low: base, High: base + 8*perTile}
}

func patches(multiplierMilli int64) ImageTokens {
	n := (1536*multiplierMilli + 999) / 1000
	return ImageTokens{Low: n, High: n}
}

// knownLimits are matched by model name prefix, the longest first.
var knownLimits = []struct {
	prefix string
	limits Limits
}{
	{"gpt-4o-mini", Limits{tiles(2833, 5667), 128_000}},
	{"gpt-4.1-nano", Limits{patches(2460), 1_047_576}},
	{"gpt-4.1-mini", Limits{patches(1620), 1_047_576}},
	{"gpt-4.1", Limits{tiles(85, 170), 1_047_576}},
	{"gpt-4o", Limits{tiles(85, 170), 128_000}},
	{"chatgpt-4o", Limits{tiles(85, 170), 128_000}},
	{"gpt-4.5", Limits{tiles(85, 170), 128_000}},
	{"o4-mini", Limits{patches(1720), 200_000}},
	{"o3-mini", Limits{MaxImageTokens, 200_000}},
	{"o3", Limits{tiles(75, 150), 200_000}},
	{"o1", Limits{tiles(75, 150), 200_000}},
	{"gpt-5", Limits{MaxImageTokens, 400_000}},
	{"claude", Limits{MaxImageTokens, 200_000}},
}

// MaxImageTokens bounds an image part of a model whose own bound is not
// known: the largest of the published ones (gpt-4o-mini's 48,169 at high
// detail). An operator who knows better sets the model's image_tokens.
var MaxImageTokens = tiles(2833, 5667)

// DefaultLimits are a model's input limits as published (2025), matched
// by name prefix; a model not known gets MaxImageTokens and no context
// window (so a request whose input only the window bounds — a file — is
// refused until the operator sets one).
func DefaultLimits(model string) Limits {
	best := -1
	for i, k := range knownLimits {
		if strings.HasPrefix(model, k.prefix) && (best < 0 || len(k.prefix) > len(knownLimits[best].prefix)) {
			best = i
		}
	}
	if best < 0 {
		return Limits{Image: MaxImageTokens}
	}
	return knownLimits[best].limits
}

// toolPrompts are the tokens of the system prompt Anthropic adds when a
// request carries tools (its published table, 2025: the larger of the
// tool_choice auto/none and any/tool figures), by model name prefix, the
// longest first.
var toolPrompts = []struct {
	prefix string
	tokens int64
}{
	{"claude-3-opus", 530},
	{"claude-3-sonnet", 235},
	{"claude-3-haiku", 340},
	{"claude-3-5-haiku", 340},
	{"claude-3-5-sonnet", 346},
	{"claude-3-7-sonnet", 346},
	{"claude-sonnet-4", 346},
	{"claude-opus-4", 346},
	{"claude-haiku-4", 346},
}

// ToolOverhead is the hidden prompt, in tokens, a Messages provider adds
// to a request of model with tools: Anthropic's table for claude models
// (530, its largest, for a claude model not in it), 0 for others.
func ToolOverhead(model string) int64 {
	best, n := -1, int64(0)
	for _, t := range toolPrompts {
		if strings.HasPrefix(model, t.prefix) && len(t.prefix) > best {
			best, n = len(t.prefix), t.tokens
		}
	}
	if best < 0 && strings.HasPrefix(model, "claude") {
		return 530
	}
	return n
}
