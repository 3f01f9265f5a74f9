package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"time"

	fb "farebox"
	"farebox/pricing"
)

// chunk is what the gateway reads of a stream event.
type chunk struct {
	ID      string `json:"id"`
	Created int64  `json:"created"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Content          string `json:"content"`
			ReasoningContent string `json:"reasoning_content"`
			Refusal          string `json:"refusal"`
			ToolCalls        []struct {
				Function struct {
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
	} `json:"choices"`
	Usage json.RawMessage `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// tokens is the gateway's count of the output a chunk delivers.
func (c *chunk) tokens() int64 {
	var n int64
	for i := range c.Choices {
		d := &c.Choices[i].Delta
		n += pricing.CountTokens(d.Content) + pricing.CountTokens(d.ReasoningContent) + pricing.CountTokens(d.Refusal)
		for _, t := range d.ToolCalls {
			n += pricing.CountTokens(t.Function.Arguments)
		}
	}
	return n
}

// relayStream relays a stream event by event as it arrives, counting the
// output it delivers. It ends the stream itself, cleanly and the way its
// protocol ends one, where the output would pass the held cap; it keeps
// back the upstream's usage and final events and sends them after
// settlement with cost and balance added. Cost and balance also go out as
// HTTP trailers. What is protocol's own — reading an event, its tokens,
// its usage, the end — is the streamer's (newStreamer).
//
// Each write has a deadline: a client that stops reading is a client that
// left. After the client left, or the cap ended the stream, the upstream is
// read on (for DrainTimeout at most) to the usage it reports at its end,
// which the charge then comes from: the gateway's own count is an
// estimate. While the stream runs, its hold is extended and what it has
// delivered is kept in the spool every second, so a crash still charges
// it. An answer that turns out not to be a stream is relayed whole; its
// error, if any, is returned.
func (g *Gateway) relayStream(w http.ResponseWriter, resp *http.Response, x *exchange) error {
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		// The upstream answered in one piece after all.
		return g.relayBody(w, resp, x)
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("Trailer", "X-Farebox-Cost, X-Farebox-Balance")
	rc := http.NewResponseController(w)
	write := func(b ...[]byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(g.cfg.WriteTimeout))
		for _, p := range b {
			if _, err := w.Write(p); err != nil {
				return false
			}
		}
		return rc.Flush() == nil
	}
	// From the first byte on, a client that leaves is noticed by the
	// writes, and the upstream is drained.
	x.relaying.Store(true)
	w.WriteHeader(http.StatusOK)
	write()

	var (
		rd        = bufio.NewReaderSize(resp.Body, 16<<10)
		line      []byte
		name      []byte // the event: field of the event being read
		st        = newStreamer(x, g.clock.Now)
		usage     *fb.Quantities
		delivered int64 // output tokens, counted
		forwarded bool  // any event reached the client
		status    = StatusOK
		done      bool
		draining  bool // the client left, or the cap ended the stream
		drained   int  // bytes read since
		capTotal  = x.capTok * x.req.n
	)
	idle := time.AfterFunc(g.cfg.StreamIdleTimeout, func() { x.cancel(errIdle) })
	defer idle.Stop()
	drain := func(why string) {
		status, draining = why, true
		time.AfterFunc(g.cfg.DrainTimeout, func() { x.cancel(errDrained) })
	}
	for {
		var err error
		line, err = readLine(rd, line[:0])
		idle.Reset(g.cfg.StreamIdleTimeout)
		if err != nil {
			if !draining {
				switch context.Cause(x.ctx) {
				case errHoldLost:
					status = StatusHoldLost
				case errIdle, context.DeadlineExceeded:
					status = StatusTimeout
				default:
					status = StatusDisconnected
				}
			}
			break
		}
		if draining {
			if drained += len(line); drained > maxDrain {
				break
			}
		}
		if len(line) == 0 { // an event's end
			name = name[:0]
			continue
		}
		if ev, ok := bytes.CutPrefix(line, []byte("event:")); ok {
			name = append(name[:0], bytes.TrimSpace(ev)...)
			continue
		}
		payload, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			if line[0] == ':' && !draining { // a comment, such as a keep-alive
				if !write(line, []byte("\n\n")) {
					drain(StatusClientGone)
				}
			}
			continue // other fields are no protocol's
		}
		payload = bytes.TrimPrefix(payload, []byte(" "))
		room := capTotal - delivered
		if draining {
			room = -1
		}
		e := st.event(name, payload, room)
		if e.usage != nil {
			usage = e.usage
		}
		switch {
		case e.bad:
			if !draining {
				status = StatusMalformed
			}
		case e.failed:
			if !draining {
				write(e.out[:]...)
				forwarded = true
				status = StatusUpstream
			}
		case e.done:
			done = true
		}
		if e.bad || e.failed || e.done {
			break
		}
		if draining {
			continue
		}
		if e.over {
			drain(StatusCapped)
			continue
		}
		if e.tokens > 0 && x.ttft == 0 {
			x.ttft = g.clock.Now().Sub(x.start)
		}
		if e.out[0] == nil {
			continue // kept back, or nothing to send
		}
		if !write(e.out[:]...) {
			drain(StatusClientGone)
			continue
		}
		delivered += e.tokens
		forwarded = true
		g.progress(x, delivered)
	}
	resp.Body.Close()

	q := fb.Quantities{Requests: 1, InputTokens: x.req.promptEstimate(x.dep), OutputTokens: delivered}
	if usage != nil && (status == StatusOK || status == StatusCapped || status == StatusClientGone) {
		// What the upstream reports is what it did (and bills): the
		// gateway's count is an estimate, low for scripts whose
		// characters take a token each.
		q = *usage
	}
	if status == StatusOK && !done {
		status = StatusDisconnected
	}
	// Charged: a stream that ran its course (or that the upstream reported
	// the usage of), or anything that reached the client. Not charged: a
	// stream that broke before delivering anything.
	charge := status == StatusOK || status == StatusCapped || forwarded && delivered > 0 || usage != nil && status == StatusClientGone
	err := g.settle(x, &q, status, charge)
	if charge {
		h.Set("X-Farebox-Cost", x.cost.String())
	} else {
		h.Set("X-Farebox-Cost", "0")
	}
	if !x.spooled {
		h.Set("X-Farebox-Balance", x.balance.String())
	}
	switch {
	case status == StatusClientGone:
	case err != nil && !x.spooled:
		g.writeStreamError(w, st, err)
	case status == StatusHoldLost:
		g.writeStreamError(w, st, fb.ErrStoreUnavailable.New("the ledger could not record this request's hold; retry"))
	case status != StatusOK && status != StatusCapped:
		g.writeStreamError(w, st, fb.Errorf(fb.EUpstream, "the model %s broke off the stream (%s)", x.req.model, status).WithCode(status))
	default:
		end := st.end(status == StatusCapped, q)
		ad := x.suggestion()
		if ad == nil {
			write(end)
			break
		}
		// One more chunk, the last before [DONE]; the impression is
		// charged once the stream's end reached the connection.
		x.delivered(write(withSuggestion(end, st, x, ad)))
	}
	return nil
}

// maxDrain bounds what is read of a stream after the client left or the
// cap ended it.
const maxDrain = 8 << 20

// usageEvent is the usage chunk the client asked for: the upstream's, with
// cost and balance added, or one made from the gateway's own count.
func usageEvent(upstream []byte, q fb.Quantities, x *exchange, last chunk) []byte {
	var c map[string]json.RawMessage
	if upstream != nil && json.Unmarshal(upstream, &c) == nil {
		var u map[string]json.RawMessage
		if json.Unmarshal(c["usage"], &u) == nil && u != nil {
			u["cost"], _ = json.Marshal(x.cost.String())
			u["balance"] = x.balanceJSON()
			c["usage"], _ = json.Marshal(u)
			c["model"], _ = json.Marshal(x.req.model)
			b, _ := json.Marshal(c)
			return b
		}
	}
	in, out := q.InputTokens+q.CachedInputTokens, q.OutputTokens+q.ReasoningTokens
	b, _ := json.Marshal(map[string]any{
		"id": last.ID, "object": "chat.completion.chunk", "created": last.Created, "model": x.req.model, "choices": []any{},
		"usage": map[string]any{"prompt_tokens": in, "completion_tokens": out, "total_tokens": in + out, "cost": x.cost.String(), "balance": x.balanceJSON()},
	})
	return b
}

func withoutUsage(payload []byte) []byte {
	var c map[string]json.RawMessage
	if json.Unmarshal(payload, &c) != nil {
		return payload
	}
	delete(c, "usage")
	b, err := json.Marshal(c)
	if err != nil {
		return payload
	}
	return b
}

// writeStreamError ends a stream with an error event of its protocol.
func (g *Gateway) writeStreamError(w http.ResponseWriter, st streamer, err error) {
	if _, ok := err.(*fb.Error); !ok {
		g.log.Error("a stream ended in an internal error", "err", err)
	}
	w.Write(st.fail(err))
	http.NewResponseController(w).Flush()
}

// readLine reads one line without its end (\n or \r\n) into buf.
func readLine(rd *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		part, err := rd.ReadSlice('\n')
		buf = append(buf, part...)
		if err == bufio.ErrBufferFull {
			if len(buf) > 8<<20 {
				return nil, errors.New("an SSE line over 8 MiB")
			}
			continue
		}
		if err != nil {
			if err == io.EOF && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		buf = bytes.TrimSuffix(buf[:len(buf)-1], []byte("\r"))
		return buf, nil
	}
}
