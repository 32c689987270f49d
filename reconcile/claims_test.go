package reconcile_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/reconcile"
	"github.com/subsync/subsync/stripeapi"
	"github.com/subsync/subsync/stripefake"
)

// TestApplierRenewsItsClaimWhileProcessing: a live worker keeps its claim
// however long processing takes, so the lease can be short and the claims
// of a worker that dies come back quickly (found by the chaos scenario: the
// events a SIGKILLed daemon had claimed waited out a 2-minute lease, their
// rows stale meanwhile). Here Stripe answers after four leases; another
// worker polling all along must never take the event over.
func TestApplierRenewsItsClaimWhileProcessing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := db.Open(ctx, db.Config{URL: testenv.DatabaseURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	fake := stripefake.New(stripefake.Options{Seed: 5})
	t.Cleanup(fake.Close)
	price, err := fake.CreatePrice(stripefake.PriceParams{UnitAmount: 57300, Interval: "month"})
	if err != nil {
		t.Fatal(err)
	}
	plans, err := reconcile.NewPlans(reconcile.PlanEntry{Price: price.ID, Plan: "maquina", Period: reconcile.PeriodMonthly})
	if err != nil {
		t.Fatal(err)
	}
	cus, err := fake.CreateCustomer(stripefake.CustomerParams{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := fake.CreateSubscription(stripefake.SubscriptionParams{Customer: cus.ID, Price: price.ID,
		Metadata: map[string]string{"user_id": "user-1"}})
	if err != nil {
		t.Fatal(err)
	}
	var evID string
	for _, ev := range fake.Events() {
		if string(ev.Type) == "customer.subscription.created" {
			body, _ := json.Marshal(ev)
			evID = ev.ID
			if _, err := d.InsertEvent(ctx, db.NewEvent{ID: ev.ID, Type: string(ev.Type), Created: time.Unix(ev.Created, 0),
				Source: db.SourceWebhook, Status: db.StatusPending, SubscriptionID: sub.ID, Payload: body}); err != nil {
				t.Fatal(err)
			}
		}
	}
	newApplier := func() *reconcile.Applier {
		client, err := stripeapi.New(stripeapi.Config{Key: fake.APIKey(), APIBase: fake.URL(), RateLimit: 1000, MaxRetries: -1})
		if err != nil {
			t.Fatal(err)
		}
		return reconcile.NewApplier(reconcile.ApplierConfig{Lease: 300 * time.Millisecond},
			d, client, &reconcile.Resolver{Plans: plans, Customers: client})
	}
	slow, other := newApplier(), newApplier()

	fake.SetFaults(stripefake.Faults{Latency: 1200 * time.Millisecond})
	done := make(chan error, 1)
	go func() {
		_, err := slow.RunOnce(ctx, time.Minute)
		done <- err
	}()
	waitUntil(t, "the event is claimed", func() bool {
		ev, err := d.GetEvent(ctx, evID)
		return err == nil && ev.Attempts == 1
	})
	claimedAt := time.Now()
	polls := 0
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("RunOnce: %v", err)
			}
			finished = true
		case <-time.After(50 * time.Millisecond):
			n, err := other.RunOnce(ctx, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("another worker claimed the event %s after a 300 ms lease a live worker renews began",
					time.Since(claimedAt).Round(time.Millisecond))
			}
			polls++
		}
	}
	ev, err := d.GetEvent(ctx, evID)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Status != db.StatusApplied || ev.Attempts != 1 {
		t.Fatalf("event %s after %d attempts, want applied after 1", ev.Status, ev.Attempts)
	}
	if polls < 10 {
		t.Fatalf("only %d polls while the worker processed; Stripe latency not in force?", polls)
	}
}
