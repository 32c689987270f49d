-- What subsyncd must do for one webhook event, as one pgbench transaction:
-- store the event (db.InsertEvent's statement, already marked applied) and
-- write its subscription through the guarded upsert (newer Stripe state
-- only). Variables, given with -D: subs (distinct subscriptions), payload
-- (an event body of about 1.5 KB, as the load generator sends).
\set sub random(1, :subs)
\set n random(1, 1000000000000)
\set cancel :n % 2
BEGIN;
INSERT INTO stripe_webhook_events
    (id, type, api_version, stripe_created_at, livemode, source, status, subscription_id, payload, processed_at)
VALUES ('evt_pgbench_' || :client_id || '_' || :n, 'customer.subscription.updated', '2023-10-16', now(), false,
    'webhook', 'applied', 'sub_pgbench_' || :sub, CAST(:payload AS jsonb), now())
ON CONFLICT (id) DO NOTHING;
INSERT INTO user_subscriptions AS s
    (stripe_subscription_id, user_id, stripe_customer_id, stripe_price_id, plan_id, billing_period, status,
     current_period_start, current_period_end, cancel_at_period_end, canceled_at, stripe_state_at)
VALUES ('sub_pgbench_' || :sub, 'user_pgbench_' || :sub, 'cus_pgbench_' || :sub, 'price_load', NULL, 'annual',
    'active', now() - interval '1 day', now() + interval '364 days', CAST(:cancel AS int) = 0, NULL, now())
ON CONFLICT (stripe_subscription_id) DO UPDATE SET
    user_id = coalesce(EXCLUDED.user_id, s.user_id), stripe_customer_id = EXCLUDED.stripe_customer_id,
    stripe_price_id = EXCLUDED.stripe_price_id, plan_id = EXCLUDED.plan_id,
    billing_period = EXCLUDED.billing_period, status = EXCLUDED.status,
    current_period_start = EXCLUDED.current_period_start, current_period_end = EXCLUDED.current_period_end,
    cancel_at_period_end = EXCLUDED.cancel_at_period_end, canceled_at = EXCLUDED.canceled_at,
    stripe_state_at = EXCLUDED.stripe_state_at, updated_at = now()
WHERE s.stripe_state_at <= EXCLUDED.stripe_state_at;
COMMIT;
