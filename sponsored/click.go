package sponsored

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"

	fb "farebox"
)

// A click link's token: what the click is charged from, signed, so that
// no link can be made up or changed (a campaign, a bid) and no id guessed.
// It is base64url of: version, issue time, the suggestion's random nonce,
// the bid per click, the decision score, the topic's index, the campaign
// and the plan of the request that carried it; then the first 16 bytes of
// its HMAC-SHA256 under the service's secret.
type token struct {
	nonce    [nonceSize]byte
	issued   int64
	bid      fb.Amount
	score    int64
	topic    int
	campaign string
	plan     string
}

const (
	nonceSize    = 10
	tagSize      = 16
	tokenVersion = 1
)

var b64 = base64.RawURLEncoding

func (s *Service) mac(b []byte) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte("farebox sponsored click v1\x00"))
	m.Write(b)
	return m.Sum(nil)[:tagSize]
}

func (s *Service) sign(t token) string {
	b := make([]byte, 0, 64)
	b = append(b, tokenVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(t.issued))
	b = append(b, t.nonce[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(t.bid))
	b = binary.BigEndian.AppendUint32(b, uint32(t.score))
	b = append(b, byte(min(t.topic, 255)), byte(len(t.campaign)))
	b = append(b, t.campaign...)
	b = append(b, byte(len(t.plan)))
	b = append(b, t.plan...)
	return b64.EncodeToString(append(b, s.mac(b)...))
}

var errBadToken = errors.New("not a click link of this server")

func (s *Service) verify(tok string) (token, error) {
	var t token
	if len(tok) > 512 {
		return t, errBadToken
	}
	b, err := b64.DecodeString(tok)
	if err != nil || len(b) < 1+8+nonceSize+8+4+1+1+1+tagSize {
		return t, errBadToken
	}
	body, tag := b[:len(b)-tagSize], b[len(b)-tagSize:]
	if !hmac.Equal(tag, s.mac(body)) || body[0] != tokenVersion {
		return t, errBadToken
	}
	r := body[1:]
	t.issued = int64(binary.BigEndian.Uint64(r))
	r = r[8:]
	copy(t.nonce[:], r)
	r = r[nonceSize:]
	t.bid = fb.Amount(binary.BigEndian.Uint64(r))
	t.score = int64(binary.BigEndian.Uint32(r[8:]))
	t.topic = int(r[12])
	n := int(r[13])
	r = r[14:]
	if len(r) < n+1 {
		return t, errBadToken
	}
	t.campaign, r = string(r[:n]), r[n:]
	n = int(r[0])
	if len(r) != n+1 {
		return t, errBadToken
	}
	t.plan = string(r[1:])
	return t, nil
}

// ErrLinkNotFound: a click link that is not one of this server's, or has
// expired, or whose campaign is gone.
var ErrLinkNotFound = &fb.Error{Type: fb.ENotFound, Code: "link_not_found"}

// Click is a follow of a suggestion's link: it charges the bid per click
// once — a debit keyed by the suggestion, within the campaign's daily
// budget, so following the link again charges nothing more — and returns
// the advertiser's URL to redirect to. A charge the ledger refuses (budget
// spent, no credit) or cannot take now still redirects: the visitor is not
// the advertiser's to turn away.
func (s *Service) Click(ctx context.Context, tok string) (string, error) {
	t, err := s.verify(tok)
	if err != nil {
		s.obs.ObserveClick(OutcomeClickInvalid)
		return "", ErrLinkNotFound.New("no such link")
	}
	now := s.clock.Now()
	if now.Sub(time.Unix(t.issued, 0)) > s.cfg.ClickTTL {
		s.obs.ObserveClick(OutcomeClickInvalid)
		return "", ErrLinkNotFound.New("this link has expired")
	}
	c, err := s.store.Campaign(ctx, t.campaign)
	if fb.ErrorType(err) == fb.ENotFound {
		s.obs.ObserveClick(OutcomeClickInvalid)
		return "", ErrLinkNotFound.New("the campaign of this link has ended")
	}
	if err != nil {
		return "", err
	}
	p := &Placement{c: c, plan: t.plan, score: t.score}
	if t.topic < len(c.Topics) {
		p.topic = c.Topics[t.topic]
	}
	p.Suggestion.ID = suggestionID(t.nonce)
	op := fb.Op{Kind: fb.OpDebit, Customer: c.Advertiser, Amount: t.bid, Event: clickKey(p.Suggestion.ID),
		Digest: "click " + t.bid.String(), Budget: c.Budget(), Usage: p.usage(fb.StatusClick, t.bid, now)}
	_, replay, err := s.submitReplay(ctx, op)
	switch {
	case err == nil && replay:
		s.obs.ObserveClick(OutcomeClickRepeated)
	case err == nil:
		s.stats.clicks.Add(1)
		s.obs.ObserveClick(OutcomeClickCharged)
	case fb.ErrorType(err) == fb.EInsufficientCredits:
		s.obs.ObserveClick(OutcomeClickRefused)
		s.log.Info("a sponsored click was not charged", "campaign", c.ID, "suggestion", p.Suggestion.ID, "reason", fb.ErrorCode(err))
	default:
		s.obs.ObserveClick(OutcomeClickFailed)
		s.log.Warn("charging a sponsored click failed", "campaign", c.ID, "suggestion", p.Suggestion.ID, "err", err)
	}
	return c.URL, nil
}

// replayer is a ledger that says whether an op's answer was a replay.
type replayer interface {
	SubmitReplay(ctx context.Context, op fb.Op) (fb.Result, bool, error)
}

func (s *Service) submitReplay(ctx context.Context, op fb.Op) (fb.Result, bool, error) {
	if r, ok := s.ledger.(replayer); ok {
		return r.SubmitReplay(ctx, op)
	}
	res, err := s.ledger.Submit(ctx, op)
	return res, false, err
}
