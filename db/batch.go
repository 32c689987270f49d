package db

import (
	"context"

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
	err := d.inTx(ctx, "apply_subscriptions", func(tx *sqlx.Tx) error {
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
		return d.writeBatch(ctx, tx, w)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
