package ledger

import (
	"context"

	fb "farebox"
)

// A Companion is another package's part of the ledger's transactions
// (compute's leases): the ops submitted with it (SubmitWith) are applied
// in the same transaction as what the companion makes of them, so a lease
// is admitted exactly when its hold is taken, and a period of it billed
// exactly when its capture is, or neither. Nothing is acknowledged before
// both are durable.
type Companion interface {
	// Begin starts the companion's part of one batch's transaction, with
	// the batch's ops that carry it, in batch order. It may lock rows of
	// its own; the accounts the batch touches are locked already, so two
	// replicas taking locks in this order never deadlock.
	Begin(ctx context.Context, tx fb.WriteTx, ops []*fb.Op) (CompanionTx, error)
}

// CompanionTx is a companion's work in one transaction. A batch the store
// refuses is run again, split: each run has a CompanionTx of its own, and
// End tells each whether its transaction committed.
type CompanionTx interface {
	// Before is called just before op is applied. It may fill in what
	// the op's fingerprint leaves out (an amount); an error refuses the
	// op alone, as its answer. Ops answered from their idempotency key
	// are not shown to it.
	Before(ctx context.Context, op *fb.Op) error
	// After is called once the state machine applied op (err nil, res its
	// result) or refused it (err). An error of its own fails the batch.
	After(ctx context.Context, op *fb.Op, res *fb.Result, err error) error
	// Flush writes what the transaction decided, once every op of the
	// batch was applied, before the commit.
	Flush(ctx context.Context) error
	// End is called once the transaction is over, committed or not, before
	// any op of the batch is answered.
	End(committed bool)
}

// SubmitWith is Submit for an op that companion c commits with.
func (e *Engine) SubmitWith(ctx context.Context, op fb.Op, c Companion) (fb.Result, bool, error) {
	return e.submit(ctx, op, false, nil, c)
}

// companions begins, in order of first appearance, every companion the
// batch's ops carry (those not refused already).
func companions(ctx context.Context, tx fb.WriteTx, batch []*request) (map[Companion]CompanionTx, []CompanionTx, error) {
	var order []Companion
	ops := map[Companion][]*fb.Op{}
	for _, r := range batch {
		if r.with == nil || r.outErr != nil {
			continue
		}
		if _, ok := ops[r.with]; !ok {
			order = append(order, r.with)
		}
		ops[r.with] = append(ops[r.with], &r.op)
	}
	if len(order) == 0 {
		return nil, nil, nil
	}
	txs := make(map[Companion]CompanionTx, len(order))
	var begun []CompanionTx
	for _, c := range order {
		ct, err := c.Begin(ctx, tx, ops[c])
		if err != nil {
			return nil, begun, err
		}
		txs[c] = ct
		begun = append(begun, ct)
	}
	return txs, begun, nil
}
