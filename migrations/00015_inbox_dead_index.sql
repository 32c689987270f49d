-- +goose NO TRANSACTION
-- +goose Up
-- The inbox gauges (subsync_inbox_pending, subsync_inbox_dead and the age
-- of the oldest waiting event) are read every 5 s. Waiting events are found
-- through the claim's index; dead ones had no index of their own, so each
-- read scanned the whole table: on an inbox of 1,000,000 events, 1.9 GB
-- every 5 s, competing with the webhooks' writes. This index holds only
-- dead events. Built without blocking writes; a build cut short leaves an
-- invalid index under the name, so a re-run drops whatever is there first.
DROP INDEX CONCURRENTLY IF EXISTS stripe_webhook_events_dead_idx;
CREATE INDEX CONCURRENTLY stripe_webhook_events_dead_idx
    ON stripe_webhook_events (received_at)
    WHERE status = 'dead';

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS stripe_webhook_events_dead_idx;
