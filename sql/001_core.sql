-- 001_core: runs, ops, queues and their bookkeeping.
--
-- Objects are created unqualified in the schema first on search_path: the
-- migrator sets it to the engine's schema (default stepkit).  By hand:
--   psql "$DATABASE_URL" -c 'CREATE SCHEMA IF NOT EXISTS stepkit'
--   PGOPTIONS='-c search_path=stepkit' psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -1 -f sql/001_core.sql
-- docs/schema.md says why each table and index exists.

CREATE TABLE IF NOT EXISTS schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Workflows some master has loaded: lets a client refuse an unknown id and
-- lets SQL find event and cron triggers.
CREATE TABLE workflows (
    workflow_id   text PRIMARY KEY,
    max_attempts  int NOT NULL CHECK (max_attempts >= 1),
    events        text[] NOT NULL DEFAULT '{}',
    schedules     text[] NOT NULL DEFAULT '{}',
    registered_at timestamptz NOT NULL DEFAULT now()
);

-- One row per run: its input, and at the end its output or error.
CREATE TABLE runs (
    run_id        uuid PRIMARY KEY,
    workflow_id   text NOT NULL,
    event_id      uuid NOT NULL,
    trigger_type  text NOT NULL CHECK (trigger_type IN ('invoke', 'event', 'cron')),
    trigger_name  text NOT NULL,               -- input.name: workflow id or event name
    data          bytea NOT NULL,              -- msgpack: input.data
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'completed', 'failed')),
    output        bytea,                       -- msgpack, when completed
    error         bytea,                       -- msgpack error map, when failed
    attempt       int NOT NULL DEFAULT 0,      -- failed handler executions in this budget
    attempt_ops   int NOT NULL DEFAULT 0,      -- ops recorded when the budget began
    notify_end    boolean NOT NULL DEFAULT false, -- a client waits: NOTIFY <schema>.done at the end
    parent_run_id uuid,                        -- set for runs started by invoke_workflow
    parent_op_key text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz
);

-- An event delivered twice never starts a workflow twice.
CREATE UNIQUE INDEX runs_event_workflow ON runs (event_id, workflow_id);

-- Recorded ops.  A final row (ok or error) is never replaced; a 'retry'
-- row counts the failed attempts of an op that will run again.
CREATE TABLE ops (
    run_id     uuid NOT NULL,
    op_key     text NOT NULL,                  -- sha1 hex of "<step id>:<index>"
    step_id    text NOT NULL,
    kind       text NOT NULL DEFAULT 'run',
    status     text NOT NULL CHECK (status IN ('retry', 'ok', 'error')),
    result     bytea,                          -- msgpack: output, or error map
    attempts   int NOT NULL,
    wait_info  bytea,                          -- msgpack: what a suspended op waits for
    started_at timestamptz NOT NULL DEFAULT now(),
    ended_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, op_key)
);

-- Work that is ready at visible_at.  A claim takes a lease by moving
-- visible_at to the lease expiry and bumping epoch; the row leaves the
-- table only when the work it stands for commits.
CREATE TABLE exec_queue (
    item_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      uuid NOT NULL,
    workflow_id text NOT NULL,                 -- workers claim only what they can run
    op_key      text,                          -- NULL: replay the run; else run that op only
    visible_at  timestamptz NOT NULL DEFAULT now(),
    epoch       int NOT NULL DEFAULT 0,        -- fencing token, +1 per claim
    claimed_by  text,
    created_at  timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);

-- The claim and the next-due timer read the oldest visible_at.
CREATE INDEX exec_queue_visible ON exec_queue (visible_at);
-- At most one pending replay per run (and one item per op): duplicate
-- wake-ups coalesce instead of scheduling a run twice.
CREATE UNIQUE INDEX exec_queue_run_op ON exec_queue (run_id, (coalesce(op_key, '')));

-- Runs suspended in wait_for_signal.
CREATE TABLE waiting_signals (
    signal     text NOT NULL,
    run_id     uuid NOT NULL,
    op_key     text NOT NULL,
    timeout_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, op_key)
);
-- A send wakes the oldest waiter of a name.
CREATE INDEX waiting_signals_oldest ON waiting_signals (signal, created_at);

-- Parents suspended in invoke_workflow, keyed by the child they wait for.
CREATE TABLE waiting_invokes (
    child_run_id  uuid PRIMARY KEY,
    parent_run_id uuid NOT NULL,
    parent_op_key text NOT NULL,
    timeout_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Events sent and not yet turned into runs.
CREATE TABLE event_queue (
    event_id   uuid PRIMARY KEY,
    name       text NOT NULL,
    data       bytea NOT NULL,                 -- msgpack
    visible_at timestamptz NOT NULL DEFAULT now(),
    epoch      int NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_queue_visible ON event_queue (visible_at);

-- Wake the workers when new work is queued.  Payload-free and one per
-- statement (PostgreSQL folds identical notifications of a transaction);
-- a worker continuing a run it holds updates its item and notifies nobody.
CREATE FUNCTION notify_work() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.work', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER exec_queue_notify AFTER INSERT ON exec_queue
    FOR EACH STATEMENT EXECUTE FUNCTION notify_work();
CREATE TRIGGER event_queue_notify AFTER INSERT ON event_queue
    FOR EACH STATEMENT EXECUTE FUNCTION notify_work();

-- Fencing: every write that follows a claim starts with fence(item, epoch,
-- ms).  It locks the item and moves visible_at to now() + ms (extends the
-- lease, or reschedules), or deletes the item when ms is NULL (its work is
-- done), and raises SK001 when the lease was lost, which aborts the whole
-- transaction: a late worker changes nothing.
CREATE FUNCTION fence(p_item bigint, p_epoch int, p_visible_ms int) RETURNS uuid
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    r uuid;
BEGIN
    IF p_visible_ms IS NULL THEN
        DELETE FROM exec_queue WHERE item_id = p_item AND epoch = p_epoch
        RETURNING run_id INTO r;
    ELSE
        UPDATE exec_queue
           SET visible_at = now() + p_visible_ms * interval '1 millisecond'
         WHERE item_id = p_item AND epoch = p_epoch
        RETURNING run_id INTO r;
    END IF;
    IF r IS NULL THEN
        RAISE EXCEPTION 'lease lost on item %', p_item USING ERRCODE = 'SK001';
    END IF;
    RETURN r;
END
$$;

INSERT INTO schema_migrations (version, name) VALUES (1, '001_core');
