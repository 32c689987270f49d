package db

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/subsync/subsync/reconcile"
)

// batch is a transaction that holds a claimed batch of inbox events: their
// rows stay locked (FOR UPDATE) until it commits or rolls back, so other
// workers and replicas skip them (SKIP LOCKED), and a worker that dies
// mid-batch loses nothing: its transaction rolls back and the events are
// due again at once. An event row is written twice in its life: when it is
// stored and when its result is, in the same commit as the rows it caused.
//
// The transaction commits without waiting for its WAL flush
// (synchronous_commit off): what it writes is derived from events already
// stored durably, so a crash that loses its commit leaves them pending, and
// they are applied again.
type batch struct {
	d  *DB
	tx *sqlx.Tx
}

const claimColumns = `id, type, api_version, stripe_created_at, source, attempts, subscription_id, received_at, payload`

// ClaimBatch begins a Batch holding up to limit due events (pending, or
// failed and due for a retry), in due order, then created order. It returns
// a nil Batch when none is due.
func (d *DB) ClaimBatch(ctx context.Context, limit int) (reconcile.Batch, []reconcile.ClaimedEvent, error) {
	return d.claim(ctx, `SELECT `+claimColumns+` FROM stripe_webhook_events
		WHERE status IN ('pending', 'failed') AND next_attempt_at <= now()
		ORDER BY next_attempt_at, stripe_created_at, id
		LIMIT $1
		FOR UPDATE SKIP LOCKED`, limit)
}

// ClaimEventIDs begins a Batch holding those of ids that are still pending
// or failed and not held by another batch, whether due or not.
func (d *DB) ClaimEventIDs(ctx context.Context, ids []string) (reconcile.Batch, []reconcile.ClaimedEvent, error) {
	return d.claim(ctx, `SELECT `+claimColumns+` FROM stripe_webhook_events
		WHERE id = ANY($1) AND status IN ('pending', 'failed')
		ORDER BY stripe_created_at, id
		FOR UPDATE SKIP LOCKED`, pq.Array(ids))
}

func (d *DB) claim(ctx context.Context, query string, arg any) (reconcile.Batch, []reconcile.ClaimedEvent, error) {
	tx, err := d.x.BeginTxx(ctx, nil)
	if err := d.observe("claim_events", err); err != nil {
		return nil, nil, fmt.Errorf("claim events: begin: %w", err)
	}
	var evs []reconcile.ClaimedEvent
	_, err = tx.ExecContext(ctx, `SET LOCAL synchronous_commit = off`)
	if err == nil {
		err = d.selectIn(ctx, tx, &evs, query, arg)
	}
	if err := d.observe("claim_events", err); err != nil {
		_ = tx.Rollback()
		return nil, nil, fmt.Errorf("claim events: %w", err)
	}
	if len(evs) == 0 {
		_ = tx.Rollback()
		return nil, nil, nil
	}
	return &batch{d: d, tx: tx}, evs, nil
}

// Lock takes the advisory locks of the subscriptions ids, in sorted order,
// and returns their stored rows, read once the locks are held. Every writer
// of a subscription takes its lock, so a state fetched from Stripe after
// Lock is not older than anything written before.
func (b *batch) Lock(ctx context.Context, ids []string) (map[string]reconcile.Subscription, error) {
	if len(ids) == 0 {
		return map[string]reconcile.Subscription{}, nil
	}
	return b.d.lockSubscriptions(ctx, b.tx, ids)
}

// TryLock implements reconcile.Locker: it takes those of the locks of the
// subscriptions ids that are free now, without waiting, and reads their
// stored rows and which of eventIDs are stored already.
func (b *batch) TryLock(ctx context.Context, ids, eventIDs []string) (reconcile.Held, error) {
	return b.d.tryLockSubscriptions(ctx, b.tx, ids, eventIDs)
}

// Write writes w (rows, outbox, notifications and the events' results) in
// one statement.
func (b *batch) Write(ctx context.Context, w reconcile.BatchWrite) error {
	return b.d.writeBatch(ctx, b.tx, w)
}

// Commit commits the batch.
func (b *batch) Commit() error {
	return b.d.observe("apply_batch_commit", b.tx.Commit())
}

// Rollback abandons the batch: its events are due again, as they were.
func (b *batch) Rollback() {
	_ = b.tx.Rollback()
}
