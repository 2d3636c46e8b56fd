-- 007_runs: manage runs (docs/sql-api.md, docs/cli.md).
--
--   list_runs(...)            newest first, keyset pagination with an opaque cursor
--   cancel_run(run, reason)   a run and its pending descendants end 'cancelled'
--   cancel_runs(...)          the same by filter, in batches, with a dry run count
--   retry_run(run)            a failed or cancelled run resumes; history kept
--   start_run_ext_msgpack     start with an idempotency key and/or a start time
--   start_run(..., key =>, start_at =>, delay =>)
--   prune_runs(older_than)    delete finished runs in one small batch
--   prune_batch(ms, n)        the same for the workers, behind an advisory lock
--   run_stats()               per workflow: queued, waiting, running, ended in the last hour
--
-- Objects are created unqualified (the migrator sets search_path); every
-- function pins it with SET search_path FROM CURRENT.
--
-- SQLSTATEs raised here: P0002 no such run; 55000 a run in the wrong state
-- for the operation (retry of a run that did not fail); 22023 an invalid
-- argument (cursor, status, key, limit); 22007 for a bad time (from the cast).

-- ---- runs: new status, new columns -------------------------------------------

-- NOT VALID: every existing row already passed the narrower check, and
-- validating would scan the whole table inside the migration.
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('pending', 'completed', 'failed', 'cancelled')) NOT VALID;

ALTER TABLE runs
    ADD COLUMN idempotency_key text,              -- start_run(..., key =>): one run per (workflow, key)
    ADD COLUMN cancel_reason text,                -- cancel_run(run, reason)
    ADD COLUMN retries int NOT NULL DEFAULT 0;    -- retry_run calls so far (run_retries rows)

-- Exactly-once starts: a second start with the same workflow and key finds
-- this entry.  Partial: starts without a key pay nothing.
CREATE UNIQUE INDEX runs_workflow_key ON runs (workflow_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- list_runs: newest first within a workflow (and across workflows, one
-- index range per registered workflow), keyset on (created_at, run_id).
CREATE INDEX runs_workflow_created ON runs (workflow_id, created_at, run_id);
-- list_runs --status failed|cancelled: rare rows, found without scanning
-- the successful ones (status is a key: failed ones without reading the
-- cancelled ones).  Entries are added only when a run fails or is cancelled.
CREATE INDEX runs_unsuccessful ON runs (workflow_id, status, created_at, run_id)
    WHERE status IN ('failed', 'cancelled');
-- Retention and stats read finished runs by end time; a pending run has no
-- entry (ended_at NULL), so a start adds nothing here.
CREATE INDEX runs_ended ON runs (ended_at) WHERE ended_at IS NOT NULL;
-- Children of a run (cancel, `stepkit run`); only child runs have an entry.
CREATE INDEX runs_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;

-- ---- history kept by retry_run ---------------------------------------------------

-- One row per retry: how the run had ended before it.
CREATE TABLE run_retries (
    run_id        uuid NOT NULL,
    retry         int NOT NULL,                -- 1 for the first retry
    status        text NOT NULL,               -- 'failed' or 'cancelled'
    error         bytea,                       -- msgpack error map the run had ended with
    cancel_reason text,
    ended_at      timestamptz,
    retried_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, retry)
);

-- The ops a retry cleared (failed steps, attempts of steps in retry, waits
-- that were dropped), as they were.
CREATE TABLE op_history (
    run_id     uuid NOT NULL,
    retry      int NOT NULL,
    op_key     text NOT NULL,
    step_id    text NOT NULL,
    kind       text NOT NULL,
    status     text NOT NULL,
    result     bytea,
    attempts   int NOT NULL,
    started_at timestamptz NOT NULL,
    ended_at   timestamptz NOT NULL,
    PRIMARY KEY (run_id, retry, op_key)
);

-- ---- starts: idempotency keys and delayed starts ----------------------------------

-- Start a run (as start_run_msgpack) with an optional idempotency key and
-- start time.  With a key, a run of this workflow started earlier with the
-- same key is returned instead (created false), also when the two starts
-- race: the second waits on the unique index until the first commits, then
-- returns its run.  p_at: the run is queued and becomes visible to workers
-- at that time (no worker is held meanwhile); NULL or past: at once.
CREATE FUNCTION start_run_ext_msgpack(p_workflow text, p_data bytea,
                                      p_notify_end boolean DEFAULT false,
                                      p_key text DEFAULT NULL, p_at timestamptz DEFAULT NULL)
RETURNS TABLE (run_id uuid, event_id uuid, created boolean)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
#variable_conflict use_column
DECLARE
    v_run uuid;
    v_event uuid;
BEGIN
    IF p_key IS NOT NULL AND (p_key = '' OR octet_length(p_key) > 255) THEN
        RAISE EXCEPTION 'an idempotency key must be 1..255 bytes' USING ERRCODE = '22023';
    END IF;
    IF p_key IS NULL THEN
        SELECT s.run_id, s.event_id INTO v_run, v_event
          FROM start_run_msgpack(p_workflow, p_data, p_notify_end) s;
        IF p_at IS NOT NULL THEN
            UPDATE exec_queue q SET visible_at = greatest(p_at, now())
             WHERE q.run_id = v_run AND q.op_key IS NULL;
        END IF;
        RETURN QUERY SELECT v_run, v_event, true;
        RETURN;
    END IF;
    SELECT r.run_id, r.event_id INTO v_run, v_event
      FROM runs r WHERE r.workflow_id = p_workflow AND r.idempotency_key = p_key;
    IF FOUND THEN
        RETURN QUERY SELECT v_run, v_event, false;
        RETURN;
    END IF;
    BEGIN
        SELECT s.run_id, s.event_id INTO v_run, v_event
          FROM start_run_msgpack(p_workflow, p_data, p_notify_end) s;
        UPDATE runs r SET idempotency_key = p_key WHERE r.run_id = v_run;
        IF p_at IS NOT NULL THEN
            UPDATE exec_queue q SET visible_at = greatest(p_at, now())
             WHERE q.run_id = v_run AND q.op_key IS NULL;
        END IF;
    EXCEPTION WHEN unique_violation THEN
        -- A concurrent start with this key committed first: its run wins
        -- (this statement's snapshot sees it under READ COMMITTED).
        SELECT r.run_id, r.event_id INTO v_run, v_event
          FROM runs r WHERE r.workflow_id = p_workflow AND r.idempotency_key = p_key;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'a concurrent start with idempotency key ''%'' is not visible to this transaction', p_key
                USING ERRCODE = '40001', HINT = 'Retry the transaction.';
        END IF;
        RETURN QUERY SELECT v_run, v_event, false;
        RETURN;
    END;
    RETURN QUERY SELECT v_run, v_event, true;
END
$$;

-- start_run gains named options: key => (idempotency), start_at => or
-- delay => (a delayed start).  Replaced, not overloaded: an overload with
-- more defaulted parameters would make start_run(w, i) ambiguous.
DROP FUNCTION start_run(text, jsonb);
CREATE FUNCTION start_run(p_workflow text, p_input jsonb DEFAULT 'null', key text DEFAULT NULL,
                          start_at timestamptz DEFAULT NULL, delay interval DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    v_run uuid;
BEGIN
    IF start_run.start_at IS NOT NULL AND start_run.delay IS NOT NULL THEN
        RAISE EXCEPTION 'give start_at or delay, not both' USING ERRCODE = '22023';
    END IF;
    SELECT s.run_id INTO v_run
      FROM start_run_ext_msgpack(p_workflow, mp_payload(p_input, 'input'), false, start_run.key,
                                 coalesce(start_run.start_at, now() + start_run.delay)) s;
    RETURN v_run;
END
$$;

-- ---- cancel ----------------------------------------------------------------------

-- The error a cancelled run ends with (and a parent waiting on it sees):
-- msgpack {name: "CancelledError", message, retryable: false}.
CREATE FUNCTION cancel_error(p_reason text) RETURNS bytea
LANGUAGE sql IMMUTABLE SET search_path FROM CURRENT AS $$
    SELECT '\x83'::bytea || mp_str('name') || mp_str('CancelledError')
           || mp_str('message')
           || mp_str('run cancelled' || coalesce(': ' || nullif(p_reason, ''), ''))
           || mp_str('retryable') || '\xc2'::bytea;
$$;

-- Cancel a run and its pending descendants in the caller's transaction.
-- Their queue items are deleted first (children before parents, the order
-- end_run locks a child's item then its parent's), so a worker holding one
-- fails its next fenced write with SK001: a step in flight may finish, but
-- its result is refused and nothing after it runs.  Waits are dropped; a
-- parent waiting on the run gets CancelledError at its invoke step; a
-- client waiting for the end is notified.  Returns the runs cancelled, 0
-- when the run had ended already (a no-op); P0002 when there is no such run.
CREATE FUNCTION cancel_run(p_run uuid, p_reason text DEFAULT NULL) RETURNS int
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    v_err bytea := cancel_error(p_reason);
    v_runs uuid[];
    v_n int;
    v_notify boolean;
    v_parent uuid;
    v_op text;
BEGIN
    IF p_reason IS NOT NULL AND length(p_reason) > 1000 THEN
        RAISE EXCEPTION 'a cancel reason must be at most 1000 characters' USING ERRCODE = '22023';
    END IF;
    PERFORM 1 FROM runs WHERE run_id = p_run;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no run %', p_run USING ERRCODE = 'P0002';
    END IF;
    FOR v_try IN 1..3 LOOP
        BEGIN
            WITH RECURSIVE t(run_id, depth) AS (
                SELECT r.run_id, 0 FROM runs r WHERE r.run_id = p_run AND r.status = 'pending'
                UNION ALL
                SELECT c.run_id, t.depth + 1
                  FROM t JOIN runs c ON c.parent_run_id = t.run_id AND c.status = 'pending'
                 WHERE t.depth < 64)
            SELECT array_agg(t.run_id ORDER BY t.depth DESC, t.run_id) INTO v_runs FROM t;
            IF v_runs IS NULL THEN
                RETURN 0;
            END IF;
            PERFORM 1 FROM exec_queue q
              JOIN unnest(v_runs) WITH ORDINALITY AS u(id, ord) ON q.run_id = u.id
             ORDER BY u.ord, q.item_id
               FOR UPDATE OF q;
            DELETE FROM exec_queue WHERE run_id = ANY (v_runs);
            WITH c AS (
                UPDATE runs SET status = 'cancelled', error = v_err, output = NULL,
                                cancel_reason = p_reason, ended_at = now()
                 WHERE run_id = ANY (v_runs) AND status = 'pending'
                RETURNING notify_end)
            SELECT count(*), bool_or(notify_end) INTO v_n, v_notify FROM c;
            IF v_n = 0 THEN
                RETURN 0; -- it ended while we waited for its item
            END IF;
            DELETE FROM waiting_signals WHERE run_id = ANY (v_runs);
            DELETE FROM waiting_invokes WHERE parent_run_id = ANY (v_runs);
            -- A parent waiting on the run: its queue row before its wait
            -- (the lock order of 008_lock_order's end_run).
            SELECT w.parent_run_id INTO v_parent FROM waiting_invokes w WHERE w.child_run_id = p_run;
            IF v_parent IS NOT NULL THEN
                PERFORM 1 FROM exec_queue q
                  WHERE q.run_id = v_parent AND q.op_key IS NULL FOR UPDATE;
                v_parent := NULL;
                DELETE FROM waiting_invokes WHERE child_run_id = p_run
                RETURNING parent_run_id, parent_op_key INTO v_parent, v_op;
            END IF;
            IF v_parent IS NOT NULL THEN
                UPDATE ops SET status = 'error', result = v_err, ended_at = now()
                 WHERE run_id = v_parent AND op_key = v_op AND status = 'waiting';
                PERFORM wake(v_parent);
            END IF;
            IF v_notify THEN
                PERFORM pg_notify(current_schema() || '.done', '');
            END IF;
            RETURN v_n;
        EXCEPTION WHEN deadlock_detected THEN
            -- A worker's fenced write locked the same rows in the other
            -- order (a wait timing out on this run): try again.
            IF v_try = 3 THEN
                RAISE;
            END IF;
        END;
    END LOOP;
    RETURN 0;
END
$$;

-- Unfinished runs by their queue item: 'queued' (ready, not claimed),
-- 'running' (a worker holds it), 'waiting' (asleep, waiting for a signal or
-- a child, a retry delay, a delayed start), NULL or 'pending': all.
CREATE FUNCTION check_state(p_state text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path FROM CURRENT AS $$
BEGIN
    IF p_state IS NOT NULL AND p_state NOT IN ('pending', 'queued', 'running', 'waiting') THEN
        RAISE EXCEPTION 'unknown state ''%'': pending, queued, running or waiting', p_state
            USING ERRCODE = '22023';
    END IF;
END
$$;

-- Cancel unfinished runs by filter (workflow NULL: every workflow; state as
-- check_state), at most p_limit of them (children come along and are
-- counted too), in the caller's transaction: call it again until it
-- returns 0 to cancel a large set in short transactions.  p_dry_run: count
-- the matching runs, cancel nothing.
CREATE FUNCTION cancel_runs(p_workflow text DEFAULT NULL, p_state text DEFAULT NULL,
                            p_reason text DEFAULT NULL, p_limit int DEFAULT 500,
                            p_dry_run boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    v_n bigint := 0;
    v_run uuid;
BEGIN
    PERFORM check_state(p_state);
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'limit must be at least 1' USING ERRCODE = '22023';
    END IF;
    IF p_dry_run THEN
        SELECT count(*) INTO v_n
          FROM exec_queue q
         WHERE q.op_key IS NULL
           AND (p_workflow IS NULL OR q.workflow_id = p_workflow)
           AND (p_state IS NULL OR p_state = 'pending'
                OR (p_state = 'running' AND q.leased)
                OR (p_state = 'queued' AND NOT q.leased AND q.visible_at <= now())
                OR (p_state = 'waiting' AND NOT q.leased AND q.visible_at > now()));
        RETURN v_n;
    END IF;
    FOR v_run IN
        SELECT q.run_id FROM exec_queue q
         WHERE q.op_key IS NULL
           AND (p_workflow IS NULL OR q.workflow_id = p_workflow)
           AND (p_state IS NULL OR p_state = 'pending'
                OR (p_state = 'running' AND q.leased)
                OR (p_state = 'queued' AND NOT q.leased AND q.visible_at <= now())
                OR (p_state = 'waiting' AND NOT q.leased AND q.visible_at > now()))
         ORDER BY q.item_id
         LIMIT p_limit
    LOOP
        v_n := v_n + cancel_run(v_run, p_reason);
    END LOOP;
    RETURN v_n;
END
$$;

-- ---- retry -------------------------------------------------------------------------

-- Resume a failed or cancelled run from where it stopped, in the caller's
-- transaction.  Successful ops stay and are never run again; ops that did
-- not succeed (a final error, the attempts of a step in retry, a signal or
-- child wait that was dropped, a group member not yet run) move to
-- op_history and run again, each with a fresh attempt budget, as does the
-- handler.  A sleep keeps its original wake-up time.  The earlier end
-- (status, error, cancel reason) goes to run_retries.  Returns the retry
-- number; 55000 when the run is pending or completed; P0002 when unknown.
CREATE FUNCTION retry_run(p_run uuid) RETURNS int
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    r runs%ROWTYPE;
    v_retry int;
BEGIN
    SELECT * INTO r FROM runs WHERE run_id = p_run FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no run %', p_run USING ERRCODE = 'P0002';
    END IF;
    IF r.status NOT IN ('failed', 'cancelled') THEN
        RAISE EXCEPTION 'run % is %: only a failed or cancelled run can be retried', p_run,
            CASE WHEN r.status = 'pending' THEN 'still running' ELSE r.status END
            USING ERRCODE = '55000';
    END IF;
    v_retry := r.retries + 1;
    INSERT INTO run_retries (run_id, retry, status, error, cancel_reason, ended_at)
    VALUES (p_run, v_retry, r.status, r.error, r.cancel_reason, r.ended_at);
    WITH moved AS (
        DELETE FROM ops o
         WHERE o.run_id = p_run
           AND (o.status IN ('error', 'retry') OR (o.status = 'waiting' AND o.kind <> 'sleep'))
        RETURNING o.*)
    INSERT INTO op_history (run_id, retry, op_key, step_id, kind, status, result, attempts,
                            started_at, ended_at)
    SELECT m.run_id, v_retry, m.op_key, m.step_id, m.kind, m.status, m.result, m.attempts,
           m.started_at, m.ended_at
      FROM moved m;
    UPDATE runs SET status = 'pending', output = NULL, error = NULL, cancel_reason = NULL,
                    ended_at = NULL, attempt = 0, attempt_ops = 0, retries = v_retry
     WHERE run_id = p_run;
    INSERT INTO exec_queue (run_id, workflow_id) VALUES (p_run, r.workflow_id);
    RETURN v_retry;
END
$$;

-- ---- list --------------------------------------------------------------------------

-- The state of a run as `stepkit run` shows it: the stored status once it
-- ended, else from its queue item.
CREATE FUNCTION run_state(p_run uuid, p_status text) RETURNS text
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT CASE WHEN p_status <> 'pending' THEN p_status
                WHEN q.leased THEN 'running'
                WHEN q.visible_at <= now() THEN 'queued'
                WHEN EXISTS (SELECT 1 FROM ops o WHERE o.run_id = p_run AND o.status = 'retry')
                    THEN 'retrying'
                WHEN EXISTS (SELECT 1 FROM ops o WHERE o.run_id = p_run AND o.status = 'waiting')
                    THEN 'waiting'
                WHEN q.run_id IS NOT NULL THEN 'scheduled'
                ELSE 'pending' END
      FROM (SELECT 1) one
      LEFT JOIN exec_queue q ON q.run_id = p_run AND coalesce(q.op_key, '') = '';
$$;

-- List runs newest first (created_at, then run_id, descending).  Filters
-- are optional: workflow, status (pending, completed, failed, cancelled),
-- created since (inclusive) / until (exclusive).  p_after: the cursor of
-- the last row of the previous page (opaque); the next page starts after
-- it, so rows inserted meanwhile neither repeat nor shift the pages.  Each
-- workflow's rows come from one index range (runs_workflow_created, or
-- runs_unsuccessful for failed and cancelled), so a page costs about
-- p_limit index entries per registered workflow, however many runs exist;
-- pending runs come from the queue, which holds one replay item for each.
-- No JIT: its compile time (tens of ms) would dwarf a page's cost, which
-- the planner overestimates (it costs a sort of rows the LIMITs never make).
CREATE FUNCTION list_runs(p_workflow text DEFAULT NULL, p_status text DEFAULT NULL,
                          p_since timestamptz DEFAULT NULL, p_until timestamptz DEFAULT NULL,
                          p_limit int DEFAULT 50, p_after text DEFAULT NULL)
RETURNS TABLE (run_id uuid, workflow_id text, status text, state text, trigger_type text,
               trigger_name text, created_at timestamptz, ended_at timestamptz,
               parent_run_id uuid, retries int, idempotency_key text, cancel_reason text,
               cursor text)
LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET jit = off AS $$
DECLARE
    v_at timestamptz;
    v_id uuid;
    v_cond text := '';
    v_inner text;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
        RAISE EXCEPTION 'limit must be 1..10000 (got %)', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    IF p_status IS NOT NULL AND p_status NOT IN ('pending', 'completed', 'failed', 'cancelled') THEN
        RAISE EXCEPTION 'unknown status ''%'': pending, completed, failed or cancelled', p_status
            USING ERRCODE = '22023';
    END IF;
    IF p_after IS NOT NULL THEN
        IF p_after !~ '^[0-9a-f]{48}$' THEN
            RAISE EXCEPTION 'invalid cursor ''%'': pass the cursor of a row as it was returned',
                left(p_after, 60) USING ERRCODE = '22023';
        END IF;
        v_at := 'epoch'::timestamptz
                + ('x' || substr(p_after, 1, 16))::bit(64)::bigint * interval '1 microsecond';
        v_id := substr(p_after, 17)::uuid;
        v_cond := v_cond || ' AND (r.created_at, r.run_id) < ($5, $6)';
    END IF;
    -- The status is spelled out (not a parameter) so the planner can match
    -- the partial index runs_unsuccessful.
    IF p_status IS NOT NULL THEN
        v_cond := v_cond || format(' AND r.status = %L', p_status);
    END IF;
    IF p_since IS NOT NULL THEN
        v_cond := v_cond || ' AND r.created_at >= $3';
    END IF;
    IF p_until IS NOT NULL THEN
        v_cond := v_cond || ' AND r.created_at < $4';
    END IF;
    v_inner := 'SELECT r.run_id, r.workflow_id, r.status, r.trigger_type, r.trigger_name,'
            || ' r.created_at, r.ended_at, r.parent_run_id, r.retries, r.idempotency_key,'
            || ' r.cancel_reason FROM runs r WHERE r.workflow_id = %s' || v_cond
            || ' ORDER BY r.created_at DESC, r.run_id DESC LIMIT $2';
    IF p_status = 'pending' THEN
        -- Every unfinished run has its replay item in the (small) queue:
        -- start there instead of reading past the ended runs.
        RETURN QUERY EXECUTE
            'SELECT x.run_id, x.workflow_id, x.status, CASE WHEN x.status = ''pending'' THEN run_state(x.run_id, x.status) ELSE x.status END,'
            || ' x.trigger_type, x.trigger_name, x.created_at, x.ended_at, x.parent_run_id,'
            || ' x.retries, x.idempotency_key, x.cancel_reason,'
            || ' lpad(to_hex(((extract(epoch FROM x.created_at) * 1000000)::numeric)::bigint), 16, ''0'')'
            || '   || replace(x.run_id::text, ''-'', '''')'
            || ' FROM (SELECT r.* FROM exec_queue q JOIN runs r ON r.run_id = q.run_id'
            || '        WHERE coalesce(q.op_key, '''') = '''''
            || CASE WHEN p_workflow IS NOT NULL THEN ' AND q.workflow_id = $1' ELSE '' END
            || v_cond || ') x'
            || ' ORDER BY x.created_at DESC, x.run_id DESC LIMIT $2'
            USING p_workflow, p_limit, p_since, p_until, v_at, v_id;
        RETURN;
    END IF;
    RETURN QUERY EXECUTE
        'SELECT x.run_id, x.workflow_id, x.status, CASE WHEN x.status = ''pending'' THEN run_state(x.run_id, x.status) ELSE x.status END,'
        || ' x.trigger_type, x.trigger_name, x.created_at, x.ended_at, x.parent_run_id,'
        || ' x.retries, x.idempotency_key, x.cancel_reason,'
        || ' lpad(to_hex(((extract(epoch FROM x.created_at) * 1000000)::numeric)::bigint), 16, ''0'')'
        || '   || replace(x.run_id::text, ''-'', '''')'
        || CASE WHEN p_workflow IS NOT NULL
                THEN ' FROM (' || format(v_inner, '$1') || ') x'
                ELSE ' FROM workflows w CROSS JOIN LATERAL ('
                     || format(v_inner, 'w.workflow_id') || ') x' END
        || ' ORDER BY x.created_at DESC, x.run_id DESC LIMIT $2'
        USING p_workflow, p_limit, p_since, p_until, v_at, v_id;
END
$$;

-- ---- retention -----------------------------------------------------------------------

-- Delete up to p_batch runs that ended more than p_older_than ago, with
-- their ops and retry history, in the caller's (short) transaction; returns
-- how many.  Never pruned: a run a parent still waits on (a waiting_invokes
-- row, or a parent still pending); runs another transaction holds are
-- skipped, not waited for.  The event ids and idempotency keys of pruned
-- runs are forgotten with them (docs/sql-api.md, "Retention").
CREATE FUNCTION prune_runs(p_older_than interval, p_batch int DEFAULT 500) RETURNS int
LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off AS $$
DECLARE
    v_ids uuid[];
BEGIN
    IF p_older_than IS NULL OR p_older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must be a positive interval' USING ERRCODE = '22023';
    END IF;
    IF p_batch IS NULL OR p_batch < 1 OR p_batch > 100000 THEN
        RAISE EXCEPTION 'batch must be 1..100000' USING ERRCODE = '22023';
    END IF;
    SELECT array_agg(v.run_id) INTO v_ids
      FROM (SELECT r.run_id FROM runs r
             WHERE r.ended_at IS NOT NULL AND r.ended_at < now() - p_older_than
               AND NOT EXISTS (SELECT 1 FROM waiting_invokes w WHERE w.child_run_id = r.run_id)
               AND (r.parent_run_id IS NULL
                    OR NOT EXISTS (SELECT 1 FROM runs p
                                    WHERE p.run_id = r.parent_run_id AND p.status = 'pending'))
             ORDER BY r.ended_at
             LIMIT p_batch
               FOR UPDATE OF r SKIP LOCKED) v;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM ops WHERE run_id = ANY (v_ids);
    DELETE FROM op_history WHERE run_id = ANY (v_ids);
    DELETE FROM run_retries WHERE run_id = ANY (v_ids);
    DELETE FROM runs WHERE run_id = ANY (v_ids);
    RETURN cardinality(v_ids);
END
$$;

-- The workers' retention pass: one batch, by whichever worker takes the
-- schema's prune lock (-1: another transaction holds it; no leader).
CREATE FUNCTION prune_batch(p_older_than_ms bigint, p_batch int) RETURNS int
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('stepkit.prune.' || current_schema())) THEN
        RETURN -1;
    END IF;
    RETURN prune_runs(p_older_than_ms * interval '1 millisecond', p_batch);
END
$$;

-- ---- stats ---------------------------------------------------------------------------

-- Per registered workflow: unfinished runs by state (queued: ready and not
-- claimed; running: a worker holds it; waiting: asleep, waiting on a
-- signal or child, a retry delay or a delayed start), runs that ended in
-- the last hour by status, ready items (runs and group members) and the age
-- of the oldest one in milliseconds (NULL: none).  The queue is small and
-- read whole; the ended runs come from runs_ended.
CREATE FUNCTION run_stats()
RETURNS TABLE (workflow_id text, queued bigint, running bigint, waiting bigint,
               completed_1h bigint, failed_1h bigint, cancelled_1h bigint,
               ready_items bigint, oldest_ready_ms bigint)
LANGUAGE sql STABLE SET search_path FROM CURRENT SET jit = off AS $$
    WITH q AS (
        SELECT e.workflow_id,
               count(*) FILTER (WHERE e.op_key IS NULL AND NOT e.leased AND e.visible_at <= now()) AS queued,
               count(*) FILTER (WHERE e.op_key IS NULL AND e.leased) AS running,
               count(*) FILTER (WHERE e.op_key IS NULL AND NOT e.leased AND e.visible_at > now()) AS waiting,
               count(*) FILTER (WHERE NOT e.leased AND e.visible_at <= now()) AS ready,
               min(e.visible_at) FILTER (WHERE NOT e.leased AND e.visible_at <= now()) AS oldest
          FROM exec_queue e GROUP BY e.workflow_id),
    h AS (
        SELECT r.workflow_id,
               count(*) FILTER (WHERE r.status = 'completed') AS completed,
               count(*) FILTER (WHERE r.status = 'failed') AS failed,
               count(*) FILTER (WHERE r.status = 'cancelled') AS cancelled
          FROM runs r
         WHERE r.ended_at IS NOT NULL AND r.ended_at > now() - interval '1 hour'
         GROUP BY r.workflow_id)
    SELECT w.workflow_id, coalesce(q.queued, 0), coalesce(q.running, 0), coalesce(q.waiting, 0),
           coalesce(h.completed, 0), coalesce(h.failed, 0), coalesce(h.cancelled, 0),
           coalesce(q.ready, 0),
           (extract(epoch FROM now() - q.oldest) * 1000)::bigint
      FROM workflows w
      LEFT JOIN q ON q.workflow_id = w.workflow_id
      LEFT JOIN h ON h.workflow_id = w.workflow_id
     ORDER BY w.workflow_id;
$$;


INSERT INTO schema_migrations (version, name) VALUES (7, '007_runs');
