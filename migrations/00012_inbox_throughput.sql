-- +goose NO TRANSACTION
-- +goose Up
-- Webhook inserts no longer notify from their own transaction: a NOTIFY
-- serialises the commits of every transaction that sends one. The daemon
-- sends a coalesced NOTIFY subsync_inbox of its own instead. The trigger's
-- function first becomes a no-op, which takes no lock on the table; then
-- the trigger is dropped if the table's lock comes within 2 s (dropping it
-- waits for every transaction on the table, and webhook inserts would queue
-- behind the wait); if not, the no-op trigger stays, harmless.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION subsync_notify_inbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
-- +goose StatementBegin
DO $$
BEGIN
    PERFORM set_config('lock_timeout', '2s', true);
    DROP TRIGGER IF EXISTS stripe_webhook_events_notify ON stripe_webhook_events;
    DROP FUNCTION IF EXISTS subsync_notify_inbox();
EXCEPTION WHEN lock_not_available THEN
    RAISE NOTICE 'stripe_webhook_events is busy: its notify trigger stays, a no-op now';
END;
$$;
-- +goose StatementEnd

-- The claim's index: the same filter and the same order as the claim, so a
-- claim reads the rows it takes and no others, however long the backlog.
-- Built without blocking writes; a build cut short leaves an invalid index
-- under the name, so a re-run drops whatever is there first.
DROP INDEX CONCURRENTLY IF EXISTS stripe_webhook_events_claim_idx;
CREATE INDEX CONCURRENTLY stripe_webhook_events_claim_idx
    ON stripe_webhook_events (next_attempt_at, stripe_created_at, id)
    WHERE status IN ('pending', 'failed');
DROP INDEX CONCURRENTLY IF EXISTS stripe_webhook_events_due_idx;

-- +goose Down
-- The trigger is not restored: a daemon of this version notifies by itself,
-- and an older one also polls every 2 s.
CREATE INDEX CONCURRENTLY IF NOT EXISTS stripe_webhook_events_due_idx
    ON stripe_webhook_events (next_attempt_at, stripe_created_at) WHERE status IN ('pending', 'failed');
DROP INDEX CONCURRENTLY IF EXISTS stripe_webhook_events_claim_idx;
