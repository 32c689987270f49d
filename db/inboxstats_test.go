package db

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/subsync/subsync/internal/testenv"
)

// migratedDB opens a migrated database of the test's own, closed when the
// test ends.
func migratedDB(t *testing.T) *DB {
	t.Helper()
	d, err := Open(context.Background(), Config{URL: testenv.DatabaseURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.Migrate(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return d
}

// The inbox gauges are read every few seconds: their query must be able to
// run without reading the whole events table. With sequential scans
// disabled, Postgres still scans when no index serves a part, so the plan
// shows it. The figures are checked against the events stored.
func TestInboxStatsReadOnlyIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := migratedDB(t)
	_, err := d.x.ExecContext(ctx, `
		INSERT INTO stripe_webhook_events (id, type, stripe_created_at, source, status, received_at, payload)
		SELECT 'evt_stats_' || g, 'customer.subscription.updated', now(), 'webhook',
			(ARRAY['applied', 'ignored', 'pending', 'failed', 'dead'])[1 + g % 5],
			now() - g * interval '1 minute', '{}'
		FROM generate_series(1, 50) AS g`)
	if err != nil {
		t.Fatal(err)
	}
	st, err := d.InboxStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// g % 5 = 2 pending, 3 failed, 4 dead: ten of each; the oldest waiting
	// one is g = 48, 48 minutes old.
	if st.Pending != 20 || st.Dead != 10 || st.OldestAge < 48*time.Minute || st.OldestAge > 50*time.Minute {
		t.Fatalf("InboxStats = %+v, want 20 pending, 10 dead, oldest about 48m", st)
	}
	tx, err := d.x.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	var plan []string
	if err := tx.SelectContext(ctx, &plan, `EXPLAIN `+inboxStatsSQL); err != nil {
		t.Fatal(err)
	}
	if text := strings.Join(plan, "\n"); strings.Contains(text, "Seq Scan") {
		t.Fatalf("the inbox stats scan the events table:\n%s", text)
	}
}
