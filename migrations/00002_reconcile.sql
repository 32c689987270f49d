-- +goose Up
CREATE TABLE reconcile_runs (
    id          bigserial PRIMARY KEY,
    job         text        NOT NULL CHECK (job IN ('events', 'subscriptions')),
    dry_run     boolean     NOT NULL DEFAULT false,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    status      text        NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
    scanned     integer     NOT NULL DEFAULT 0,
    drifted     integer     NOT NULL DEFAULT 0,
    fixed       integer     NOT NULL DEFAULT 0,
    errors      integer     NOT NULL DEFAULT 0,
    error       text
);
CREATE INDEX reconcile_runs_job_started_idx ON reconcile_runs (job, started_at DESC);

CREATE TABLE subscription_drift (
    id                     bigserial PRIMARY KEY,
    run_id                 bigint NOT NULL REFERENCES reconcile_runs (id) ON DELETE CASCADE,
    stripe_subscription_id text   NOT NULL,
    field                  text   NOT NULL,
    db_value               text,
    stripe_value           text
);
CREATE INDEX subscription_drift_run_idx ON subscription_drift (run_id);

-- Where the events catch-up resumes: the newest event created time it has seen.
CREATE TABLE reconcile_cursors (
    job        text PRIMARY KEY,
    cursor_at  timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE reconcile_cursors;
DROP TABLE subscription_drift;
DROP TABLE reconcile_runs;
