-- +goose Up
-- On Supabase (the roles anon, authenticated and service_role and the
-- auth.uid()/auth.jwt() functions exist), protect the tables with row-level
-- security: only the service role writes events, admins read them, and a
-- user reads only their own subscription rows. On plain Postgres this does
-- nothing. subsyncd itself connects as the table owner (or service_role),
-- which RLS does not restrict.
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT (
        EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role')
        AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated')
        AND EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                    WHERE n.nspname = 'auth' AND p.proname = 'uid')
        AND EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                    WHERE n.nspname = 'auth' AND p.proname = 'jwt')
    ) THEN
        RAISE NOTICE 'Supabase roles not found: row-level security left off';
        RETURN;
    END IF;

    ALTER TABLE stripe_webhook_events ENABLE ROW LEVEL SECURITY;
    CREATE POLICY stripe_webhook_events_service_insert ON stripe_webhook_events
        FOR INSERT TO service_role WITH CHECK (true);
    CREATE POLICY stripe_webhook_events_service_all ON stripe_webhook_events
        FOR ALL TO service_role USING (true) WITH CHECK (true);
    CREATE POLICY stripe_webhook_events_admin_select ON stripe_webhook_events
        FOR SELECT TO authenticated
        USING (coalesce(auth.jwt() -> 'app_metadata' ->> 'role', '') = 'admin');

    ALTER TABLE user_subscriptions ENABLE ROW LEVEL SECURITY;
    CREATE POLICY user_subscriptions_service_all ON user_subscriptions
        FOR ALL TO service_role USING (true) WITH CHECK (true);
    CREATE POLICY user_subscriptions_own_select ON user_subscriptions
        FOR SELECT TO authenticated
        USING (user_id = auth.uid()::text);
    GRANT SELECT ON user_subscriptions TO authenticated;
    GRANT SELECT ON stripe_webhook_events TO authenticated;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    DROP POLICY IF EXISTS stripe_webhook_events_service_insert ON stripe_webhook_events;
    DROP POLICY IF EXISTS stripe_webhook_events_service_all ON stripe_webhook_events;
    DROP POLICY IF EXISTS stripe_webhook_events_admin_select ON stripe_webhook_events;
    DROP POLICY IF EXISTS user_subscriptions_service_all ON user_subscriptions;
    DROP POLICY IF EXISTS user_subscriptions_own_select ON user_subscriptions;
    ALTER TABLE stripe_webhook_events DISABLE ROW LEVEL SECURITY;
    ALTER TABLE user_subscriptions DISABLE ROW LEVEL SECURITY;
END;
$$;
-- +goose StatementEnd
