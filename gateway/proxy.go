package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	fb "farebox"
	"farebox/httpx"
	"farebox/pricing"
	"farebox/routing"
)

// Status says how a request ended; it is kept in the usage row.
const (
	StatusOK           = "ok"
	StatusCapped       = "capped"         // ended by the gateway at the held output cap
	StatusUpstream     = "upstream_error" // the upstream failed before anything was delivered
	StatusRateLimited  = "upstream_rate_limited"
	StatusRejected     = "upstream_rejected" // the upstream refused the request (4xx)
	StatusTimeout      = "upstream_timeout"
	StatusDisconnected = "upstream_disconnected" // the upstream broke off mid-stream
	StatusMalformed    = "upstream_malformed"
	StatusTooLarge     = "upstream_too_large" // an answer larger than the gateway relays
	StatusClientGone   = "client_cancelled"
	StatusHoldLost     = "hold_lost" // the ledger could not commit the request's hold
	// StatusInterrupted marks what a stream had delivered when the
	// process stopped in its middle, charged from the spool at restart.
	StatusInterrupted = "interrupted"
)

// Why an exchange's context ends, when the gateway ends it.
var (
	errClientGone = errors.New("the client went away")
	errHoldLost   = errors.New("the ledger lost the request's hold")
	errFirstByte  = errors.New("no response headers in time")
	errIdle       = errors.New("no stream event in time")
	errDrained    = errors.New("the stream's end did not come in time")
)

// exchange is one gateway request on its way through.
type exchange struct {
	id    string
	key   fb.APIKey
	req   *request
	price fb.Price
	plan  *fb.Plan
	// requested is the model the client asked for when the plan's
	// downgrade serves it by a cheaper one (req.model), "" otherwise.
	requested string
	hold      string    // hold id
	held      fb.Amount // reserved
	capTok    int64     // output tokens per choice the upstream may produce
	tpmEst    int64     // tokens admitted by the rate limiter
	start     time.Time
	ttft      time.Duration
	dep       *routing.Deployment   // the one serving (or last tried)
	order     []*routing.Deployment // those to try, in order
	settled   bool
	cost      fb.Amount
	balance   fb.Amount
	// spooled: the settlement was left to the spool, so the balance after
	// it is not known.
	spooled bool
	client  *http.Request
	writer  http.ResponseWriter
	wire    string // the protocol dep is spoken to in

	// ctx is the exchange's own context, not the client's: a stream is
	// read to its usage report after the client left. cancel ends it with
	// a cause (errClientGone, errHoldLost, …). Once relaying, the
	// client's departure is noticed at the next write instead.
	ctx      context.Context
	cancel   context.CancelCauseFunc
	relaying atomic.Bool

	// ad is the sponsored suggestion being placed for the response, nil
	// when it can carry none.
	ad *sponsorship

	// A running stream's progress in the spool and its hold's extension.
	lastSpool time.Time
	inSpool   bool
	extendAt  time.Time
	extending atomic.Bool
}

// Chat is POST /v1/chat/completions.
func (g *Gateway) Chat(w http.ResponseWriter, r *http.Request) error {
	return g.serve(w, r, parseChat)
}

// Embeddings is POST /v1/embeddings.
func (g *Gateway) Embeddings(w http.ResponseWriter, r *http.Request) error {
	return g.serve(w, r, parseEmbeddings)
}

// Responses is POST /v1/responses (OpenAI's Responses API).
func (g *Gateway) Responses(w http.ResponseWriter, r *http.Request) error {
	return g.serve(w, r, parseResponses)
}

// Messages is POST /v1/messages (Anthropic's Messages API): its errors are
// answered in Anthropic's shape.
func (g *Gateway) Messages(w http.ResponseWriter, r *http.Request) error {
	if err := g.serve(w, r, parseMessages); err != nil {
		g.writeAnthropicError(w, r, err)
	}
	return nil
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, parse func([]byte, http.Header) (*request, error)) error {
	// A request refused before its body is read closes its connection:
	// net/http would otherwise read the body first, waiting on a client
	// that never sends it.
	refuse := func(err error) error {
		if r.ContentLength != 0 {
			w.Header().Set("Connection", "close")
		}
		return err
	}
	key, err := g.Authenticate(r)
	if err != nil {
		return refuse(err)
	}
	if lim := g.cfg.MaxConcurrentPerCustomer; lim > 0 {
		if !g.busy.acquire(key.Customer, lim) {
			w.Header().Set("Retry-After", "1")
			return refuse(fb.Errorf(fb.ERateLimited, "at most %d requests of one customer run at once; retry when one has finished", lim).WithCode("concurrency_limited"))
		}
		defer g.busy.release(key.Customer)
	}
	start := g.clock.Now()
	plan, err := g.plan(r.Context(), key.Customer)
	if err != nil {
		return refuse(err)
	}
	// Requests per minute before the body is read: a client past its
	// rate costs no reading. A key's own rate counts beside its plan's.
	if plan != nil {
		if ok, wait := g.limits.admitRequest(key.Customer, plan.RPM, start); !ok {
			return refuse(rateLimited(w, plan, wait))
		}
	}
	if key.RPM > 0 {
		if ok, wait := g.limits.admitRequest("\x1fkey\x1f"+key.ID, key.RPM, start); !ok {
			w.Header().Set("Retry-After", strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10))
			return refuse(fb.Errorf(fb.ERateLimited, "the key %s allows %d requests per minute; retry in %s", key.Prefix, key.RPM, wait.Round(time.Millisecond)).WithCode("key_rate_limited"))
		}
	}
	body, err := httpx.ReadBody(r, g.cfg.MaxBodyBytes, false)
	if err != nil {
		return err
	}
	q, err := parse(body, r.Header)
	if err != nil {
		return err
	}
	x := &exchange{id: w.Header().Get("X-Request-Id"), key: key, plan: plan, req: q, client: r, writer: w, start: start}
	if x.id == "" {
		x.id = g.newID("req_")
	}
	timeout := g.cfg.RequestTimeout
	if q.stream {
		timeout = g.cfg.StreamTimeout
	}
	ctx, cancelTimeout := context.WithTimeout(context.WithoutCancel(r.Context()), timeout)
	defer cancelTimeout()
	x.ctx, x.cancel = context.WithCancelCause(ctx)
	defer x.cancel(nil)
	stop := context.AfterFunc(r.Context(), func() {
		if !x.relaying.Load() {
			x.cancel(errClientGone)
		}
	})
	defer stop()
	err = g.admit(x)
	if to := downgradeOf(plan, q.model); err != nil && to != "" && fb.ErrorType(err) == fb.EInsufficientCredits {
		// The balance or the key's budget cannot pay the model's minimum:
		// the plan's cheaper model serves instead of a refusal.
		x.requested, q.model = q.model, to
		err = g.admit(x)
	}
	if err != nil {
		if errors.Is(err, fb.ErrKeyBudgetExceeded) && g.alerts != nil {
			g.alerts.BudgetExceeded(x.ctx, key, start)
		}
		return err
	}
	w.Header().Set("X-Farebox-Model", q.model)
	// From here a hold is open: every path settles it.
	defer func() {
		if !x.settled {
			g.settle(x, nil, StatusClientGone, false)
		}
	}()
	// A suggestion is placed while the upstream answers; one that no
	// delivered response carried is dropped.
	g.sponsor(x)
	defer x.endSponsorship()
	resp, err := g.send(x)
	if err != nil {
		return err
	}
	if resp == nil { // the upstream's own refusal was passed on
		return nil
	}
	defer resp.Body.Close()
	if q.stream {
		return g.relayStream(w, resp, x)
	}
	return g.relayBody(w, resp, x)
}

func rateLimited(w http.ResponseWriter, plan *fb.Plan, wait time.Duration) error {
	w.Header().Set("Retry-After", strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10))
	return fb.Errorf(fb.ERateLimited, "the plan %s allows %d requests and %d tokens per minute; retry in %s", plan.ID, plan.RPM, plan.TPM, wait.Round(time.Millisecond))
}

// admit runs everything before the upstream: entitlement, price, the
// deployments that may serve the request, the token rate limit, and the
// hold of the worst case, lowering the output cap to what the balance pays
// for.
func (g *Gateway) admit(x *exchange) error {
	q, ctx := x.req, x.ctx
	if err := entitled(x.plan, q.model); err != nil {
		return err
	}
	all := g.router.Deployments(q.model)
	card, err := g.cards.Card(ctx)
	if card == nil {
		return err
	}
	price, priced := card.At(q.model, x.start)
	served := false
	for _, d := range all {
		served = served || wireOf(q.proto, d) != ""
	}
	if !served || !priced {
		return fb.ErrModelNotFound.New("the model %s does not exist or is not served here on %s; GET /v1/models lists yours and their protocols", q.model, q.proto).WithParam("model")
	}
	x.price = price
	// The deployments that may serve it: those that speak its protocol
	// (or one it translates to), take every field it has and can bound
	// every part of it.
	can := map[*routing.Deployment]bool{}
	var refusal *fb.Error
	for _, d := range all {
		if wireOf(q.proto, d) == "" {
			continue
		}
		if e := q.servable(d); e != nil {
			refusal = cmp(refusal, e)
			continue
		}
		can[d] = true
	}
	if len(can) == 0 {
		return refusal
	}
	// The output cap: the client's, but never above the smallest output
	// limit of those deployments, so that whichever serves stays within
	// the hold.
	if !q.embedding {
		x.capTok = math.MaxInt64
		for d := range can {
			x.capTok = min(x.capTok, d.MaxOutputTokens)
		}
		if q.capTokens > 0 {
			x.capTok = min(x.capTok, q.capTokens)
		}
	}
	out, overflow := mulInt(x.capTok, q.n)
	if overflow {
		return fb.Invalid("n", "the output cap × n overflows")
	}
	guess := (int64(q.size) + 3) / 4 // input tokens, for limits and routing (not the held bound)
	if x.plan != nil && x.plan.TPM > 0 {
		x.tpmEst = guess + out
		if ok, wait := g.limits.admitTokens(x.key.Customer, x.plan.TPM, x.tpmEst, x.start); !ok {
			x.tpmEst = 0
			return rateLimited(x.writer, x.plan, wait)
		}
	}
	x.order = g.router.Order(q.model, fb.Quantities{InputTokens: guess, OutputTokens: out}, func(d *routing.Deployment) bool { return can[d] })
	// The worst case of whichever deployment serves: each bounds the
	// input its own way, and a Messages upstream may bill cache writes.
	var worst fb.Amount
	for _, d := range x.order {
		w, err := worstCase(price.Rates, q.cacheWrites(d), q.inputBound(d), out)
		if err != nil {
			g.unlimit(x, 0)
			return fb.Invalid("", "the request's worst-case price overflows")
		}
		worst = max(worst, w)
	}
	// The key's budget is checked and spent inside the same hold as the
	// balance, so concurrent requests on one key never pass it.
	budget := x.key.BudgetRef()
	res, err := g.ledger.Reserve(ctx, fb.Op{
		Kind: fb.OpHold, Customer: x.key.Customer, Amount: max(worst, 1),
		TTL: g.cfg.holdTTL(), AllowPartial: true, Budget: budget,
	}, func() { x.cancel(errHoldLost) })
	if errors.Is(err, fb.ErrBudgetExceeded) {
		err = fb.ErrKeyBudgetExceeded.New("the key %s has spent its budget of %s for this %s", x.key.Prefix, budget.Limit, budget.Period)
	}
	if err != nil {
		g.unlimit(x, 0)
		return err
	}
	x.hold, x.held = res.Hold.ID, res.Hold.Amount
	x.lastSpool, x.extendAt = x.start, x.start.Add(g.cfg.RequestTimeout/2)
	if x.held < worst {
		per := int64(math.MaxInt64)
		for _, d := range x.order {
			per = min(per, affordable(price.Rates, q.cacheWrites(d), x.held, q.inputBound(d)))
		}
		per /= q.n
		if need := min(g.cfg.MinOutputTokens, max(x.capTok, 1)); per < need {
			g.release(x)
			g.unlimit(x, 0)
			x.settled = false
			if budget != nil && res.Balance > 0 {
				// Credit was left after the hold took what it could: the
				// key's budget was what held it short.
				return fb.ErrKeyBudgetExceeded.New("the key %s has %s of its budget left, which pays for %d output tokens of %s; at least %d are needed",
					x.key.Prefix, x.held, max(per, 0), q.model, need)
			}
			return fb.Errorf(fb.EInsufficientCredits, "the balance of %s credits pays for %d output tokens of %s; at least %d are needed (this request may cost up to %s)",
				x.held, max(per, 0), q.model, need, worst)
		}
		if !q.embedding {
			x.capTok = min(x.capTok, per)
		}
	}
	return nil
}

// downgradeOf is the cheaper model the plan serves model by when credit
// runs short, "" for none.
func downgradeOf(p *fb.Plan, model string) string {
	if p == nil {
		return ""
	}
	if to := p.Downgrade[model]; to != model {
		return to
	}
	return ""
}

// cmp keeps the first refusal.
func cmp(first, e *fb.Error) *fb.Error {
	if first != nil {
		return first
	}
	return e
}

// send forwards the request to the model's deployments in order, moving
// on while nothing has been delivered (connect errors, 5xx, 429, the
// provider refusing the gateway's own key, no headers in time). It answers
// the first success; or nil after passing an upstream's refusal (4xx) to
// the client; or the last error, the request settled as not delivered.
// Outcomes the client caused (it went away) never count against a
// deployment.
func (g *Gateway) send(x *exchange) (*http.Response, error) {
	var last error
	status := StatusUpstream
	for _, d := range x.order {
		x.dep, x.wire = d, wireOf(x.req.proto, d)
		body, err := x.req.upstreamBody(d, x.wire, x.capTok)
		if err != nil {
			g.settle(x, nil, StatusRejected, false)
			return nil, err
		}
		t0 := g.clock.Now()
		resp, err := g.post(d, x, body)
		if err == nil && resp.StatusCode < 300 {
			g.router.Success(d, g.clock.Now().Sub(t0))
			if !x.req.stream {
				x.ttft = g.clock.Now().Sub(x.start) // the answer's first byte; a stream's is its first token
			}
			return resp, nil
		}
		if resp != nil && err == nil && (resp.StatusCode < 400 || resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests ||
			resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			defer resp.Body.Close()
		}
		switch cause := context.Cause(x.ctx); {
		case cause == errHoldLost:
			g.settle(x, nil, StatusHoldLost, false)
			return nil, fb.ErrStoreUnavailable.New("the ledger could not record this request's hold; retry")
		case cause == errClientGone:
			g.settle(x, nil, StatusClientGone, false)
			return nil, fb.Errorf(fb.EUpstream, "the client went away")
		}
		switch {
		case errors.Is(err, errFirstByte) || (err != nil && x.ctx.Err() != nil):
			g.failed(d, "timeout")
			status = StatusTimeout
			last = fb.Errorf(fb.EUpstreamTimeout, "the model %s did not answer in time", x.req.model)
		case err != nil:
			g.failed(d, "unreachable")
			status = StatusUpstream
			last = fb.Errorf(fb.EUpstream, "the model %s could not be reached", x.req.model).WithCode("upstream_unreachable")
			g.log.Warn("upstream unreachable", "deployment", d.Name, "request_id", x.id, "err", err)
		case resp.StatusCode == http.StatusTooManyRequests:
			g.failed(d, "rate_limited")
			status = StatusRateLimited
			last = fb.Errorf(fb.ERateLimited, "the model %s is busy upstream; retry later", x.req.model).WithCode("upstream_rate_limited")
		case resp.StatusCode >= 500:
			g.failed(d, "server_error")
			status = StatusUpstream
			last = fb.Errorf(fb.EUpstream, "the model %s failed upstream (HTTP %d)", x.req.model, resp.StatusCode)
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden || resp.StatusCode < 400:
			// The provider refused the operator's own credentials (or
			// redirected, which is not followed): nothing the customer
			// can mend, nor may see. The detail is the operator's.
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			g.failed(d, "refused")
			status = StatusUpstream
			last = fb.Errorf(fb.EUpstream, "the model %s failed upstream", x.req.model)
			g.log.Error("the upstream refused the gateway's request: check the deployment's credentials and URL", "deployment", d.Name, "status", resp.StatusCode, "request_id", x.id, "body", string(b))
		default:
			// The upstream refused the request itself: the client's to fix,
			// passed on as it is, charged nothing.
			defer resp.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			g.settle(x, nil, StatusRejected, false)
			w := x.writer
			if x.wire != x.req.proto {
				// In the client's protocol's error shape.
				b = refusalIn(x.req.proto, resp.StatusCode, b)
			}
			w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
			w.WriteHeader(resp.StatusCode)
			w.Write(b)
			return nil, nil
		}
		if x.ctx.Err() != nil {
			break
		}
	}
	g.settle(x, nil, status, false)
	return nil, last
}

// failed records a deployment's failure to serve, of a kind: its health,
// and the metrics.
func (g *Gateway) failed(d *routing.Deployment, kind string) {
	g.router.Failure(d)
	g.obs.ObserveUpstreamError(d.Name, kind)
}

// post sends one attempt. A stream's wait for its response headers is
// bounded by the first-byte timeout; a non-stream answer's headers come
// when it is done, within the request's timeout.
func (g *Gateway) post(d *routing.Deployment, x *exchange, body []byte) (*http.Response, error) {
	actx, cancel := context.WithCancelCause(x.ctx)
	req, err := http.NewRequestWithContext(actx, http.MethodPost, d.Endpoint(x.wire), bytes.NewReader(body))
	if err != nil {
		cancel(nil)
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", x.client.Header.Get("Accept"))
	req.Header.Set("X-Request-Id", x.id)
	d.Authorize(req.Header)
	if x.wire == routing.ProtoMessages {
		req.Header.Set("anthropic-version", or(x.req.version, routing.DefaultAnthropicVersion))
		if len(x.req.betas) > 0 {
			req.Header.Set("anthropic-beta", strings.Join(x.req.betas, ","))
		}
	}
	for _, h := range d.ForwardHeaders {
		if v := x.client.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	var timer *time.Timer
	if x.req.stream {
		timer = time.AfterFunc(g.cfg.FirstByteTimeout, func() { cancel(errFirstByte) })
	}
	resp, err := d.Client.Do(req)
	stopped := timer == nil || timer.Stop()
	if err != nil {
		cancel(nil)
		if !stopped && context.Cause(actx) == errFirstByte {
			return nil, errFirstByte
		}
		return nil, err
	}
	// The attempt's context lives as long as its body.
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: func() { cancel(nil) }}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel func()
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// relayBody relays a non-stream answer: the upstream's JSON with the model
// name mapped back and usage.cost and usage.balance added.
func (g *Gateway) relayBody(w http.ResponseWriter, resp *http.Response, x *exchange) error {
	b, tail, whole, err := readAnswer(resp.Body, g.cfg.MaxAnswerBytes)
	if err != nil {
		status := StatusDisconnected
		switch context.Cause(x.ctx) {
		case errClientGone:
			status = StatusClientGone
		case errHoldLost:
			status = StatusHoldLost
		}
		g.settle(x, nil, status, false)
		return fb.Errorf(fb.EUpstream, "the model %s broke off its answer", x.req.model).WithCode("upstream_disconnected")
	}
	if !whole {
		// Too large to relay, but the upstream did the work: charged its
		// usage, read off the answer's end, or else the input held.
		q := fb.Quantities{Requests: 1, InputTokens: x.req.inputBound(x.dep)}
		if u := usageAtEnd(x.wire, tail); u != nil {
			q = *u
		}
		g.settle(x, &q, StatusTooLarge, true)
		return fb.Errorf(fb.EUpstream, "the model %s answered with more than the %d bytes the gateway relays; the request was charged %s", x.req.model, g.cfg.MaxAnswerBytes, x.cost).WithCode(StatusTooLarge)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(b, &body); err != nil || body == nil {
		g.settle(x, nil, StatusMalformed, false)
		return fb.Errorf(fb.EUpstream, "the model %s sent an answer that is not JSON", x.req.model).WithCode("upstream_malformed")
	}
	u := usageFrom(x.wire, body["usage"])
	var q fb.Quantities
	if u != nil {
		q = *u
	} else {
		q = x.counted(body)
	}
	if err := g.settle(x, &q, StatusOK, true); err != nil && !x.spooled {
		return err
	}
	var usage map[string]json.RawMessage
	if x.wire != x.req.proto {
		// Translated: the answer in the client's protocol, its usage the
		// upstream's counts in that protocol's shape.
		if x.wire == routing.ProtoMessages {
			body = messagesAnswerToChat(body, x.req.model, g.clock.Now())
		} else {
			body = chatAnswerToMessages(body, x.req.model)
		}
		usage = usageObject(x.req.proto, q)
	} else if u != nil {
		_ = json.Unmarshal(body["usage"], &usage)
	}
	if usage == nil {
		usage = usageObject(x.req.proto, q)
	}
	usage["cost"], _ = json.Marshal(x.cost.String())
	usage["balance"] = x.balanceJSON()
	body["usage"], _ = json.Marshal(usage)
	if _, ok := body["model"]; ok && x.dep.Upstream != x.req.model {
		body["model"], _ = json.Marshal(x.req.model)
	}
	ad := x.suggestion()
	if ad != nil {
		body[SuggestionField] = ad.JSON()
	}
	out, err := json.Marshal(body)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Farebox-Cost", x.cost.String())
	if !x.spooled {
		h.Set("X-Farebox-Balance", x.balance.String())
	}
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, werr := w.Write(out)
	if ad != nil {
		// Delivered: written and flushed to the connection. Only then
		// is the impression charged.
		if werr == nil {
			werr = http.NewResponseController(w).Flush()
		}
		x.delivered(werr == nil)
	}
	return nil
}

// balanceJSON is the balance after the request, or null when its
// settlement waits in the spool.
func (x *exchange) balanceJSON() json.RawMessage {
	if x.spooled {
		return json.RawMessage("null")
	}
	b, _ := json.Marshal(x.balance.String())
	return b
}

// tailSize is how much of the end of an answer too large to relay is kept
// to find its usage in.
const tailSize = 64 << 10

// readAnswer reads a non-stream answer of at most limit bytes. A larger
// one is read to its end, keeping only its last tailSize bytes: whole is
// false then.
func readAnswer(r io.Reader, limit int64) (b, tail []byte, whole bool, err error) {
	b, err = io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil || int64(len(b)) <= limit {
		return b, nil, true, err
	}
	tail = append([]byte(nil), b[max(0, len(b)-tailSize):]...)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := r.Read(buf)
		tail = append(tail, buf[:n]...)
		if len(tail) > 2*tailSize {
			tail = append(tail[:0], tail[len(tail)-tailSize:]...)
		}
		if rerr == io.EOF {
			return nil, tail, false, nil
		}
		if rerr != nil {
			return nil, nil, false, rerr
		}
	}
}

// usageAtEnd finds the usage object in the end of an answer in wire.
func usageAtEnd(wire string, tail []byte) *fb.Quantities {
	i := bytes.LastIndex(tail, []byte(`"usage"`))
	if i < 0 {
		return nil
	}
	rest := bytes.TrimLeft(tail[i+len(`"usage"`):], " \t\r\n")
	rest, ok := bytes.CutPrefix(rest, []byte(":"))
	if !ok {
		return nil
	}
	var raw json.RawMessage
	if json.NewDecoder(bytes.NewReader(rest)).Decode(&raw) != nil {
		return nil
	}
	return usageFrom(wire, raw)
}

// usageFrom reads a usage object of protocol wire; nil when there is none.
func usageFrom(wire string, raw json.RawMessage) *fb.Quantities {
	if len(raw) == 0 || isNull(raw) {
		return nil
	}
	var q fb.Quantities
	switch wire {
	case routing.ProtoResponses:
		var u responsesUsage
		if json.Unmarshal(raw, &u) != nil {
			return nil
		}
		q = u.quantities()
	case routing.ProtoMessages:
		var u messagesUsage
		if json.Unmarshal(raw, &u) != nil {
			return nil
		}
		q = u.quantities()
	default:
		var u usageJSON
		if json.Unmarshal(raw, &u) != nil {
			return nil
		}
		q = u.quantities()
	}
	return &q
}

// refusalIn is an upstream's refusal (4xx) of a translated request in the
// client's protocol's error shape, its message kept.
func refusalIn(proto string, status int, b []byte) []byte {
	var e struct {
		Message string `json:"message"`
		Error   struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	msg := or(e.Error.Message, e.Message)
	if msg == "" {
		msg = fmt.Sprintf("the model's provider refused the request (HTTP %d)", status)
	}
	if proto == routing.ProtoMessages {
		out, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": anthropicType(status), "message": msg}})
		return out
	}
	out, _ := json.Marshal(map[string]any{"error": map[string]any{"type": "invalid_request_error", "code": nil, "message": msg, "param": nil}})
	return out
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// counted is the gateway's own count of a non-stream answer without usage.
func (x *exchange) counted(body map[string]json.RawMessage) fb.Quantities {
	q := fb.Quantities{Requests: 1, InputTokens: x.req.promptEstimate(x.dep)}
	switch {
	case x.req.embedding:
		return q
	case x.wire == routing.ProtoResponses:
		q.OutputTokens = min(responsesOutput(body["output"]), x.capTok)
		return q
	case x.wire == routing.ProtoMessages:
		q.OutputTokens = min(messagesOutput(body["content"]), x.capTok)
		return q
	}
	var choices []struct {
		Message struct {
			Content   string `json:"content"`
			Refusal   string `json:"refusal"`
			ToolCalls []struct {
				Function struct {
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"message"`
	}
	_ = json.Unmarshal(body["choices"], &choices)
	for _, c := range choices {
		q.OutputTokens += pricing.CountTokens(c.Message.Content) + pricing.CountTokens(c.Message.Refusal)
		for _, t := range c.Message.ToolCalls {
			q.OutputTokens += pricing.CountTokens(t.Function.Arguments)
		}
	}
	// Never more than the upstream was allowed to produce.
	q.OutputTokens = min(q.OutputTokens, x.capTok*x.req.n)
	return q
}

func jsonInt(n int64) json.RawMessage { return json.RawMessage(strconv.FormatInt(n, 10)) }

// settlement is the op that ends the request in the ledger: a capture of
// what q costs when delivered, else a release, either with the request's
// usage row. A cost above the hold is a hole in the worst case: it is
// charged the hold only, counted and logged, so that a future hole is
// seen the day it opens.
func (g *Gateway) settlement(x *exchange, q *fb.Quantities, status string, delivered bool) fb.Op {
	now := g.clock.Now()
	u := &fb.Usage{
		ID: x.id, Source: "gateway", Customer: x.key.Customer, Model: x.req.model, At: now.UTC(),
		KeyID: x.key.ID, Latency: now.Sub(x.start), TTFT: x.ttft, Status: status,
	}
	if x.dep != nil {
		u.Provider, u.Deployment = x.dep.Provider, x.dep.Name
	}
	if x.plan != nil {
		u.Plan = x.plan.ID
	}
	u.RequestedModel = x.requested
	if !delivered || q == nil {
		return fb.Op{Kind: fb.OpRelease, Customer: x.key.Customer, HoldID: x.hold, Usage: u}
	}
	cost, err := pricing.Cost(x.price.Rates, *q)
	if err != nil {
		g.log.Error("pricing a request failed; charging the hold", "request_id", x.id, "err", err)
		cost = x.held
	}
	if cost > x.held {
		g.stats.overCaptures.Add(1)
		g.stats.overCredits.Add(int64(cost - x.held))
		g.log.Error("a request cost more than its hold: a gap in the worst case; charged the hold",
			"request_id", x.id, "customer", x.key.Customer, "model", x.req.model, "deployment", u.Deployment,
			"cost", cost, "held", x.held, "input_tokens", q.InputTokens+q.CachedInputTokens, "output_tokens", q.OutputTokens+q.ReasoningTokens)
		cost = x.held
	}
	u.Quantities, u.Credits = *q, cost
	if x.dep != nil {
		if c, err := x.dep.Cost.Cost(*q); err == nil {
			u.CostUSD = c
		}
	}
	return fb.Op{Kind: fb.OpCapture, Customer: x.key.Customer, HoldID: x.hold, Amount: cost, Usage: u}
}

// settle ends the request in the ledger. It runs once; a failure is
// retried while the ledger is unavailable, for SettleRetry; a charge the
// ledger still cannot take is left to the spool, which applies it when the
// ledger answers again.
func (g *Gateway) settle(x *exchange, q *fb.Quantities, status string, delivered bool) error {
	if x.settled {
		return nil
	}
	x.settled = true
	op := g.settlement(x, q, status, delivered)
	if op.Kind == fb.OpCapture {
		x.cost = op.Amount
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(x.client.Context()), g.cfg.SettleRetry)
	defer cancel()
	res, err := g.apply(ctx, op, true)
	g.obs.ObserveRequest(x.req.model, op.Usage.Deployment, status, x.ttft, op.Usage.Latency)
	if x.plan != nil {
		u := op.Usage
		g.unlimit(x, u.InputTokens+u.CachedInputTokens+u.OutputTokens+u.ReasoningTokens)
	}
	if err == nil {
		g.unspool(x, false)
		x.balance = max(res.Balance, 0)
		return nil
	}
	if op.Kind == fb.OpCapture && g.spool != nil {
		if serr := g.spool.PutNow(x.hold, op); serr == nil {
			g.unspool(x, true)
			x.spooled = true
			g.stats.spooled.Add(1)
			g.log.Warn("the ledger could not take a settlement; it is kept in the spool and applied when the ledger answers",
				"request_id", x.id, "hold", x.hold, "credits", op.Amount, "err", err)
			return fmt.Errorf("settling request %s: %w", x.id, err)
		}
	}
	if op.Kind == fb.OpCapture {
		g.stats.unsettled.Add(1)
	}
	g.log.Error("settling a request failed", "request_id", x.id, "hold", x.hold, "op", op.Kind, "credits", op.Amount, "err", err)
	return fmt.Errorf("settling request %s: %w", x.id, err)
}

// apply submits a settlement. A capture whose hold is gone (it outlived
// its TTL, or its commit failed: see ledger.Engine.Reserve) becomes a
// debit of what was used, keyed by the hold (the engine's id, unique,
// unlike a client's X-Request-Id) so that it is charged once. With retry,
// an unavailable ledger is tried again until ctx ends.
func (g *Gateway) apply(ctx context.Context, op fb.Op, retry bool) (fb.Result, error) {
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		res, err := g.ledger.Submit(ctx, op)
		if op.Kind == fb.OpCapture && (errors.Is(err, fb.ErrHoldExpired) || fb.ErrorType(err) == fb.ENotFound) {
			op = fb.Op{Kind: fb.OpDebit, Customer: op.Customer, Key: "settle-" + op.HoldID, Amount: op.Amount, AllowUncollected: true, Usage: op.Usage}
			continue
		}
		if err == nil || !retry || fb.ErrorType(err) != fb.EUnavailable {
			return res, err
		}
		select {
		case <-ctx.Done():
			return res, err
		case <-time.After(wait):
		}
	}
}

func (g *Gateway) release(x *exchange) {
	x.settled = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(x.client.Context()), g.cfg.SettleRetry)
	defer cancel()
	if _, err := g.ledger.Submit(ctx, fb.Op{Kind: fb.OpRelease, Customer: x.key.Customer, HoldID: x.hold}); err != nil {
		g.log.Warn("releasing a hold failed; it expires by itself", "hold", x.hold, "err", err)
	}
}

// unlimit returns the rate limiter's tokens a request did not use.
func (g *Gateway) unlimit(x *exchange, used int64) {
	if x.plan != nil && x.tpmEst > used {
		g.limits.refund(x.key.Customer, x.tpmEst-used, x.plan.TPM, g.clock.Now())
	}
	x.tpmEst = 0
}

func mulInt(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, false
	}
	c := a * b
	return c, c/b != a
}
