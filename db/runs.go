package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"
	"github.com/subsync/subsync/reconcile"
)

// Run is one row of reconcile_runs.
type Run struct {
	ID         int64          `db:"id"`
	Job        string         `db:"job"`
	DryRun     bool           `db:"dry_run"`
	StartedAt  time.Time      `db:"started_at"`
	FinishedAt sql.NullTime   `db:"finished_at"`
	Status     string         `db:"status"`
	Scanned    int            `db:"scanned"`
	Drifted    int            `db:"drifted"`
	Fixed      int            `db:"fixed"`
	Errors     int            `db:"errors"`
	Error      sql.NullString `db:"error"`
}

// StartRun records the start of a run of job and returns its id.
func (d *DB) StartRun(ctx context.Context, job string, dryRun bool) (int64, error) {
	var id int64
	err := d.x.GetContext(ctx, &id, `INSERT INTO reconcile_runs (job, dry_run, status)
		VALUES ($1, $2, 'running') RETURNING id`, job, dryRun)
	if err := d.observe("start_run", err); err != nil {
		return 0, fmt.Errorf("start %s run: %w", job, err)
	}
	return id, nil
}

// FinishRun records how run id ended: reconcile.RunSucceeded, or reconcile.RunFailed with
// errText.
func (d *DB) FinishRun(ctx context.Context, id int64, status string, c reconcile.RunCounts, errText string) error {
	_, err := d.x.ExecContext(ctx, `UPDATE reconcile_runs SET
			status = $2, finished_at = now(), scanned = $3, drifted = $4, fixed = $5, errors = $6,
			error = NULLIF($7, '')
		WHERE id = $1`, id, status, c.Scanned, c.Drifted, c.Fixed, c.Errors, truncate(errText, 2000))
	if err := d.observe("finish_run", err); err != nil {
		return fmt.Errorf("finish run %d: %w", id, err)
	}
	return nil
}

// AbandonRuns marks every run of job still 'running' as failed. Call it
// while holding the job's leader lock: no such run can still be alive, its
// process ended without finishing it.
func (d *DB) AbandonRuns(ctx context.Context, job string) (int, error) {
	res, err := d.x.ExecContext(ctx, `UPDATE reconcile_runs SET status = 'failed', finished_at = now(),
			error = 'abandoned: the process ended during the run'
		WHERE job = $1 AND status = 'running'`, job)
	if err := d.observe("abandon_runs", err); err != nil {
		return 0, fmt.Errorf("abandon %s runs: %w", job, err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// GetRun reads one run.
func (d *DB) GetRun(ctx context.Context, id int64) (Run, error) {
	var r Run
	err := d.x.GetContext(ctx, &r, `SELECT id, job, dry_run, started_at, finished_at, status,
		scanned, drifted, fixed, errors, error FROM reconcile_runs WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("run %d: %w", id, ErrNotFound)
	}
	if err := d.observe("get_run", err); err != nil {
		return r, fmt.Errorf("read run %d: %w", id, err)
	}
	return r, nil
}

// LastSuccess returns when the last successful run of job finished
// (dry runs count: they checked everything), or ErrNotFound.
func (d *DB) LastSuccess(ctx context.Context, job string) (time.Time, error) {
	var at sql.NullTime
	err := d.x.GetContext(ctx, &at, `SELECT max(finished_at) FROM reconcile_runs
		WHERE job = $1 AND status = 'succeeded'`, job)
	if err := d.observe("last_success", err); err != nil {
		return time.Time{}, fmt.Errorf("last %s success: %w", job, err)
	}
	if !at.Valid {
		return time.Time{}, fmt.Errorf("last %s success: %w", job, ErrNotFound)
	}
	return at.Time, nil
}

const insertDriftSQL = `INSERT INTO subscription_drift (run_id, stripe_subscription_id, field, db_value, stripe_value)
	SELECT $1, s, f, NULLIF(dv, ''), NULLIF(sv, '')
	FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS u(s, f, dv, sv)`

// InsertDrift records drifted fields found by run id, in one statement.
func (d *DB) InsertDrift(ctx context.Context, runID int64, drift []reconcile.Drift) error {
	if len(drift) == 0 {
		return nil
	}
	subs, fields, dbVals, stripeVals := driftArrays(drift)
	err := d.execIn(ctx, nil, insertDriftSQL, runID, pq.Array(subs), pq.Array(fields), pq.Array(dbVals), pq.Array(stripeVals))
	if err := d.observe("insert_drift", err); err != nil {
		return fmt.Errorf("record %d drifted fields of run %d: %w", len(drift), runID, err)
	}
	return nil
}

// driftArrays renders drift as the columns of subscription_drift, values
// cut to 500 bytes.
func driftArrays(drift []reconcile.Drift) (subs, fields, dbVals, stripeVals []string) {
	subs = make([]string, len(drift))
	fields = make([]string, len(drift))
	dbVals = make([]string, len(drift))
	stripeVals = make([]string, len(drift))
	for i, dr := range drift {
		subs[i], fields[i] = dr.SubscriptionID, dr.Field
		dbVals[i], stripeVals[i] = truncate(dr.DBValue, 500), truncate(dr.StripeValue, 500)
	}
	return subs, fields, dbVals, stripeVals
}

// EachDrift calls fn for every drifted field of run id, ordered by
// subscription then field, streaming rows so memory stays flat however
// large the drift. It stops at fn's first error and returns it.
func (d *DB) EachDrift(ctx context.Context, runID int64, fn func(reconcile.Drift) error) error {
	rows, err := d.x.QueryxContext(ctx, `SELECT stripe_subscription_id, field,
			COALESCE(db_value, '') AS db_value, COALESCE(stripe_value, '') AS stripe_value
		FROM subscription_drift WHERE run_id = $1 ORDER BY stripe_subscription_id, field, id`, runID)
	if err := d.observe("select_drift", err); err != nil {
		return fmt.Errorf("read drift of run %d: %w", runID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var dr reconcile.Drift
		if err := rows.StructScan(&dr); err != nil {
			return fmt.Errorf("read drift of run %d: %w", runID, err)
		}
		if err := fn(dr); err != nil {
			return err
		}
	}
	if err := d.observe("select_drift", rows.Err()); err != nil {
		return fmt.Errorf("read drift of run %d: %w", runID, err)
	}
	return nil
}

// EventsSettled counts, among the events ids, those applied and those still
// waiting to be (pending, or failed and due for a retry).
func (d *DB) EventsSettled(ctx context.Context, ids []string) (applied, waiting int, err error) {
	var row struct {
		Applied int `db:"applied"`
		Waiting int `db:"waiting"`
	}
	err = d.x.GetContext(ctx, &row, `SELECT
			count(*) FILTER (WHERE status = 'applied') AS applied,
			count(*) FILTER (WHERE status IN ('pending', 'failed')) AS waiting
		FROM stripe_webhook_events WHERE id = ANY($1)`, pq.Array(ids))
	if err := d.observe("count_settled", err); err != nil {
		return 0, 0, fmt.Errorf("count %d caught-up events: %w", len(ids), err)
	}
	return row.Applied, row.Waiting, nil
}
