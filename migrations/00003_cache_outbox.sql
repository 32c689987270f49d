-- +goose Up
-- Transactional outbox of cache keys to delete in Redis, written in the same
-- transaction as the user_subscriptions change that makes them stale.
CREATE TABLE cache_invalidations (
    id              bigserial PRIMARY KEY,
    user_id         text        NOT NULL,
    cache_key       text        NOT NULL,
    subscription_id text,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done')),
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX cache_invalidations_due_idx ON cache_invalidations (next_attempt_at) WHERE status = 'pending';
CREATE INDEX cache_invalidations_delivered_idx ON cache_invalidations (delivered_at) WHERE status = 'done';

-- +goose Down
DROP TABLE cache_invalidations;
