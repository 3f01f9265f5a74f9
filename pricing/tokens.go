package pricing

// Token counting without a vocabulary. Two numbers matter to the gateway:
//
//   - an upper bound of a request's input tokens, held before the request
//     runs. Every token of a byte-level BPE vocabulary is at least one
//     byte, so a text has at most as many tokens as bytes; a chat request's
//     JSON body spends more bytes on each message ("role", quotes, braces:
//     over 20) than a chat template spends tokens on it (about 4), so the
//     body's length bounds the prompt's tokens. Images are not text: each
//     image part adds ImageTokenBound.
//   - an estimate of tokens delivered, charged when an upstream reports no
//     usage: CountTokens, about four bytes per token.
//
// The simulator reports usage with the same estimate, so a request charged
// from the gateway's own count costs what it would have from reported usage.

// ImageTokenBound bounds the input tokens of one image part: the largest
// high-detail image of OpenAI's published tiling (2048×768 after scaling,
// 8 tiles × 170 + 85) is 1,445 tokens.
const ImageTokenBound = 2000

// MessageOverhead is the estimate of the tokens a chat template adds per
// message, and ReplyOverhead those that prime the reply.
const (
	MessageOverhead = 3
	ReplyOverhead   = 3
)

// CountTokens estimates the tokens of s: one per four bytes, rounded up.
func CountTokens(s string) int64 {
	return (int64(len(s)) + 3) / 4
}

// PromptTokens estimates the prompt tokens of a chat whose messages'
// texts are given: each text's CountTokens plus MessageOverhead per message
// and ReplyOverhead.
func PromptTokens(texts []string) int64 {
	n := int64(ReplyOverhead)
	for _, t := range texts {
		n += CountTokens(t) + MessageOverhead
	}
	return n
}

// InputBound is the proven upper bound of the input tokens of a request
// whose JSON body is bodyLen bytes long with images image parts.
func InputBound(bodyLen, images int) int64 {
	return int64(bodyLen) + int64(images)*ImageTokenBound
}
