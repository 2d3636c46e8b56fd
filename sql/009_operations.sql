-- 009_operations: what running under Kubernetes needs from the schema.
--
--  1. schema_migrations.compat_floor: which binaries keep running once a
--     migration is applied, so a migration Job can run ahead of a rolling
--     update (docs/schema.md, "Which binaries a schema accepts").
--  2. Runs of a workflow no master has registered yet are accepted and
--     wait for a worker that serves it (deploy in any order);
--     p_require_registered keeps the old refusal (SK002) for callers who
--     want the typo guard.
--  3. queue_depth(): ready items, read by the KEDA PostgreSQL scaler
--     (deploy/kubernetes/components/keda).
--
-- Written to apply again cleanly (IF EXISTS, OR REPLACE): a schema whose
-- bookkeeping row was removed, or a second run by hand with psql.
--
-- Additive for binaries of schema version 8: start_run_msgpack and
-- start_run keep their earlier calls (three and two arguments) and result
-- columns; compat_floor is a new nullable column.

-- The lowest schema version a binary must know (its newest embedded
-- migration) to keep running once this migration is applied.  NULL: only
-- binaries that know this migration itself (a breaking change).  A binary
-- refuses a schema holding a migration it does not know unless that
-- migration's compat_floor is set and at most the binary's own version.
ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS compat_floor int;

-- ---- runs of workflows no master has registered -------------------------

DROP FUNCTION IF EXISTS start_run_msgpack(text, bytea, boolean);
DROP FUNCTION IF EXISTS start_run(text, jsonb);
DROP FUNCTION IF EXISTS start_runs(text, jsonb[]);

-- Start a run with msgpack input (NULL: nil), in the caller's transaction.
-- A workflow no master has registered is accepted (registered = false in
-- the result): its run waits in the queue until a worker that serves it
-- connects.  p_require_registered refuses it instead (SQLSTATE SK002), the
-- guard against a typo in the workflow id.
CREATE OR REPLACE FUNCTION start_run_msgpack(p_workflow text, p_data bytea,
                                  p_notify_end boolean DEFAULT false,
                                  p_require_registered boolean DEFAULT false)
RETURNS TABLE (run_id uuid, event_id uuid, registered boolean)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
#variable_conflict use_column
DECLARE
    v_run uuid := uuid7();   -- as 006_perf
    v_event uuid := uuid7();
    v_registered boolean;
BEGIN
    PERFORM check_name('a workflow', p_workflow);
    v_registered := EXISTS (SELECT 1 FROM workflows w WHERE w.workflow_id = p_workflow);
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

CREATE OR REPLACE FUNCTION start_run(p_workflow text, p_input jsonb DEFAULT 'null',
                          p_require_registered boolean DEFAULT false) RETURNS uuid
LANGUAGE sql SET search_path FROM CURRENT AS $$
    SELECT s.run_id
      FROM start_run_msgpack(p_workflow, mp_payload(p_input, 'input'), false,
                             p_require_registered) s;
$$;

-- As in 006_perf, with the same rule for a workflow nobody registered.
CREATE OR REPLACE FUNCTION start_runs(p_workflow text, p_inputs jsonb[],
                                      p_require_registered boolean DEFAULT false)
RETURNS TABLE (ord bigint, run_id uuid)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
#variable_conflict use_column
BEGIN
    PERFORM check_name('a workflow', p_workflow);
    IF coalesce(p_require_registered, false)
       AND NOT EXISTS (SELECT 1 FROM workflows w WHERE w.workflow_id = p_workflow) THEN
        RAISE EXCEPTION 'unknown workflow ''%'': no master has registered it in schema "%"',
            p_workflow, current_schema()
            USING ERRCODE = 'SK002',
                  HINT = 'Start stepkit-master with the library that defines it, or start '
                         'the runs without requiring a registered workflow: they then wait.';
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

-- ---- queue depth for autoscalers -------------------------------------------

-- Items that can be claimed now (visible, with no lease or an expired
-- one), of the given workflows (NULL: every workflow in the queue), counted
-- up to p_limit.  Cost, on exec_queue_ready (workflow_id, visible_at) of
-- 006_perf: per workflow one index descent and a range scan up to now()
-- (one heap visit per entry, for visibility), stopping once p_limit
-- entries are counted in all; with NULL, the workflows present are found
-- first by skipping through the same index (one descent per distinct
-- workflow, not a scan of the table).  So O(workflows x log(queue) +
-- min(ready items, p_limit)); sleeping and suspended items sit past now()
-- in the index and are not read.  SECURITY DEFINER so an autoscaler's
-- role needs EXECUTE only, no privilege on the tables; revoked from PUBLIC
-- (docs/kubernetes.md).
CREATE OR REPLACE FUNCTION queue_depth(p_workflows text[] DEFAULT NULL,
                                       p_limit bigint DEFAULT 100000)
RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path FROM CURRENT
SET enable_seqscan = off SET jit = off AS $$
DECLARE
    v_left bigint := greatest(coalesce(p_limit, 100000), 0);
    v_total bigint := 0;
    v_n bigint;
    v_wf text;
    v_all text[];
BEGIN
    IF p_workflows IS NULL THEN
        WITH RECURSIVE d(w) AS (
            (SELECT q.workflow_id FROM exec_queue q ORDER BY q.workflow_id LIMIT 1)
            UNION ALL
            SELECT (SELECT q.workflow_id FROM exec_queue q WHERE q.workflow_id > d.w
                     ORDER BY q.workflow_id LIMIT 1)
              FROM d WHERE d.w IS NOT NULL)
        SELECT array_agg(d.w) INTO v_all FROM d WHERE d.w IS NOT NULL;
    ELSE
        SELECT array_agg(DISTINCT u.w) INTO v_all FROM unnest(p_workflows) u(w);
    END IF;
    FOREACH v_wf IN ARRAY coalesce(v_all, '{}') LOOP
        EXIT WHEN v_left <= 0;
        SELECT count(*) INTO v_n
          FROM (SELECT 1 FROM exec_queue q
                 WHERE q.workflow_id = v_wf AND q.visible_at <= now()
                 LIMIT v_left) s;
        v_total := v_total + v_n;
        v_left := v_left - v_n;
    END LOOP;
    RETURN v_total;
END
$$;
REVOKE EXECUTE ON FUNCTION queue_depth(text[], bigint) FROM PUBLIC;

INSERT INTO schema_migrations (version, name, compat_floor) VALUES (9, '009_operations', 8);
