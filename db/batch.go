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
// rows[i]'s). Its transactions commit without waiting for their WAL flush:
// what they write comes from Stripe, and the run's own end is recorded by
// a transaction that does wait, which flushes every earlier commit with
// it. A crash before that loses at most the repairs of a run left
// unfinished, which the next sweep finds again. Change notifications are
// sent by the statements that write, so the commit-time NOTIFY lock is
// held without a flush to wait for.
//
// A row whose only drift is FieldMissingInDB had no row when the sweep
// read the page: such rows (of ids that appear once) are inserted first,
// in one statement, without reading anything back (see insertMissing).
// The ones whose row appeared in the meantime, and every other row, are
// then folded into their stored rows under the subscriptions' locks, in a
// transaction of their own: when that one fails, the inserted rows stay
// written, each with its drift, and the error is returned alone.
func (d *DB) RepairSubscriptions(ctx context.Context, runID int64, rows []reconcile.Subscription, drift [][]reconcile.Drift) ([]reconcile.UpsertResult, error) {
	if len(drift) != len(rows) {
		return nil, fmt.Errorf("repair %d subscriptions: %d lists of drift, want one per row", len(rows), len(drift))
	}
	out := make([]reconcile.UpsertResult, len(rows))
	rest, err := d.insertMissing(ctx, runID, rows, drift, out)
	if err != nil {
		return nil, err
	}
	if len(rest) == 0 {
		return out, nil
	}
	restRows := make([]reconcile.Subscription, len(rest))
	restDrift := make([][]reconcile.Drift, len(rest))
	for k, i := range rest {
		restRows[k], restDrift[k] = rows[i], drift[i]
	}
	res, err := d.foldAndWrite(ctx, "repair_subscriptions", restRows, func(tx *sqlx.Tx, w reconcile.BatchWrite, res []reconcile.UpsertResult) error {
		var kept []reconcile.Drift
		for k, r := range res {
			if !r.Stale {
				kept = append(kept, restDrift[k]...)
			}
		}
		return d.writeRepair(ctx, tx, runID, w, kept)
	})
	if err != nil {
		return nil, err
	}
	for k, i := range rest {
		out[i] = res[k]
	}
	return out, nil
}

// insertMissing inserts the rows of a repair that the sweep found without
// a row (their only drift is FieldMissingInDB, of their own subscription,
// and their id appears once in rows), with their drift, outbox rows and
// notifications, by insertMissingSQL. It sets out[i] for each row it inserted, to what
// folding it into no row gives, and returns the indexes of the others, in
// order: those it did not try, and those whose row another writer stored
// after the sweep read the page.
func (d *DB) insertMissing(ctx context.Context, runID int64, rows []reconcile.Subscription, drift [][]reconcile.Drift, out []reconcile.UpsertResult) (rest []int, err error) {
	seen := make(map[string]int, len(rows))
	for _, r := range rows {
		seen[r.StripeSubscriptionID]++
	}
	var (
		w    reconcile.BatchWrite
		kept []reconcile.Drift
	)
	folded := make(map[int]reconcile.Folded) // by index into rows: the rows tried
	for i, r := range rows {
		dr := drift[i]
		if seen[r.StripeSubscriptionID] != 1 || len(dr) != 1 || dr[0].Field != reconcile.FieldMissingInDB ||
			dr[0].SubscriptionID != r.StripeSubscriptionID {
			continue
		}
		f := reconcile.Fold(nil, rows[i:i+1])
		folded[i] = f
		w.Rows = append(w.Rows, *f.Row)
		w.Changes = append(w.Changes, f.Changes...)
		kept = append(kept, dr...)
	}
	var inserted map[string]bool
	if len(folded) > 0 {
		if inserted, err = d.writeMissing(ctx, runID, w, kept); err != nil {
			return nil, err
		}
	}
	for i := range rows {
		f, ok := folded[i]
		if ok && inserted[rows[i].StripeSubscriptionID] {
			out[i] = f.Results[0]
			continue
		}
		rest = append(rest, i)
	}
	return rest, nil
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
