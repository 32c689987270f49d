package db

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/subsync/subsync/reconcile"
)

// SeenSet records the subscription ids a sweep has listed from Stripe in a
// temporary table on a connection of its own, so that the sweep's memory
// does not grow with the account: at the end, the rows it did not see are
// read back from Postgres. Add is safe for concurrent use.
type SeenSet struct {
	d     *DB
	conn  *sqlx.Conn
	mu    sync.Mutex
	since time.Time
}

// NewSeenSet opens the temporary table. Rows created after this moment
// (database clock) are never reported unseen: their subscriptions may be
// newer than the listing.
func (d *DB) NewSeenSet(ctx context.Context) (reconcile.SeenSet, error) {
	conn, err := d.x.Connx(ctx)
	if err := d.observe("seen_conn", err); err != nil {
		return nil, fmt.Errorf("seen set: connect: %w", err)
	}
	s := &SeenSet{d: d, conn: conn}
	_, err = conn.ExecContext(ctx, `CREATE TEMP TABLE IF NOT EXISTS subsync_seen (id text PRIMARY KEY)`)
	if err == nil {
		_, err = conn.ExecContext(ctx, `TRUNCATE subsync_seen`)
	}
	if err == nil {
		err = conn.GetContext(ctx, &s.since, `SELECT now()`)
	}
	if err := d.observe("seen_create", err); err != nil {
		discard(conn.Conn)
		return nil, fmt.Errorf("seen set: create: %w", err)
	}
	return s, nil
}

// Add records ids as seen.
func (s *SeenSet) Add(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.conn.ExecContext(ctx, `INSERT INTO subsync_seen (id) SELECT unnest($1::text[])
		ON CONFLICT DO NOTHING`, pq.Array(ids))
	if err := s.d.observe("seen_add", err); err != nil {
		return fmt.Errorf("record %d seen ids: %w", len(ids), err)
	}
	return nil
}

// EachUnseen calls fn, in id order and streaming, for every row of
// user_subscriptions created before the set was opened whose id was not
// added. fn must not call Add. It stops at fn's first error and returns it.
func (s *SeenSet) EachUnseen(ctx context.Context, fn func(reconcile.Subscription) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows, err := s.conn.QueryxContext(ctx, `SELECT `+subscriptionColumns+` FROM user_subscriptions u
		WHERE u.created_at < $1
		AND NOT EXISTS (SELECT 1 FROM subsync_seen s WHERE s.id = u.stripe_subscription_id)
		ORDER BY u.stripe_subscription_id`, s.since)
	if err := s.d.observe("seen_unseen", err); err != nil {
		return fmt.Errorf("read rows not seen: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var sub reconcile.Subscription
		if err := rows.StructScan(&sub); err != nil {
			return fmt.Errorf("read rows not seen: %w", err)
		}
		if err := fn(sub); err != nil {
			return err
		}
	}
	if err := s.d.observe("seen_unseen", rows.Err()); err != nil {
		return fmt.Errorf("read rows not seen: %w", err)
	}
	return nil
}

// Close drops the table and gives the connection back (or closes it when
// the drop fails, which drops the table with the session).
func (s *SeenSet) Close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.conn.ExecContext(ctx, `DROP TABLE IF EXISTS subsync_seen`); err != nil {
		discard(s.conn.Conn)
		return
	}
	_ = s.conn.Close()
}
