package loadgen

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Applied is what the daemon's database says about a run's events once
// none of them is left to apply.
type Applied struct {
	// Stored counts the run's events in the inbox; Applied, Ignored and
	// Dead count them by final status.
	Stored, Applied, Ignored, Dead int
	// LastProcessed is the newest processed_at of the run's events.
	LastProcessed time.Time
	// EndToEnd is the first request to LastProcessed; Drain is the last
	// acknowledgement to LastProcessed (negative when the applier finished
	// before the last answer reached the sender).
	EndToEnd, Drain time.Duration
	// StoredToApplied50 and StoredToApplied99 are percentiles of
	// processed_at - received_at.
	StoredToApplied50, StoredToApplied99 time.Duration
}

// Rate is applied events per second, end to end.
func (a Applied) Rate() float64 { return float64(a.Applied) / a.EndToEnd.Seconds() }

// WaitApplied polls db (the daemon's database) until none of the run's
// events is pending or failed and at least every acknowledged one is
// stored, then reads the figures. It gives up after timeout.
//
// The run's events are found through the inbox's indexes rather than by
// their id pattern alone, which reads the whole table: on an inbox of a
// million old events, seconds per poll, whose reads and CPU the run's
// figures would count. Those left to apply are found through the claim's
// partial index (pending and failed events), those finished through
// processed_at (set when an event is applied, ignored or dead), from a
// minute before the run's first request.
func WaitApplied(ctx context.Context, db *sql.DB, res Result, timeout time.Duration) (Applied, error) {
	like := "evt_load" + res.Run + "_%"
	// A minute before the first request, by the database's clock, which
	// sets processed_at.
	var since time.Time
	err := db.QueryRowContext(ctx, `SELECT now() - $1 * interval '1 second'`,
		time.Since(res.Start).Seconds()+60).Scan(&since)
	if err != nil {
		return Applied{}, fmt.Errorf("read the database's clock: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		var done, left int
		err := db.QueryRowContext(ctx, `SELECT
				(SELECT count(*) FROM stripe_webhook_events WHERE processed_at >= $2 AND id LIKE $1),
				(SELECT count(*) FROM stripe_webhook_events WHERE status IN ('pending', 'failed') AND id LIKE $1)`,
			like, since).Scan(&done, &left)
		if err != nil {
			return Applied{}, fmt.Errorf("count the run's events: %w", err)
		}
		if left == 0 && done >= res.Events-res.Non200 {
			break
		}
		if time.Now().After(deadline) {
			return Applied{}, fmt.Errorf("%d of %d events still to apply after %v", left, done+left, timeout)
		}
		select {
		case <-ctx.Done():
			return Applied{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	var (
		a        Applied
		last     sql.NullTime
		p50, p99 sql.NullFloat64
	)
	err = db.QueryRowContext(ctx, `SELECT count(*),
			count(*) FILTER (WHERE status = 'applied'),
			count(*) FILTER (WHERE status = 'ignored'),
			count(*) FILTER (WHERE status = 'dead'),
			max(processed_at),
			percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at)),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at))
		FROM stripe_webhook_events WHERE processed_at >= $2 AND id LIKE $1`, like, since).
		Scan(&a.Stored, &a.Applied, &a.Ignored, &a.Dead, &last, &p50, &p99)
	if err != nil {
		return Applied{}, fmt.Errorf("read the run's events: %w", err)
	}
	a.LastProcessed = last.Time
	a.EndToEnd = last.Time.Sub(res.Start)
	a.Drain = last.Time.Sub(res.LastAck)
	a.StoredToApplied50 = seconds(p50.Float64)
	a.StoredToApplied99 = seconds(p99.Float64)
	return a, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
