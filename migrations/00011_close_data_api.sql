-- +goose Up
-- On Supabase, the project's default privileges grant every new table,
-- sequence and function in public to anon and authenticated, and the Data
-- API serves public to anyone holding the anon key. Close every subsync
-- table to those two roles: revoke what the defaults granted and enable
-- row-level security with no policy for them, so only the policies of
-- 00010 (a user reads their own user_subscriptions rows, admins read the
-- events) let rows through. The owner and service_role (BYPASSRLS) are
-- unaffected. Without those roles (plain Postgres) this does nothing.
--
-- A later migration that creates a table closes it the same way and adds
-- it to db.Tables; a test fails on any table the two roles can reach.
-- +goose StatementBegin
DO $$
DECLARE
    tbl  text;
    role text;
    seq  regclass;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['user_subscriptions', 'stripe_webhook_events', 'reconcile_runs',
                               'subscription_drift', 'reconcile_cursors', 'cache_invalidations',
                               'goose_db_version'] LOOP
        CONTINUE WHEN to_regclass(quote_ident(tbl)) IS NULL;
        FOREACH role IN ARRAY ARRAY['anon', 'authenticated'] LOOP
            CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role);
            EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', tbl);
            IF role = 'authenticated' AND tbl IN ('user_subscriptions', 'stripe_webhook_events') THEN
                -- SELECT stays for the policies of 00010; rows pass only through them.
                EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON %I FROM %I', tbl, role);
            ELSE
                EXECUTE format('REVOKE ALL ON %I FROM %I', tbl, role);
            END IF;
            FOR seq IN
                SELECT d.objid::regclass FROM pg_depend d JOIN pg_class s ON s.oid = d.objid
                WHERE d.refobjid = to_regclass(quote_ident(tbl)) AND d.classid = 'pg_class'::regclass
                  AND s.relkind = 'S'
            LOOP
                EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM %I', seq, role);
            END LOOP;
        END LOOP;
    END LOOP;
    FOREACH role IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role);
        EXECUTE format('REVOKE ALL ON FUNCTION subsync_notify_inbox() FROM %I', role);
    END LOOP;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- Row-level security and the revoked privileges stay: reopening the tables
-- to the Data API is never wanted.
SELECT 1;
