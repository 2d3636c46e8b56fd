-- 016_fence_by_key: batch_fence extends leases through the primary key
-- whatever the statistics say.  Its UPDATE had two conditions an index
-- could serve: the item ids (the primary key) and "less than half the
-- lease left" (visible_at, the second column of exec_queue_ready).  When
-- the statistics said the queue was empty (an ANALYZE after a large DELETE
-- whose dead rows a snapshot kept), the planner took exec_queue_ready for
-- the visible_at condition, a walk of the whole index, for every round of
-- every batching worker: a 100 k burst drained at 8-32 runs/s until
-- autovacuum came (docs/performance.md, section 17).  The lease condition
-- is now an expression no index matches.  Nothing else changes.

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
       AND q.visible_at - now() < p_lease_ms * interval '500 microseconds';
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- Additive (009's rule): binaries of schema 8 and later keep working.
INSERT INTO schema_migrations (version, name, compat_floor) VALUES (16, '016_fence_by_key', 8);
