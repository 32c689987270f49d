package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Cursor returns where the job's catch-up resumes (reconcile_cursors), or
// ErrNotFound when it never completed a run.
func (d *DB) Cursor(ctx context.Context, job string) (time.Time, error) {
	var at time.Time
	err := d.x.GetContext(ctx, &at, `SELECT cursor_at FROM reconcile_cursors WHERE job = $1`, job)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, fmt.Errorf("cursor of %s: %w", job, ErrNotFound)
	}
	if err := d.observe("get_cursor", err); err != nil {
		return time.Time{}, fmt.Errorf("read cursor of %s: %w", job, err)
	}
	return at.UTC(), nil
}

// AdvanceCursor moves the job's cursor to at, never backwards, and returns
// the cursor stored afterwards.
func (d *DB) AdvanceCursor(ctx context.Context, job string, at time.Time) (time.Time, error) {
	var stored time.Time
	err := d.x.GetContext(ctx, &stored, `
		INSERT INTO reconcile_cursors (job, cursor_at) VALUES ($1, $2)
		ON CONFLICT (job) DO UPDATE SET
			cursor_at = GREATEST(reconcile_cursors.cursor_at, EXCLUDED.cursor_at),
			updated_at = now()
		RETURNING cursor_at`, job, at.UTC())
	if err := d.observe("advance_cursor", err); err != nil {
		return time.Time{}, fmt.Errorf("advance cursor of %s: %w", job, err)
	}
	return stored.UTC(), nil
}

// SetCursor stores the job's cursor as given, even backwards (an operator's
// tool and tests use it to replay or to age a cursor).
func (d *DB) SetCursor(ctx context.Context, job string, at time.Time) error {
	_, err := d.x.ExecContext(ctx, `
		INSERT INTO reconcile_cursors (job, cursor_at) VALUES ($1, $2)
		ON CONFLICT (job) DO UPDATE SET cursor_at = EXCLUDED.cursor_at, updated_at = now()`, job, at.UTC())
	if err := d.observe("set_cursor", err); err != nil {
		return fmt.Errorf("set cursor of %s: %w", job, err)
	}
	return nil
}
