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
		// Read every stored row of the batch in one statement rather than
		// one per row: on a first sweep into an empty table this is a third
		// of the round trips.
		var stored []Subscription
		err = tx.SelectContext(ctx, &stored, `SELECT `+subscriptionColumns+` FROM user_subscriptions
			WHERE stripe_subscription_id = ANY($1) FOR UPDATE`, pq.Array(ids))
		if err := d.observe("select_subscriptions", err); err != nil {
			return fmt.Errorf("read %d subscriptions: %w", len(ids), err)
		}
		byID := make(map[string]Subscription, len(stored))
		for _, s := range stored {
			byID[s.StripeSubscriptionID] = s
		}
		t := &Tx{tx: tx, d: d}
		written := make(map[string]bool, len(rows))
		for i, r := range rows {
			id := r.StripeSubscriptionID
			if written[id] { // a second row for one id: read what the first wrote
				out[i], err = t.Upsert(ctx, r)
			} else {
				old, ok := byID[id]
				var getErr error
				if !ok {
					getErr = fmt.Errorf("subscription %s: %w", id, ErrNotFound)
				}
				out[i], err = t.upsert(ctx, r, old, getErr)
			}
			if err != nil {
				return err
			}
			written[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
