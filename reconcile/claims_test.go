package reconcile_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/dbtest"
	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/reconcile"
	"github.com/subsync/subsync/stripeapi"
)

// TestApplierHoldsItsClaimWhileProcessing: a live worker keeps its claim
// however long Stripe makes it wait: another worker polling all along never
// takes the event over. When the worker's connection dies (a SIGKILLed or
// lost replica), its claim ends with it and the event is claimed at once by
// the other, with no lease to wait out.
func TestApplierHoldsItsClaimWhileProcessing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.Open(t, db.Config{})
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
			if _, err := d.InsertEvent(ctx, reconcile.NewEvent{ID: ev.ID, Type: string(ev.Type), Created: time.Unix(ev.Created, 0),
				Source: reconcile.SourceWebhook, Status: reconcile.StatusPending, SubscriptionID: sub.ID, Payload: body}); err != nil {
				t.Fatal(err)
			}
		}
	}
	newApplier := func() *reconcile.Applier {
		client, err := stripeapi.New(stripeapi.Config{Key: fake.APIKey(), APIBase: fake.URL(), RateLimit: 1000, MaxRetries: -1})
		if err != nil {
			t.Fatal(err)
		}
		return reconcile.NewApplier(reconcile.ApplierConfig{},
			d, client, &reconcile.Resolver{Plans: plans, Customers: client})
	}
	slow, other := newApplier(), newApplier()

	fake.SetFaults(stripefake.Faults{Latency: 1200 * time.Millisecond})
	done := make(chan error, 1)
	go func() {
		_, err := slow.RunOnce(ctx, time.Minute)
		done <- err
	}()
	held := func() bool {
		var n int
		return d.X().Get(&n, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`) == nil && n == 1
	}
	testenv.WaitFor(t, "the event is claimed", held)
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
				t.Fatal("another worker claimed the event while the first was applying it")
			}
			polls++
		}
	}
	ev, err := d.GetEvent(ctx, evID)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Status != reconcile.StatusApplied || ev.Attempts != 1 {
		t.Fatalf("event %s after %d attempts, want applied after 1", ev.Status, ev.Attempts)
	}
	if polls < 10 {
		t.Fatalf("only %d polls while the worker processed; Stripe latency not in force?", polls)
	}

	// The worker's connection dies mid-batch: the other takes over at once.
	if _, err := d.X().Exec(`UPDATE stripe_webhook_events SET status = 'pending', processed_at = NULL WHERE id = $1`, evID); err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := slow.RunOnce(ctx, time.Minute)
		done <- err
	}()
	testenv.WaitFor(t, "the event is claimed again", held)
	if _, err := d.X().Exec(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("the worker whose connection died reported success")
	}
	fake.SetFaults(stripefake.Faults{})
	if n, err := other.RunOnce(ctx, time.Minute); err != nil || n != 1 {
		t.Fatalf("the other worker claimed %d events (err %v) right after the first died, want 1", n, err)
	}
	if ev, _ := d.GetEvent(ctx, evID); ev.Status != reconcile.StatusApplied || ev.Attempts != 2 {
		t.Fatalf("event %s after %d attempts, want applied after 2", ev.Status, ev.Attempts)
	}
}
