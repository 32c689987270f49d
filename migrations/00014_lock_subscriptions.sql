-- +goose Up
-- Takes the advisory locks of subscriptions that every writer takes, then
-- reads their rows, in one round trip: the function's queries each take a
-- snapshot of their own (it is VOLATILE, and runs in READ COMMITTED), so the
-- rows are read after the locks are held and show every write committed by
-- their previous holders, as a separate statement would.
--
-- With try_only, only the locks free now are taken and the rows are locked
-- NOWAIT: a writer that holds one without the advisory lock (not subsyncd)
-- makes the call fail with lock_not_available rather than wait. Without it,
-- every lock is taken, in id order, waiting as long as it takes.
--
-- Rows returned: kind 'e' for each of event_ids already stored, 'l' for
-- each subscription whose lock is held, 's' with the stored row of each of
-- those that has one. The row's columns are cast to the declared types, so
-- that a later change of a column to a type that casts keeps it working.
--
-- Every read looks its rows up one key at a time through the primary key
-- (LATERAL, kept from being flattened into a join by OFFSET 0 or FOR
-- UPDATE). A plan made while a table is small or not yet analyzed would
-- otherwise scan the whole table for each call, and stay cached while the
-- table grows: on a fresh database, until autovacuum first analyzes it.
-- Callers: db.lockAndRead.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION subsync_lock_subscriptions(ids text[], event_ids text[], try_only boolean)
RETURNS TABLE (kind text, stripe_subscription_id text, user_id text, stripe_customer_id text,
    stripe_price_id text, plan_id text, billing_period text, status text,
    current_period_start timestamptz, current_period_end timestamptz, cancel_at_period_end boolean,
    canceled_at timestamptz, stripe_state_at timestamptz, created_at timestamptz, updated_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    held text[];
BEGIN
    IF try_only THEN
        SELECT coalesce(array_agg(u.id), '{}') INTO held
        FROM (SELECT DISTINCT x AS id FROM unnest(ids) AS x) AS u
        WHERE pg_try_advisory_xact_lock(hashtextextended(u.id, 7071));
    ELSE
        SELECT coalesce(array_agg(u.id ORDER BY u.id), '{}') INTO held
        FROM (SELECT DISTINCT x AS id FROM unnest(ids) AS x) AS u;
        PERFORM pg_advisory_xact_lock(hashtextextended(h.id, 7071))
        FROM (SELECT x AS id FROM unnest(held) WITH ORDINALITY AS t(x, n) ORDER BY n) AS h;
    END IF;
    RETURN QUERY SELECT 'e'::text, e.id, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text,
        NULL::timestamptz, NULL::timestamptz, NULL::boolean, NULL::timestamptz, NULL::timestamptz,
        NULL::timestamptz, NULL::timestamptz
        FROM unnest(event_ids) AS k(id), LATERAL (SELECT e.id FROM stripe_webhook_events e
            WHERE e.id = k.id OFFSET 0) AS e;
    RETURN QUERY SELECT 'l'::text, h.id, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text,
        NULL::timestamptz, NULL::timestamptz, NULL::boolean, NULL::timestamptz, NULL::timestamptz,
        NULL::timestamptz, NULL::timestamptz
        FROM unnest(held) AS h(id);
    IF try_only THEN
        RETURN QUERY SELECT 's'::text, s.stripe_subscription_id::text, s.user_id::text, s.stripe_customer_id::text,
            s.stripe_price_id::text, s.plan_id::text, s.billing_period::text, s.status::text,
            s.current_period_start::timestamptz, s.current_period_end::timestamptz,
            s.cancel_at_period_end::boolean, s.canceled_at::timestamptz, s.stripe_state_at::timestamptz,
            s.created_at::timestamptz, s.updated_at::timestamptz
            FROM unnest(held) AS k(id), LATERAL (SELECT * FROM user_subscriptions u
                WHERE u.stripe_subscription_id = k.id FOR UPDATE NOWAIT) AS s;
    ELSE
        RETURN QUERY SELECT 's'::text, s.stripe_subscription_id::text, s.user_id::text, s.stripe_customer_id::text,
            s.stripe_price_id::text, s.plan_id::text, s.billing_period::text, s.status::text,
            s.current_period_start::timestamptz, s.current_period_end::timestamptz,
            s.cancel_at_period_end::boolean, s.canceled_at::timestamptz, s.stripe_state_at::timestamptz,
            s.created_at::timestamptz, s.updated_at::timestamptz
            FROM unnest(held) AS k(id), LATERAL (SELECT * FROM user_subscriptions u
                WHERE u.stripe_subscription_id = k.id FOR UPDATE) AS s;
    END IF;
END;
$$;
-- +goose StatementEnd

-- On Supabase (where the Data API's roles anon and authenticated exist),
-- Postgres's default lets PUBLIC execute a new function, the project's
-- default privileges grant it to anon and authenticated, and the Data API
-- would serve it through /rpc. There it is revoked from all three: the
-- owner (the role that migrates) calls it, and a role that runs subsyncd
-- without owning the tables needs GRANT EXECUTE on it (subsyncd check says
-- so). Elsewhere its privileges stay Postgres's default: any role may call
-- it, with its own privileges on the tables it reads and locks.
-- +goose StatementBegin
DO $$
DECLARE
    role text;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname IN ('anon', 'authenticated')) THEN
        REVOKE ALL ON FUNCTION subsync_lock_subscriptions(text[], text[], boolean) FROM PUBLIC;
    END IF;
    FOREACH role IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role);
        EXECUTE format('REVOKE ALL ON FUNCTION subsync_lock_subscriptions(text[], text[], boolean) FROM %I', role);
    END LOOP;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION IF EXISTS subsync_lock_subscriptions(text[], text[], boolean);
