package reconcile_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/metrics"
	"github.com/subsync/subsync/reconcile"
	"github.com/subsync/subsync/stripeapi"
)

// TestApplierBatchSurvivesDatabaseRestart: Postgres crashes while a batch
// waits for Stripe and is back a moment later. The batch's transaction is
// gone with the crash, so its event is due again at once, as if never
// claimed: no lease or backoff to wait out (the chaos scenario once found
// an event whose apply failed in a restart waiting out a 2m lease, its row
// stale meanwhile), and the next run applies it.
func TestApplierBatchSurvivesDatabaseRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.StartPostgres(t)
	m := metrics.New(prometheus.NewRegistry(), false)
	d, err := db.Open(ctx, db.Config{URL: pg.URL(), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}

	fake := stripefake.New(stripefake.Options{Seed: 3})
	t.Cleanup(fake.Close)
	price, err := fake.CreatePrice(stripefake.PriceParams{UnitAmount: 57300, Interval: "month", ProductName: "maquina"})
	if err != nil {
		t.Fatal(err)
	}
	plans, err := reconcile.NewPlans(reconcile.PlanEntry{Price: price.ID, Plan: "maquina", Period: reconcile.PeriodMonthly})
	if err != nil {
		t.Fatal(err)
	}
	client, err := stripeapi.New(stripeapi.Config{Key: fake.APIKey(), APIBase: fake.URL(), RateLimit: 1000, MaxRetries: -1})
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
	created := fake.Events()
	var evID string
	for _, ev := range created {
		if string(ev.Type) != "customer.subscription.created" {
			continue
		}
		body, _ := json.Marshal(ev)
		evID = ev.ID
		if _, err := d.InsertEvent(ctx, reconcile.NewEvent{ID: ev.ID, Type: string(ev.Type), Created: time.Unix(ev.Created, 0),
			Source: reconcile.SourceWebhook, Status: reconcile.StatusPending, SubscriptionID: sub.ID, Payload: body}); err != nil {
			t.Fatal(err)
		}
	}

	a := reconcile.NewApplier(reconcile.ApplierConfig{
		Mode: reconcile.ModeRefetch, Metrics: m, MinBackoff: time.Hour, MaxBackoff: time.Hour,
	}, d, client, &reconcile.Resolver{Plans: plans, Customers: client})

	fake.SetFaults(stripefake.Faults{Latency: 2 * time.Second}) // the refetch hangs while Postgres dies
	done := make(chan error, 1)
	go func() {
		_, err := a.RunOnce(ctx, time.Minute)
		done <- err
	}()
	testenv.WaitFor(t, "the batch holds the subscription's lock", func() bool {
		var n int
		return d.X().Get(&n, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`) == nil && n == 1
	})
	pg.Kill(t)
	pg.Start(t)
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("RunOnce reported success for a batch whose database crashed under it")
		}
	case <-time.After(time.Minute):
		t.Fatal("RunOnce did not return after the database crashed")
	}
	fake.SetFaults(stripefake.Faults{})

	ev, err := d.GetEvent(ctx, evID)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Status != reconcile.StatusPending || ev.Attempts != 0 {
		t.Fatalf("event is %s after %d attempts after the crash, want pending and untried", ev.Status, ev.Attempts)
	}
	if n, err := a.Drain(ctx); err != nil || n != 1 {
		t.Fatalf("drain after the restart applied %d events (err %v), want the event at once", n, err)
	}
	if ev, _ := d.GetEvent(ctx, evID); ev.Status != reconcile.StatusApplied || ev.Attempts != 1 {
		t.Fatalf("event is %s after %d attempts, want applied after 1", ev.Status, ev.Attempts)
	}
	row, err := d.GetSubscription(ctx, sub.ID)
	if err != nil || row.Status != string(sub.Status) || row.UserID == nil || *row.UserID != "user-1" {
		t.Fatalf("row after the retry: %+v, %v", row, err)
	}
}
