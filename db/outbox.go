package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// Statuses of a row of cache_invalidations, the outbox of cache keys to
// delete. Tx.Upsert writes pending rows; the cache worker marks them done.
const (
	OutboxPending = "pending"
	OutboxDone    = "done"
)

// Invalidation is one outbox row a worker has leased for delivery.
type Invalidation struct {
	ID             int64          `db:"id"`
	UserID         string         `db:"user_id"`
	CacheKey       string         `db:"cache_key"`
	SubscriptionID sql.NullString `db:"subscription_id"`
	Attempts       int            `db:"attempts"` // this claim included
	CreatedAt      time.Time      `db:"created_at"`
}

// ClaimInvalidations leases up to limit due pending rows, oldest due first:
// their attempts are counted and they become due again only when lease
// expires, so the rows of a worker that dies come back to another. FOR
// UPDATE SKIP LOCKED lets any number of workers and replicas claim at once
// without taking the same row.
func (d *DB) ClaimInvalidations(ctx context.Context, limit int, lease time.Duration) ([]Invalidation, error) {
	var out []Invalidation
	err := d.x.SelectContext(ctx, &out, `
		UPDATE cache_invalidations c
		SET attempts = c.attempts + 1, next_attempt_at = now() + $2 * interval '1 millisecond'
		FROM (
			SELECT id FROM cache_invalidations
			WHERE status = 'pending' AND next_attempt_at <= now()
			ORDER BY next_attempt_at, id
			LIMIT $1
			FOR UPDATE SKIP LOCKED
		) due
		WHERE c.id = due.id
		RETURNING c.id, c.user_id, c.cache_key, c.subscription_id, c.attempts, c.created_at`,
		limit, lease.Milliseconds())
	if err := d.observe("claim_invalidations", err); err != nil {
		return nil, fmt.Errorf("claim cache invalidations: %w", err)
	}
	return out, nil
}

// MarkInvalidationsDone records the rows ids as delivered. A row is done
// whichever worker delivered it: its key was deleted after the change that
// queued it committed, which is all the row asks for.
func (d *DB) MarkInvalidationsDone(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := d.x.ExecContext(ctx, `
		UPDATE cache_invalidations SET status = 'done', delivered_at = now()
		WHERE id = ANY($1) AND status = 'pending'`, pq.Array(ids))
	if err := d.observe("mark_invalidations_done", err); err != nil {
		return fmt.Errorf("mark %d cache invalidations done: %w", len(ids), err)
	}
	return nil
}

// InvalidationFailure is a failed delivery of one claimed row.
type InvalidationFailure struct {
	ID       int64
	Attempts int           // the attempts of the claim that failed
	Error    string        // recorded in last_error
	Delay    time.Duration // the row is due again after this delay
}

// MarkInvalidationsFailed records failed deliveries: last_error, and the
// next try after each row's delay. A row whose lease expired and that
// another worker claimed again (its attempts moved on) is left alone.
func (d *DB) MarkInvalidationsFailed(ctx context.Context, fs []InvalidationFailure) error {
	if len(fs) == 0 {
		return nil
	}
	ids := make([]int64, len(fs))
	attempts := make([]int64, len(fs))
	errs := make([]string, len(fs))
	delays := make([]int64, len(fs))
	for i, f := range fs {
		ids[i], attempts[i], errs[i], delays[i] = f.ID, int64(f.Attempts), truncate(f.Error, 2000), f.Delay.Milliseconds()
	}
	_, err := d.x.ExecContext(ctx, `
		UPDATE cache_invalidations c
		SET last_error = f.err, next_attempt_at = now() + f.delay_ms * interval '1 millisecond'
		FROM unnest($1::bigint[], $2::int[], $3::text[], $4::bigint[]) AS f(id, attempts, err, delay_ms)
		WHERE c.id = f.id AND c.attempts = f.attempts AND c.status = 'pending'`,
		pq.Array(ids), pq.Array(attempts), pq.Array(errs), pq.Array(delays))
	if err := d.observe("mark_invalidations_failed", err); err != nil {
		return fmt.Errorf("record %d failed cache invalidations: %w", len(fs), err)
	}
	return nil
}

// PruneInvalidations deletes done rows delivered more than retention ago,
// at most batch rows per statement (default 1000) so no statement holds
// many locks, and returns how many it deleted.
func (d *DB) PruneInvalidations(ctx context.Context, retention time.Duration, batch int) (int64, error) {
	if batch <= 0 {
		batch = 1000
	}
	var total int64
	for {
		res, err := d.x.ExecContext(ctx, `
			DELETE FROM cache_invalidations WHERE id IN (
				SELECT id FROM cache_invalidations
				WHERE status = 'done' AND delivered_at < now() - $1 * interval '1 millisecond'
				LIMIT $2)`, retention.Milliseconds(), batch)
		if err := d.observe("prune_invalidations", err); err != nil {
			return total, fmt.Errorf("prune cache invalidations: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("prune cache invalidations: %w", err)
		}
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
}

// OutboxStats is the state of the cache outbox for metrics.
type OutboxStats struct {
	Pending   int           // rows not delivered yet
	Failing   int           // pending rows whose last try failed
	OldestAge time.Duration // age of the oldest pending row, 0 when none
}

// OutboxStats counts undelivered rows and measures the oldest one.
func (d *DB) OutboxStats(ctx context.Context) (OutboxStats, error) {
	var row struct {
		Pending int             `db:"pending"`
		Failing int             `db:"failing"`
		Oldest  sql.NullFloat64 `db:"oldest"`
	}
	err := d.x.GetContext(ctx, &row, `
		SELECT count(*) AS pending,
			count(*) FILTER (WHERE last_error IS NOT NULL) AS failing,
			extract(epoch FROM now() - min(created_at)) AS oldest
		FROM cache_invalidations WHERE status = 'pending'`)
	if err := d.observe("outbox_stats", err); err != nil {
		return OutboxStats{}, fmt.Errorf("cache outbox stats: %w", err)
	}
	st := OutboxStats{Pending: row.Pending, Failing: row.Failing}
	if row.Oldest.Valid && row.Oldest.Float64 > 0 {
		st.OldestAge = time.Duration(row.Oldest.Float64 * float64(time.Second))
	}
	return st, nil
}

// InvalidationRow is a stored outbox row as tests and tools read it.
type InvalidationRow struct {
	ID             int64          `db:"id"`
	UserID         string         `db:"user_id"`
	CacheKey       string         `db:"cache_key"`
	SubscriptionID sql.NullString `db:"subscription_id"`
	Status         string         `db:"status"`
	Attempts       int            `db:"attempts"`
	LastError      sql.NullString `db:"last_error"`
	NextAttemptAt  time.Time      `db:"next_attempt_at"`
	CreatedAt      time.Time      `db:"created_at"`
	DeliveredAt    sql.NullTime   `db:"delivered_at"`
}

// Invalidations reads the outbox rows of userID, or of every user when
// userID is empty, oldest first.
func (d *DB) Invalidations(ctx context.Context, userID string) ([]InvalidationRow, error) {
	var out []InvalidationRow
	err := d.x.SelectContext(ctx, &out, `
		SELECT id, user_id, cache_key, subscription_id, status, attempts, last_error, next_attempt_at,
			created_at, delivered_at
		FROM cache_invalidations WHERE $1 = '' OR user_id = $1 ORDER BY id`, userID)
	if err := d.observe("select_invalidations", err); err != nil {
		return nil, fmt.Errorf("read cache invalidations: %w", err)
	}
	return out, nil
}
