package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/testenv"
)

// Retention deletes applied and ignored events processed before the
// cutoff, in several batches, and nothing else: not a pending, failed or
// dead event however old, not a recent one. Runs that finished before the
// cutoff go with their drift rows; a recent run, and an old run still
// marked running, stay with theirs.
func TestRetentionDeletesOnlyWhatItShould(t *testing.T) {
	t.Parallel()
	d := openMigrated(t, testenv.DatabaseURL(t))
	ctx := context.Background()
	x := d.X()
	const oldApplied = db.PruneBatch*2 + 17 // three statements' worth
	x.MustExec(`
		INSERT INTO stripe_webhook_events (id, type, stripe_created_at, status, processed_at, payload)
		SELECT 'evt_old_applied_' || i, 'customer.subscription.updated', now() - interval '100 days', 'applied',
			now() - interval '99 days', '{}' FROM generate_series(1, $1) i`, oldApplied)
	x.MustExec(`
		INSERT INTO stripe_webhook_events (id, type, stripe_created_at, status, processed_at, next_attempt_at, payload) VALUES
		('evt_old_ignored', 'charge.succeeded', now() - interval '100 days', 'ignored', now() - interval '99 days', now(), '{}'),
		('evt_old_dead', 'invoice.paid', now() - interval '100 days', 'dead', now() - interval '99 days', now(), '{}'),
		('evt_old_failed', 'invoice.paid', now() - interval '100 days', 'failed', NULL, now() + interval '1 hour', '{}'),
		('evt_old_pending', 'invoice.paid', now() - interval '100 days', 'pending', NULL, now(), '{}'),
		('evt_new_applied', 'invoice.paid', now() - interval '2 days', 'applied', now() - interval '1 day', now(), '{}'),
		('evt_new_ignored', 'charge.succeeded', now() - interval '2 days', 'ignored', now() - interval '1 day', now(), '{}')`)
	x.MustExec(`
		INSERT INTO reconcile_runs (id, job, started_at, finished_at, status) VALUES
		(1, 'subscriptions', now() - interval '100 days', now() - interval '100 days', 'succeeded'),
		(2, 'events', now() - interval '95 days', now() - interval '95 days', 'failed'),
		(3, 'subscriptions', now() - interval '100 days', NULL, 'running'),
		(4, 'subscriptions', now() - interval '1 day', now() - interval '1 day', 'succeeded');
		INSERT INTO subscription_drift (run_id, stripe_subscription_id, field)
		SELECT r, 'sub_' || i, 'status' FROM generate_series(1, 4) r, generate_series(1, 700) i;
		SELECT setval('reconcile_runs_id_seq', 4)`)

	events, err := d.PruneEvents(ctx, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if events != oldApplied+1 {
		t.Errorf("pruned %d events, want %d (the old applied and the old ignored)", events, oldApplied+1)
	}
	var left []string
	if err := x.Select(&left, `SELECT id FROM stripe_webhook_events ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	want := []string{"evt_new_applied", "evt_new_ignored", "evt_old_dead", "evt_old_failed", "evt_old_pending"}
	if len(left) != len(want) {
		t.Fatalf("events left: %v, want %v", left, want)
	}
	for i := range want {
		if left[i] != want[i] {
			t.Fatalf("events left: %v, want %v", left, want)
		}
	}

	drift, runs, err := d.PruneHistory(ctx, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if drift != 1400 || runs != 2 {
		t.Errorf("pruned %d drift rows and %d runs, want 1400 and 2", drift, runs)
	}
	var kept []struct {
		Run   int64 `db:"id"`
		Drift int   `db:"drift"`
	}
	if err := x.Select(&kept, `SELECT r.id, (SELECT count(*) FROM subscription_drift s WHERE s.run_id = r.id) AS drift
		FROM reconcile_runs r ORDER BY r.id`); err != nil {
		t.Fatal(err)
	}
	if len(kept) != 2 || kept[0].Run != 3 || kept[1].Run != 4 || kept[0].Drift != 700 || kept[1].Drift != 700 {
		t.Fatalf("runs left %+v, want runs 3 (running) and 4 (recent) with 700 drift rows each", kept)
	}

	// An old run whose drift rows another pruner holds is kept until they
	// are gone: none of its drift rows outlives it.
	x.MustExec(`INSERT INTO reconcile_runs (id, job, started_at, finished_at, status) VALUES
		(5, 'subscriptions', now() - interval '100 days', now() - interval '100 days', 'succeeded');
		INSERT INTO subscription_drift (run_id, stripe_subscription_id, field) VALUES (5, 'sub_a', 'status'), (5, 'sub_b', 'status')`)
	other := x.MustBegin()
	other.MustExec(`SELECT 1 FROM subscription_drift WHERE run_id = 5 AND stripe_subscription_id = 'sub_a' FOR UPDATE`)
	if drift, runs, err = d.PruneHistory(ctx, 90*24*time.Hour); err != nil || drift != 1 || runs != 0 {
		t.Errorf("with a drift row held elsewhere: pruned %d drift rows and %d runs (%v), want 1 and 0", drift, runs, err)
	}
	other.Rollback()
	if drift, runs, err = d.PruneHistory(ctx, 90*24*time.Hour); err != nil || drift != 1 || runs != 1 {
		t.Errorf("once released: pruned %d drift rows and %d runs (%v), want 1 and 1", drift, runs, err)
	}
	var orphans int
	if err := x.Get(&orphans, `SELECT count(*) FROM subscription_drift s
		WHERE NOT EXISTS (SELECT 1 FROM reconcile_runs r WHERE r.id = s.run_id)`); err != nil || orphans != 0 {
		t.Errorf("%d drift rows without their run (%v)", orphans, err)
	}
}
