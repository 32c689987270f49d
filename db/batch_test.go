package db_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/subsync/subsync/db"
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
	waitForAdvisoryLockWaiter(t, d)
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

// A sweep's repair of a row it found missing waits for the subscription's
// lock like every writer: a holder that found no row either and is about
// to store one stores it first, and the repair then folds its own state
// into that row instead of inserting over it.
func TestRepairOfAMissingRowWaitsForTheLockHolder(t *testing.T) {
	t.Parallel()
	d := openMigrated(t, testenv.DatabaseURL(t))
	ctx := context.Background()
	run, err := d.StartRun(ctx, "subscriptions", false)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	user := "u-gap"
	holder := d.X().MustBegin()
	defer holder.Rollback()
	holder.MustExec(`SELECT pg_advisory_xact_lock(hashtextextended('sub_gap', 7071))`)
	missing := []reconcile.Drift{{SubscriptionID: "sub_gap", Field: reconcile.FieldMissingInDB, StripeValue: "active"}}
	type result struct {
		res []reconcile.UpsertResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := d.RepairSubscriptions(ctx, run, []reconcile.Subscription{{StripeSubscriptionID: "sub_gap", UserID: &user,
			StripeCustomerID: "cus_gap", BillingPeriod: "annual", Status: "active", StripeStateAt: t0.Add(time.Hour)}},
			[][]reconcile.Drift{missing})
		done <- result{res, err}
	}()
	waitForAdvisoryLockWaiter(t, d)
	holder.MustExec(`INSERT INTO user_subscriptions (stripe_subscription_id, user_id, stripe_customer_id,
		billing_period, status, stripe_state_at) VALUES ('sub_gap', $1, 'cus_gap', 'annual', 'canceled', $2)`, user, t0)
	if err := holder.Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.res[0].Inserted || r.res[0].Stale || len(r.res[0].Changes) != 1 || r.res[0].Changes[0].Field != "status" {
		t.Fatalf("result %+v, want an update of the holder's row's status", r.res[0])
	}
	got, err := d.GetSubscription(ctx, "sub_gap")
	if err != nil || got.Status != "active" {
		t.Fatalf("row %+v (%v), want the repair's state", got, err)
	}
	drift := runDrift(t, d, run)
	if len(drift) != 1 || drift[0] != missing[0] {
		t.Fatalf("drift %+v, want %+v once", drift, missing)
	}
}

// A repair's insert of the rows a sweep found missing writes every column
// as the upsert writes it, and returns the same result: set and null
// values, text that Postgres's array syntax would otherwise read as
// NULL, separators or escapes, invalid UTF-8, and times finer than a
// microsecond.
func TestRepairInsertWritesWhatTheUpsertWrites(t *testing.T) {
	t.Parallel()
	d := openMigrated(t, testenv.DatabaseURL(t))
	ctx := context.Background()
	run, err := d.StartRun(ctx, "subscriptions", false)
	if err != nil {
		t.Fatal(err)
	}
	str := func(s string) *string { return &s }
	at := func(t time.Time) *time.Time { return &t }
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 123456789, time.FixedZone("BRT", -3*3600))
	rows := []reconcile.Subscription{
		{UserID: str(`u "quoted" \ back,slash {x}`), StripeCustomerID: "NULL", StripePriceID: str("price_ágil"),
			PlanID: str(""), BillingPeriod: "annual", Status: `a,b"c`, CurrentPeriodStart: at(t0),
			CurrentPeriodEnd: at(t0.AddDate(1, 0, 0)), CancelAtPeriodEnd: true, CanceledAt: at(t0.Add(time.Nanosecond)),
			StripeStateAt: t0.Add(999 * time.Nanosecond)},
		{StripeCustomerID: "cus_plain", BillingPeriod: "monthly", Status: "", StripeStateAt: t0},
		{UserID: str("u_\xff\xfe_bad"), StripeCustomerID: "cus_\xc3", BillingPeriod: "other", Status: "active",
			StripeStateAt: t0.Add(-time.Hour)},
	}
	for i, r := range rows {
		viaRepair, viaUpsert := r, r
		viaRepair.StripeSubscriptionID = fmt.Sprintf(`sub_repair_%d "x"`, i)
		viaUpsert.StripeSubscriptionID = fmt.Sprintf(`sub_upsert_%d "x"`, i)
		missing := []reconcile.Drift{{SubscriptionID: viaRepair.StripeSubscriptionID, Field: reconcile.FieldMissingInDB}}
		got, err := d.RepairSubscriptions(ctx, run, []reconcile.Subscription{viaRepair}, [][]reconcile.Drift{missing})
		if err != nil {
			t.Fatal(err)
		}
		want, err := d.UpsertSubscription(ctx, viaUpsert)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got[0]) != fmt.Sprint(want) {
			t.Fatalf("row %d: repair %+v, upsert %+v", i, got[0], want)
		}
		a, err := d.GetSubscription(ctx, viaRepair.StripeSubscriptionID)
		if err != nil {
			t.Fatal(err)
		}
		b, err := d.GetSubscription(ctx, viaUpsert.StripeSubscriptionID)
		if err != nil {
			t.Fatal(err)
		}
		a.StripeSubscriptionID, a.CreatedAt, a.UpdatedAt = "", time.Time{}, time.Time{}
		b.StripeSubscriptionID, b.CreatedAt, b.UpdatedAt = "", time.Time{}, time.Time{}
		if describe(a) != describe(b) {
			t.Fatalf("row %d: repair wrote\n%s\nupsert wrote\n%s", i, describe(a), describe(b))
		}
	}
}

func describe(s reconcile.Subscription) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitForAdvisoryLockWaiter waits until a session of d's database waits
// for an advisory lock.
func waitForAdvisoryLockWaiter(t *testing.T, d *db.DB) {
	t.Helper()
	testenv.WaitFor(t, "a writer waiting for a subscription's lock", func() bool {
		var waiting int
		if err := d.X().Get(&waiting, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
			t.Fatal(err)
		}
		return waiting > 0
	})
}
