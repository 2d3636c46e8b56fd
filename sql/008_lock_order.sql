-- 008_lock_order: one lock order for the run's queue item and its waits.
--
-- A worker that holds a run writes fence() first (the run's exec_queue
-- row), then the run's waits (waiting_signals, waiting_invokes): that is
-- what resolve_timeout and end_run do.  A signal sent from outside, and a
-- child run ending, used to take the wait first and the run's queue row
-- last (in wake()), so a send racing a timeout could deadlock.  Both now
-- lock the waiting run's queue row before its wait; the wait is re-checked
-- once that lock is held.  Both keep 006_perf's enable_seqscan = off.

-- Wake the oldest live waiter of p_signal (see 001_core).
CREATE OR REPLACE FUNCTION deliver_signal(p_signal text, p_data bytea) RETURNS uuid
LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE
    w record;
BEGIN
    FOR w IN SELECT s.run_id, s.op_key
               FROM waiting_signals s
              WHERE s.signal = p_signal AND (s.timeout_at IS NULL OR s.timeout_at > now())
              ORDER BY s.created_at, s.run_id
    LOOP
        PERFORM 1 FROM exec_queue q
          WHERE q.run_id = w.run_id AND q.op_key IS NULL FOR UPDATE;
        -- Still there once the run's row is ours?  (A timeout, another
        -- send or the run's end may have taken it meanwhile.)
        DELETE FROM waiting_signals s
         WHERE s.run_id = w.run_id AND s.op_key = w.op_key
           AND (s.timeout_at IS NULL OR s.timeout_at > now());
        IF FOUND THEN
            UPDATE ops
               SET status = 'ok', ended_at = now(),
                   result = '\x82'::bytea || mp_str('data') || coalesce(p_data, '\xc0'::bytea)
                            || mp_str('signal') || mp_str(p_signal)
             WHERE run_id = w.run_id AND op_key = w.op_key AND status = 'waiting';
            PERFORM wake(w.run_id);
            RETURN w.run_id;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- End a run once (see 001_core); a parent waiting on it has its queue row
-- locked before its wait is taken.
CREATE OR REPLACE FUNCTION end_run(p_item bigint, p_epoch int, p_run uuid, p_status text,
                                   p_output bytea, p_error bytea, p_parent_error bytea,
                                   p_channel text) RETURNS boolean
LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
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
    SELECT parent_run_id INTO v_parent FROM waiting_invokes WHERE child_run_id = p_run;
    IF v_parent IS NOT NULL THEN
        PERFORM 1 FROM exec_queue q
          WHERE q.run_id = v_parent AND q.op_key IS NULL FOR UPDATE;
        v_parent := NULL;
        DELETE FROM waiting_invokes WHERE child_run_id = p_run
        RETURNING parent_run_id, parent_op_key INTO v_parent, v_op;
    END IF;
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

INSERT INTO schema_migrations (version, name) VALUES (8, '008_lock_order');
