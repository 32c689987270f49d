package reconcile_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/metrics"
	"github.com/subsync/subsync/reconcile"
	"github.com/subsync/subsync/stripeapi"
	"github.com/subsync/subsync/stripefake"
)

// TestApplierRecordsFailureAfterDatabaseRestart: Postgres crashes while an
// event is being applied and is back a moment later. The failure must be
// recorded once the database answers again, so the event is retried after
// its backoff, not after its claim's lease (found by the chaos scenario: an
// event whose apply failed because of a restart waited out the 2m lease,
// its row stale meanwhile).
func TestApplierRecordsFailureAfterDatabaseRestart(t *testing.T) {
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
		if _, err := d.InsertEvent(ctx, db.NewEvent{ID: ev.ID, Type: string(ev.Type), Created: time.Unix(ev.Created, 0),
			Source: db.SourceWebhook, Status: db.StatusPending, SubscriptionID: sub.ID, Payload: body}); err != nil {
			t.Fatal(err)
		}
	}

	// A lease far longer than the test: only a recorded failure makes the
	// event due again.
	a := reconcile.NewApplier(reconcile.ApplierConfig{
		Mode: reconcile.ModeRefetch, Metrics: m, Lease: time.Hour, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond,
	}, d, client, &reconcile.Resolver{Plans: plans, Customers: client})

	fake.SetFaults(stripefake.Faults{Latency: 2 * time.Second}) // the refetch hangs while Postgres dies
	done := make(chan error, 1)
	go func() {
		_, err := a.RunOnce(ctx, time.Minute)
		done <- err
	}()
	waitUntil(t, "the event is claimed", func() bool {
		ev, err := d.GetEvent(ctx, evID)
		return err == nil && ev.Attempts == 1
	})
	pg.Kill(t)
	waitUntil(t, "recording the failure fails", func() bool {
		return testutil.ToFloat64(m.DBErrors.WithLabelValues("finish_event")) > 0
	})
	pg.Start(t)
	fake.SetFaults(stripefake.Faults{})
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunOnce: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("RunOnce did not return after the database came back")
	}

	ev, err := d.GetEvent(ctx, evID)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Status != db.StatusFailed {
		t.Fatalf("event is %s after the restart, want failed (recorded, due after its backoff)", ev.Status)
	}
	if n, err := a.Drain(ctx); err != nil || n != 1 {
		t.Fatalf("drain after the restart applied %d events (err %v), want the event retried at once", n, err)
	}
	if ev, _ := d.GetEvent(ctx, evID); ev.Status != db.StatusApplied {
		t.Fatalf("event is %s after the retry, want applied", ev.Status)
	}
	row, err := d.GetSubscription(ctx, sub.ID)
	if err != nil || row.Status != string(sub.Status) || row.UserID == nil || *row.UserID != "user-1" {
		t.Fatalf("row after the retry: %+v, %v", row, err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
