package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	fb "farebox"
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
	StatusClientGone   = "client_cancelled"
)

// exchange is one gateway request on its way through.
type exchange struct {
	id       string
	key      fb.APIKey
	req      *request
	price    fb.Price
	plan     *fb.Plan
	hold     string    // hold id
	held     fb.Amount // reserved
	capTok   int64     // output tokens per choice the upstream may produce
	tpmEst   int64     // tokens admitted by the rate limiter
	start    time.Time
	ttft     time.Duration
	dep      *routing.Deployment   // the one serving (or last tried)
	order    []*routing.Deployment // those to try, in order
	settled  bool
	cost     fb.Amount
	balance  fb.Amount
	client   *http.Request
	writer   http.ResponseWriter
	upstream string // path under the base URL
}

// Chat is POST /v1/chat/completions.
func (g *Gateway) Chat(w http.ResponseWriter, r *http.Request) error {
	return g.serve(w, r, "/chat/completions", parseChat)
}

// Embeddings is POST /v1/embeddings.
func (g *Gateway) Embeddings(w http.ResponseWriter, r *http.Request) error {
	return g.serve(w, r, "/embeddings", parseEmbeddings)
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, path string, parse func([]byte) (*request, error)) error {
	g.setup()
	key, err := g.Authenticate(r)
	if err != nil {
		return err
	}
	body, err := readBody(r, g.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	q, err := parse(body)
	if err != nil {
		return err
	}
	x := &exchange{id: w.Header().Get("X-Request-Id"), key: key, req: q, client: r, writer: w, upstream: path, start: g.Now()}
	if x.id == "" {
		x.id = g.NewID("req_")
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.RequestTimeout)
	defer cancel()
	if err := g.admit(ctx, w, x); err != nil {
		return err
	}
	// From here a hold is open: every path settles it.
	defer func() {
		if !x.settled {
			g.settle(x, nil, StatusClientGone, false)
		}
	}()
	resp, err := g.send(ctx, x)
	if err != nil {
		return err
	}
	if resp == nil { // the upstream's own refusal was passed on
		return nil
	}
	defer resp.Body.Close()
	if q.stream {
		g.relayStream(ctx, w, resp, x)
		return nil
	}
	return g.relayBody(w, resp, x)
}

// admit runs everything before the upstream: entitlement, price, rate
// limits, and the hold of the worst case, lowering the output cap to what
// the balance pays for.
func (g *Gateway) admit(ctx context.Context, w http.ResponseWriter, x *exchange) error {
	q := x.req
	plan, err := g.plan(ctx, x.key.Customer)
	if err != nil {
		return err
	}
	x.plan = plan
	if err := entitled(plan, q.model); err != nil {
		return err
	}
	all := g.Router.Deployments(q.model)
	card, err := g.Card(ctx)
	if card == nil {
		return err
	}
	price, priced := card.At(q.model, x.start)
	if len(all) == 0 || !priced || all[0].Embeddings != q.embedding {
		return fb.Errorf(fb.ENotFound, "the model %s does not exist or is not served here; GET /v1/models lists yours", q.model).WithCode("model_not_found").WithParam("model")
	}
	x.price = price
	// The output cap: the client's, but never above the smallest of the
	// deployments' output limits, so that whichever serves stays within
	// the hold.
	x.capTok = all[0].MaxOutputTokens
	for _, d := range all {
		x.capTok = min(x.capTok, d.MaxOutputTokens)
	}
	if q.embedding {
		x.capTok = 0
	} else if q.capField != "" {
		x.capTok = min(x.capTok, q.capTokens)
	}
	in := q.inputBound()
	out, overflow := mulInt(x.capTok, q.n)
	if overflow {
		return fb.Invalid(q.capField, "the output cap × n overflows")
	}
	guess := (int64(q.size) + 3) / 4 // input tokens, for limits and routing (not the held bound)
	if plan != nil && (plan.RPM > 0 || plan.TPM > 0) {
		x.tpmEst = guess + out
		if ok, wait := g.limits.admit(x.key.Customer, plan.RPM, plan.TPM, x.tpmEst, x.start); !ok {
			w.Header().Set("Retry-After", strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10))
			return fb.Errorf(fb.ERateLimited, "the plan %s allows %d requests and %d tokens per minute; retry in %s", plan.ID, plan.RPM, plan.TPM, wait.Round(time.Millisecond))
		}
	}
	x.order = g.Router.Order(q.model, fb.Quantities{InputTokens: guess, OutputTokens: out})
	worst, err := worstCase(price.Rates, in, out)
	if err != nil {
		return fb.Invalid("", "the request's worst-case price overflows")
	}
	res, err := g.Ledger.Reserve(ctx, fb.Op{
		Kind: fb.OpHold, Customer: x.key.Customer, Amount: max(worst, 1),
		TTL: g.cfg.RequestTimeout + time.Minute, AllowPartial: true,
	})
	if err != nil {
		g.unlimit(x, 0)
		return err
	}
	x.hold, x.held = res.Hold.ID, res.Hold.Amount
	if x.held < worst {
		per := affordable(price.Rates, x.held, in) / q.n
		if per < min(g.cfg.MinOutputTokens, max(x.capTok, 1)) {
			g.release(x)
			g.unlimit(x, 0)
			return fb.Errorf(fb.EInsufficientCredits, "the balance of %s credits pays for %d output tokens of %s; at least %d are needed (this request may cost up to %s)",
				x.held, max(per, 0), q.model, min(g.cfg.MinOutputTokens, max(x.capTok, 1)), worst)
		}
		if !q.embedding {
			x.capTok = min(x.capTok, per)
		}
	}
	return nil
}

// send forwards the request to the model's deployments in order, moving
// on while nothing has been delivered (connect errors, 5xx, 429, no
// headers in time). It answers the first success; or nil after passing an
// upstream's refusal (4xx) to the client; or the last error, the request
// settled as not delivered.
func (g *Gateway) send(ctx context.Context, x *exchange) (*http.Response, error) {
	var last error
	status := StatusUpstream
	for _, d := range x.order {
		x.dep = d
		body, err := x.req.upstreamBody(d.Upstream, x.capTok)
		if err != nil {
			g.settle(x, nil, StatusRejected, false)
			return nil, err
		}
		t0 := g.Now()
		resp, err := g.post(ctx, d, x, body)
		if err == nil && resp.StatusCode < 300 {
			g.Router.Success(d, g.Now().Sub(t0))
			if !x.req.stream {
				x.ttft = g.Now().Sub(x.start) // the answer's first byte; a stream's is its first token
			}
			return resp, nil
		}
		if ctx.Err() != nil && x.client.Context().Err() != nil {
			if resp != nil {
				resp.Body.Close()
			}
			g.settle(x, nil, StatusClientGone, false)
			return nil, fb.Errorf(fb.EUpstream, "the client went away")
		}
		if err != nil || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			g.Router.Failure(d)
		}
		switch {
		case errors.Is(err, errFirstByte) || (err != nil && ctx.Err() != nil):
			status = StatusTimeout
			last = fb.Errorf(fb.EUpstreamTimeout, "the model %s did not answer in time", x.req.model)
		case err != nil:
			status = StatusUpstream
			last = fb.Errorf(fb.EUpstream, "the model %s could not be reached", x.req.model).WithCode("upstream_unreachable")
			g.Log.Warn("upstream unreachable", "deployment", d.Name, "request_id", x.id, "err", err)
		case resp.StatusCode == http.StatusTooManyRequests:
			status = StatusRateLimited
			last = fb.Errorf(fb.ERateLimited, "the model %s is busy upstream; retry later", x.req.model).WithCode("upstream_rate_limited")
			resp.Body.Close()
		case resp.StatusCode >= 500:
			status = StatusUpstream
			last = fb.Errorf(fb.EUpstream, "the model %s failed upstream (HTTP %d)", x.req.model, resp.StatusCode)
			resp.Body.Close()
		default:
			// The upstream refused the request itself: the client's to fix,
			// passed on as it is, charged nothing.
			defer resp.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			g.settle(x, nil, StatusRejected, false)
			w := x.writer
			w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
			w.WriteHeader(resp.StatusCode)
			w.Write(b)
			return nil, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	g.settle(x, nil, status, false)
	return nil, last
}

var errFirstByte = errors.New("no response headers in time")

// post sends one attempt, bounded by the first-byte timeout until the
// response headers arrive.
func (g *Gateway) post(ctx context.Context, d *routing.Deployment, x *exchange, body []byte) (*http.Response, error) {
	actx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(actx, http.MethodPost, d.BaseURL+x.upstream, bytes.NewReader(body))
	if err != nil {
		cancel(nil)
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", x.client.Header.Get("Accept"))
	req.Header.Set("X-Request-Id", x.id)
	if d.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+d.APIKey)
	}
	if d.Type == routing.TypeSimulated {
		for _, h := range []string{routing.SimulateHeader, routing.SimulateTokensHeader} {
			if v := x.client.Header.Get(h); v != "" {
				req.Header.Set(h, v)
			}
		}
	}
	timer := time.AfterFunc(g.cfg.FirstByteTimeout, func() { cancel(errFirstByte) })
	resp, err := d.Client.Do(req)
	stopped := timer.Stop()
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
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		status := StatusDisconnected
		if x.client.Context().Err() != nil {
			status = StatusClientGone
		}
		g.settle(x, nil, status, false)
		return fb.Errorf(fb.EUpstream, "the model %s broke off its answer", x.req.model).WithCode("upstream_disconnected")
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(b, &body); err != nil || body == nil {
		g.settle(x, nil, StatusMalformed, false)
		return fb.Errorf(fb.EUpstream, "the model %s sent an answer that is not JSON", x.req.model).WithCode("upstream_malformed")
	}
	var u *usageJSON
	if raw, ok := body["usage"]; ok && !isNull(raw) {
		u = new(usageJSON)
		if json.Unmarshal(raw, u) != nil {
			u = nil
		}
	}
	var q fb.Quantities
	if u != nil {
		q = u.quantities()
	} else {
		q = x.counted(body)
	}
	if err := g.settle(x, &q, StatusOK, true); err != nil {
		return err
	}
	usage := map[string]json.RawMessage{}
	if u != nil {
		_ = json.Unmarshal(body["usage"], &usage)
	} else {
		usage["prompt_tokens"] = jsonInt(q.InputTokens + q.CachedInputTokens)
		usage["completion_tokens"] = jsonInt(q.OutputTokens + q.ReasoningTokens)
		usage["total_tokens"] = jsonInt(q.InputTokens + q.CachedInputTokens + q.OutputTokens + q.ReasoningTokens)
	}
	usage["cost"], _ = json.Marshal(x.cost.String())
	usage["balance"], _ = json.Marshal(x.balance.String())
	body["usage"], _ = json.Marshal(usage)
	if _, ok := body["model"]; ok && x.dep.Upstream != x.req.model {
		body["model"], _ = json.Marshal(x.req.model)
	}
	out, err := json.Marshal(body)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Farebox-Cost", x.cost.String())
	h.Set("X-Farebox-Balance", x.balance.String())
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	w.Write(out)
	return nil
}

// counted is the gateway's own count of a non-stream answer without usage.
func (x *exchange) counted(body map[string]json.RawMessage) fb.Quantities {
	q := fb.Quantities{Requests: 1, InputTokens: x.req.promptEstimate()}
	if x.req.embedding {
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

// settle ends the request in the ledger: a capture of what q costs when
// delivered, else a release, either with the request's usage row. It runs
// once; a failure is retried while the ledger is unavailable, since the
// hold would otherwise expire and the usage go unpaid.
func (g *Gateway) settle(x *exchange, q *fb.Quantities, status string, delivered bool) error {
	if x.settled {
		return nil
	}
	x.settled = true
	now := g.Now()
	u := &fb.Usage{
		ID: x.id, Source: "gateway", Customer: x.key.Customer, Model: x.req.model, At: now.UTC(),
		KeyID: x.key.ID, Latency: now.Sub(x.start), TTFT: x.ttft, Status: status,
	}
	if x.dep != nil {
		u.Provider, u.Deployment = x.dep.Provider, x.dep.Name
	}
	op := fb.Op{Kind: fb.OpRelease, Customer: x.key.Customer, HoldID: x.hold, Usage: u}
	if delivered && q != nil {
		cost, err := pricing.Cost(x.price.Rates, *q)
		if err != nil {
			g.Log.Error("pricing a request failed; charging the hold", "request_id", x.id, "err", err)
			cost = x.held
		}
		u.Quantities, u.Credits = *q, cost
		if x.dep != nil {
			if c, err := x.dep.Cost.Cost(*q); err == nil {
				u.CostUSD = c
			}
		}
		op = fb.Op{Kind: fb.OpCapture, Customer: x.key.Customer, HoldID: x.hold, Amount: cost, Usage: u}
		x.cost = cost
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(x.client.Context()), 30*time.Second)
	defer cancel()
	var res fb.Result
	var err error
	for wait := 50 * time.Millisecond; ; wait *= 2 {
		res, err = g.Ledger.Submit(ctx, op)
		if (fb.ErrorCode(err) == "hold_expired" || fb.ErrorType(err) == fb.ENotFound) && op.Kind == fb.OpCapture {
			// The hold outlived its TTL, or its commit failed (see
			// ledger.Engine.Reserve): charge what was used as a debit,
			// keyed by the hold (the engine's id, unique, unlike a
			// client's X-Request-Id) so that a retry charges once.
			op = fb.Op{Kind: fb.OpDebit, Customer: x.key.Customer, Key: "settle-" + x.hold, Amount: op.Amount, AllowUncollected: true, Usage: u}
			continue
		}
		if fb.ErrorType(err) != fb.EUnavailable || ctx.Err() != nil {
			break
		}
		time.Sleep(wait)
	}
	if x.plan != nil {
		used := u.InputTokens + u.CachedInputTokens + u.OutputTokens + u.ReasoningTokens
		g.unlimit(x, used)
	}
	if err != nil {
		g.Log.Error("settling a request failed", "request_id", x.id, "hold", x.hold, "op", op.Kind, "credits", op.Amount, "err", err)
		return fmt.Errorf("settling request %s: %w", x.id, err)
	}
	x.balance = max(res.Balance, 0)
	return nil
}

func (g *Gateway) release(x *exchange) {
	x.settled = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(x.client.Context()), 30*time.Second)
	defer cancel()
	if _, err := g.Ledger.Submit(ctx, fb.Op{Kind: fb.OpRelease, Customer: x.key.Customer, HoldID: x.hold}); err != nil {
		g.Log.Warn("releasing a hold failed; it expires by itself", "hold", x.hold, "err", err)
	}
}

// unlimit returns the rate limiter's tokens a request did not use.
func (g *Gateway) unlimit(x *exchange, used int64) {
	if x.plan != nil && x.tpmEst > used {
		g.limits.refund(x.key.Customer, x.tpmEst-used, x.plan.TPM, g.Now())
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
