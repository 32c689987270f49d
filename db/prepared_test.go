package db

import (
	"context"
	"testing"
	"time"

	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/reconcile"
)

// A statement prepared before a migration changed what it reads fails
// once ("cached plan must not change result type"); the next run prepares
// it anew and succeeds, instead of failing forever. After Close, nothing
// prepared is handed out.
func TestPreparedStatementRecoversFromSchemaChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := Open(ctx, Config{URL: testenv.DatabaseURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	row := reconcile.Subscription{StripeSubscriptionID: "sub_prep", StripeCustomerID: "cus_prep",
		BillingPeriod: reconcile.PeriodMonthly, Status: "active", StripeStateAt: time.Now().UTC().Truncate(time.Microsecond)}
	upsert := func() error {
		row.StripeStateAt = row.StripeStateAt.Add(time.Second)
		_, err := d.UpsertSubscriptions(ctx, []reconcile.Subscription{row})
		return err
	}
	testenv.WaitFor(t, "the locked read prepared", func() bool {
		if err := upsert(); err != nil {
			t.Fatal(err)
		}
		return d.prepared(readLockedSQL) != nil
	})
	if err := upsert(); err != nil { // prepared on the pool's connection too
		t.Fatal(err)
	}
	if _, err := d.x.Exec(`ALTER TABLE user_subscriptions ALTER COLUMN status TYPE varchar(64)`); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for range 3 {
		if err := upsert(); err != nil {
			failed++
			t.Logf("after the schema change: %v", err)
		}
	}
	if failed > 1 {
		t.Fatalf("%d of 3 writes failed after the schema change, want at most the first", failed)
	}
	got, err := d.GetSubscription(ctx, "sub_prep")
	if err != nil || !got.StripeStateAt.Equal(row.StripeStateAt) {
		t.Fatalf("row %+v (%v), want the last write's state %s", got, err, row.StripeStateAt)
	}
	d.Close()
	if st := d.prepared(readLockedSQL); st != nil {
		t.Fatal("a prepared statement was handed out after Close")
	}
}
