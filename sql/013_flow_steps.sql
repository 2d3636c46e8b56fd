-- 013_flow_steps: rate limits on step executions, and a notification when
-- a parked run is released.  docs/flow-control.md has the semantics.
--
-- A step rate is "at most N executions of run-step bodies per period per
-- key" for one workflow, cluster-wide.  The worker asks for a token
-- (flow_step_take) right before a body runs, for new steps and retries
-- alike; replayed steps run no body and take none.  Free when unused: the
-- worker learns from its claim statement whether the claimed run's
-- workflow has a step rate (one lookup of the workflows row, in the same
-- statement), and only then sends flow_step_take.

-- ---- configuration ----------------------------------------------------------
ALTER TABLE workflows
    ADD COLUMN IF NOT EXISTS step_rate_limit int CHECK (step_rate_limit BETWEEN 1 AND 10000),
    ADD COLUMN IF NOT EXISTS step_rate_period_ms int
        CHECK (step_rate_period_ms BETWEEN 1 AND 86400000),
    ADD COLUMN IF NOT EXISTS step_rate_key text; -- NULL: one rate for the whole workflow

-- The slot a refused take scheduled for the item (Unix ms, database
-- clock): its worker hands the item back visible then.  NULL on every
-- item of a schema without step rates.
ALTER TABLE exec_queue ADD COLUMN IF NOT EXISTS step_slot_ms bigint;

-- Per (workflow, key), two rings of at most step_rate_limit times (Unix
-- ms, database clock):
--   hits/next    the last N tokens taken: the admission log.  A take at t
--                succeeds only when fewer than N were taken in (t - T, t],
--                which bounds every window of T ms: this ring alone is
--                what makes the limit hold.
--   sched/snext  the same log plus the slots handed to refused takes: the
--                schedule.  A refused take gets the next free slot of the
--                schedule (not of the log), so K waiters come back one
--                after another at the rate tokens free, not all at once;
--                and a new take may not pass a waiter that holds an
--                earlier slot.  A slot is a hint, never a token: its holder
--                still passes the log when it comes back.
CREATE TABLE IF NOT EXISTS flow_step_rates (
    workflow_id text NOT NULL,
    key         text NOT NULL,
    hits        bigint[] NOT NULL DEFAULT '{}',
    next        int NOT NULL DEFAULT 1,
    sched       bigint[] NOT NULL DEFAULT '{}',
    snext       int NOT NULL DEFAULT 1,
    PRIMARY KEY (workflow_id, key)
);

-- set_step_rate(workflow, limit, period_ms, key): the step rate of a
-- workflow, from SQL (for workflows served by another deployment) or by a
-- master publishing what its library declares.  NULL limit: none.
-- Separate from set_flow_control so that a master of an earlier release,
-- which publishes set_flow_control's arguments only, never clears it.
CREATE OR REPLACE FUNCTION set_step_rate(p_workflow text, p_limit int DEFAULT NULL,
                                         p_period_ms int DEFAULT NULL, p_key text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    v_old record;
BEGIN
    PERFORM check_name('a workflow', p_workflow);
    IF (p_limit IS NULL) <> (p_period_ms IS NULL) THEN
        RAISE EXCEPTION 'a step rate needs both a count and a period (got limit %, period_ms %)',
            coalesce(p_limit::text, 'NULL'), coalesce(p_period_ms::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    IF p_limit NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'a step rate limit must be 1..10000 executions per period (got %)', p_limit
            USING ERRCODE = '22023';
    END IF;
    IF p_period_ms NOT BETWEEN 1 AND 86400000 THEN
        RAISE EXCEPTION 'a step rate period must be 1..86400000 ms (got %)', p_period_ms
            USING ERRCODE = '22023';
    END IF;
    IF p_key IS NOT NULL AND p_key <> ''
       AND (octet_length(p_key) > 255 OR p_key ~ '[\n\r]'
            OR EXISTS (SELECT 1 FROM unnest(string_to_array(p_key, ',')) AS s(p)
                        WHERE trim(s.p) = '' OR trim(s.p) LIKE '.%' OR trim(s.p) LIKE '%.'
                           OR trim(s.p) LIKE '%..%')) THEN
        RAISE EXCEPTION 'step rate key ''%'' is not a list of input paths (e.g. ''customer'' or ''region,customer.id'')',
            p_key USING ERRCODE = '22023';
    END IF;
    SELECT w.step_rate_limit, w.step_rate_period_ms, w.step_rate_key INTO v_old
      FROM workflows w WHERE w.workflow_id = p_workflow FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown workflow ''%'': no master has registered it in schema "%"',
            p_workflow, current_schema() USING ERRCODE = 'SK002';
    END IF;
    UPDATE workflows
       SET step_rate_limit = p_limit, step_rate_period_ms = p_period_ms,
           step_rate_key = nullif(p_key, '')
     WHERE workflow_id = p_workflow;
    IF v_old.step_rate_limit IS DISTINCT FROM p_limit
       OR v_old.step_rate_period_ms IS DISTINCT FROM p_period_ms
       OR v_old.step_rate_key IS DISTINCT FROM nullif(p_key, '') THEN
        -- The slots handed out were planned for the old rate: waiters come
        -- back now and take (or are scheduled) under the new one; the
        -- schedules restart from the logs.  Items a worker holds keep
        -- their lease; their slot is dropped all the same.
        UPDATE exec_queue q
           SET step_slot_ms = NULL,
               visible_at = CASE WHEN q.leased OR q.flow_parked THEN q.visible_at
                                 ELSE least(q.visible_at, now()) END
         WHERE q.workflow_id = p_workflow AND q.step_slot_ms IS NOT NULL;
        IF FOUND THEN
            PERFORM pg_notify(current_schema() || '.work', '');
        END IF;
        UPDATE flow_step_rates f SET sched = f.hits, snext = f.next
         WHERE f.workflow_id = p_workflow;
    END IF;
END
$$;

-- ---- the token ----------------------------------------------------------------

-- The newest p_n times of a ring, oldest first (for a ring whose limit
-- changed: a full ring then starts at 1, a shorter one grows at its end).
CREATE OR REPLACE FUNCTION flow_ring_fit(p_ring bigint[], p_n int) RETURNS bigint[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(t.h ORDER BY t.h), '{}')
      FROM (SELECT u.h FROM unnest(p_ring) AS u(h) ORDER BY u.h DESC LIMIT p_n) t;
$$;
--
-- flow_step_take(item, epoch): called by the worker holding the item right
-- before a run-step body of a workflow with a step rate.  Fenced like
-- fence(): SK001 when the lease was lost, so a late worker takes nothing.
-- Returns 0: a token was taken, run the body; > 0: none is free, hand the
-- item back visible in that many ms (its slot) and run nothing.
-- Lock order: the item, then the key's row (every take does the same).
-- The token is taken in a transaction of its own, committed before the
-- body starts: a body never runs on a token that was rolled back, and a
-- worker that dies after the commit has used its token (the safe side).
CREATE OR REPLACE FUNCTION flow_step_take(p_item bigint, p_epoch int) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    v_run uuid;
    v_wf text;
    v_epoch int;
    v_slot bigint;
    w record;
    v_key text;
    v_hits bigint[];
    v_next int;
    v_sched bigint[];
    v_snext int;
    v_now bigint;
    v_log_ok boolean;
    v_at bigint;
BEGIN
    SELECT q.run_id, q.workflow_id, q.epoch, q.step_slot_ms INTO v_run, v_wf, v_epoch, v_slot
      FROM exec_queue q WHERE q.item_id = p_item FOR UPDATE;
    IF NOT FOUND OR v_epoch <> p_epoch THEN
        RAISE EXCEPTION 'lease lost on item %', p_item USING ERRCODE = 'SK001';
    END IF;
    SELECT f.step_rate_limit, f.step_rate_period_ms, f.step_rate_key INTO w
      FROM workflows f WHERE f.workflow_id = v_wf;
    IF w.step_rate_limit IS NULL THEN
        -- Removed since the claim: nothing to take.
        IF v_slot IS NOT NULL THEN
            UPDATE exec_queue SET step_slot_ms = NULL WHERE item_id = p_item;
        END IF;
        RETURN 0;
    END IF;
    v_key := flow_key_of((SELECT r.data FROM runs r WHERE r.run_id = v_run), w.step_rate_key);
    SELECT s.hits, s.next, s.sched, s.snext INTO v_hits, v_next, v_sched, v_snext
      FROM flow_step_rates s WHERE s.workflow_id = v_wf AND s.key = v_key FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO flow_step_rates (workflow_id, key) VALUES (v_wf, v_key)
        ON CONFLICT DO NOTHING;
        SELECT s.hits, s.next, s.sched, s.snext INTO v_hits, v_next, v_sched, v_snext
          FROM flow_step_rates s WHERE s.workflow_id = v_wf AND s.key = v_key FOR UPDATE;
    END IF;
    -- Read after the key's lock: the takes of a key are in clock order.
    v_now := (extract(epoch FROM clock_timestamp()) * 1000)::int8;
    -- A changed limit: the rings keep their newest entries, in order.
    IF cardinality(v_hits) > w.step_rate_limit
       OR (cardinality(v_hits) < w.step_rate_limit AND v_next <> 1) THEN
        v_hits := flow_ring_fit(v_hits, w.step_rate_limit);
        v_next := 1;
    END IF;
    IF cardinality(v_sched) > w.step_rate_limit
       OR (cardinality(v_sched) < w.step_rate_limit AND v_snext <> 1) THEN
        v_sched := flow_ring_fit(v_sched, w.step_rate_limit);
        v_snext := 1;
    END IF;
    IF v_slot IS NOT NULL AND v_slot > v_now THEN
        -- Back before its slot (woken meanwhile): not yet.
        RETURN v_slot - v_now;
    END IF;
    v_log_ok := cardinality(v_hits) < w.step_rate_limit
                OR v_hits[v_next] <= v_now - w.step_rate_period_ms;
    -- A waiter whose slot has come needs the log only (its slot is in the
    -- schedule already); a new take must also find the schedule free, so
    -- it does not pass the waiters.
    IF v_log_ok AND (v_slot IS NOT NULL
                     OR cardinality(v_sched) < w.step_rate_limit
                     OR v_sched[v_snext] <= v_now - w.step_rate_period_ms) THEN
        IF cardinality(v_hits) < w.step_rate_limit THEN
            v_hits := v_hits || v_now;
        ELSE
            v_hits[v_next] := v_now;
            v_next := v_next % w.step_rate_limit + 1;
        END IF;
        IF v_slot IS NULL THEN
            IF cardinality(v_sched) < w.step_rate_limit THEN
                v_sched := v_sched || v_now;
            ELSE
                v_sched[v_snext] := v_now;
                v_snext := v_snext % w.step_rate_limit + 1;
            END IF;
        ELSE
            UPDATE exec_queue SET step_slot_ms = NULL WHERE item_id = p_item;
        END IF;
        UPDATE flow_step_rates SET hits = v_hits, next = v_next, sched = v_sched, snext = v_snext
         WHERE workflow_id = v_wf AND key = v_key;
        RETURN 0;
    END IF;
    -- No token: the next free slot of the schedule, and not before the log
    -- frees one.
    v_at := greatest(v_now + 1,
                     CASE WHEN cardinality(v_sched) < w.step_rate_limit THEN v_now
                          ELSE v_sched[v_snext] + w.step_rate_period_ms + 1 END,
                     CASE WHEN cardinality(v_hits) < w.step_rate_limit THEN v_now
                          ELSE v_hits[v_next] + w.step_rate_period_ms + 1 END);
    IF cardinality(v_sched) < w.step_rate_limit THEN
        v_sched := v_sched || v_at;
    ELSE
        v_sched[v_snext] := v_at;
        v_snext := v_snext % w.step_rate_limit + 1;
    END IF;
    UPDATE flow_step_rates SET sched = v_sched, snext = v_snext
     WHERE workflow_id = v_wf AND key = v_key;
    UPDATE exec_queue SET step_slot_ms = v_at WHERE item_id = p_item;
    RETURN v_at - v_now;
END
$$;

-- ---- releasing a parked run wakes a worker ---------------------------------------
--
-- 010's flow_unpark, plus a notification on the work channel when it
-- released something: an idle worker claims the run at once instead of at
-- its next poll.  (The worker whose run's end freed the slot often claims
-- it itself, in the same transaction; a release by an operator's cancel,
-- a raised limit, or a claim that took another item needs the wake-up.)
-- The notification is sent only when an item was released, so ends of keys
-- with nothing parked add no commit to the global notify queue.
CREATE OR REPLACE FUNCTION flow_unpark(p_workflow text, p_key text, p_count int) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off SET jit = off AS $$
BEGIN
    UPDATE exec_queue q
       SET flow_parked = false, visible_at = least(coalesce(q.rank_at, now()), now())
     WHERE q.item_id IN (SELECT p.item_id FROM exec_queue p
                          WHERE p.workflow_id = p_workflow AND p.flow_key = p_key
                            AND p.flow_parked
                          ORDER BY p.rank_at, p.item_id
                          LIMIT greatest(p_count, 1) FOR UPDATE);
    IF FOUND THEN
        PERFORM pg_notify(current_schema() || '.work', '');
    END IF;
END
$$;

-- Additive for binaries of schema 8 and later (009's compat rule): new
-- nullable columns, a new table and new functions; flow_unpark keeps its
-- signature and meaning (it notifies too).  Binaries before this one never
-- take step tokens: a step rate is enforced by the workers of binaries of
-- schema 13 and later only.
INSERT INTO schema_migrations (version, name, compat_floor) VALUES (13, '013_flow_steps', 8);
