package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/lib/pq"
	"github.com/subsync/subsync/reconcile"
)

const subscriptionColumns = `stripe_subscription_id, user_id, stripe_customer_id, stripe_price_id, plan_id,
	billing_period, status, current_period_start, current_period_end, cancel_at_period_end, canceled_at,
	stripe_state_at, created_at, updated_at`

// UpsertSubscription writes s through the guarded upsert in a transaction
// of its own: UpsertSubscriptions of one row.
func (d *DB) UpsertSubscription(ctx context.Context, s reconcile.Subscription) (reconcile.UpsertResult, error) {
	res, err := d.UpsertSubscriptions(ctx, []reconcile.Subscription{s})
	if err != nil {
		return reconcile.UpsertResult{}, err
	}
	return res[0], nil
}

// ChangeChannel is the Postgres NOTIFY channel on which every
// feature-relevant change of a linked user's subscription is announced, in
// the transaction that makes it; the payload is a JSON ChangeNotification.
const ChangeChannel = "subsync_subscription_changed"

// ChangeNotification is the payload of a ChangeChannel notification.
type ChangeNotification struct {
	UserID         string `json:"user_id"`
	SubscriptionID string `json:"subscription_id"`
}

// GetSubscription reads one row without locking it.
func (d *DB) GetSubscription(ctx context.Context, id string) (reconcile.Subscription, error) {
	var s reconcile.Subscription
	err := d.x.GetContext(ctx, &s, `SELECT `+subscriptionColumns+` FROM user_subscriptions
		WHERE stripe_subscription_id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("subscription %s: %w", id, ErrNotFound)
	}
	if err := d.observe("get_subscription", err); err != nil {
		return s, fmt.Errorf("read subscription %s: %w", id, err)
	}
	return s, nil
}

// subscriptionsByIDSQL reads the rows of the ids in $1, each looked up
// through the primary key: "WHERE stripe_subscription_id = ANY($1)" is
// planned, once prepared, as a scan of the whole table for tables of a few
// thousand rows, where it costs three times as much. OFFSET 0 keeps the
// lookup from being flattened into a join, which a plan made while the
// table is small or not yet analyzed (a first sweep into an empty table)
// makes a hash join over a scan of the whole table, kept while it grows.
var subscriptionsByIDSQL = `SELECT s.* FROM unnest($1::text[]) AS k(id), LATERAL (SELECT ` + subscriptionColumns + `
	FROM user_subscriptions WHERE stripe_subscription_id = k.id OFFSET 0) AS s`

// SubscriptionsByID reads the rows of the given subscription ids in one
// query, keyed by id; ids without a row are absent.
func (d *DB) SubscriptionsByID(ctx context.Context, ids []string) (map[string]reconcile.Subscription, error) {
	var rows []reconcile.Subscription
	err := d.selectIn(ctx, nil, &rows, subscriptionsByIDSQL, pq.Array(ids))
	if err := d.observe("select_subscriptions", err); err != nil {
		return nil, fmt.Errorf("read %d subscriptions: %w", len(ids), err)
	}
	out := make(map[string]reconcile.Subscription, len(rows))
	for _, r := range rows {
		out[r.StripeSubscriptionID] = r
	}
	return out, nil
}
