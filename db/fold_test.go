package db_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/testenv"
)

func openWithOutbox(t *testing.T) *db.DB {
	t.Helper()
	return testenv.MigratedDB(t, db.Config{CacheKeyTemplate: "features:{user_id}"})
}

// The batched write (one transaction, rows folded in Go, one multi-row
// statement) leaves exactly what one guarded upsert per row leaves: the same
// rows, the same per-row results and the same cache invalidations, for
// random sequences mixing stale and newer states, user changes and repeats
// of one subscription in a batch, in any order.
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
		var rows []db.Subscription
		for range 1 + rng.IntN(12) {
			at := t0.Add(time.Duration(rng.IntN(40)) * time.Minute)
			rows = append(rows, db.Subscription{
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
			want, err := single.UpsertSubscription(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
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
