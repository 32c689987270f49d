package db_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/reconcile"
)

func TestRunLifecycleAndDrift(t *testing.T) {
	d := runsDB(t)
	ctx := context.Background()
	id, err := d.StartRun(ctx, "subscriptions", true)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := d.GetRun(ctx, id); err != nil || r.Status != reconcile.RunRunning || !r.DryRun || r.FinishedAt.Valid {
		t.Fatalf("started run %+v %v", r, err)
	}
	drift := []reconcile.Drift{
		{SubscriptionID: "sub_b", Field: "status", DBValue: "active", StripeValue: "canceled"},
		{SubscriptionID: "sub_a", Field: "missing_in_db", StripeValue: "active"},
		{SubscriptionID: "sub_b", Field: "plan_id", DBValue: "", StripeValue: "maquina"},
	}
	if err := d.InsertDrift(ctx, id, drift); err != nil {
		t.Fatal(err)
	}
	var got []reconcile.Drift
	if err := d.EachDrift(ctx, id, func(dr reconcile.Drift) error { got = append(got, dr); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []reconcile.Drift{drift[1], drift[2], drift[0]} // by subscription, then field
	if !slices.Equal(got, want) {
		t.Fatalf("drift %+v, want %+v", got, want)
	}
	stop := errors.New("stop")
	if err := d.EachDrift(ctx, id, func(reconcile.Drift) error { return stop }); err != stop {
		t.Fatalf("EachDrift returned %v, want fn's error", err)
	}
	c := reconcile.RunCounts{Scanned: 10, Drifted: 2, Fixed: 0, Errors: 1}
	if err := d.FinishRun(ctx, id, reconcile.RunSucceeded, c, ""); err != nil {
		t.Fatal(err)
	}
	r, err := d.GetRun(ctx, id)
	if err != nil || r.Status != reconcile.RunSucceeded || r.Scanned != 10 || r.Drifted != 2 || r.Errors != 1 || !r.FinishedAt.Valid || r.Error.Valid {
		t.Fatalf("finished run %+v %v", r, err)
	}
	if at, err := d.LastSuccess(ctx, "subscriptions"); err != nil || !at.Equal(r.FinishedAt.Time) {
		t.Fatalf("last success %v %v", at, err)
	}
	if _, err := d.LastSuccess(ctx, "events"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("last success of a job never run: %v", err)
	}

	dead, _ := d.StartRun(ctx, "events", false)
	live, _ := d.StartRun(ctx, "subscriptions", false)
	if n, err := d.AbandonRuns(ctx, "events"); err != nil || n != 1 {
		t.Fatalf("abandoned %d (%v)", n, err)
	}
	if r, _ := d.GetRun(ctx, dead); r.Status != reconcile.RunFailed || !r.Error.Valid {
		t.Fatalf("abandoned run %+v", r)
	}
	if r, _ := d.GetRun(ctx, live); r.Status != reconcile.RunRunning {
		t.Fatalf("another job's run was touched: %+v", r)
	}
	if _, err := d.GetRun(ctx, 987654); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("missing run: %v", err)
	}
}

func TestCursorNeverMovesBack(t *testing.T) {
	d := runsDB(t)
	ctx := context.Background()
	if _, err := d.Cursor(ctx, "events"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("cursor before any run: %v", err)
	}
	t1 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	steps := []struct {
		name     string
		advance  time.Time
		expected time.Time
	}{
		{"first", t1, t1},
		{"forward", t1.Add(time.Minute), t1.Add(time.Minute)},
		{"backward is ignored", t1, t1.Add(time.Minute)},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			got, err := d.AdvanceCursor(ctx, "events", s.advance)
			if err != nil || !got.Equal(s.expected) {
				t.Fatalf("advance to %v: stored %v (%v), want %v", s.advance, got, err, s.expected)
			}
			if c, err := d.Cursor(ctx, "events"); err != nil || !c.Equal(s.expected) {
				t.Fatalf("cursor %v %v", c, err)
			}
		})
	}
	if err := d.SetCursor(ctx, "events", t1.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if c, _ := d.Cursor(ctx, "events"); !c.Equal(t1.Add(-time.Hour)) {
		t.Fatalf("SetCursor did not move back: %v", c)
	}
}

func TestSeenSetReportsRowsNotSeen(t *testing.T) {
	d := runsDB(t)
	ctx := context.Background()
	row := func(id string) reconcile.Subscription {
		return reconcile.Subscription{StripeSubscriptionID: id, StripeCustomerID: "cus_1", BillingPeriod: "monthly",
			Status: "active", StripeStateAt: time.Now()}
	}
	for _, id := range []string{"sub_1", "sub_2", "sub_3", "sub_4"} {
		if _, err := d.UpsertSubscription(ctx, row(id)); err != nil {
			t.Fatal(err)
		}
	}
	seen, err := d.NewSeenSet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.UpsertSubscription(ctx, row("sub_5")); err != nil { // created during the listing
		t.Fatal(err)
	}
	if err := seen.Add(ctx, []string{"sub_1", "sub_3", "sub_9"}); err != nil {
		t.Fatal(err)
	}
	if err := seen.Add(ctx, []string{"sub_3"}); err != nil { // twice is fine
		t.Fatal(err)
	}
	var unseen []string
	if err := seen.EachUnseen(ctx, func(s reconcile.Subscription) error {
		unseen = append(unseen, s.StripeSubscriptionID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(unseen, []string{"sub_2", "sub_4"}) {
		t.Fatalf("unseen %v", unseen)
	}
	seen.Close(ctx)
	// The connection went back to the pool without the table: a new set
	// starts empty.
	again, err := d.NewSeenSet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close(ctx)
	n := 0
	again.EachUnseen(ctx, func(reconcile.Subscription) error { n++; return nil })
	if n != 5 {
		t.Fatalf("a new set saw %d unseen rows, want 5", n)
	}
}
