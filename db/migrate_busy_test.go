package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/testenv"
)

// Migration 00012 on a busy inbox: a transaction holds a lock on
// stripe_webhook_events for longer than the trigger step waits. The
// migration still completes without queueing the table's writers behind
// an exclusive lock: the old notify trigger stays, turned into a no-op, so
// inserts no longer notify from their transaction.
func TestInboxMigrationOnABusyTable(t *testing.T) {
	t.Parallel()
	url := testenv.DatabaseURL(t)
	d := openMigrated(t, url)
	x := d.X()
	// Back to version 11, with the trigger as 00001 made it.
	x.MustExec(`
		CREATE FUNCTION subsync_notify_inbox() RETURNS trigger LANGUAGE plpgsql AS
			$$ BEGIN PERFORM pg_notify('subsync_inbox', ''); RETURN NULL; END; $$;
		CREATE TRIGGER stripe_webhook_events_notify AFTER INSERT ON stripe_webhook_events
			FOR EACH STATEMENT EXECUTE FUNCTION subsync_notify_inbox();
		DELETE FROM goose_db_version WHERE version_id >= 12`)
	busy := x.MustBegin()
	defer busy.Rollback()
	busy.MustExec(`INSERT INTO stripe_webhook_events (id, type, stripe_created_at, payload) VALUES ('evt_busy', 'x', now(), '{}')`)

	migrated := make(chan error, 1)
	go func() { _, err := d.Migrate(context.Background(), nil); migrated <- err }()
	// The index build waits for the busy transaction (without blocking
	// writers); by then the trigger step has given up. End the transaction
	// there, as a real one ends.
	testenv.WaitFor(t, "the migration reaches the index build", func() bool {
		var n int
		return x.Get(&n, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE '%INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'`) == nil && n > 0
	})
	busy.Rollback()
	if err := <-migrated; err != nil {
		t.Fatalf("migrate on a busy table: %v", err)
	}
	if err := d.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	var triggers int
	if err := x.Get(&triggers, `SELECT count(*) FROM pg_trigger WHERE tgname = 'stripe_webhook_events_notify'`); err != nil || triggers != 1 {
		t.Fatalf("%d notify triggers (%v), want the old one left in place", triggers, err)
	}
	l := pq.NewListener(url, time.Millisecond, time.Second, nil)
	defer l.Close()
	if err := l.Listen(db.InboxChannel); err != nil {
		t.Fatal(err)
	}
	x.MustExec(`INSERT INTO stripe_webhook_events (id, type, stripe_created_at, payload) VALUES ('evt_after', 'x', now(), '{}')`)
	select {
	case n := <-l.Notify:
		t.Fatalf("an insert still notifies: %+v", n)
	case <-time.After(300 * time.Millisecond):
	}
}
