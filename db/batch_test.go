package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/reconcile"
)

func TestUpsertSubscriptionsKeepsTheGuard(t *testing.T) {
	t.Parallel()
	d := openMigrated(t, testenv.DatabaseURL(t))
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	row := func(id, status string, at time.Time) reconcile.Subscription {
		user := "u-" + id
		return reconcile.Subscription{StripeSubscriptionID: id, UserID: &user, StripeCustomerID: "cus_" + id,
			BillingPeriod: "annual", Status: status, StripeStateAt: at}
	}
	for _, r := range []reconcile.Subscription{row("sub_newer", "active", t0.Add(time.Hour)), row("sub_older", "active", t0)} {
		if _, err := d.UpsertSubscription(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	res, err := d.UpsertSubscriptions(ctx, []reconcile.Subscription{
		row("sub_newer", "canceled", t0.Add(time.Minute)), // older state than stored: refused
		row("sub_older", "past_due", t0.Add(time.Minute)), // newer: written
		row("sub_new", "trialing", t0),                    // missing: inserted
		row("sub_new", "active", t0.Add(time.Second)),     // same id again in the batch: sees the insert
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Stale || res[1].Stale || len(res[1].Changes) != 1 || !res[2].Inserted || res[3].Inserted || len(res[3].Changes) != 1 {
		t.Fatalf("results %+v", res)
	}
	want := map[string]string{"sub_newer": "active", "sub_older": "past_due", "sub_new": "active"}
	for id, status := range want {
		got, err := d.GetSubscription(ctx, id)
		if err != nil || got.Status != status {
			t.Fatalf("%s: status %q err %v, want %s", id, got.Status, err, status)
		}
	}
}

// A writer that waits for a subscription's lock reads the row as the
// lock's holder left it, even one the holder inserted while the writer
// waited: the read follows the lock in time, not only in the statement.
// Were the row read with a snapshot taken before the wait, the older
// state would be folded in as an insert instead of refused as stale.
func TestLockedReadSeesWhatTheLockHolderCommitted(t *testing.T) {
	t.Parallel()
	d := openMigrated(t, testenv.DatabaseURL(t))
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	user := "u-race"
	holder := d.X().MustBegin()
	defer holder.Rollback()
	holder.MustExec(`SELECT pg_advisory_xact_lock(hashtextextended('sub_race', 7071))`)
	holder.MustExec(`INSERT INTO user_subscriptions (stripe_subscription_id, user_id, stripe_customer_id,
		billing_period, status, stripe_state_at) VALUES ('sub_race', $1, 'cus_race', 'annual', 'canceled', $2)`,
		user, t0.Add(time.Hour))
	type result struct {
		res []reconcile.UpsertResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := d.UpsertSubscriptions(ctx, []reconcile.Subscription{{StripeSubscriptionID: "sub_race", UserID: &user,
			StripeCustomerID: "cus_race", BillingPeriod: "annual", Status: "active", StripeStateAt: t0}})
		done <- result{res, err}
	}()
	testenv.WaitFor(t, "the writer waiting for the lock", func() bool {
		var waiting int
		if err := d.X().Get(&waiting, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
			t.Fatal(err)
		}
		return waiting > 0
	})
	if err := holder.Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !r.res[0].Stale || r.res[0].Inserted {
		t.Fatalf("result %+v, want stale: the holder's newer row was committed before the lock was granted", r.res[0])
	}
	got, err := d.GetSubscription(ctx, "sub_race")
	if err != nil || got.Status != "canceled" {
		t.Fatalf("row %+v (%v), want the holder's", got, err)
	}
}
