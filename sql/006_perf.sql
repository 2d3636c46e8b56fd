-- 006_perf: a claim whose cost does not grow with other workflows' work,
-- time-ordered ids.  docs/performance.md has the plans and the figures.

-- ---- time-ordered ids ----------------------------------------------------
--
-- UUIDv7 layout (RFC 9562): 48 bits of Unix milliseconds, version 7, 12
-- bits of sub-millisecond fraction (so ids of one session sort in time
-- order), the variant and 62 random bits.  Runs and events created one
-- after another get ids that land at the right edge of every index on
-- them, instead of on a random leaf (after each checkpoint, a random leaf
-- costs a full-page image in WAL).  shared/sk_uuid.c makes the same ids in
-- C (a child run's id).
CREATE FUNCTION uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(substring(int8send(t / 1000) FROM 3 FOR 6)
                  || int2send((28672 + (t % 1000) * 4096 / 1000)::int2)
                  || substring(uuid_send(gen_random_uuid()) FROM 9 FOR 8), 'hex')::uuid
      FROM (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::int8 AS t) s;
$$;

-- The Unix milliseconds a UUIDv7 carries (for inspection and tests).
CREATE FUNCTION uuid7_ms(p uuid) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ('x0000' || substring(replace(p::text, '-', '') FROM 1 FOR 12))::bit(64)::bigint;
$$;

-- ---- the queue's index ---------------------------------------------------
--
-- The claim, the next-due lookup and the insert trigger all ask about the
-- workflows a worker serves: "the oldest item of workflow w due by now" and
-- "the first of w due later".  On (visible_at) alone each of them walked
-- the items of every other workflow (a backlog nobody serves, future
-- items) and filtered them row by row; on (workflow_id, visible_at) each
-- question is one descent of the index per workflow.  The old index has no
-- remaining reader: dropping it keeps the claim's update at three index
-- insertions.
CREATE INDEX exec_queue_ready ON exec_queue (workflow_id, visible_at);
DROP INDEX exec_queue_visible;

-- ---- the claim -----------------------------------------------------------
--
-- claim(lease ms, worker name, workflow ids): lease the oldest visible item
-- of the given workflows and return it with its run and every recorded op,
-- one row per op (the columns of worker/sk_stmts.h, SK_CLAIM_*).  When
-- nothing was claimed, the single row returned says in next_ms how long
-- until the earliest item of those workflows becomes visible (a retry, a
-- sleep, a lease expiry), for the worker's timer; NULL when none.  With an
-- item, next_ms is 0 when another item of those workflows is ready too
-- (the worker then wakes an idle sibling: docs/performance.md, "Latency").
--
-- Shape: the workflows' heads are read without locks, oldest first, one
-- index descent each; then each head's workflow is tried in that order
-- with ORDER BY visible_at LIMIT 1 FOR UPDATE SKIP LOCKED on the same
-- index, so a claim locks only the row it takes (locking one head per
-- workflow would write every head's tuple) and skips rows other workers
-- are claiming without giving up on their workflow.  With one workflow the
-- first step is skipped.
--
-- Snapshots: every statement of a volatile function reads with a snapshot
-- of its own, taken when it starts.  The run and its ops are read after the
-- item is locked and updated, so they are at least as new as the item: a
-- run inserted together with its item is always seen (a claim reading the
-- run from an older snapshot than the item's would take it for a stale
-- item).  wake_seq is the one this transaction wrote: a wake() committed
-- before the lock is in it and its op is in the later snapshot; a wake()
-- after it waits for this transaction to commit, and shows when the item
-- is handed back (see fence).
CREATE FUNCTION claim(p_lease_ms int, p_worker text, p_workflows text[])
RETURNS TABLE (next_ms bigint, item_id bigint, epoch int, run_id text, item_op text,
               workflow_id text, event_id text, trigger_type text, trigger_name text,
               data bytea, status text, attempt int, attempt_ops int, created_ms bigint,
               op_key text, step_id text, op_status text, result bytea, attempts int,
               kind text, wait_info bytea, wake_seq int, takeovers int)
LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
#variable_conflict use_column
DECLARE
    v_item bigint;
    v_wf text;
    v_run uuid;
    v_epoch int;
    v_op text;
    v_wake int;
    v_takeovers int;
    v_next bigint;
    v_more boolean;
BEGIN
    IF cardinality(p_workflows) = 1 THEN
        SELECT q.item_id INTO v_item FROM exec_queue q
         WHERE q.workflow_id = p_workflows[1] AND q.visible_at <= now()
         ORDER BY q.visible_at LIMIT 1 FOR UPDATE SKIP LOCKED;
    ELSE
        FOR v_wf IN
            SELECT w.id FROM unnest(p_workflows) AS w(id)
             CROSS JOIN LATERAL (SELECT q.visible_at FROM exec_queue q
                                  WHERE q.workflow_id = w.id AND q.visible_at <= now()
                                    AND q.epoch >= 0 -- a heap read: see the next-due note
                                  ORDER BY q.visible_at LIMIT 1) h
             ORDER BY h.visible_at
        LOOP
            SELECT q.item_id INTO v_item FROM exec_queue q
             WHERE q.workflow_id = v_wf AND q.visible_at <= now()
             ORDER BY q.visible_at LIMIT 1 FOR UPDATE SKIP LOCKED;
            EXIT WHEN v_item IS NOT NULL;
        END LOOP;
    END IF;

    IF v_item IS NULL THEN
        -- The earliest later item of each workflow.  It reads a heap column
        -- (epoch) on purpose: a plain index scan marks the entries of
        -- deleted items dead as it passes them, an index-only scan does not
        -- and would wade through every lease of the last minutes each time.
        SELECT min(h.v) INTO v_next
          FROM unnest(p_workflows) AS w(id)
         CROSS JOIN LATERAL (SELECT (extract(epoch FROM q.visible_at - now()) * 1000)::int8 AS v
                               FROM exec_queue q
                              WHERE q.workflow_id = w.id AND q.visible_at > now()
                                AND q.visible_at < 'infinity' AND q.epoch >= 0
                              ORDER BY q.visible_at LIMIT 1) h;
        RETURN QUERY SELECT v_next, NULL::bigint, NULL::int, NULL::text, NULL::text, NULL::text,
                            NULL::text, NULL::text, NULL::text, NULL::bytea, NULL::text,
                            NULL::int, NULL::int, NULL::bigint, NULL::text, NULL::text,
                            NULL::text, NULL::bytea, NULL::int, NULL::text, NULL::bytea,
                            NULL::int, NULL::int;
        RETURN;
    END IF;

    UPDATE exec_queue e
       SET epoch = e.epoch + 1, leased = true,
           takeovers = CASE WHEN e.leased THEN e.takeovers + 1 ELSE 0 END,
           visible_at = now() + p_lease_ms * interval '1 millisecond',
           claimed_by = p_worker
     WHERE e.item_id = v_item
    RETURNING e.run_id, e.epoch, e.op_key, e.wake_seq, e.takeovers
         INTO v_run, v_epoch, v_op, v_wake, v_takeovers;

    -- Another ready item (ours is due at the lease expiry now).
    SELECT EXISTS (SELECT 1 FROM unnest(p_workflows) AS w(id)
                    CROSS JOIN LATERAL (SELECT 1 FROM exec_queue q
                                         WHERE q.workflow_id = w.id AND q.visible_at <= now()
                                           AND q.epoch >= 0
                                         LIMIT 1) h)
      INTO v_more;

    RETURN QUERY
    SELECT CASE WHEN v_more THEN 0::bigint END, v_item, v_epoch, v_run::text, v_op,
           r.workflow_id, r.event_id::text,
           r.trigger_type, r.trigger_name, r.data, r.status, r.attempt, r.attempt_ops,
           (extract(epoch FROM r.created_at) * 1000)::int8,
           o.op_key, o.step_id, o.status, o.result, o.attempts, o.kind, o.wait_info,
           v_wake, v_takeovers
      FROM (SELECT v_run AS id) k
      LEFT JOIN runs r ON r.run_id = k.id
      LEFT JOIN ops o ON o.run_id = k.id;
END
$$;

-- ---- plans that stay on the indexes -----------------------------------------
--
-- PL/pgSQL and named prepared statements cache a generic plan after a few
-- calls, made with the table sizes of that moment and kept until the
-- table's statistics change.  A plan made while exec_queue or runs was
-- tiny reads them with a sequential scan ("cheaper" for a page or two) and
-- keeps doing so when a burst has filled them with 100 k rows, until
-- autovacuum analyzes the table: every start, claim, fence and end then
-- reads the whole table (the slow first seconds of a burst; 100 k
-- start_run calls in one transaction took 84 s).  The functions below,
-- and the workers' sessions (worker/sk_wconn.c), run with enable_seqscan
-- off: they find their rows by key, where an index scan is right at any
-- size.  (It only penalises a sequential scan; a table without a usable
-- index is still read.)
ALTER FUNCTION deliver_signal(text, bytea) SET enable_seqscan = off;
ALTER FUNCTION end_run(bigint, int, uuid, text, bytea, bytea, bytea, text)
    SET enable_seqscan = off;
ALTER FUNCTION fence(bigint, int, bigint, boolean, int) SET enable_seqscan = off;

-- ---- the insert trigger ----------------------------------------------------
--
-- As in 001: notify only when no other item of the new items' workflow is
-- ready and unclaimed, or when an item is due later.  Asked per workflow
-- of the new items on exec_queue_ready, so the cost does not depend on
-- other workflows' items, and without joining the queue to new_items (a
-- join planned from stale statistics ran as a nested loop: quadratic in
-- the rows of one INSERT): the statement inserted k ready items of a
-- workflow, so another ready one exists when the first k + 1 ready items
-- of that workflow are k + 1.
CREATE OR REPLACE FUNCTION notify_new_work() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_items n WHERE n.visible_at > now())
       OR EXISTS (SELECT 1
                    FROM (SELECT n.workflow_id, count(*) AS k FROM new_items n
                           WHERE n.visible_at <= now() GROUP BY n.workflow_id) w
                   WHERE (SELECT count(*)
                            FROM (SELECT 1 FROM exec_queue q
                                   WHERE q.workflow_id = w.workflow_id
                                     AND q.visible_at <= now() AND NOT q.leased
                                   LIMIT w.k + 1) s) <= w.k) THEN
        PERFORM pg_notify(TG_TABLE_SCHEMA || '.work', '');
    END IF;
    RETURN NULL;
END
$$;

-- ---- ids: runs and events ----------------------------------------------------
--
-- The functions of 001-003 that make ids, as they were, with uuid7() for
-- gen_random_uuid().

CREATE OR REPLACE FUNCTION start_run_msgpack(p_workflow text, p_data bytea,
                                             p_notify_end boolean DEFAULT false)
RETURNS TABLE (run_id uuid, event_id uuid)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
#variable_conflict use_column
DECLARE
    v_run uuid := uuid7();
    v_event uuid := uuid7();
BEGIN
    PERFORM check_name('a workflow', p_workflow); -- 005_limits' rule
    INSERT INTO runs (run_id, workflow_id, event_id, trigger_type, trigger_name, data,
                      notify_end)
    SELECT v_run, w.workflow_id, v_event, 'invoke', w.workflow_id,
           coalesce(p_data, '\xc0'::bytea), coalesce(p_notify_end, false)
      FROM workflows w WHERE w.workflow_id = p_workflow;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown workflow ''%'': no master has registered it in schema "%"',
            p_workflow, current_schema()
            USING ERRCODE = 'SK002',
                  HINT = 'Start stepkit-master with the library that defines it.';
    END IF;
    INSERT INTO exec_queue (run_id, workflow_id) VALUES (v_run, p_workflow);
    RETURN QUERY SELECT v_run, v_event;
END
$$;

CREATE OR REPLACE FUNCTION send_event_msgpack(p_name text, p_data bytea,
                                              p_event_id uuid DEFAULT NULL)
RETURNS TABLE (event_id uuid, run_id uuid)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
#variable_conflict use_column
DECLARE
    v_event uuid := coalesce(p_event_id, uuid7());
    v_data bytea := coalesce(p_data, '\xc0'::bytea);
    v_runs uuid[];
BEGIN
    PERFORM check_name('an event', p_name);
    INSERT INTO event_queue (event_id, name, data) VALUES (v_event, p_name, v_data)
    ON CONFLICT DO NOTHING;
    WITH r AS (
        INSERT INTO runs (run_id, workflow_id, event_id, trigger_type, trigger_name, data)
        SELECT uuid7(), w.workflow_id, v_event, 'event', p_name, v_data
          FROM workflows w
         WHERE p_name = ANY (w.events)
         ORDER BY w.workflow_id
        ON CONFLICT (event_id, workflow_id) DO NOTHING
        RETURNING run_id, workflow_id),
    q AS (INSERT INTO exec_queue (run_id, workflow_id) SELECT run_id, workflow_id FROM r)
    SELECT array_agg(r.run_id ORDER BY r.workflow_id) INTO v_runs FROM r;
    DELETE FROM event_queue WHERE event_id = v_event;
    IF v_runs IS NULL THEN
        RETURN QUERY SELECT v_event, NULL::uuid;
    ELSE
        RETURN QUERY SELECT v_event, u.id FROM unnest(v_runs) WITH ORDINALITY AS u(id, ord)
                      ORDER BY u.ord;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION invoke_child(p_run uuid, p_op text, p_step text, p_child uuid,
                                        p_workflow text, p_data bytea, p_timeout_ms bigint,
                                        p_wait_info bytea, p_started_ms bigint,
                                        p_unknown_error bytea) RETURNS boolean
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
    SELECT p_child, workflow_id, uuid7(), 'invoke', workflow_id, p_data, p_run, p_op
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

CREATE OR REPLACE FUNCTION fire_cron(p_workflow text, p_schedule text, p_tick timestamptz,
                                     p_data bytea) RETURNS uuid
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    v_run uuid := uuid7();
BEGIN
    INSERT INTO cron_ticks (workflow_id, schedule, tick_at, run_id)
    VALUES (p_workflow, p_schedule, p_tick, v_run)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO runs (run_id, workflow_id, event_id, trigger_type, trigger_name, data)
    VALUES (v_run, p_workflow, uuid7(), 'cron', p_workflow, p_data);
    INSERT INTO exec_queue (run_id, workflow_id) VALUES (v_run, p_workflow);
    DELETE FROM cron_ticks
     WHERE workflow_id = p_workflow AND schedule = p_schedule
       AND tick_at < p_tick - interval '7 days';
    RETURN v_run;
END
$$;

-- ---- many runs at once ---------------------------------------------------------
--
-- start_runs(workflow, inputs jsonb[]): one run per input, in the caller's
-- transaction, with set-based inserts (one statement each for runs and the
-- queue, so one trigger call and at most one notification for the lot).
-- Returns the run ids in the order of the inputs.  A NULL element is JSON
-- null; an empty or NULL array starts nothing.
CREATE FUNCTION start_runs(p_workflow text, p_inputs jsonb[])
RETURNS TABLE (ord bigint, run_id uuid)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
#variable_conflict use_column
BEGIN
    PERFORM check_name('a workflow', p_workflow); -- 005_limits' rule
    PERFORM 1 FROM workflows w WHERE w.workflow_id = p_workflow;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown workflow ''%'': no master has registered it in schema "%"',
            p_workflow, current_schema()
            USING ERRCODE = 'SK002',
                  HINT = 'Start stepkit-master with the library that defines it.';
    END IF;
    RETURN QUERY
    WITH i AS (SELECT u.ord, uuid7() AS run_id, uuid7() AS event_id,
                      mp_payload(u.input, 'input') AS data
                 FROM unnest(p_inputs) WITH ORDINALITY AS u(input, ord)),
    r AS (INSERT INTO runs (run_id, workflow_id, event_id, trigger_type, trigger_name, data)
          SELECT i.run_id, p_workflow, i.event_id, 'invoke', p_workflow, i.data
            FROM i ORDER BY i.ord
          RETURNING run_id),
    q AS (INSERT INTO exec_queue (run_id, workflow_id)
          SELECT r.run_id, p_workflow FROM r ORDER BY r.run_id)
    SELECT i.ord, i.run_id FROM i ORDER BY i.ord;
END
$$;


INSERT INTO schema_migrations (version, name) VALUES (6, '006_perf');
