package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/subsync/subsync/reconcile"
)

// leaderLockClass is the first key of the two-key advisory locks taken for
// leadership. Two-key locks live in a key space of their own, apart from the
// one-key locks of subscriptions (WithSubscription) and migrations.
const leaderLockClass = 7072

// LeaderLock is a session-level advisory lock held on a dedicated
// connection: whoever holds it is the only process running the named job.
// It is released by Release, or by Postgres when the connection ends.
type LeaderLock struct {
	d    *DB
	conn *sql.Conn
	name string
}

// TryLeaderLock tries to take the advisory lock called name without
// waiting. It returns (nil, false, nil) when another session holds it.
func (d *DB) TryLeaderLock(ctx context.Context, name string) (reconcile.LeaderLock, bool, error) {
	conn, err := d.x.Conn(ctx)
	if err := d.observe("leader_lock_conn", err); err != nil {
		return nil, false, fmt.Errorf("lock %s: connect: %w", name, err)
	}
	var ok bool
	err = conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, leaderLockClass, name).Scan(&ok)
	if err := d.observe("leader_lock", err); err != nil {
		discard(conn)
		return nil, false, fmt.Errorf("lock %s: %w", name, err)
	}
	if !ok {
		conn.Close()
		return nil, false, nil
	}
	return &LeaderLock{d: d, conn: conn, name: name}, true, nil
}

// Check verifies that the session holding the lock is still alive (a
// session lock is held exactly as long as its session). An error means the
// lock may be lost: the holder should stop its work.
func (l *LeaderLock) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var held bool
	err := l.conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
		WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
		AND classid = $1 AND objid = hashtext($2)::oid AND objsubid = 2)`, leaderLockClass, l.name).Scan(&held)
	if err := l.d.observe("leader_lock_check", err); err != nil {
		return fmt.Errorf("check lock %s: %w", l.name, err)
	}
	if !held {
		return fmt.Errorf("check lock %s: no longer held", l.name)
	}
	return nil
}

// Release unlocks and gives the connection back. When the unlock cannot be
// confirmed the connection is closed instead of pooled, which ends the
// session and so releases the lock anyway.
func (l *LeaderLock) Release(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var ok bool
	err := l.conn.QueryRowContext(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, leaderLockClass, l.name).Scan(&ok)
	if err = l.d.observe("leader_unlock", err); err != nil || !ok {
		discard(l.conn)
		if err == nil {
			err = errors.New("was not held")
		}
		return fmt.Errorf("unlock %s: %w", l.name, err)
	}
	return l.conn.Close()
}

// discard closes conn's session rather than returning it to the pool.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}
