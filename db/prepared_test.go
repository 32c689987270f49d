package db

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/reconcile"
)

// A statement prepared before a migration changed what it reads fails
// once ("cached plan must not change result type"); the next run prepares
// it anew and succeeds, instead of failing forever. Writes, whose locked
// read goes through subsync_lock_subscriptions, keep working. After Close,
// nothing prepared is handed out.
func TestPreparedStatementRecoversFromSchemaChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := migratedDB(t)
	row := reconcile.Subscription{StripeSubscriptionID: "sub_prep", StripeCustomerID: "cus_prep",
		BillingPeriod: reconcile.PeriodMonthly, Status: "active", StripeStateAt: time.Now().UTC().Truncate(time.Microsecond)}
	upsert := func() error {
		row.StripeStateAt = row.StripeStateAt.Add(time.Second)
		_, err := d.UpsertSubscriptions(ctx, []reconcile.Subscription{row})
		return err
	}
	read := func() error {
		got, err := d.SubscriptionsByID(ctx, []string{"sub_prep"})
		if err == nil && !got["sub_prep"].StripeStateAt.Equal(row.StripeStateAt) {
			t.Fatalf("read %+v, want the last write's state %s", got["sub_prep"], row.StripeStateAt)
		}
		return err
	}
	testenv.WaitFor(t, "the row read and the locks prepared", func() bool {
		if err := upsert(); err != nil {
			t.Fatal(err)
		}
		if err := read(); err != nil {
			t.Fatal(err)
		}
		return d.prepared(subscriptionsByIDSQL) != nil && d.prepared(lockSQL) != nil
	})
	if err := errors.Join(upsert(), read()); err != nil { // prepared on the pool's connection too
		t.Fatal(err)
	}
	if _, err := d.x.Exec(`ALTER TABLE user_subscriptions ALTER COLUMN status TYPE varchar(64)`); err != nil {
		t.Fatal(err)
	}
	var failedWrites, failedReads int
	for range 3 {
		if err := upsert(); err != nil {
			failedWrites++
			t.Logf("write after the schema change: %v", err)
		}
		if err := read(); err != nil {
			failedReads++
			t.Logf("read after the schema change: %v", err)
		}
	}
	if failedWrites > 1 || failedReads > 1 {
		t.Fatalf("after the schema change %d of 3 writes and %d of 3 reads failed, want at most the first of each",
			failedWrites, failedReads)
	}
	got, err := d.GetSubscription(ctx, "sub_prep")
	if err != nil || !got.StripeStateAt.Equal(row.StripeStateAt) {
		t.Fatalf("row %+v (%v), want the last write's state %s", got, err, row.StripeStateAt)
	}
	d.Close()
	if st := d.prepared(subscriptionsByIDSQL); st != nil {
		t.Fatal("a prepared statement was handed out after Close")
	}
}
