package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	fb "farebox"
	"farebox/httpx"
	"farebox/routing"
)

type modelJSON struct {
	ID      string      `json:"id"`
	Object  string      `json:"object"`
	Created int64       `json:"created"`
	OwnedBy string      `json:"owned_by"`
	Pricing pricingJSON `json:"pricing"`
	Limits  *limitsJSON `json:"limits,omitempty"`
	Type    string      `json:"type"`
	// Protocols are those the model is served on here (natively or by
	// translation).
	Protocols []string `json:"protocols"`
}

// anthropicModelJSON is a model in Anthropic's list shape.
type anthropicModelJSON struct {
	Type        string   `json:"type"`
	ID          string   `json:"id"`
	DisplayName string   `json:"display_name"`
	CreatedAt   string   `json:"created_at"`
	Protocols   []string `json:"protocols"`
}

type pricingJSON struct {
	InputPerMTok       fb.Amount `json:"input_per_mtok"`
	OutputPerMTok      fb.Amount `json:"output_per_mtok"`
	CachedInputPerMTok fb.Amount `json:"cached_input_per_mtok"`
	ReasoningPerMTok   fb.Amount `json:"reasoning_per_mtok"`
	CacheWritePerMTok  fb.Amount `json:"cache_write_per_mtok"`
	PerRequest         fb.Amount `json:"per_request"`
}

// protocols lists what the model's deployments serve, natively or by
// translation, in a fixed order.
func protocols(ds []*routing.Deployment) []string {
	out := []string{}
	for _, p := range [...]string{routing.ProtoChat, routing.ProtoResponses, routing.ProtoMessages, routing.ProtoEmbeddings} {
		for _, d := range ds {
			if wireOf(p, d) != "" {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

type limitsJSON struct {
	MaxOutputTokens int64 `json:"max_output_tokens"`
}

// Models is GET /v1/models: the models this key may use, served here and
// priced now, with their prices in credits and the protocols they are
// served on; in Anthropic's list shape when the request carries
// anthropic-version.
func (g *Gateway) Models(w http.ResponseWriter, r *http.Request) error {
	anthropic := r.Header.Get("anthropic-version") != ""
	key, err := g.Authenticate(r)
	if err != nil {
		if anthropic {
			g.writeAnthropicError(w, r, err)
			return nil
		}
		return err
	}
	plan, err := g.plan(r.Context(), key.Customer)
	if err != nil {
		return err
	}
	card, err := g.cards.Card(r.Context())
	if card == nil {
		return err
	}
	now := g.clock.Now()
	data := []modelJSON{}
	for _, m := range g.router.Models() {
		p, ok := card.At(m, now)
		if !ok || entitled(plan, m) != nil {
			continue
		}
		ds := g.router.Deployments(m)
		d := ds[0]
		v := modelJSON{ID: m, Object: "model", Created: p.EffectiveFrom.Unix(), OwnedBy: d.Provider, Type: "chat", Protocols: protocols(ds),
			Pricing: pricingJSON{p.InputPerMTok, p.OutputPerMTok, p.CachedInputPerMTok, p.ReasoningPerMTok, p.CacheWritePerMTok, p.PerRequest}}
		if d.Embeddings {
			v.Type = "embedding"
		} else {
			v.Limits = &limitsJSON{MaxOutputTokens: d.MaxOutputTokens}
		}
		data = append(data, v)
	}
	var b []byte
	if anthropic {
		list := []anthropicModelJSON{}
		for _, m := range data {
			list = append(list, anthropicModelJSON{Type: "model", ID: m.ID, DisplayName: m.ID, CreatedAt: time.Unix(m.Created, 0).UTC().Format(time.RFC3339), Protocols: m.Protocols})
		}
		var first, last *string
		if len(list) > 0 {
			first, last = &list[0].ID, &list[len(list)-1].ID
		}
		b, err = json.Marshal(struct {
			Data    []anthropicModelJSON `json:"data"`
			HasMore bool                 `json:"has_more"`
			FirstID *string              `json:"first_id"`
			LastID  *string              `json:"last_id"`
		}{list, false, first, last})
	} else {
		b, err = json.Marshal(struct {
			Object string      `json:"object"`
			Data   []modelJSON `json:"data"`
		}{"list", data})
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
	return nil
}

// CountTokens is POST /v1/messages/count_tokens: forwarded, uncharged, to
// a deployment of the model that speaks Messages natively (an anthropic
// one, or the simulator), its answer passed on; else 404, in Anthropic's
// shape like every error of this route.
func (g *Gateway) CountTokens(w http.ResponseWriter, r *http.Request) error {
	if err := g.countTokens(w, r); err != nil {
		g.writeAnthropicError(w, r, err)
	}
	return nil
}

func (g *Gateway) countTokens(w http.ResponseWriter, r *http.Request) error {
	key, err := g.Authenticate(r)
	if err != nil {
		return err
	}
	plan, err := g.plan(r.Context(), key.Customer)
	if err != nil {
		return err
	}
	if plan != nil {
		if ok, wait := g.limits.admitRequest(key.Customer, plan.RPM, g.clock.Now()); !ok {
			return rateLimited(w, plan, wait)
		}
	}
	body, err := httpx.ReadBody(r, g.cfg.MaxBodyBytes, false)
	if err != nil {
		return err
	}
	var req map[string]json.RawMessage
	var model string
	if json.Unmarshal(body, &req) != nil || req == nil || optional(req, "model", &model) != nil || model == "" {
		return fb.Invalid("model", "the body must be a JSON object with a model")
	}
	if err := entitled(plan, model); err != nil {
		return err
	}
	var d *routing.Deployment
	for _, c := range g.router.Order(model, fb.Quantities{}, func(d *routing.Deployment) bool {
		return d.Speaks(routing.ProtoMessages) && (d.Type == routing.TypeAnthropic || d.Type == routing.TypeSimulated)
	}) {
		d = c
		break
	}
	if d == nil {
		return fb.ErrModelNotFound.New("the model %s has no Messages deployment here to count its tokens", model).WithParam("model")
	}
	req["model"], _ = json.Marshal(d.Upstream)
	out, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.FirstByteTimeout)
	defer cancel()
	up, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Endpoint(routing.ProtoMessages)+"/count_tokens", bytes.NewReader(out))
	if err != nil {
		return err
	}
	up.Header.Set("Content-Type", "application/json")
	up.Header.Set("anthropic-version", or(r.Header.Get("anthropic-version"), routing.DefaultAnthropicVersion))
	if b := r.Header.Get("anthropic-beta"); b != "" {
		up.Header.Set("anthropic-beta", b)
	}
	d.Authorize(up.Header)
	resp, err := d.Client.Do(up)
	if err != nil {
		return fb.Errorf(fb.EUpstream, "the model %s could not be reached", model).WithCode("upstream_unreachable")
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden || resp.StatusCode >= 500 || resp.StatusCode < 200 || resp.StatusCode >= 300 && resp.StatusCode < 400 {
		g.log.Warn("count_tokens failed upstream", "deployment", d.Name, "status", resp.StatusCode)
		return fb.Errorf(fb.EUpstream, "the model %s failed upstream", model)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.StatusCode)
	w.Write(b)
	return nil
}
