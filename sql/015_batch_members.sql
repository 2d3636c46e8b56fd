-- 015_batch_members: a batch takes at most one group member's item, as its
-- last.  A group's members are dispatched as items of their own so that
-- other workers run their bodies side by side; a batching worker that took
-- several of them would run those bodies one after another in its rounds
-- (docs/performance.md, section 8).  Replaces claim_batch; nothing else
-- changes.

CREATE OR REPLACE FUNCTION claim_batch(p_lease_ms int, p_worker text, p_workflows text[],
                                       p_max int)
RETURNS TABLE (next_ms bigint, item_id bigint, epoch int, run_id text, item_op text,
               workflow_id text, event_id text, trigger_type text, trigger_name text,
               data bytea, status text, attempt int, attempt_ops int, created_ms bigint,
               op_key text, step_id text, op_status text, result bytea, attempts int,
               kind text, wait_info bytea, wake_seq int, takeovers int)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    r record;
    v_n int := 0;
    v_got boolean;
    v_more boolean;
    v_member boolean := false;
BEGIN
    LOOP
        v_got := false;
        v_more := false;
        FOR r IN SELECT * FROM claim(p_lease_ms, p_worker, p_workflows) LOOP
            EXIT WHEN r.item_id IS NULL AND v_n > 0; -- the empty row after items
            v_got := r.item_id IS NOT NULL;
            v_more := r.next_ms IS NOT DISTINCT FROM 0::bigint;
            v_member := v_member OR r.item_op IS NOT NULL;
            next_ms := r.next_ms; item_id := r.item_id; epoch := r.epoch;
            run_id := r.run_id; item_op := r.item_op; workflow_id := r.workflow_id;
            event_id := r.event_id; trigger_type := r.trigger_type;
            trigger_name := r.trigger_name; data := r.data; status := r.status;
            attempt := r.attempt; attempt_ops := r.attempt_ops; created_ms := r.created_ms;
            op_key := r.op_key; step_id := r.step_id; op_status := r.op_status;
            result := r.result; attempts := r.attempts; kind := r.kind;
            wait_info := r.wait_info; wake_seq := r.wake_seq; takeovers := r.takeovers;
            RETURN NEXT;
        END LOOP;
        v_n := v_n + 1;
        EXIT WHEN NOT v_got OR NOT v_more OR v_n >= p_max OR v_member;
    END LOOP;
END
$$;

-- Additive for binaries of schema 8 and later (009's compat rule): the
-- function keeps its signature and rows.
INSERT INTO schema_migrations (version, name, compat_floor) VALUES (15, '015_batch_members', 8);
