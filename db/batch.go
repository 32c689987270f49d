package db

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
	"github.com/subsync/subsync/reconcile"
)

// UpsertSubscriptions writes several rows through the guarded upsert in one
// transaction that holds the advisory lock of each subscription, so a page
// of repairs costs one commit and a handful of statements instead of a few
// per row: the locks are taken in id order in one statement, the stored
// rows read in one, and every write (rows, outbox, notifications) made by
// one. Rows of the same id are applied in the order given, as successive
// upserts would be (see reconcile.Fold). Results are in the order of rows.
func (d *DB) UpsertSubscriptions(ctx context.Context, rows []reconcile.Subscription) ([]reconcile.UpsertResult, error) {
	return d.foldAndWrite(ctx, "apply_subscriptions", rows, func(tx *sqlx.Tx, w reconcile.BatchWrite, _ []reconcile.UpsertResult) error {
		return d.writeBatch(ctx, tx, w)
	})
}

// RepairSubscriptions is the write of a page of a sweep: it writes rows as
// UpsertSubscriptions does and, in the same statement, records under run
// runID the drift found for each row the guard did not refuse (drift[i] is
// rows[i]'s). The transaction commits without waiting for its WAL flush:
// what it writes comes from Stripe, and the run's own end is recorded by a
// transaction that does wait, which flushes every earlier commit with it.
// A crash before that loses at most the repairs of a run left unfinished,
// which the next sweep finds again. Its change notifications are sent by
// the same statement, so the commit-time NOTIFY lock is held without a
// flush to wait for.
func (d *DB) RepairSubscriptions(ctx context.Context, runID int64, rows []reconcile.Subscription, drift [][]reconcile.Drift) ([]reconcile.UpsertResult, error) {
	if len(drift) != len(rows) {
		return nil, fmt.Errorf("repair %d subscriptions: %d lists of drift, want one per row", len(rows), len(drift))
	}
	return d.foldAndWrite(ctx, "repair_subscriptions", rows, func(tx *sqlx.Tx, w reconcile.BatchWrite, res []reconcile.UpsertResult) error {
		var kept []reconcile.Drift
		for i, r := range res {
			if !r.Stale {
				kept = append(kept, drift[i]...)
			}
		}
		return d.writeRepair(ctx, tx, runID, w, kept)
	})
}

// foldAndWrite locks the subscriptions of rows, reads their stored rows,
// folds rows into them (see reconcile.Fold) and hands what to write, with
// each row's result, to write, all in one transaction.
func (d *DB) foldAndWrite(ctx context.Context, op string, rows []reconcile.Subscription,
	write func(tx *sqlx.Tx, w reconcile.BatchWrite, res []reconcile.UpsertResult) error) ([]reconcile.UpsertResult, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	ids := make([]string, 0, len(rows))
	byID := map[string][]int{} // id → indexes into rows, in order
	for i, r := range rows {
		id := r.StripeSubscriptionID
		if _, ok := byID[id]; !ok {
			ids = append(ids, id)
		}
		byID[id] = append(byID[id], i)
	}
	out := make([]reconcile.UpsertResult, len(rows))
	err := d.inTx(ctx, op, func(tx *sqlx.Tx) error {
		stored, err := d.lockSubscriptions(ctx, tx, ids)
		if err != nil {
			return err
		}
		var w reconcile.BatchWrite
		for _, id := range ids {
			desired := make([]reconcile.Subscription, 0, len(byID[id]))
			for _, i := range byID[id] {
				desired = append(desired, rows[i])
			}
			var cur *reconcile.Subscription
			if s, ok := stored[id]; ok {
				cur = &s
			}
			f := reconcile.Fold(cur, desired)
			for k, i := range byID[id] {
				out[i] = f.Results[k]
			}
			if f.Row != nil {
				w.Rows = append(w.Rows, *f.Row)
			}
			w.Changes = append(w.Changes, f.Changes...)
		}
		return write(tx, w, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
