package db

import (
	"context"
	"fmt"
	"time"
)

// PruneBatch is how many rows one pruning statement deletes: small enough
// that no statement holds many locks or writes much WAL at once.
const PruneBatch = 1000

// PruneEvents deletes applied and ignored events processed more than
// retention ago, PruneBatch at a time, until none is left or ctx ends; it
// never deletes a pending, failed or dead event. It returns how many rows
// it deleted.
func (d *DB) PruneEvents(ctx context.Context, retention time.Duration) (int64, error) {
	return d.pruneLoop(ctx, "prune_events", `
		DELETE FROM stripe_webhook_events WHERE id IN (
			SELECT id FROM stripe_webhook_events
			WHERE processed_at < now() - $1 * interval '1 millisecond' AND status IN ('applied', 'ignored')
			ORDER BY processed_at
			LIMIT $2
			FOR UPDATE SKIP LOCKED)`, retention)
}

// PruneHistory deletes the reconcile runs that finished more than
// retention ago with their drift rows (drift first, PruneBatch rows at a
// time, then the runs), and returns how many drift and run rows it deleted.
// A run still marked running is kept, and so is a run with drift rows
// left (rows another pruner holds, or that came within the retention only
// after the drift was pruned): drift rows have no foreign key to cascade
// from their run, and are deleted first, the next time if not now.
func (d *DB) PruneHistory(ctx context.Context, retention time.Duration) (drift, runs int64, err error) {
	drift, err = d.pruneLoop(ctx, "prune_drift", `
		DELETE FROM subscription_drift WHERE id IN (
			SELECT s.id FROM subscription_drift s JOIN reconcile_runs r ON r.id = s.run_id
			WHERE r.finished_at < now() - $1 * interval '1 millisecond' AND r.status <> 'running'
			LIMIT $2
			FOR UPDATE OF s SKIP LOCKED)`, retention)
	if err != nil {
		return drift, 0, err
	}
	runs, err = d.pruneLoop(ctx, "prune_runs", `
		DELETE FROM reconcile_runs WHERE id IN (
			SELECT id FROM reconcile_runs r
			WHERE finished_at < now() - $1 * interval '1 millisecond' AND status <> 'running'
				AND NOT EXISTS (SELECT 1 FROM subscription_drift s WHERE s.run_id = r.id)
			ORDER BY finished_at
			LIMIT $2
			FOR UPDATE SKIP LOCKED)`, retention)
	return drift, runs, err
}

// pruneLoop runs a deleting statement (arguments: retention in ms and
// PruneBatch) until it deletes fewer than PruneBatch rows.
func (d *DB) pruneLoop(ctx context.Context, op, stmt string, retention time.Duration) (int64, error) {
	var total int64
	for {
		res, err := d.x.ExecContext(ctx, stmt, retention.Milliseconds(), PruneBatch)
		if err := d.observe(op, err); err != nil {
			return total, fmt.Errorf("%s: %w", op, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("%s: %w", op, err)
		}
		total += n
		if n < PruneBatch || ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
}
