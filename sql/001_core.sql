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
-- row counts the failed attempts of an op that will run again; a 'waiting'
-- row is a suspended op (sleep, signal, child run) described by wait_info.
CREATE TABLE ops (
    run_id     uuid NOT NULL,
    op_key     text NOT NULL,                  -- sha1 hex of "<step id>:<index>"
    step_id    text NOT NULL,
    kind       text NOT NULL DEFAULT 'run',
    status     text NOT NULL CHECK (status IN ('retry', 'waiting', 'ok', 'error')),
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
    leased      boolean NOT NULL DEFAULT false, -- a worker holds it (visible_at = lease expiry)
    wake_seq    int NOT NULL DEFAULT 0,        -- +1 per wake-up; a holder that missed one replays
    takeovers   int NOT NULL DEFAULT 0,        -- claims in a row that found the lease expired
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
-- A run that ends drops the waits it still had on its children.
CREATE INDEX waiting_invokes_parent ON waiting_invokes (parent_run_id);

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

-- Wake the workers when new work is queued or a suspended run is woken.
-- Payload-free and one per statement (PostgreSQL folds identical
-- notifications of a transaction); a worker continuing a run it holds
-- updates its item's lease, which notifies nobody.
CREATE FUNCTION notify_work() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.work', '');
    RETURN NULL;
END
$$;

-- New items notify only when no other item of their workflow is ready and
-- unclaimed: then workers are idle or about to be.  Otherwise the workers
-- that will claim the ready item claim the new one after it (every end of
-- a run claims the next item), so the notification would only wake idle
-- listeners for nothing, and every notifying commit takes PostgreSQL's
-- global notify lock, which serialises such commits.
CREATE FUNCTION notify_new_work() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_items n
                WHERE n.visible_at <= now()
                  AND NOT EXISTS (SELECT 1 FROM exec_queue q
                                   WHERE q.workflow_id = n.workflow_id
                                     AND q.visible_at <= now() AND NOT q.leased
                                     AND q.item_id NOT IN (SELECT item_id FROM new_items)))
       OR EXISTS (SELECT 1 FROM new_items n WHERE n.visible_at > now()) THEN
        PERFORM pg_notify(TG_TABLE_SCHEMA || '.work', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER exec_queue_notify AFTER INSERT ON exec_queue
    REFERENCING NEW TABLE AS new_items
    FOR EACH STATEMENT EXECUTE FUNCTION notify_new_work();
CREATE TRIGGER exec_queue_wake_notify AFTER UPDATE OF wake_seq ON exec_queue
    FOR EACH STATEMENT EXECUTE FUNCTION notify_work();
CREATE TRIGGER event_queue_notify AFTER INSERT ON event_queue
    FOR EACH STATEMENT EXECUTE FUNCTION notify_work();

-- Fencing: every write that follows a claim starts with
-- fence(item, epoch, ms, release, seen_wake).  It locks the item and
--   ms NULL:        deletes it (its work is done);
--   release false:  extends the lease to now() + ms;
--   release true:   hands the item back, visible at now() + ms (ms < 0:
--                   never, until woken), or at once if the run was woken
--                   since the holder read it (wake_seq moved);
-- and raises SK001 when the lease was lost (the epoch moved on), which
-- aborts the whole transaction: a late worker changes nothing.
CREATE FUNCTION fence(p_item bigint, p_epoch int, p_ms bigint, p_release boolean,
                      p_seen_wake int) RETURNS uuid
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    r uuid;
BEGIN
    IF p_ms IS NULL THEN
        DELETE FROM exec_queue WHERE item_id = p_item AND epoch = p_epoch
        RETURNING run_id INTO r;
    ELSE
        UPDATE exec_queue
           SET visible_at = CASE
                   WHEN p_release AND wake_seq <> p_seen_wake THEN now()
                   WHEN p_ms < 0 THEN 'infinity'
                   ELSE now() + p_ms * interval '1 millisecond' END,
               leased = NOT p_release
         WHERE item_id = p_item AND epoch = p_epoch
        RETURNING run_id INTO r;
    END IF;
    IF r IS NULL THEN
        RAISE EXCEPTION 'lease lost on item %', p_item USING ERRCODE = 'SK001';
    END IF;
    RETURN r;
END
$$;

-- Make a suspended run visible now; a run a worker holds is marked, and
-- its holder replays it again when it hands it back (see fence).
CREATE FUNCTION wake(p_run uuid) RETURNS void
LANGUAGE sql SET search_path FROM CURRENT AS $$
    UPDATE exec_queue
       SET wake_seq = wake_seq + 1,
           visible_at = CASE WHEN leased THEN visible_at ELSE least(visible_at, now()) END
     WHERE run_id = p_run AND op_key IS NULL;
$$;

-- msgpack encoding of a string, for the few fixed shapes SQL writes
-- ({data, signal}, {run_id}).
CREATE FUNCTION mp_str(s text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE
        WHEN n < 32 THEN set_byte('\x00'::bytea, 0, 160 + n) || b
        WHEN n < 256 THEN '\xd9'::bytea || set_byte('\x00'::bytea, 0, n) || b
        WHEN n < 65536 THEN '\xda'::bytea || substring(int4send(n) FROM 3 FOR 2) || b
        ELSE '\xdb'::bytea || int4send(n) || b END
      FROM (SELECT convert_to(s, 'UTF8') AS b) x, LATERAL (SELECT octet_length(x.b) AS n) y;
$$;

-- End a run once, fenced like fence(item, epoch, NULL): remove the item
-- the caller holds (SK001 when its lease was lost), record the outcome,
-- drop the run's other queue items and waits, resolve a parent waiting on
-- it (p_parent_error: the error as the parent sees it, not retryable), and
-- wake a waiting client.  False when the run had already ended.
CREATE FUNCTION end_run(p_item bigint, p_epoch int, p_run uuid, p_status text,
                        p_output bytea, p_error bytea, p_parent_error bytea,
                        p_channel text) RETURNS boolean
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    v_notify boolean;
    v_parent uuid;
    v_op text;
BEGIN
    DELETE FROM exec_queue WHERE item_id = p_item AND epoch = p_epoch;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lease lost on item %', p_item USING ERRCODE = 'SK001';
    END IF;
    UPDATE runs SET status = p_status, output = p_output, error = p_error, ended_at = now()
     WHERE run_id = p_run AND status = 'pending'
    RETURNING notify_end INTO v_notify;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM exec_queue WHERE run_id = p_run;
    DELETE FROM waiting_signals WHERE run_id = p_run;
    DELETE FROM waiting_invokes WHERE parent_run_id = p_run;
    DELETE FROM waiting_invokes WHERE child_run_id = p_run
    RETURNING parent_run_id, parent_op_key INTO v_parent, v_op;
    IF v_parent IS NOT NULL THEN
        UPDATE ops
           SET status = CASE WHEN p_status = 'completed' THEN 'ok' ELSE 'error' END,
               result = CASE WHEN p_status = 'completed' THEN p_output ELSE p_parent_error END,
               ended_at = now()
         WHERE run_id = v_parent AND op_key = v_op AND status = 'waiting';
        PERFORM wake(v_parent);
    END IF;
    IF v_notify THEN
        PERFORM pg_notify(p_channel, '');
    END IF;
    RETURN true;
END
$$;

-- A wait whose timeout passed: whoever deletes the waiting row wins, so a
-- send (or a child's end) racing the timeout resolves to one outcome.
-- Returns the op as it stands afterwards.
CREATE FUNCTION resolve_timeout(p_run uuid, p_op text, p_result bytea)
RETURNS TABLE (status text, result bytea)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    v_invoke boolean := false;
    v_found boolean;
BEGIN
    DELETE FROM waiting_signals w WHERE w.run_id = p_run AND w.op_key = p_op;
    v_found := FOUND;
    IF NOT v_found THEN
        DELETE FROM waiting_invokes w WHERE w.parent_run_id = p_run AND w.parent_op_key = p_op;
        v_found := FOUND;
        v_invoke := v_found;
    END IF;
    IF v_found THEN
        UPDATE ops o SET status = CASE WHEN v_invoke THEN 'error' ELSE 'ok' END,
                         result = p_result, ended_at = now()
         WHERE o.run_id = p_run AND o.op_key = p_op AND o.status = 'waiting';
    END IF;
    RETURN QUERY SELECT o.status, o.result FROM ops o WHERE o.run_id = p_run AND o.op_key = p_op;
END
$$;

-- Register a wait_for_signal op and its waiter (timeout NULL: none).
CREATE FUNCTION wait_signal(p_run uuid, p_op text, p_step text, p_signal text,
                            p_timeout_ms bigint, p_wait_info bytea, p_started_ms bigint)
RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO ops (run_id, op_key, step_id, kind, status, attempts, wait_info, started_at)
    VALUES (p_run, p_op, p_step, 'signal', 'waiting', 1, p_wait_info,
            to_timestamp(p_started_ms / 1000.0))
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        INSERT INTO waiting_signals (signal, run_id, op_key, timeout_at)
        VALUES (p_signal, p_run, p_op,
                now() + p_timeout_ms * interval '1 millisecond');
    END IF;
END
$$;

-- Deliver a signal to the oldest run waiting on that name (whose timeout
-- has not passed): its op gets {data, signal} and the run is woken.
-- Returns the receiver, or NULL when nobody waits (the signal is dropped).
CREATE FUNCTION deliver_signal(p_signal text, p_data bytea) RETURNS uuid
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    v_run uuid;
    v_op text;
BEGIN
    SELECT w.run_id, w.op_key INTO v_run, v_op
      FROM waiting_signals w
     WHERE w.signal = p_signal AND (w.timeout_at IS NULL OR w.timeout_at > now())
     ORDER BY w.created_at, w.run_id
     LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF v_run IS NULL THEN
        RETURN NULL;
    END IF;
    DELETE FROM waiting_signals WHERE run_id = v_run AND op_key = v_op;
    UPDATE ops
       SET status = 'ok', ended_at = now(),
           result = '\x82'::bytea || mp_str('data') || coalesce(p_data, '\xc0'::bytea)
                    || mp_str('signal') || mp_str(p_signal)
     WHERE run_id = v_run AND op_key = v_op AND status = 'waiting';
    PERFORM wake(v_run);
    RETURN v_run;
END
$$;

-- send_signal as a step: deliver and record the result ({run_id} or nil)
-- in one transaction, so a replay never sends twice.
CREATE FUNCTION send_signal_step(p_run uuid, p_op text, p_step text, p_signal text,
                                 p_data bytea, p_started_ms bigint) RETURNS uuid
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    v_to uuid;
BEGIN
    PERFORM 1 FROM ops WHERE run_id = p_run AND op_key = p_op;
    IF FOUND THEN
        RETURN NULL; -- recorded already: never send twice
    END IF;
    v_to := deliver_signal(p_signal, p_data);
    INSERT INTO ops (run_id, op_key, step_id, kind, status, result, attempts, started_at)
    VALUES (p_run, p_op, p_step, 'send', 'ok',
            CASE WHEN v_to IS NULL THEN '\xc0'::bytea
                 ELSE '\x81'::bytea || mp_str('run_id') || mp_str(v_to::text) END,
            1, to_timestamp(p_started_ms / 1000.0));
    RETURN v_to;
END
$$;

-- invoke_workflow: record the waiting op, start the child run and register
-- the parent as its waiter.  An unknown workflow fails the op with
-- p_unknown_error at once (and wakes the parent).
CREATE FUNCTION invoke_child(p_run uuid, p_op text, p_step text, p_child uuid, p_workflow text,
                             p_data bytea, p_timeout_ms bigint, p_wait_info bytea,
                             p_started_ms bigint, p_unknown_error bytea) RETURNS boolean
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO ops (run_id, op_key, step_id, kind, status, attempts, wait_info, started_at)
    VALUES (p_run, p_op, p_step, 'invoke', 'waiting', 1, p_wait_info,
            to_timestamp(p_started_ms / 1000.0))
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN true;
    END IF;
    INSERT INTO runs (run_id, workflow_id, event_id, trigger_type, trigger_name, data,
                      parent_run_id, parent_op_key)
    SELECT p_child, workflow_id, gen_random_uuid(), 'invoke', workflow_id, p_data, p_run, p_op
      FROM workflows WHERE workflow_id = p_workflow;
    IF NOT FOUND THEN
        UPDATE ops SET status = 'error', result = p_unknown_error, ended_at = now()
         WHERE run_id = p_run AND op_key = p_op;
        PERFORM wake(p_run);
        RETURN false;
    END IF;
    INSERT INTO exec_queue (run_id, workflow_id) VALUES (p_child, p_workflow);
    INSERT INTO waiting_invokes (child_run_id, parent_run_id, parent_op_key, timeout_at)
    VALUES (p_child, p_run, p_op, now() + p_timeout_ms * interval '1 millisecond');
    RETURN true;
END
$$;


INSERT INTO schema_migrations (version, name) VALUES (1, '001_core');
