package db

import (
	"context"
	"fmt"
	"slices"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// UpsertSubscriptions writes several rows through the guarded upsert
// (Tx.Upsert) in one transaction that holds the advisory lock of each
// subscription, so a page of repairs costs one commit instead of one per
// row. The locks are taken in id order, in one statement, so two batches
// cannot deadlock; other writers take one lock at a time. Results are in
// the order of rows.
func (d *DB) UpsertSubscriptions(ctx context.Context, rows []Subscription) ([]UpsertResult, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.StripeSubscriptionID
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	out := make([]UpsertResult, len(rows))
	err := d.inTx(ctx, "apply_subscriptions", func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(id, 7071))
			FROM (SELECT id FROM unnest($1::text[]) AS u(id) ORDER BY id) AS sorted`, pq.Array(ids))
		if err := d.observe("lock_subscriptions", err); err != nil {
			return fmt.Errorf("lock %d subscriptions: %w", len(ids), err)
		}
		t := &Tx{tx: tx, d: d}
		for i, r := range rows {
			if out[i], err = t.Upsert(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
