package db_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/dbtest"
	"github.com/subsync/subsync/reconcile"
)

func openWithOutbox(t *testing.T) *db.DB {
	t.Helper()
	return dbtest.Open(t, db.Config{CacheKeyTemplate: "features:{user_id}"})
}

// The batched write (one transaction, rows folded in Go, one multi-row
// statement) leaves exactly what the guarded upsert's rules, applied one row
// at a time in SQL (referenceUpsert), leave: the same rows, the same per-row
// results and the same cache invalidations, for random sequences mixing
// stale and newer states, user changes and repeats of one subscription in a
// batch, in any order.
func TestBatchedUpsertEqualsOneUpsertPerRow(t *testing.T) {
	t.Parallel()
	batched, single := openWithOutbox(t), openWithOutbox(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 11))
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	pick := func(xs ...string) *string {
		v := xs[rng.IntN(len(xs))]
		if v == "" {
			return nil
		}
		return &v
	}
	for round := range 30 {
		var rows []reconcile.Subscription
		for range 1 + rng.IntN(12) {
			at := t0.Add(time.Duration(rng.IntN(40)) * time.Minute)
			rows = append(rows, reconcile.Subscription{
				StripeSubscriptionID: fmt.Sprintf("sub_f%d", rng.IntN(5)),
				UserID:               pick("", "u1", "u2"),
				StripeCustomerID:     *pick("cus_a", "cus_b"),
				StripePriceID:        pick("price_m", "price_y"),
				PlanID:               pick("", "maquina"),
				BillingPeriod:        *pick("monthly", "annual"),
				Status:               *pick("active", "past_due", "canceled"),
				CancelAtPeriodEnd:    rng.IntN(2) == 0,
				StripeStateAt:        at,
			})
		}
		got, err := batched.UpsertSubscriptions(ctx, rows)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rows {
			want := referenceUpsert(t, single, r)
			if fmt.Sprint(got[i]) != fmt.Sprint(want) {
				t.Fatalf("round %d row %d (%s at %s): batched %+v, one by one %+v", round, i, r.StripeSubscriptionID,
					r.StripeStateAt.Format(time.TimeOnly), got[i], want)
			}
		}
		if b, s := tableState(t, batched), tableState(t, single); !slices.Equal(b, s) {
			t.Fatalf("round %d: tables differ\nbatched: %v\none by one: %v", round, b, s)
		}
	}
}

// tableState lists the rows and the queued invalidations (user, key and
// subscription, counted) in a comparable form.
func tableState(t *testing.T, d *db.DB) []string {
	t.Helper()
	var out []string
	err := d.X().Select(&out, `
		SELECT format('%s|%s|%s|%s|%s|%s|%s|%s|%s', stripe_subscription_id, user_id, stripe_customer_id,
			stripe_price_id, plan_id, billing_period, status, cancel_at_period_end, stripe_state_at)
		FROM user_subscriptions
		UNION ALL
		SELECT format('outbox %s|%s|%s ×%s', user_id, cache_key, subscription_id, count(*))
		FROM cache_invalidations GROUP BY user_id, cache_key, subscription_id
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// referenceUpsert is the guarded upsert written the plain way, one row and
// a few statements at a time, as the rules say: under the subscription's
// lock, a row older than the stored one is refused (stale); a row without a
// user id keeps the stored one; an insert of a linked row, or a change of
// plan, period, status or user, queues the user's cache invalidation, and a
// user who leaves the subscription gets one too; a row equal in every
// tracked field only moves stripe_state_at.
func referenceUpsert(t *testing.T, d *db.DB, s reconcile.Subscription) reconcile.UpsertResult {
	t.Helper()
	tx := d.X().MustBegin()
	defer tx.Rollback()
	tx.MustExec(`SELECT pg_advisory_xact_lock(hashtextextended($1, 7071))`, s.StripeSubscriptionID)
	var old []reconcile.Subscription
	if err := tx.Select(&old, `SELECT stripe_subscription_id, user_id, stripe_customer_id, stripe_price_id, plan_id,
		billing_period, status, current_period_start, current_period_end, cancel_at_period_end, canceled_at,
		stripe_state_at, created_at, updated_at FROM user_subscriptions WHERE stripe_subscription_id = $1 FOR UPDATE`,
		s.StripeSubscriptionID); err != nil {
		t.Fatal(err)
	}
	invalidate := func(user *string) {
		tx.MustExec(`INSERT INTO cache_invalidations (user_id, cache_key, subscription_id) VALUES ($1, $2, $3)`,
			*user, "features:"+*user, s.StripeSubscriptionID)
	}
	var res reconcile.UpsertResult
	switch {
	case len(old) == 0:
		res = reconcile.UpsertResult{Inserted: true, Changes: reconcile.Diff(reconcile.Subscription{}, s)}
		tx.MustExec(`INSERT INTO user_subscriptions (stripe_subscription_id, user_id, stripe_customer_id,
			stripe_price_id, plan_id, billing_period, status, current_period_start, current_period_end,
			cancel_at_period_end, canceled_at, stripe_state_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			s.StripeSubscriptionID, s.UserID, s.StripeCustomerID, s.StripePriceID, s.PlanID, s.BillingPeriod, s.Status,
			s.CurrentPeriodStart, s.CurrentPeriodEnd, s.CancelAtPeriodEnd, s.CanceledAt, s.StripeStateAt)
		if s.UserID != nil {
			res.Invalidated = true
			invalidate(s.UserID)
		}
	case old[0].StripeStateAt.After(s.StripeStateAt):
		return reconcile.UpsertResult{Stale: true}
	default:
		if s.UserID == nil {
			s.UserID = old[0].UserID
		}
		res.Changes = reconcile.Diff(old[0], s)
		tx.MustExec(`UPDATE user_subscriptions SET user_id = $2, stripe_customer_id = $3, stripe_price_id = $4,
			plan_id = $5, billing_period = $6, status = $7, current_period_start = $8, current_period_end = $9,
			cancel_at_period_end = $10, canceled_at = $11, stripe_state_at = $12 WHERE stripe_subscription_id = $1`,
			s.StripeSubscriptionID, s.UserID, s.StripeCustomerID, s.StripePriceID, s.PlanID, s.BillingPeriod, s.Status,
			s.CurrentPeriodStart, s.CurrentPeriodEnd, s.CancelAtPeriodEnd, s.CanceledAt, s.StripeStateAt)
		relevant := false
		for _, c := range res.Changes {
			relevant = relevant || reconcile.FeatureField(c.Field)
		}
		if relevant && s.UserID != nil {
			res.Invalidated = true
			invalidate(s.UserID)
		}
		if old[0].UserID != nil && s.UserID != nil && *old[0].UserID != *s.UserID {
			invalidate(old[0].UserID)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return res
}
