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
