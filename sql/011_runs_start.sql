-- 011_runs_start: starts with an idempotency key or a start time
-- (docs/sql-api.md, docs/cli.md), on top of 009_operations' start_run and
-- start_run_msgpack (a workflow nobody registered is accepted unless
-- p_require_registered).
--
--   start_run_ext_msgpack(workflow, data, notify_end, key, at, require_registered)
--   start_run(workflow, input, require_registered, key =>, start_at =>, delay =>)
--
-- Written to apply again cleanly (IF EXISTS, OR REPLACE), as 009.

-- Start a run (as start_run_msgpack) with an optional idempotency key and
-- start time.  With a key, a run of this workflow started earlier with the
-- same key is returned instead (created false), also when the two starts
-- race: the second waits on the unique index runs_workflow_key until the
-- first commits, then returns its run.  p_at: the run is queued and
-- becomes visible to workers at that time (no worker is held meanwhile);
-- NULL or past: at once.
CREATE OR REPLACE FUNCTION start_run_ext_msgpack(p_workflow text, p_data bytea,
                                      p_notify_end boolean DEFAULT false,
                                      p_key text DEFAULT NULL, p_at timestamptz DEFAULT NULL,
                                      p_require_registered boolean DEFAULT false)
RETURNS TABLE (run_id uuid, event_id uuid, created boolean, registered boolean)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
#variable_conflict use_column
DECLARE
    v_run uuid;
    v_event uuid;
    v_reg boolean;
BEGIN
    IF p_key IS NOT NULL AND (p_key = '' OR octet_length(p_key) > 255) THEN
        RAISE EXCEPTION 'an idempotency key must be 1..255 bytes' USING ERRCODE = '22023';
    END IF;
    IF p_key IS NOT NULL THEN
        SELECT r.run_id, r.event_id INTO v_run, v_event
          FROM runs r WHERE r.workflow_id = p_workflow AND r.idempotency_key = p_key;
        IF FOUND THEN
            RETURN QUERY SELECT v_run, v_event, false,
                                EXISTS (SELECT 1 FROM workflows w WHERE w.workflow_id = p_workflow);
            RETURN;
        END IF;
    END IF;
    BEGIN
        SELECT s.run_id, s.event_id, s.registered INTO v_run, v_event, v_reg
          FROM start_run_msgpack(p_workflow, p_data, p_notify_end, p_require_registered) s;
        IF p_key IS NOT NULL THEN
            UPDATE runs r SET idempotency_key = p_key WHERE r.run_id = v_run;
        END IF;
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
        RETURN QUERY SELECT v_run, v_event, false,
                            EXISTS (SELECT 1 FROM workflows w WHERE w.workflow_id = p_workflow);
        RETURN;
    END;
    RETURN QUERY SELECT v_run, v_event, true, v_reg;
END
$$;

-- start_run gains named options: key => (idempotency), start_at => or
-- delay => (a delayed start).  Replaced, not overloaded: an overload with
-- more defaulted parameters would make start_run(w, i) ambiguous.
DROP FUNCTION IF EXISTS start_run(text, jsonb, boolean);
CREATE OR REPLACE FUNCTION start_run(p_workflow text, p_input jsonb DEFAULT 'null',
                          p_require_registered boolean DEFAULT false, key text DEFAULT NULL,
                          start_at timestamptz DEFAULT NULL, delay interval DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    v_run uuid;
BEGIN
    IF start_run.start_at IS NOT NULL AND start_run.delay IS NOT NULL THEN
        RAISE EXCEPTION 'give start_at or delay, not both' USING ERRCODE = '22023';
    END IF;
    IF start_run.key IS NULL AND start_run.start_at IS NULL AND start_run.delay IS NULL THEN
        SELECT s.run_id INTO v_run
          FROM start_run_msgpack(p_workflow, mp_payload(p_input, 'input'), false,
                                 p_require_registered) s;
        RETURN v_run;
    END IF;
    SELECT s.run_id INTO v_run
      FROM start_run_ext_msgpack(p_workflow, mp_payload(p_input, 'input'), false, start_run.key,
                                 coalesce(start_run.start_at, now() + start_run.delay),
                                 p_require_registered) s;
    RETURN v_run;
END
$$;


-- Additive for binaries of schema version 8 and later: they call
-- start_run_msgpack (unchanged), and start_run keeps its earlier calls.
INSERT INTO schema_migrations (version, name, compat_floor) VALUES (11, '011_runs_start', 8);
