package gateway

import (
	"context"
	"errors"
	"time"

	fb "farebox"
)

// progress runs at each event a stream delivers: once a second it puts in
// the spool the capture of what the stream has delivered so far, so that
// a process killed mid-stream charges it when it starts again; and it
// extends the stream's hold before it could expire under it.
func (g *Gateway) progress(x *exchange, delivered int64) {
	now := g.clock.Now()
	if g.spool != nil && now.Sub(x.lastSpool) >= time.Second {
		x.lastSpool = now
		q := fb.Quantities{Requests: 1, InputTokens: x.req.promptEstimate(x.dep), OutputTokens: delivered}
		op := g.settlement(x, &q, StatusInterrupted, true)
		g.spoolMu.Lock()
		g.spooled[x.hold] = true
		g.spoolMu.Unlock()
		x.inSpool = true
		g.spool.Put(x.hold, op)
	}
	if !now.Before(x.extendAt) && !x.extending.Swap(true) {
		x.extendAt = now.Add(g.cfg.RequestTimeout / 2)
		op := fb.Op{Kind: fb.OpExtend, Customer: x.key.Customer, HoldID: x.hold, ExpiresAt: now.Add(g.cfg.holdTTL())}
		go func() {
			defer x.extending.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), g.cfg.SettleRetry)
			defer cancel()
			if _, err := g.ledger.Submit(ctx, op); err != nil {
				g.log.Warn("extending a running stream's hold failed; tried again later", "request_id", x.id, "hold", x.hold, "err", err)
			}
		}()
	}
}

// unspool ends a stream's progress in the spool: done, when it settled;
// or, when final, handed over to the spool runner, whose to apply it now
// is.
func (g *Gateway) unspool(x *exchange, final bool) {
	if x.inSpool && !final {
		g.spool.Done(x.hold)
	}
	if x.inSpool || final {
		g.spoolMu.Lock()
		delete(g.spooled, x.hold)
		g.spoolMu.Unlock()
	}
	x.inSpool = false
}

// SettleSpooled applies the settlements waiting in the spool — those left
// by requests whose settlement failed, and, after a restart, the progress
// of streams a crash cut — except those of streams still running here. A
// settlement the ledger has decided otherwise already (the hold was
// settled after all) is done too. It returns how many it applied and
// stops at the first the ledger cannot take now.
func (g *Gateway) SettleSpooled(ctx context.Context) (int, error) {
	if g.spool == nil {
		return 0, nil
	}
	n := 0
	for _, e := range g.spool.Pending() {
		g.spoolMu.Lock()
		running := g.spooled[e.ID]
		g.spoolMu.Unlock()
		if running {
			continue
		}
		_, err := g.apply(ctx, e.Op, false)
		switch {
		case err == nil:
			n++
			g.log.Info("a spooled settlement was applied", "hold", e.ID, "op", e.Op.Kind, "credits", e.Op.Amount)
		case fb.ErrorType(err) == fb.EUnavailable || ctx.Err() != nil:
			return n, err
		case errors.Is(err, fb.ErrHoldResolved) || fb.ErrorType(err) == fb.EIdempotencyConflict:
			// Settled already, by a settlement that committed just
			// before the process stopped.
		default:
			g.log.Error("a spooled settlement cannot be applied; it is dropped", "hold", e.ID, "op", e.Op.Kind, "credits", e.Op.Amount, "err", err)
		}
		g.spool.Done(e.ID)
	}
	return n, g.spool.Flush()
}

// RunSpool makes the spool durable and applies what waits in it every
// interval until ctx ends, then flushes it a last time.
func (g *Gateway) RunSpool(ctx context.Context, every time.Duration) {
	if g.spool == nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := g.spool.Flush(); err != nil {
			g.log.Error("the spool could not be written", "err", err)
		}
		if _, err := g.SettleSpooled(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("spooled settlements wait for the ledger", "err", err)
		}
		select {
		case <-ctx.Done():
			if err := g.spool.Flush(); err != nil {
				g.log.Error("the spool could not be written", "err", err)
			}
			return
		case <-g.clock.After(every):
		}
	}
}
