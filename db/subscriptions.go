package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Subscription is one row of user_subscriptions.
type Subscription struct {
	StripeSubscriptionID string     `db:"stripe_subscription_id"`
	UserID               *string    `db:"user_id"`
	StripeCustomerID     string     `db:"stripe_customer_id"`
	StripePriceID        *string    `db:"stripe_price_id"`
	PlanID               *string    `db:"plan_id"`
	BillingPeriod        string     `db:"billing_period"`
	Status               string     `db:"status"`
	CurrentPeriodStart   *time.Time `db:"current_period_start"`
	CurrentPeriodEnd     *time.Time `db:"current_period_end"`
	CancelAtPeriodEnd    bool       `db:"cancel_at_period_end"`
	CanceledAt           *time.Time `db:"canceled_at"`
	StripeStateAt        time.Time  `db:"stripe_state_at"`
	CreatedAt            time.Time  `db:"created_at"`
	UpdatedAt            time.Time  `db:"updated_at"`
}

const subscriptionColumns = `stripe_subscription_id, user_id, stripe_customer_id, stripe_price_id, plan_id,
	billing_period, status, current_period_start, current_period_end, cancel_at_period_end, canceled_at,
	stripe_state_at, created_at, updated_at`

// FieldDiff is one tracked field whose stored value differs from the
// desired one.
type FieldDiff struct {
	Field string
	Old   string // "" for null
	New   string
}

// Diff compares the tracked fields of a stored row (old) with the desired
// row computed from Stripe (desired). The user id counts only when Stripe
// has one: a row keeps a user id Stripe no longer carries.
func Diff(old, desired Subscription) []FieldDiff {
	var out []FieldDiff
	add := func(field, o, n string) {
		if o != n {
			out = append(out, FieldDiff{Field: field, Old: o, New: n})
		}
	}
	if desired.UserID != nil {
		add("user_id", str(old.UserID), str(desired.UserID))
	}
	add("stripe_customer_id", old.StripeCustomerID, desired.StripeCustomerID)
	add("stripe_price_id", str(old.StripePriceID), str(desired.StripePriceID))
	add("plan_id", str(old.PlanID), str(desired.PlanID))
	add("billing_period", old.BillingPeriod, desired.BillingPeriod)
	add("status", old.Status, desired.Status)
	add("current_period_start", ts(old.CurrentPeriodStart), ts(desired.CurrentPeriodStart))
	add("current_period_end", ts(old.CurrentPeriodEnd), ts(desired.CurrentPeriodEnd))
	add("cancel_at_period_end", strconv.FormatBool(old.CancelAtPeriodEnd), strconv.FormatBool(desired.CancelAtPeriodEnd))
	add("canceled_at", ts(old.CanceledAt), ts(desired.CanceledAt))
	return out
}

// featureFields are the fields whose change alters what a user may use.
var featureFields = map[string]bool{"plan_id": true, "billing_period": true, "status": true, "user_id": true}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func ts(p *time.Time) string {
	if p == nil {
		return ""
	}
	return p.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
}

// UpsertResult says what a write did.
type UpsertResult struct {
	Inserted bool        // no row existed
	Stale    bool        // refused: the stored row reflects a newer Stripe state
	Changes  []FieldDiff // tracked fields written (all of them for an insert)
	// Invalidated is true when a cache invalidation was queued and the
	// change notification sent.
	Invalidated bool
}

// Tx is a transaction that holds one subscription's advisory lock: every
// writer of that subscription (applier, sweep, replicas) is serialised, so
// a Stripe state fetched inside it is not older than anything written
// before it.
type Tx struct {
	tx *sqlx.Tx
	d  *DB
}

// WithSubscription runs fn in a transaction holding the advisory lock of
// subscription id, and commits when fn returns nil.
func (d *DB) WithSubscription(ctx context.Context, id string, fn func(tx *Tx) error) error {
	return d.inTx(ctx, "apply_subscription", func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 7071))`, id)
		if err := d.observe("lock_subscription", err); err != nil {
			return fmt.Errorf("lock subscription %s: %w", id, err)
		}
		return fn(&Tx{tx: tx, d: d})
	})
}

// UpsertSubscription writes s under its lock in a transaction of its own.
func (d *DB) UpsertSubscription(ctx context.Context, s Subscription) (UpsertResult, error) {
	var res UpsertResult
	err := d.WithSubscription(ctx, s.StripeSubscriptionID, func(tx *Tx) error {
		var err error
		res, err = tx.Upsert(ctx, s)
		return err
	})
	return res, err
}

// Get reads the stored row of subscription id, or ErrNotFound.
func (t *Tx) Get(ctx context.Context, id string) (Subscription, error) {
	var s Subscription
	err := t.tx.GetContext(ctx, &s, `SELECT `+subscriptionColumns+` FROM user_subscriptions
		WHERE stripe_subscription_id = $1 FOR UPDATE`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("subscription %s: %w", id, ErrNotFound)
	}
	if err := t.d.observe("get_subscription", err); err != nil {
		return s, fmt.Errorf("read subscription %s: %w", id, err)
	}
	return s, nil
}

// Upsert writes the desired row s unless the stored row reflects a newer
// Stripe state (stripe_state_at). A missing user id in s keeps the stored
// one. When a feature-relevant field changed for a linked user, it queues
// the cache invalidation (when configured) and sends NOTIFY
// subsync_subscription_changed, in this same transaction.
func (t *Tx) Upsert(ctx context.Context, s Subscription) (UpsertResult, error) {
	old, err := t.Get(ctx, s.StripeSubscriptionID)
	return t.upsert(ctx, s, old, err)
}

// upsert is Upsert given the stored row as read under the lock (old, or
// getErr wrapping ErrNotFound when there is none).
func (t *Tx) upsert(ctx context.Context, s Subscription, old Subscription, getErr error) (UpsertResult, error) {
	id := s.StripeSubscriptionID
	err := getErr
	switch {
	case errors.Is(err, ErrNotFound):
		if err := t.insert(ctx, s); err != nil {
			return UpsertResult{}, err
		}
		res := UpsertResult{Inserted: true, Changes: Diff(Subscription{}, s)}
		if s.UserID != nil {
			inv, err := t.invalidate(ctx, *s.UserID, id)
			if err != nil {
				return res, err
			}
			res.Invalidated = inv
		}
		return res, nil
	case err != nil:
		return UpsertResult{}, err
	}
	if old.StripeStateAt.After(s.StripeStateAt) {
		return UpsertResult{Stale: true}, nil
	}
	if s.UserID == nil {
		s.UserID = old.UserID
	}
	changes := Diff(old, s)
	if len(changes) == 0 {
		_, err := t.tx.ExecContext(ctx, `UPDATE user_subscriptions SET stripe_state_at = $2
			WHERE stripe_subscription_id = $1`, id, s.StripeStateAt)
		if err := t.d.observe("touch_subscription", err); err != nil {
			return UpsertResult{}, fmt.Errorf("update state time of %s: %w", id, err)
		}
		return UpsertResult{}, nil
	}
	_, err = t.tx.NamedExecContext(ctx, `UPDATE user_subscriptions SET
		user_id = :user_id, stripe_customer_id = :stripe_customer_id, stripe_price_id = :stripe_price_id,
		plan_id = :plan_id, billing_period = :billing_period, status = :status,
		current_period_start = :current_period_start, current_period_end = :current_period_end,
		cancel_at_period_end = :cancel_at_period_end, canceled_at = :canceled_at,
		stripe_state_at = :stripe_state_at, updated_at = now()
		WHERE stripe_subscription_id = :stripe_subscription_id`, s)
	if err := t.d.observe("update_subscription", err); err != nil {
		return UpsertResult{}, fmt.Errorf("update subscription %s: %w", id, err)
	}
	res := UpsertResult{Changes: changes}
	relevant := false
	for _, c := range changes {
		relevant = relevant || featureFields[c.Field]
	}
	if relevant && s.UserID != nil {
		if res.Invalidated, err = t.invalidate(ctx, *s.UserID, id); err != nil {
			return res, err
		}
	}
	// A user who moved off this subscription has stale features too.
	if old.UserID != nil && s.UserID != nil && *old.UserID != *s.UserID {
		if _, err := t.invalidate(ctx, *old.UserID, id); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (t *Tx) insert(ctx context.Context, s Subscription) error {
	_, err := t.tx.NamedExecContext(ctx, `INSERT INTO user_subscriptions (
		stripe_subscription_id, user_id, stripe_customer_id, stripe_price_id, plan_id, billing_period, status,
		current_period_start, current_period_end, cancel_at_period_end, canceled_at, stripe_state_at)
		VALUES (:stripe_subscription_id, :user_id, :stripe_customer_id, :stripe_price_id, :plan_id,
		:billing_period, :status, :current_period_start, :current_period_end, :cancel_at_period_end,
		:canceled_at, :stripe_state_at)`, s)
	if err := t.d.observe("insert_subscription", err); err != nil {
		return fmt.Errorf("insert subscription %s: %w", s.StripeSubscriptionID, err)
	}
	return nil
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

// invalidate queues the deletion of the user's cache key (when an outbox is
// configured) and notifies listeners of subsync_subscription_changed.
func (t *Tx) invalidate(ctx context.Context, userID, subID string) (bool, error) {
	if t.d.cacheKey != "" {
		key := strings.ReplaceAll(t.d.cacheKey, "{user_id}", userID)
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO cache_invalidations (user_id, cache_key, subscription_id)
			VALUES ($1, $2, $3)`, userID, key, subID); t.d.observe("insert_cache_invalidation", err) != nil {
			return false, fmt.Errorf("queue cache invalidation for %s: %w", subID, err)
		}
	}
	payload, err := json.Marshal(ChangeNotification{UserID: userID, SubscriptionID: subID})
	if err != nil {
		return false, err
	}
	if _, err := t.tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, ChangeChannel, string(payload)); t.d.observe("notify_change", err) != nil {
		return false, fmt.Errorf("notify change of %s: %w", subID, err)
	}
	return true, nil
}

// GetSubscription reads one row without locking it.
func (d *DB) GetSubscription(ctx context.Context, id string) (Subscription, error) {
	var s Subscription
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

// SubscriptionsByID reads the rows of the given subscription ids in one
// query, keyed by id; ids without a row are absent.
func (d *DB) SubscriptionsByID(ctx context.Context, ids []string) (map[string]Subscription, error) {
	var rows []Subscription
	err := d.x.SelectContext(ctx, &rows, `SELECT `+subscriptionColumns+` FROM user_subscriptions
		WHERE stripe_subscription_id = ANY($1)`, pq.Array(ids))
	if err := d.observe("select_subscriptions", err); err != nil {
		return nil, fmt.Errorf("read %d subscriptions: %w", len(ids), err)
	}
	out := make(map[string]Subscription, len(rows))
	for _, r := range rows {
		out[r.StripeSubscriptionID] = r
	}
	return out, nil
}
