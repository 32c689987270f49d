package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/subsync/subsync/reconcile"
)

type outboxRow struct {
	UserID         string `json:"user_id"`
	CacheKey       string `json:"cache_key"`
	SubscriptionID string `json:"subscription_id"`
}

type eventRow struct {
	ID             string     `json:"id"`
	Status         string     `json:"status"`
	Error          string     `json:"error"`
	RetryAt        *time.Time `json:"retry_at"`
	SubscriptionID string     `json:"subscription_id"`
}

// upsertAndQueueSQL is the head of the statements that write what
// applying events caused: the rows of $1, through an upsert that keeps the
// guard (an older Stripe state never overwrites a newer one) even though
// the rows were folded under the subscriptions' locks, with updated_at
// moving only when a tracked field changed; and the outbox rows of $2.
const upsertAndQueueSQL = `
WITH upserted AS (
    INSERT INTO user_subscriptions AS s (stripe_subscription_id, user_id, stripe_customer_id, stripe_price_id,
        plan_id, billing_period, status, current_period_start, current_period_end, cancel_at_period_end,
        canceled_at, stripe_state_at)
    SELECT r.stripe_subscription_id, r.user_id, r.stripe_customer_id, r.stripe_price_id, r.plan_id,
        r.billing_period, r.status, r.current_period_start, r.current_period_end, r.cancel_at_period_end,
        r.canceled_at, r.stripe_state_at
    FROM jsonb_to_recordset($1::jsonb) AS r(stripe_subscription_id text, user_id text, stripe_customer_id text,
        stripe_price_id text, plan_id text, billing_period text, status text, current_period_start timestamptz,
        current_period_end timestamptz, cancel_at_period_end boolean, canceled_at timestamptz,
        stripe_state_at timestamptz)
    ON CONFLICT (stripe_subscription_id) DO UPDATE SET
        user_id = EXCLUDED.user_id, stripe_customer_id = EXCLUDED.stripe_customer_id,
        stripe_price_id = EXCLUDED.stripe_price_id, plan_id = EXCLUDED.plan_id,
        billing_period = EXCLUDED.billing_period, status = EXCLUDED.status,
        current_period_start = EXCLUDED.current_period_start, current_period_end = EXCLUDED.current_period_end,
        cancel_at_period_end = EXCLUDED.cancel_at_period_end, canceled_at = EXCLUDED.canceled_at,
        stripe_state_at = EXCLUDED.stripe_state_at,
        updated_at = CASE WHEN (s.user_id, s.stripe_customer_id, s.stripe_price_id, s.plan_id, s.billing_period,
                s.status, s.current_period_start, s.current_period_end, s.cancel_at_period_end, s.canceled_at)
            IS DISTINCT FROM (EXCLUDED.user_id, EXCLUDED.stripe_customer_id, EXCLUDED.stripe_price_id,
                EXCLUDED.plan_id, EXCLUDED.billing_period, EXCLUDED.status, EXCLUDED.current_period_start,
                EXCLUDED.current_period_end, EXCLUDED.cancel_at_period_end, EXCLUDED.canceled_at)
            THEN now() ELSE s.updated_at END
    WHERE s.stripe_state_at <= EXCLUDED.stripe_state_at
    RETURNING 1
), queued AS (
    INSERT INTO cache_invalidations (user_id, cache_key, subscription_id)
    SELECT o.user_id, o.cache_key, o.subscription_id
    FROM jsonb_to_recordset($2::jsonb) AS o(user_id text, cache_key text, subscription_id text)
    RETURNING 1
)`

// writeBatchSQL writes a reconcile.BatchWrite in one round trip: the rows
// and outbox, and the results of the claimed events in $3, each counting
// one more attempt. The notifications are sent by the same statement, so
// the transaction takes the commit-time NOTIFY lock once, however many
// changes it holds; the batch's transaction commits without waiting for
// its WAL flush, so it holds that lock briefly.
const writeBatchSQL = upsertAndQueueSQL + `, finished AS (
    UPDATE stripe_webhook_events e SET
        status = u.status,
        last_error = NULLIF(u.error, ''),
        attempts = e.attempts + 1,
        processed_at = CASE WHEN u.status IN ('applied', 'ignored', 'dead') THEN now() ELSE e.processed_at END,
        next_attempt_at = CASE WHEN u.status IN ('applied', 'ignored', 'dead') THEN now()
            ELSE COALESCE(u.retry_at, e.next_attempt_at) END,
        subscription_id = COALESCE(e.subscription_id, NULLIF(u.subscription_id, ''))
    FROM jsonb_to_recordset($3::jsonb) AS u(id text, status text, error text, retry_at timestamptz, subscription_id text)
    WHERE e.id = u.id
    RETURNING 1
)
SELECT (SELECT count(*) FROM upserted) AS upserted, (SELECT count(*) FROM queued) AS queued,
    (SELECT count(*) FROM finished) AS finished,
    (SELECT count(pg_notify($4, n)) FROM unnest($5::text[]) AS n) AS notified`

// storeSettledSQL stores new events ($3, see insertEventsSQL), the settled
// ones with their results, and writes what the settled ones caused, in one
// round trip. It sends no notification: its transaction waits for its WAL
// flush (the events must be durable before they are acknowledged), and a
// NOTIFY would hold the database-wide commit lock through that flush; the
// changes are announced right after the commit instead (notifyChanges).
var storeSettledSQL = upsertAndQueueSQL + insertEventsSQL("$3")

// writeBatch runs writeBatchSQL for w in tx.
func (d *DB) writeBatch(ctx context.Context, tx *sqlx.Tx, w reconcile.BatchWrite) error {
	if len(w.Rows) == 0 && len(w.Changes) == 0 && len(w.Events) == 0 {
		return nil
	}
	rows, outbox, notes, err := d.notifyingWriteArgs(w)
	if err != nil {
		return err
	}
	var n struct {
		Upserted int `db:"upserted"`
		Queued   int `db:"queued"`
		Finished int `db:"finished"`
		Notified int `db:"notified"`
	}
	events := make([]eventRow, len(w.Events))
	for i, r := range w.Events {
		events[i] = eventRow{ID: r.ID, Status: r.Status, Error: truncate(r.Error, 2000), SubscriptionID: r.SubscriptionID}
		if !r.RetryAt.IsZero() {
			events[i].RetryAt = &r.RetryAt
		}
	}
	results, err := json.Marshal(events)
	if err != nil {
		return err
	}
	err = d.getIn(ctx, tx, &n, writeBatchSQL, rows, outbox, string(results), ChangeChannel, pq.Array(notes))
	if err := d.observe("write_batch", err); err != nil {
		return fmt.Errorf("write %d subscriptions and %d event results: %w", len(w.Rows), len(w.Events), err)
	}
	return nil
}

// repairSQL writes a page of a sweep's repairs (see RepairSubscriptions) in
// one round trip: the rows and outbox, the drift rows of run $3 from the
// arrays $4 to $7 (see driftArrays), and the change notifications. It sets
// its transaction's commit not to wait for the WAL flush.
const repairSQL = upsertAndQueueSQL + `, drifted AS (
    INSERT INTO subscription_drift (run_id, stripe_subscription_id, field, db_value, stripe_value)
    SELECT $3, u.s, u.f, NULLIF(u.dv, ''), NULLIF(u.sv, '')
    FROM unnest($4::text[], $5::text[], $6::text[], $7::text[]) AS u(s, f, dv, sv)
    RETURNING 1
)
SELECT (SELECT count(*) FROM upserted) AS upserted, (SELECT count(*) FROM queued) AS queued,
    (SELECT count(*) FROM drifted) AS drifted,
    (SELECT count(pg_notify($8, n)) FROM unnest($9::text[]) AS n) AS notified,
    set_config('synchronous_commit', 'off', true) AS synchronous_commit`

// writeRepair runs repairSQL for w and drift in tx.
func (d *DB) writeRepair(ctx context.Context, tx *sqlx.Tx, runID int64, w reconcile.BatchWrite, drift []reconcile.Drift) error {
	if len(w.Rows) == 0 && len(w.Changes) == 0 && len(drift) == 0 {
		return nil
	}
	rows, outbox, notes, err := d.notifyingWriteArgs(w)
	if err != nil {
		return err
	}
	var n struct {
		Upserted int    `db:"upserted"`
		Queued   int    `db:"queued"`
		Drifted  int    `db:"drifted"`
		Notified int    `db:"notified"`
		Commit   string `db:"synchronous_commit"`
	}
	subs, fields, dbVals, stripeVals := driftArrays(drift)
	err = d.getIn(ctx, tx, &n, repairSQL, rows, outbox, runID, pq.Array(subs), pq.Array(fields),
		pq.Array(dbVals), pq.Array(stripeVals), ChangeChannel, pq.Array(notes))
	if err := d.observe("write_repair", err); err != nil {
		return fmt.Errorf("repair %d subscriptions and record %d drifted fields of run %d: %w",
			len(w.Rows), len(drift), runID, err)
	}
	return nil
}

// insertMissingSQL inserts the rows whose columns are the arrays $1 to $12
// (see rowColumns; $1 holds their subscription ids), of subscriptions
// that had no row when the sweep read them, in one round trip and one
// transaction of its own, which commits without waiting for its WAL flush
// (see RepairSubscriptions). It first takes the subscriptions' advisory
// locks in id order, as subsync_lock_subscriptions does (same keys, same
// order), so that it waits for a writer that holds one and may be about to
// store the row; it reads nothing back. The insert skips any row stored in
// the meantime (ON CONFLICT sees rows committed after the statement's
// snapshot, and waits for those being inserted), and only the inserted
// rows get their outbox rows ($13), drift rows (run $14, arrays $15 to
// $18) and notifications ($19, payloads $21 of subscriptions $20). It
// returns the ids inserted. Arrays cost Postgres less to read than the
// JSON the other writes use: a first sweep writes every row through here.
const insertMissingSQL = `
WITH inserted AS (
    INSERT INTO user_subscriptions (stripe_subscription_id, user_id, stripe_customer_id, stripe_price_id,
        plan_id, billing_period, status, current_period_start, current_period_end, cancel_at_period_end,
        canceled_at, stripe_state_at)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
        $8::timestamptz[], $9::timestamptz[], $10::boolean[], $11::timestamptz[], $12::timestamptz[])
    WHERE (SELECT count(pg_advisory_xact_lock(hashtextextended(k.id, 7071)))
           FROM (SELECT id FROM unnest($1::text[]) AS u(id) ORDER BY id) AS k) >= 0
    ON CONFLICT (stripe_subscription_id) DO NOTHING
    RETURNING stripe_subscription_id AS id
), queued AS (
    INSERT INTO cache_invalidations (user_id, cache_key, subscription_id)
    SELECT o.user_id, o.cache_key, o.subscription_id
    FROM jsonb_to_recordset($13::jsonb) AS o(user_id text, cache_key text, subscription_id text)
    WHERE o.subscription_id IN (SELECT id FROM inserted)
    RETURNING 1
), drifted AS (
    INSERT INTO subscription_drift (run_id, stripe_subscription_id, field, db_value, stripe_value)
    SELECT $14, u.s, u.f, NULLIF(u.dv, ''), NULLIF(u.sv, '')
    FROM unnest($15::text[], $16::text[], $17::text[], $18::text[]) AS u(s, f, dv, sv)
    WHERE u.s IN (SELECT id FROM inserted)
    RETURNING 1
)
SELECT array(SELECT id FROM inserted) AS inserted, (SELECT count(*) FROM queued) AS queued,
    (SELECT count(*) FROM drifted) AS drifted,
    (SELECT count(pg_notify($19, n.p)) FROM unnest($20::text[], $21::text[]) AS n(s, p)
        WHERE n.s IN (SELECT id FROM inserted)) AS notified,
    set_config('synchronous_commit', 'off', true) AS synchronous_commit`

// writeMissing runs insertMissingSQL for the rows of w and their drift,
// and returns the ids inserted.
func (d *DB) writeMissing(ctx context.Context, runID int64, w reconcile.BatchWrite, drift []reconcile.Drift) (map[string]bool, error) {
	_, outbox, notes, err := d.notifyingWriteArgs(reconcile.BatchWrite{Changes: w.Changes})
	if err != nil {
		return nil, err
	}
	noteSubs := make([]string, len(w.Changes))
	for i, c := range w.Changes {
		noteSubs[i] = c.SubscriptionID
	}
	var n struct {
		Inserted pq.StringArray `db:"inserted"`
		Queued   int            `db:"queued"`
		Drifted  int            `db:"drifted"`
		Notified int            `db:"notified"`
		Commit   string         `db:"synchronous_commit"`
	}
	subs, fields, dbVals, stripeVals := driftArrays(drift)
	args := append(rowColumns(w.Rows), outbox, runID, pq.Array(subs), pq.Array(fields), pq.Array(dbVals),
		pq.Array(stripeVals), ChangeChannel, pq.Array(noteSubs), pq.Array(notes))
	err = d.getIn(ctx, nil, &n, insertMissingSQL, args...)
	if err := d.observe("insert_missing", err); err != nil {
		return nil, fmt.Errorf("insert %d missing subscriptions and record their drift in run %d: %w", len(w.Rows), runID, err)
	}
	out := make(map[string]bool, len(n.Inserted))
	for _, id := range n.Inserted {
		out[id] = true
	}
	return out, nil
}

// writeArgs renders a write's rows and outbox rows as JSON documents for
// upsertAndQueueSQL.
func (d *DB) writeArgs(w reconcile.BatchWrite) (rows, outbox string, err error) {
	subs := w.Rows
	if subs == nil {
		subs = []reconcile.Subscription{}
	}
	queue := []outboxRow{}
	if d.cacheKey != "" {
		for _, c := range w.Changes {
			queue = append(queue, outboxRow{UserID: c.UserID, SubscriptionID: c.SubscriptionID,
				CacheKey: strings.ReplaceAll(d.cacheKey, "{user_id}", c.UserID)})
		}
	}
	r, err := json.Marshal(subs)
	if err != nil {
		return "", "", err
	}
	o, err := json.Marshal(queue)
	if err != nil {
		return "", "", err
	}
	return string(r), string(o), nil
}

// notifyingWriteArgs renders w as writeArgs does, and its changes as the
// notifications of a statement that sends them.
func (d *DB) notifyingWriteArgs(w reconcile.BatchWrite) (rows, outbox string, notes []string, err error) {
	if rows, outbox, err = d.writeArgs(w); err != nil {
		return "", "", nil, err
	}
	notes, err = changeNotes(w.Changes)
	return rows, outbox, notes, err
}

// changeNotes renders changes as ChangeChannel payloads.
func changeNotes(changes []reconcile.Change) ([]string, error) {
	notes := make([]string, 0, len(changes))
	for _, c := range changes {
		p, err := json.Marshal(ChangeNotification{UserID: c.UserID, SubscriptionID: c.SubscriptionID})
		if err != nil {
			return nil, err
		}
		notes = append(notes, string(p))
	}
	return notes, nil
}

const notifyChangesSQL = `SELECT pg_notify($1, n) FROM unnest($2::text[]) AS n`

// notifyChanges announces changes on ChangeChannel in a statement of its
// own, outside any transaction that writes (see storeSettledSQL).
func (d *DB) notifyChanges(ctx context.Context, changes []reconcile.Change) {
	notes, err := changeNotes(changes)
	if err == nil && len(notes) > 0 {
		err = d.execIn(ctx, nil, notifyChangesSQL, ChangeChannel, pq.Array(notes))
	}
	_ = d.observe("notify_changes", err)
}

// lockSQL takes the advisory locks of the subscriptions in $1, every one
// ($3 false, waiting) or those free now ($3 true), and reads their rows
// once the locks are held, locking them too, and which of the events in $2
// are stored, in one round trip: see subsync_lock_subscriptions (migration
// 00014), whose queries each take a snapshot of their own.
const lockSQL = `SELECT kind, stripe_subscription_id, user_id, stripe_customer_id, stripe_price_id, plan_id,
	billing_period, status, current_period_start, current_period_end, cancel_at_period_end, canceled_at,
	stripe_state_at, created_at, updated_at FROM subsync_lock_subscriptions($1, $2, $3)`

// lockedRow is a row of lockSQL: an event stored ("e"), a lock held ("l")
// or a stored subscription row ("s"), whose columns are null in the others.
type lockedRow struct {
	Kind               string     `db:"kind"`
	ID                 string     `db:"stripe_subscription_id"`
	UserID             *string    `db:"user_id"`
	StripeCustomerID   *string    `db:"stripe_customer_id"`
	StripePriceID      *string    `db:"stripe_price_id"`
	PlanID             *string    `db:"plan_id"`
	BillingPeriod      *string    `db:"billing_period"`
	Status             *string    `db:"status"`
	CurrentPeriodStart *time.Time `db:"current_period_start"`
	CurrentPeriodEnd   *time.Time `db:"current_period_end"`
	CancelAtPeriodEnd  *bool      `db:"cancel_at_period_end"`
	CanceledAt         *time.Time `db:"canceled_at"`
	StripeStateAt      *time.Time `db:"stripe_state_at"`
	CreatedAt          *time.Time `db:"created_at"`
	UpdatedAt          *time.Time `db:"updated_at"`
}

func (r lockedRow) subscription() reconcile.Subscription {
	return reconcile.Subscription{
		StripeSubscriptionID: r.ID, UserID: r.UserID, StripeCustomerID: deref(r.StripeCustomerID),
		StripePriceID: r.StripePriceID, PlanID: r.PlanID, BillingPeriod: deref(r.BillingPeriod),
		Status: deref(r.Status), CurrentPeriodStart: r.CurrentPeriodStart, CurrentPeriodEnd: r.CurrentPeriodEnd,
		CancelAtPeriodEnd: deref(r.CancelAtPeriodEnd), CanceledAt: r.CanceledAt,
		StripeStateAt: deref(r.StripeStateAt), CreatedAt: deref(r.CreatedAt), UpdatedAt: deref(r.UpdatedAt),
	}
}

// deref is *p, or the zero value for nil (a column that is null in rows
// of another kind).
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// lockSubscriptions takes the advisory locks of ids in sorted order (so
// two batches never deadlock; every writer of a subscription takes the
// same lock) and returns their stored rows, read after the locks are held.
func (d *DB) lockSubscriptions(ctx context.Context, tx *sqlx.Tx, ids []string) (map[string]reconcile.Subscription, error) {
	h, err := d.lockAndRead(ctx, tx, ids, nil, false)
	return h.Rows, err
}

// tryLockSubscriptions takes those of the advisory locks of ids that are
// free, without waiting for the others, and reads, once they are held,
// their stored rows, and which of the events eventIDs are stored already.
// The rows are locked NOWAIT too: a writer that holds one without the
// advisory lock (not subsyncd) makes it fail, with errRowLocked, rather
// than wait.
func (d *DB) tryLockSubscriptions(ctx context.Context, tx *sqlx.Tx, ids, eventIDs []string) (reconcile.Held, error) {
	return d.lockAndRead(ctx, tx, ids, eventIDs, true)
}

// errRowLocked is tryLockSubscriptions's answer when a row it must read is
// locked by a writer that does not take the advisory locks.
var errRowLocked = errors.New("a subscription row is locked by another writer")

// lockAndRead runs lockSQL.
func (d *DB) lockAndRead(ctx context.Context, tx *sqlx.Tx, ids, eventIDs []string, try bool) (reconcile.Held, error) {
	if eventIDs == nil {
		eventIDs = []string{}
	}
	var got []lockedRow
	err := d.selectIn(ctx, tx, &got, lockSQL, pq.Array(ids), pq.Array(eventIDs), try)
	var pqErr *pq.Error
	if try && errors.As(err, &pqErr) && pqErr.Code == "55P03" { // lock_not_available: expected, not a fault
		return reconcile.Held{}, errRowLocked
	}
	if err := d.observe("lock_subscriptions", err); err != nil {
		return reconcile.Held{}, fmt.Errorf("lock %d subscriptions: %w", len(ids), err)
	}
	h := reconcile.Held{Locked: map[string]bool{}, Stored: map[string]bool{}, Rows: map[string]reconcile.Subscription{}}
	for _, r := range got {
		switch r.Kind {
		case "l":
			h.Locked[r.ID] = true
		case "e":
			h.Stored[r.ID] = true
		case "s":
			h.Rows[r.ID] = r.subscription()
		}
	}
	return h, nil
}
