package db

import (
	"context"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// ExtendClaims renews the lease of inbox events a live worker claimed and
// is still processing: next_attempt_at moves to now + lease for those of ids
// still pending or failed whose attempts equal the claim's (an event claimed
// again by another worker after its lease ended is left alone). Rows a
// transaction is finishing right now are skipped rather than waited for. It
// returns how many leases it renewed.
func (d *DB) ExtendClaims(ctx context.Context, ids []string, attempts []int, lease time.Duration) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	att := make([]int64, len(attempts))
	for i, a := range attempts {
		att[i] = int64(a)
	}
	res, err := d.x.ExecContext(ctx, `
		UPDATE stripe_webhook_events e
		SET next_attempt_at = now() + $3 * interval '1 millisecond'
		FROM (
			SELECT s.id FROM stripe_webhook_events s
			JOIN unnest($1::text[], $2::int[]) AS c(id, attempts) ON s.id = c.id AND s.attempts = c.attempts
			WHERE s.status IN ('pending', 'failed')
			FOR UPDATE OF s SKIP LOCKED
		) held
		WHERE e.id = held.id`,
		pq.Array(ids), pq.Array(att), lease.Milliseconds())
	if err := d.observe("extend_claims", err); err != nil {
		return 0, fmt.Errorf("extend %d event claims: %w", len(ids), err)
	}
	return res.RowsAffected()
}
