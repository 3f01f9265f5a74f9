package gateway

import (
	"encoding/json"
	"net/http"

	fb "farebox"
)

type modelJSON struct {
	ID      string      `json:"id"`
	Object  string      `json:"object"`
	Created int64       `json:"created"`
	OwnedBy string      `json:"owned_by"`
	Pricing pricingJSON `json:"pricing"`
	Limits  *limitsJSON `json:"limits,omitempty"`
	Type    string      `json:"type"`
}

type pricingJSON struct {
	InputPerMTok       fb.Amount `json:"input_per_mtok"`
	OutputPerMTok      fb.Amount `json:"output_per_mtok"`
	CachedInputPerMTok fb.Amount `json:"cached_input_per_mtok"`
	ReasoningPerMTok   fb.Amount `json:"reasoning_per_mtok"`
	PerRequest         fb.Amount `json:"per_request"`
}

type limitsJSON struct {
	MaxOutputTokens int64 `json:"max_output_tokens"`
}

// Models is GET /v1/models: the models this key may use, served here and
// priced now, with their prices in credits.
func (g *Gateway) Models(w http.ResponseWriter, r *http.Request) error {
	key, err := g.Authenticate(r)
	if err != nil {
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
		d := g.router.Deployments(m)[0]
		v := modelJSON{ID: m, Object: "model", Created: p.EffectiveFrom.Unix(), OwnedBy: d.Provider, Type: "chat",
			Pricing: pricingJSON{p.InputPerMTok, p.OutputPerMTok, p.CachedInputPerMTok, p.ReasoningPerMTok, p.PerRequest}}
		if d.Embeddings {
			v.Type = "embedding"
		} else {
			v.Limits = &limitsJSON{MaxOutputTokens: d.MaxOutputTokens}
		}
		data = append(data, v)
	}
	b, err := json.Marshal(struct {
		Object string      `json:"object"`
		Data   []modelJSON `json:"data"`
	}{"list", data})
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
	return nil
}
