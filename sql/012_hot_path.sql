-- 012_hot_path: the per-step path costs what it did before 006-011.
--
-- A function with SET clauses switches those settings on every call and
-- back on return; measured on the claim, each call paid about 0.1 ms for
-- enable_seqscan and jit, more than the claim's own statements.  Workers'
-- sessions already run with both off (worker/sk_wconn.c), so the functions
-- only workers call drop them: their plans stay on the indexes as before.
-- Functions that clients call too keep theirs.
ALTER FUNCTION claim(int, text, text[]) RESET enable_seqscan;
ALTER FUNCTION claim(int, text, text[]) RESET jit;
ALTER FUNCTION end_run(bigint, int, uuid, text, bytea, bytea, bytea, text) RESET enable_seqscan;
ALTER FUNCTION end_run(bigint, int, uuid, text, bytea, bytea, bytea, text) RESET jit;
ALTER FUNCTION fence(bigint, int, bigint, boolean, int) RESET enable_seqscan;
ALTER FUNCTION fence(bigint, int, bigint, boolean, int) RESET jit;

-- ---- ids without a SQL function call per id ---------------------------------
--
-- uuid7() ran through the SQL-function executor at every call (its body
-- reads the clock in a FROM clause, which keeps it from being inlined):
-- about 30 us an id.  uuid7_at(microseconds) is one expression, so the
-- planner inlines it where the caller passes a plain value; uuid7() keeps
-- its meaning for callers who want one id.
CREATE OR REPLACE FUNCTION uuid7_at(p_us bigint) RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(substring(int8send(p_us / 1000) FROM 3 FOR 6)
                  || int2send((28672 + (p_us % 1000) * 4096 / 1000)::int2)
                  || substring(uuid_send(gen_random_uuid()) FROM 9 FOR 8), 'hex')::uuid
$$;

-- The start of a run, as 009_operations, with both ids from one clock
-- reading and the registration checked by the insert's own lookup.
CREATE OR REPLACE FUNCTION start_run_msgpack(p_workflow text, p_data bytea,
                                  p_notify_end boolean DEFAULT false,
                                  p_require_registered boolean DEFAULT false)
RETURNS TABLE (run_id uuid, event_id uuid, registered boolean)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
#variable_conflict use_column
DECLARE
    v_us bigint := (extract(epoch FROM clock_timestamp()) * 1000000)::int8;
    v_run uuid := uuid7_at(v_us);
    v_event uuid := uuid7_at(v_us);
    v_registered boolean;
BEGIN
    PERFORM check_name('a workflow', p_workflow);
    PERFORM FROM workflows w WHERE w.workflow_id = p_workflow;
    v_registered := FOUND;
    IF NOT v_registered AND coalesce(p_require_registered, false) THEN
        RAISE EXCEPTION 'unknown workflow ''%'': no master has registered it in schema "%"',
            p_workflow, current_schema()
            USING ERRCODE = 'SK002',
                  HINT = 'Start stepkit-master with the library that defines it, or start '
                         'the run without requiring a registered workflow: it then waits.';
    END IF;
    INSERT INTO runs (run_id, workflow_id, event_id, trigger_type, trigger_name, data,
                      notify_end)
    VALUES (v_run, p_workflow, v_event, 'invoke', p_workflow, coalesce(p_data, '\xc0'::bytea),
            coalesce(p_notify_end, false));
    INSERT INTO exec_queue (run_id, workflow_id) VALUES (v_run, p_workflow);
    RETURN QUERY SELECT v_run, v_event, v_registered;
END
$$;

-- Additive: every function keeps its signature and meaning.
INSERT INTO schema_migrations (version, name, compat_floor) VALUES (12, '012_hot_path', 8);
