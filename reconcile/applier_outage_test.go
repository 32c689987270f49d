package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/dbtest"
	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/metrics"
	"github.com/subsync/subsync/reconcile"
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
	d := dbtest.OpenOn(t, pg, db.Config{Metrics: m})
	p := newPendingSub(t, d, 3)
	fake, sub, evID := p.fake, p.sub, p.eventID
	a := p.applier(t, d, reconcile.ApplierConfig{
		Mode: reconcile.ModeRefetch, Metrics: m, MinBackoff: time.Hour, MaxBackoff: time.Hour,
	})

	fake.SetFaults(stripefake.Faults{Latency: 2 * time.Second}) // the refetch hangs while Postgres dies
	done := make(chan error, 1)
	go func() {
		_, err := a.RunOnce(ctx, time.Minute)
		done <- err
	}()
	testenv.WaitFor(t, "the batch holds the subscription's lock", func() bool { return advisoryLocksHeld(t, d) == 1 })
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

// TestApplierHoldsItsClaimWhileProcessing: a live worker keeps its claim
// however long Stripe makes it wait: another worker polling all along never
// takes the event over. When the worker's connection dies (a SIGKILLed or
// lost replica), its claim ends with it and the event is claimed at once by
// the other, with no lease to wait out.
func TestApplierHoldsItsClaimWhileProcessing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.Open(t, db.Config{})
	p := newPendingSub(t, d, 5)
	fake, evID := p.fake, p.eventID
	slow, other := p.applier(t, d, reconcile.ApplierConfig{}), p.applier(t, d, reconcile.ApplierConfig{})

	fake.SetFaults(stripefake.Faults{Latency: 1200 * time.Millisecond})
	done := make(chan error, 1)
	go func() {
		_, err := slow.RunOnce(ctx, time.Minute)
		done <- err
	}()
	held := func() bool { return advisoryLocksHeld(t, d) == 1 }
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
