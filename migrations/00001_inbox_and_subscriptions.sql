-- +goose Up
CREATE TABLE user_subscriptions (
    stripe_subscription_id text PRIMARY KEY,
    user_id                text,
    stripe_customer_id     text        NOT NULL,
    stripe_price_id        text,
    plan_id                text,
    billing_period         text        NOT NULL CHECK (billing_period IN ('monthly', 'annual', 'other')),
    status                 text        NOT NULL,
    current_period_start   timestamptz,
    current_period_end     timestamptz,
    cancel_at_period_end   boolean     NOT NULL DEFAULT false,
    canceled_at            timestamptz,
    stripe_state_at        timestamptz NOT NULL,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_subscriptions_user_id_idx ON user_subscriptions (user_id);
CREATE INDEX user_subscriptions_customer_idx ON user_subscriptions (stripe_customer_id);

CREATE TABLE stripe_webhook_events (
    id                text PRIMARY KEY CHECK (id LIKE 'evt\_%'),
    type              text        NOT NULL,
    api_version       text,
    stripe_created_at timestamptz NOT NULL,
    livemode          boolean     NOT NULL DEFAULT false,
    source            text        NOT NULL DEFAULT 'webhook' CHECK (source IN ('webhook', 'catchup')),
    status            text        NOT NULL DEFAULT 'pending'
                                  CHECK (status IN ('pending', 'applied', 'ignored', 'failed', 'dead')),
    attempts          integer     NOT NULL DEFAULT 0,
    last_error        text,
    subscription_id   text,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    received_at       timestamptz NOT NULL DEFAULT now(),
    processed_at      timestamptz,
    payload           jsonb       NOT NULL
);
CREATE INDEX stripe_webhook_events_type_processed_idx ON stripe_webhook_events (type, processed_at);
CREATE INDEX stripe_webhook_events_processed_idx ON stripe_webhook_events (processed_at DESC);
-- The applier's work queue: only events still to apply, in due order.
CREATE INDEX stripe_webhook_events_due_idx ON stripe_webhook_events (next_attempt_at, stripe_created_at)
    WHERE status IN ('pending', 'failed');

-- Wake every replica's applier when events arrive (webhook or catch-up).
-- +goose StatementBegin
CREATE FUNCTION subsync_notify_inbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('subsync_inbox', '');
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER stripe_webhook_events_notify
    AFTER INSERT ON stripe_webhook_events
    FOR EACH STATEMENT EXECUTE FUNCTION subsync_notify_inbox();

-- +goose Down
DROP TABLE stripe_webhook_events;
DROP FUNCTION subsync_notify_inbox();
DROP TABLE user_subscriptions;
