-- 004_reliability: a dead worker's item is handed back at once.
--
-- The master sees a worker die (it reaps it); the next worker forked into
-- the same slot reads from shared memory what the dead one held (item,
-- epoch, op in flight) and how it died, and calls reclaim_item() once
-- connected, before its first claim.  docs/architecture.md ("Crashes").

-- An error map {name, message, retryable} in msgpack, as sk_error_pack_simple
-- writes it.
CREATE FUNCTION mp_error(p_name text, p_message text, p_retryable boolean) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT SET search_path FROM CURRENT AS $$
    SELECT '\x83'::bytea || mp_str('name') || mp_str(p_name) || mp_str('message')
           || mp_str(p_message) || mp_str('retryable')
           || CASE WHEN p_retryable THEN '\xc3'::bytea ELSE '\xc2'::bytea END;
$$;

-- Hand back item p_item that a dead worker leased at epoch p_epoch, and
-- count the death as a failed attempt:
--   p_op given (a body was running): of that op: a 'retry' row with
--     attempts + 1 and the error p_name / p_why, or at max_attempts a final,
--     non-retryable error (the handler sees it at the step, the run fails
--     unless it catches it);  nothing when the op's result was committed;
--   p_op NULL and p_count: of the handler (runs.attempt, the same budget a
--     failing handler uses); at max_attempts the run fails with the error;
--   p_op NULL and not p_count: nothing is counted (killed from outside
--     while no user code ran).
-- The epoch moves on (a late write of the dead worker fails its fence) and
-- the item is visible at once.  Idempotent: once done, or when the lease
-- was taken over meanwhile, the epoch no longer matches and it returns
-- 'gone'.  Else 'released', 'retry', 'op_failed' or 'run_failed'.
CREATE FUNCTION reclaim_item(p_item bigint, p_epoch int, p_op text, p_step text, p_name text,
                             p_why text, p_count boolean, p_channel text) RETURNS text
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    v_run uuid;
    v_wf text;
    v_max int;
    v_status text;
    v_attempts int;
    v_final int;
    v_att int;
    v_att_ops int;
    v_err bytea;
BEGIN
    UPDATE exec_queue
       SET epoch = epoch + 1, leased = false, visible_at = now(), takeovers = 0,
           claimed_by = NULL
     WHERE item_id = p_item AND epoch = p_epoch AND leased
    RETURNING run_id, workflow_id INTO v_run, v_wf;
    IF v_run IS NULL THEN
        RETURN 'gone';
    END IF;
    SELECT max_attempts INTO v_max FROM workflows WHERE workflow_id = v_wf;
    v_max := coalesce(v_max, 4);
    PERFORM pg_notify(current_schema() || '.work', '');

    IF p_op IS NOT NULL THEN
        SELECT o.status, o.attempts INTO v_status, v_attempts
          FROM ops o WHERE o.run_id = v_run AND o.op_key = p_op;
        IF v_status IN ('ok', 'error') THEN
            RETURN 'released'; -- committed before the death
        END IF;
        v_attempts := CASE WHEN v_status = 'retry' THEN v_attempts ELSE 0 END + 1;
        IF v_attempts >= v_max THEN
            v_err := mp_error(p_name, format('%s (attempt %s of %s)', p_why, v_attempts, v_max),
                              false);
            v_status := 'error';
        ELSE
            v_err := mp_error(p_name, format('%s (attempt %s of %s)', p_why, v_attempts, v_max),
                              true);
            v_status := 'retry';
        END IF;
        INSERT INTO ops (run_id, op_key, step_id, kind, status, result, attempts)
        VALUES (v_run, p_op, p_step, 'run', v_status, v_err, v_attempts)
        ON CONFLICT (run_id, op_key) DO UPDATE
           SET status = EXCLUDED.status, result = EXCLUDED.result, attempts = EXCLUDED.attempts,
               ended_at = now()
         WHERE ops.status IN ('retry', 'waiting');
        RETURN CASE WHEN v_status = 'error' THEN 'op_failed' ELSE 'retry' END;
    END IF;

    IF NOT p_count THEN
        RETURN 'released';
    END IF;
    SELECT r.attempt, r.attempt_ops INTO v_att, v_att_ops
      FROM runs r WHERE r.run_id = v_run AND r.status = 'pending';
    IF NOT FOUND THEN
        RETURN 'released';
    END IF;
    SELECT count(*) INTO v_final FROM ops o
     WHERE o.run_id = v_run AND o.status IN ('ok', 'error');
    -- The handler's budget is per op, as in the worker (handler_failed).
    v_att := CASE WHEN v_att_ops = v_final THEN v_att + 1 ELSE 1 END;
    IF v_att >= v_max THEN
        v_err := mp_error(p_name, format('%s (attempt %s of %s)', p_why, v_att, v_max), false);
        PERFORM end_run(p_item, p_epoch + 1, v_run, 'failed', NULL, v_err, v_err, p_channel);
        RETURN 'run_failed';
    END IF;
    UPDATE runs SET attempt = v_att, attempt_ops = v_final WHERE run_id = v_run;
    RETURN 'released';
END
$$;

INSERT INTO schema_migrations (version, name) VALUES (4, '004_reliability');
