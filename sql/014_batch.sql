-- 014_batch: a worker claims several ready items at once and commits the
-- steps it ran for them in one transaction (docs/performance.md, section
-- 8).  Additive: two new functions; nothing existing changes.

-- Claim up to p_max items in one statement: claim() again while the last
-- one said another item is ready (its next_ms 0), so a worker takes what
-- is ready now and never waits to fill a batch.  The items it took are
-- leased (visible_at in the future) and locked by this transaction, so
-- each further claim() finds the next one.  Rows as claim()'s, one item's
-- rows after another; with nothing claimed, claim()'s single empty row.
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
BEGIN
    LOOP
        v_got := false;
        v_more := false;
        FOR r IN SELECT * FROM claim(p_lease_ms, p_worker, p_workflows) LOOP
            EXIT WHEN r.item_id IS NULL AND v_n > 0; -- the empty row after items
            v_got := r.item_id IS NOT NULL;
            v_more := r.next_ms IS NOT DISTINCT FROM 0::bigint;
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
        EXIT WHEN NOT v_got OR NOT v_more OR v_n >= p_max;
    END LOOP;
END
$$;

-- The fence of a batch's transaction, its first statement: lock the
-- items' queue rows in item order (one lock order for every batch, so two
-- batches cannot deadlock on each other's items) and check their epochs.
-- When any item's epoch moved on (its lease was taken over, or the item is
-- gone), nothing is changed and SK001 is raised with the lost items in
-- DETAIL: the worker leaves them out and sends the rest again.  Once this
-- statement passed, no other transaction can move these epochs before the
-- commit, so the items' own fenced statements after it cannot fail with
-- SK001 and one lost lease never rolls back the others' writes.
--
-- A lease with less than half of p_lease_ms left is extended to now +
-- p_lease_ms.  Not every lease every time: visible_at is indexed, so each
-- extension is an update with an entry in every index of the queue, where
-- the lock alone is one small WAL record; a claim leased the item for the
-- whole p_lease_ms a few milliseconds ago.
CREATE OR REPLACE FUNCTION batch_fence(p_items bigint[], p_epochs int[], p_lease_ms int)
RETURNS int
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    v_lost bigint[];
    v_n int;
BEGIN
    PERFORM 1 FROM exec_queue q WHERE q.item_id = ANY (p_items) ORDER BY q.item_id FOR UPDATE;
    SELECT array_agg(u.i ORDER BY u.i) INTO v_lost
      FROM unnest(p_items, p_epochs) AS u(i, e)
     WHERE NOT EXISTS (SELECT 1 FROM exec_queue q WHERE q.item_id = u.i AND q.epoch = u.e);
    IF v_lost IS NOT NULL THEN
        RAISE EXCEPTION 'lease lost on % of % items', cardinality(v_lost), cardinality(p_items)
            USING ERRCODE = 'SK001', DETAIL = array_to_string(v_lost, ',');
    END IF;
    UPDATE exec_queue q SET visible_at = now() + p_lease_ms * interval '1 millisecond'
     WHERE q.item_id = ANY (p_items)
       AND q.visible_at < now() + p_lease_ms * interval '500 microseconds';
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- Additive (009's rule): binaries of schema 8 and later keep working.
INSERT INTO schema_migrations (version, name, compat_floor) VALUES (14, '014_batch', 8);
