package gateway

import (
	"bytes"
	"context"
	"net/http"
	"time"

	"farebox/routing"
	"farebox/sponsored"
)

// NoSuggestionsHeader opts a request out of sponsored suggestions.
const NoSuggestionsHeader = "X-Farebox-No-Suggestions"

// SuggestionField is where a response carries its suggestion: a top-level
// field of the completion, or of one extra chunk of a stream.
const SuggestionField = "farebox_suggestion"

// sponsorship is the placement of a suggestion for one request: decided
// and held while the upstream answers, added to the response, and shown
// (charged) once the response is delivered, or dropped.
type sponsorship struct {
	ch    chan *sponsored.Placement
	taken bool
	p     *sponsored.Placement
}

// sponsor starts placing a suggestion for x, when its plan has them, its
// request did not opt out, and it is a chat with a user message; the
// customer's own opt-out the sponsor checks. Only chat completions carry
// one (whatever protocol their deployment speaks). It runs beside the upstream
// call, so a decision moment costs the response no time.
func (g *Gateway) sponsor(x *exchange) {
	q := x.req
	if g.sponsorer == nil || q.proto != routing.ProtoChat || q.embedding || x.plan == nil || !x.plan.Sponsored || q.lastUser == "" ||
		x.client.Header.Get(NoSuggestionsHeader) == "1" {
		return
	}
	holdFor := g.cfg.holdTTL()
	if q.stream {
		holdFor = g.cfg.StreamTimeout + time.Minute
	}
	ask := sponsored.Ask{Customer: x.key.Customer, Plan: x.plan.ID, KeyID: x.key.ID, User: q.user, Text: q.lastUser,
		BaseURL: baseURL(x.client), HoldFor: holdFor}
	x.ad = &sponsorship{ch: make(chan *sponsored.Placement, 1)}
	go func(ch chan<- *sponsored.Placement) {
		// Its own time: placing is a few store and ledger ops, and a
		// request that ends early waits for it (endSponsorship).
		ctx, cancel := context.WithTimeout(context.WithoutCancel(x.ctx), placeTimeout)
		defer cancel()
		ch <- g.sponsorer.Place(ctx, ask)
	}(x.ad.ch)
}

// placeTimeout bounds the placing of a suggestion.
const placeTimeout = 10 * time.Second

// baseURL is the address a request came to, for click links when no
// public URL is configured.
func baseURL(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// suggestion is the placement to add to x's response, nil for none. It
// waits for the placement to be decided (it has, as a rule, long before
// the upstream answered), as long as the exchange lives.
func (x *exchange) suggestion() *sponsored.Placement {
	if x.ad == nil || x.ad.taken {
		return nil
	}
	select {
	case x.ad.p = <-x.ad.ch:
		x.ad.taken = true
	case <-x.ctx.Done():
		return nil
	}
	return x.ad.p
}

// delivered ends x's suggestion: shown (charged) when the response that
// carries it was delivered, dropped (released) when not.
func (x *exchange) delivered(ok bool) {
	if x.ad == nil || x.ad.p == nil {
		return
	}
	if ok {
		x.ad.p.Shown(x.ctx)
	} else {
		x.ad.p.Dropped(x.ctx)
	}
}

// endSponsorship drops a suggestion that no response carried (the request
// failed, or ended before its answer), waiting for its placement to be
// decided if it is not yet (placeTimeout at most): what it held is given
// back before the request ends.
func (x *exchange) endSponsorship() {
	if x.ad == nil {
		return
	}
	if !x.ad.taken {
		x.ad.p, x.ad.taken = <-x.ad.ch, true
	}
	if x.ad.p != nil {
		x.ad.p.Dropped(x.ctx) // a no-op when it was shown
	}
}

// suggestionChunk is a stream's extra chunk carrying a suggestion, shaped
// like the usage chunk (no choices), so that every SDK takes it.
func suggestionChunk(id string, created int64, model string, p *sponsored.Placement) []byte {
	return sse("", map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
		"choices": []any{}, SuggestionField: p.JSON()})
}

// chunkIdentity is a chat stream's id and creation time, which its
// chunks share (chatStream, messagesToChatStream).
type chunkIdentity interface {
	identity() (id string, created int64)
}

var doneEvent = []byte("data: [DONE]\n\n")

// withSuggestion is a chat stream's end with the suggestion's chunk as
// its last before [DONE].
func withSuggestion(end []byte, st streamer, x *exchange, p *sponsored.Placement) []byte {
	id, created := x.id, x.start.Unix()
	if c, ok := st.(chunkIdentity); ok {
		if cid, cc := c.identity(); cid != "" {
			id, created = cid, cc
		}
	}
	rest, ok := bytes.CutSuffix(end, doneEvent)
	if !ok {
		return end // not a chat stream's end: no suggestion (sponsor places none)
	}
	out := append([]byte(nil), rest...)
	out = append(out, suggestionChunk(id, created, x.req.model, p)...)
	return append(out, doneEvent...)
}
