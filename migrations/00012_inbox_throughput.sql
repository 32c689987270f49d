-- +goose NO TRANSACTION
-- +goose Up
-- Webhook inserts no longer notify from their own transaction: a NOTIFY
-- serialises the commits of every transaction that sends one. The daemon
-- sends a coalesced NOTIFY subsync_inbox of its own instead.
DROP TRIGGER IF EXISTS stripe_webhook_events_notify ON stripe_webhook_events;
DROP FUNCTION IF EXISTS subsync_notify_inbox();

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
